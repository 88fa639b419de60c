"""The OpenAPI 3 document of /api/v1, generated with apispec from the views' own schemas.

Every route of the blueprint that carries an ``@endpoint`` description becomes an
operation: its path parameters, query and body schemas, its answer and the errors it
can give. Nothing is written by hand, so the document follows the code.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask, Response, current_app, jsonify
from marshmallow import Schema

from . import api
from .endpoint import Endpoint
from .schemas import ErrorSchema

TITLE = "taskcore API"
VERSION = "1"
OPENAPI_VERSION = "3.0.3"
ERRORS = {
    400: "The request is malformed or invalid (fields say which).",
    401: "No valid bearer token (or session) was sent; or a token called what needs a person.",
    403: "The token's role may not do this (operator needed).",
    404: "No such task, queue, schedule, or workload item visible to the caller.",
    409: "This cannot work with how the system (or the item) is now.",
    413: "The request body is over the size limit.",
    415: "The uploaded file is not of a type that is accepted.",
    422: "The request is well formed but its content is refused (fields say why).",
    503: "The broker, Redis or the database cannot be reached.",
    507: "There is no room left to store the upload.",
}
_PARAMETER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
_CACHE_KEY = "webapp.api.openapi"


def document(app: Flask) -> dict[str, Any]:
    """The OpenAPI document of ``app``'s /api/v1 routes (built once per app)."""
    cached = app.extensions.get(_CACHE_KEY)
    if cached is None:
        cached = app.extensions[_CACHE_KEY] = _build(app)
    return cached


def _build(app: Flask) -> dict[str, Any]:
    spec = APISpec(
        title=TITLE,
        version=VERSION,
        openapi_version=OPENAPI_VERSION,
        plugins=[MarshmallowPlugin()],
        info={
            "description": "Queue tasks and operate taskcore: history, queues, dead letters, "
            "workers, schedules, rate limits; and use the workloads: quizzes, documents, "
            "orders, reports. Send 'Authorization: Bearer <token>' "
            "(flask --app webapp token create NAME --role viewer|operator). Viewers read; "
            'operators act. Every error is {"error": {"message": ..., "fields": {...}}}.'
        },
        security=[{"bearer": []}],
    )
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    spec.components.schema("Error", schema=ErrorSchema)
    for status, text in ERRORS.items():
        spec.components.response(
            f"Error{status}",
            {"description": text, "content": {"application/json": {"schema": "Error"}}},
        )
    operations: dict[str, dict[str, Any]] = defaultdict(dict)
    described_views = []
    for rule in app.url_map.iter_rules():
        described: Endpoint | None = getattr(
            app.view_functions.get(rule.endpoint), "api_endpoint", None
        )
        if described is not None and rule.endpoint.startswith(f"{api.name}."):
            described_views.append((rule, described))
    _register_extras(spec, [d for _, d in described_views])
    for rule, described in described_views:
        path = _PARAMETER.sub(r"{\1}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            operations[path][method.lower()] = _operation(
                described, rule.endpoint.split(".")[-1], sorted(rule.arguments)
            )
    for path in sorted(operations):
        spec.path(path=path, operations=operations[path])
    return spec.to_dict()


def _register_extras(spec: APISpec, described: list[Endpoint]) -> None:
    """Schemas with rules across fields carry them as ``openapi_extra`` (e.g. ``oneOf``):
    register those first, so that every reference to them gets the rule too."""
    seen: set[type[Schema]] = set()
    for endpoint in described:
        for schema in (endpoint.query, endpoint.body, endpoint.response):
            kind = type(schema)
            extra = getattr(kind, "openapi_extra", None)
            if schema is None or extra is None or kind in seen:
                continue
            seen.add(kind)
            spec.components.schema(kind.__name__.removesuffix("Schema"), extra, schema=kind)


def _operation(described: Endpoint, name: str, arguments: list[str]) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": described.summary}
    if described.produces:
        binary = {"schema": {"type": "string", "format": "binary"}}
        answer["content"] = {kind: binary for kind in described.produces}
    elif described.response is not None:
        answer["content"] = {"application/json": {"schema": described.response}}
    operation: dict[str, Any] = {
        "operationId": name,
        "summary": described.summary,
        "description": described.description,
        "tags": [described.tag],
        "responses": {str(described.status): answer},
    }
    parameters: list[dict[str, Any]] = [
        {
            "in": "path",
            "name": argument,
            "required": True,
            "schema": {"type": "string", "pattern": described.path_patterns.get(argument, ".+")},
        }
        for argument in arguments
    ]
    if described.query is not None:
        parameters.append({"in": "query", "schema": described.query})
    if parameters:
        operation["parameters"] = parameters
    if described.body is not None:
        operation["requestBody"] = {
            "required": described.body_required,
            "content": {"application/json": {"schema": described.body}},
        }
    if described.form is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"multipart/form-data": {"schema": described.form}},
        }
    errors = set(described.errors)
    if parameters or described.body is not None or described.form is not None:
        errors.add(400)
    if described.body is not None or described.form is not None:
        errors.add(413)
    if described.role is None:
        operation["security"] = []
    else:
        errors.add(401)
        if described.role == "operator":
            errors.add(403)
    for status in sorted(errors):
        operation["responses"][str(status)] = f"Error{status}"
    return operation


@api.get("/openapi.json")
def openapi_document() -> Response:
    """The OpenAPI 3 document of this API (no sign-in needed)."""
    return jsonify(document(current_app._get_current_object()))  # type: ignore[attr-defined]
