"""The compute service's batch paths end as the one-at-a-time calls would: quotas, projects, recorded servers."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloudctl.compute import provisioning, service
from cloudctl.compute.models import Cloud, Quota, Server, ServerAddress, UnitProject
from cloudctl.compute.providers import provider_for
from cloudctl.compute.providers.base import ServerSpec
from cloudctl.compute.providers.simulator import SimulatorProvider
from cloudctl.compute.schemas import QuotaSet
from cloudctl.core.audit import AuditEntry
from cloudctl.core.errors import Conflict, NotFound
from cloudctl.org.models import Unit
from tests.factories import ADMIN, MiniCity, build_mini_city, make_cloud


@pytest.fixture
def city(session: Session) -> MiniCity:
    city = build_mini_city(session)
    make_cloud(session, "test-cloud")
    make_cloud(session, "carrier-cloud")
    return city


def _provider(session: Session, name: str) -> SimulatorProvider:
    provider = provider_for(session.scalars(select(Cloud).where(Cloud.name == name)).one())
    assert isinstance(provider, SimulatorProvider)
    return provider


def test_set_quotas_sets_pushes_and_audits_each_in_order(session: Session, city: MiniCity) -> None:
    quotas = service.set_quotas(session, city.principals["ops"], [
        ("990100-D01", "test-cloud", QuotaSet(vcpus=16, ram_gib=32, instances=8)),
        ("990100-D02", "test-cloud", QuotaSet(vcpus=8)),
        ("990100-D01", "carrier-cloud", QuotaSet(instances=2)),
        ("990100-D02", "test-cloud", QuotaSet(ram_gib=16)),  # the same quota again: on top of the line before
    ])
    assert [(q.unit_code, q.cloud_name) for q in quotas] == [
        ("990100-D01", "test-cloud"), ("990100-D02", "test-cloud"), ("990100-D01", "carrier-cloud"),
        ("990100-D02", "test-cloud")]
    assert (quotas[1].limit_vcpus, quotas[1].limit_ram_mb) == (8, 16384)
    # The provider holds the limits, each project made once, in the order the quotas came.
    projects = {(p.unit_id, p.cloud_id): p.project_id for p in session.scalars(select(UnitProject)
                                                                               .order_by(UnitProject.id))}
    assert len(projects) == 3
    d02 = quotas[1]
    limits, _ = _provider(session, "test-cloud").get_quota(projects[(d02.unit_id, d02.cloud_id)])
    assert (limits.vcpus, limits.ram_mb) == (8, 16384)
    audited = session.scalars(select(AuditEntry.entity_id).where(AuditEntry.entity == "quota")
                              .order_by(AuditEntry.id)).all()
    assert list(audited) == ["990100-D01@test-cloud", "990100-D02@test-cloud", "990100-D01@carrier-cloud",
                             "990100-D02@test-cloud"]


def test_set_quotas_checks_every_item_before_pushing_any(session: Session, city: MiniCity) -> None:
    service.set_quota(session, ADMIN, "990100-D02", "test-cloud", QuotaSet(vcpus=8))
    quota = session.scalars(select(Quota).join(Quota.unit).where(Unit.code == "990100-D02")).one()
    quota.used_vcpus = 6
    session.flush()
    with pytest.raises(Conflict) as caught:
        service.set_quotas(session, ADMIN, [("990100-D01", "test-cloud", QuotaSet(vcpus=16)),
                                            ("990100-D02", "test-cloud", QuotaSet(vcpus=4))])
    assert caught.value.field == "vcpus"
    d01 = session.scalar(select(UnitProject).join(Unit, UnitProject.unit_id == Unit.id)
                         .where(Unit.code == "990100-D01"))
    assert d01 is None  # nothing was pushed: D01 has no project yet
    with pytest.raises(NotFound) as unknown:
        service.set_quotas(session, ADMIN, [("990100-D09", "test-cloud", QuotaSet(vcpus=4))])
    assert unknown.value.field == "unit"


def test_sync_quotas_reads_usage_back_for_every_quota(session: Session, city: MiniCity) -> None:
    service.set_quotas(session, ADMIN, [(code, "test-cloud", QuotaSet(vcpus=16, instances=4))
                                        for code in ("990100-D01", "990100-D02")])
    provider = _provider(session, "test-cloud")
    project = session.scalars(select(UnitProject.project_id).join(Unit, UnitProject.unit_id == Unit.id)
                              .where(Unit.code == "990100-D02")).one()
    provider.create_servers([(project, ServerSpec(f"s{i}", "c4m8", tag=f"s{i}")) for i in range(2)])
    synced = service.sync_quotas(session, ADMIN, cloud="test-cloud")
    assert [(q.unit_code, q.used_vcpus, q.used_instances) for q in synced] == [("990100-D01", 0, 0),
                                                                               ("990100-D02", 8, 2)]


def test_record_servers_adds_new_ones_and_brings_known_ones_up_to_date(session: Session, city: MiniCity) -> None:
    cloud = session.scalars(select(Cloud).where(Cloud.name == "test-cloud")).one()
    units = {u.code: u for u in session.scalars(select(Unit))}
    provider = _provider(session, "test-cloud")
    projects = service.ensure_projects(session, [(units["990100-D01"], cloud), (units["990100-D02"], cloud)],
                                       lambda _: provider)
    p1, p2 = projects[(units["990100-D01"].id, cloud.id)], projects[(units["990100-D02"].id, cloud.id)]
    infos = provider.create_servers([(p1, ServerSpec("web", "c4m8", tag="web")),
                                     (p2, ServerSpec("db", "c2m4", tag="db"))])
    first = provisioning.record_servers(session, cloud.id, [
        (units["990100-D01"].id, city.systems["own"], None, infos[0]),
        (units["990100-D02"].id, city.systems["other"], None, infos[1])])
    assert [(s.name, s.unit_code, s.business_system_id) for s in first] == [
        ("web", "990100-D01", city.systems["own"]), ("db", "990100-D02", city.systems["other"])]
    assert [a.ip for s in first for a in s.addresses] == ["10.192.0.10", "10.192.0.11"]

    # Later the cloud shows web stopped and with a floating IP: the same row, its status and addresses updated;
    # an owner given for a server already known does not move it.
    provider.server_action(infos[0].provider_id, "stop")
    provider.add_floating_ip(infos[0].provider_id, "59.110.8.21")
    again = provisioning.record_servers(session, cloud.id, [
        (units["990100-D02"].id, None, None, provider.get_server(infos[0].provider_id))])
    assert again[0].id == first[0].id
    assert (again[0].status, again[0].unit_code) == ("SHUTOFF", "990100-D01")
    assert [(a.ip, a.kind.value) for a in again[0].addresses] == [("10.192.0.10", "fixed"),
                                                                  ("59.110.8.21", "floating")]
    assert session.scalar(select(func.count()).select_from(Server)) == 2
    assert session.scalar(select(func.count()).select_from(ServerAddress)) == 3
