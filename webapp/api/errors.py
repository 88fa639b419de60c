"""How the API answers what went wrong: one JSON shape, a 4xx or 503, never an HTML page."""

from __future__ import annotations

import logging

import redis
import sqlalchemy as sa
from flask import Blueprint, Response
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from taskcore.errors import ConfigurationError, PublishError, QueueNotFound, TaskcoreError

from .endpoint import BadRequest, error_reply

log = logging.getLogger("webapp.api")


class NotFound(Exception):
    """Something named in the path does not exist (404)."""


class Conflict(Exception):
    """The request cannot work with how the system is set up (409)."""


def register_error_handlers(api: Blueprint) -> None:
    """Answer every failure inside the blueprint's views in the API's error shape."""
    api.register_error_handler(BadRequest, _bad_request)
    api.register_error_handler(NotFound, lambda exc: error_reply(404, str(exc)))
    api.register_error_handler(Conflict, lambda exc: error_reply(409, str(exc)))
    api.register_error_handler(QueueNotFound, lambda exc: error_reply(404, str(exc)))
    api.register_error_handler(PublishError, _broker_down)
    api.register_error_handler(redis.RedisError, _redis_down)
    api.register_error_handler(sa.exc.SQLAlchemyError, _database_down)
    api.register_error_handler(ConfigurationError, lambda exc: error_reply(400, str(exc)))
    api.register_error_handler(TaskcoreError, _taskcore_error)
    api.register_error_handler(RequestEntityTooLarge, _too_large)
    api.register_error_handler(HTTPException, _http_error)
    api.register_error_handler(Exception, _unexpected)


def _bad_request(exc: BadRequest) -> Response:
    return error_reply(exc.status, exc.message, exc.fields)


def _broker_down(exc: PublishError) -> Response:
    # taskcore's messages name the broker without its password.
    return error_reply(503, f"the task queue is unavailable: {exc}")


def _redis_down(exc: redis.RedisError) -> Response:
    log.warning("API: Redis error: %s", exc)
    return error_reply(503, f"the result store (Redis) is unavailable: {exc}")


def _database_down(exc: sa.exc.SQLAlchemyError) -> Response:
    # The text of a database error can hold SQL and parameters: log it, never send it.
    log.warning("API: database error: %s", exc)
    return error_reply(503, f"the history database is unavailable: {type(exc).__name__}")


def _taskcore_error(exc: TaskcoreError) -> Response:
    return error_reply(503, f"the task system could not do that: {exc}")


def _too_large(exc: RequestEntityTooLarge) -> Response:
    from flask import current_app, request

    view = current_app.view_functions.get(request.endpoint or "")
    described = getattr(view, "api_endpoint", None)
    if described is not None and described.too_large is not None:
        return error_reply(413, described.too_large())
    limit = request.max_content_length
    return error_reply(413, f"the request body is larger than the limit of {limit} bytes")


def _http_error(exc: HTTPException) -> Response:
    reply = error_reply(exc.code or 500, exc.description or exc.name)
    # What the exception says beyond its body (Allow of a 405, WWW-Authenticate of a 401).
    for name, value in exc.get_headers():
        if name.lower() != "content-type":
            reply.headers[name] = value
    return reply


def _unexpected(exc: Exception) -> Response:
    log.exception("API: unexpected error")
    return error_reply(500, "internal error: the request failed; the server log says why")
