"""Uploads and progress of documents, shared by the pages and the JSON API.

``store_upload`` checks a file (extension, size, PDF signature or UTF-8 text, room in the
store) and stores it with its ``Document`` row; ``reconcile`` takes the outcome of a task
that ended without telling the row from taskcore's stored state; ``progress_of`` says
where a document is (what the page shows and both JSON endpoints return).
"""

from __future__ import annotations

import unicodedata
import uuid
from pathlib import Path, PurePosixPath
from typing import Any

import redis
from flask import current_app, url_for
from werkzeug.datastructures import FileStorage
from werkzeug.utils import secure_filename

from taskcore.errors import TaskcoreError
from taskcore.states import State

from ..db import db, utcnow
from .models import IN_FLIGHT, STEP_LABELS, STEPS, Document
from .settings import DocumentSettings, human_size
from .storage import Storage, StorageFull

#: Upload extensions and the kind each one is.
KINDS_BY_EXTENSION = {".txt": "text", ".md": "markdown", ".markdown": "markdown", ".pdf": "pdf"}
ACCEPTED = "plain text (.txt), Markdown (.md) and PDF (.pdf)"
#: Room for the multipart envelope and the CSRF field around the file itself.
FORM_OVERHEAD = 64 * 1024
#: The longest name an upload is stored and shown under (the column's size).
MAX_NAME = 255
#: Character categories left out of a file's name: controls (NUL, which PostgreSQL text
#: cannot hold, escape sequences, line breaks), invisible formatting (the bidirectional
#: override that shows "evil\u202etxt.exe" as "evilexe.txt"), line and paragraph
#: separators, lone surrogates.
_HIDDEN = {"Cc", "Cf", "Cs", "Zl", "Zp"}
#: Zero-width (non-)joiners are formatting characters that some scripts need in words.
_JOINERS = {"\u200c", "\u200d"}
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


def store_upload(upload: FileStorage | None, owner: str, settings: DocumentSettings) -> Document:
    """Check an uploaded file (name, size, type, content), store it and its ``Document``
    row (status ``queued``, committed); UploadRefused says why not, with its HTTP status.
    Nothing is sent here: see ``jobs.send_or_delay``."""
    if upload is None or not upload.filename:
        raise UploadRefused(400, "Choose a file to upload.")
    name = display_name(upload.filename)
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
    check_content(name, kind, data)
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
        owner=owner,
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


def display_name(filename: str) -> str:
    """The name an upload is stored and shown under (never a path: files are named by
    the document's id): the last part of what the browser sent, any folders (Windows ones
    too) left out, in NFC, without control or invisible formatting characters, at most
    ``MAX_NAME`` characters with its extension kept; ``document`` if nothing is left."""
    text = unicodedata.normalize("NFC", filename)
    text = "".join(c for c in text if c in _JOINERS or unicodedata.category(c) not in _HIDDEN)
    name = PurePosixPath(text.replace("\\", "/")).name.strip()
    if len(name) > MAX_NAME:
        stem, dot, suffix = name.rpartition(".")
        if dot and len(suffix) <= 10:
            name = f"{stem[: MAX_NAME - len(suffix) - 1].rstrip()}.{suffix}"
        else:
            name = name[:MAX_NAME]
    return name or "document"


def visible_document(document_id: str, actor: str, is_operator: bool) -> Document | None:
    """The document if ``actor`` uploaded it or is an operator; None otherwise (to anyone
    else a document does not exist), and for an id that is not a UUID."""
    try:
        uuid.UUID(document_id)
    except ValueError:
        return None
    document = db.session.get(Document, document_id)
    if document is None or (document.owner != actor and not is_operator):
        return None
    return document


def pdf_path(document: Document, settings: DocumentSettings) -> Path | None:
    """Where the document's generated PDF is; None if it is not done or no longer stored."""
    if document.status != "done":
        return None
    path = Storage.from_settings(settings).result_path(document.id)
    return path if path.is_file() else None


def pdf_name(document: Document) -> str:
    """The download name of a document's PDF: ``<upload's stem>-answers.pdf``."""
    stem = secure_filename(Path(document.original_name).stem) or "document"
    return f"{stem}-answers.pdf"


def check_content(name: str, kind: str, data: bytes) -> None:
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


def reconcile(document: Document) -> None:
    """If the task ended without telling the row (e.g. its process was killed at the hard
    time limit), take the outcome from taskcore's stored state."""
    if document.status not in IN_FLIGHT:
        return
    task_app = current_app.extensions["taskcore"]
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
