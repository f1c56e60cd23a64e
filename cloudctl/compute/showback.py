"""Showback (费用): what each unit's and business system's VMs cost in a month, at the bureau's unit prices.

A VM is charged for the days of the month it existed (from its launch); a shelved-offloaded
VM holds no host, so it pays for its disk only. Deleted VMs are no longer in the
inventory and are not charged.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloudctl.compute.models import Server
from cloudctl.core import read
from cloudctl.core.auth import Principal, authorize
from cloudctl.core.config import get_settings
from cloudctl.core.errors import InvalidInput
from cloudctl.org.service import under

__all__ = ["Prices", "ShowbackLine", "month_bounds", "price_servers", "showback"]

DISK_ONLY = frozenset({"SHELVED_OFFLOADED"})


@dataclass(frozen=True, slots=True)
class Prices:
    vcpu_month: float
    ram_gb_month: float
    disk_gb_month: float


@dataclass(frozen=True, slots=True)
class ShowbackLine:
    unit_code: str
    unit_name: str
    business_system: str
    servers: int
    vcpu_months: float
    ram_gib_months: float  # GiB of memory held for a month
    disk_gib_months: float
    cost_cny: float


def month_bounds(month: str) -> tuple[datetime, datetime]:
    try:
        year, number = (int(part) for part in month.split("-"))
        first = date(year, number, 1)
    except ValueError:
        raise InvalidInput(f"{month!r} is not a month like 2026-11", field="month") from None
    last_day = calendar.monthrange(first.year, first.month)[1]
    start = datetime(first.year, first.month, 1, tzinfo=UTC)
    end = datetime(first.year, first.month, last_day, tzinfo=UTC).replace(hour=23, minute=59, second=59)
    return start, end


def price_servers(servers: Iterable[Server], start: datetime, end: datetime, prices: Prices) -> list[ShowbackLine]:
    """Pure: group servers by unit and business system and price the share of the month each existed."""
    span = (end - start).total_seconds()
    lines: dict[tuple[str, str], dict[str, float | str]] = {}
    for server in servers:
        launched = server.launched_at or server.created_at
        if launched > end or server.unit is None:
            continue
        share = min(1.0, (end - max(launched, start)).total_seconds() / span)
        key = (server.unit.code, server.business_system_name or "—")
        line = lines.setdefault(key, {"unit_name": server.unit.name, "servers": 0.0, "vcpu": 0.0, "ram": 0.0,
                                      "disk": 0.0})
        line["servers"] = float(line["servers"]) + 1
        if server.status not in DISK_ONLY:
            line["vcpu"] = float(line["vcpu"]) + server.vcpus * share
            line["ram"] = float(line["ram"]) + server.ram_mb / 1024 * share
        line["disk"] = float(line["disk"]) + server.disk_gb * share
    result = []
    for (unit_code, system), line in sorted(lines.items()):
        vcpu, ram, disk = float(line["vcpu"]), float(line["ram"]), float(line["disk"])
        cost = vcpu * prices.vcpu_month + ram * prices.ram_gb_month + disk * prices.disk_gb_month
        result.append(ShowbackLine(unit_code, str(line["unit_name"]), system, int(float(line["servers"])),
                                   round(vcpu, 2), round(ram, 2), round(disk, 2), round(cost, 2)))
    return result


def showback(session: Session, principal: Principal, month: str, *, unit: str | None = None) -> list[ShowbackLine]:
    """The month's lines of the units the principal sees (of ``unit`` and the units under it, if given)."""
    authorize(principal, "compute.server:read")
    start, end = month_bounds(month)
    settings = get_settings()
    query = select(Server).where(Server.status != "DELETED", Server.unit_id.is_not(None))
    query = read.within(query, principal, unit=Server.unit_id)
    if unit is not None:
        query = query.where(under(session, principal, unit, Server.unit_id))
    return price_servers(session.scalars(query), start, end,
                         Prices(settings.price_vcpu_month, settings.price_ram_gb_month, settings.price_disk_gb_month))
