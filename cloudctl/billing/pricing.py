"""Pricing, pure: which tariff holds on a day, and a month's charge of each server, day by day.

A server is charged for each Beijing day of the month it existed: from the day it was launched to the day it was
deleted (or the month's last day while it runs: the month's committed cost). Each day is priced with the
tariffs in force that day, so a price change mid-month applies from its date; consecutive days at the same
prices make one line. A month's price is for the whole month: a day costs price × 1/(days in the month). A
shelved-offloaded server holds no host, so it pays for its disk only.
"""

from __future__ import annotations

import calendar
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from cloudctl.core.errors import InvalidInput

__all__ = ["CENT", "RESOURCES", "Charge", "PriceBook", "TariffRow", "Use", "charge", "month_days", "parse_month"]

CENT = Decimal("0.01")
# What a VM is charged for; a volume type's GiB is "volume_gib:<type>".
RESOURCES = ("vcpu", "ram_gib", "disk_gib")
DISK_ONLY = frozenset({"SHELVED_OFFLOADED"})
_MONTH = re.compile(r"[0-9]{4}-[0-9]{2}")


def parse_month(month: str) -> date:
    """The first day of a month written ``YYYY-MM``, or :class:`InvalidInput` naming ``month``."""
    # ASCII digits only: str.isdigit() and int() also take full-width and other scripts' digits.
    if not isinstance(month, str) or _MONTH.fullmatch(month) is None:
        raise InvalidInput(f"{month!r} is not a month like 2026-11", field="month")
    try:
        return date(int(month[:4]), int(month[5:]), 1)
    except ValueError:
        raise InvalidInput(f"{month!r} is not a month like 2026-11", field="month") from None


def month_days(first: date) -> tuple[date, date, int]:
    """The month's first and last day and how many days it has."""
    count = calendar.monthrange(first.year, first.month)[1]
    return first, first.replace(day=count), count


@dataclass(frozen=True, slots=True)
class TariffRow:
    cloud_id: int
    resource: str
    flavor_family: str
    effective_from: date
    price: Decimal


@dataclass
class PriceBook:
    """The tariff history of every cloud, with the bureau's default prices where a cloud has none for a resource."""

    rows: Iterable[TariffRow]
    defaults: dict[str, Decimal]
    _by_key: dict[tuple[int, str], list[TariffRow]] = field(init=False, default_factory=dict)
    _starts: dict[int, list[date]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        grouped: dict[tuple[int, str], list[TariffRow]] = defaultdict(list)
        for row in self.rows:
            grouped[(row.cloud_id, row.resource)].append(row)
        # The most specific family first, then the latest day: the first row in force on a day is the one.
        for rows in grouped.values():
            rows.sort(key=lambda r: (-len(r.flavor_family), -r.effective_from.toordinal()))
        self._by_key = dict(grouped)
        starts: dict[int, set[date]] = defaultdict(set)
        for (cloud_id, _), rows in grouped.items():
            starts[cloud_id].update(r.effective_from for r in rows)
        self._starts = {cloud_id: sorted(days) for cloud_id, days in starts.items()}

    def changes(self, cloud_id: int, after: date, until: date) -> list[date]:
        """The days in (after, until] on which a price of the cloud changes, in order."""
        days = self._starts.get(cloud_id, ())
        return [day for day in days if after < day <= until]

    def price(self, cloud_id: int, resource: str, flavor: str, day: date) -> Decimal:
        """The price per unit and month of ``resource`` for a server of ``flavor`` on ``cloud_id`` on ``day``."""
        for row in self._by_key.get((cloud_id, resource), ()):
            if row.effective_from <= day and flavor.startswith(row.flavor_family):
                return row.price
        return self.defaults.get(resource.split(":", 1)[0], Decimal(0))


@dataclass(frozen=True, slots=True)
class Use:
    """What a server held, as the pricing needs it (copied from the inventory, so this stays pure)."""

    server_id: int
    server_name: str
    unit_id: int
    unit_code: str
    unit_name: str
    business_system_id: int | None
    business_system: str
    cloud_id: int
    cloud_name: str
    flavor: str
    vcpus: int
    ram_mb: int
    disk_gib: int
    status: str
    first_day: date  # launched (Beijing date)
    last_day: date | None  # deleted (Beijing date); None while it exists
    # A block volume is charged for its GiB at its type's price (volume_gib:<type>), and nothing else.
    kind: str = "server"
    disk_resource: str = "disk_gib"


@dataclass(frozen=True, slots=True)
class Charge:
    """A server's charge over consecutive days at one set of prices: one line of a statement."""

    use: Use
    first_day: date
    last_day: date
    days: int
    vcpu_price: Decimal
    ram_gib_price: Decimal
    disk_gib_price: Decimal
    cost: Decimal


def charge(uses: Sequence[Use], first: date, book: PriceBook) -> list[Charge]:
    """The charges of ``uses`` in the month starting ``first``, each cost rounded to the fen."""
    start, end, count = month_days(first)
    lines: list[Charge] = []
    for use in uses:
        begin = max(use.first_day, start)
        stop = min(use.last_day or end, end)
        if begin > stop:
            continue
        disk_only = use.status in DISK_ONLY or use.kind == "volume"

        def prices_on(day: date, use: Use = use, disk_only: bool = disk_only) -> tuple[Decimal, Decimal, Decimal]:
            return (Decimal(0) if disk_only else book.price(use.cloud_id, "vcpu", use.flavor, day),
                    Decimal(0) if disk_only else book.price(use.cloud_id, "ram_gib", use.flavor, day),
                    book.price(use.cloud_id, use.disk_resource, use.flavor, day))

        # Prices change only on the days a tariff of the cloud starts: one look-up per run of days, not per day.
        run_start, run_prices = begin, prices_on(begin)
        for day in book.changes(use.cloud_id, begin, stop):
            prices = prices_on(day)
            if prices != run_prices:
                lines.append(_line(use, run_start, day - timedelta(days=1), count, run_prices))
                run_start, run_prices = day, prices
        lines.append(_line(use, run_start, stop, count, run_prices))
    return lines


def _line(use: Use, first: date, last: date, month_length: int, prices: tuple[Decimal, Decimal, Decimal]) -> Charge:
    days = (last - first).days + 1
    vcpu, ram, disk = prices
    monthly = vcpu * use.vcpus + ram * Decimal(use.ram_mb) / 1024 + disk * use.disk_gib
    cost = (monthly * days / month_length).quantize(CENT, rounding=ROUND_HALF_UP)
    return Charge(use, first, last, days, vcpu, ram, disk, cost)
