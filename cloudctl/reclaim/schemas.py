"""Input and output shapes of the reclaim domain."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, field_validator

from cloudctl.core.schemas import GiB, Schema, gib
from cloudctl.core.text import NoControl, NoControlMultiline
from cloudctl.reclaim.models import AppealStatus, RecommendationKind, RecommendationStatus

__all__ = [
    "AppealCreate",
    "AppealDecision",
    "CampaignPublic",
    "CapacityMonthPublic",
    "ExecutionStep",
    "ForecastPublic",
    "PlanResourcePublic",
    "RecommendationPublic",
    "RollupRow",
    "SummaryRow",
]


class SummaryRow(BaseModel):
    """One CSV row of a daily summary import (the columns `cloudctl reclaim import` reads)."""

    server: Annotated[str, StringConstraints(min_length=1, max_length=128), NoControl] = Field(
        description="server id, provider id or name")
    day: date
    metric: Literal["cpu", "mem", "net_rx", "net_tx"]
    # Finite: "inf" and "nan" parse as floats, and PostgreSQL and SQLite would each store them differently.
    p95: float = Field(ge=0, allow_inf_nan=False)
    p99: float = Field(ge=0, allow_inf_nan=False)
    max: float = Field(ge=0, allow_inf_nan=False)
    mean: float = Field(ge=0, allow_inf_nan=False)
    samples: int = Field(ge=1, le=1_000_000)


class RecommendationPublic(Schema):
    id: int
    server_id: int | None = Field(description="the server; none for a volume's recommendation")
    volume_id: int | None = Field(description="the volume, for storage (volume_idle, volume_orphan)")
    volume_snapshot_id: int | None = Field(description="the snapshot past its retention (snapshot_old)")
    server: str = Field(validation_alias="server_name", description="the server's name, or the volume's")
    unit_code: str
    business_system: str | None
    cloud: str = Field(validation_alias="cloud_name")
    kind: RecommendationKind
    status: RecommendationStatus
    campaign_id: int | None
    current_flavor: str
    recommended_flavor: str | None
    reclaim_vcpus: int
    reclaim_ram_gib: GiB = Field(validation_alias="reclaim_ram_mb")
    reclaim_disk_gib: int = Field(validation_alias="reclaim_disk_gb")
    saving_month: float = Field(description="CNY per month at the configured unit prices")
    evidence: dict[str, Any]
    notified_at: datetime | None
    due_at: datetime | None = Field(description="end of the grace period: appeal until then")
    appeal_status: AppealStatus | None
    appeal_reason: str | None
    appeal_by: str | None
    appeal_at: datetime | None
    appeal_note: str | None
    exempt_until: date | None
    action: str | None
    executed_at: datetime | None
    snapshot_id: str | None = Field(description="the snapshot taken before a volume was deleted")
    snapshot_until: date | None = Field(description="the snapshot is kept until this day")
    error: str | None
    closed_reason: str | None
    created_at: datetime
    updated_at: datetime

    @field_validator("evidence", mode="before")
    @classmethod
    def _evidence_in_gib(cls, value: Any) -> Any:
        # The analysis counts memory in MiB, as the clouds do; what people and programs read is GiB.
        if not isinstance(value, dict):
            return value
        shown: dict[str, Any] = {}
        for key, item in value.items():
            if key.endswith("ram_mb"):
                shown[key.removesuffix("_mb") + "_gib"] = gib(item) if isinstance(item, int | float) else item
            elif key.endswith("disk_gb"):
                shown[key.removesuffix("_gb") + "_gib"] = item
            else:
                shown[key] = item
        return shown


class CampaignPublic(Schema):
    id: int
    as_of: date
    window_days: int
    started_at: datetime
    finished_at: datetime | None
    started_by: str
    job_id: int | None
    counts: dict[str, int]


class AppealCreate(Schema):
    reason: Annotated[str, StringConstraints(min_length=4, max_length=1000), NoControlMultiline] = Field(
        description="why the server must keep its resources")


class AppealDecision(Schema):
    accept: bool
    note: Annotated[str, StringConstraints(max_length=500), NoControlMultiline] | None = None
    exempt_until: date | None = Field(default=None, description="with accept: exempt until this day")


class RollupRow(BaseModel):
    """Allocated, used and reclaimable resources of one unit, business system or cloud."""

    key: str
    name: str
    servers: int
    vcpus: int
    ram_gib: float
    used_vcpus: float = Field(description="vCPUs busy at p95, summed over the servers with data")
    used_ram_gib: float
    reclaimable_vcpus: int
    reclaimable_ram_gib: float
    volumes: int = Field(0, description="volumes held (not deleted)")
    storage_gib: int = Field(0, description="GiB of the volumes held")
    reclaimable_storage_gib: int = Field(0, description="GiB freed by the open storage recommendations: unattached "
                                                        "volumes, volumes of deleted servers, old snapshots")
    saving_month: float
    recommendations: int


class ExecutionStep(BaseModel):
    """What execution did (or, in a dry run, would do) for one recommendation."""

    recommendation: int
    server: str
    unit_code: str
    kind: str
    action: str
    target: str | None
    outcome: Literal["planned", "done", "skipped", "failed"]
    detail: str = ""


class CapacityMonthPublic(BaseModel):
    """One month of a cloud's resource: usable capacity, what its servers hold, what quotas promise."""

    month: str
    capacity: float
    allocated: float
    promised: float


class ForecastPublic(BaseModel):
    """When a model says the allocation reaches the threshold (None: not within ten years, or never)."""

    model: Literal["linear", "holt"]
    reclaim: bool = Field(description="starting from the allocation less what the open recommendations free")
    level: float = Field(description="the model's allocation this month")
    slope: float = Field(description="growth per month")
    months: float | None
    reaches_on: date | None
    insufficient_data: bool


class PlanResourcePublic(BaseModel):
    """Purchase planning (采购规划) for one resource of one cloud: capacity against allocations, use beside it,
    the headroom with and without reclaim, the monthly history and the forecast. vCPU, or GiB for ram and disk."""

    cloud: str
    name: str
    resource: Literal["vcpus", "ram", "disk"]
    unit: Literal["vCPU", "GiB"]
    capacity: float = Field(description="(total − reserved) × allocation ratio")
    allocated: float = Field(description="held by the cloud's servers (Placement allocations)")
    promised: float = Field(description="promised by the units' quotas")
    used: float | None = Field(description="measured use (p95 CPU, peak memory) of the servers with data")
    reclaimable: float = Field(description="freed by the open reclaim recommendations")
    headroom: float = Field(description="capacity − allocated")
    headroom_after_reclaim: float
    allocated_ratio: float | None
    threshold: float = Field(description="the share of capacity the forecast looks for")
    history: list[CapacityMonthPublic]
    forecasts: list[ForecastPublic]
