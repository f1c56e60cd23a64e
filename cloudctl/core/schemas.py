"""Schema pieces every domain shares: pages of results, and turning validation errors into ours."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Annotated, Any, Generic, Self, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    ValidationError,
    field_serializer,
)
from sqlalchemy import Row

from cloudctl.core.bounds import Id
from cloudctl.core.errors import FieldError, InvalidInput
from cloudctl.core.jobs import JobStatus
from cloudctl.core.rectification import Progress, UpdateKind
from cloudctl.core.text import NoControlMultiline

__all__ = [
    "AttachmentPublic",
    "AuditEntryPublic",
    "ExtensionDecisionIn",
    "ExtensionRequestIn",
    "GiB",
    "JobDetail",
    "JobLogLinePublic",
    "JobPublic",
    "Page",
    "ProgressIn",
    "RectificationUpdatePublic",
    "Schema",
    "field_errors",
    "gib",
    "parse",
]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


def _utc(self: Any, value: Any, handler: SerializerFunctionWrapHandler) -> Any:
    # Machine output speaks UTC with its offset, whatever zone a time was given in (people read the display zone).
    if isinstance(value, datetime) and value.tzinfo is not None:
        value = value.astimezone(UTC)
    return handler(value)


_DATETIME = re.compile(r"\bdatetime\b")


def _datetime_fields(cls: type) -> list[str]:
    """The fields of ``cls`` (its own and inherited) whose annotation names ``datetime``."""
    names: dict[str, None] = {}
    for klass in reversed(cls.__mro__):
        for name, annotation in vars(klass).get("__annotations__", {}).items():
            text = annotation if isinstance(annotation, str) else repr(annotation)
            if _DATETIME.search(text) and not name.startswith("_") and "ClassVar" not in text:
                names[name] = None
    return list(names)


class Schema(BaseModel):
    model_config = ConfigDict(from_attributes=True, str_strip_whitespace=True, extra="forbid")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Times are turned to UTC on their own fields only: a wrap serializer on every field ("*") costs a Python
        # call per value, a fifth of a 50-row page's serialisation. Each class names all its datetime fields
        # (inherited ones too) under one attribute, so a subclass's serializer replaces its parent's.
        super().__init_subclass__(**kwargs)
        fields = _datetime_fields(cls)
        if fields:
            cls._utc = field_serializer(  # type: ignore[attr-defined]
                *fields, mode="wrap", when_used="json", check_fields=False)(_utc)


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

    @classmethod
    def of(cls, rows: Sequence[Any], *, total: int, limit: int, offset: int) -> Self:
        """``Page[ItemSchema].of(rows, ...)``: a page of records or of rows of columns (``read.page``), every item
        validated as the item schema in one call. A row of columns is read as a dict of its columns: reading a
        row's columns one attribute at a time costs three times as much, and a call per item as much again."""
        items: Sequence[Any] = rows
        if rows and isinstance(rows[0], Row):
            columns = rows[0]._fields
            items = [dict(zip(columns, row, strict=True)) for row in rows]
        return cls.model_validate({"items": items, "total": total, "limit": limit, "offset": offset},
                                  from_attributes=True)


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
    # A shard's parent job (long work split so that several workers share it).
    parent_id: int | None = None


class JobDetail(JobPublic):
    log: list[JobLogLinePublic]


# ---------------------------------------------------------------- the department's side of rectification

Note = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=2000), NoControlMultiline]


class AttachmentPublic(Schema):
    id: int
    entity: str
    entity_id: str
    filename: str
    media_type: str
    size: int
    sha256: str
    uploaded_by: str
    uploaded_at: datetime


class ProgressIn(Schema):
    """整改进展: in_progress, or fixed (please verify: the next scan or check decides), with the evidence attached
    to the record before (``POST /api/v1/attachments``)."""

    status: Progress
    note: Note
    attachments: list[Id] = Field(default_factory=list, max_length=20)


class ExtensionRequestIn(Schema):
    to: date = Field(description="the deadline asked for")
    reason: Note


class ExtensionDecisionIn(Schema):
    grant: bool
    note: Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000), NoControlMultiline] | None = None


class RectificationUpdatePublic(Schema):
    id: int
    kind: UpdateKind
    status: str
    note: str
    requested_to: date | None
    attachments: list[int]
    by: str
    at: datetime
    decided_by: str | None
    decided_at: datetime | None
    decision_note: str | None
