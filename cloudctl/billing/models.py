"""Tables of money (资费 / 账单): tariffs per provider cloud, and the stored statements of closed months.

Amounts are CNY as :class:`~decimal.Decimal`, kept exactly as whole ten-thousandths of a yuan (:class:`Money`):
SQLite has no decimal type, and a float would turn a month of small prices into a bill nobody can reconcile.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, CheckConstraint, Date, ForeignKey, String, TypeDecorator, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cloudctl.compute.models import Cloud
from cloudctl.core.models import Base, utcnow
from cloudctl.org.models import BusinessSystem, Unit

__all__ = ["MONEY_PLACES", "Budget", "Money", "StatementLine", "StatementMonth", "Tariff"]

# Ten-thousandths of a yuan: a price per GiB-month can be a few fen, and a day's share of it less.
MONEY_PLACES = 4
_SCALE = Decimal(10) ** MONEY_PLACES


class Money(TypeDecorator[Decimal]):
    """CNY as an exact Decimal, stored as an integer count of 1/10,000 yuan on every database."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> int | None:
        if value is None:
            return None
        scaled = Decimal(value) * _SCALE
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{value} CNY has more than {MONEY_PLACES} decimal places")
        return int(scaled)

    def process_result_value(self, value: int | None, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        exact = Decimal(value) / _SCALE
        # Shown as people write amounts: to the fen, more places only where the price has them (0.0125).
        cents = exact.quantize(Decimal("0.01"))
        return cents if cents == exact else exact.normalize()


class Tariff(Base):
    """A price of one resource on one provider cloud (资费), CNY per unit and month, from a day on.

    A new price is a new row from its day: the rows of a cloud are its tariff history, and a month is priced
    day by day with the row in force on each day. ``flavor_family`` narrows a price to the flavors whose name
    starts with it (``gpu``, ``m1.``); the longest family that matches wins, "" is every flavor.
    """

    __tablename__ = "tariffs"
    __table_args__ = (
        UniqueConstraint("cloud_id", "resource", "flavor_family", "effective_from",
                         name="uq_tariffs_cloud_resource_family_from"),
        CheckConstraint("price >= 0", name="price_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    cloud_id: Mapped[int] = mapped_column(ForeignKey("clouds.id", ondelete="CASCADE"), index=True)
    # vcpu, ram_gib, disk_gib (a VM's own disk), or volume_gib:<volume type>.
    resource: Mapped[str] = mapped_column(String(80))
    flavor_family: Mapped[str] = mapped_column(String(64), default="", server_default="")
    effective_from: Mapped[date] = mapped_column(Date)
    price: Mapped[Decimal] = mapped_column(Money())
    note: Mapped[str | None] = mapped_column(String(200))
    set_by: Mapped[str] = mapped_column(String(128))
    set_at: Mapped[datetime] = mapped_column(default=utcnow)

    cloud: Mapped[Cloud] = relationship(lazy="joined", innerjoin=True)

    @property
    def cloud_name(self) -> str:
        return self.cloud.name


class StatementMonth(Base):
    """A closed month (已结账): its statement lines are stored and no later price or inventory edit rewrites them."""

    __tablename__ = "statement_months"

    id: Mapped[int] = mapped_column(primary_key=True)
    month: Mapped[str] = mapped_column(String(7), unique=True)
    closed_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_by: Mapped[str] = mapped_column(String(128))


class StatementLine(Base):
    """One server's charge over a run of days at one set of prices, as the statement of a closed month keeps it.

    Names are copied, not joined: a unit or system renamed later does not rename last year's bill.
    """

    __tablename__ = "statement_lines"
    __table_args__ = (CheckConstraint("days >= 1 AND days <= 31", name="days_in_month"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    month_id: Mapped[int] = mapped_column(ForeignKey("statement_months.id", ondelete="CASCADE"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    business_system_id: Mapped[int | None] = mapped_column(ForeignKey("business_systems.id", ondelete="SET NULL"))
    cloud_id: Mapped[int] = mapped_column(ForeignKey("clouds.id", ondelete="RESTRICT"))
    server_id: Mapped[int | None]
    unit_code: Mapped[str] = mapped_column(String(64))
    unit_name: Mapped[str] = mapped_column(String(128))
    business_system: Mapped[str] = mapped_column(String(128))
    cloud_name: Mapped[str] = mapped_column(String(64))
    server_name: Mapped[str] = mapped_column(String(128))
    flavor: Mapped[str] = mapped_column(String(64))
    vcpus: Mapped[int]
    ram_mb: Mapped[int]
    disk_gib: Mapped[int]
    first_day: Mapped[date] = mapped_column(Date)
    last_day: Mapped[date] = mapped_column(Date)
    days: Mapped[int]
    vcpu_price: Mapped[Decimal] = mapped_column(Money())
    ram_gib_price: Mapped[Decimal] = mapped_column(Money())
    disk_gib_price: Mapped[Decimal] = mapped_column(Money())
    cost: Mapped[Decimal] = mapped_column(Money())


class Budget(Base):
    """A unit's budget (预算) for a year, CNY: for all its cloud resources, or for one of its business systems.

    It covers the unit's own servers (not its sub-units': a 二级预算单位 has a budget of its own). ``warned_percent``
    is the highest warning threshold already told, so each threshold is told once.
    """

    __tablename__ = "budgets"
    __table_args__ = (
        # system_key is the business system's id, 0 for the unit's whole budget: NULLs would never collide.
        UniqueConstraint("unit_id", "year", "system_key", name="uq_budgets_unit_year_system"),
        CheckConstraint("amount >= 0", name="amount_not_negative"),
        CheckConstraint("year BETWEEN 2000 AND 2100", name="year_range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    year: Mapped[int]
    business_system_id: Mapped[int | None] = mapped_column(ForeignKey("business_systems.id", ondelete="CASCADE"))
    system_key: Mapped[int] = mapped_column(default=0)
    amount: Mapped[Decimal] = mapped_column(Money())
    note: Mapped[str | None] = mapped_column(String(200))
    warned_percent: Mapped[int] = mapped_column(default=0)
    set_by: Mapped[str] = mapped_column(String(128))
    set_at: Mapped[datetime] = mapped_column(default=utcnow)

    unit: Mapped[Unit] = relationship(lazy="joined", innerjoin=True)
    business_system: Mapped[BusinessSystem | None] = relationship(lazy="joined")

    @property
    def unit_code(self) -> str:
        return self.unit.code

    @property
    def business_system_name(self) -> str | None:
        return self.business_system.name if self.business_system is not None else None
