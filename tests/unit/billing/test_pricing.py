"""Pricing, a pure function over servers and a tariff history: days in the month, prices by the day, Decimal."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from cloudctl.billing.pricing import PriceBook, TariffRow, Use, charge, parse_month
from cloudctl.core.errors import InvalidInput

DEFAULTS = {"vcpu": Decimal(50), "ram_gib": Decimal(25), "disk_gib": Decimal("0.6")}
NOVEMBER = date(2026, 11, 1)


def use(**kw: Any) -> Use:
    base: dict[str, Any] = {
        "server_id": 1, "server_name": "990100-d01-app-01", "unit_id": 1, "unit_code": "990100-D01",
        "unit_name": "市公安局", "business_system_id": 1, "business_system": "城市视频监控联网平台", "cloud_id": 1,
        "cloud_name": "city-cloud", "flavor": "c4m8", "vcpus": 4, "ram_mb": 8192, "disk_gib": 100,
        "status": "ACTIVE", "first_day": date(2025, 1, 1), "last_day": None}
    return Use(**(base | kw))


def book(*rows: tuple[int, str, str, date, str]) -> PriceBook:
    return PriceBook([TariffRow(c, r, f, d, Decimal(p)) for c, r, f, d, p in rows], DEFAULTS)


def test_a_whole_month_at_the_default_prices_is_exact() -> None:
    [line] = charge([use()], NOVEMBER, book())
    assert (line.first_day, line.last_day, line.days) == (date(2026, 11, 1), date(2026, 11, 30), 30)
    assert line.cost == Decimal("460.00")  # 4 × 50 + 8 × 25 + 100 × 0.6
    assert isinstance(line.cost, Decimal)


def test_a_price_change_mid_month_applies_from_its_day() -> None:
    prices = book((1, "vcpu", "", date(2025, 1, 1), "45"), (1, "vcpu", "", date(2026, 11, 16), "42"),
                  (1, "ram_gib", "", date(2025, 1, 1), "20"), (1, "disk_gib", "", date(2025, 1, 1), "0.5"))
    first, second = charge([use()], NOVEMBER, prices)
    assert (first.first_day, first.last_day, first.days, first.vcpu_price) == (date(2026, 11, 1),
                                                                               date(2026, 11, 15), 15, Decimal(45))
    assert (second.first_day, second.last_day, second.days, second.vcpu_price) == (date(2026, 11, 16),
                                                                                    date(2026, 11, 30), 15,
                                                                                    Decimal(42))
    monthly_before, monthly_after = 4 * 45 + 8 * 20 + 100 * Decimal("0.5"), 4 * 42 + 8 * 20 + 100 * Decimal("0.5")
    assert first.cost == monthly_before / 2
    assert second.cost == monthly_after / 2
    # The month before knows nothing of the new price.
    [october] = charge([use()], date(2026, 10, 1), prices)
    assert (october.days, october.vcpu_price, october.cost) == (31, Decimal(45), monthly_before)


def test_each_cloud_at_its_own_price_and_the_longest_flavor_family_wins() -> None:
    prices = book((1, "vcpu", "", date(2025, 1, 1), "45"), (2, "vcpu", "", date(2025, 1, 1), "58"),
                  (2, "vcpu", "c16", date(2025, 6, 1), "50"), (2, "vcpu", "c", date(2025, 6, 1), "56"))
    lines = charge([use(), use(cloud_id=2, server_id=2), use(cloud_id=2, server_id=3, flavor="c16m64", vcpus=16)],
                   NOVEMBER, prices)
    assert [line.vcpu_price for line in lines] == [Decimal(45), Decimal(56), Decimal(50)]
    # A resource a cloud has no tariff for is at the bureau's default.
    assert {line.ram_gib_price for line in lines} == {Decimal(25)}


def test_launched_and_deleted_mid_month_pay_their_days_and_offloaded_pays_disk_only() -> None:
    late = use(first_day=date(2026, 11, 21))
    gone = use(server_id=2, last_day=date(2026, 11, 3))
    shelved = use(server_id=3, status="SHELVED_OFFLOADED")
    future = use(server_id=4, first_day=date(2026, 12, 2))
    deleted_before = use(server_id=5, last_day=date(2026, 10, 31))
    lines = {line.use.server_id: line for line in charge([late, gone, shelved, future, deleted_before], NOVEMBER,
                                                         book())}
    assert set(lines) == {1, 2, 3}
    assert (lines[1].days, lines[1].cost) == (10, Decimal("153.33"))  # 460 × 10/30, rounded to the fen
    assert (lines[2].days, lines[2].first_day, lines[2].last_day) == (3, date(2026, 11, 1), date(2026, 11, 3))
    assert (lines[3].vcpu_price, lines[3].ram_gib_price, lines[3].cost) == (0, 0, Decimal("60.00"))


@pytest.mark.parametrize("month", ["2026-13", "November", "2026", "2026-1", "", "2026-11-01", "２０２６-11"])
def test_bad_month(month: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_month(month)
    assert caught.value.field == "month"
