"""One error shape: an HTML page for browsers, ``{"error": {"message": ...}}`` for the API."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import (
    HTTPException,
    InternalServerError,
    MethodNotAllowed,
    RequestEntityTooLarge,
)

log = logging.getLogger(__name__)

TITLES = {
    400: "Bad request",
    401: "Sign-in required",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Too large",
    415: "Unsupported file type",
    429: "Too many requests",
    500: "Server error",
    503: "Unavailable",
}


def wants_json() -> bool:
    """Whether the current request is an API call rather than a page view in a browser.

    True for requests that carry an ``Authorization: Bearer`` header, go to ``/api/...``,
    send JSON, or accept JSON but not HTML.
    """
    authorization = request.headers.get("Authorization", "").lstrip().lower()
    if authorization.startswith("bearer") or request.path.startswith("/api/"):
        return True
    if request.is_json:
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def json_error(status: int, message: str, fields: dict[str, Any] | None = None) -> Response:
    """A JSON error response: ``{"error": {"message": ..., "fields": {...}}}``."""
    body: dict[str, Any] = {"message": message}
    if fields:
        body["fields"] = fields
    response = jsonify({"error": body})
    response.status_code = status
    return response


def error_response(status: int, message: str) -> Response:
    """The error as JSON for API calls, else the ``error.html`` page."""
    if wants_json():
        return json_error(status, message)
    title = TITLES.get(status, "Error")
    page = render_template("error.html", status=status, title=title, message=message)
    return Response(page, status=status, mimetype="text/html")


def _http_error(exc: HTTPException) -> Response:
    if isinstance(exc, RequestEntityTooLarge) and exc.description == type(exc).description:
        return error_response(413, _too_large_message())
    message = exc.description or TITLES.get(exc.code or 500, "")
    if isinstance(exc, MethodNotAllowed) and exc.description == type(exc).description:
        methods = sorted(set(exc.valid_methods or ()) - {"HEAD", "OPTIONS"})
        message = (
            f"This address takes {' or '.join(methods) or 'another method'} only: it is "
            "where a form sends its answer. Go back to the page with the form."
        )
    response = error_response(exc.code or 500, message)
    # What the exception says beyond its page (a 405's Allow, a 429's Retry-After).
    for name, value in exc.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def _too_large_message() -> str:
    limit = request.max_content_length
    if not limit:
        return "The request is too large."
    size = f"{limit // 1024:,} KiB" if limit >= 1024 else f"{limit} bytes"
    return f"The request is too large: a form may send at most {size}."


def _server_error(exc: InternalServerError) -> Response:
    """An unexpected exception (outside debugging and tests, where it propagates): the
    console's page, or a bare one if even that cannot be drawn (the database is down)."""
    message = "Something went wrong on our side; it has been logged. Try again in a moment."
    try:
        return error_response(500, message)
    except Exception:  # the page itself needs the database (the signed-in user)
        log.exception("the error page of a 500 could not be rendered")
        return Response(message + "\n", status=500, mimetype="text/plain")


def _csrf_error(exc: CSRFError) -> Response:
    reason = exc.description or "the CSRF token is missing or invalid."
    reason = reason[:1].lower() + reason[1:]
    return error_response(
        400, f"The form could not be checked: {reason} Reload the page and try again."
    )


def register_error_handlers(app: Flask) -> None:
    """Answer every HTTP error (400, 403, 404, 405, 409, 413, ...), CSRF failures and
    unexpected exceptions app-wide in the shape the client wants: never werkzeug's bare page.

    A blueprint may register its own handlers; Flask prefers those for its routes.
    """
    for status in (400, 403, 404, 405):
        app.register_error_handler(status, _http_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(InternalServerError, _server_error)
    app.register_error_handler(CSRFError, _csrf_error)
