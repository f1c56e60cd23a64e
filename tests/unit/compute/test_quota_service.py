"""Clouds, flavors, quotas and capacity through the service, with the simulator behind it."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from cloudctl.compute import service
from cloudctl.compute.models import CloudKind, Quota
from cloudctl.compute.providers import provider_for
from cloudctl.compute.providers.simulator import SimulatorProvider
from cloudctl.compute.schemas import CloudCreate, QuotaSet
from cloudctl.core.audit import AuditEntry
from cloudctl.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from tests.factories import ADMIN, MiniCity, build_mini_city


def make_cloud(session: Session, name: str = "city-cloud") -> SimulatorProvider:
    cloud = service.create_cloud(session, ADMIN, CloudCreate(
        name=name, display_name="市政务云中心", kind=CloudKind.SIMULATOR, cpu_allocation_ratio=2.0))
    provider = provider_for(cloud)
    assert isinstance(provider, SimulatorProvider)
    provider.add_host("cn01", vcpus=32, ram_mb=262144, disk_gb=4000)
    provider.add_flavor("c2m4", vcpus=2, ram_mb=4096, disk_gb=40)
    provider.add_flavor("c4m8", vcpus=4, ram_mb=8192, disk_gb=40)
    return provider


@pytest.fixture
def city(session: Session) -> MiniCity:
    return build_mini_city(session)


def test_cloud_registry_and_flavor_sync(session: Session, city: MiniCity) -> None:
    provider = make_cloud(session)
    assert service.sync_flavors(session, ADMIN, "city-cloud") == (2, 0, 0)
    provider.add_flavor("c8m16", vcpus=8, ram_mb=16384, disk_gb=80)
    assert service.sync_flavors(session, ADMIN, "city-cloud") == (1, 0, 0)
    dept = city.principals["dept"]
    assert [f.name for f in service.list_flavors(session, dept, "city-cloud")] == ["c2m4", "c4m8", "c8m16"]
    with pytest.raises(Conflict) as dup:
        service.create_cloud(session, ADMIN, CloudCreate(name="city-cloud", display_name="重复",
                                                          kind=CloudKind.SIMULATOR))
    assert dup.value.field == "name"
    with pytest.raises(PermissionDenied):
        service.sync_flavors(session, dept, "city-cloud")
    with pytest.raises(NotFound):
        service.get_cloud(session, dept, "nowhere")


def test_set_quota_pushes_to_the_provider_and_is_audited(session: Session, city: MiniCity) -> None:
    provider = make_cloud(session)
    quota = service.set_quota(session, city.principals["ops"], "990100-D01", "city-cloud",
                              QuotaSet(vcpus=16, ram_gib=32, disk_gib=500, instances=8))
    assert (quota.limit_vcpus, quota.limit_ram_mb) == (16, 32768)
    project = service.ensure_project(session, quota.unit, quota.cloud, provider)
    limits, _ = provider.get_quota(project)
    assert (limits.vcpus, limits.ram_mb, limits.disk_gb, limits.instances) == (16, 32768, 500, 8)
    # Only what is given changes.
    service.set_quota(session, city.principals["ops"], "990100-D01", "city-cloud", QuotaSet(vcpus=24))
    assert (quota.limit_vcpus, quota.limit_instances) == (24, 8)
    entry = session.scalars(select(AuditEntry).where(AuditEntry.entity == "quota")
                            .order_by(AuditEntry.id.desc())).first()
    assert entry is not None
    assert (entry.before, entry.after) == ({"limit_vcpus": 16}, {"limit_vcpus": 24})
    with pytest.raises(InvalidInput):
        service.set_quota(session, ADMIN, "990100-D01", "city-cloud", QuotaSet())
    with pytest.raises(PermissionDenied):
        service.set_quota(session, city.principals["dept"], "990100-D01", "city-cloud", QuotaSet(vcpus=99))


def test_sync_reads_usage_back_and_limits_cannot_go_below_it(session: Session, city: MiniCity) -> None:
    from cloudctl.compute.providers.base import ServerSpec

    provider = make_cloud(session)
    quota = service.set_quota(session, ADMIN, "990100-D01", "city-cloud", QuotaSet(vcpus=16, instances=4))
    project = service.ensure_project(session, quota.unit, quota.cloud, provider)
    provider.create_server(project, ServerSpec("web", "c4m8", tag="w1"))
    synced = service.sync_quota(session, ADMIN, "990100-D01", "city-cloud")
    assert (synced.used_vcpus, synced.used_ram_mb, synced.used_instances) == (4, 8192, 1)
    assert synced.synced_at is not None
    with pytest.raises(Conflict) as caught:
        service.set_quota(session, ADMIN, "990100-D01", "city-cloud", QuotaSet(vcpus=2))
    assert caught.value.field == "vcpus"


def test_dept_sees_only_its_own_quotas(session: Session, city: MiniCity) -> None:
    make_cloud(session)
    service.set_quota(session, ADMIN, "990100-D01", "city-cloud", QuotaSet(vcpus=16))
    service.set_quota(session, ADMIN, "990100-D02", "city-cloud", QuotaSet(vcpus=16))
    dept = city.principals["dept"]
    rows, total = service.list_quotas(session, dept)
    assert (total, [q.unit_code for q in rows]) == (1, ["990100-D01"])
    with pytest.raises(NotFound):
        service.get_quota(session, dept, "990100-D02", "city-cloud")


def test_reserve_refuses_what_does_not_fit_and_release_gives_back(session: Session, city: MiniCity) -> None:
    make_cloud(session)
    quota = service.set_quota(session, ADMIN, "990100-D01", "city-cloud", QuotaSet(vcpus=8, instances=4))
    service.reserve(session, quota.id, service.Ask(vcpus=6, ram_mb=12288, instances=3))
    with pytest.raises(Conflict) as caught:
        service.reserve(session, quota.id, service.Ask(vcpus=4, instances=1))
    assert caught.value.field == "vcpus"
    assert "6 vCPU reserved of 8 vCPU" in caught.value.detail
    # Memory is refused in the unit it is asked and shown in everywhere: GiB, under the field ram_gib.
    service.set_quota(session, ADMIN, "990100-D01", "city-cloud", QuotaSet(vcpus=64, ram_gib=16))
    with pytest.raises(Conflict) as caught:
        service.reserve(session, quota.id, service.Ask(vcpus=1, ram_mb=640 * 1024, instances=1))
    assert caught.value.field == "ram_gib"
    assert "ram_gib asks 640 GiB with 0 GiB used and 12 GiB reserved of 16 GiB" in caught.value.detail
    assert "MiB" not in caught.value.detail
    service.release(session, quota.id, service.Ask(vcpus=6, ram_mb=12288, instances=3))
    quota = session.get(Quota, quota.id, populate_existing=True)
    assert quota is not None
    assert (quota.reserved_vcpus, quota.reserved_ram_mb, quota.reserved_instances) == (0, 0, 0)


def test_capacity_view(session: Session, city: MiniCity) -> None:
    make_cloud(session)
    service.set_quota(session, ADMIN, "990100-D01", "city-cloud", QuotaSet(vcpus=40, ram_gib=64))
    rows = {r.resource: r for r in service.capacity(session, city.principals["ops"], "city-cloud")}
    assert (rows["vcpus"].capacity, rows["vcpus"].allocated, rows["vcpus"].allocated_ratio) == (64, 40, 0.625)
    assert (rows["ram"].capacity, rows["ram"].unit) == ((262144 - 4096) / 1024, "GiB")


def test_concurrent_reservations_never_oversubscribe(fresh_engine: Engine) -> None:
    """200 threads together asking twice a unit's quota: exactly what fits is admitted."""
    from cloudctl.compute.models import Cloud
    from cloudctl.org.models import Unit, UnitKind

    with Session(fresh_engine) as s:
        city_unit = Unit(code="990100", name="临江市", kind=UnitKind.CITY, path="/")
        cloud = Cloud(name="c", display_name="市政务云", kind=CloudKind.SIMULATOR)
        s.add_all([city_unit, cloud])
        s.flush()
        quota = Quota(unit_id=city_unit.id, cloud_id=cloud.id, limit_vcpus=200, limit_ram_mb=None,
                      limit_disk_gb=None, limit_instances=100)
        s.add(quota)
        s.commit()
        quota_id = quota.id
    admitted: list[int] = []
    refused: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(20)

    def client(n: int) -> None:
        start.wait()
        for i in range(10):
            with Session(fresh_engine) as s:
                try:
                    service.reserve(s, quota_id, service.Ask(vcpus=2, instances=1))
                    s.commit()
                    outcome = admitted
                except Conflict:
                    s.rollback()
                    outcome = refused
            with lock:
                outcome.append(n * 10 + i)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (len(admitted), len(refused)) == (100, 100)
    with Session(fresh_engine) as s:
        final = s.get(Quota, quota_id)
        assert final is not None
        assert (final.reserved_vcpus, final.reserved_instances) == (200, 100)
