"""The declarative base every table derives from, and the column types they share."""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from sqlalchemy import DateTime, MetaData, String, TypeDecorator, func
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["BEIJING", "Base", "LabelledEnum", "TimestampMixin", "UTCDateTime", "beijing_today", "utcnow"]

# The city's (and China's one) time zone: what "today" means to the bureau, its deadlines and its holidays.
BEIJING = ZoneInfo("Asia/Shanghai")


def utcnow() -> datetime:
    return datetime.now(UTC)


def beijing_today(now: datetime | None = None) -> date:
    """Today's date in Beijing (at ``now``, an aware time; the present by default).

    Deadlines, expiries and holidays are Beijing dates: ``utcnow().date()`` is still yesterday
    between 00:00 and 08:00 Beijing time.
    """
    now = now or utcnow()
    if now.tzinfo is None:
        raise ValueError("naive datetime: give the time with its zone")
    return now.astimezone(BEIJING).date()


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend.

    SQLite stores no zone, so values come back naive; this type refuses naive input
    (a naive time is ambiguous between UTC and Asia/Shanghai) and tags output as UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: cloudctl stores timezone-aware UTC times only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value if value.tzinfo is UTC else value.astimezone(UTC)

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], datetime | None] | None:
        processor = super().result_processor(dialect, coltype)
        if dialect.name != "sqlite" or processor is None:
            return processor
        generic = processor

        # SQLite hands back the text SQLAlchemy stored ("2026-12-05 14:00:00.000000", UTC, no zone). Parsed with
        # its zone in one C call, a time costs a sixth of parsing it and then tagging it with replace(tzinfo=...),
        # which alone is half a microsecond: a hundred times per page of fifty rows. Anything else (NULL, a time
        # written by hand in another form) takes the general way, as before.
        def utc_from_text(value: Any) -> datetime | None:
            try:
                return datetime.fromisoformat(value + "+00:00")
            except (TypeError, ValueError):
                return generic(value)

        return utc_from_text


class LabelledEnum(str, enum.Enum):
    """A status set that carries its Chinese label and display colour.

    Members are declared as ``NAME = "value", "中文", "colour"``; one class serves the
    database (stored by value), the API (serialised by value) and Rich output.
    """

    _value_: str
    label: str
    colour: str

    def __new__(cls, value: str, label: str = "", colour: str = "white") -> LabelledEnum:
        member = str.__new__(cls, value)
        member._value_ = value
        member.label = label or value
        member.colour = colour
        return member

    def __str__(self) -> str:
        return self._value_

    @property
    def rich(self) -> str:
        """``value (标签)`` in the member's colour, for Rich tables."""
        return f"[{self.colour}]{self._value_} ({self.label})[/]"


def enum_column(enum_cls: type[enum.Enum], length: int = 32) -> Any:
    """Store an enum by its value in a plain string column (portable; no DB enum types to migrate)."""
    from sqlalchemy import Enum as SAEnum

    return SAEnum(
        enum_cls,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), str: String(255)}


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, onupdate=utcnow, server_default=func.now()
    )
