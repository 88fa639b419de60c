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

from typing import Any

import sqlalchemy as sa
from flask import abort, flash, jsonify, redirect, render_template, request, send_file, url_for
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Response

from ..auth.access import Identity, current_identity, requires
from ..db import db
from ..errors import error_response
from ..security import csrf
from . import documents
from .jobs import restart, send_or_delay
from .models import IN_FLIGHT, Document, DocumentQuestion
from .settings import for_app, human_size
from .storage import Storage
from .uploads import (
    FORM_OVERHEAD,
    STATUS_LABELS,
    UploadRefused,
    pdf_name,
    progress_of,
    reconcile,
    store_upload,
    visible_document,
)

LIST_LIMIT = 100


def _identity() -> Identity:
    identity = current_identity()
    assert identity is not None  # requires() let the request in
    return identity


def _document_or_404(document_id: str) -> Document:
    identity = _identity()
    document = visible_document(document_id, identity.actor, identity.is_operator)
    if document is None:
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
        return error_response(413, message)
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
        document = store_upload(request.files.get("file"), _identity().actor, settings)
    except UploadRefused as refused:
        return _render_index(refused.message, refused.status)
    state = send_or_delay(db.session, document.id, document.run)
    if state == "delayed":
        flash("Your document is stored, but processing is delayed: see below.", "warning")
    return redirect(url_for("documents.show", document_id=document.id))


@documents.get("/<document_id>")
@requires("viewer")
def show(document_id: str) -> str:
    """One document: live progress, the result, or what failed and a retry."""
    document = _document_or_404(document_id)
    reconcile(document)
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
    reconcile(document)
    response = jsonify(progress_of(document))
    response.headers["Cache-Control"] = "no-store"
    return response


@documents.post("/<document_id>/retry")
@requires("viewer")
def retry(document_id: str) -> Response:
    """Send a failed or delayed document again (same task id; see ``jobs``)."""
    document = _document_or_404(document_id)
    reconcile(document)
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
    return send_file(
        path,
        mimetype="application/pdf",
        as_attachment=True,
        download_name=pdf_name(document),
        max_age=0,
    )
