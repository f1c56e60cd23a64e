"""Input and output shapes of the government-cloud domain."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints

from cloudctl.compute.models import CloudKind
from cloudctl.core.schemas import Schema

__all__ = [
    "CapacityRow",
    "CloudCreate",
    "CloudPublic",
    "CloudUpdate",
    "FlavorPublic",
    "QuotaPublic",
    "QuotaSet",
]

CloudName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=64,
                                             pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
Ratio = Annotated[float, Field(gt=0, le=32, description="over-commit ratio, as Nova's allocation ratios")]
Limit = Annotated[int, Field(ge=0, le=10_000_000)]


class CloudCreate(Schema):
    name: CloudName
    display_name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
    kind: CloudKind
    connection: str | None = Field(default=None, max_length=255,
                                   description="clouds.yaml cloud name, or kubeconfig context")
    region: str | None = Field(default=None, max_length=64)
    cpu_allocation_ratio: Ratio = 4.0
    ram_allocation_ratio: Ratio = 1.0
    default_image: str | None = Field(default=None, max_length=128)
    default_network: str | None = Field(default=None, max_length=128)
    enabled: bool = True


class CloudUpdate(Schema):
    display_name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)] | None = None
    connection: str | None = Field(default=None, max_length=255)
    region: str | None = Field(default=None, max_length=64)
    cpu_allocation_ratio: Ratio | None = None
    ram_allocation_ratio: Ratio | None = None
    default_image: str | None = Field(default=None, max_length=128)
    default_network: str | None = Field(default=None, max_length=128)
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
    ram_mb: int
    disk_gb: int


class QuotaSet(Schema):
    """New limits; an omitted limit stays as it is. RAM and disk are given in GB, as people speak of them."""

    vcpus: Limit | None = None
    ram_gb: Limit | None = None
    disk_gb: Limit | None = None
    instances: Limit | None = None


class QuotaPublic(Schema):
    unit_code: str
    cloud: str = Field(validation_alias="cloud_name")
    limit_vcpus: int | None
    limit_ram_mb: int | None
    limit_disk_gb: int | None
    limit_instances: int | None
    used_vcpus: int
    used_ram_mb: int
    used_disk_gb: int
    used_instances: int
    reserved_vcpus: int
    reserved_ram_mb: int
    reserved_disk_gb: int
    reserved_instances: int
    synced_at: datetime | None


class CapacityRow(Schema):
    """One resource of one cloud: what the hardware gives (with over-commit), what quotas promise, what runs."""

    cloud: str
    resource: str
    total: int
    reserved: int
    allocation_ratio: float
    capacity: int
    allocated: int
    used: int
    headroom: int
    allocated_ratio: float | None
    used_ratio: float | None
