"""Turn what taskcore returns into the API's shapes: arguments and errors as JSON values.

Timestamps stay as they come (datetimes, Unix seconds): the schemas' ``Timestamp``
fields write them as ISO 8601 UTC.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

from taskcore.states import State

_TIMESTAMP_SUFFIX = "_at"


def arguments(summary: Any) -> dict[str, Any]:
    """``args``/``kwargs`` from the worker's summary text ``{"args": [...], "kwargs": {...}}``.

    A summary cut short (long arguments) is not JSON: it comes back as a preview.
    """
    if summary is None:
        return {"args": None, "kwargs": None, "arguments_truncated": False}
    if isinstance(summary, dict):
        parsed: Any = summary
    else:
        try:
            parsed = json.loads(summary)
        except (TypeError, ValueError):
            return {
                "args": None,
                "kwargs": None,
                "arguments_truncated": True,
                "arguments_preview": str(summary),
            }
    if not isinstance(parsed, dict):
        return {"args": None, "kwargs": None, "arguments_truncated": False}
    args, kwargs = parsed.get("args"), parsed.get("kwargs")
    return {
        "args": args if isinstance(args, list) else None,
        "kwargs": kwargs if isinstance(kwargs, dict) else None,
        "arguments_truncated": False,
    }


def history_row(row: dict[str, Any]) -> dict[str, Any]:
    """A ``task_runs`` row as the API shows it."""
    error = None
    if row.get("error_type") or row.get("error_message"):
        error = {
            "type": row.get("error_type"),
            "message": row.get("error_message"),
            "traceback": row.get("traceback"),
        }
    return {
        "id": row["task_id"],
        **{k: row.get(k) for k in ("task", "queue", "state", "worker", "attempts")},
        "result": row.get("result"),
        "error": error,
        **{k: row.get(k) for k in ("runtime", "queue_wait")},
        **{k: row.get(k) for k in ("started_at", "finished_at", "updated_at")},
        **arguments(row.get("args")),
        "workflow_id": row.get("workflow_id"),
    }


def status_from_redis(status: dict[str, Any]) -> dict[str, Any]:
    """``TaskStatus.as_dict()`` as the API shows it (``source: redis``)."""
    extra = dict(status)
    times = {
        name.removesuffix(_TIMESTAMP_SUFFIX).upper(): value
        for name, value in extra.items()
        if name.endswith(_TIMESTAMP_SUFFIX) and isinstance(value, (int, float))
    }
    finished = next(
        (times[s.value] for s in (State.SUCCESS, State.FAILURE, State.REVOKED, State.DEAD)
         if s.value in times and s.value == extra.get("state")),
        None,
    )  # fmt: skip
    return {
        "id": extra["id"],
        "state": extra["state"],
        "source": "redis",
        **{k: extra.get(k) for k in ("task", "queue", "worker", "attempts", "result")},
        "error": extra.get("error") if isinstance(extra.get("error"), dict) else None,
        "progress": extra.get("progress") if isinstance(extra.get("progress"), dict) else None,
        **{k: _number(extra.get(k)) for k in ("runtime", "queue_wait", "retry_in")},
        "started_at": times.get(State.STARTED.value),
        "finished_at": finished,
        "updated_at": times.pop("UPDATED", None),
        "times": times,
        **arguments(extra.get("args")),
        "workflow_id": extra.get("workflow_id"),
    }


def status_from_history(run: dict[str, Any]) -> dict[str, Any]:
    """``Operations.task_run`` (the history row and its events) as a task status."""
    shown = history_row(run)
    shown["source"] = "history"
    shown["result"] = _json_value(shown["result"])
    shown["events"] = [
        {
            "state": event.get("state"),
            "worker": event.get("worker"),
            "at": event.get("at"),
            "data": event.get("data") if isinstance(event.get("data"), dict) else None,
        }
        for event in run.get("events") or []
    ]
    return shown


def workflow(found: dict[str, Any]) -> dict[str, Any]:
    """``Operations.workflow`` as the API shows it: each task's error as one object."""
    return {
        **found,
        "members": [_workflow_member(m) for m in found["members"]],
        "callback": _workflow_member(found["callback"]) if found["callback"] else None,
    }


def _workflow_member(member: dict[str, Any]) -> dict[str, Any]:
    error = None
    if member.get("error_type") or member.get("error_message"):
        error = {"type": member.get("error_type"), "message": member.get("error_message")}
    shown = {k: v for k, v in member.items() if k not in ("error_type", "error_message")}
    return {**shown, "error": error}


def unknown_status(task_id: str) -> dict[str, Any]:
    """Nothing is known of ``task_id``: queued and not yet picked up, or never sent."""
    return {"id": task_id, "state": State.PENDING.value, "source": "none"}


def dead_letter(row: dict[str, Any]) -> dict[str, Any]:
    """``Operations.dead_letters`` row: the body's arguments as JSON values."""
    body = row.get("body")
    try:
        parsed = json.loads(body) if isinstance(body, str) else None
    except ValueError:
        parsed = None
    shown = {k: row.get(k) for k in ("id", "task", "reason", "error", "attempts", "dead_at")}
    shown["headers"] = {str(k): _json_safe(v) for k, v in (row.get("headers") or {}).items()}
    if isinstance(parsed, dict):
        shown.update(arguments(parsed))
        shown["body"] = None
    else:
        shown.update(args=None, kwargs=None, arguments_truncated=False, body=body)
    return shown


def worker(beat: dict[str, Any]) -> dict[str, Any]:
    """A worker heartbeat: its counts, when it started and when it was last heard of."""
    started = _number(beat.get("started"))
    return {
        **{
            k: beat.get(k)
            for k in ("hostname", "pid", "alive", "concurrency", "running", "held", "processed")
        },
        "queues": list(beat.get("queues") or []),
        "held_by_queue": dict(beat.get("held_by_queue") or {}),
        "counts": dict(beat.get("counts") or {}),
        "started": started,
        "last_heartbeat": _number(beat.get("at")),
        "uptime": round(time.time() - started, 3) if started is not None else None,
    }


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _json_value(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _json_safe(value: Any) -> Any:
    """An AMQP header value as JSON: bytes as text, dates as ISO strings, others as text."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    return str(value)
