"""Contract reports: exports (CSV or XLSX, made in the background) and paged searches.

Each call sends one job, or finds the same job (same kind, same filter) still queued or
running and returns it (``new: false``), as the page's buttons do. Exports and searches
are shared by everyone who may read reports, as on the pages.
"""

from __future__ import annotations

from typing import Any

from flask import send_file, url_for

from ..auth.access import current_identity
from ..db import db
from ..reports import actions
from ..reports import search as searching
from ..reports.filters import FilterError, describe, parse_filters
from ..reports.models import DONE, FAILED, ReportExport
from ..reports.settings import settings
from . import api
from .endpoint import Refused, endpoint
from .errors import Conflict, NotFound
from .schemas_workloads import (
    JOB_ID,
    ExportBodySchema,
    ExportSchema,
    JobRefSchema,
    SearchBodySchema,
    SearchPageSchema,
    SearchQuerySchema,
)

TAG = "reports"


def _filters(given: dict[str, Any]) -> dict[str, Any]:
    """The canonical filter; 422 with the page's messages by field."""
    try:
        return parse_filters(given)
    except FilterError as exc:
        fields = {"filters": {name: [text] for name, text in exc.errors.items()}}
        raise Refused(422, "invalid filter: nothing was started", fields) from None


def _started(start: Any, *args: Any) -> tuple[str, bool]:
    try:
        return start(*args)
    except Exception:
        db.session.rollback()  # nothing was sent: nothing is kept (the error says why)
        raise


def _job(task_id: str) -> dict[str, Any]:
    job = actions.job_state(task_id)
    return {
        "phase": job["phase"],
        "state": job["state"],
        "progress": job.get("progress"),
        "queue": job.get("queue"),
        "error": job.get("error"),
    }


@api.post("/reports/exports")
@endpoint(
    "Export the contracts of a filter to CSV or XLSX",
    tag=TAG,
    body=ExportBodySchema,
    response=JobRefSchema,
    status=202,
    errors=(422, 503),
)
def start_export(body: dict[str, Any]) -> Any:
    """202 with the export's id. The same export (format and filter) still queued or
    running is returned instead of a second one (``new: false``). Broker or Redis down:
    503 and nothing is started."""
    filters = _filters(body["filters"])
    identity = current_identity()
    actor = identity.name if identity is not None else ""
    export_id, new = _started(actions.start_export, body["format"], filters, actor)
    return {
        "id": export_id,
        "new": new,
        "status_url": url_for("api_v1.export_status", export_id=export_id),
    }


@api.get("/reports/exports/<export_id>")
@endpoint(
    "An export: waiting, its progress, then its file",
    tag=TAG,
    response=ExportSchema,
    errors=(404, 503),
    path_patterns={"export_id": JOB_ID},
)
def export_status(export_id: str) -> Any:
    """``phase`` waiting (with the queue's backlog), running (with ``progress``), done
    (``file_url``) or failed (``error``). Exports are deleted after a while (404)."""
    job = _job(export_id)  # before the row: a job that ends after the row was read says done
    export = db.session.get(ReportExport, export_id)
    if export is None:
        raise NotFound("No such export (exports are deleted after a while).")
    if export.status == DONE:
        job["phase"] = "done"
    elif export.status == FAILED:
        job["phase"] = "failed"
        job["error"] = job["error"] or export.error or "the export failed"
    present = bool(export.file_name and (settings().export_dir / export.file_name).is_file())
    columns = ("id", "format", "filters", "status", "total_rows", "row_count", "size_bytes")
    columns += ("created_by", "created_at", "finished_at")
    return {
        **job,
        **{name: getattr(export, name) for name in columns},
        "description": describe(export.filters or {}),
        "file_url": (
            url_for("api_v1.export_file", export_id=export.id)
            if export.status == DONE and present
            else None
        ),
    }


@api.get("/reports/exports/<export_id>/file")
@endpoint(
    "An export's file",
    tag=TAG,
    produces=tuple(actions.MIMETYPES.values()),
    errors=(404, 409, 503),
    path_patterns={"export_id": JOB_ID},
)
def export_file(export_id: str) -> Any:
    """The CSV or XLSX file; 409 while the export is not finished, 404 once deleted."""
    export = db.session.get(ReportExport, export_id)
    if export is None:
        raise NotFound("No such export (exports are deleted after a while).")
    if export.status != DONE or not export.file_name:
        raise Conflict("This export is not finished yet.")
    path = settings().export_dir / export.file_name
    if not path.is_file():
        raise NotFound("This export's file was deleted: export again.")
    return send_file(
        path,
        mimetype=actions.MIMETYPES[export.format],
        as_attachment=True,
        download_name=actions.download_name(export),
    )


@api.post("/reports/searches")
@endpoint(
    "Search the contracts of a filter",
    tag=TAG,
    body=SearchBodySchema,
    response=JobRefSchema,
    status=202,
    errors=(422, 503),
)
def start_search(body: dict[str, Any]) -> Any:
    """202 with the search's id; its results are kept for a while (``search_ttl``). The
    same search still running is returned instead (``new: false``)."""
    filters = _filters(body["filters"])
    search_id, new = _started(actions.start_search, filters)
    return {
        "id": search_id,
        "new": new,
        "status_url": url_for("api_v1.search_results", search_id=search_id),
    }


@api.get("/reports/searches/<search_id>")
@endpoint(
    "A search: pending while it runs, then a page of its results",
    tag=TAG,
    query=SearchQuerySchema,
    response=SearchPageSchema,
    errors=(404, 503),
    path_patterns={"search_id": JOB_ID},
)
def search_results(search_id: str, query: dict[str, Any]) -> Any:
    """``pending`` with its ``job`` until the results are stored, then 50 contracts a
    page (``?page=N``, past the last page: the last page). 404 once it expired."""
    app = actions.task_app()
    found = searching.summary(app, search_id)
    if found is None:
        raise NotFound("No such search: it expired or never existed. Search again.")
    filters = found.get("filters") or {}
    answer: dict[str, Any] = {
        "id": search_id,
        "filters": filters,
        "description": describe(filters),
        "pending": bool(found.get("pending")),
        "job": None,
        "total": found.get("total"),
        "stored": found.get("stored"),
        "computed_at": found.get("computed_at"),
        "page": 1,
        "pages": 0,
        "page_size": searching.PAGE_SIZE,
        "contracts": [],
    }
    if answer["pending"]:
        answer["job"] = _job(search_id)
        return answer
    pages = max(1, -(-found["stored"] // searching.PAGE_SIZE))
    page = min(query["page"], pages)
    rows = searching.load_rows(db.session.connection(), searching.page_ids(app, search_id, page))
    answer.update(page=page, pages=pages)
    answer["contracts"] = [
        {
            **{k: getattr(row, k) for k in ("id", "reference", "title", "agency", "supplier")},
            "category": row.category,
            "amount": f"{row.amount:.2f}",
            "signed_on": row.signed_on.isoformat(),
        }
        for row in rows
    ]
    return answer
