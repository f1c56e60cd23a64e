"""The OpenStack provider over requests-mock with the APIs' own response shapes (Keystone, Nova, Placement)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests_mock

from cloudctl.compute.providers.base import CloudProvider, QuotaLimits, ServerSpec
from cloudctl.compute.providers.openstack import OpenStackProvider
from cloudctl.core.errors import Conflict, NotFound, ProviderError
from tests.support.openstack_mock import NOVA, PLACEMENT, connection, install

UNIT_PROJECT = "5e1f00aa9b1c4b7e8d2f3a4b5c6d7e80"


def nova_server(server_id: str, status: str = "BUILD", tag: str = "cloudctl:r1:i1:0") -> dict[str, Any]:
    return {
        "id": server_id, "name": "990100-d01-r1-1-0", "status": status, "tenant_id": UNIT_PROJECT,
        "user_id": "u-admin", "created": "2026-11-22T08:00:00Z", "updated": "2026-11-22T08:00:02Z",
        "tags": [tag], "metadata": {"unit": "990100-D01"}, "OS-EXT-SRV-ATTR:host": "cn01" if status != "BUILD"
        else None, "OS-EXT-STS:vm_state": status.lower(), "addresses": {}, "links": [],
        "flavor": {"original_name": "c2m4", "vcpus": 2, "ram": 4096, "disk": 40, "ephemeral": 0, "swap": 0,
                   "extra_specs": {}},
        "image": "", "key_name": None, "security_groups": [], "os-extended-volumes:volumes_attached": [],
    }


@pytest.fixture
def cloud() -> Iterator[tuple[OpenStackProvider, requests_mock.Mocker]]:
    with requests_mock.Mocker() as m:
        install(m)
        yield OpenStackProvider(connection()), m


def test_it_is_a_cloud_provider(cloud: tuple[OpenStackProvider, requests_mock.Mocker]) -> None:
    assert isinstance(cloud[0], CloudProvider)


def test_quota_with_usage_and_a_limit_below_usage_is_a_conflict(
        cloud: tuple[OpenStackProvider, requests_mock.Mocker]) -> None:
    provider, m = cloud
    detail = {"quota_set": {"id": UNIT_PROJECT, "cores": {"in_use": 6, "limit": 20, "reserved": 0},
                            "ram": {"in_use": 12288, "limit": 51200, "reserved": 0},
                            "instances": {"in_use": 3, "limit": -1, "reserved": 0},
                            "key_pairs": {"in_use": 0, "limit": 100, "reserved": 0}}}
    m.get(re.compile(rf"^{NOVA}/os-quota-sets/{UNIT_PROJECT}/detail"), json=detail)
    limits, usage = provider.get_quota(UNIT_PROJECT)
    assert (limits.vcpus, limits.ram_mb, limits.instances, limits.disk_gb) == (20, 51200, None, None)
    assert (usage.vcpus, usage.ram_mb, usage.instances) == (6, 12288, 3)

    put = m.put(f"{NOVA}/os-quota-sets/{UNIT_PROJECT}", json={"quota_set": {"cores": 16, "ram": 32768,
                                                                            "instances": -1}})
    provider.set_quota(UNIT_PROJECT, QuotaLimits(vcpus=16, ram_mb=32768))
    sent = json.loads(put.last_request.body)["quota_set"]
    assert sent == {"cores": 16, "ram": 32768, "instances": -1}
    assert "force" not in sent  # never pushed past Nova's check of usage

    m.put(f"{NOVA}/os-quota-sets/{UNIT_PROJECT}", status_code=400, json={"badRequest": {
        "code": 400, "message": "Quota limit 4 for cores must be greater than or equal to already used and "
                                "reserved 6."}})
    with pytest.raises(Conflict) as caught:
        provider.set_quota(UNIT_PROJECT, QuotaLimits(vcpus=4))
    assert caught.value.field == "quota"
    assert "already used" in caught.value.detail


def test_create_is_idempotent_by_tag_and_runs_in_the_units_project(
        cloud: tuple[OpenStackProvider, requests_mock.Mocker]) -> None:
    provider, m = cloud
    listing = m.get(re.compile(rf"^{NOVA}/servers/detail"), json={"servers": []})
    m.get(re.compile(rf"^{NOVA}/flavors/c2m4$"), json={"flavor": {
        "id": "c2m4", "name": "c2m4", "vcpus": 2, "ram": 4096, "disk": 40, "links": []}})
    created = m.post(f"{NOVA}/servers", status_code=202, json={"server": {
        "id": "9f0e", "links": [], "OS-DCF:diskConfig": "MANUAL", "security_groups": [], "adminPass": "x"}})
    m.get(f"{NOVA}/servers/9f0e", json={"server": nova_server("9f0e")})
    info = provider.create_server(UNIT_PROJECT, ServerSpec("990100-d01-r1-1-0", "c2m4", tag="cloudctl:r1:i1:0",
                                                           network="net-1"))
    assert (info.provider_id, info.status, info.vcpus, info.tag, info.project) == (
        "9f0e", "BUILD", 2, "cloudctl:r1:i1:0", UNIT_PROJECT)
    body = json.loads(created.last_request.body)["server"]
    assert body["tags"] == ["cloudctl:r1:i1:0"]
    assert body["networks"] == [{"uuid": "net-1"}]
    assert "tags=cloudctl" in listing.last_request.url
    # The POST went out under a token scoped to the unit's project, not the admin's.
    scopes = [json.loads(r.body)["auth"].get("scope", {}) for r in m.request_history
              if r.method == "POST" and r.url.endswith("/auth/tokens")]
    assert {"project": {"id": UNIT_PROJECT}} in scopes

    # A retried provisioning finds the server by its tag and creates nothing.
    m.get(re.compile(rf"^{NOVA}/servers/detail"), json={"servers": [nova_server("9f0e", "ACTIVE")]})
    again = provider.create_server(UNIT_PROJECT, ServerSpec("x", "c2m4", tag="cloudctl:r1:i1:0"))
    assert (again.provider_id, again.status, again.host) == ("9f0e", "ACTIVE", "cn01")
    assert created.call_count == 1


def test_nova_quota_refusal_and_missing_servers_become_cloudctl_errors(
        cloud: tuple[OpenStackProvider, requests_mock.Mocker]) -> None:
    provider, m = cloud
    m.get(re.compile(rf"^{NOVA}/servers/detail"), json={"servers": []})
    m.get(re.compile(rf"^{NOVA}/flavors/c2m4$"), json={"flavor": {
        "id": "c2m4", "name": "c2m4", "vcpus": 2, "ram": 4096, "disk": 40, "links": []}})
    m.post(f"{NOVA}/servers", status_code=403, json={"forbidden": {
        "code": 403, "message": "Quota exceeded for cores: Requested 2, but already used 20 of 20 cores"}})
    with pytest.raises(Conflict) as caught:
        provider.create_server(UNIT_PROJECT, ServerSpec("x", "c2m4", tag="cloudctl:r2:i2:0"))
    assert caught.value.field == "quota"
    assert "Quota exceeded for cores" in caught.value.detail
    m.get(f"{NOVA}/servers/gone", status_code=404, json={"itemNotFound": {
        "code": 404, "message": "Instance gone could not be found."}})
    with pytest.raises(NotFound):
        provider.get_server("gone")
    m.get(f"{NOVA}/servers/boom", status_code=503, text="Service Unavailable")
    with pytest.raises(ProviderError):
        provider.get_server("boom")


def test_capacity_comes_from_placement(cloud: tuple[OpenStackProvider, requests_mock.Mocker]) -> None:
    provider, m = cloud
    m.get(f"{PLACEMENT}/resource_providers", json={"resource_providers": [
        {"uuid": f"rp{i}", "name": f"cn0{i}", "generation": 3, "parent_provider_uuid": None,
         "root_provider_uuid": f"rp{i}", "links": []} for i in (1, 2)]})
    for i in (1, 2):
        m.get(f"{PLACEMENT}/resource_providers/rp{i}/inventories", json={
            "resource_provider_generation": 3, "inventories": {
                "VCPU": {"total": 64, "reserved": 0, "min_unit": 1, "max_unit": 64, "step_size": 1,
                         "allocation_ratio": 4.0},
                "MEMORY_MB": {"total": 262144, "reserved": 4096, "min_unit": 1, "max_unit": 262144, "step_size": 1,
                              "allocation_ratio": 1.0},
                "DISK_GB": {"total": 2000, "reserved": 0, "min_unit": 1, "max_unit": 2000, "step_size": 1,
                            "allocation_ratio": 1.0}}})
        m.get(f"{PLACEMENT}/resource_providers/rp{i}/usages", json={
            "resource_provider_generation": 3, "usages": {"VCPU": 10 * i, "MEMORY_MB": 20480, "DISK_GB": 200}})
    rows = {r.resource: r for r in provider.capacity()}
    assert (rows["vcpus"].total, rows["vcpus"].allocation_ratio, rows["vcpus"].usable, rows["vcpus"].used) == (
        128, 4.0, 512, 30)
    assert (rows["ram_mb"].reserved, rows["ram_mb"].usable) == (8192, 2 * (262144 - 4096))


def test_addresses_come_from_novas_addresses_fixed_and_floating_v4_and_v6(
        cloud: tuple[OpenStackProvider, requests_mock.Mocker]) -> None:
    provider, m = cloud
    body = nova_server("7c1d", "ACTIVE")
    # Nova's GET /servers/{id} shape: network name → ports' addresses, a floating IP listed with its fixed one.
    body["addresses"] = {
        "gov-public": [
            {"version": 4, "addr": "10.192.3.17", "OS-EXT-IPS:type": "fixed",
             "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:5d:2a:01"},
            {"version": 6, "addr": "2001:DB8:0:0::17", "OS-EXT-IPS:type": "fixed",
             "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:5d:2a:01"},
            {"version": 4, "addr": "59.110.8.21", "OS-EXT-IPS:type": "floating",
             "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:5d:2a:01"},
        ],
        "gov-storage": [
            {"version": 4, "addr": "10.210.0.5", "OS-EXT-IPS:type": "fixed",
             "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:5d:2a:02"},
            # The same address twice (a second port on the same subnet seen through two networks): kept once.
            {"version": 4, "addr": "10.192.3.17", "OS-EXT-IPS:type": "fixed",
             "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:5d:2a:03"},
        ],
    }
    m.get(f"{NOVA}/servers/7c1d", json={"server": body})
    info = provider.get_server("7c1d")
    assert info.addresses == ("10.192.3.17", "2001:db8::17", "59.110.8.21", "10.210.0.5")
    assert info.floating == ("59.110.8.21",)

    m.get(re.compile(rf"^{NOVA}/servers/detail"), json={"servers": [nova_server("9f0e", "ACTIVE"), body]})
    listed = {s.provider_id: s for s in provider.list_servers()}
    assert listed["9f0e"].addresses == ()  # a server on no network ("networks": "none")
    assert listed["7c1d"].addresses == info.addresses
