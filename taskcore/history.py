"""Task history in a SQL database (PostgreSQL in production, SQLite on a laptop).

``task_runs`` holds one row per task id with its latest state, timings, an
arguments summary, the error, the worker and the workflow it belongs to;
``task_events`` holds every event; ``task_workflows`` holds the shape of each
chain, group and chord (kind, members in order, a chord's callback). All outlive
Redis's expiry and any restart. This module defines the tables and writes them;
``history_queries`` reads them.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from .workflows import WORKFLOW_EVENT

DEFAULT_DATABASE_URL = "sqlite:///taskcore.sqlite3"

log = logging.getLogger(__name__)

metadata = sa.MetaData()

task_runs = sa.Table(
    "task_runs",
    metadata,
    sa.Column("task_id", sa.String(200), primary_key=True),
    sa.Column("task", sa.String(300)),
    sa.Column("queue", sa.String(200)),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("worker", sa.String(300)),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("args", sa.Text),
    sa.Column("result", sa.Text),
    sa.Column("error_type", sa.String(300)),
    sa.Column("error_message", sa.Text),
    sa.Column("traceback", sa.Text),
    sa.Column("runtime", sa.Float),
    #: Seconds from when the message was due (sent, or its delay ended) to its start.
    sa.Column("queue_wait", sa.Float),
    sa.Column("started_at", sa.DateTime(timezone=True)),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    #: The chain, group or chord this task belongs to.
    sa.Column("workflow_id", sa.String(200)),
    # The task list reads newest first, keyset-paged on (updated_at, task_id): one index
    # per filter, each ending in the page order, so a page is an index range scan.
    sa.Index("ix_task_runs_updated", "updated_at", "task_id"),
    sa.Index("ix_task_runs_state_updated", "state", "updated_at", "task_id"),
    sa.Index("ix_task_runs_task_updated", "task", "updated_at", "task_id"),
    sa.Index("ix_task_runs_queue_updated", "queue", "updated_at", "task_id"),
    sa.Index("ix_task_runs_worker_updated", "worker", "updated_at", "task_id"),
    sa.Index("ix_task_runs_workflow", "workflow_id"),
    # Performance (runs finished in a window) reads only these columns: an index-only scan.
    sa.Index(
        "ix_task_runs_finished",
        "finished_at",
        postgresql_include=["task", "state", "runtime", "queue_wait"],
    ),
    # Search by task id prefix: LIKE 'abc%' can use a btree only with pattern ops
    # (or a "C" collation); SQLite's primary key serves it there.
    sa.Index(
        "ix_task_runs_task_id_prefix",
        "task_id",
        postgresql_ops={"task_id": "varchar_pattern_ops"},
    ).ddl_if(dialect="postgresql"),
)

task_events = sa.Table(
    "task_events",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("task_id", sa.String(200), nullable=False, index=True),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("worker", sa.String(300)),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("data", sa.JSON),
)

task_workflows = sa.Table(
    "task_workflows",
    metadata,
    sa.Column("workflow_id", sa.String(200), primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    #: ``[{"id", "task", "queue"}]``, a chain's steps in order.
    sa.Column("members", sa.JSON, nullable=False),
    #: A chord's callback, ``{"id", "task", "queue"}``.
    sa.Column("callback", sa.JSON),
    sa.Index("ix_task_workflows_created", "created_at", "workflow_id"),
)

_FINISHED = {"SUCCESS", "FAILURE", "REVOKED", "DEAD"}
#: The trigram index on task_runs.args (PostgreSQL only; made by a migration, outside
#: ``metadata``: its operator class is named with pg_trgm's schema, wherever that is).
TRIGRAM_INDEX = "ix_task_runs_args_trgm"


def database_url() -> str:
    """``DATABASE_URL``, or a SQLite file in the current directory."""
    return os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL


def sqlalchemy_url(url: str) -> str:
    """``url`` with plain ``postgres(ql)://`` pinned to psycopg2, the driver we ship
    (SQLAlchemy 2.1 would pick psycopg 3 for them)."""
    for scheme in ("postgres://", "postgresql://"):
        if url.startswith(scheme):
            return "postgresql+psycopg2://" + url.removeprefix(scheme)
    return url


def make_engine(url: str | None = None) -> sa.Engine:
    """An engine for ``url`` (default: DATABASE_URL); plain postgresql:// URLs use psycopg2."""
    return sa.create_engine(sqlalchemy_url(url or database_url()), pool_pre_ping=True)


def create_schema(engine: sa.Engine) -> None:
    """Bring the history tables up to date: apply their migrations (idempotent).

    The migrations live in ``taskcore.migrations`` and keep their revision in the
    ``taskcore_alembic_version`` table of the first schema on the search path.
    Tables made before migrations existed are adopted and brought up to date. On
    PostgreSQL this includes the ``pg_trgm`` extension and a trigram index on the
    arguments (fast substring search); if the extension could not be made then,
    this makes the index as soon as it exists. A database migrated by a newer
    version is left as it is, with a warning.
    """
    from .migrations import HISTORY, SchemaAheadError

    try:
        HISTORY.upgrade(engine)
    except SchemaAheadError as exc:
        log.warning("task history tables left as they are: %s", exc)
        return
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            indexes = {i["name"] for i in sa.inspect(connection).get_indexes("task_runs")}
            if TRIGRAM_INDEX not in indexes:
                create_trigram_index(connection)


def create_trigram_index(connection: sa.Connection) -> bool:
    """A GIN trigram index on ``task_runs.args`` (PostgreSQL), so ``args ILIKE '%text%'``
    needs no scan. False (and a warning) when ``pg_trgm`` is not there and cannot be made.
    """
    schema = trigram_schema(connection)
    if schema is None:
        log.warning(
            "the pg_trgm extension is not available (ask an administrator to "
            "CREATE EXTENSION pg_trgm, then run `taskcore init-db`): searching task "
            "arguments will scan the table"
        )
        return False
    connection.execute(
        sa.text(
            f"CREATE INDEX IF NOT EXISTS {TRIGRAM_INDEX} "
            f"ON task_runs USING gin (args {schema}.gin_trgm_ops)"
        )
    )
    return True


def trigram_schema(connection: sa.Connection) -> str | None:
    """The (quoted) schema of PostgreSQL's ``pg_trgm`` extension, made in ``public`` first
    if it is missing and this role may; None if it is not available.

    Name its operator class with this schema (``{schema}.gin_trgm_ops``): the search path
    of the caller need not include it.
    """
    schema = _installed_trigram_schema(connection)
    if schema is not None:
        return schema
    has_public = connection.execute(
        sa.text("SELECT 1 FROM pg_namespace WHERE nspname = 'public'")
    ).scalar()
    where = " SCHEMA public" if has_public else ""
    try:
        with connection.begin_nested():  # a failure must not end the caller's transaction
            connection.execute(sa.text(f"CREATE EXTENSION IF NOT EXISTS pg_trgm{where}"))
    except sa.exc.DBAPIError as exc:  # not allowed, or made at this moment by another process
        log.debug("CREATE EXTENSION pg_trgm failed: %s", exc)
    return _installed_trigram_schema(connection)


def _installed_trigram_schema(connection: sa.Connection) -> str | None:
    return connection.execute(
        sa.text(
            "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_trgm'"
        )
    ).scalar()


def write_events(engine: sa.Engine, events: Sequence[dict[str, Any]]) -> None:
    """Store a batch of events in one transaction: every event row, and each task's
    latest state (an event older than the stored state does not overwrite it)."""
    if not events:
        return
    shapes = [_workflow_row(e) for e in events if e["state"] == WORKFLOW_EVENT]
    if shapes:
        events = [e for e in events if e["state"] != WORKFLOW_EVENT]
    event_rows = [_event_row(e) for e in events]
    runs: dict[str, dict[str, Any]] = {}
    for event in sorted(events, key=lambda e: e.get("at", 0)):
        run = runs.setdefault(event["task_id"], {"task_id": event["task_id"]})
        run.update(_run_fields(event))
    for run in runs.values():
        run.setdefault("attempts", 0)
    with engine.begin() as connection:
        if shapes:  # a workflow recorded twice (a resent publish) keeps its first row
            insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
            connection.execute(insert(task_workflows).on_conflict_do_nothing(), shapes)
        if not event_rows:
            return
        if engine.dialect.name == "postgresql":
            _write_postgresql(connection, event_rows, list(runs.values()))
        else:
            _write_portable(connection, event_rows, list(runs.values()))


def _write_portable(
    connection: sa.Connection, event_rows: list[dict[str, Any]], runs: list[dict[str, Any]]
) -> None:
    """SQLite (a laptop's history): one multi-row upsert per set of columns."""
    connection.execute(task_events.insert(), event_rows)
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for run in runs:
        by_columns.setdefault(tuple(sorted(run)), []).append(run)
    for columns, rows in by_columns.items():
        statement = sqlite.insert(task_runs).values(rows)
        statement = statement.on_conflict_do_update(
            index_elements=[task_runs.c.task_id],
            set_={name: statement.excluded[name] for name in columns if name != "task_id"},
            where=task_runs.c.updated_at <= statement.excluded.updated_at,
        )
        connection.execute(statement)


def _write_postgresql(
    connection: sa.Connection, event_rows: list[dict[str, Any]], runs: list[dict[str, Any]]
) -> None:
    """PostgreSQL: the events with COPY, the runs with one upsert over a JSON array.

    Both cost one round trip and no per-row SQL compilation, whatever the batch's size
    (SQLAlchemy building a many-row VALUES list cost more CPU than the database's work).
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in event_rows:  # in CSV, an empty unquoted field is NULL
        data = json.dumps(row["data"], default=str)
        writer.writerow([row["task_id"], row["state"], row["worker"], row["at"].isoformat(), data])
    buffer.seek(0)
    statement = _COPY_EVENTS
    raw = connection.connection.dbapi_connection  # in this connection's transaction
    try:
        with raw.cursor() as cursor:  # type: ignore[union-attr]
            cursor.copy_expert(statement, buffer)
            statement = _UPSERT_RUNS
            cursor.execute(statement, (json.dumps(runs, default=_json_time),))
    except connection.dialect.loaded_dbapi.Error as exc:  # as SQLAlchemy would raise it
        raise sa.exc.DBAPIError(statement, None, exc) from exc


def _json_time(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else str(value)


_COPY_EVENTS = "COPY task_events (task_id, state, worker, at, data) FROM STDIN WITH (FORMAT csv)"


def _upsert_runs_sql() -> str:
    # A key missing from a run's JSON object reads as NULL: the stored value stays
    # (COALESCE). ``attempts`` is always given; ``state`` and ``updated_at`` always are.
    dialect = postgresql.dialect()
    columns = [c.name for c in task_runs.columns]
    typed = ", ".join(f"{c.name} {c.type.compile(dialect=dialect)}" for c in task_runs.columns)
    always = {"task_id", "state", "updated_at", "attempts"}
    updates = ", ".join(
        f"{name} = EXCLUDED.{name}"
        if name in always
        else f"{name} = COALESCE(EXCLUDED.{name}, task_runs.{name})"
        for name in columns
        if name != "task_id"
    )
    listed = ", ".join(columns)
    return (
        f"INSERT INTO task_runs ({listed}) SELECT {listed} FROM json_to_recordset(%s) AS r({typed})"
        f" ON CONFLICT (task_id) DO UPDATE SET {updates}"
        " WHERE task_runs.updated_at <= EXCLUDED.updated_at"
    )


_UPSERT_RUNS = _upsert_runs_sql()


def _when(seconds: float | None) -> datetime:
    return datetime.fromtimestamp(seconds if seconds is not None else 0, UTC)


def _event_row(event: dict[str, Any]) -> dict[str, Any]:
    data = {k: v for k, v in event.items() if k not in {"task_id", "state", "worker", "at"}}
    return {
        "task_id": event["task_id"],
        "state": event["state"],
        "worker": event.get("worker"),
        "at": _when(event.get("at")),
        "data": data,
    }


def _workflow_row(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "workflow_id": event["task_id"],
        "kind": str(event.get("kind")),
        "created_at": _when(event.get("at")),
        "members": event.get("members") or [],
        "callback": event.get("callback"),
    }


#: Event fields copied to the task's row as they are.
_RUN_COLUMNS = (
    "task",
    "queue",
    "worker",
    "attempts",
    "args",
    "runtime",
    "queue_wait",
    "workflow_id",
)


def _run_fields(event: dict[str, Any]) -> dict[str, Any]:
    state = event["state"]
    fields: dict[str, Any] = {"state": state, "updated_at": _when(event.get("at"))}
    for name in _RUN_COLUMNS:
        if event.get(name) is not None:
            fields[name] = event[name]
    if state == "STARTED":
        fields["started_at"] = _when(event.get("at"))
    if state in _FINISHED:
        fields["finished_at"] = _when(event.get("at"))
    if "result" in event:
        fields["result"] = json.dumps(event["result"], default=str)
    error = event.get("error")
    if isinstance(error, dict):
        fields["error_type"] = error.get("type")
        fields["error_message"] = error.get("message")
        fields["traceback"] = error.get("traceback")
    return fields
