"""The simulator's telemetry for a whole fleet at once gives each server the numbers it gives it alone."""

from __future__ import annotations

import zlib
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloudctl.compute.providers.simulator import SimWorkload
from cloudctl.core.models import utcnow
from cloudctl.reclaim import service
from cloudctl.reclaim.models import UtilisationDay
from cloudctl.reclaim.sources.simulator import (
    LOCAL_OFFSET_HOURS,
    SAMPLES_PER_DAY,
    STEP_SECONDS,
    _shape,
    fleet_samples,
    workload_samples,
)
from tests.factories import ADMIN, build_reclaim_fleet

SINCE = datetime(2026, 1, 1, tzinfo=UTC)
FLEET = [SimWorkload(server_id=f"00000000-0000-4000-8000-{i:012d}", cloud="c", profile=profile, cpu=cpu, mem=mem,
                     net=net, since=SINCE, until=None)
         for i, (profile, cpu, mem, net) in enumerate([
             ("busy", 0.7, 0.65, 4e6), ("office", 0.8, None, 2e5), ("batch", 0.9, 0.7, 1e6),
             ("steady", 0.07, 0.15, 5e4), ("idle", 0.02, 0.2, 300), ("office", 0.6, 0.8, 3e5)])]


def _one_at_a_time(workload: SimWorkload, day: date) -> dict[str, np.ndarray]:
    """The telemetry as it was first written: one generator per server and day, a normal draw per metric."""
    rng = np.random.default_rng(zlib.crc32(f"{workload.server_id}:{day.isoformat()}".encode()))
    hours = (np.arange(SAMPLES_PER_DAY) * STEP_SECONDS / 3600.0 + LOCAL_OFFSET_HOURS) % 24
    shape = _shape(workload.profile, hours, (day + timedelta(hours=LOCAL_OFFSET_HOURS)).weekday() < 5)
    cpu = np.clip(workload.cpu * shape * rng.normal(1.0, 0.04, SAMPLES_PER_DAY), 0.0, 1.0)
    net_rx = np.clip(workload.net * shape * rng.normal(1.0, 0.08, SAMPLES_PER_DAY), 0.0, None)
    samples = {"cpu": cpu, "net_rx": net_rx, "net_tx": net_rx * 0.5}
    if workload.mem is not None:
        samples["mem"] = np.clip(workload.mem * rng.normal(1.0, 0.01, SAMPLES_PER_DAY), 0.0, 1.0)
    return {metric: values.astype(np.float32) for metric, values in samples.items()}


@pytest.mark.parametrize("day", [date(2026, 11, 18), date(2026, 11, 22)], ids=["weekday", "sunday"])
def test_each_server_gets_exactly_its_own_numbers_among_many(day: date) -> None:
    together = fleet_samples(FLEET, day)
    for i, workload in enumerate(FLEET):
        alone = workload_samples(workload, day)
        reference = _one_at_a_time(workload, day)
        assert set(alone) == set(reference)
        for metric, values in reference.items():
            rows, fleet_values = together[metric]
            assert np.array_equal(fleet_values[rows.index(i)], values)
            assert np.array_equal(alone[metric], values)
    assert together["mem"][0] == [i for i, w in enumerate(FLEET) if w.mem is not None]
    nobody = fleet_samples([], day)
    assert {metric: (rows, values.shape) for metric, (rows, values) in nobody.items()} == {
        metric: ([], (0, SAMPLES_PER_DAY)) for metric in ("cpu", "net_rx", "net_tx")}


def test_collecting_many_days_at_once_stores_what_day_by_day_collection_stored(session: Session) -> None:
    build_reclaim_fleet(session)  # 30 days collected one by one

    def stored() -> list[tuple[object, ...]]:
        return [tuple(row) for row in session.execute(
            select(UtilisationDay.server_id, UtilisationDay.day, UtilisationDay.metric, UtilisationDay.p95,
                   UtilisationDay.p99, UtilisationDay.max, UtilisationDay.mean, UtilisationDay.samples)
            .order_by(UtilisationDay.server_id, UtilisationDay.day, UtilisationDay.metric))]

    day_by_day = stored()
    today = utcnow().date()
    counts = service.collect_days(session, ADMIN, [today - timedelta(days=back) for back in range(30, 0, -1)])
    assert counts == {"servers": 6, "summaries": len(day_by_day), "clouds_without_source": 0}
    session.expire_all()
    assert stored() == day_by_day
