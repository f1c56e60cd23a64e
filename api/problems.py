"""RFC 9457 problem details for every error the API returns."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from cloudctl.core.errors import CloudctlError, NotAuthenticated

__all__ = ["PROBLEM_BASE", "install_problem_handlers", "problem"]

log = logging.getLogger(__name__)
PROBLEM_BASE = "https://cloudctl.example/problems/"
MEDIA_TYPE = "application/problem+json"

# Where a validation error sits in the request; people want the field's own name.
_LOCATIONS = {"body", "query", "path", "header", "cookie"}


def problem(
    request: Request,
    status: int,
    title: str,
    detail: str,
    *,
    slug: str | None = None,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug if slug else "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    if errors:
        body["errors"] = errors
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in _LOCATIONS:
        parts = parts[1:]
    return ".".join(parts) or "body"


async def _cloudctl_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CloudctlError)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, NotAuthenticated) else None
    return problem(request, exc.status, exc.title, str(exc), slug=exc.slug,
                   errors=[e.as_dict() for e in exc.errors] or None, headers=headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for err in exc.errors():
        reason = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "json_invalid":
            errors.append({"field": "body", "reason": _json_error(err, exc.body)})
            continue
        errors.append({"field": _field(err.get("loc", ())), "reason": reason})
    detail = "; ".join(f"{e['field']}: {e['reason']}" for e in errors)
    return problem(request, 422, "Invalid input", detail, slug="invalid-input", errors=errors)


def _json_error(err: Any, body: Any) -> str:
    """Where the JSON went wrong, as an editor counts: FastAPI's error has the character offset (its "loc"), which
    as a field name read "1"."""
    loc = err.get("loc", ())
    position = loc[-1] if loc and isinstance(loc[-1], int) else None
    why = str((err.get("ctx") or {}).get("error") or "not valid JSON")
    if position is None or not isinstance(body, str):
        return f"the body is not valid JSON: {why}"
    line = body.count("\n", 0, position) + 1
    column = position - (body.rfind("\n", 0, position) + 1) + 1
    return f"the body is not valid JSON: {why} at line {line}, column {column}"


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
    return problem(request, exc.status_code, title, str(exc.detail), headers=getattr(exc, "headers", None))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # The top of the request: log the traceback for the operator, tell the client nothing internal.
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(request, 500, "Internal error", "an unexpected error happened; it was logged",
                   slug="internal-error")


# How long a client is asked to wait before it tries again while the database is away.
RETRY_AFTER_SECONDS = 2


def database_unavailable(exc: BaseException) -> bool:
    """Whether a database error means "not reachable now" (down, restarting, too busy to answer in time)
    rather than a fault of the request or of cloudctl."""
    if isinstance(exc, PoolTimeout | OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    if not database_unavailable(exc):
        return await _unexpected(request, exc)
    # Not the client's fault, nothing to hide in a traceback: one line for the operator, 503 for the client.
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path,
                str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    return problem(request, 503, "Service unavailable", "the database is not answering now; try again shortly",
                   slug="unavailable", errors=[{"field": "database", "reason": type(exc).__name__}],
                   headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(CloudctlError, _cloudctl_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(PoolTimeout, _database_error)
    app.add_exception_handler(Exception, _unexpected)
