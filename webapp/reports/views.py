"""Contract reports pages.

``/reports`` holds the filter and its four actions (export CSV, export XLSX, compute
aggregates, search) and the recent exports; each action sends one background job (or
finds the one already running for the same filter) and redirects to a page that
follows it: a spinner and the queue's backlog while it waits, progress while it runs,
the result when done. Pages refresh themselves in place (``data-live``, console.js).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import redis
import sqlalchemy as sa
from flask import abort, current_app, flash, redirect, render_template, request, send_file, url_for
from werkzeug.wrappers import Response

from taskcore import TaskApp, TaskcoreError

from ..auth.access import current_identity, requires
from ..db import db
from . import actions, reports
from . import search as searching
from .filters import FIELDS, FilterError, describe, parse_filters, query_string
from .jobs import aggregates_job_key, aggregates_key, read_json
from .models import DONE, FAILED, Contract, ReportExport
from .settings import settings

ACTIONS = {
    "export_csv": "Export CSV",
    "export_xlsx": "Export XLSX",
    "aggregates": "Compute aggregates",
    "search": "Search",
}
RECENT_EXPORTS = 20


def task_app() -> TaskApp:
    return current_app.extensions["taskcore"]


@reports.errorhandler(TaskcoreError)
@reports.errorhandler(redis.RedisError)
@reports.errorhandler(sa.exc.SQLAlchemyError)
def _unavailable(exc: Exception) -> Any:
    """A service is down: say which, answer 503, never a 500."""
    with contextlib.suppress(sa.exc.SQLAlchemyError):  # the database may be what is down
        db.session.rollback()
    return render_template("reports/unavailable.html", reason=_service_message(exc)), 503


def _service_message(exc: Exception) -> str:
    if isinstance(exc, redis.RedisError):
        return "Redis (job states and cached results) cannot be reached."
    if isinstance(exc, sa.exc.SQLAlchemyError):
        return "The database cannot be reached."
    return f"The task queue (RabbitMQ) cannot be reached: {exc}"


# -- the filter and its actions ------------------------------------------------------------


#: (database URL) -> (monotonic time, choices, contract count): the form's lists cost a
#: scan of the table, so they are kept for CHOICES_TTL seconds per process.
_choices_cache: dict[str, tuple[float, dict[str, list[str]], int]] = {}
CHOICES_TTL = 30.0


def _form_data() -> tuple[dict[str, list[str]], int]:
    """The agencies and categories there are, and how many contracts (cached briefly)."""
    key = str(db.engine.url)
    cached = _choices_cache.get(key)
    if cached is not None and time.monotonic() - cached[0] < CHOICES_TTL:
        return cached[1], cached[2]
    choices = _choices()
    total = db.session.execute(sa.select(sa.func.count()).select_from(Contract.__table__)).scalar()
    _choices_cache[key] = (time.monotonic(), choices, total or 0)
    return choices, total or 0


def _choices() -> dict[str, list[str]]:
    table = Contract.__table__
    return {
        name: list(
            db.session.execute(
                sa.select(table.c[name]).distinct().order_by(table.c[name])
            ).scalars()
        )
        for name in ("agency", "category")
    }


def _index(values: dict[str, Any], errors: dict[str, str] | None = None, status: int = 200) -> Any:
    table = ReportExport.__table__
    exports = db.session.execute(
        sa.select(table).order_by(table.c.created_at.desc()).limit(RECENT_EXPORTS)
    ).all()
    choices, total = _form_data()
    page = render_template(
        "reports/index.html",
        values=values,
        errors=errors or {},
        choices=choices,
        exports=exports,
        contracts=total,
        actions=ACTIONS,
        describe=describe,
    )
    return page, status


@reports.get("")
@reports.get("/")
@requires("viewer")
def index() -> Any:
    """The filter form (prefilled from the query string) and the recent exports."""
    values = {name: request.args.get(name, "") for name in FIELDS}
    return _index(values)


@reports.post("/run")
@requires("viewer")
def run() -> Any:
    """Check the filter, then send the chosen job (or find the same one running)."""
    values = {name: request.form.get(name, "") for name in FIELDS}
    action = request.form.get("action", "")
    if action not in ACTIONS:
        return _index(values, {"action": "Choose one of the actions below."}, 400)
    try:
        filters = parse_filters(values)
    except FilterError as exc:
        return _index(values, exc.errors, 400)
    try:
        if action.startswith("export_"):
            return _start_export(action.removeprefix("export_"), filters)
        if action == "aggregates":
            return _start_aggregates(filters)
        return _start_search(filters)
    except (TaskcoreError, redis.RedisError) as exc:
        db.session.rollback()
        message = f"{_service_message(exc)} Nothing was started; try again in a moment."
        return _index(values, {"service": message}, 503)


def _actor() -> str:
    identity = current_identity()
    return identity.name if identity is not None else ""


def _start_export(fmt: str, filters: dict[str, Any]) -> Response:
    export_id, new = actions.start_export(fmt, filters, _actor())
    if new:
        flash(f"Export of {describe(filters)} to {fmt.upper()} queued.", "success")
    else:
        flash(
            f"The same {fmt.upper()} export is already running: here it is "
            "(no second one was started).",
            "info",
        )
    return redirect(url_for("reports.export_detail", export_id=export_id))


def _start_aggregates(filters: dict[str, Any]) -> Response:
    _, new = actions.start_aggregates(filters)
    if not new:
        flash("These aggregates are already being computed: following that job.", "info")
    return redirect(url_for("reports.aggregates_page", **query_string(filters)))


def _start_search(filters: dict[str, Any]) -> Response:
    search_id, new = actions.start_search(filters)
    if not new:
        flash("The same search is already running: following it.", "info")
    return redirect(url_for("reports.search_page", search_id=search_id))


# -- following a job -----------------------------------------------------------------------


@reports.get("/exports/<export_id>")
@requires("viewer")
def export_detail(export_id: str) -> Any:
    """One export: spinner and backlog while it waits, progress, then the download."""
    job = actions.job_state(export_id)  # before the row (see the aggregates page)
    export = db.session.get(ReportExport, export_id)
    if export is None:
        abort(404, description="No such export (exports are deleted after a while).")
    if export.status == DONE:
        job["phase"] = "done"
    elif export.status == FAILED:
        job["phase"] = "failed"
        job.setdefault("error", export.error or "the export failed")
    file_present = bool(export.file_name and (settings().export_dir / export.file_name).is_file())
    return render_template(
        "reports/export.html", export=export, job=job, file_present=file_present, describe=describe
    )


@reports.get("/exports/<export_id>/download")
@requires("viewer")
def download_export(export_id: str) -> Any:
    """The export's file, once it is done."""
    export = db.session.get(ReportExport, export_id)
    if export is None:
        abort(404, description="No such export (exports are deleted after a while).")
    if export.status != DONE or not export.file_name:
        abort(409, description="This export is not finished yet.")
    path = settings().export_dir / export.file_name
    if not path.is_file():
        abort(404, description="This export's file was deleted: export again from /reports.")
    return send_file(
        path,
        mimetype=actions.MIMETYPES[export.format],
        as_attachment=True,
        download_name=actions.download_name(export),
    )


@reports.get("/aggregates")
@requires("viewer")
def aggregates_page() -> Any:
    """The cached aggregates of a filter; a spinner while they are being computed."""
    values = {name: request.args.get(name, "") for name in FIELDS}
    try:
        filters = parse_filters(values)
    except FilterError as exc:
        return _index(values, exc.errors, 400)
    app = task_app()
    # The job's state first: a job that finished after the cache was read would show
    # "not computed yet" (the task fills the cache before it succeeds).
    job_id = app.redis.get(aggregates_job_key(app, filters))
    job = actions.job_state(job_id.decode()) if job_id else None
    cached = read_json(app, aggregates_key(app, filters))
    busy = job is not None and job["phase"] in ("waiting", "running")
    return render_template(
        "reports/aggregates.html",
        filters=filters,
        values=values,
        back=query_string(filters),
        cached=cached,
        job=job,
        busy=busy,
        describe=describe,
        ttl=settings().cache_ttl,
    )


@reports.get("/searches/<search_id>")
@requires("viewer")
def search_page(search_id: str) -> Any:
    """A search's results, 50 a page (``?page=N``); a spinner while it runs."""
    app = task_app()
    found = searching.summary(app, search_id)
    if found is None:
        abort(404, description="No such search: it expired or never existed. Search again.")
    try:
        page = max(1, int(request.args.get("page", "1")))
    except ValueError:
        page = 1
    job = None
    rows: list[Any] = []
    pages = 0
    if found.get("pending"):
        job = actions.job_state(search_id)
    else:
        pages = max(1, -(-found["stored"] // searching.PAGE_SIZE))
        page = min(page, pages)
        ids = searching.page_ids(app, search_id, page)
        rows = searching.load_rows(db.session.connection(), ids)
    return render_template(
        "reports/search.html",
        found=found,
        job=job,
        rows=rows,
        page=page,
        pages=pages,
        page_size=searching.PAGE_SIZE,
        describe=describe,
        query_string=query_string,
    )


@reports.app_template_filter("reports_money")
def _money(value: Any) -> str:
    try:
        return f"{float(value):,.2f}"
    except (TypeError, ValueError):
        return "\u2013"
