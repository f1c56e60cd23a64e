"""Tables of the government-cloud domain: clouds, their flavors, and each unit's project and quota."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Date, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cloudctl.core.models import Base, LabelledEnum, TimestampMixin, enum_column
from cloudctl.org.models import BusinessSystem, Unit

__all__ = [
    "AddressKind",
    "CapacityMonth",
    "CapacitySnapshot",
    "Cloud",
    "CloudKind",
    "Flavor",
    "ItemStatus",
    "Quota",
    "RequestItem",
    "RequestStatus",
    "ResourceRequest",
    "Server",
    "ServerAddress",
    "UnitProject",
    "Volume",
    "VolumeQuota",
    "VolumeSnapshot",
]


class CloudKind(LabelledEnum):
    OPENSTACK = "openstack", "OpenStack云", "cyan"
    KUBERNETES = "kubernetes", "容器云", "blue"
    SIMULATOR = "simulator", "模拟云", "magenta"


class Cloud(TimestampMixin, Base):
    """One provider cloud of the city's "one cloud" (一朵云): the city's own centre or a carrier's."""

    __tablename__ = "clouds"
    __table_args__ = (
        CheckConstraint("cpu_allocation_ratio > 0 AND ram_allocation_ratio > 0", name="positive_ratios"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[CloudKind] = mapped_column(enum_column(CloudKind, 16))
    # An OpenStack cloud name in clouds.yaml, or a kubeconfig context; nothing for the simulator.
    connection: Mapped[str | None] = mapped_column(String(255))
    region: Mapped[str | None] = mapped_column(String(64))
    # Over-commit the bureau allows on this cloud; capacity views multiply by these as Placement does.
    cpu_allocation_ratio: Mapped[float] = mapped_column(default=4.0)
    ram_allocation_ratio: Mapped[float] = mapped_column(default=1.0)
    default_image: Mapped[str | None] = mapped_column(String(128))
    default_network: Mapped[str | None] = mapped_column(String(128))
    enabled: Mapped[bool] = mapped_column(default=True)


class Flavor(Base):
    """The flavor catalogue of a cloud, as last synced from the provider."""

    __tablename__ = "flavors"
    __table_args__ = (UniqueConstraint("cloud_id", "name", name="uq_flavors_cloud_id_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    cloud_id: Mapped[int] = mapped_column(ForeignKey("clouds.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    vcpus: Mapped[int]
    ram_mb: Mapped[int]
    disk_gb: Mapped[int]
    provider_id: Mapped[str] = mapped_column(String(64), default="")

    cloud: Mapped[Cloud] = relationship(lazy="joined", innerjoin=True)


class UnitProject(Base):
    """A unit's tenant on a cloud: its OpenStack project or Kubernetes namespace."""

    __tablename__ = "unit_projects"
    __table_args__ = (UniqueConstraint("unit_id", "cloud_id", name="uq_unit_projects_unit_id_cloud_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    cloud_id: Mapped[int] = mapped_column(ForeignKey("clouds.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[str] = mapped_column(String(128))


class _OwnedOnCloud:
    """Names of the owning unit and the cloud, as the schemas show them, for records that have both."""

    unit: Unit
    cloud: Cloud

    @property
    def unit_code(self) -> str:
        return self.unit.code

    @property
    def cloud_name(self) -> str:
        return self.cloud.name


class CapacitySnapshot(Base):
    """A cloud's capacity as its provider last reported it, per resource: what the exporter reads at scrape
    time, so a scrape never waits on a provider (Placement can take seconds to answer for a large cloud)."""

    __tablename__ = "cloud_capacity_snapshots"
    __table_args__ = (UniqueConstraint("cloud_id", "resource", name="uq_cloud_capacity_snapshots_cloud_resource"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    cloud_id: Mapped[int] = mapped_column(ForeignKey("clouds.id", ondelete="CASCADE"), index=True)
    resource: Mapped[str] = mapped_column(String(16))
    total: Mapped[int]
    reserved: Mapped[int]
    allocation_ratio: Mapped[float]
    used: Mapped[int]
    taken_at: Mapped[datetime]


class CapacityMonth(Base):
    """A cloud's capacity in one month (Beijing), per resource, as its last snapshot of that month found it: the
    monthly history purchase planning trends and forecasts. ``allocated`` is what the cloud's servers hold (its
    Placement allocations), ``promised`` what the units' quotas promise."""

    __tablename__ = "cloud_capacity_months"
    __table_args__ = (UniqueConstraint("cloud_id", "resource", "month",
                                       name="uq_cloud_capacity_months_cloud_resource"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    cloud_id: Mapped[int] = mapped_column(ForeignKey("clouds.id", ondelete="CASCADE"), index=True)
    resource: Mapped[str] = mapped_column(String(16))
    month: Mapped[str] = mapped_column(String(7))
    total: Mapped[int]
    reserved: Mapped[int]
    allocation_ratio: Mapped[float]
    allocated: Mapped[int]
    promised: Mapped[int]
    taken_at: Mapped[datetime]

    @property
    def usable(self) -> int:
        return int((self.total - self.reserved) * self.allocation_ratio)


class Quota(_OwnedOnCloud, TimestampMixin, Base):
    """A unit's quota (配额) on one cloud: limits, usage synced from the provider, and reservations.

    Reservations are held by approved requests not yet provisioned, so two approvals can
    never both take the last vCPUs: a reservation is one conditional UPDATE that only
    succeeds while ``used + reserved + asked <= limit``.
    """

    __tablename__ = "quotas"
    __table_args__ = (
        UniqueConstraint("unit_id", "cloud_id", name="uq_quotas_unit_id_cloud_id"),
        CheckConstraint("reserved_vcpus >= 0 AND reserved_ram_mb >= 0 AND reserved_disk_gb >= 0 "
                        "AND reserved_instances >= 0", name="reservations_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    cloud_id: Mapped[int] = mapped_column(ForeignKey("clouds.id", ondelete="CASCADE"), index=True)
    limit_vcpus: Mapped[int | None]
    limit_ram_mb: Mapped[int | None]
    limit_disk_gb: Mapped[int | None]
    limit_instances: Mapped[int | None]
    used_vcpus: Mapped[int] = mapped_column(default=0)
    used_ram_mb: Mapped[int] = mapped_column(default=0)
    used_disk_gb: Mapped[int] = mapped_column(default=0)
    used_instances: Mapped[int] = mapped_column(default=0)
    reserved_vcpus: Mapped[int] = mapped_column(default=0)
    reserved_ram_mb: Mapped[int] = mapped_column(default=0)
    reserved_disk_gb: Mapped[int] = mapped_column(default=0)
    reserved_instances: Mapped[int] = mapped_column(default=0)
    synced_at: Mapped[datetime | None]

    unit: Mapped[Unit] = relationship(lazy="joined", innerjoin=True)
    cloud: Mapped[Cloud] = relationship(lazy="joined", innerjoin=True)


class RequestStatus(LabelledEnum):
    # Waiting for the department's own leader (部门负责人审批), before the bureau's ops.
    AWAITING_LEADER = "awaiting_leader", "待部门负责人审批", "magenta"
    SUBMITTED = "submitted", "已提交", "white"
    APPROVED = "approved", "已批准", "cyan"
    REJECTED = "rejected", "已驳回", "red"
    PROVISIONING = "provisioning", "开通中", "blue"
    FULFILLED = "fulfilled", "已开通", "green"
    PARTIALLY_FAILED = "partially_failed", "部分失败", "yellow"
    FAILED = "failed", "失败", "red"
    CANCELLED = "cancelled", "已取消", "bright_black"


class ItemStatus(LabelledEnum):
    PENDING = "pending", "待审批", "white"
    RESERVED = "reserved", "已预留", "cyan"
    DONE = "done", "已开通", "green"
    PARTIAL = "partial", "部分开通", "yellow"
    FAILED = "failed", "失败", "red"
    RELEASED = "released", "已释放", "bright_black"


class ResourceRequest(_OwnedOnCloud, TimestampMixin, Base):
    """A resource request (资源申请) of a unit for one of its business systems."""

    __tablename__ = "resource_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    business_system_id: Mapped[int] = mapped_column(ForeignKey("business_systems.id", ondelete="RESTRICT"),
                                                    index=True)
    cloud_id: Mapped[int] = mapped_column(ForeignKey("clouds.id", ondelete="RESTRICT"), index=True)
    status: Mapped[RequestStatus] = mapped_column(enum_column(RequestStatus, 24), index=True)
    justification: Mapped[str] = mapped_column(String(2000))
    submitted_by: Mapped[str] = mapped_column(String(128))
    decided_by: Mapped[str | None] = mapped_column(String(128))
    decided_at: Mapped[datetime | None]
    decision_reason: Mapped[str | None] = mapped_column(String(500))
    auto_approved: Mapped[bool] = mapped_column(default=False)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    # 临时资源: the lease's last day (Beijing date); past it, its servers become reclaim recommendations.
    ends_on: Mapped[date | None] = mapped_column(Date)
    # Why the request takes the extra approval step: the budget (预算) it would exceed, when it was submitted.
    over_budget: Mapped[str | None] = mapped_column(String(500))
    # The approval chain as it went: [{"step": "leader"|"ops", "decision", "by", "at", "note"}].
    approvals: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)

    unit: Mapped[Unit] = relationship(lazy="joined", innerjoin=True)
    cloud: Mapped[Cloud] = relationship(lazy="joined", innerjoin=True)
    items: Mapped[list[RequestItem]] = relationship(back_populates="request", lazy="selectin",
                                                    order_by="RequestItem.id", cascade="all, delete-orphan")


class RequestItem(Base):
    """One line of a request: ``count`` VMs of one flavor. Sizes are copied from the flavor when submitted."""

    __tablename__ = "request_items"
    __table_args__ = (CheckConstraint("count BETWEEN 1 AND 100", name="count_range"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("resource_requests.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16), default="vm")
    flavor: Mapped[str] = mapped_column(String(64))
    count: Mapped[int]
    image: Mapped[str | None] = mapped_column(String(128))
    network: Mapped[str | None] = mapped_column(String(128))
    # Per VM for a "vm" item; the increase asked for by a "quota" item.
    vcpus: Mapped[int]
    ram_mb: Mapped[int]
    disk_gb: Mapped[int]
    # A "quota" item's increase of the instance limit.
    instances: Mapped[int] = mapped_column(default=0, server_default="0")
    status: Mapped[ItemStatus] = mapped_column(enum_column(ItemStatus, 16), default=ItemStatus.PENDING)
    provisioned: Mapped[int] = mapped_column(default=0)
    # How many of the item's VMs have been dealt with (built or failed) and their reservation handed back.
    # Written in the same transaction as the hand-back, so a resumed job never hands back twice.
    settled: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(String(500))

    request: Mapped[ResourceRequest] = relationship(back_populates="items")


class AddressKind(LabelledEnum):
    FIXED = "fixed", "固定地址", "white"
    FLOATING = "floating", "浮动地址", "yellow"


class ServerAddress(Base):
    """An address of a server as its cloud last reported it (Nova's fixed and floating), searchable by IP.

    Replaced as a set whenever the server is recorded; a deleted server keeps none, since the cloud hands
    its addresses to the next VM.
    """

    __tablename__ = "server_addresses"
    __table_args__ = (UniqueConstraint("server_id", "ip", name="uq_server_addresses_server_id_ip"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    server_id: Mapped[int] = mapped_column(ForeignKey("servers.id", ondelete="CASCADE"), index=True)
    ip: Mapped[str] = mapped_column(String(45), index=True)
    kind: Mapped[AddressKind] = mapped_column(enum_column(AddressKind, 16))


class Server(TimestampMixin, Base):
    """A VM as cloudctl knows it: created by a request or found by a sync. Status in Nova's words."""

    __tablename__ = "servers"
    __table_args__ = (UniqueConstraint("cloud_id", "provider_id", name="uq_servers_cloud_id_provider_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    cloud_id: Mapped[int] = mapped_column(ForeignKey("clouds.id", ondelete="RESTRICT"), index=True)
    provider_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128))
    # None for a server found on the cloud whose project maps to no unit: an orphan to look into.
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    business_system_id: Mapped[int | None] = mapped_column(ForeignKey("business_systems.id", ondelete="SET NULL"),
                                                           index=True)
    request_item_id: Mapped[int | None] = mapped_column(ForeignKey("request_items.id", ondelete="SET NULL"))
    tag: Mapped[str | None] = mapped_column(String(128))
    flavor: Mapped[str] = mapped_column(String(64))
    vcpus: Mapped[int]
    ram_mb: Mapped[int]
    disk_gb: Mapped[int]
    status: Mapped[str] = mapped_column(String(32), index=True)
    # When cloudctl first saw the server in its current status: how long a VM has been stopped is what
    # makes it a zombie (a stopped Nova server still holds its vCPU and RAM on the host).
    status_since: Mapped[datetime | None]
    host: Mapped[str | None] = mapped_column(String(64))
    fault: Mapped[str | None] = mapped_column(String(255))
    launched_at: Mapped[datetime | None]
    synced_at: Mapped[datetime | None]
    # Decommissioning (下线): stopped at once, deleted when the grace period ends unless withdrawn.
    decommission_at: Mapped[datetime | None] = mapped_column(index=True)
    decommission_by: Mapped[str | None] = mapped_column(String(128))
    # The lease of the request that built it (租期): the last day it is wanted.
    lease_ends_on: Mapped[date | None] = mapped_column(Date, index=True)

    unit: Mapped[Unit | None] = relationship(lazy="joined")
    cloud: Mapped[Cloud] = relationship(lazy="joined", innerjoin=True)
    business_system: Mapped[BusinessSystem | None] = relationship(lazy="joined")
    # In the order the cloud reports them (the row id keeps it: a set is replaced whole).
    addresses: Mapped[list[ServerAddress]] = relationship(lazy="selectin", order_by="ServerAddress.id",
                                                          cascade="all, delete-orphan", passive_deletes=True)

    @property
    def orphan(self) -> bool:
        return self.unit_id is None

    @property
    def unit_code(self) -> str | None:
        return self.unit.code if self.unit is not None else None

    @property
    def cloud_name(self) -> str:
        return self.cloud.name

    @property
    def business_system_name(self) -> str | None:
        return self.business_system.name if self.business_system is not None else None


class Volume(TimestampMixin, Base):
    """A block volume (云硬盘) as cloudctl knows it: found by a sync of its cloud (Cinder; the simulator's).

    ``detached_since`` is when cloudctl first saw it unattached: how long a volume has sat unattached is what makes
    it a reclaim candidate, as ``status_since`` does for a stopped server.
    """

    __tablename__ = "volumes"
    __table_args__ = (UniqueConstraint("cloud_id", "provider_id", name="uq_volumes_cloud_id_provider_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    cloud_id: Mapped[int] = mapped_column(ForeignKey("clouds.id", ondelete="RESTRICT"), index=True)
    provider_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128))
    # None for a volume whose project maps to no unit: an orphan to look into.
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    business_system_id: Mapped[int | None] = mapped_column(ForeignKey("business_systems.id", ondelete="SET NULL"))
    volume_type: Mapped[str] = mapped_column(String(64))
    size_gib: Mapped[int]
    status: Mapped[str] = mapped_column(String(32), index=True)
    server_id: Mapped[int | None] = mapped_column(ForeignKey("servers.id", ondelete="SET NULL"), index=True)
    detached_since: Mapped[datetime | None]
    provider_created_at: Mapped[datetime | None]
    synced_at: Mapped[datetime | None]

    unit: Mapped[Unit | None] = relationship(lazy="joined")
    cloud: Mapped[Cloud] = relationship(lazy="joined", innerjoin=True)
    server: Mapped[Server | None] = relationship(lazy="joined")
    business_system: Mapped[BusinessSystem | None] = relationship(lazy="joined")

    @property
    def unit_code(self) -> str | None:
        return self.unit.code if self.unit is not None else None

    @property
    def cloud_name(self) -> str:
        return self.cloud.name

    @property
    def server_name(self) -> str | None:
        return self.server.name if self.server is not None else None

    @property
    def business_system_name(self) -> str | None:
        return self.business_system.name if self.business_system is not None else None


class VolumeSnapshot(Base):
    """A snapshot of a block volume, as a sync of its cloud finds it (or as reclaim took it before a delete).

    It belongs to the unit of its volume; snapshots older than the retention become reclaim recommendations.
    """

    __tablename__ = "volume_snapshots"
    __table_args__ = (UniqueConstraint("cloud_id", "provider_id", name="uq_volume_snapshots_cloud_id_provider_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    cloud_id: Mapped[int] = mapped_column(ForeignKey("clouds.id", ondelete="RESTRICT"), index=True)
    provider_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128))
    volume_id: Mapped[int | None] = mapped_column(ForeignKey("volumes.id", ondelete="SET NULL"), index=True)
    volume_provider_id: Mapped[str] = mapped_column(String(64))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    size_gib: Mapped[int]
    status: Mapped[str] = mapped_column(String(32), index=True)
    provider_created_at: Mapped[datetime | None]
    synced_at: Mapped[datetime | None]

    cloud: Mapped[Cloud] = relationship(lazy="joined", innerjoin=True)
    unit: Mapped[Unit | None] = relationship(lazy="joined")

    @property
    def business_system_name(self) -> str | None:
        return None


class VolumeQuota(TimestampMixin, Base):
    """A unit's block storage quota on one cloud for one volume type, in GiB: pushed to the provider, synced back."""

    __tablename__ = "volume_quotas"
    __table_args__ = (UniqueConstraint("unit_id", "cloud_id", "volume_type",
                                       name="uq_volume_quotas_unit_id_cloud_id_volume_type"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    cloud_id: Mapped[int] = mapped_column(ForeignKey("clouds.id", ondelete="CASCADE"), index=True)
    volume_type: Mapped[str] = mapped_column(String(64))
    # None: no limit on this type.
    limit_gib: Mapped[int | None]
    used_gib: Mapped[int] = mapped_column(default=0)
    # Held by approved requests whose volumes are not made yet: what keeps two approvals from both passing the limit.
    reserved_gib: Mapped[int] = mapped_column(default=0, server_default="0")
    synced_at: Mapped[datetime | None]

    unit: Mapped[Unit] = relationship(lazy="joined", innerjoin=True)
    cloud: Mapped[Cloud] = relationship(lazy="joined", innerjoin=True)

    @property
    def unit_code(self) -> str:
        return self.unit.code

    @property
    def cloud_name(self) -> str:
        return self.cloud.name
