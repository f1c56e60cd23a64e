"""The one surface the compute service uses to talk to a provider cloud.

Every adapter (OpenStack, Kubernetes, the simulator) implements :class:`CloudProvider`
and translates its SDK's errors into ``cloudctl.core.errors`` inside the adapter:
SDK types and exceptions never leave it. Units of memory and disk are the
providers' own (MiB of RAM as Nova counts it, GiB of disk); server states are
Nova's words, which cloudctl uses everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

__all__ = [
    "SERVER_STATES",
    "VOLUME_STATES",
    "CloudProvider",
    "Flavor",
    "QuotaLimits",
    "QuotaUsage",
    "ResourceCapacity",
    "ServerInfo",
    "ServerSpec",
    "SnapshotInfo",
    "VolumeInfo",
    "VolumeProvider",
    "VolumeTypeQuota",
]

# Nova's server states, the vocabulary of the whole console.
SERVER_STATES = ("BUILD", "ACTIVE", "SHUTOFF", "SUSPENDED", "PAUSED", "SHELVED", "SHELVED_OFFLOADED",
                 "VERIFY_RESIZE", "RESIZE", "ERROR", "DELETED")

ServerAction = Literal["stop", "start", "shelve", "shelve_offload", "unshelve", "confirm_resize"]


@dataclass(frozen=True, slots=True)
class Flavor:
    name: str
    vcpus: int
    ram_mb: int
    disk_gb: int
    provider_id: str = ""


@dataclass(frozen=True, slots=True)
class QuotaLimits:
    """Limits of one unit's project (OpenStack) or namespace (Kubernetes); None means unlimited/unset.

    For Kubernetes, vcpus and ram_mb are the namespace's requests.cpu and requests.memory,
    and instances is pods.
    """

    vcpus: int | None = None
    ram_mb: int | None = None
    disk_gb: int | None = None
    instances: int | None = None


@dataclass(frozen=True, slots=True)
class QuotaUsage:
    vcpus: int = 0
    ram_mb: int = 0
    disk_gb: int = 0
    instances: int = 0


@dataclass(frozen=True, slots=True)
class ServerSpec:
    name: str
    flavor: str
    # The request item's idempotency tag: a retried create finds the server it made before.
    tag: str
    image: str | None = None
    network: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ServerInfo:
    provider_id: str
    name: str
    project: str
    status: str
    flavor: str
    vcpus: int
    ram_mb: int
    disk_gb: int
    tag: str | None = None
    host: str | None = None
    created_at: datetime | None = None
    fault: str | None = None
    # Every address the cloud reports, fixed and floating, IPv4 and IPv6, each once, in the cloud's order;
    # ``floating`` names those of them that are floating IPs (the rest are fixed).
    addresses: tuple[str, ...] = ()
    floating: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ResourceCapacity:
    """One resource of a cloud, as Placement reports it: usable = (total − reserved) × allocation_ratio."""

    resource: Literal["vcpus", "ram_mb", "disk_gb"]
    total: int
    reserved: int
    allocation_ratio: float
    used: int

    @property
    def usable(self) -> int:
        return int((self.total - self.reserved) * self.allocation_ratio)

    @property
    def headroom(self) -> int:
        return self.usable - self.used


# Cinder's volume states that matter here: in-use is attached; available is not.
VOLUME_STATES = ("creating", "available", "reserved", "attaching", "detaching", "in-use", "maintenance", "deleting",
                 "error", "error_deleting", "error_extending", "extending", "deleted")


@dataclass(frozen=True, slots=True)
class VolumeInfo:
    """A block volume as its cloud reports it (Cinder's volume; a Kubernetes PersistentVolumeClaim)."""

    provider_id: str
    name: str
    project: str
    volume_type: str
    size_gib: int
    status: str
    attached_to: str | None  # the server's provider id
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    provider_id: str
    volume_id: str
    name: str
    size_gib: int
    status: str
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class VolumeTypeQuota:
    """A project's block storage quota for one volume type, in GiB (Cinder's ``gigabytes_<type>``); None: no limit."""

    volume_type: str
    limit_gib: int | None
    used_gib: int


@runtime_checkable
class VolumeInventory(Protocol):
    """The volumes and snapshots a cloud lists: what a sync reads. A cloud whose volumes cloudctl only lists (the
    claims of a Kubernetes cloud) implements this and not :class:`VolumeProvider`."""

    def list_volumes(self, project: str | None = None) -> list[VolumeInfo]: ...

    def list_snapshots(self) -> list[SnapshotInfo]: ...


@runtime_checkable
class VolumeProvider(Protocol):
    """Block storage of a cloud, for the clouds that have it: a provider adapter implements this beside
    :class:`CloudProvider`."""

    def list_volume_types(self) -> list[str]: ...

    def list_volumes(self, project: str | None = None) -> list[VolumeInfo]: ...

    def create_volume(self, project: str, name: str, volume_type: str, size_gib: int) -> VolumeInfo: ...

    def attach_volume(self, volume_id: str, server_id: str) -> VolumeInfo: ...

    def detach_volume(self, volume_id: str) -> VolumeInfo: ...

    def snapshot_volume(self, volume_id: str, name: str) -> SnapshotInfo: ...

    def list_snapshots(self) -> list[SnapshotInfo]: ...

    def delete_snapshot(self, snapshot_id: str) -> None: ...

    def get_volume_quotas(self, project: str) -> list[VolumeTypeQuota]:
        """The project's GiB limit and use for every volume type the cloud offers."""
        ...

    def set_volume_quota(self, project: str, volume_type: str, limit_gib: int | None) -> None:
        """Push one type's GiB limit; a limit below what the project uses is refused (Conflict), never forced."""
        ...

    def delete_volume(self, volume_id: str) -> None: ...


@runtime_checkable
class CloudProvider(Protocol):
    """What the compute service needs of a cloud. ``project`` is the provider's id for a unit's tenant."""

    kind: str

    def ensure_project(self, unit_code: str, unit_name: str) -> str:
        """The unit's project (OpenStack) or namespace (Kubernetes), created if missing; returns its id."""
        ...

    def list_flavors(self) -> list[Flavor]: ...

    def get_quota(self, project: str) -> tuple[QuotaLimits, QuotaUsage]: ...

    def set_quota(self, project: str, limits: QuotaLimits) -> None:
        """Push limits; a limit below current usage is refused (Conflict), never forced."""
        ...

    def create_server(self, project: str, spec: ServerSpec) -> ServerInfo:
        """Create, or return the server already carrying ``spec.tag`` (idempotent)."""
        ...

    def find_server_by_tag(self, project: str, tag: str) -> ServerInfo | None: ...

    def get_server(self, provider_id: str) -> ServerInfo:
        """Raises NotFound for a server that does not exist (any more)."""
        ...

    def list_servers(self, project: str | None = None) -> list[ServerInfo]: ...

    def server_action(self, provider_id: str, action: ServerAction) -> ServerInfo: ...

    def resize_server(self, provider_id: str, flavor: str) -> ServerInfo: ...

    def delete_server(self, provider_id: str) -> None: ...

    def capacity(self) -> list[ResourceCapacity]: ...
