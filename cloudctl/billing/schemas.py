"""Inputs and outputs of money: tariffs, statements. CNY as decimal strings in JSON (exact), RAM in GiB."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import Field, StringConstraints

from cloudctl.core.bounds import Id
from cloudctl.core.schemas import GiB, Schema
from cloudctl.core.text import NoControl

__all__ = ["BudgetPublic", "BudgetSet", "StatementLinePublic", "StatementPublic", "StatementTotal", "TariffPublic",
           "TariffSet"]

# vcpu, ram_gib, disk_gib (a VM's own disk), or volume_gib:<volume type>.
Resource = Annotated[str, StringConstraints(pattern=r"^(vcpu|ram_gib|disk_gib|volume_gib:[A-Za-z0-9_.-]{1,64})$")]
# A price per unit and month: up to a million yuan, to the ten-thousandth of a yuan.
Price = Annotated[Decimal, Field(ge=0, le=1_000_000, max_digits=11, decimal_places=4)]
Family = Annotated[str, StringConstraints(strip_whitespace=True, max_length=64, pattern=r"^[A-Za-z0-9_.:-]*$")]


class TariffSet(Schema):
    """A price of one resource on one cloud from a day on (that day's price, if one was set, is replaced)."""

    cloud: Annotated[str, StringConstraints(min_length=1, max_length=64), NoControl]
    resource: Resource
    price: Price
    effective_from: date = Field(ge=date(2000, 1, 1), le=date(2100, 12, 31))
    flavor_family: Family = ""
    note: Annotated[str, StringConstraints(max_length=200), NoControl] | None = None


class TariffPublic(Schema):
    id: int
    cloud: str = Field(validation_alias="cloud_name")
    resource: str
    flavor_family: str
    effective_from: date
    # Until the next price of the same resource and family took over; None while in force.
    effective_to: date | None = None
    price: Decimal
    note: str | None
    set_by: str
    set_at: datetime


class StatementLinePublic(Schema):
    """A server's charge over a run of days at one set of prices (CNY per unit and month)."""

    unit_code: str
    unit_name: str
    business_system: str
    cloud: str = Field(validation_alias="cloud_name")
    server: str = Field(validation_alias="server_name")
    flavor: str
    vcpus: int
    ram_gib: GiB = Field(validation_alias="ram_mb")
    disk_gib: int
    first_day: date
    last_day: date
    days: int
    vcpu_price: Decimal
    ram_gib_price: Decimal
    disk_gib_price: Decimal
    cost: Decimal


class StatementTotal(Schema):
    """A unit's (and business system's) total of the month."""

    unit_code: str
    unit_name: str
    business_system: str
    servers: int
    cost: Decimal


class StatementPublic(Schema):
    """A month's statement (账单) of the units the reader sees: stored if the month is closed, else as it stands."""

    month: str
    closed: bool
    closed_at: datetime | None
    total: Decimal
    totals: list[StatementTotal]
    lines: list[StatementLinePublic]


class BudgetSet(Schema):
    """A unit's budget for a year (or one business system's), CNY."""

    unit: Annotated[str, StringConstraints(min_length=1, max_length=64), NoControl]
    year: int = Field(ge=2000, le=2100)
    amount: Annotated[Decimal, Field(ge=0, le=10_000_000_000, max_digits=15, decimal_places=2)]
    business_system: Id | None = None
    note: Annotated[str, StringConstraints(max_length=200), NoControl] | None = None


class BudgetPublic(Schema):
    """A budget with what is committed against it: spent in the months gone by, this month to its end, and the
    months left of the year at today's prices (``monthly`` a month of what runs now)."""

    id: int
    unit_code: str
    unit_name: str
    year: int
    business_system_id: int | None
    business_system: str | None
    amount: Decimal
    spent: Decimal
    this_month: Decimal
    ahead: Decimal
    committed: Decimal
    monthly: Decimal
    percent: float | None
    over: bool
    note: str | None
    set_by: str
    set_at: datetime
