"""Workers, schedules, rate limits and the liveness check."""

from __future__ import annotations

from typing import Any

from flask import current_app

from taskcore.errors import ConfigurationError

from ..auth.access import audit
from . import api, present
from .endpoint import endpoint
from .errors import NotFound
from .schemas import (
    ID_PATTERN,
    HealthSchema,
    RateLimitSchema,
    RateLimitsSchema,
    SchedulesSchema,
    ScheduleStateSchema,
    SetRateLimitSchema,
    TaskRefSchema,
    WorkersSchema,
)

NAME = {"name": ID_PATTERN}


def _ops() -> Any:
    return current_app.extensions["taskcore_ops"]


@api.get("/workers")
@endpoint("Every worker process", tag="workers", response=WorkersSchema, errors=(503,))
def workers() -> Any:
    """From their heartbeats: queues, concurrency, running and held tasks, processed
    counts, start time, last heartbeat and ``alive`` (heard of recently)."""
    return {"workers": [present.worker(beat) for beat in _ops().workers()]}


@api.get("/schedules")
@endpoint("Every periodic schedule", tag="schedules", response=SchedulesSchema, errors=(503,))
def schedules() -> Any:
    """Timing, paused flag, last and next fire time."""
    return {"schedules": _ops().schedules()}


def _known_schedule(name: str) -> str:
    if name not in current_app.extensions["taskcore"].schedules:
        raise NotFound(f"no schedule named {name!r}")
    return name


def _schedule_state(name: str, action: str) -> dict[str, Any]:
    paused = getattr(_ops(), f"{action}_schedule")
    try:
        paused(_known_schedule(name))
    except ConfigurationError as exc:  # removed between the check and the call
        raise NotFound(str(exc)) from None
    audit(f"schedule.{action}", name)
    return {"name": name, "paused": action == "pause"}


@api.post("/schedules/<name>/pause")
@endpoint(
    "Stop firing a schedule",
    tag="schedules",
    role="operator",
    response=ScheduleStateSchema,
    errors=(404, 503),
    path_patterns=NAME,
)
def pause_schedule(name: str) -> Any:
    """Every beat stops firing it at once, until it is resumed."""
    return _schedule_state(name, "pause")


@api.post("/schedules/<name>/resume")
@endpoint(
    "Fire a paused schedule again",
    tag="schedules",
    role="operator",
    response=ScheduleStateSchema,
    errors=(404, 503),
    path_patterns=NAME,
)
def resume_schedule(name: str) -> Any:
    """Fire times missed while it was paused are skipped."""
    return _schedule_state(name, "resume")


@api.post("/schedules/<name>/run")
@endpoint(
    "Run a schedule's task now",
    tag="schedules",
    role="operator",
    response=TaskRefSchema,
    status=202,
    errors=(404, 503),
    path_patterns=NAME,
)
def run_schedule(name: str) -> Any:
    """One run outside its timing; the schedule itself is unchanged."""
    try:
        handle = _ops().run_schedule(_known_schedule(name))
    except ConfigurationError as exc:
        raise NotFound(str(exc)) from None
    audit("schedule.run", name, f"as {handle.id}")
    return {"id": handle.id, "task": handle.task, "queue": handle.queue}


@api.get("/rate-limits")
@endpoint(
    "The global rate limits in force", tag="rate limits", response=RateLimitsSchema, errors=(503,)
)
def rate_limits() -> Any:
    """Declared in code, with the changes made at run time applied; by task name or
    ``queue:<name>``."""
    return {"limits": _ops().rate_limits()}


@api.put("/rate-limits/<name>")
@endpoint(
    "Change a global rate limit now",
    tag="rate limits",
    role="operator",
    body=SetRateLimitSchema,
    response=RateLimitSchema,
    errors=(503,),
    path_patterns=NAME,
)
def set_rate_limit(name: str, body: dict[str, Any]) -> Any:
    """For a task name or ``queue:<name>``; every worker follows within seconds."""
    _ops().set_rate_limit(name, body["rate"])
    audit("rate_limit.set", name, body["rate"])
    return {"name": name, "rate": _ops().rate_limits().get(name)}


@api.delete("/rate-limits/<name>")
@endpoint(
    "Go back to the rate limit declared in code",
    tag="rate limits",
    role="operator",
    response=RateLimitSchema,
    errors=(503,),
    path_patterns=NAME,
)
def reset_rate_limit(name: str) -> Any:
    """Drops the run-time change; ``rate`` in the answer is what is in force after (null:
    no limit)."""
    _ops().set_rate_limit(name, None)
    audit("rate_limit.reset", name)
    return {"name": name, "rate": _ops().rate_limits().get(name)}


@api.get("/health")
@endpoint("Liveness: the web process answers", tag="health", role=None, response=HealthSchema)
def health() -> Any:
    """No sign-in needed; checks nothing behind the web process."""
    return {"status": "ok"}
