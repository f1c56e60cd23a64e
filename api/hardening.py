"""What every request and response passes through, before any route: a bounded body, security headers,
and an access log that never holds a credential.

Pure ASGI middleware (no ``BaseHTTPMiddleware``): the body limit sees the raw ``http.request``
messages, so a body sent in chunks without a Content-Length is counted as it arrives, and nothing
is buffered beyond the limit.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import MEDIA_TYPE, PROBLEM_BASE, RETRY_AFTER_SECONDS, database_unavailable

__all__ = ["API_CSP", "HTML_CSP", "BodyLimit", "RedactCredentials", "SecurityHeaders", "install", "json_depth",
           "redact_query"]

# JSON answers are data, never a page: nothing may load, run or frame them.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# Pages (the big screen, the API docs, reports): scripts only from files this server serves, never inline.
# Inline styles stay allowed: the pages and ReDoc set style attributes, which cannot run code.
HTML_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "font-src 'self'; connect-src 'self'; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'none'")
_ALWAYS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
# Files that never change between releases may be cached; every other answer holds data someone may not see.
_CACHEABLE_PREFIXES = ("/static/",)

# Query parameters that carry a credential: their values never reach a log.
CREDENTIAL_PARAMETERS = frozenset({"token", "access_token", "api_key", "apikey", "key", "password", "secret",
                                   "signature", "sig"})
REDACTED = "REDACTED"

log = logging.getLogger(__name__)


def _problem(scope: Scope, status: int, title: str, detail: str, slug: str,
             errors: list[dict[str, str]] | None = None) -> tuple[list[tuple[bytes, bytes]], bytes]:
    body: dict[str, Any] = {"type": PROBLEM_BASE + slug, "title": title, "status": status, "detail": detail,
                            "instance": scope.get("path", "")}
    if errors:
        body["errors"] = errors
    data = json.dumps(body, ensure_ascii=False).encode()
    return [(b"content-type", MEDIA_TYPE.encode()), (b"content-length", str(len(data)).encode())], data


async def _send_problem(scope: Scope, send: Send, status: int, title: str, detail: str, slug: str,
                        errors: list[dict[str, str]] | None = None) -> None:
    headers, data = _problem(scope, status, title, detail, slug, errors)
    # The client may still be sending: say so, so it stops rather than waits.
    headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


_JSON_STRUCTURE = re.compile(rb'["\\\[\]{}]')


def json_depth(data: bytes, limit: int) -> bool:
    """True when the JSON text ``data`` nests arrays and objects no deeper than ``limit``.

    Counts brackets outside strings without parsing: the parser (which recurses) never sees a body
    nested deeper, and malformed text is left for it to refuse.
    """
    depth = 0
    in_string = False
    skip_until = -1  # the position after a backslash: the escaped character is not structure
    for match in _JSON_STRUCTURE.finditer(data):
        at = match.start()
        if at < skip_until:
            continue
        char = match.group()
        if in_string:
            if char == b"\\":
                skip_until = at + 2
            elif char == b'"':
                in_string = False
            continue
        if char == b'"':
            in_string = True
        elif char in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return False
        elif char in (b"]", b"}"):
            depth -= 1
    return True


def _json_refusal(body: bytes, max_depth: int) -> str | None:
    """Why a JSON body is refused before the parser sees it, or None."""
    try:
        # JSON between systems is UTF-8 (RFC 8259); anything else would reach the parser as a 400.
        body.decode("utf-8")
    except UnicodeDecodeError:
        return "the body is not UTF-8 text"
    if not json_depth(body, max_depth):
        return f"JSON nested deeper than {max_depth} levels"
    return None


def _is_json(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name.lower() == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return False


class BodyLimit:
    """Refuse a request body over ``max_bytes`` (413), and JSON that is not UTF-8 or is nested deeper than
    ``max_depth`` (422).

    The body is read here, up to the limit, and handed to the app whole: a declared Content-Length
    over the limit is refused before a byte is read, a chunked body as soon as it passes the limit.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, max_depth: int,
                 uploads: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_depth = max_depth
        # Paths that take a file as their body (evidence uploads), with a limit of their own.
        self.uploads = dict(uploads or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.uploads.get(scope.get("path", ""), self.max_bytes) if scope.get("method") == "POST" \
            else self.max_bytes
        headers = scope.get("headers") or []
        for name, value in headers:
            if name.lower() == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > limit:
                    await self._too_large(scope, send, limit)
                    return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._too_large(scope, send, limit)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body and _is_json(headers):
            reason = _json_refusal(body, self.max_depth)
            if reason is not None:
                await _send_problem(scope, send, 422, "Invalid input", f"body: {reason}", "invalid-input",
                                    [{"field": "body", "reason": reason}])
                return

        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, send: Send, limit: int) -> None:
        await _send_problem(scope, send, 413, "Content too large",
                            f"the request body is larger than {limit} bytes", "content-too-large",
                            [{"field": "body", "reason": f"at most {limit} bytes"}])


class SecurityHeaders:
    """Headers every answer carries: no MIME sniffing, no framing, no referrer, a content security policy
    (strict for data, scripts-from-files for pages), and ``Cache-Control: no-store`` on everything but
    static files. A header the route set itself is kept."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cacheable = str(scope.get("path", "")).startswith(_CACHEABLE_PREFIXES)
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                html = any(name.lower() == b"content-type" and value.lower().startswith(b"text/html")
                           for name, value in headers)
                wanted = [*_ALWAYS, (b"content-security-policy", (HTML_CSP if html else API_CSP).encode())]
                if not cacheable:
                    wanted.append((b"cache-control", b"no-store"))
                headers.extend((name, value) for name, value in wanted if name not in present)
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:
            # Starlette answers an unhandled error outside every middleware, so its 500 would leave without these
            # headers; answer it here instead, as the same problem, and log the traceback for the operator.
            if started:
                raise  # the answer is on its way: nothing left but to let the server close the connection
            if database_unavailable(exc):  # e.g. the request's commit, after its handler, met a database away
                log.warning("database unavailable on %s %s: %s", scope.get("method"), scope.get("path"),
                            type(exc).__name__)
                headers, data = _problem(scope, 503, "Service unavailable",
                                         "the database is not answering now; try again shortly", "unavailable")
                headers.append((b"retry-after", str(RETRY_AFTER_SECONDS).encode()))
                await send_with_headers({"type": "http.response.start", "status": 503, "headers": headers})
                await send_with_headers({"type": "http.response.body", "body": data})
                return
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            headers, data = _problem(scope, 500, "Internal error", "an unexpected error happened; it was logged",
                                     "internal-error")
            await send_with_headers({"type": "http.response.start", "status": 500, "headers": headers})
            await send_with_headers({"type": "http.response.body", "body": data})


def redact_query(target: str) -> str:
    """``target`` (a path with its query string) with the values of credential parameters replaced."""
    path, sep, query = target.partition("?")
    if not sep:
        return target
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(name.lower() in CREDENTIAL_PARAMETERS for name, _ in pairs):
        return target
    return path + "?" + urlencode([(name, REDACTED if name.lower() in CREDENTIAL_PARAMETERS else value)
                                   for name, value in pairs], safe="/:,")


class RedactCredentials(logging.Filter):
    """On uvicorn's access log: a token sent in a query string (an old wall-screen link, a careless script)
    is written as REDACTED. The API never takes a credential from a URL; the log must not keep one either."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str) and "?" in args[2]:
            record.args = (*args[:2], redact_query(args[2]), *args[3:])
        return True


def install(app: FastAPI, *, max_body_bytes: int, max_json_depth: int, uploads: dict[str, int] | None = None) -> None:
    """Add the middleware (the body limit innermost, so even a refusal carries the security headers) and the
    access-log filter."""
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes, max_depth=max_json_depth, uploads=uploads)
    app.add_middleware(SecurityHeaders)
    access_log = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactCredentials) for f in access_log.filters):
        access_log.addFilter(RedactCredentials())
