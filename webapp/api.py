"""The JSON API: send registered tasks, check health. Every bad request gets a 4xx that says why."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import redis
import sqlalchemy as sa
from flask import Blueprint, current_app, jsonify, request
from marshmallow import Schema, ValidationError, fields, validate

from taskcore import ConfigurationError, EncodeError, PublishError, State
from taskcore.history import task_runs

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


@api.get("/tasks/<task_id>")
def task_status(task_id: str) -> Any:
    """State, result or error, progress and timestamps of a task (PENDING if unknown)."""
    try:
        status = current_app.extensions["taskcore"].status(task_id)
    except redis.RedisError as exc:
        return error(503, f"the result store is unavailable: {exc}")
    except ConfigurationError as exc:  # TASKCORE_STORE_RESULTS is off
        return error(409, str(exc))
    return jsonify(status.as_dict())


class RevokeSchema(Schema):
    """Body of ``POST /api/tasks/<id>/revoke`` (may be empty)."""

    terminate = fields.Boolean(load_default=False)


@api.post("/tasks/<task_id>/revoke")
def revoke_task(task_id: str) -> Any:
    """Cancel a task: skipped if not started; stopped if running and ``terminate`` is true."""
    try:
        data = RevokeSchema().load(request.get_json(silent=True) or {})
    except ValidationError as exc:
        return error(400, "invalid request body", fields=exc.messages)
    task_app = current_app.extensions["taskcore"]
    try:
        task_app.revoke(task_id, terminate=data["terminate"])
        if not task_app.settings.store_results:
            return jsonify({"id": task_id, "revoked": True}), 202
        status = task_app.status(task_id)
    except redis.RedisError as exc:
        return error(503, f"the result store is unavailable: {exc}")
    return jsonify(status.as_dict()), 202


class HistoryQuerySchema(Schema):
    """Query string of ``GET /api/history``."""

    since = fields.AwareDateTime(load_default=None, default_timezone=UTC)
    state = fields.String(load_default=None, validate=validate.OneOf([s.value for s in State]))
    task = fields.String(load_default=None)
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


@api.get("/history")
def history() -> Any:
    """Finished and running tasks from the database, newest first (survives Redis expiry)."""
    try:
        query = HistoryQuerySchema().load(request.args)
    except ValidationError as exc:
        return error(400, "invalid query", fields=exc.messages)
    statement = sa.select(task_runs).order_by(task_runs.c.updated_at.desc()).limit(query["limit"])
    if query["since"] is not None:
        statement = statement.where(task_runs.c.updated_at >= query["since"])
    if query["state"] is not None:
        statement = statement.where(task_runs.c.state == query["state"])
    if query["task"] is not None:
        statement = statement.where(task_runs.c.task == query["task"])
    try:
        with current_app.extensions["taskcore_history"].connect() as connection:
            found = [dict(row._mapping) for row in connection.execute(statement)]
    except sa.exc.SQLAlchemyError as exc:
        return error(503, f"the history database is unavailable: {type(exc).__name__}")
    return jsonify({"runs": found})


@api.get("/health")
def health() -> Any:
    """Liveness: the web process answers."""
    return jsonify({"status": "ok"})
