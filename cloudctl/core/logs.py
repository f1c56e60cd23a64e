"""Log lines, as text or as one JSON object per line, each carrying the request and job it belongs to.

An API request gets a request id (the client's or the proxy's ``X-Request-ID`` when it is a sane one, else a
new one); it is answered in the same header, stamped on every log line written while the request runs, and
stored with every job the request submits, so the job's lines, in whatever worker process on whatever host,
carry the same id: one ``grep`` (or one journald field match) follows a change from the click to the VM.
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.json import JsonFormatter

__all__ = ["REQUEST_ID_HEADER", "bound", "configure_logging", "current_job_id", "current_request_id",
           "new_request_id", "sane_request_id"]

REQUEST_ID_HEADER = "X-Request-ID"
_request_id: ContextVar[str | None] = ContextVar("cloudctl_request_id", default=None)
_job_id: ContextVar[int | None] = ContextVar("cloudctl_job_id", default=None)
_SANE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def new_request_id() -> str:
    return uuid.uuid4().hex


def sane_request_id(value: str | None) -> str | None:
    """A client's request id when it is short and plain (it goes into logs verbatim), else None."""
    return value if value and _SANE.match(value) else None


def current_request_id() -> str | None:
    return _request_id.get()


def current_job_id() -> int | None:
    return _job_id.get()


@contextmanager
def bound(*, request_id: str | None = None, job_id: int | None = None) -> Iterator[None]:
    """Stamp the log lines written inside the block with this request (and job)."""
    request_token = _request_id.set(request_id)
    job_token = _job_id.set(job_id) if job_id is not None else None
    try:
        yield
    finally:
        _request_id.reset(request_token)
        if job_token is not None:
            _job_id.reset(job_token)


class _Context(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get()
        record.job_id = _job_id.get()
        return True


def configure_logging(level: int = logging.INFO, *, fmt: str = "text", stream: Any = None) -> logging.Handler | None:
    """Text: ``logging.basicConfig`` (nothing when the root logger has handlers already, as under a test runner).
    JSON: one handler of ours on the root logger, with the request and job ids on every record; returns it."""
    if fmt != "json":
        logging.basicConfig(level=level, format=TEXT_FORMAT, stream=stream)
        return None
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(_Context())
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(job_id)s",
                                       rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                                       json_ensure_ascii=False))
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_cloudctl", False):
            root.removeHandler(old)
    handler._cloudctl = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    return handler
