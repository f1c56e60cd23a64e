"""Nova's ``addresses`` read into a server's fixed and floating addresses (pure: the real-OpenStack contract
tests in tests/integration/openstack cover the provider against Keystone, Nova and Placement)."""

from __future__ import annotations

from cloudctl.compute.providers.openstack import addresses_of


def test_addresses_come_from_novas_addresses_fixed_and_floating_v4_and_v6() -> None:
    # Nova's GET /servers/{id} shape: network name → ports' addresses, a floating IP listed with its fixed one.
    addresses = {
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
    assert addresses_of(addresses) == (("10.192.3.17", "2001:db8::17", "59.110.8.21", "10.210.0.5"),
                                       ("59.110.8.21",))


def test_a_server_on_no_network_or_with_unusable_entries_has_no_addresses() -> None:
    assert addresses_of(None) == ((), ())
    assert addresses_of({}) == ((), ())  # "networks": "none"
    assert addresses_of({"gov-public": [{"version": 4, "addr": ""}, None, {"addr": "not-an-ip"}],
                         "gov-mgmt": None}) == ((), ())


# Cinder v3's GET /v3/{project_id}/volumes/detail, one volume as the API reference shows it (abridged).
CINDER_VOLUME = {
    "id": "6edbc2f4-1507-44f8-ac0d-eed1d2608d38",
    "name": "990100-d01-video-data",
    "status": "in-use",
    "size": 500,
    "volume_type": "ssd",
    "availability_zone": "nova",
    "bootable": "false",
    "created_at": "2026-03-01T08:10:42.000000",
    "os-vol-tenant-attr:tenant_id": "bab7d5c60cd041a0a36f7c4b6e1dd978",
    "attachments": [{
        "id": "6edbc2f4-1507-44f8-ac0d-eed1d2608d38", "attachment_id": "3dafcac4-1cb9-4b60-a227-d729baa10cf6",
        "volume_id": "6edbc2f4-1507-44f8-ac0d-eed1d2608d38", "server_id": "f4fda93b-06e0-4743-8117-bc8bcecd651b",
        "host_name": None, "device": "/dev/vdb", "attached_at": "2026-03-01T08:11:05.000000"}],
}


def test_a_cinder_volume_is_read_from_the_apis_own_shape() -> None:
    from datetime import UTC, datetime

    from openstack.block_storage.v3.volume import Volume

    from cloudctl.compute.providers.openstack import volume_of

    for given in (CINDER_VOLUME, Volume(**CINDER_VOLUME)):  # the JSON, and openstacksdk's resource built from it
        info = volume_of(given)
        assert (info.provider_id, info.name, info.volume_type, info.size_gib, info.status) == (
            "6edbc2f4-1507-44f8-ac0d-eed1d2608d38", "990100-d01-video-data", "ssd", 500, "in-use")
        assert info.project == "bab7d5c60cd041a0a36f7c4b6e1dd978"
        assert info.attached_to == "f4fda93b-06e0-4743-8117-bc8bcecd651b"
        assert info.created_at == datetime(2026, 3, 1, 8, 10, 42, tzinfo=UTC)
    unattached = volume_of({**CINDER_VOLUME, "status": "available", "attachments": [], "created_at": None})
    assert (unattached.attached_to, unattached.created_at, unattached.status) == (None, None, "available")


# Cinder v3's GET /v3/{project_id}/snapshots/detail, one snapshot as the API reference shows it (abridged).
CINDER_SNAPSHOT = {
    "id": "2bb856e1-b3d8-4432-a858-09e4ce939389",
    "name": "upgrade-backup",
    "status": "available",
    "size": 500,
    "volume_id": "6edbc2f4-1507-44f8-ac0d-eed1d2608d38",
    "created_at": "2026-04-02T09:00:00.000000",
    "os-extended-snapshot-attributes:project_id": "bab7d5c60cd041a0a36f7c4b6e1dd978",
}


def test_a_cinder_snapshot_is_read_from_the_apis_own_shape() -> None:
    from datetime import UTC, datetime

    from openstack.block_storage.v3.snapshot import Snapshot

    from cloudctl.compute.providers.openstack import snapshot_of

    for given in (CINDER_SNAPSHOT, Snapshot(**CINDER_SNAPSHOT)):
        info = snapshot_of(given)
        assert (info.provider_id, info.volume_id, info.name, info.size_gib, info.status) == (
            "2bb856e1-b3d8-4432-a858-09e4ce939389", "6edbc2f4-1507-44f8-ac0d-eed1d2608d38", "upgrade-backup", 500,
            "available")
        assert info.created_at == datetime(2026, 4, 2, 9, 0, tzinfo=UTC)


def test_cinders_quota_set_is_read_per_volume_type() -> None:
    from cloudctl.compute.providers.base import VolumeTypeQuota
    from cloudctl.compute.providers.openstack import volume_quotas_of

    # GET /v3/{admin_project_id}/os-quota-sets/{project_id}?usage=True (abridged): -1 is no limit.
    body = {"quota_set": {
        "id": "bab7d5c60cd041a0a36f7c4b6e1dd978",
        "gigabytes": {"limit": 5000, "in_use": 700, "reserved": 0, "allocated": 0},
        "gigabytes_ssd": {"limit": 1000, "in_use": 500, "reserved": 0, "allocated": 0},
        "gigabytes_hdd": {"limit": -1, "in_use": 200, "reserved": 0, "allocated": 0},
        "volumes_ssd": {"limit": -1, "in_use": 1, "reserved": 0, "allocated": 0},
    }}
    assert volume_quotas_of(body, ["hdd", "ssd", "nvme"]) == [
        VolumeTypeQuota("hdd", None, 200), VolumeTypeQuota("ssd", 1000, 500), VolumeTypeQuota("nvme", None, 0)]
    # Without usage=True Cinder gives plain numbers.
    assert volume_quotas_of({"quota_set": {"gigabytes_ssd": 300}}, ["ssd"]) == [VolumeTypeQuota("ssd", 300, 0)]
