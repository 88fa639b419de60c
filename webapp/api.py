"""The JSON API: send registered tasks, check health. Every bad request gets a 4xx that says why."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request
from marshmallow import Schema, ValidationError, fields, validate

from taskcore import ConfigurationError, EncodeError, PublishError

api = Blueprint("api", __name__, url_prefix="/api")


class SendTaskSchema(Schema):
    """Body of ``POST /api/tasks``."""

    task = fields.String(required=True, validate=validate.Length(min=1, max=200))
    args = fields.List(fields.Raw(), load_default=list)
    kwargs = fields.Dict(keys=fields.String(), load_default=dict)
    countdown = fields.Float(load_default=None, validate=validate.Range(min=0))
    queue = fields.String(load_default=None)


def error(status: int, message: str, **extra: Any) -> tuple[Any, int]:
    """A JSON error body: ``{"error": message, ...}``."""
    return jsonify({"error": message, **extra}), status


@api.post("/tasks")
def send_task() -> Any:
    """Queue a registered task; 202 with its id once the broker confirmed it."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return error(400, 'send a JSON object: {"task": name, "args": [...], "kwargs": {...}}')
    try:
        data = SendTaskSchema().load(body)
    except ValidationError as exc:
        return error(400, "invalid request body", fields=exc.messages)
    task_app = current_app.extensions["taskcore"]
    task = task_app.tasks.get(data["task"])
    if task is None:
        return error(404, f"no task named {data['task']!r}", known=sorted(task_app.tasks))
    try:
        handle = task.apply_async(
            data["args"], data["kwargs"], countdown=data["countdown"], queue=data["queue"]
        )
    except (TypeError, EncodeError, ConfigurationError) as exc:
        return error(400, str(exc))
    except PublishError as exc:
        return error(503, f"the task queue is unavailable: {exc}")
    return jsonify({"id": handle.id, "task": handle.task, "queue": handle.queue}), 202


@api.get("/health")
def health() -> Any:
    """Liveness: the web process answers."""
    return jsonify({"status": "ok"})
