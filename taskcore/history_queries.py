"""Reading task history: the task list, one task's run and timeline, per-task performance.

``history`` owns the tables and writes them; this module only reads. The task
list pages with a keyset on (updated_at, task_id), newest first, so page 1000
costs what page 1 costs; the cursor is opaque to callers. Performance
percentiles are computed by PostgreSQL (``percentile_cont``); only a database
without that function (SQLite on a laptop) has them computed here, from the
two timing columns.
"""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from .errors import ConfigurationError
from .history import task_events, task_runs

#: States that count as failed in a failure rate.
FAILED_STATES = ("FAILURE", "DEAD")
#: The percentiles ``performance`` reports, as fractions.
PERCENTILES = (0.5, 0.95, 0.99)
_LIKE_ESCAPE = "\\"


def ping(engine: sa.Engine) -> None:
    """Raise SQLAlchemyError unless the database answers."""
    with engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))


# -- the task list -------------------------------------------------------------


def query_runs(
    engine: sa.Engine,
    *,
    state: str | None = None,
    task: str | None = None,
    queue: str | None = None,
    worker: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    search: str | None = None,
    limit: int = 50,
    after: str | None = None,
) -> dict[str, Any]:
    """One page of task runs, newest first: ``{"runs": [...], "next": cursor or None}``.

    Filters are exact (state, task name, queue, worker) or a range of
    ``updated_at`` (``since`` inclusive, ``until`` exclusive). ``search`` matches
    a task id by prefix or any substring of the arguments text, ignoring case.
    ``after`` is the ``next`` of the previous page; a cursor that is not one
    raises ConfigurationError.
    """
    c = task_runs.c
    statement = keyset(sa.select(task_runs), c.updated_at, c.task_id, limit, after)
    for column, value in ((c.state, state), (c.task, task), (c.queue, queue), (c.worker, worker)):
        if value is not None:
            statement = statement.where(column == str(value))
    if since is not None:
        statement = statement.where(c.updated_at >= _utc(since))
    if until is not None:
        statement = statement.where(c.updated_at < _utc(until))
    if search and search.strip():
        statement = statement.where(_matches(search.strip()))
    with engine.connect() as connection:
        runs = [_row(r) for r in connection.execute(statement)]
    return {"runs": runs, "next": next_cursor(runs, limit, "updated_at", "task_id")}


def keyset(
    statement: sa.Select[Any],
    moment: sa.ColumnElement[Any],
    key: sa.ColumnElement[Any],
    limit: int,
    after: str | None,
) -> sa.Select[Any]:
    """``statement`` newest first by (``moment``, ``key``), one row more than ``limit``,
    after the cursor ``after``; ConfigurationError for a limit below 1 or a bad cursor."""
    if limit < 1:
        raise ConfigurationError(f"limit must be at least 1, not {limit}")
    statement = statement.order_by(moment.desc(), key.desc()).limit(limit + 1)
    if after is not None:
        at, last_key = decode_cursor(after)
        statement = statement.where(sa.tuple_(moment, key) < (at, last_key))
    return statement


def next_cursor(rows: list[dict[str, Any]], limit: int, moment: str, key: str) -> str | None:
    """Cut ``rows`` (read with ``keyset``) to ``limit``; the next page's cursor, if any."""
    more = len(rows) > limit
    del rows[limit:]
    return encode_cursor(rows[-1][moment], rows[-1][key]) if more and rows else None


def _matches(text: str) -> sa.ColumnElement[bool]:
    """A task id starting with ``text``, or arguments containing it (any case).

    On PostgreSQL the first uses a varchar_pattern_ops index on task_id, the
    second the trigram (GIN) index on args; see ``history.create_schema``.
    """
    escaped = text.replace(_LIKE_ESCAPE, _LIKE_ESCAPE * 2).replace("%", r"\%").replace("_", r"\_")
    return sa.or_(
        task_runs.c.task_id.like(escaped + "%", escape=_LIKE_ESCAPE),
        task_runs.c.args.ilike("%" + escaped + "%", escape=_LIKE_ESCAPE),
    )


def encode_cursor(updated_at: datetime, task_id: str) -> str:
    """The opaque ``next`` cursor that resumes a listing after this row."""
    raw = json.dumps([_utc(updated_at).isoformat(), task_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """(updated_at, task_id) of a cursor from ``encode_cursor``; ConfigurationError if not one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, task_id = json.loads(raw)
        moment = datetime.fromisoformat(stamp)
        if not isinstance(task_id, str) or "\x00" in task_id or moment.tzinfo is None:
            raise ValueError("not a cursor")  # (PostgreSQL text cannot hold a NUL)
    except (ValueError, TypeError) as exc:  # binascii.Error and JSONDecodeError are ValueErrors
        shown = cursor if len(cursor) <= 40 else cursor[:39] + "…"
        raise ConfigurationError(
            f"malformed history cursor {shown!r}: pass the 'next' value of a previous page"
        ) from exc
    return _utc(moment), task_id


# -- one task ------------------------------------------------------------------


def task_run(engine: sa.Engine, task_id: str) -> dict[str, Any] | None:
    """The ``task_runs`` row of ``task_id`` with its ``events`` oldest first; None if unknown."""
    events = task_events.c
    with engine.connect() as connection:
        row = connection.execute(
            sa.select(task_runs).where(task_runs.c.task_id == task_id)
        ).one_or_none()
        if row is None:
            return None
        timeline = connection.execute(
            sa.select(events.state, events.worker, events.at, events.data)
            .where(events.task_id == task_id)
            .order_by(events.at, events.id)
        )
        run = _row(row)
        run["events"] = [_row(e) for e in timeline]
    return run


# -- performance ---------------------------------------------------------------


def performance(
    engine: sa.Engine, *, since: datetime, task: str | None = None
) -> list[dict[str, Any]]:
    """Per task, over runs finished since ``since``: count, failures and timing percentiles.

    Each row has ``task, count, failed, failure_rate`` and ``runtime_p50/p95/p99``
    and ``wait_p50/p95/p99`` in seconds (None when no run of the task recorded
    that timing); most runs first. Percentiles interpolate between values
    (``percentile_cont``): runtimes 1..100 give a p50 of 50.5.
    """
    c = task_runs.c
    window = [c.finished_at >= _utc(since)]
    if task is not None:
        window.append(c.task == task)
    if engine.dialect.name == "postgresql":
        rows = _performance_in_sql(engine, window)
    else:
        rows = _performance_here(engine, window)
    return sorted(rows, key=lambda r: (-r["count"], r["task"] or ""))


def _performance_in_sql(
    engine: sa.Engine, window: list[sa.ColumnElement[bool]]
) -> list[dict[str, Any]]:
    c = task_runs.c
    fractions = sa.literal(list(PERCENTILES), postgresql.ARRAY(sa.Float))
    statement = (
        sa.select(
            c.task,
            sa.func.count().label("count"),
            sa.func.count().filter(c.state.in_(FAILED_STATES)).label("failed"),
            sa.func.percentile_cont(fractions).within_group(c.runtime).label("runtime"),
            sa.func.percentile_cont(fractions).within_group(c.queue_wait).label("wait"),
        )
        .where(*window)
        .group_by(c.task)
    )
    with engine.connect() as connection:
        return [
            _performance_row(r.task, r.count, r.failed, r.runtime, r.wait)
            for r in connection.execute(statement)
        ]


def _performance_here(
    engine: sa.Engine, window: list[sa.ColumnElement[bool]]
) -> list[dict[str, Any]]:
    """The same numbers for a database with no percentile function, from the timing columns."""
    c = task_runs.c
    counts: dict[str | None, list[int]] = defaultdict(lambda: [0, 0])
    timings: dict[str | None, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    statement = sa.select(c.task, c.state, c.runtime, c.queue_wait).where(*window)
    with engine.connect() as connection:
        for name, state, runtime, wait in connection.execute(statement):
            counts[name][0] += 1
            counts[name][1] += state in FAILED_STATES
            runtimes, waits = timings[name]
            if runtime is not None:
                runtimes.append(runtime)
            if wait is not None:
                waits.append(wait)
    return [
        _performance_row(
            name,
            count,
            failed,
            [percentile(timings[name][0], f) for f in PERCENTILES],
            [percentile(timings[name][1], f) for f in PERCENTILES],
        )
        for name, (count, failed) in counts.items()
    ]


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """``percentile_cont``: the value at ``fraction`` of the sorted values, interpolated."""
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _performance_row(
    task: str | None,
    count: int,
    failed: int,
    runtimes: Sequence[float | None] | None,
    waits: Sequence[float | None] | None,
) -> dict[str, Any]:
    runtimes = runtimes or [None] * len(PERCENTILES)
    waits = waits or [None] * len(PERCENTILES)
    row: dict[str, Any] = {
        "task": task,
        "count": count,
        "failed": failed,
        "failure_rate": round(failed / count, 4) if count else None,
    }
    for fraction, runtime, wait in zip(PERCENTILES, runtimes, waits, strict=True):
        suffix = f"p{round(fraction * 100)}"
        row[f"runtime_{suffix}"] = runtime
        row[f"wait_{suffix}"] = wait
    return {k: row[k] for k in PERFORMANCE_COLUMNS}


#: The keys of a ``performance`` row, in the order a table shows them.
PERFORMANCE_COLUMNS = (
    "task",
    "count",
    "failed",
    "failure_rate",
    *(f"runtime_p{round(f * 100)}" for f in PERCENTILES),
    *(f"wait_p{round(f * 100)}" for f in PERCENTILES),
)


# -- values --------------------------------------------------------------------


def _utc(moment: datetime) -> datetime:
    """An aware UTC datetime (naive ones are taken as UTC, as SQLite returns them)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _row(row: sa.Row[Any]) -> dict[str, Any]:
    """A result row as a dict, every datetime aware and in UTC on every database."""
    return {k: _utc(v) if isinstance(v, datetime) else v for k, v in row._mapping.items()}


# -- throughput ----------------------------------------------------------------


def throughput(engine: sa.Engine, *, since: datetime, bucket: int = 60) -> list[dict[str, Any]]:
    """Runs finished per ``bucket`` seconds since ``since``, oldest first, empty buckets
    included: ``{"at": bucket start, "done": finished, "failed": FAILURE or DEAD}``."""
    c = task_runs.c
    start = _utc(since)
    if engine.dialect.name == "postgresql":
        slot = sa.func.floor(sa.extract("epoch", c.finished_at) / bucket)
    else:  # SQLite: seconds since the epoch as text
        slot = sa.func.floor(sa.cast(sa.func.strftime("%s", c.finished_at), sa.Integer) / bucket)
    statement = (
        sa.select(
            slot.label("slot"),
            sa.func.count().label("done"),
            sa.func.count().filter(c.state.in_(FAILED_STATES)).label("failed"),
        )
        .where(c.finished_at >= start)
        .group_by(slot)
    )
    with engine.connect() as connection:
        counts = {int(r.slot): (r.done, r.failed) for r in connection.execute(statement)}
    first = int(start.timestamp() // bucket)
    last = int(datetime.now(UTC).timestamp() // bucket)
    return [
        {
            "at": datetime.fromtimestamp(slot * bucket, UTC),
            "done": counts.get(slot, (0, 0))[0],
            "failed": counts.get(slot, (0, 0))[1],
        }
        for slot in range(first, last + 1)
    ]


# -- metrics -------------------------------------------------------------------


def newest_update(engine: sa.Engine) -> datetime | None:
    """The newest ``updated_at`` in task_runs (None when empty): an index's last entry."""
    with engine.connect() as connection:
        newest = connection.execute(sa.select(sa.func.max(task_runs.c.updated_at))).scalar()
    return _utc(newest) if newest is not None else None
