"""Schema pieces every domain shares: pages of results, and turning validation errors into ours."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_serializer,
)

from cloudctl.core.errors import FieldError, InvalidInput
from cloudctl.core.jobs import JobStatus

__all__ = [
    "AuditEntryPublic",
    "GiB",
    "JobDetail",
    "JobLogLinePublic",
    "JobPublic",
    "Page",
    "Schema",
    "field_errors",
    "gib",
    "parse",
]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


class Schema(BaseModel):
    model_config = ConfigDict(from_attributes=True, str_strip_whitespace=True, extra="forbid")

    @field_serializer("*", mode="wrap", when_used="json")
    def _utc(self, value: Any, handler: SerializerFunctionWrapHandler) -> Any:
        # Machine output speaks UTC with its offset, whatever zone a time was given in (people read the display zone).
        if isinstance(value, datetime) and value.tzinfo is not None:
            value = value.astimezone(UTC)
        return handler(value)


def gib(mib: int | float) -> float:
    """MiB, as the clouds count memory, in GiB, as cloudctl shows it everywhere (RAM GiB, as disks are)."""
    return round(mib / 1024, 3)


def _mib_as_gib(value: Any) -> Any:
    return gib(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


# A memory size read from a MiB attribute (``Field(validation_alias="ram_mb")``) and shown in GiB: one unit for
# memory and disk at every edge (API, CLI, exports), whatever the database and the clouds count in.
GiB = Annotated[float, BeforeValidator(_mib_as_gib)]


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


def field_errors(exc: ValidationError, *, prefix: tuple[str | int, ...] = ()) -> list[FieldError]:
    errors = []
    for err in exc.errors():
        loc = [str(part) for part in (*prefix, *err["loc"])]
        message = err["msg"]
        # pydantic prefixes custom ValueErrors with "Value error, "; people want just the reason.
        message = message.removeprefix("Value error, ")
        errors.append(FieldError(".".join(loc) or "body", message))
    return errors


def parse(model: type[M], data: Any) -> M:
    """Validate input from the CLI or a file, raising :class:`InvalidInput` that names each field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = field_errors(exc)
        first = errors[0]
        detail = "; ".join(f"{e.field}: {e.reason}" for e in errors)
        raise InvalidInput(detail, errors=errors, field_hint=first.field) from None


class AuditEntryPublic(Schema):
    id: int
    at: datetime
    actor: str
    actor_role: str
    action: str
    entity: str
    entity_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class JobLogLinePublic(Schema):
    id: int
    at: datetime
    level: str
    line: str


class JobPublic(Schema):
    id: int
    kind: str
    status: JobStatus
    idempotency_key: str | None
    params: dict[str, Any]
    result: dict[str, Any] | None
    progress_done: int
    progress_total: int | None
    fraction: float | None
    message: str | None
    error: str | None
    attempts: int
    max_attempts: int
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None


class JobDetail(JobPublic):
    log: list[JobLogLinePublic]
