"""Starting report jobs and following them, shared by the pages and the JSON API.

Each ``start_*`` sends one job over an already parsed filter, or finds the same one
still queued or running (``jobs.send_once``), and returns ``(job id, whether it is
new)``. They raise taskcore's errors (broker) or a Redis error when nothing could be
sent; then nothing was stored either. ``job_state`` says where a job is.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from flask import current_app

from taskcore import TaskApp
from taskcore.states import State

from ..db import db, utcnow
from ..taskapp import HIGH, LOW
from .filters import filter_hash
from .jobs import aggregates_job_key, search_key, send_once
from .models import QUEUED, ReportExport, upsert_export
from .settings import settings
from .tasks import compute_aggregates, export_contracts, search_contracts

#: The content type of each export format.
MIMETYPES = {
    "csv": "text/csv",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
WAITING = {State.PENDING, State.RECEIVED, State.RETRY}
BROKEN = {State.FAILURE, State.DEAD, State.REVOKED}


def task_app() -> TaskApp:
    return current_app.extensions["taskcore"]


def start_export(fmt: str, filters: dict[str, Any], created_by: str) -> tuple[str, bool]:
    """Send an export of ``filters`` to ``fmt`` (csv, xlsx) and store its row, or find the
    same export running; returns (the export's id, whether it is a new one)."""
    export_id = uuid.uuid4().hex
    handle, new = send_once(
        export_contracts,
        (export_id, fmt, filters),
        kind=f"export-{fmt}",
        filters=filters,
        task_id=export_id,
        priority=LOW,
    )
    if new:
        values = {
            "id": export_id,
            "format": fmt,
            "filters": filters,
            "filter_hash": filter_hash(filters),
            "status": QUEUED,
            "created_by": created_by,
            "created_at": utcnow(),
        }
        upsert_export(db.session.connection(), values, ("created_by",))
        db.session.commit()
    return handle.id, new


def start_aggregates(filters: dict[str, Any]) -> tuple[str, bool]:
    """Send the aggregates of ``filters`` (or find them being computed) and note the job
    as the one the filter's aggregates page follows."""
    app = task_app()
    handle, new = send_once(
        compute_aggregates,
        (filters,),
        kind="aggregates",
        filters=filters,
        task_id=uuid.uuid4().hex,
        priority=LOW,
    )
    app.redis.set(aggregates_job_key(app, filters), handle.id, ex=settings().cache_ttl)
    return handle.id, new


def start_search(filters: dict[str, Any]) -> tuple[str, bool]:
    """Send a search of ``filters`` (or find the same one running); its summary says
    ``pending`` until the task stores the results."""
    app = task_app()
    search_id = uuid.uuid4().hex
    handle, new = send_once(
        search_contracts,
        (search_id, filters),
        kind="search",
        filters=filters,
        task_id=search_id,
        priority=HIGH,
    )
    if new:
        pending = {"id": search_id, "filters": filters, "pending": True}
        ttl = settings().search_ttl
        app.redis.set(search_key(app, search_id), json.dumps(pending), ex=ttl, nx=True)
    return handle.id, new


def download_name(export: ReportExport) -> str:
    """``contracts-<finished, UTC>-<id's first 8>.<format>``."""
    stamp = (export.finished_at or export.created_at).strftime("%Y%m%d-%H%M%S")
    return f"contracts-{stamp}-{export.id[:8]}.{export.format}"


def queue_wait() -> dict[str, int] | None:
    """The ``reports`` queue's backlog (ready messages, consumers), or None if unknown."""
    try:
        ready, consumers = current_app.extensions["taskcore_ops"].queue_depth("reports")
    except Exception:  # an estimate only: the page shows the spinner anyway
        return None
    return {"ready": ready, "consumers": consumers}


def job_state(task_id: str) -> dict[str, Any]:
    """Where a job is: phase (waiting, running, done, failed), progress, backlog, error."""
    status = task_app().status(task_id)
    state = status.state
    if state == State.SUCCESS:
        phase = "done"
    elif state in BROKEN:
        phase = "failed"
    elif state in WAITING:
        phase = "waiting"
    else:
        phase = "running"
    job: dict[str, Any] = {"id": task_id, "state": str(state), "phase": phase, "status": status}
    progress = status.progress or {}
    if progress:
        total = progress.get("total")
        current = progress.get("current") or 0
        job["progress"] = {
            "current": int(current),
            "total": int(total) if total is not None else None,
            "percent": int(100 * current / total) if total else None,
            "message": progress.get("message", ""),
        }
    if phase == "waiting":
        job["queue"] = queue_wait()
    if phase == "failed":
        error = status.error or {}
        job["error"] = error.get("message") or str(state)
    return job
