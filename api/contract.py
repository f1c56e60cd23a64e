"""The OpenAPI document states the errors each operation answers, as RFC 9457 problem details.

FastAPI declares only 200 and its own 422 shape. Every route here is handled the same way (the problem
handlers in :mod:`api.problems`, the edge in :mod:`api.hardening`), so which problems an operation can
give follows from what it is: a token means 401 and 403, a record named in the path or a body means 404,
a change may conflict (409), a body may be too large (413), and input may be invalid (422; any operation, as
an unknown query parameter is refused). Generated clients and fuzzers then read the real answers instead of
tripping over them.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.problems import MEDIA_TYPE

__all__ = ["PROBLEM_SCHEMA", "install_contract"]

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details; `errors` names each field at fault",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {"type": "array", "items": {
            "type": "object", "required": ["field", "reason"],
            "properties": {"field": {"type": "string"}, "reason": {"type": "string"}}}},
    },
}
_DESCRIPTIONS = {
    401: "Missing, unknown, expired or revoked token",
    403: "The role may not do this",
    404: "No such record (or not one this principal may see)",
    409: "The record's state does not allow it",
    413: "The request body is over the configured limit",
    422: "Invalid input (an unknown query parameter too); `errors` names each field",
    502: "A provider (cloud, device, runner) failed",
    503: "A part cloudctl needs does not answer",
}
_CHANGES = {"post", "put", "patch", "delete"}


def _problem(status: int) -> dict[str, Any]:
    return {"description": _DESCRIPTIONS[status],
            "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def _statuses(path: str, method: str, operation: dict[str, Any]) -> set[int]:
    # Every operation refuses a query parameter it does not declare (api.strict), so every one may answer 422;
    # every one reads the database, so every one answers 503 while the database is away.
    statuses: set[int] = {422, 503}
    if "requestBody" in operation:
        statuses.add(413)
    if operation.get("security"):
        # Any record an authenticated operation names (in the path, a filter or a body) may be out of reach.
        statuses |= {401, 403, 404}
    if method in _CHANGES:
        statuses.add(409)
        if path.startswith(("/api/v1/servers", "/api/v1/quotas", "/api/v1/requests")):
            statuses.add(502)
    return statuses


def describe_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (an OpenAPI document from FastAPI) with every operation's problem responses declared."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = PROBLEM_SCHEMA
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            responses = operation.setdefault("responses", {})
            for status in sorted(_statuses(path, method, operation)):
                responses[str(status)] = _problem(status)
    return schema


def install_contract(app: FastAPI) -> None:
    """Generate the app's OpenAPI document once, with its problems declared."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = describe_problems(get_openapi(
                title=app.title, version=app.version, openapi_version=app.openapi_version, summary=app.summary,
                description=app.description, routes=app.routes, tags=app.openapi_tags, servers=app.servers))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
