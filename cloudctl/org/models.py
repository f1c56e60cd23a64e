"""Tables of the organisation domain."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ColumnElement,
    ForeignKey,
    Index,
    SQLColumnExpression,
    String,
    Text,
    UniqueConstraint,
    exists,
    false,
)
from sqlalchemy.orm import Mapped, aliased, mapped_column, relationship

from cloudctl.core import read
from cloudctl.core.auth import Role
from cloudctl.core.models import Base, LabelledEnum, TimestampMixin, enum_column, utcnow

__all__ = ["ALLOWED_PARENTS", "ApiToken", "BusinessSystem", "Unit", "UnitKind", "User", "in_subtree"]


class UnitKind(LabelledEnum):
    CITY = "city", "市", "bright_white"
    DEPARTMENT = "department", "市直部门", "cyan"
    MUNICIPAL_UNIT = "municipal_unit", "市直单位", "blue"
    COUNTY = "county", "县/市/区", "magenta"
    TOWN = "town", "乡镇/街道", "yellow"
    VILLAGE = "village", "行政村/社区", "green"

    @property
    def level(self) -> str:
        """横向 (municipal, connected horizontally) or 纵向 (county and below, vertically)."""
        if self in (UnitKind.DEPARTMENT, UnitKind.MUNICIPAL_UNIT):
            return "horizontal"
        if self is UnitKind.CITY:
            return "city"
        return "vertical"


# Which kinds may stand under which: the shape of the administrative tree.
ALLOWED_PARENTS: dict[UnitKind, frozenset[UnitKind | None]] = {
    UnitKind.CITY: frozenset({None}),
    UnitKind.DEPARTMENT: frozenset({UnitKind.CITY}),
    UnitKind.MUNICIPAL_UNIT: frozenset({UnitKind.CITY, UnitKind.DEPARTMENT}),
    UnitKind.COUNTY: frozenset({UnitKind.CITY}),
    UnitKind.TOWN: frozenset({UnitKind.COUNTY}),
    UnitKind.VILLAGE: frozenset({UnitKind.TOWN}),
}


class Unit(TimestampMixin, Base):
    __tablename__ = "units"
    __table_args__ = (Index("ix_units_parent_id_name", "parent_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[UnitKind] = mapped_column(enum_column(UnitKind), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    # Materialised path of ids, "/1/5/23/": a subtree is one indexed prefix match,
    # which is how a county's (or a department's) records are scoped.
    path: Mapped[str] = mapped_column(String(512), index=True, default="/")
    contact_name: Mapped[str | None] = mapped_column(String(64))
    contact_phone: Mapped[str | None] = mapped_column(String(32))
    contact_email: Mapped[str | None] = mapped_column(String(128))

    # join_depth: a self-referential joined load is only applied when its depth is given.
    parent: Mapped[Unit | None] = relationship(remote_side=[id], lazy="joined", join_depth=1)

    @property
    def parent_code(self) -> str | None:
        return self.parent.code if self.parent is not None else None


def in_subtree(path: str, unit: SQLColumnExpression[Any]) -> ColumnElement[bool]:
    """``unit`` (a unit id column) names the unit at ``path`` or one below it."""
    if unit is Unit.id:
        # The units table itself (or a query joined to it): its own path, without a subquery.
        return Unit.path.startswith(path)
    # The record's own unit looked up by its key, correlated to the record (never to a units table the outer
    # query reads: hence the alias): one key lookup per row, as a join would be.
    tree = aliased(Unit)
    return exists().where(tree.id == unit, tree.path.startswith(path))


# The read kit in core scopes every query with this; it cannot import the units table itself.
read.register_unit_tree(in_subtree)


class BusinessSystem(TimestampMixin, Base):
    __tablename__ = "business_systems"
    __table_args__ = (
        UniqueConstraint("unit_id", "name", name="uq_business_systems_unit_id_name"),
        CheckConstraint("mlps_level BETWEEN 1 AND 4", name="mlps_level_range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    mlps_level: Mapped[int]
    # Serves the public or other departments directly (办事大厅, 12345…): reclaim sizes it with more headroom.
    user_facing: Mapped[bool] = mapped_column(default=False, server_default=false())
    contact_name: Mapped[str | None] = mapped_column(String(64))
    contact_phone: Mapped[str | None] = mapped_column(String(32))
    contact_email: Mapped[str | None] = mapped_column(String(128))
    description: Mapped[str | None] = mapped_column(Text)

    unit: Mapped[Unit] = relationship(lazy="joined", innerjoin=True)

    @property
    def unit_code(self) -> str:
        return self.unit.code


class User(TimestampMixin, Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(64))
    role: Mapped[Role] = mapped_column(enum_column(Role, 16))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    active: Mapped[bool] = mapped_column(default=True)

    unit: Mapped[Unit | None] = relationship(lazy="joined")

    @property
    def unit_code(self) -> str | None:
        return self.unit.code if self.unit is not None else None


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # Only a SHA-256 of the token is kept: the token is 256 random bits, so a fast hash
    # is enough (no dictionary to attack) and keeps every API request cheap.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters, to tell tokens apart in a listing without revealing them.
    prefix: Mapped[str] = mapped_column(String(16))
    description: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(lazy="joined", innerjoin=True)
