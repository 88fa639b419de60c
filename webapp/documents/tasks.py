"""The documents workload's tasks, on the ``documents`` queue of ``webapp.taskapp.app``.

``process_document(document_id, run)`` is the multi-step job: *parse* (find the
questions), *answer* (each question, through the configured ``Answerer``), *typeset*
(the PDF). Its task id is the document's id, on every run. It reports progress through
taskcore (``current_task.progress``: one unit for parsing, one per question, one for
typesetting; the message names the step) and writes the same to the document's row,
which the document page polls. Answers are stored as they come, so an attempt after a
failure resumes at the first unanswered question.

* A paper the parser rejects (no questions, too many, unreadable) is the user's problem,
  not the system's: the document fails with the message and the task ends normally (no
  dead letter).
* ``AnswerServiceUnavailable`` (the HTTP answerer timed out or got a 5xx) is retried by
  taskcore with exponential backoff (``WEBAPP_DOCUMENTS_RETRIES``,
  ``WEBAPP_DOCUMENTS_RETRY_BACKOFF``); meanwhile the document is ``retrying``. After the
  last retry, and on any other exception, the document fails with the step and the error
  and the task fails (its message goes to ``documents.dead``).
* ``run`` is the document's send count: a message of an older run (e.g. replayed from the
  dead-letter queue after the user restarted the document) does nothing.

``remove_old_documents`` (hourly) deletes documents older than
``WEBAPP_DOCUMENTS_MAX_AGE_DAYS`` with their files; ``send_delayed_documents`` (every five
minutes) sends those that could not be sent at upload because the broker was down.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from taskcore import current_task

from ..db import task_session, utcnow
from ..taskapp import app
from .answerers import AnswerServiceUnavailable, make_answerer
from .models import IN_FLIGHT, Document, DocumentQuestion
from .parsing import NoQuestionsFound, extract_questions
from .settings import DocumentSettings, from_env, human_size
from .storage import Storage, StorageFull
from .typesetting import UnreadableDocument, read_text, render_answers

log = logging.getLogger(__name__)

#: Read once at import for the task's options (a worker's environment does not change).
_OPTIONS = from_env()


class DocumentProblem(Exception):
    """The paper itself cannot be processed: fail the document, not the system."""


class _Job:
    """One attempt at processing one document, on one database session."""

    def __init__(self, session: Session, document: Document, settings: DocumentSettings) -> None:
        self.session = session
        self.document = document
        self.settings = settings
        self.storage = Storage.from_settings(settings)
        self.step = "parse"

    def progress(self, done: int, message: str) -> None:
        total = (self.document.questions_total or 0) + 2
        current_task.progress(done, total, message)

    def enter(self, step: str, **values: Any) -> None:
        self.step = step
        for name, value in {"step": step, **values}.items():
            setattr(self.document, name, value)
        self.session.commit()

    def run(self) -> dict[str, Any]:
        doc = self.document
        answerer = make_answerer(self.settings)
        try:
            self.enter(
                "parse",
                status="running",
                attempt=current_task.attempt,
                error=None,
                failed_step=None,
                answerer=answerer.name,
            )
            self.progress(0, "parse: finding the questions")
            questions = self.parse()
            self.enter("answer", questions_total=len(questions))
            total = len(questions)
            for index, question in enumerate(questions, 1):
                current_task.check()  # revoked, or past the soft time limit
                if question.answer is None:
                    self.progress(index, f"answer: question {index} of {total}")
                    try:
                        question.answer = answerer.answer(question.text)
                    except AnswerServiceUnavailable as exc:
                        raise AnswerServiceUnavailable(
                            f"question {index} of {total}: {exc}"
                        ) from exc
                    doc.questions_done = index
                    self.session.commit()
                    if self.settings.step_delay:
                        time.sleep(self.settings.step_delay)
                else:
                    doc.questions_done = index
            self.enter("typeset")
            self.progress(total + 1, "typeset: writing the PDF")
            size = self.typeset(questions)
            doc.status, doc.result_size, doc.finished_at = "done", size, utcnow()
            self.session.commit()
            self.progress(total + 2, "done")
            return {"document": doc.id, "outcome": "done", "questions": total, "pdf_bytes": size}
        finally:
            answerer.close()

    def parse(self) -> list[DocumentQuestion]:
        doc = self.document
        stored = self.session.scalars(
            sa.select(DocumentQuestion)
            .where(DocumentQuestion.document_id == doc.id)
            .order_by(DocumentQuestion.position)
        ).all()
        if stored:  # an earlier attempt found them (and may have answered some)
            return list(stored)
        path = self.storage.upload_path(doc.id, doc.kind)
        try:
            text = read_text(path.read_bytes(), doc.kind)
            found = extract_questions(text)
        except FileNotFoundError:
            raise DocumentProblem("the uploaded file is no longer stored") from None
        except (UnreadableDocument, NoQuestionsFound) as exc:
            raise DocumentProblem(str(exc)[:1].upper() + str(exc)[1:]) from exc
        limit = self.settings.max_questions
        if len(found) > limit:
            raise DocumentProblem(
                f"The paper has {len(found)} questions; at most {limit} can be answered."
            )
        rows = [
            DocumentQuestion(document_id=doc.id, position=q.position, label=q.label, text=q.text)
            for q in found
        ]
        self.session.add_all(rows)
        self.session.flush()
        return rows

    def typeset(self, questions: list[DocumentQuestion]) -> int:
        doc = self.document
        data = render_answers(
            f"Answers: {doc.original_name}",
            [(q.label, q.text, q.answer or "") for q in questions],
            answerer=doc.answerer or "offline",
            created=doc.created_at,
            font=self.settings.font,
        )
        try:
            self.storage.check_room(len(data))
        except StorageFull as exc:
            raise DocumentProblem(str(exc)) from exc
        self.storage.write(self.storage.result_path(doc.id), data)
        return len(data)


def _record_failure(document_id: str, status: str, step: str, error: str) -> None:
    """Write the outcome in a session of its own (the job's may be in a failed state)."""
    with task_session() as session:
        session.execute(
            sa.update(Document)
            .where(Document.id == document_id)
            .values(
                status=status,
                error=error[:4000],
                failed_step=step if status == "failed" else None,
                finished_at=utcnow() if status == "failed" else None,
                updated_at=utcnow(),
            )
        )
        session.commit()


@app.task(
    queue="documents",
    max_retries=_OPTIONS.retries,
    retry_backoff=_OPTIONS.retry_backoff,
    retry_backoff_max=300,
    autoretry_for=(AnswerServiceUnavailable,),
    time_limit=_OPTIONS.time_limit,
)
def process_document(document_id: str, run: int = 1) -> dict[str, Any]:
    """Parse, answer and typeset one uploaded question paper (see the module's docstring)."""
    settings = from_env()
    with task_session() as session:
        document = session.get(Document, document_id)
        if document is None:
            log.info("document %s is gone (removed): nothing to do", document_id)
            return {"document": document_id, "outcome": "gone"}
        if document.run != run:
            log.info("document %s: run %s was superseded by run %s", document_id, run, document.run)
            return {"document": document_id, "outcome": "superseded"}
        job = _Job(session, document, settings)
        try:
            return job.run()
        except DocumentProblem as exc:
            session.rollback()
            _record_failure(document_id, "failed", job.step, str(exc))
            return {"document": document_id, "outcome": "failed", "step": job.step,
                    "error": str(exc)}  # fmt: skip
        except AnswerServiceUnavailable as exc:
            session.rollback()
            retries, limit = current_task.retries, _OPTIONS.retries
            if retries < limit:
                wait = min(_OPTIONS.retry_backoff * 2**retries, 300)
                message = f"{exc} (retry {retries + 1} of {limit} in up to {wait:g} s)"
                _record_failure(document_id, "retrying", job.step, message)
            else:
                message = f"{exc} (gave up after {limit} retries)"
                _record_failure(document_id, "failed", job.step, message)
            raise
        except Exception as exc:
            session.rollback()
            _record_failure(document_id, "failed", job.step, f"{type(exc).__name__}: {exc}")
            raise


@app.task(queue="documents")
def remove_old_documents() -> dict[str, int]:
    """Delete documents (rows and files) older than ``WEBAPP_DOCUMENTS_MAX_AGE_DAYS``.

    Documents still being processed are kept unless they, too, have not changed for that
    long. Files with no row (left by a crash between writing and committing) go as well
    once they are that old.
    """
    settings = from_env()
    storage = Storage.from_settings(settings)
    cutoff = utcnow() - timedelta(days=settings.max_age_days)
    removed = files = 0
    with task_session() as session:
        old = session.scalars(
            sa.select(Document.id).where(
                Document.created_at < cutoff,
                sa.or_(Document.status.not_in(IN_FLIGHT), Document.updated_at < cutoff),
            )
        ).all()
        for chunk in (old[i : i + 500] for i in range(0, len(old), 500)):
            session.execute(
                sa.delete(DocumentQuestion).where(DocumentQuestion.document_id.in_(chunk))
            )
            session.execute(sa.delete(Document).where(Document.id.in_(chunk)))
            session.commit()  # rows first: a file without a row is cleaned up next time
            for document_id in chunk:
                files += storage.remove(document_id)
            removed += len(chunk)
        known = set(session.scalars(sa.select(Document.id)).all())
    for document_id, mtime in storage.stored_ids().items():
        if document_id not in known and mtime < cutoff.timestamp():
            files += storage.remove(document_id)
    if removed or files:
        log.info(
            "removed %d documents and %d files older than %s days (%s in use)",
            removed,
            files,
            f"{settings.max_age_days:g}",
            human_size(storage.usage()),
        )
    return {"documents": removed, "files": files}


@app.task(queue="documents")
def send_delayed_documents() -> int:
    """Send the documents whose upload could not reach the broker; returns how many."""
    from .jobs import restart

    with task_session() as session:
        delayed = session.scalars(
            sa.select(Document.id).where(Document.status == "delayed").limit(100)
        ).all()
        return sum(
            restart(session, document_id, statuses=("delayed",)) == "sent"
            for document_id in delayed
        )


app.schedule("documents-cleanup", remove_old_documents, every=timedelta(hours=1))
app.schedule("documents-send-delayed", send_delayed_documents, every=timedelta(minutes=5))
