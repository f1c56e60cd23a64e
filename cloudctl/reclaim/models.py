"""Tables of the reclaim domain: daily utilisation summaries, analysis campaigns and recommendations.

Raw samples never land here: one row per server, UTC day and metric holds what the
analysis needs (p95, p99, max, mean, samples). A recommendation is one per server and
kind, whatever the number of campaigns that found it, so re-running an analysis updates
it rather than duplicating it.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, Float, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cloudctl.compute.models import Server, Volume, VolumeSnapshot
from cloudctl.core.models import Base, LabelledEnum, TimestampMixin, enum_column
from cloudctl.org.models import Unit

__all__ = ["AppealStatus", "ReclaimCampaign", "Recommendation", "RecommendationKind", "RecommendationStatus",
           "UtilisationDay"]


class UtilisationDay(Base):
    """One server's metric over one UTC day (cpu and mem as fractions, net in bytes per second)."""

    __tablename__ = "utilisation_daily"
    __table_args__ = (UniqueConstraint("server_id", "day", "metric", name="uq_utilisation_daily_server_day_metric"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    server_id: Mapped[int] = mapped_column(ForeignKey("servers.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date, index=True)
    metric: Mapped[str] = mapped_column(String(8))
    p95: Mapped[float] = mapped_column(Float)
    p99: Mapped[float] = mapped_column(Float)
    max: Mapped[float] = mapped_column(Float)
    mean: Mapped[float] = mapped_column(Float)
    samples: Mapped[int]
    # prometheus, simulator or import: where the numbers came from, for the evidence.
    source: Mapped[str] = mapped_column(String(16))


class RecommendationKind(LabelledEnum):
    IDLE = "idle", "闲置", "yellow"
    OVERSIZED = "oversized", "配置过高", "cyan"
    ZOMBIE = "zombie", "僵尸主机", "red"
    # The lease the department asked for has ended (到期回收): not a finding of the analysis.
    LEASE = "lease", "租期届满", "magenta"
    # Storage: a volume unattached for N days, a volume whose server is deleted. Executed snapshot-then-delete.
    VOLUME_IDLE = "volume_idle", "云硬盘长期未挂载", "yellow"
    VOLUME_ORPHAN = "volume_orphan", "主机已删除的云硬盘", "red"
    # A volume snapshot older than the retention: executed by deleting the snapshot.
    SNAPSHOT_OLD = "snapshot_old", "快照超过保留期", "bright_black"


class RecommendationStatus(LabelledEnum):
    OPEN = "open", "待通知", "white"
    NOTIFIED = "notified", "已通知", "cyan"
    EXEMPTED = "exempted", "已豁免", "green"
    SCHEDULED = "scheduled", "待执行", "blue"
    EXECUTED = "executed", "已回收", "green"
    FAILED = "failed", "执行失败", "red"
    DISMISSED = "dismissed", "已撤销", "bright_black"


class AppealStatus(LabelledEnum):
    PENDING = "pending", "申诉待审", "yellow"
    ACCEPTED = "accepted", "申诉通过", "green"
    REJECTED = "rejected", "申诉驳回", "red"


class ReclaimCampaign(Base):
    """One run of the analysis over a window ending at ``as_of``: what it found, in counts."""

    __tablename__ = "reclaim_campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    as_of: Mapped[date] = mapped_column(Date)
    window_days: Mapped[int]
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    started_by: Mapped[str] = mapped_column(String(128))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    # The thresholds in force, so a later reader knows what "idle" meant that day.
    thresholds: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Servers per verdict (ok, idle, oversized, zombie, stopped, insufficient_data) and per outcome
    # (created, updated, reopened, dismissed).
    counts: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)


class Recommendation(TimestampMixin, Base):
    """A reclaim recommendation for one server: the evidence, what it frees, and where it stands."""

    __tablename__ = "reclaim_recommendations"
    __table_args__ = (UniqueConstraint("server_id", "kind", name="uq_reclaim_recommendations_server_kind"),
                      UniqueConstraint("volume_id", "kind", name="uq_reclaim_recommendations_volume_kind"),
                      UniqueConstraint("volume_snapshot_id", "kind",
                                       name="uq_reclaim_recommendations_volume_snapshot_kind"))

    id: Mapped[int] = mapped_column(primary_key=True)
    # A recommendation is about a server or, for storage, a volume (then server_id is none).
    server_id: Mapped[int | None] = mapped_column(ForeignKey("servers.id", ondelete="CASCADE"), index=True)
    volume_id: Mapped[int | None] = mapped_column(ForeignKey("volumes.id", ondelete="CASCADE"), index=True)
    volume_snapshot_id: Mapped[int | None] = mapped_column(ForeignKey("volume_snapshots.id", ondelete="CASCADE"),
                                                           index=True)
    # The owner at the time of the analysis: what a department user is scoped by.
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    kind: Mapped[RecommendationKind] = mapped_column(enum_column(RecommendationKind, 16))
    status: Mapped[RecommendationStatus] = mapped_column(enum_column(RecommendationStatus, 16), index=True)
    # The analysis that found it; none for a lease that ended.
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("reclaim_campaigns.id", ondelete="RESTRICT"),
                                                    index=True)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    current_flavor: Mapped[str] = mapped_column(String(64))
    recommended_flavor: Mapped[str | None] = mapped_column(String(64))
    reclaim_vcpus: Mapped[int]
    reclaim_ram_mb: Mapped[int]
    reclaim_disk_gb: Mapped[int]
    saving_month: Mapped[float] = mapped_column(Float)
    notified_at: Mapped[datetime | None]
    # The end of the grace period: the department may appeal until then; nothing is executed before it.
    due_at: Mapped[datetime | None] = mapped_column(index=True)
    appeal_status: Mapped[AppealStatus | None] = mapped_column(enum_column(AppealStatus, 16))
    appeal_reason: Mapped[str | None] = mapped_column(String(1000))
    appeal_by: Mapped[str | None] = mapped_column(String(128))
    appeal_at: Mapped[datetime | None]
    appeal_decided_by: Mapped[str | None] = mapped_column(String(128))
    appeal_decided_at: Mapped[datetime | None]
    appeal_note: Mapped[str | None] = mapped_column(String(500))
    exempt_until: Mapped[date | None] = mapped_column(Date)
    executed_at: Mapped[datetime | None]
    # What execution did or would do: resize, shelve_offload.
    action: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(String(500))
    closed_reason: Mapped[str | None] = mapped_column(String(500))
    # A volume's execution snapshots it before deleting it: the snapshot, kept until ``snapshot_until``.
    snapshot_id: Mapped[str | None] = mapped_column(String(64))
    snapshot_until: Mapped[date | None] = mapped_column(Date)

    server: Mapped[Server | None] = relationship(lazy="joined")
    volume: Mapped[Volume | None] = relationship(lazy="joined")
    volume_snapshot: Mapped[VolumeSnapshot | None] = relationship(lazy="joined")
    unit: Mapped[Unit] = relationship(lazy="joined", innerjoin=True)

    @property
    def unit_code(self) -> str:
        return self.unit.code

    @property
    def target(self) -> Server | Volume | VolumeSnapshot:
        """What the recommendation is about: its server, its volume, or a volume's snapshot."""
        target = self.server or self.volume or self.volume_snapshot
        assert target is not None, "a recommendation names a server, a volume or a snapshot"
        return target

    @property
    def server_name(self) -> str:
        return self.target.name

    @property
    def volume_name(self) -> str | None:
        return self.volume.name if self.volume is not None else None

    @property
    def cloud_name(self) -> str:
        return self.target.cloud.name

    @property
    def business_system(self) -> str | None:
        return self.target.business_system_name
