"""The production path end to end: an OpenStack cloud's guests in a real Prometheus, collected into daily
summaries by the reclaim service, and a campaign that finds the idle and the oversized servers among them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloudctl.compute import service as compute
from cloudctl.compute.models import CloudKind, Flavor, Server
from cloudctl.compute.schemas import CloudCreate
from cloudctl.core.config import Settings, reset_settings
from cloudctl.core.errors import InvalidInput, ProviderError
from cloudctl.core.models import utcnow
from cloudctl.org.models import Unit
from cloudctl.reclaim import service
from cloudctl.reclaim.models import UtilisationDay
from cloudctl.reclaim.sources.base import METRICS
from cloudctl.reclaim.sources.prometheus import LIBVIRT
from tests.factories import ADMIN, build_mini_city
from tests.support.promserver import PrometheusServer, openmetrics_family, openmetrics_text

pytestmark = pytest.mark.slow

DAYS = 30
TODAY = utcnow().date()
START = int(datetime(TODAY.year, TODAY.month, TODAY.day, tzinfo=UTC).timestamp()) - DAYS * 86400
STAMPS = np.arange(START, START + DAYS * 86400, 300, dtype=np.int64)
# Guests (Nova UUIDs) and what they do: cpu, mem (fractions), received bytes per second.
GUESTS = {
    "idle": (str(uuid.uuid4()), 0.01, 0.2, 300.0),
    "oversized": (str(uuid.uuid4()), 0.06, 0.15, 5e4),
    "busy": (str(uuid.uuid4()), 0.7, 0.75, 5e5),
}


@pytest.fixture(scope="module")
def prometheus() -> Iterator[PrometheusServer]:
    rng = np.random.default_rng(7)
    labels = [{"server": server, "source": "libvirt"} for server, *_ in GUESTS.values()]
    shape = rng.normal(1.0, 0.04, (len(GUESTS), len(STAMPS)))
    values = {
        "cpu": np.array([[cpu] for _, cpu, _, _ in GUESTS.values()]) * shape,
        "mem": np.array([[mem] for _, _, mem, _ in GUESTS.values()]) * np.ones_like(shape),
        "net_rx": np.array([[rx] for *_, rx in GUESTS.values()]) * shape,
        "net_tx": np.array([[rx / 2] for *_, rx in GUESTS.values()]) * shape,
    }
    text = openmetrics_text(*(openmetrics_family(LIBVIRT.selector(m).split("{")[0], labels, STAMPS, values[m])
                              for m in METRICS))
    with PrometheusServer(openmetrics=text) as server:
        yield server


@pytest.fixture
def cloud(session: Session, settings: Settings, prometheus: PrometheusServer) -> dict[str, Server]:
    """An OpenStack cloud in cloudctl's inventory whose guests' metrics are in that Prometheus."""
    reset_settings(settings.model_copy(update={"prometheus_url": prometheus.url,
                                               "reclaim_metric_profiles": {"gov-openstack": "libvirt"}}))
    build_mini_city(session)
    row = compute.create_cloud(session, ADMIN, CloudCreate(name="gov-openstack", display_name="运营商政务云",
                                                           kind=CloudKind.OPENSTACK, connection="gov-openstack"))
    for name, vcpus, ram_gb in (("m1.small", 1, 2), ("m1.medium", 2, 4), ("m1.large", 4, 8), ("m1.xlarge", 8, 16)):
        session.add(Flavor(cloud_id=row.id, name=name, vcpus=vcpus, ram_mb=ram_gb * 1024, disk_gb=40))
    unit = session.scalar(select(Unit).where(Unit.code == "990100-D01"))
    assert unit is not None
    long_ago = utcnow() - timedelta(days=90)
    servers = {}
    for name, (server_id, *_) in GUESTS.items():
        servers[name] = Server(cloud_id=row.id, provider_id=server_id, name=f"d01-{name}", unit_id=unit.id,
                               flavor="m1.xlarge", vcpus=8, ram_mb=16384, disk_gb=40, status="ACTIVE",
                               status_since=long_ago, launched_at=long_ago)
        session.add(servers[name])
    session.flush()
    return servers


def test_collect_from_prometheus_and_analyze(session: Session, cloud: dict[str, Server]) -> None:
    for back in range(DAYS, 0, -1):
        counts = service.collect(session, ADMIN, TODAY - timedelta(days=back), cloud="gov-openstack")
        assert counts["clouds_without_source"] == 0
    stored = session.scalar(select(func.count()).select_from(UtilisationDay)
                            .where(UtilisationDay.source == "prometheus"))
    assert stored == DAYS * len(GUESTS) * len(METRICS)
    busy_cpu = session.scalar(select(UtilisationDay).where(UtilisationDay.server_id == cloud["busy"].id,
                                                           UtilisationDay.metric == "cpu").limit(1))
    assert busy_cpu is not None
    assert busy_cpu.samples == 288
    assert 0.7 < busy_cpu.p95 < busy_cpu.p99 <= busy_cpu.max
    campaign = service.analyze(session, ADMIN)
    recs, _ = service.list_recommendations(session, ADMIN)
    found = {(r.server.name, r.kind.value, r.recommended_flavor) for r in recs}
    # oversized: p99 ≈ 0.066 × 8 vCPU × 1.2 ≈ 0.6 vCPU; memory 0.15 × 16 GB × 1.2 ≈ 2.9 GB → m1.medium.
    assert found == {("d01-idle", "idle", None), ("d01-oversized", "oversized", "m1.medium")}
    assert campaign.counts["ok"] == 1


def test_an_unreachable_prometheus_is_a_clear_error_and_stores_nothing(session: Session, settings: Settings,
                                                                       cloud: dict[str, Server]) -> None:
    reset_settings(settings.model_copy(update={"prometheus_url": "http://127.0.0.1:9"}))
    with pytest.raises(ProviderError) as caught:
        service.collect(session, ADMIN, TODAY - timedelta(days=1), cloud="gov-openstack")
    assert caught.value.field == "prometheus_url"
    assert session.scalar(select(func.count()).select_from(UtilisationDay)) == 0


def test_a_cloud_may_bring_its_own_metric_names(session: Session, settings: Settings,
                                                cloud: dict[str, Server], prometheus: PrometheusServer) -> None:
    own = {"server_label": "server", **{m: LIBVIRT.selector(m) for m in METRICS}}
    reset_settings(settings.model_copy(update={"prometheus_url": prometheus.url,
                                               "reclaim_metric_profiles": {"gov-openstack": own}}))
    counts = service.collect(session, ADMIN, TODAY - timedelta(days=1), cloud="gov-openstack")
    assert counts["summaries"] == len(GUESTS) * len(METRICS)
    reset_settings(settings.model_copy(update={"prometheus_url": prometheus.url,
                                               "reclaim_metric_profiles": {"gov-openstack": {"cpu": "x"}}}))
    with pytest.raises(InvalidInput) as caught:
        service.collect(session, ADMIN, TODAY - timedelta(days=1), cloud="gov-openstack")
    assert caught.value.field == "reclaim_metric_profiles"
