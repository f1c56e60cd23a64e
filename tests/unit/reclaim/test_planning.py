"""Purchase planning on both databases: capacity against allocations (not use), the monthly history kept from the
capacity snapshots, and a forecast with and without reclaim, in the service, the report and the API's shape."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloudctl.compute import service as compute
from cloudctl.compute.models import CapacityMonth, Cloud
from cloudctl.core.errors import InvalidInput, PermissionDenied
from cloudctl.core.models import beijing_today
from cloudctl.reclaim import planning, report, service
from tests.factories import ADMIN, ReclaimFleet, build_reclaim_fleet


@pytest.fixture
def fleet(session: Session) -> ReclaimFleet:
    fleet = build_reclaim_fleet(session)
    service.analyze(session, ADMIN)
    return fleet


def _history(session: Session, months: int = 12) -> None:
    """Months before this one, allocations growing 2 vCPU (and 4 GiB) a month up to today's."""
    compute.capacity(session, ADMIN, "test-cloud")  # this month's row, from the snapshot
    cloud = session.scalars(select(Cloud).where(Cloud.name == "test-cloud")).one()
    today = beijing_today().replace(day=1)
    for now in list(session.scalars(select(CapacityMonth).where(CapacityMonth.cloud_id == cloud.id))):
        step = {"vcpus": 2, "ram_mb": 4096, "disk_gb": 20}[now.resource]
        for back in range(months, 0, -1):
            y, m = divmod(today.year * 12 + today.month - 1 - back, 12)
            session.add(CapacityMonth(cloud_id=cloud.id, resource=now.resource, month=f"{y:04d}-{m + 1:02d}",
                                      total=now.total, reserved=now.reserved, allocation_ratio=now.allocation_ratio,
                                      allocated=max(0, now.allocated - step * back), promised=now.promised,
                                      taken_at=datetime(y, m + 1, 28, tzinfo=UTC)))
    session.flush()


def test_capacity_history_is_kept_once_a_month(session: Session, fleet: ReclaimFleet) -> None:
    compute.capacity(session, ADMIN, "test-cloud")
    compute.capacity(session, ADMIN, "test-cloud")  # the same month again: the row is brought up to date
    history = compute.capacity_history(session, ADMIN, "test-cloud")
    assert {(h.month, h.resource) for h in history} == {(beijing_today().strftime("%Y-%m"), r)
                                                        for r in ("vcpus", "ram_mb", "disk_gb")}
    vcpus = next(h for h in history if h.resource == "vcpus")
    assert vcpus.allocated == 4 + 8 + 4 + 4 + 2 + 2  # what the fleet's servers hold
    assert vcpus.usable == 128  # 64 threads × 2.0


def test_headroom_is_from_allocations_and_the_forecast_gains_with_reclaim(session: Session,
                                                                          fleet: ReclaimFleet) -> None:
    _history(session)
    plan = {row.resource: row for row in planning.purchase_plan(session, ADMIN, threshold=0.5)}
    cpu = plan["vcpus"]
    assert (cpu.capacity, cpu.allocated, cpu.headroom) == (128, 24, 104)
    assert cpu.used is not None
    assert cpu.used < cpu.allocated
    assert cpu.reclaimable > 0
    assert cpu.headroom_after_reclaim == cpu.headroom + cpu.reclaimable
    assert len(cpu.history) == 13
    answers = {(f.model, f.reclaim): f for f in cpu.forecasts}
    # 2 vCPU more each month: from 24 to 64 (half of 128) is twenty months by the line.
    assert answers[("linear", False)].slope == pytest.approx(2, abs=0.01)
    assert answers[("linear", False)].months == pytest.approx(20, abs=0.05)
    assert answers[("holt", False)].months == pytest.approx(20, abs=1)
    gained = cpu.reclaimable / 2
    assert answers[("linear", True)].months == pytest.approx(20 + gained, abs=0.05)
    assert answers[("linear", True)].reaches_on > answers[("linear", False)].reaches_on  # type: ignore[operator]
    assert plan["disk"].used is None  # no measured use of disks
    # A department sees no city capacity; a threshold outside (0, 2] is refused naming it.
    with pytest.raises(PermissionDenied):
        planning.purchase_plan(session, fleet.city.principals["dept"])
    with pytest.raises(InvalidInput) as caught:
        planning.purchase_plan(session, ADMIN, threshold=0)
    assert caught.value.field == "threshold"


def test_one_month_is_too_little_to_forecast(session: Session, fleet: ReclaimFleet) -> None:
    compute.capacity(session, ADMIN, "test-cloud")
    [cpu] = [row for row in planning.purchase_plan(session, ADMIN) if row.resource == "vcpus"]
    assert all(f.insufficient_data and f.reaches_on is None for f in cpu.forecasts)


def test_the_reclaim_report_carries_the_history_and_the_forecast(session: Session, fleet: ReclaimFleet,
                                                                 tmp_path: Path) -> None:
    _history(session)
    built = report.build_report(session, ADMIN)
    written = {p.name: p for p in report.write_report(built, tmp_path)}
    forecast = written["reclaim-capacity-forecast.csv"].read_text(encoding="utf-8-sig")
    assert forecast.splitlines()[0].endswith("linear,holt,linear_with_reclaim,holt_with_reclaim")
    assert "test-cloud,vcpus,vCPU,128.0,24.0" in forecast
    history = written["reclaim-capacity-history.csv"].read_text(encoding="utf-8-sig").splitlines()
    assert len(history) == 1 + 3 * 13
    html = written["reclaim-report.html"].read_text(encoding="utf-8")
    assert 'id="forecast"' in html
    assert "<svg class='spark'" in html
    assert 'id="volumes"' in html
    assert written["reclaim-volumes.csv"].read_text(encoding="utf-8-sig").startswith("id,volume,unit_code")
