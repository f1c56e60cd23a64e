"""Domain errors. The API maps them to RFC 9457 problem details, the CLI to one red line.

Each error can name the field and the reason, so a person knows what to fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = [
    "CloudctlError",
    "Conflict",
    "FieldError",
    "InvalidInput",
    "NotAuthenticated",
    "NotFound",
    "PermissionDenied",
    "ProviderError",
    "Unavailable",
]


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "reason": self.reason}


class CloudctlError(Exception):
    """Base of every error cloudctl raises on purpose."""

    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"
    slug: ClassVar[str] = "internal-error"

    def __init__(self, detail: str, *, field: str | None = None, errors: list[FieldError] | None = None,
                 **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors: list[FieldError] = list(errors or [])
        if field is not None:
            self.errors.insert(0, FieldError(field, detail))
        self.extra = extra
        # The file the error is about, when it came from one (set by cloudctl.core.tabular.in_file).
        self.source: str | None = None

    @property
    def field(self) -> str | None:
        return self.errors[0].field if self.errors else None

    def __str__(self) -> str:
        text = self.detail
        # "units.csv: rows.3.name: …", but "units.csv: the file is empty" rather than "units.csv: file: …".
        if self.field and not self.detail.startswith(self.field) and not (self.source and self.field == "file"):
            text = f"{self.field}: {self.detail}"
        return f"{self.source}: {text}" if self.source else text


class InvalidInput(CloudctlError):
    status = 422
    title = "Invalid input"
    slug = "invalid-input"


class NotFound(CloudctlError):
    status = 404
    title = "Not found"
    slug = "not-found"


class Conflict(CloudctlError):
    status = 409
    title = "Conflict"
    slug = "conflict"


class NotAuthenticated(CloudctlError):
    status = 401
    title = "Not authenticated"
    slug = "not-authenticated"


class PermissionDenied(CloudctlError):
    status = 403
    title = "Permission denied"
    slug = "permission-denied"


class ProviderError(CloudctlError):
    """An external system (cloud, device, runner) failed; adapters translate their SDK's errors to it."""

    status = 502
    title = "Provider error"
    slug = "provider-error"


class Unavailable(CloudctlError):
    """A part cloudctl needs (its database, a worker) is not answering; try again later."""

    status = 503
    title = "Service unavailable"
    slug = "unavailable"
