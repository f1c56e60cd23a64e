"""Resizing a server through the service: quota first, Nova's confirm step, the audit trail."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloudctl.compute import provisioning, service
from cloudctl.compute.models import Cloud, Server
from cloudctl.compute.providers import provider_for
from cloudctl.compute.providers.simulator import SimulatorProvider
from cloudctl.compute.schemas import QuotaSet
from cloudctl.core.audit import AuditEntry
from cloudctl.core.auth import Role
from cloudctl.core.errors import Conflict, InvalidInput, NotFound
from cloudctl.org.service import principal_for_user
from tests.factories import ADMIN, MiniCity, build_mini_city, make_server, make_user


@pytest.fixture
def city(session: Session) -> MiniCity:
    city = build_mini_city(session, with_cloud=True)  # quotas: 32 vCPU, 64 GB, 8 instances per department
    provider = _provider(session)
    provider.add_flavor("c8m16", vcpus=8, ram_mb=16384, disk_gb=40)
    provider.add_flavor("c2m4-small-disk", vcpus=2, ram_mb=4096, disk_gb=20)
    service.sync_flavors(session, ADMIN, "test-cloud")
    return city


def _provider(session: Session) -> SimulatorProvider:
    cloud = session.scalar(select(Cloud).where(Cloud.name == "test-cloud"))
    assert cloud is not None
    provider = provider_for(cloud)
    assert isinstance(provider, SimulatorProvider)
    return provider


def _server(session: Session, city: MiniCity, flavor: str = "c4m8") -> Server:
    """A running VM of 市公安局 on the test cloud, counted in its quota."""
    return make_server(session, "990100-D01", city.systems["own"], flavor)


def _quota(session: Session) -> tuple[int, int, int]:
    quota = service.get_quota(session, ADMIN, "990100-D01", "test-cloud")
    return quota.used_vcpus, quota.used_ram_mb, quota.reserved_vcpus


def test_growing_is_confirmed_and_counted_in_the_quota(session: Session, city: MiniCity) -> None:
    server = _server(session, city)
    assert server.status == "ACTIVE"
    assert _quota(session) == (4, 8192, 0)
    resized = provisioning.resize_server(session, city.principals["ops"], server.id, "c8m16")
    assert (resized.flavor, resized.vcpus, resized.ram_mb, resized.status) == ("c8m16", 8, 16384, "ACTIVE")
    assert _quota(session) == (8, 16384, 0)  # usage now, nothing left reserved
    entry = session.scalar(select(AuditEntry).where(AuditEntry.entity == "server", AuditEntry.action == "resize"))
    assert entry is not None
    assert entry.before is not None
    assert entry.after is not None
    assert (entry.before["flavor"], entry.after["flavor"]) == ("c4m8", "c8m16")


def test_shrinking_gives_quota_back(session: Session, city: MiniCity) -> None:
    server = _server(session, city, "c8m16")
    provisioning.resize_server(session, city.principals["ops"], server.id, "c2m4")
    assert _quota(session) == (2, 4096, 0)


def test_without_confirm_it_waits_in_verify_resize(session: Session, city: MiniCity) -> None:
    server = _server(session, city)
    resized = provisioning.resize_server(session, city.principals["ops"], server.id, "c2m4", confirm=False)
    assert resized.status == "VERIFY_RESIZE"
    confirmed = provisioning.operate_server(session, city.principals["ops"], server.id, "confirm_resize")
    assert confirmed.status == "ACTIVE"


def test_growth_beyond_the_quota_is_refused_and_changes_nothing(session: Session, city: MiniCity) -> None:
    server = _server(session, city)
    service.set_quota(session, ADMIN, "990100-D01", "test-cloud", QuotaSet(vcpus=6))
    with pytest.raises(Conflict) as caught, session.begin_nested():
        provisioning.resize_server(session, city.principals["ops"], server.id, "c8m16")
    assert caught.value.field == "vcpus"
    session.expire_all()
    assert session.get(Server, server.id).flavor == "c4m8"  # type: ignore[union-attr]
    assert _quota(session) == (4, 8192, 0)


@pytest.mark.parametrize(("flavor", "field"), [("c64m512", "flavor"), ("c4m8", "flavor"),
                                                ("c2m4-small-disk", "flavor")])
def test_bad_flavors_name_the_field(session: Session, city: MiniCity, flavor: str, field: str) -> None:
    server = _server(session, city)
    with pytest.raises(InvalidInput) as caught:
        provisioning.resize_server(session, city.principals["ops"], server.id, flavor)
    assert caught.value.field == field


def test_a_department_cannot_resize_another_units_server(session: Session, city: MiniCity) -> None:
    server = _server(session, city)
    other = principal_for_user(make_user(session, "dept-d02-ops", Role.DEPT, "990100-D02"))
    with pytest.raises(NotFound):
        provisioning.resize_server(session, other, server.id, "c8m16")


def test_status_since_moves_only_when_the_status_changes(session: Session, city: MiniCity) -> None:
    server = _server(session, city)
    first = server.status_since
    assert first is not None
    provisioning.sync_servers(session, ADMIN, "test-cloud")
    assert server.status_since == first
    provisioning.operate_server(session, city.principals["ops"], server.id, "stop")
    assert server.status == "SHUTOFF"
    assert server.status_since is not None
    assert server.status_since >= first
