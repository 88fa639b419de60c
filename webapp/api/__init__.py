"""The JSON API at ``/api/v1``: tasks, history, workflows, queues, dead letters, workers,
schedules, rate limits and performance, and the product's four workloads (quizzes,
documents, orders, reports), behind bearer tokens (or a signed-in session).

Operations views call only ``taskcore.operations.Operations`` and the ``TaskApp``; the
workload views (``views_quizzes.py`` ...) call the same plain functions as the workloads'
pages (``webapp.quizzes.submit``, ``webapp.documents.uploads``, ...). marshmallow
schemas (``schemas.py``) check every request and shape every answer, and the OpenAPI
document at ``/api/v1/openapi.json`` is generated from them.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import MethodNotAllowed

from ..security import csrf
from .endpoint import DEFAULT_MAX_CONTENT_LENGTH
from .errors import register_error_handlers

api = Blueprint("api_v1", __name__, url_prefix="/api/v1")


@api.before_request
def _limit_body_size() -> None:
    """Bodies over ``API_MAX_CONTENT_LENGTH`` (1 MiB by default) get a 413; an upload
    endpoint may set a limit of its own (``endpoint(max_body=...)``)."""
    described = getattr(
        current_app.view_functions.get(request.endpoint or ""), "api_endpoint", None
    )
    if described is not None and described.max_body is not None:
        request.max_content_length = described.max_body()
        return
    request.max_content_length = current_app.config.get(
        "API_MAX_CONTENT_LENGTH", DEFAULT_MAX_CONTENT_LENGTH
    )


@api.after_app_request
def _allow_methods(response: Response) -> Response:
    """A method a path of the API does not take is refused by routing, before the blueprint
    is known, so the app's own handler answers the 405 (in the API's shape, but without
    the ``Allow`` header RFC 9110 requires): list the methods the path takes."""
    refused = request.routing_exception
    if (
        isinstance(refused, MethodNotAllowed)
        and refused.valid_methods
        and request.path.startswith(f"{api.url_prefix}/")
        and "Allow" not in response.headers
    ):
        response.headers["Allow"] = ", ".join(sorted(refused.valid_methods))
    return response


register_error_handlers(api)
# endpoint() checks CSRF itself, after sign-in, for calls made with the session cookie.
csrf.exempt(api)

from . import (  # noqa: E402, F401
    openapi,
    views_documents,
    views_history,
    views_orders,
    views_queues,
    views_quizzes,
    views_reports,
    views_system,
    views_tasks,
    views_workflows,
)

__all__ = ["api"]
