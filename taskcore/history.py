"""Task history in a SQL database (PostgreSQL in production, SQLite on a laptop).

``task_runs`` holds one row per task id with its latest state, timings, an
arguments summary, the error and the worker; ``task_events`` holds every
event. Both outlive Redis's expiry and any restart.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

DEFAULT_DATABASE_URL = "sqlite:///taskcore.sqlite3"

metadata = sa.MetaData()

task_runs = sa.Table(
    "task_runs",
    metadata,
    sa.Column("task_id", sa.String(200), primary_key=True),
    sa.Column("task", sa.String(300), index=True),
    sa.Column("queue", sa.String(200), index=True),
    sa.Column("state", sa.String(20), nullable=False, index=True),
    sa.Column("worker", sa.String(300)),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("args", sa.Text),
    sa.Column("result", sa.Text),
    sa.Column("error_type", sa.String(300)),
    sa.Column("error_message", sa.Text),
    sa.Column("traceback", sa.Text),
    sa.Column("runtime", sa.Float),
    sa.Column("started_at", sa.DateTime(timezone=True)),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, index=True),
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

_FINISHED = {"SUCCESS", "FAILURE", "REVOKED", "DEAD"}


def database_url() -> str:
    """``DATABASE_URL``, or a SQLite file in the current directory."""
    return os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL


def make_engine(url: str | None = None) -> sa.Engine:
    """An engine for ``url`` (default: DATABASE_URL); plain postgresql:// URLs use psycopg2."""
    url = url or database_url()
    for scheme in ("postgres://", "postgresql://"):
        if url.startswith(scheme):  # SQLAlchemy 2.1 would pick psycopg 3, which we do not ship
            url = "postgresql+psycopg2://" + url.removeprefix(scheme)
    return sa.create_engine(url, pool_pre_ping=True)


def create_schema(engine: sa.Engine) -> None:
    """Create the tables if they do not exist (idempotent)."""
    metadata.create_all(engine)


def write_events(engine: sa.Engine, events: Sequence[dict[str, Any]]) -> None:
    """Store a batch of events in one transaction: all event rows, and one upsert per task."""
    if not events:
        return
    event_rows = [_event_row(e) for e in events]
    runs: dict[str, dict[str, Any]] = {}
    for event in sorted(events, key=lambda e: e.get("at", 0)):
        run = runs.setdefault(event["task_id"], {"task_id": event["task_id"]})
        run.update(_run_fields(event))
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    with engine.begin() as connection:
        connection.execute(task_events.insert(), event_rows)
        for run in runs.values():
            run.setdefault("attempts", 0)
            statement = insert(task_runs).values(**run)
            updates = {k: statement.excluded[k] for k in run if k != "task_id"}
            # An older event arriving late must not overwrite a newer state.
            statement = statement.on_conflict_do_update(
                index_elements=[task_runs.c.task_id],
                set_=updates,
                where=task_runs.c.updated_at <= statement.excluded.updated_at,
            )
            connection.execute(statement)


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


def _run_fields(event: dict[str, Any]) -> dict[str, Any]:
    state = event["state"]
    fields: dict[str, Any] = {"state": state, "updated_at": _when(event.get("at"))}
    for name in ("task", "queue", "worker", "attempts", "args", "runtime"):
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
