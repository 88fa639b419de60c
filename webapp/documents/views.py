"""Documents pages: upload and list, one document's progress or result, its PDF.

| method | path | does |
|---|---|---|
| GET | ``/documents`` | the upload form and the signed-in identity's documents |
| POST | ``/documents`` | upload (size, type, PDF signature, UTF-8 checked), store, send |
| GET | ``/documents/<id>`` | progress (live), result or failure with a retry button |
| GET | ``/documents/<id>/status`` | the same as JSON, polled by ``documents.js`` |
| POST | ``/documents/<id>/retry`` | send a failed or delayed document again |
| GET | ``/documents/<id>/download`` | the generated PDF |

A document is visible to whoever uploaded it and to operators; to anyone else it does not
exist (404).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import redis
import sqlalchemy as sa
from flask import abort, flash, jsonify, redirect, render_template, request, send_file, url_for
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.utils import secure_filename
from werkzeug.wrappers import Response

from taskcore.errors import TaskcoreError
from taskcore.states import State

from ..auth.access import Identity, current_identity, requires
from ..db import db, utcnow
from ..security import csrf
from . import documents
from .jobs import restart, send_or_delay
from .models import IN_FLIGHT, STEP_LABELS, STEPS, Document, DocumentQuestion
from .settings import for_app, human_size
from .storage import Storage, StorageFull

#: Upload extensions and the kind each one is.
KINDS_BY_EXTENSION = {".txt": "text", ".md": "markdown", ".markdown": "markdown", ".pdf": "pdf"}
ACCEPTED = "plain text (.txt), Markdown (.md) and PDF (.pdf)"
#: Room for the multipart envelope and the CSRF field around the file itself.
FORM_OVERHEAD = 64 * 1024
LIST_LIMIT = 100
STATUS_LABELS = {
    "queued": "Queued",
    "delayed": "Delayed",
    "running": "Processing",
    "retrying": "Retrying",
    "done": "Done",
    "failed": "Failed",
}


class UploadRefused(Exception):
    """An upload that is not stored; ``status`` is the HTTP status of the answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _identity() -> Identity:
    identity = current_identity()
    assert identity is not None  # requires() let the request in
    return identity


def _document_or_404(document_id: str) -> Document:
    try:
        uuid.UUID(document_id)
    except ValueError:
        abort(404, description="There is no such document.")
    document = db.session.get(Document, document_id)
    identity = _identity()
    if document is None or (document.owner != identity.actor and not identity.is_operator):
        abort(404, description="There is no such document.")
    return document


def _render_index(error: str | None = None, status: int = 200) -> tuple[str, int]:
    identity = _identity()
    settings = for_app()
    rows = db.session.scalars(
        sa.select(Document)
        .where(Document.owner == identity.actor)
        .order_by(Document.created_at.desc())
        .limit(LIST_LIMIT)
    ).all()
    page = render_template(
        "documents/index.html",
        documents=rows,
        error=error,
        max_upload=human_size(settings.max_upload_bytes),
        max_age_days=f"{settings.max_age_days:g}",
        status_labels=STATUS_LABELS,
        in_flight=any(d.status in IN_FLIGHT for d in rows),
    )
    return page, status


@documents.get("")
@requires("viewer")
def index() -> tuple[str, int]:
    """The upload form and the list of the signed-in identity's documents."""
    return _render_index()


@documents.errorhandler(RequestEntityTooLarge)
def _too_large(exc: RequestEntityTooLarge) -> Any:
    limit = human_size(for_app().max_upload_bytes)
    message = f"The file is too large: uploads may be at most {limit}."
    if current_identity() is None:
        return message, 413
    return _render_index(message, 413)


@documents.post("")
@csrf.exempt  # checked below, once the body's size limit is in force
@requires("viewer")
def upload() -> Any:
    """Check and store an upload, then send its processing task (id = the document's)."""
    settings = for_app()
    request.max_content_length = settings.max_upload_bytes + FORM_OVERHEAD
    csrf.protect()  # reads the form: a body over the limit raises RequestEntityTooLarge
    try:
        document = _store_upload(settings)
    except UploadRefused as refused:
        return _render_index(refused.message, refused.status)
    state = send_or_delay(db.session, document.id, document.run)
    if state == "delayed":
        flash("Your document is stored, but processing is delayed: see below.", "warning")
    return redirect(url_for("documents.show", document_id=document.id))


def _store_upload(settings: Any) -> Document:
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise UploadRefused(400, "Choose a file to upload.")
    name = Path(upload.filename.replace("\\", "/")).name[:255] or "document"
    kind = KINDS_BY_EXTENSION.get(Path(name).suffix.lower())
    if kind is None:
        raise UploadRefused(
            415, f"“{name}” cannot be processed: only {ACCEPTED} files are accepted."
        )
    limit = settings.max_upload_bytes
    data = upload.stream.read(limit + 1)
    if len(data) > limit:
        raise UploadRefused(
            413, f"The file is too large: uploads may be at most {human_size(limit)}."
        )
    if not data.strip():
        raise UploadRefused(400, f"“{name}” is empty.")
    _check_content(name, kind, data)
    storage = Storage.from_settings(settings)
    try:
        storage.check_room(len(data))
    except StorageFull as exc:
        raise UploadRefused(507, str(exc)) from None
    document_id = str(uuid.uuid4())
    path = storage.upload_path(document_id, kind)
    storage.write(path, data)
    document = Document(
        id=document_id,
        owner=_identity().actor,
        original_name=name,
        kind=kind,
        size=len(data),
        status="queued",
        run=1,
        attempt=0,
        questions_done=0,
    )
    db.session.add(document)
    try:
        db.session.commit()
    except BaseException:
        db.session.rollback()
        path.unlink(missing_ok=True)
        raise
    return document


def _check_content(name: str, kind: str, data: bytes) -> None:
    """Refuse a file whose content is not what its name says."""
    if kind == "pdf":
        if b"%PDF-" not in data[:1024]:
            raise UploadRefused(
                415, f"“{name}” is not a PDF file: it does not start with the PDF signature."
            )
        return
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UploadRefused(
            415,
            f"“{name}” is not UTF-8 text: byte 0x{data[exc.start]:02x} at position "
            f"{exc.start} cannot be read. Save it as UTF-8 and upload it again.",
        ) from None
    if "\x00" in text:
        raise UploadRefused(415, f"“{name}” is not a text file: it contains NUL bytes.")


def _reconcile(document: Document) -> None:
    """If the task ended without telling the row (e.g. its process was killed at the hard
    time limit), take the outcome from taskcore's stored state."""
    if document.status not in IN_FLIGHT:
        return
    task_app = documents_task_app()
    try:
        status = task_app.status(document.id)
    except (redis.RedisError, OSError, TaskcoreError):  # no Redis, or states not stored
        return
    if status.state not in (State.FAILURE, State.DEAD, State.REVOKED):
        return
    error = status.error or {}
    message = error.get("message") or f"the task ended in state {status.state}"
    if error.get("type"):
        message = f"{error['type'].rsplit('.', 1)[-1]}: {message}"
    document.status = "failed"
    document.failed_step = document.step or "parse"
    document.error = message
    document.finished_at = utcnow()
    db.session.commit()


def documents_task_app() -> Any:
    from flask import current_app

    return current_app.extensions["taskcore"]


def progress_of(document: Document) -> dict[str, Any]:
    """Where a document is, for the page and its JSON endpoint."""
    order = [name for name, _ in STEPS]
    total = document.questions_total
    units = (total or 0) + 2
    step = document.step if document.step in order else None
    current = order.index(step) if step else -1
    status = document.status
    done_units = {"parse": 0, "answer": 1 + document.questions_done, "typeset": units - 1}
    percent = 100 if status == "done" else round(100 * done_units.get(step or "", 0) / units)
    steps = []
    for index, (name, label) in enumerate(STEPS):
        if status == "done" or index < current:
            state = "done"
        elif status == "failed" and name == (document.failed_step or step):
            state = "failed"
        elif index == current and status in ("running", "retrying"):
            state = "active" if status == "running" else "waiting"
        else:
            state = "pending"
        detail = ""
        if name == "answer" and total is not None:
            detail = f"{document.questions_done} of {total}"
        steps.append({"name": name, "label": label, "state": state, "detail": detail})
    return {
        "id": document.id,
        "status": status,
        "status_label": STATUS_LABELS[status],
        "step": step,
        "steps": steps,
        "questions_done": document.questions_done,
        "questions_total": total,
        "percent": percent,
        "message": _message(document),
        "error": document.error,
        "failed_step": document.failed_step,
        "attempt": document.attempt,
        "run": document.run,
        "finished": status not in IN_FLIGHT,
        "download_url": (
            url_for("documents.download", document_id=document.id) if status == "done" else None
        ),
    }


def _message(document: Document) -> str:
    total = document.questions_total or 0
    match document.status:
        case "queued":
            return "Waiting for a worker to pick it up."
        case "delayed":
            return document.error or "Processing is delayed."
        case "running" if document.step == "answer":
            return f"Answering question {min(document.questions_done + 1, total)} of {total}."
        case "running" if document.step == "typeset":
            return "Typesetting the PDF."
        case "running":
            return "Finding the questions."
        case "retrying":
            return f"Waiting to try again: {document.error}"
        case "done":
            return f"Done: {total} question{'s' if total != 1 else ''} answered."
        case _:
            step = STEP_LABELS.get(document.failed_step or "", "processing")
            return f"Failed at “{step}”: {document.error}"


@documents.get("/<document_id>")
@requires("viewer")
def show(document_id: str) -> str:
    """One document: live progress, the result, or what failed and a retry."""
    document = _document_or_404(document_id)
    _reconcile(document)
    questions = db.session.scalars(
        sa.select(DocumentQuestion)
        .where(DocumentQuestion.document_id == document.id)
        .order_by(DocumentQuestion.position)
    ).all()
    return render_template(
        "documents/show.html",
        document=document,
        progress=progress_of(document),
        questions=questions,
        size=human_size(document.size),
        result_size=human_size(document.result_size) if document.result_size else None,
    )


@documents.get("/<document_id>/status")
@requires("viewer")
def status(document_id: str) -> Response:
    """The document's progress as JSON (``documents.js`` polls it)."""
    document = _document_or_404(document_id)
    _reconcile(document)
    response = jsonify(progress_of(document))
    response.headers["Cache-Control"] = "no-store"
    return response


@documents.post("/<document_id>/retry")
@requires("viewer")
def retry(document_id: str) -> Response:
    """Send a failed or delayed document again (same task id; see ``jobs``)."""
    document = _document_or_404(document_id)
    _reconcile(document)
    outcome = restart(db.session, document.id)
    if outcome == "sent":
        flash("Processing started again.", "success")
    elif outcome == "delayed":
        flash("The task queue still cannot be reached: processing is delayed.", "warning")
    else:
        flash("This document is already being processed or is done.", "info")
    return redirect(url_for("documents.show", document_id=document.id))


@documents.get("/<document_id>/download")
@requires("viewer")
def download(document_id: str) -> Response:
    """The generated PDF, as an attachment named after the upload."""
    document = _document_or_404(document_id)
    if document.status != "done":
        abort(404, description="This document has no PDF yet.")
    path = Storage.from_settings(for_app()).result_path(document.id)
    if not path.is_file():
        abort(404, description="The PDF of this document is no longer stored.")
    stem = secure_filename(Path(document.original_name).stem) or "document"
    return send_file(
        path,
        mimetype="application/pdf",
        as_attachment=True,
        download_name=f"{stem}-answers.pdf",
        max_age=0,
    )
