"""The contract filter every report action shares: parse, check, hash, and turn into SQL.

A filter travels as a plain dict (task arguments are JSON) with the keys of ``FIELDS``;
missing or empty values mean "any". ``filter_hash`` names a filter for duplicate
detection and cache keys, so the same filter always gives the same hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import date
from typing import Any

import sqlalchemy as sa

from .models import Contract

FIELDS = ("agency", "category", "date_from", "date_to", "text")
MAX_TEXT = 100


class FilterError(ValueError):
    """A filter a person must correct: ``errors`` maps a field to its message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def parse_filters(data: Mapping[str, Any]) -> dict[str, str | None]:
    """The canonical filter from form or query fields; FilterError says what is wrong."""
    errors: dict[str, str] = {}
    result: dict[str, str | None] = {}
    for name in ("agency", "category"):
        value = str(data.get(name) or "").strip()
        if len(value) > 100:
            errors[name] = "Too long (at most 100 characters)."
        result[name] = value or None
    dates: dict[str, date] = {}
    for name in ("date_from", "date_to"):
        value = str(data.get(name) or "").strip()
        if value:
            try:
                dates[name] = date.fromisoformat(value)
            except ValueError:
                errors[name] = "Not a date: use YYYY-MM-DD."
        result[name] = dates[name].isoformat() if name in dates else None
    if "date_from" in dates and "date_to" in dates and dates["date_to"] < dates["date_from"]:
        errors["date_to"] = "The end date is before the start date."
    text = " ".join(str(data.get("text") or "").split())
    if len(text) > MAX_TEXT:
        errors["text"] = f"Too long (at most {MAX_TEXT} characters)."
    elif text and len(text) < 2:
        errors["text"] = "Type at least 2 characters to search."
    result["text"] = text or None
    if errors:
        raise FilterError(errors)
    return result


def filter_hash(filters: Mapping[str, Any]) -> str:
    """A short, stable name for a filter (sorted JSON, SHA-256, 16 hex digits)."""
    canonical = {name: filters.get(name) or None for name in FIELDS}
    if canonical["text"]:
        canonical["text"] = canonical["text"].lower()  # the match ignores case
    raw = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def describe(filters: Mapping[str, Any]) -> str:
    """``agency = X, from 2024-01-01, text "road"`` (or ``all contracts``)."""
    parts = []
    if filters.get("agency"):
        parts.append(f"agency {filters['agency']}")
    if filters.get("category"):
        parts.append(f"category {filters['category']}")
    if filters.get("date_from"):
        parts.append(f"from {filters['date_from']}")
    if filters.get("date_to"):
        parts.append(f"to {filters['date_to']}")
    if filters.get("text"):
        parts.append(f'text "{filters["text"]}"')
    return ", ".join(parts) or "all contracts"


def conditions(filters: Mapping[str, Any]) -> list[sa.ColumnElement[bool]]:
    """WHERE conditions on ``contracts`` for a (parsed) filter."""
    where: list[sa.ColumnElement[bool]] = []
    table = Contract.__table__.c
    if filters.get("agency"):
        where.append(table.agency == filters["agency"])
    if filters.get("category"):
        where.append(table.category == filters["category"])
    if filters.get("date_from"):
        where.append(table.signed_on >= date.fromisoformat(filters["date_from"]))
    if filters.get("date_to"):
        where.append(table.signed_on <= date.fromisoformat(filters["date_to"]))
    if filters.get("text"):
        escaped = filters["text"].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
        where.append(
            sa.or_(
                table.title.ilike(pattern, escape="\\"),
                table.supplier.ilike(pattern, escape="\\"),
            )
        )
    return where


def query_string(filters: Mapping[str, Any]) -> dict[str, str]:
    """The filter's non-empty fields, for ``url_for(..., **query_string(f))``."""
    return {name: str(filters[name]) for name in FIELDS if filters.get(name)}
