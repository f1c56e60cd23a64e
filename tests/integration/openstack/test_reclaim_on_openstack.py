"""The reclaim executor on real Nova: shelve-offload an idle and a stopped server, resize an oversized one
(with Nova's confirm step), and skip a server that is already where it should be."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloudctl.compute import provisioning
from cloudctl.compute import service as compute
from cloudctl.compute.models import CloudKind, Server
from cloudctl.compute.providers import provider_for
from cloudctl.compute.providers.base import ServerSpec
from cloudctl.compute.schemas import CloudCreate
from cloudctl.core.models import utcnow
from cloudctl.org.models import Unit
from cloudctl.reclaim import service as reclaim
from cloudctl.reclaim.models import ReclaimCampaign, Recommendation, RecommendationKind, RecommendationStatus
from tests.factories import ADMIN, build_mini_city

pytestmark = pytest.mark.openstack
SMALL, MEDIUM = "c1m512", "c2m1024"


def _settle(provider: Any, server_id: str, status: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while provider.get_server(server_id).status != status:
        assert time.monotonic() < deadline, f"{server_id} never reached {status}"
        time.sleep(0.5)


def test_reclaim_executes_on_real_servers(session: Session, db_url: str, openstack_cloud: dict[str, Any]) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("Nova is what is under test here: one database is enough")
    city = build_mini_city(session)
    cloud = compute.create_cloud(session, ADMIN, CloudCreate(name="gov-openstack", display_name="运营商政务云",
                                                             kind=CloudKind.OPENSTACK,
                                                             connection=openstack_cloud["cloud"]))
    compute.sync_flavors(session, ADMIN, cloud.name)
    provider = provider_for(cloud)
    unit = session.scalar(select(Unit).where(Unit.code == "990100-D01"))
    assert unit is not None
    project = compute.ensure_project(session, unit, cloud, provider)
    # All four asked for first, then waited for: Nova builds them side by side.
    built = {name: provider.create_server(project, ServerSpec(name=f"reclaim-{name}", flavor=flavor,
                                                              tag=f"rc:{name}", image=openstack_cloud["image_id"]))
             for name, flavor in (("idle", SMALL), ("zombie", SMALL), ("oversized", MEDIUM), ("shelved", SMALL))}
    servers: dict[str, Server] = {}
    for name, info in built.items():
        _settle(provider, info.provider_id, "ACTIVE")
        servers[name] = provisioning.record_server(session, cloud.id, unit.id, city.systems["own"], None,
                                                   provider.get_server(info.provider_id))
    provisioning.operate_server(session, ADMIN, servers["zombie"].id, "stop")
    for action in ("shelve", "shelve_offload"):
        provisioning.operate_server(session, ADMIN, servers["shelved"].id, action)
    _settle(provider, servers["shelved"].provider_id, "SHELVED_OFFLOADED")
    provisioning.sync_servers(session, ADMIN, cloud.name)

    campaign = ReclaimCampaign(as_of=utcnow().date(), window_days=30, started_at=utcnow(), started_by="test",
                               thresholds={}, counts={})
    session.add(campaign)
    session.flush()
    due = utcnow() - timedelta(days=1)
    plan = {"idle": (RecommendationKind.IDLE, None), "zombie": (RecommendationKind.ZOMBIE, None),
            "oversized": (RecommendationKind.OVERSIZED, SMALL), "shelved": (RecommendationKind.IDLE, None)}
    for name, (kind, flavor) in plan.items():
        session.add(Recommendation(server_id=servers[name].id, unit_id=unit.id, kind=kind,
                                   status=RecommendationStatus.NOTIFIED, campaign_id=campaign.id, evidence={},
                                   current_flavor=servers[name].flavor, recommended_flavor=flavor, reclaim_vcpus=1,
                                   reclaim_ram_mb=512, reclaim_disk_gb=0, saving_month=62.5, notified_at=due,
                                   due_at=due))
    session.flush()

    steps = {s.server.removeprefix("reclaim-"): s for s in reclaim.execute(session, ADMIN)}
    assert {name: s.outcome for name, s in steps.items()} == {"idle": "done", "zombie": "done", "oversized": "done",
                                                              "shelved": "skipped"}, steps
    for name in ("idle", "zombie", "shelved"):
        _settle(provider, servers[name].provider_id, "SHELVED_OFFLOADED")
    resized = provider.get_server(servers["oversized"].provider_id)
    assert (resized.flavor, resized.status) == (SMALL, "ACTIVE")  # resized and confirmed
    assert reclaim.execute(session, ADMIN) == []  # nothing is due any more
    for server in servers.values():
        provider.delete_server(server.provider_id)
