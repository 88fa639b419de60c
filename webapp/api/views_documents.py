"""Documents: upload a question paper (answered and typeset as a PDF in the background),
follow its progress, download the PDF.

A document is visible to whoever uploaded it (a user, or ``token:<name>``) and to
operators; to anyone else it does not exist (404), as on the pages.
"""

from __future__ import annotations

from typing import Any

from flask import request, send_file, url_for

from ..auth.access import current_identity
from ..db import db
from ..documents.jobs import send_or_delay
from ..documents.models import Document
from ..documents.settings import for_app, human_size
from ..documents.uploads import (
    FORM_OVERHEAD,
    UploadRefused,
    pdf_name,
    pdf_path,
    progress_of,
    reconcile,
    store_upload,
    visible_document,
)
from . import api
from .endpoint import Refused, endpoint, error_reply
from .errors import Conflict, NotFound
from .schemas_workloads import UUID_PATTERN, DocumentRefSchema, DocumentSchema, UploadFormSchema

TAG = "documents"
DOCUMENT_ID = {"document_id": UUID_PATTERN}


def _upload_limit() -> int:
    return for_app().max_upload_bytes + FORM_OVERHEAD


def _too_large() -> str:
    return (
        f"The file is too large: uploads may be at most {human_size(for_app().max_upload_bytes)}."
    )


def _document(document_id: str) -> Document:
    identity = current_identity()
    assert identity is not None  # endpoint() let the call in
    document = visible_document(document_id, identity.actor, identity.is_operator)
    if document is None:
        raise NotFound("There is no such document.")
    return document


def _status_url(document_id: str) -> str:
    return url_for("api_v1.document_status", document_id=document_id)


@api.post("/documents")
@endpoint(
    "Upload a question paper to answer",
    tag=TAG,
    form=UploadFormSchema,
    response=DocumentRefSchema,
    status=202,
    errors=(415, 503, 507),
    max_body=_upload_limit,
    too_large=_too_large,
)
def upload_document() -> Any:
    """Send the file as ``file`` in a multipart form: plain text (.txt), Markdown (.md)
    or PDF (.pdf), at most ``WEBAPP_DOCUMENTS_MAX_UPLOAD_BYTES``. Refused as the upload
    page refuses it: no file or an empty one (400), another type or content that is not
    what its name says (415), too large (413), no room left (507). 202 once it is stored
    and its processing queued. Broker down: 503, but the document is kept (status
    ``delayed``, sent again every few minutes; ``Location`` says where to follow it)."""
    identity = current_identity()
    assert identity is not None
    try:
        document = store_upload(request.files.get("file"), identity.actor, for_app())
    except UploadRefused as refused:
        raise Refused(refused.status, refused.message) from None
    status = send_or_delay(db.session, document.id, document.run)
    if status == "delayed":
        reply = error_reply(
            503,
            f"the task queue is unavailable: the document is stored ({document.id}) but "
            "its processing could not be queued; it is sent again every few minutes",
        )
        reply.headers["Location"] = _status_url(document.id)
        return reply
    return {"id": document.id, "status": status, "status_url": _status_url(document.id)}


@api.get("/documents/<document_id>")
@endpoint(
    "A document's status, progress or error",
    tag=TAG,
    response=DocumentSchema,
    errors=(404, 503),
    path_patterns=DOCUMENT_ID,
)
def document_status(document_id: str) -> Any:
    """Its status (queued, delayed, running, retrying, done, failed), the step and how
    many questions are answered; ``pdf_url`` once done, ``error`` if it failed."""
    document = _document(document_id)
    reconcile(document)
    progress = progress_of(document)
    progress.pop("download_url", None)
    done = document.status == "done"
    return {
        **progress,
        "name": document.original_name,
        "kind": document.kind,
        "size": document.size,
        "created_at": document.created_at,
        "finished_at": document.finished_at,
        "pdf_url": url_for("api_v1.document_pdf", document_id=document.id) if done else None,
    }


@api.get("/documents/<document_id>/pdf")
@endpoint(
    "A document's answered PDF",
    tag=TAG,
    produces=("application/pdf",),
    errors=(404, 409, 503),
    path_patterns=DOCUMENT_ID,
)
def document_pdf(document_id: str) -> Any:
    """409 while it is not done (or if it failed); 404 once its files were cleaned up."""
    document = _document(document_id)
    reconcile(document)
    if document.status != "done":
        raise Conflict(f"This document has no PDF: it is {document.status}.")
    path = pdf_path(document, for_app())
    if path is None:
        raise NotFound("The PDF of this document is no longer stored.")
    return send_file(
        path,
        mimetype="application/pdf",
        as_attachment=True,
        download_name=pdf_name(document),
        max_age=0,
    )
