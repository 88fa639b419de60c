"""Turning operations data into what a page shows: times, durations, JSON text."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any


def when(value: float | datetime | None) -> datetime | None:
    """A Unix time or a datetime as an aware UTC datetime (None stays None)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromtimestamp(float(value), UTC)


def ago(value: float | datetime | None) -> str:
    """``12 s ago``, ``3 min ago``, ``in 5 min`` for a time relative to now."""
    moment = when(value)
    if moment is None:
        return ""
    seconds = (datetime.now(UTC) - moment).total_seconds()
    text = duration(abs(seconds))
    return f"{text} ago" if seconds >= 0 else f"in {text}"


def duration(seconds: float | None) -> str:
    """``850 ms``, ``4.2 s``, ``3 min``, ``2 h 5 min``, ``3 d``."""
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        hours, rest = divmod(int(seconds), 3600)
        return f"{hours} h {rest // 60} min"
    return f"{seconds / 86400:.0f} d"


def pretty_json(value: Any) -> str:
    """Indented JSON for a <pre>; a string that holds JSON is parsed first."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    return json.dumps(value, indent=2, default=str, ensure_ascii=False)


WINDOWS = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1), "6h": timedelta(hours=6),
           "24h": timedelta(days=1), "7d": timedelta(days=7)}  # fmt: skip


def window(text: str | None, default: str = "1h") -> tuple[str, datetime]:
    """A window name from the query string (unknown ones fall back) and its start."""
    name = text if text in WINDOWS else default
    return name, datetime.now(UTC) - WINDOWS[name]


def recorded_call(summary: Any) -> dict[str, Any] | None:
    """``{"args", "kwargs"}`` from a history arguments summary, if it was recorded whole
    (the worker cuts long ones short, and those cannot be run again)."""
    if not isinstance(summary, str):
        return None
    try:
        call = json.loads(summary)
    except ValueError:
        return None
    return call if isinstance(call, dict) and {"args", "kwargs"} <= call.keys() else None


def clipped(text: str, limit: int = 40) -> str:
    """``text`` cut to ``limit`` characters (with an ellipsis) for a message that echoes it."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


#: Member states that stop a chain.
_STOPPED = {"FAILURE", "DEAD", "REVOKED"}


def chain_position(workflow: dict[str, Any]) -> str | None:
    """Where a chain is (``step 2 of 3``, ``stopped at step 2 of 3``); None if not a chain."""
    if workflow["kind"] != "chain":
        return None
    states = [m["state"] for m in workflow["members"]]
    steps = len(states)
    stopped = next((i for i, s in enumerate(states, 1) if s in _STOPPED), None)
    if stopped is not None:
        return f"stopped at step {stopped} of {steps}"
    current = next((i for i, s in enumerate(states, 1) if s != "SUCCESS"), None)
    return f"step {current} of {steps}" if current else f"all {steps} steps done"


def membership(workflow_id: str, workflow: dict[str, Any] | None, task_id: str) -> dict[str, Any]:
    """How ``task_id`` belongs to its workflow: ``{"id", "kind", "step", "steps",
    "callback"}`` (kind None while the history has not recorded the workflow)."""
    members = [m["id"] for m in workflow["members"]] if workflow else []
    callback = (workflow or {}).get("callback") or {}
    return {
        "id": workflow_id,
        "kind": workflow["kind"] if workflow else None,
        "step": members.index(task_id) + 1 if task_id in members else None,
        "steps": len(members),
        "callback": callback.get("id") == task_id,
    }
