"""Background search over every contract: the matching ids go to Redis, pages read them.

A search stores the ids of the first ``MAX_STORED`` matches in result order (newest
contract first) under its search id, with the total and an expiry
(``WEBAPP_REPORTS_SEARCH_TTL``); a page of ``PAGE_SIZE`` reads 50 ids and loads those
rows by primary key, however large the table.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa

from taskcore import TaskApp

from ..db import utcnow
from .filters import conditions
from .jobs import read_json, search_ids_key, search_key
from .models import Contract

PAGE_SIZE = 50
MAX_STORED = 10_000
CHUNK = 5_000


def run_search(
    connection: sa.Connection,
    app: TaskApp,
    search_id: str,
    filters: Mapping[str, Any],
    ttl: int,
    progress: Callable[[int, int | None], None] = lambda done, total: None,
) -> dict[str, Any]:
    """Find the contracts matching ``filters`` and store the result; returns its summary."""
    table = Contract.__table__
    query = (
        sa.select(table.c.id)
        .where(*conditions(filters))
        .order_by(table.c.signed_on.desc(), table.c.id.desc())
    )
    ids_key = search_ids_key(app, search_id)
    client = app.redis
    client.delete(ids_key)
    total = 0
    result = connection.execution_options(stream_results=True, yield_per=CHUNK).execute(query)
    for chunk in result.partitions():
        room = MAX_STORED - total
        if room > 0:
            client.rpush(ids_key, *[row[0] for row in chunk[:room]])
        total += len(chunk)
        progress(total, None)
    stored = min(total, MAX_STORED)
    summary = {
        "id": search_id,
        "filters": dict(filters),
        "total": total,
        "stored": stored,
        "computed_at": utcnow().isoformat(),
    }
    pipe = client.pipeline()
    pipe.set(search_key(app, search_id), json.dumps(summary), ex=ttl)
    pipe.expire(ids_key, ttl)
    pipe.execute()
    return summary


def summary(app: TaskApp, search_id: str) -> dict[str, Any] | None:
    """The stored summary of a search, or None (running, failed or expired)."""
    return read_json(app, search_key(app, search_id))


def page_ids(app: TaskApp, search_id: str, page: int) -> list[int]:
    """The contract ids on page ``page`` (from 1)."""
    start = (page - 1) * PAGE_SIZE
    raw = app.redis.lrange(search_ids_key(app, search_id), start, start + PAGE_SIZE - 1)
    return [int(value) for value in raw]


def load_rows(connection: sa.Connection, ids: list[int]) -> list[Any]:
    """The contracts with ``ids``, in that order."""
    if not ids:
        return []
    table = Contract.__table__
    rows = {row.id: row for row in connection.execute(sa.select(table).where(table.c.id.in_(ids)))}
    return [rows[i] for i in ids if i in rows]
