"""Contract report tasks (on webapp.taskapp.app; queues by webapp.taskapp.ROUTES).

Every task here goes to the ``reports`` queue (declared with priorities): the views
send searches with ``priority=HIGH`` (someone is waiting for the first page) and
exports and aggregates with ``priority=LOW``. The database is reached with
``task_session``/``task_engine`` (the worker's own engine) and settings come from the
environment (``webapp.reports.settings``), never from the Flask config.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from taskcore import current_task

from ..db import task_engine, utcnow
from ..taskapp import app
from . import aggregates, exports, search
from .filters import filter_hash, parse_filters
from .jobs import JOB_WINDOW
from .models import DONE, FAILED, RUNNING, ReportExport, upsert_export
from .settings import settings

log = logging.getLogger(__name__)


class _Ticker:
    """Reports progress at most every ``every`` seconds (and always at the end)."""

    def __init__(self, every: float = 0.25) -> None:
        self.every = every
        self.last = 0.0

    def __call__(self, done: int, total: int | None, message: str = "rows") -> None:
        now = time.monotonic()
        if now - self.last >= self.every or (total is not None and done >= total):
            self.last = now
            current_task.progress(done, total, message)


@app.task(max_retries=0, soft_time_limit=1500, time_limit=1620, idempotency_window=JOB_WINDOW)
def export_contracts(export_id: str, fmt: str, filters: dict[str, Any]) -> dict[str, Any]:
    """Write the contracts matching ``filters`` to ``<WEBAPP_EXPORT_DIR>/contracts-<id>.<fmt>``."""
    filters = parse_filters(filters)
    engine = task_engine()
    name = exports.file_name(export_id, fmt)
    base = {
        "id": export_id,
        "format": fmt,
        "filters": filters,
        "filter_hash": filter_hash(filters),
        "created_by": "",
        "created_at": utcnow(),
    }
    with engine.begin() as connection:
        upsert_export(connection, {**base, "status": RUNNING}, ("status",))
    ticker = _Ticker()
    try:
        result = exports.write_export(
            engine,
            settings().export_dir / name,
            fmt,
            filters,
            progress=ticker,
            check=current_task.check,
        )
    except BaseException as exc:
        with engine.begin() as connection:
            upsert_export(
                connection,
                {**base, "status": FAILED, "error": f"{type(exc).__name__}: {exc}"[:2000],
                 "finished_at": utcnow()},
                ("status", "error", "finished_at"),
            )  # fmt: skip
        raise
    with engine.begin() as connection:
        upsert_export(
            connection,
            {**base, "status": DONE, "total_rows": result.rows, "row_count": result.rows,
             "file_name": name, "size_bytes": result.size_bytes, "finished_at": utcnow()},
            ("status", "total_rows", "row_count", "file_name", "size_bytes", "finished_at"),
        )  # fmt: skip
    current_task.progress(result.rows, result.rows, "rows written")
    return {"rows": result.rows, "file": name, "size_bytes": result.size_bytes}


@app.task(max_retries=1, soft_time_limit=600, time_limit=660, idempotency_window=JOB_WINDOW)
def compute_aggregates(filters: dict[str, Any]) -> dict[str, Any]:
    """Count, sum and average amounts by agency, month and category; cache them in Redis."""
    filters = parse_filters(filters)
    current_task.progress(0, 1, "computing")
    with task_engine().connect() as connection:
        value = aggregates.compute(connection, filters)
    key = aggregates.store(app, filters, value, settings().cache_ttl)
    current_task.progress(1, 1, "cached")
    return {"key": key, "computed_at": value["computed_at"], "count": value["total"]["count"]}


@app.task(max_retries=1, soft_time_limit=300, time_limit=360, idempotency_window=JOB_WINDOW)
def search_contracts(search_id: str, filters: dict[str, Any]) -> dict[str, Any]:
    """Find every contract matching ``filters``; store the ids for paged reading."""
    filters = parse_filters(filters)
    ticker = _Ticker()
    with task_engine().connect() as connection:
        found = search.run_search(
            connection,
            app,
            search_id,
            filters,
            settings().search_ttl,
            progress=lambda done, total: (current_task.check(), ticker(done, total, "matches")),
        )
    return {"total": found["total"], "stored": found["stored"]}


@app.task(max_retries=2)
def delete_old_exports(max_age_days: float | None = None) -> dict[str, int]:
    """Delete exports (rows and files) older than ``WEBAPP_EXPORT_MAX_AGE_DAYS`` (default 7),
    and stray files in the export directory older than that."""
    config = settings()
    age = timedelta(days=max_age_days if max_age_days is not None else config.export_max_age_days)
    cutoff = utcnow() - age
    table = ReportExport.__table__
    deleted_rows = deleted_files = 0
    with task_engine().begin() as connection:
        old = connection.execute(
            sa.select(table.c.id, table.c.file_name).where(table.c.created_at < cutoff)
        ).all()
        for row in old:
            if row.file_name and (config.export_dir / row.file_name).exists():
                (config.export_dir / row.file_name).unlink(missing_ok=True)
                deleted_files += 1
        if old:
            connection.execute(table.delete().where(table.c.id.in_([row.id for row in old])))
            deleted_rows = len(old)
    if config.export_dir.is_dir():  # files whose rows are gone (or never were written)
        limit = cutoff.timestamp()
        for path in config.export_dir.glob("contracts-*"):
            if path.is_file() and path.stat().st_mtime < limit:
                path.unlink(missing_ok=True)
                deleted_files += 1
    log.info("deleted %d old exports and %d files", deleted_rows, deleted_files)
    return {"exports": deleted_rows, "files": deleted_files}


# Daily at 03:15 UTC (`taskcore beat -A webapp.tasks:app`; shown on /schedules).
app.schedule("reports-delete-old-exports", delete_old_exports, cron="15 3 * * *")
