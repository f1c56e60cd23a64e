"""Showback pricing: a pure function over servers, prorated by the days each existed in the month."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from cloudctl.compute.showback import Prices, month_bounds, price_servers
from cloudctl.core.errors import InvalidInput

PRICES = Prices(vcpu_month=50, ram_gb_month=25, disk_gb_month=0.5)


def server(**kw: Any) -> Any:
    unit = SimpleNamespace(code=kw.pop("unit", "990100-D01"), name="市公安局")
    base = {"unit": unit, "business_system_name": "城市视频监控联网平台", "vcpus": 4, "ram_mb": 8192, "disk_gb": 100,
            "status": "ACTIVE", "launched_at": datetime(2025, 1, 1, tzinfo=UTC), "created_at": None}
    return SimpleNamespace(**{**base, **kw})


def test_a_whole_month_costs_the_unit_prices() -> None:
    start, end = month_bounds("2026-11")
    [line] = price_servers([server()], start, end, PRICES)
    assert (line.servers, line.vcpu_months, line.ram_gib_months, line.disk_gib_months) == (1, 4.0, 8.0, 100.0)
    assert line.cost_cny == 4 * 50 + 8 * 25 + 100 * 0.5


def test_launch_mid_month_is_prorated_and_offloaded_pays_disk_only() -> None:
    start, end = month_bounds("2026-11")
    half = server(launched_at=datetime(2026, 11, 16, tzinfo=UTC))
    shelved = server(status="SHELVED_OFFLOADED", business_system_name="归档系统")
    future = server(launched_at=datetime(2026, 12, 2, tzinfo=UTC))
    lines = {line.business_system: line for line in price_servers([half, shelved, future], start, end, PRICES)}
    assert lines["城市视频监控联网平台"].vcpu_months == pytest.approx(2.0, abs=0.01)
    assert lines["城市视频监控联网平台"].servers == 1  # the December server is not charged in November
    assert (lines["归档系统"].vcpu_months, lines["归档系统"].cost_cny) == (0, 50.0)


@pytest.mark.parametrize("month", ["2026-13", "November", "2026"])
def test_bad_month(month: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        month_bounds(month)
    assert caught.value.field == "month"
