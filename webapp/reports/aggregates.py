"""Aggregates of the contracts matching a filter: by agency, by month, by category.

Computed by the database (``GROUP BY``: count, sum, average) and cached in Redis as
JSON with ``computed_at`` and an expiry (``WEBAPP_REPORTS_CACHE_TTL``). Amounts are
kept as decimal strings so that nothing is rounded on the way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from taskcore import TaskApp

from ..db import utcnow
from .filters import conditions
from .jobs import aggregates_key
from .models import Contract

CENT = Decimal("0.01")
GROUPS = ("agency", "month", "category")


def _month(connection: sa.Connection) -> sa.ColumnElement[str]:
    signed_on = Contract.__table__.c.signed_on
    if connection.dialect.name == "postgresql":
        return sa.func.to_char(signed_on, "YYYY-MM")
    return sa.func.strftime("%Y-%m", signed_on)


def compute(connection: sa.Connection, filters: Mapping[str, Any]) -> dict[str, Any]:
    """Totals and the three groupings for ``filters`` (one query each)."""
    table = Contract.__table__
    where = conditions(filters)
    measures = (
        sa.func.count().label("count"),
        sa.func.coalesce(sa.func.sum(table.c.amount), 0).label("sum"),
        sa.func.avg(table.c.amount).label("avg"),
    )
    result: dict[str, Any] = {"filters": dict(filters)}
    total = connection.execute(sa.select(*measures).where(*where)).one()
    result["total"] = _row(None, total)
    columns = {"agency": table.c.agency, "category": table.c.category, "month": _month(connection)}
    for name in GROUPS:
        column = columns[name].label("key")
        query = sa.select(column, *measures).where(*where).group_by(column)
        query = query.order_by(column) if name == "month" else query.order_by(sa.desc("sum"))
        result[f"by_{name}"] = [_row(r.key, r) for r in connection.execute(query)]
    result["computed_at"] = utcnow().isoformat()
    return result


def _row(key: str | None, row: Any) -> dict[str, Any]:
    average = None if row.avg is None else str(Decimal(row.avg).quantize(CENT))
    return {
        "key": key,
        "count": int(row.count),
        "sum": str(Decimal(row.sum).quantize(CENT)),
        "avg": average,
    }


def store(app: TaskApp, filters: Mapping[str, Any], value: dict[str, Any], ttl: int) -> str:
    """Cache ``value`` for ``filters``; returns the key."""
    key = aggregates_key(app, filters)
    app.redis.set(key, json.dumps(value), ex=ttl)
    return key
