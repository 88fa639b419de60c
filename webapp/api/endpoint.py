"""The ``endpoint`` decorator: access check, request parsing and response dumping in one place.

Each view says who may call it and which schemas describe its query, body and answer; the
decorator applies them, and ``openapi.py`` reads the same description to write the document::

    @api.post("/queues/<name>/purge")
    @endpoint("Purge a queue", role="operator", response=PurgeResultSchema, errors=(404, 503))
    def purge_queue(name: str) -> dict: ...
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Response, current_app, jsonify, request
from marshmallow import Schema, ValidationError
from werkzeug.exceptions import BadRequest as HTTPBadRequest

from ..auth.access import bearer_header_present, requires
from ..auth.models import Role
from ..errors import json_error
from ..security import csrf

#: Request bodies larger than this many bytes get a 413 (``API_MAX_CONTENT_LENGTH``).
DEFAULT_MAX_CONTENT_LENGTH = 1024 * 1024
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


_JSON_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number"}
_JSON_KINDS |= {bool: "true or false", type(None): "null"}


class BadRequest(Exception):
    """A request the API refuses with 400: ``message`` and per-field ``fields``."""

    status = 400

    def __init__(self, message: str, fields: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields


class Refused(BadRequest):
    """A well-formed request refused with another 4xx (415, 422, 507...)."""

    def __init__(self, status: int, message: str, fields: dict[str, Any] | None = None) -> None:
        super().__init__(message, fields)
        self.status = status


@dataclass(frozen=True)
class Endpoint:
    """What the OpenAPI document says about one view."""

    summary: str
    tag: str
    role: Role | None
    query: Schema | None
    body: Schema | None
    body_required: bool
    response: Schema | None
    status: int
    errors: tuple[int, ...]
    description: str = ""
    path_patterns: dict[str, str] = field(default_factory=dict)
    #: A multipart/form-data body (an upload) the view reads itself; for the document.
    form: Schema | None = None
    #: Content types of a binary answer (a file) instead of JSON.
    produces: tuple[str, ...] = ()
    #: The body size limit of this view, in bytes, if not ``API_MAX_CONTENT_LENGTH``,
    #: and what a 413 then says.
    max_body: Callable[[], int] | None = None
    too_large: Callable[[], str] | None = None


def endpoint(
    summary: str,
    *,
    tag: str,
    role: Role | None = "viewer",
    query: type[Schema] | None = None,
    body: type[Schema] | None = None,
    body_required: bool = True,
    response: type[Schema] | None = None,
    status: int = 200,
    errors: tuple[int, ...] = (),
    path_patterns: dict[str, str] | None = None,
    form: type[Schema] | None = None,
    produces: tuple[str, ...] = (),
    max_body: Callable[[], int] | None = None,
    too_large: Callable[[], str] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Response]]:
    """Describe a view and let it receive ``query=`` and ``body=`` already validated.

    ``role`` None means no sign-in needed. The view returns the data of a ``status``
    answer (dumped with ``response``) or a Response of its own. ``form`` describes a
    multipart upload the view reads from ``request.files`` itself (with ``max_body`` as
    its size limit); ``produces`` the content types of a file the view sends.
    """

    def decorator(view: Callable[..., Any]) -> Callable[..., Response]:
        spec = Endpoint(
            summary=summary,
            tag=tag,
            role=role,
            query=query() if query else None,
            body=body() if body else None,
            body_required=body_required,
            response=response() if response else None,
            status=status,
            errors=errors,
            description=(view.__doc__ or "").strip(),
            path_patterns=dict(path_patterns or {}),
            form=form() if form else None,
            produces=produces,
            max_body=max_body,
            too_large=too_large,
        )

        @functools.wraps(view)
        def run(*args: Any, **kwargs: Any) -> Response:
            _check_csrf()
            for name, pattern in spec.path_patterns.items():
                if not re.fullmatch(pattern, str(kwargs.get(name, ""))):
                    label = name.replace("_", " ")
                    raise BadRequest(
                        f"invalid {label} in the path", {name: [f"must match {pattern}"]}
                    )
            if spec.query is not None:
                kwargs["query"] = _load(spec.query, request.args, "invalid query")
            elif request.args:
                unknown = {name: ["Unknown field."] for name in request.args}
                raise BadRequest("this endpoint takes no query parameters", unknown)
            if spec.body is not None:
                kwargs["body"] = _load(spec.body, _json_object(spec.body_required), None)
            answer = view(*args, **kwargs)
            if isinstance(answer, Response):
                return answer
            data = spec.response.dump(answer) if spec.response is not None else answer
            reply = jsonify(data)
            reply.status_code = spec.status
            return reply

        wrapped = requires(role)(run) if role is not None else run  # type: ignore[arg-type]
        wrapped.api_endpoint = spec  # type: ignore[attr-defined]
        return wrapped

    return decorator


def _check_csrf() -> None:
    """A call made with the session cookie (not a bearer token) that changes something
    must carry the page's CSRF token (``X-CSRFToken``); CSRFError (a 400) if not.

    The blueprint is exempt from the app-wide check, which runs before sign-in is known,
    so that a call without any credentials gets its 401 rather than a CSRF error.
    """
    if request.method in SAFE_METHODS or bearer_header_present():
        return
    if current_app.config.get("WTF_CSRF_ENABLED", True):
        csrf.protect()


def _load(schema: Schema, data: Any, message: str | None) -> dict[str, Any]:
    try:
        return schema.load(data)
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        raise BadRequest(message or "invalid request body", messages) from None


def _json_object(required: bool) -> dict[str, Any]:
    """The request body as a JSON object; ``{}`` for an empty optional body."""
    raw = request.get_data(cache=True)  # a body over the size limit raises 413 here
    if not raw.strip():
        if required:
            raise BadRequest("send a JSON object as the request body")
        return {}
    try:
        data = request.get_json(force=True, silent=False)
        # Text every store can hold: a lone surrogate (an unpaired "\ud800" escape) is
        # valid JSON but no Unicode, and PostgreSQL, Redis and the broker refuse it.
        json.dumps(data, ensure_ascii=False).encode()
    except HTTPBadRequest:
        raise BadRequest("send a JSON object: the body is not valid JSON") from None
    except RecursionError:
        raise BadRequest("send a JSON object: the body is nested too deeply") from None
    except UnicodeEncodeError:
        raise BadRequest(
            "send Unicode text: the body holds a lone surrogate (an unpaired \\ud800-\\udfff"
            " escape)"
        ) from None
    if not isinstance(data, dict):
        raise BadRequest(f"send a JSON object, not {_JSON_KINDS.get(type(data), 'that')}")
    return data


def error_reply(status: int, message: str, fields: dict[str, Any] | None = None) -> Response:
    """The API's one error shape (``webapp.errors.json_error``)."""
    return json_error(status, message, fields)
