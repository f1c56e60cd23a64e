"""The OpenStack provider against real Keystone, Nova, Placement and Glance (the fake virt driver underneath).

The same contract the requests-mock tests state (tests/unit/compute/test_openstack_provider.py),
here answered by the services themselves: projects, Nova quota sets with their refusals,
servers tagged for idempotency through their whole life, and capacity from Placement.
Each test works in a unit project of its own, so quotas and usage do not mix.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import openstack
import pytest
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

from cloudctl.compute.providers.base import QuotaLimits, ServerInfo, ServerSpec
from cloudctl.compute.providers.openstack import OpenStackProvider, project_name
from cloudctl.core.errors import Conflict, NotFound, ProviderError

# Bring-up from a cached virtualenv takes a couple of minutes, and counts against the first test.
pytestmark = [pytest.mark.openstack, pytest.mark.timeout(1800)]

SMALL, MEDIUM = "c1m512", "c2m1024"


@pytest.fixture(scope="module")
def admin(openstack_cloud: dict[str, Any]) -> Iterator[Any]:
    """openstacksdk as the cloud's admin: to look behind the provider (Keystone, Placement)."""
    conn = openstack.connect(cloud=openstack_cloud["cloud"], compute_api_version="2.79")
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def provider(openstack_cloud: dict[str, Any]) -> OpenStackProvider:
    return OpenStackProvider.from_cloud(openstack_cloud["cloud"])


def _code() -> str:
    return f"99{uuid.uuid4().hex[:4]}-D{uuid.uuid4().hex[:2]}".upper()


@pytest.fixture
def unit(provider: OpenStackProvider) -> str:
    """A unit's project, as ensure_project makes it (with cloudctl's own user a member of it)."""
    return provider.ensure_project(_code(), "测试单位")


def _session_connection(auth_url: str, password: str) -> Any:
    """A connection from a keystoneauth session of its own: clouds.yaml (OS_CLIENT_CONFIG_FILE) plays no part."""
    auth = v3.Password(auth_url=auth_url, username="admin", password=password, project_name="admin",
                       user_domain_name="Default", project_domain_name="Default")
    return openstack.connection.Connection(session=ks_session.Session(auth=auth), region_name="RegionOne",
                                           compute_api_version="2.79")


def _spec(cloud: dict[str, Any], flavor: str = SMALL, tag: str | None = None) -> ServerSpec:
    tag = tag or f"cloudctl:r{uuid.uuid4().hex[:8]}:i1:0"
    return ServerSpec(name=f"t-{uuid.uuid4().hex[:8]}", flavor=flavor, tag=tag, image=cloud["image_id"],
                      metadata={"unit": "test"})


def _wait(provider: OpenStackProvider, server_id: str, status: str, timeout: float = 180) -> ServerInfo:
    deadline = time.monotonic() + timeout
    info = provider.get_server(server_id)
    while info.status != status:
        assert info.status != "ERROR", f"server {server_id} went to ERROR: {info.fault}"
        assert time.monotonic() < deadline, f"server {server_id} still {info.status}, not {status}"
        time.sleep(0.5)
        info = provider.get_server(server_id)
    return info


def _until(check: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def _gone(provider: OpenStackProvider, server_id: str) -> bool:
    try:
        provider.get_server(server_id)
    except NotFound:
        return True
    return False


# -------------------------------------------------------------------------- projects


def test_ensure_project_creates_the_units_project_once(provider: OpenStackProvider, admin: Any) -> None:
    code = _code()
    first = provider.ensure_project(code, "市测试局")
    project = admin.identity.get_project(first)
    assert project.name == project_name(code)
    assert project.domain_id == "default"
    assert code in project.description
    assert provider.ensure_project(code, "市测试局") == first  # found, not created again
    assert len([p for p in admin.identity.projects(name=project_name(code))]) == 1


def test_create_server_right_after_ensure_project(provider: OpenStackProvider,
                                                  openstack_cloud: dict[str, Any]) -> None:
    project = provider.ensure_project(_code(), "新单位")
    server = provider.create_server(project, _spec(openstack_cloud))
    assert _wait(provider, server.provider_id, "ACTIVE").project == project
    provider.delete_server(server.provider_id)


def test_refused_credentials_are_a_provider_error(openstack_cloud: dict[str, Any]) -> None:
    conn = _session_connection(openstack_cloud["keystone"], "not-the-password")
    with pytest.raises(ProviderError) as caught:
        OpenStackProvider(conn).capacity()
    assert caught.value.field == "cloud"


def test_an_unreachable_cloud_is_a_provider_error(openstack_cloud: dict[str, Any]) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    conn = _session_connection(f"http://127.0.0.1:{port}/v3", openstack_cloud["admin_password"])
    with pytest.raises(ProviderError) as caught:
        OpenStackProvider(conn).list_flavors()
    assert caught.value.field == "cloud"


def test_list_flavors(provider: OpenStackProvider, openstack_cloud: dict[str, Any]) -> None:
    flavors = {f.name: f for f in provider.list_flavors()}
    for name, made in openstack_cloud["flavors"].items():
        assert (flavors[name].vcpus, flavors[name].ram_mb, flavors[name].disk_gb) == (
            made["vcpus"], made["ram"], made["disk"])
        assert flavors[name].provider_id == made["id"]


# -------------------------------------------------------------------------- quotas


def test_quota_round_trips_and_a_limit_below_usage_is_refused_not_forced(
        provider: OpenStackProvider, unit: str, openstack_cloud: dict[str, Any]) -> None:
    provider.set_quota(unit, QuotaLimits(vcpus=8, ram_mb=8192, instances=4))
    limits, usage = provider.get_quota(unit)
    assert limits == QuotaLimits(vcpus=8, ram_mb=8192, disk_gb=None, instances=4)  # no Cinder: no disk quota
    assert (usage.vcpus, usage.ram_mb, usage.instances) == (0, 0, 0)

    provider.set_quota(unit, QuotaLimits(vcpus=None, ram_mb=16384, instances=None))  # None: unlimited
    limits, _ = provider.get_quota(unit)
    assert (limits.vcpus, limits.ram_mb, limits.instances) == (None, 16384, None)

    provider.set_quota(unit, QuotaLimits(vcpus=8, ram_mb=8192, instances=4))
    server = provider.create_server(unit, _spec(openstack_cloud, MEDIUM))
    _wait(provider, server.provider_id, "ACTIVE")
    limits, usage = provider.get_quota(unit)
    assert (usage.vcpus, usage.ram_mb, usage.instances) == (2, 1024, 1)

    with pytest.raises(Conflict) as caught:
        provider.set_quota(unit, QuotaLimits(vcpus=1, ram_mb=8192, instances=4))
    assert caught.value.field == "quota"
    assert provider.get_quota(unit)[0].vcpus == 8  # refused, not forced under the usage

    provider.delete_server(server.provider_id)
    _until(lambda: _gone(provider, server.provider_id), "the server to be deleted")


def test_novas_own_quota_refusal_is_a_quota_conflict(provider: OpenStackProvider, unit: str,
                                                     openstack_cloud: dict[str, Any]) -> None:
    provider.set_quota(unit, QuotaLimits(vcpus=2, ram_mb=4096, instances=5))
    first = provider.create_server(unit, _spec(openstack_cloud, MEDIUM))
    with pytest.raises(Conflict) as caught:
        provider.create_server(unit, _spec(openstack_cloud, MEDIUM))  # 2 more cores: over the limit of 2
    assert caught.value.field == "quota"
    assert "quota" in caught.value.detail.lower()
    assert "cores" in caught.value.detail.lower()
    assert [s.provider_id for s in provider.list_servers(unit)] == [first.provider_id]
    provider.delete_server(first.provider_id)
    _until(lambda: _gone(provider, first.provider_id), "the server to be deleted")


# -------------------------------------------------------------------------- servers


def test_create_is_idempotent_by_tag(provider: OpenStackProvider, unit: str,
                                     openstack_cloud: dict[str, Any]) -> None:
    spec = _spec(openstack_cloud)
    created = provider.create_server(unit, spec)
    active = _wait(provider, created.provider_id, "ACTIVE")
    assert active.tag == spec.tag
    assert active.project == unit  # created with a token scoped to the unit's project
    assert (active.flavor, active.vcpus, active.ram_mb, active.disk_gb) == (SMALL, 1, 512, 1)
    assert active.host in openstack_cloud["computes"]
    assert active.created_at is not None

    again = provider.create_server(unit, spec)  # a retried request item: the same server, no duplicate
    assert again.provider_id == created.provider_id
    assert [s.provider_id for s in provider.list_servers(unit)] == [created.provider_id]

    found = provider.find_server_by_tag(unit, spec.tag)
    assert found is not None
    assert found.provider_id == created.provider_id
    assert provider.find_server_by_tag(unit, "cloudctl:r-none:i1:0") is None
    assert created.provider_id in {s.provider_id for s in provider.list_servers()}

    provider.delete_server(created.provider_id)
    _until(lambda: _gone(provider, created.provider_id), "the server to be deleted")
    with pytest.raises(NotFound):
        provider.get_server(created.provider_id)
    with pytest.raises(NotFound):
        provider.delete_server(created.provider_id)


def test_a_tag_is_looked_up_in_the_units_project_only(provider: OpenStackProvider,
                                                      openstack_cloud: dict[str, Any]) -> None:
    first, second = (provider.ensure_project(_code(), f"单位{i}") for i in (1, 2))
    spec = _spec(openstack_cloud)
    one = provider.create_server(first, spec)
    assert provider.find_server_by_tag(second, spec.tag) is None
    other = provider.create_server(second, spec)  # the same tag in another unit: a server of its own
    assert other.provider_id != one.provider_id
    assert (_wait(provider, one.provider_id, "ACTIVE").project, _wait(provider, other.provider_id, "ACTIVE").project) \
        == (first, second)
    for server in (one, other):
        provider.delete_server(server.provider_id)
    for server in (one, other):
        _until(lambda sid=server.provider_id: _gone(provider, sid), "the servers to be deleted")


def test_a_server_through_its_life(provider: OpenStackProvider, unit: str, admin: Any,
                                   openstack_cloud: dict[str, Any]) -> None:
    server = provider.create_server(unit, _spec(openstack_cloud))
    sid = server.provider_id
    _wait(provider, sid, "ACTIVE")

    provider.server_action(sid, "stop")
    _wait(provider, sid, "SHUTOFF")
    provider.server_action(sid, "start")
    _wait(provider, sid, "ACTIVE")

    provider.resize_server(sid, MEDIUM)
    _wait(provider, sid, "VERIFY_RESIZE")
    provider.server_action(sid, "confirm_resize")
    resized = _wait(provider, sid, "ACTIVE")
    assert (resized.flavor, resized.vcpus, resized.ram_mb) == (MEDIUM, 2, 1024)
    allocations = admin.placement.get(f"/allocations/{sid}").json()["allocations"]
    assert [a["resources"]["VCPU"] for a in allocations.values()] == [2]

    provider.server_action(sid, "shelve")
    _wait(provider, sid, "SHELVED")
    provider.server_action(sid, "shelve_offload")
    offloaded = _wait(provider, sid, "SHELVED_OFFLOADED")
    assert not offloaded.host
    assert admin.placement.get(f"/allocations/{sid}").json()["allocations"] == {}  # Placement let go

    provider.server_action(sid, "unshelve")
    _wait(provider, sid, "ACTIVE")
    assert admin.placement.get(f"/allocations/{sid}").json()["allocations"] != {}

    provider.delete_server(sid)
    _until(lambda: _gone(provider, sid), "the server to be deleted")
    _until(lambda: admin.placement.get(f"/allocations/{sid}").json()["allocations"] == {},
           "the allocation to be dropped")


def test_an_action_on_a_missing_server_is_not_found(provider: OpenStackProvider) -> None:
    with pytest.raises(NotFound):
        provider.server_action(str(uuid.uuid4()), "stop")


# -------------------------------------------------------------------------- capacity


def test_capacity_comes_from_placement(provider: OpenStackProvider, unit: str, admin: Any,
                                       openstack_cloud: dict[str, Any]) -> None:
    server = provider.create_server(unit, _spec(openstack_cloud, MEDIUM))
    _wait(provider, server.provider_id, "ACTIVE")
    computes, ratios = openstack_cloud["computes"], openstack_cloud["allocation"]

    def used(resource_class: str) -> int:
        total = 0
        for rp in admin.placement.resource_providers():
            total += admin.placement.get(f"/resource_providers/{rp.id}/usages").json()["usages"].get(
                resource_class, 0)
        return int(total)

    def usage() -> tuple[int, int, int]:
        return used("VCPU"), used("MEMORY_MB"), used("DISK_GB")

    # Servers earlier tests deleted free their allocations when Nova finishes deleting them, at any moment: compare
    # against a usage that held still across the provider's own reading.
    for _ in range(20):
        before = usage()
        capacity = {c.resource: c for c in provider.capacity()}
        if usage() == before:
            break
        time.sleep(0.5)
    vcpus_used, ram_used, disk_used = before
    n = len(computes)
    expected = {
        "vcpus": (sum(c["vcpus"] for c in computes.values()), n * ratios["reserved_host_cpus"],
                  ratios["cpu_allocation_ratio"], vcpus_used),
        "ram_mb": (sum(c["memory_mb"] for c in computes.values()), n * ratios["reserved_host_memory_mb"],
                   ratios["ram_allocation_ratio"], ram_used),
        "disk_gb": (sum(c["local_gb"] for c in computes.values()), n * ratios["reserved_host_disk_mb"] // 1024,
                    ratios["disk_allocation_ratio"], disk_used),
    }
    for resource, (total, reserved, ratio, in_use) in expected.items():
        got = capacity[resource]
        assert (got.total, got.reserved, got.allocation_ratio, got.used) == (total, reserved, ratio, in_use), resource
    assert capacity["vcpus"].used >= 2  # the server above, at least
    assert capacity["vcpus"].usable == int(2000 * 4.0)
    assert capacity["ram_mb"].usable == int((1_600_000 - 1024) * 1.5)

    provider.delete_server(server.provider_id)
    _until(lambda: _gone(provider, server.provider_id), "the server to be deleted")
