"""Input and output shapes of the government-cloud domain."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from cloudctl.compute.models import AddressKind, CloudKind, ItemStatus, RequestStatus
from cloudctl.core.bounds import Id
from cloudctl.core.models import beijing_today
from cloudctl.core.schemas import GiB, Schema
from cloudctl.core.text import NoControl, NoControlMultiline

__all__ = [
    "ApprovalStepPublic",
    "CapacityRow",
    "CloudCreate",
    "CloudPublic",
    "CloudUpdate",
    "FlavorPublic",
    "QuotaPublic",
    "QuotaSet",
    "RequestCreate",
    "RequestDecision",
    "RequestItemCreate",
    "RequestItemPublic",
    "RequestPublic",
    "ServerAddressPublic",
    "ServerPublic",
    "ServerResize",
    "VolumePublic",
]

# A display name, a flavor, a cloud: one line a person reads.
ShortName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64), NoControl]
CloudName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=64,
                                             pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
Ratio = Annotated[float, Field(gt=0, le=32, description="over-commit ratio, as Nova's allocation ratios")]
# RAM is stored in MiB in 32-bit columns: a million GB (1 EB of RAM per unit) is far past any real quota.
Limit = Annotated[int, Field(ge=0, le=1_000_000)]


class CloudCreate(Schema):
    name: CloudName
    display_name: ShortName
    kind: CloudKind
    connection: Annotated[str, StringConstraints(max_length=255), NoControl] | None = Field(
        default=None, description="clouds.yaml cloud name, or kubeconfig context")
    region: Annotated[str, StringConstraints(max_length=64), NoControl] | None = None
    cpu_allocation_ratio: Ratio = 4.0
    ram_allocation_ratio: Ratio = 1.0
    default_image: Annotated[str, StringConstraints(max_length=128), NoControl] | None = None
    default_network: Annotated[str, StringConstraints(max_length=128), NoControl] | None = None
    enabled: bool = True


class CloudUpdate(Schema):
    display_name: ShortName | None = None
    connection: Annotated[str, StringConstraints(max_length=255), NoControl] | None = None
    region: Annotated[str, StringConstraints(max_length=64), NoControl] | None = None
    cpu_allocation_ratio: Ratio | None = None
    ram_allocation_ratio: Ratio | None = None
    default_image: Annotated[str, StringConstraints(max_length=128), NoControl] | None = None
    default_network: Annotated[str, StringConstraints(max_length=128), NoControl] | None = None
    enabled: bool | None = None


class CloudPublic(Schema):
    id: int
    name: str
    display_name: str
    kind: CloudKind
    connection: str | None
    region: str | None
    cpu_allocation_ratio: float
    ram_allocation_ratio: float
    default_image: str | None
    default_network: str | None
    enabled: bool


class FlavorPublic(Schema):
    name: str
    vcpus: int
    ram_gib: GiB = Field(validation_alias="ram_mb")
    disk_gib: int = Field(validation_alias="disk_gb")


class QuotaSet(Schema):
    """New limits; an omitted limit stays as it is. RAM and disk in GiB, as everywhere in cloudctl."""

    vcpus: Limit | None = None
    ram_gib: Limit | None = None
    disk_gib: Limit | None = None
    instances: Limit | None = None


class QuotaPublic(Schema):
    """A unit's quota on a cloud; RAM and disk in GiB."""

    unit_code: str
    cloud: str = Field(validation_alias="cloud_name")
    limit_vcpus: int | None
    limit_ram_gib: GiB | None = Field(validation_alias="limit_ram_mb")
    limit_disk_gib: int | None = Field(validation_alias="limit_disk_gb")
    limit_instances: int | None
    used_vcpus: int
    used_ram_gib: GiB = Field(validation_alias="used_ram_mb")
    used_disk_gib: int = Field(validation_alias="used_disk_gb")
    used_instances: int
    reserved_vcpus: int
    reserved_ram_gib: GiB = Field(validation_alias="reserved_ram_mb")
    reserved_disk_gib: int = Field(validation_alias="reserved_disk_gb")
    reserved_instances: int
    synced_at: datetime | None


class CapacityRow(Schema):
    """One resource of one cloud: what the hardware gives (with over-commit), what quotas promise, what runs; each
    amount in ``unit`` (vCPU, or GiB for RAM and disk)."""

    cloud: str
    resource: Literal["vcpus", "ram", "disk"]
    unit: Literal["vCPU", "GiB"]
    total: float
    reserved: float
    allocation_ratio: float
    capacity: float
    allocated: float
    used: float
    headroom: float
    allocated_ratio: float | None
    used_ratio: float | None


class RequestItemCreate(Schema):
    """A line of a request: ``vm`` (count VMs of a flavor), ``volume`` (count block volumes of a type and size, held
    against the unit's disk quota) or ``quota`` (raise the unit's limits by these)."""

    kind: Literal["vm", "volume", "quota"] = "vm"
    flavor: ShortName | None = None
    count: Annotated[int, Field(ge=1, le=100)] = 1
    image: Annotated[str, StringConstraints(max_length=128), NoControl] | None = Field(
        default=None, description="default: the cloud's default image")
    network: Annotated[str, StringConstraints(max_length=128), NoControl] | None = Field(
        default=None, description="default: the cloud's default network")
    vcpus: Annotated[int, Field(ge=0, le=100_000)] = 0
    ram_gib: Annotated[int, Field(ge=0, le=1_000_000)] = 0
    disk_gib: Annotated[int, Field(ge=0, le=1_000_000)] = 0
    instances: Annotated[int, Field(ge=0, le=100_000)] = 0
    volume_type: ShortName | None = None
    size_gib: Annotated[int, Field(ge=1, le=65_536)] | None = None

    @model_validator(mode="after")
    def _fits_its_kind(self) -> RequestItemCreate:
        increases = (self.vcpus, self.ram_gib, self.disk_gib, self.instances)
        if self.kind == "volume":
            if self.volume_type is None or self.size_gib is None:
                raise ValueError("a volume item needs a volume_type and a size_gib")
            if self.flavor is not None or any(increases):
                raise ValueError("a volume item takes a volume_type, size_gib and count")
            return self
        if self.volume_type is not None or self.size_gib is not None:
            raise ValueError("volume_type and size_gib are for a volume item")
        if self.kind == "vm":
            if self.flavor is None:
                raise ValueError("a vm item needs a flavor")
            if any(increases):
                raise ValueError("a vm item takes a flavor and count, not quota increases")
        else:
            if self.flavor is not None:
                raise ValueError("a quota item takes increases (vcpus, ram_gib, disk_gib, instances), not a flavor")
            if not any(increases):
                raise ValueError("a quota item must raise at least one of vcpus, ram_gib, disk_gib, instances")
        return self


class RequestCreate(Schema):
    business_system: Id = Field(description="id of the business system (业务系统) the VMs serve")
    cloud: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64), NoControl] = Field(
        default="any", description="a cloud name, or 'any' for the cloud with room under the unit's quota")
    justification: Annotated[str, StringConstraints(strip_whitespace=True, min_length=4, max_length=2000),
                             NoControlMultiline]
    items: Annotated[list[RequestItemCreate], Field(min_length=1, max_length=20)]
    ends_on: date | None = Field(default=None, description="临时资源: the last day the VMs are wanted (Beijing date); "
                                                         "after it they are recommended for reclaim")

    @model_validator(mode="after")
    def _one_kind(self) -> RequestCreate:
        # Volumes come alone or with the VMs they are for; more quota is a request of its own.
        if "quota" in {item.kind for item in self.items} and len({item.kind for item in self.items}) > 1:
            raise ValueError("a request asks either for VMs and volumes or for more quota, not both")
        if self.ends_on is not None:
            today = beijing_today()
            if self.items[0].kind == "quota":
                raise ValueError("a lease (ends_on) is for VMs, not for quota")
            if not today < self.ends_on <= today + timedelta(days=3 * 366):
                raise ValueError("ends_on must be after today and within three years")
        return self

    @property
    def is_quota_increase(self) -> bool:
        return self.items[0].kind == "quota"


class RequestDecision(Schema):
    reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500), NoControlMultiline] | None = None


class RequestItemPublic(Schema):
    id: int
    kind: str
    flavor: str
    count: int
    image: str | None
    network: str | None
    vcpus: int
    ram_gib: GiB = Field(validation_alias="ram_mb")
    disk_gib: int = Field(validation_alias="disk_gb")
    instances: int
    status: ItemStatus
    provisioned: int
    error: str | None


class ApprovalStepPublic(Schema):
    """One step of a request's approval chain (stored as JSON on the request, its time in UTC ISO 8601)."""

    step: Literal["leader", "ops"]
    decision: Literal["approved", "rejected"]
    by: str
    role: str
    at: datetime
    note: str | None = None


class RequestPublic(Schema):
    id: int
    unit_code: str
    business_system_id: int
    cloud: str = Field(validation_alias="cloud_name")
    status: RequestStatus
    justification: str
    submitted_by: str
    decided_by: str | None
    decided_at: datetime | None
    decision_reason: str | None
    auto_approved: bool
    job_id: int | None
    ends_on: date | None
    # The budget (预算) the request would exceed, which sent it through the extra approval step; None within budget.
    over_budget: str | None = None
    # Each step of the approval chain, in order: the department leader's (部门负责人), then ops'.
    approvals: list[ApprovalStepPublic]
    items: list[RequestItemPublic]
    created_at: datetime
    updated_at: datetime


class ServerAddressPublic(Schema):
    ip: str
    kind: AddressKind


class ServerPublic(Schema):
    id: int
    name: str
    unit_code: str | None
    business_system: str | None = Field(validation_alias="business_system_name")
    business_system_id: int | None
    cloud: str = Field(validation_alias="cloud_name")
    provider_id: str
    flavor: str
    vcpus: int
    ram_gib: GiB = Field(validation_alias="ram_mb")
    disk_gib: int = Field(validation_alias="disk_gb")
    status: str
    status_since: datetime | None
    host: str | None
    fault: str | None
    # Fixed and floating, as the cloud last reported them.
    addresses: list[ServerAddressPublic]
    orphan: bool
    request_item_id: int | None
    launched_at: datetime | None
    synced_at: datetime | None
    decommission_at: datetime | None
    decommission_by: str | None
    lease_ends_on: date | None


class ServerResize(Schema):
    flavor: Annotated[str, StringConstraints(min_length=1, max_length=64), NoControl] = Field(
        description="a flavor of the server's cloud")
    confirm: bool = Field(default=True, description="confirm the resize (Nova's VERIFY_RESIZE) at once")


class VolumePublic(Schema):
    """A block volume (云硬盘): its size in GiB, what it is attached to, since when it is not."""

    id: int
    name: str
    cloud: str = Field(validation_alias="cloud_name")
    unit_code: str | None
    business_system: str | None = Field(validation_alias="business_system_name")
    volume_type: str
    size_gib: int
    status: str
    server_id: int | None
    server: str | None = Field(validation_alias="server_name")
    detached_since: datetime | None
    provider_created_at: datetime | None
    synced_at: datetime | None


class VolumeQuotaSet(Schema):
    """A unit's GiB limit for one volume type; null lifts the limit."""

    limit_gib: Annotated[int, Field(ge=0, le=10_000_000)] | None


class VolumeQuotaPublic(Schema):
    """A unit's block storage quota for one volume type on a cloud, in GiB (null: no limit)."""

    unit_code: str
    cloud: str = Field(validation_alias="cloud_name")
    volume_type: str
    limit_gib: int | None
    used_gib: int
    reserved_gib: int = Field(0, description="held by approved requests whose volumes are not made yet")
    synced_at: datetime | None
