"""Tasks: submit one by name, read its status, cancel it."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from flask import current_app

from taskcore.errors import ConfigurationError, EncodeError

from ..auth.access import audit
from . import api, present
from .endpoint import BadRequest, endpoint
from .errors import Conflict, NotFound
from .exposed import is_exposed
from .schemas import (
    ID_PATTERN,
    CancelResultSchema,
    CancelSchema,
    SubmitTaskSchema,
    TaskRefSchema,
    TaskStatusSchema,
)

log = logging.getLogger("webapp.api")
TASK_ID = {"task_id": ID_PATTERN}


@api.post("/tasks")
@endpoint(
    "Queue a task by name",
    tag="tasks",
    role="operator",
    body=SubmitTaskSchema,
    response=TaskRefSchema,
    status=202,
    errors=(404, 409, 503),
)
def submit_task(body: dict[str, Any]) -> Any:
    """Only tasks the web app marks with ``@callable_from_api`` can be queued; any other
    name is a 404, as if no such task existed. 202 once the broker confirmed the message."""
    task_app = current_app.extensions["taskcore"]
    task = task_app.tasks.get(body["task"]) if is_exposed(body["task"]) else None
    if task is None:
        raise NotFound(f"no task named {body['task']!r} can be queued through the API")
    if body["queue"] and body["queue"].startswith(f"{task_app.settings.namespace}."):
        raise BadRequest(
            "invalid queue name: that is one of taskcore's own queues",
            {"queue": [f"must not start with {task_app.settings.namespace}."]},
        )
    try:
        handle = task.apply_async(
            body["args"],
            body["kwargs"],
            countdown=body["countdown"],
            queue=body["queue"],
            priority=body["priority"],
            idempotency_key=body["idempotency_key"],
        )
    except ConfigurationError as exc:
        if body["idempotency_key"] is not None and not task_app.settings.store_results:
            raise Conflict(str(exc)) from None
        raise BadRequest(str(exc)) from None
    except (TypeError, EncodeError) as exc:  # arguments that do not fit, or are not JSON
        raise BadRequest(str(exc)) from None
    audit("task.submit", handle.id, f"{handle.task} on {handle.queue}")
    return {"id": handle.id, "task": handle.task, "queue": handle.queue}


@api.get("/tasks/<task_id>")
@endpoint(
    "A task's state, result or error, progress and times",
    tag="tasks",
    response=TaskStatusSchema,
    errors=(409, 503),
    path_patterns=TASK_ID,
)
def task_status(task_id: str) -> Any:
    """From Redis while the task is kept there; after Redis's expiry (or with
    ``TASKCORE_STORE_RESULTS`` off) from the history database, with its events.
    An id nobody knows is PENDING (``source: none``)."""
    task_app = current_app.extensions["taskcore"]
    if task_app.settings.store_results:
        status = task_app.status(task_id)
        if status.task is not None or status.extra:
            return present.status_from_redis(status.as_dict())
        run = _history_run(task_id)
        return present.status_from_history(run) if run else present.unknown_status(task_id)
    run = _history_run(task_id)
    if run is None:
        raise Conflict(
            "task states are not stored (TASKCORE_STORE_RESULTS is off) and the history "
            "has no such task"
        )
    return present.status_from_history(run)


def _history_run(task_id: str) -> dict[str, Any] | None:
    """The task's history row and events; None if absent (or the history is unreachable)."""
    try:
        return current_app.extensions["taskcore_ops"].task_run(task_id)
    except (sa.exc.SQLAlchemyError, ConfigurationError) as exc:
        log.warning("API: task history unavailable for %s: %s", task_id, type(exc).__name__)
        return None


@api.post("/tasks/<task_id>/cancel")
@endpoint(
    "Cancel a task",
    tag="tasks",
    role="operator",
    body=CancelSchema,
    body_required=False,
    response=CancelResultSchema,
    status=202,
    errors=(503,),
    path_patterns=TASK_ID,
)
def cancel_task(task_id: str, body: dict[str, Any]) -> Any:
    """Not started yet: it is skipped when a worker receives it. Running, with
    ``terminate``: it is stopped. The body may be empty."""
    state = current_app.extensions["taskcore_ops"].cancel(task_id, body["terminate"])
    audit("task.cancel", task_id, "terminate" if body["terminate"] else "revoke")
    answer: dict[str, Any] = {"id": task_id, "revoked": True}
    if state is not None:
        answer["state"] = str(state)
    return answer
