"""The OpenStack provider, through openstacksdk: the path most city and carrier clouds take.

A unit is a Keystone project (``unit-<code>``, created on first use). Quotas are Nova's
quota sets, set with ``compute.update_quota_set`` (``set_compute_quotas`` sends
``force`` and would push a limit under usage), with disk from the block-storage quota
where the cloud has Cinder. Servers are created in the unit's project (a token scoped
to it) and carry their idempotency tag as a Nova server tag (microversion ≥ 2.52).
Capacity comes from Placement: hypervisor statistics are gone from microversion 2.88.
SDK exceptions never leave this module: each call's errors become cloudctl's.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

import openstack
from keystoneauth1 import exceptions as ks_exc
from openstack import exceptions as os_exc

from cloudctl.compute.providers.base import (
    Flavor,
    QuotaLimits,
    QuotaUsage,
    ResourceCapacity,
    ServerAction,
    ServerInfo,
    ServerSpec,
    SnapshotInfo,
    VolumeInfo,
    VolumeTypeQuota,
)
from cloudctl.core.errors import CloudctlError, Conflict, InvalidInput, NotFound, ProviderError

__all__ = ["OpenStackProvider", "addresses_of", "project_name", "snapshot_of", "volume_of", "volume_quotas_of"]

P = ParamSpec("P")
R = TypeVar("R")

# Nova microversion that has server tags at create time and flavor details embedded in servers.
COMPUTE_MICROVERSION = "2.79"
PLACEMENT_RESOURCES = {"VCPU": "vcpus", "MEMORY_MB": "ram_mb", "DISK_GB": "disk_gb"}


def project_name(unit_code: str) -> str:
    return f"unit-{unit_code.lower()}"


def _translated(func: Callable[P, R]) -> Callable[P, R]:
    """Turn openstacksdk's exceptions into cloudctl's, with the cloud's own message."""

    @functools.wraps(func)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except CloudctlError:
            raise
        except os_exc.NotFoundException as exc:
            raise NotFound(_message(exc), field="resource") from None
        except os_exc.ConflictException as exc:
            raise Conflict(_message(exc), field="status") from None
        except os_exc.ForbiddenException as exc:
            # Nova answers 403 for "Quota exceeded for cores: Requested 4, but already used 14 of 16 cores".
            if "quota" in _message(exc).lower():
                raise Conflict(_message(exc), field="quota") from None
            raise ProviderError(f"the cloud refused the credentials: {_message(exc)}", field="cloud") from None
        except os_exc.BadRequestException as exc:
            message = _message(exc)
            # A quota limit under what is used is a 400 in Nova: to us it is a conflict with usage.
            if "quota" in message.lower() and ("used" in message.lower() or "usage" in message.lower()):
                raise Conflict(message, field="quota") from None
            raise InvalidInput(message, field="request") from None
        except os_exc.HttpException as exc:
            raise ProviderError(f"the cloud answered {exc.status_code}: {_message(exc)}", field="cloud") from None
        except os_exc.SDKException as exc:
            raise ProviderError(f"cannot reach the cloud: {exc}", field="cloud") from None
        # keystoneauth1 fails before openstacksdk sees an answer (a refused password, a Keystone that does not
        # answer): its exceptions are not SDKExceptions, and must not leave the adapter either.
        except ks_exc.Unauthorized as exc:
            raise ProviderError(f"the cloud refused the credentials: {exc}", field="cloud") from None
        except ks_exc.ClientException as exc:
            raise ProviderError(f"cannot reach the cloud: {exc}", field="cloud") from None

    return call


def _message(exc: os_exc.SDKException) -> str:
    details = getattr(exc, "details", None)
    return str(details or getattr(exc, "message", None) or exc)


def addresses_of(addresses: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """All of a server's addresses and its floating ones, from Nova's ``addresses``.

    Nova answers ``{network: [{"addr", "version", "OS-EXT-IPS:type": "fixed" | "floating", …}]}``; each
    address is taken once (the first time it appears), in Nova's order, in its canonical form (IPv6
    compressed, as scanners report it). An entry without a usable address is skipped, not fatal.
    """
    found: list[str] = []
    floating: list[str] = []
    for entries in (addresses or {}).values():
        for entry in entries or []:
            try:
                ip = str(ipaddress.ip_address(str((entry or {}).get("addr") or "").strip()))
            except ValueError:
                continue
            if ip in found:
                continue
            found.append(ip)
            if entry.get("OS-EXT-IPS:type") == "floating":
                floating.append(ip)
    return tuple(found), tuple(floating)


def _when(value: Any) -> datetime | None:
    """Cinder's times are ISO 8601 without a zone, in UTC."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def volume_quotas_of(quota_set: dict[str, Any], volume_types: list[str]) -> list[VolumeTypeQuota]:
    """Cinder's ``GET /v3/{admin_project}/os-quota-sets/{project}?usage=True`` body read per volume type: each
    type's ``gigabytes_<type>`` with its ``limit`` (-1: no limit) and ``in_use``."""
    body = quota_set.get("quota_set", quota_set)
    quotas = []
    for volume_type in volume_types:
        entry = body.get(f"gigabytes_{volume_type}")
        if isinstance(entry, dict):
            limit, used = entry.get("limit"), entry.get("in_use", 0)
        else:
            limit, used = entry, 0
        limit = None if limit is None or int(limit) < 0 else int(limit)
        quotas.append(VolumeTypeQuota(volume_type, limit, int(used or 0)))
    return quotas


def snapshot_of(snapshot: Any) -> SnapshotInfo:
    """A Cinder v3 snapshot (openstacksdk's resource, or its JSON as a dict): its volume, size and age."""
    get = snapshot.get if isinstance(snapshot, dict) else lambda key, default=None: getattr(snapshot, key, default)
    return SnapshotInfo(provider_id=str(get("id")), volume_id=str(get("volume_id") or ""),
                        name=str(get("name") or ""), size_gib=int(get("size") or 0),
                        status=str(get("status") or ""), created_at=_when(get("created_at")))


def volume_of(volume: Any) -> VolumeInfo:
    """A Cinder v3 volume (openstacksdk's resource, or its JSON as a dict) as cloudctl reads it: the owning
    project (``os-vol-tenant-attr:tenant_id``), its type and size, and the server of its first attachment."""
    get = volume.get if isinstance(volume, dict) else lambda key, default=None: getattr(volume, key, default)
    attachments = get("attachments") or []
    server = next((a.get("server_id") for a in attachments if isinstance(a, dict) and a.get("server_id")), None)
    project = get("project_id") if not isinstance(volume, dict) else (
        volume.get("os-vol-tenant-attr:tenant_id") or volume.get("project_id"))
    return VolumeInfo(provider_id=str(get("id")), name=str(get("name") or ""), project=str(project or ""),
                      volume_type=str(get("volume_type") or ""), size_gib=int(get("size") or 0),
                      status=str(get("status") or ""), attached_to=server, created_at=_when(get("created_at")))


def _limit(value: Any) -> int | None:
    """Nova's -1 (or nothing) means unlimited."""
    if value is None:
        return None
    number = int(value)
    return None if number < 0 else number


class OpenStackProvider:
    kind = "openstack"

    def __init__(self, conn: openstack.connection.Connection, *, domain_id: str = "default",
                 member_role: str = "member") -> None:
        self.conn = conn
        self.domain_id = domain_id
        # The role cloudctl's own user takes in each unit's project (Keystone's bootstrap creates "member").
        self.member_role = member_role

    @classmethod
    def from_cloud(cls, cloud: str | None) -> OpenStackProvider:
        """A provider for a cloud named in clouds.yaml."""
        if not cloud:
            raise InvalidInput("an OpenStack cloud needs its clouds.yaml name as connection", field="connection")
        try:
            conn = openstack.connect(cloud=cloud, compute_api_version=COMPUTE_MICROVERSION)
        except os_exc.SDKException as exc:  # unknown cloud name, unreadable clouds.yaml
            raise ProviderError(f"cannot configure cloud {cloud!r}: {exc}", field="connection") from None
        return cls(conn)

    # -------------------------------------------------------------- projects and flavors

    @_translated
    def ensure_project(self, unit_code: str, unit_name: str) -> str:
        name = project_name(unit_code)
        identity: Any = self.conn.identity  # Keystone v3 (projects do not exist in v2's terms)
        try:
            project = identity.find_project(name, domain_id=self.domain_id, ignore_missing=False)
        except os_exc.NotFoundException:
            project = identity.create_project(name=name, domain_id=self.domain_id,
                                                        description=f"{unit_name} ({unit_code}), cloudctl")
        # cloudctl builds the unit's servers under a token scoped to its project, so its own user needs a role
        # there; Keystone takes the same assignment twice without complaint, so a found project gets it too.
        role = identity.find_role(self.member_role, ignore_missing=False)
        identity.assign_project_role_to_user(project, self.conn.current_user_id, role)
        return str(project.id)

    @_translated
    def list_flavors(self) -> list[Flavor]:
        return [Flavor(f.name, int(f.vcpus), int(f.ram), int(f.disk or 0), str(f.id))
                for f in self.conn.compute.flavors(details=True)]

    # -------------------------------------------------------------- quotas

    @_translated
    def get_quota(self, project: str) -> tuple[QuotaLimits, QuotaUsage]:
        compute = self.conn.compute.get_quota_set(project, usage=True)
        usage = compute.usage or {}
        disk_limit, disk_used = self._volume_quota(project)
        return (
            QuotaLimits(_limit(compute.cores), _limit(compute.ram), disk_limit, _limit(compute.instances)),
            QuotaUsage(int(usage.get("cores", 0)), int(usage.get("ram", 0)), disk_used,
                       int(usage.get("instances", 0))),
        )

    def _volume_quota(self, project: str) -> tuple[int | None, int]:
        if not self._has_service("block-storage"):
            return None, 0
        volume = self.conn.block_storage.get_quota_set(project, usage=True)
        return _limit(volume.gigabytes), int((volume.usage or {}).get("gigabytes", 0))

    def _has_service(self, service_type: str) -> bool:
        try:
            return bool(self.conn.endpoint_for(service_type))
        except os_exc.SDKException:
            return False

    @_translated
    def set_quota(self, project: str, limits: QuotaLimits) -> None:
        def nova(value: int | None) -> int:
            return -1 if value is None else value

        # update_quota_set, not set_compute_quotas: the latter forces past Nova's check of usage.
        self.conn.compute.update_quota_set(project, cores=nova(limits.vcpus), ram=nova(limits.ram_mb),
                                           instances=nova(limits.instances))
        if limits.disk_gb is not None and self._has_service("block-storage"):
            self.conn.block_storage.update_quota_set(project, gigabytes=limits.disk_gb)

    # -------------------------------------------------------------- servers

    def _info(self, server: Any) -> ServerInfo:
        flavor = server.flavor or {}
        tags = list(server.tags or [])
        created = server.created_at
        addresses, floating = addresses_of(getattr(server, "addresses", None))
        return ServerInfo(
            provider_id=str(server.id), name=str(server.name), project=str(server.project_id),
            status=str(server.status), flavor=str(flavor.get("original_name") or flavor.get("name") or ""),
            vcpus=int(flavor.get("vcpus") or 0), ram_mb=int(flavor.get("ram") or 0),
            disk_gb=int(flavor.get("disk") or 0),
            tag=next((t for t in tags if t.startswith("cloudctl:")), None),
            host=getattr(server, "compute_host", None),
            created_at=datetime.fromisoformat(created.replace("Z", "+00:00")) if created else None,
            fault=(server.fault or {}).get("message") if getattr(server, "fault", None) else None,
            addresses=addresses, floating=floating,
        )

    @_translated
    def find_server_by_tag(self, project: str, tag: str) -> ServerInfo | None:
        found = list(self.conn.compute.servers(details=True, all_projects=True, project_id=project, tags=tag))
        return self._info(found[0]) if found else None

    @_translated
    def create_server(self, project: str, spec: ServerSpec) -> ServerInfo:
        existing = self.find_server_by_tag(project, spec.tag)
        if existing is not None:
            return existing
        flavor = self._flavor(spec.flavor)
        attrs: dict[str, Any] = {"name": spec.name, "flavor_id": flavor.id, "tags": [spec.tag],
                                 "metadata": dict(spec.metadata),
                                 "networks": [{"uuid": spec.network}] if spec.network else "none"}
        if spec.image:
            attrs["image_id"] = spec.image
        # The server must belong to the unit's project: create it with a token scoped there.
        scoped = self.conn.connect_as_project({"id": project, "domain_id": self.domain_id})
        created = scoped.compute.create_server(**attrs)
        # Nova's create answer holds little more than the id: read the server back.
        return self.get_server(str(created.id))

    def _flavor(self, name: str) -> Any:
        try:
            return self.conn.compute.find_flavor(name, ignore_missing=False)
        except os_exc.NotFoundException:
            raise InvalidInput(f"flavor {name!r} does not exist on this cloud", field="flavor") from None

    @_translated
    def get_server(self, provider_id: str) -> ServerInfo:
        return self._info(self.conn.compute.get_server(provider_id))

    @_translated
    def list_servers(self, project: str | None = None) -> list[ServerInfo]:
        query: dict[str, Any] = {"details": True, "all_projects": True}
        if project is not None:
            query["project_id"] = project
        return [self._info(s) for s in self.conn.compute.servers(**query)]

    @_translated
    def server_action(self, provider_id: str, action: ServerAction) -> ServerInfo:
        compute = self.conn.compute
        calls: dict[str, Callable[[str], Any]] = {
            "stop": compute.stop_server, "start": compute.start_server, "shelve": compute.shelve_server,
            "shelve_offload": compute.shelve_offload_server, "unshelve": compute.unshelve_server,
            "confirm_resize": compute.confirm_server_resize,
        }
        if action not in calls:
            raise InvalidInput(f"unknown server action {action!r}", field="action")
        calls[action](provider_id)
        return self.get_server(provider_id)

    @_translated
    def resize_server(self, provider_id: str, flavor: str) -> ServerInfo:
        self.conn.compute.resize_server(provider_id, self._flavor(flavor).id)
        return self.get_server(provider_id)

    @_translated
    def delete_server(self, provider_id: str) -> None:
        self.conn.compute.delete_server(provider_id, ignore_missing=False)

    # -------------------------------------------------------------- capacity

    # -------------------------------------------------------------- block volumes (Cinder v3)

    @_translated
    def list_volume_types(self) -> list[str]:
        return sorted(str(t.name) for t in self.conn.block_storage.types())

    @_translated
    def list_volumes(self, project: str | None = None) -> list[VolumeInfo]:
        query: dict[str, Any] = {"details": True, "all_projects": True}
        if project is not None:
            query["project_id"] = project
        return [volume_of(v) for v in self.conn.block_storage.volumes(**query)]

    @_translated
    def create_volume(self, project: str, name: str, volume_type: str, size_gib: int) -> VolumeInfo:
        # Created in the unit's project, as its servers are: a token scoped there.
        scoped = self.conn.connect_as_project({"id": project, "domain_id": self.domain_id})
        return volume_of(scoped.block_storage.create_volume(name=name, size=size_gib, volume_type=volume_type))

    @_translated
    def attach_volume(self, volume_id: str, server_id: str) -> VolumeInfo:
        self.conn.compute.create_volume_attachment(server_id, volume=volume_id)
        return volume_of(self.conn.block_storage.get_volume(volume_id))

    @_translated
    def detach_volume(self, volume_id: str) -> VolumeInfo:
        volume = volume_of(self.conn.block_storage.get_volume(volume_id))
        if volume.attached_to is None:
            raise Conflict(f"volume {volume.name or volume_id} is not attached", field="status")
        self.conn.compute.delete_volume_attachment(volume.attached_to, volume_id, ignore_missing=False)
        return volume_of(self.conn.block_storage.get_volume(volume_id))

    @_translated
    def snapshot_volume(self, volume_id: str, name: str) -> SnapshotInfo:
        snapshot = self.conn.block_storage.create_snapshot(volume_id=volume_id, name=name, force=True)
        return SnapshotInfo(provider_id=str(snapshot.id), volume_id=volume_id, name=name,
                            size_gib=int(snapshot.size or 0), status=str(snapshot.status or ""),
                            created_at=_when(snapshot.created_at))

    @_translated
    def get_volume_quotas(self, project: str) -> list[VolumeTypeQuota]:
        response = self.conn.block_storage.get(f"/os-quota-sets/{project}?usage=True")
        response.raise_for_status()
        return volume_quotas_of(response.json(), self.list_volume_types())

    @_translated
    def set_volume_quota(self, project: str, volume_type: str, limit_gib: int | None) -> None:
        if volume_type not in self.list_volume_types():
            raise InvalidInput(f"volume type {volume_type!r} is not offered here", field="volume_type")
        # Cinder refuses (400) a limit below what the project uses, as Nova does for cores.
        used = {q.volume_type: q.used_gib for q in self.get_volume_quotas(project)}.get(volume_type, 0)
        if limit_gib is not None and limit_gib < used:
            raise Conflict(f"quota limit {limit_gib} GiB is below what the project already uses ({used} GiB)",
                           field="limit_gib")
        response = self.conn.block_storage.put(
            f"/os-quota-sets/{project}",
            json={"quota_set": {f"gigabytes_{volume_type}": -1 if limit_gib is None else limit_gib}})
        response.raise_for_status()

    @_translated
    def list_snapshots(self) -> list[SnapshotInfo]:
        return [snapshot_of(n) for n in self.conn.block_storage.snapshots(details=True, all_projects=True)]

    @_translated
    def delete_snapshot(self, snapshot_id: str) -> None:
        self.conn.block_storage.delete_snapshot(snapshot_id, ignore_missing=False)

    @_translated
    def delete_volume(self, volume_id: str) -> None:
        self.conn.block_storage.delete_volume(volume_id, ignore_missing=False)

    @_translated
    def capacity(self) -> list[ResourceCapacity]:
        totals: dict[str, list[float]] = {name: [0, 0, 0.0, 0] for name in PLACEMENT_RESOURCES.values()}
        for provider in self.conn.placement.resource_providers():
            usages = self.conn.placement.get(f"/resource_providers/{provider.id}/usages").json().get("usages", {})
            for inventory in self.conn.placement.resource_provider_inventories(provider):
                name = PLACEMENT_RESOURCES.get(inventory.resource_class)
                if name is None:
                    continue
                row = totals[name]
                inv_total, inv_reserved = int(inventory.total), int(inventory.reserved or 0)
                row[0] += inv_total
                row[1] += inv_reserved
                # The cloud-wide ratio is the one that gives the same usable total as the providers' own.
                row[2] += (inv_total - inv_reserved) * float(inventory.allocation_ratio or 1.0)
                row[3] += int(usages.get(inventory.resource_class, 0))
        result = []
        for name, (total, reserved, usable, used) in totals.items():
            base = total - reserved
            ratio = round(usable / base, 4) if base else 1.0
            result.append(ResourceCapacity(name, int(total), int(reserved), ratio, int(used)))  # type: ignore[arg-type]
        return result
