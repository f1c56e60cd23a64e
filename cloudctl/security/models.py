"""Tables of the security domain, first part: assets, report imports, findings and rectification tickets.

Findings follow DefectDojo's lessons: one row per scope and fingerprint (scanner family, plugin,
address, port, protocol, service — never evidence or times), so a re-import sorts the report into
created, untouched, closed and reactivated instead of piling up duplicates; status is a set of
flags (active, verified, false positive, risk accepted, out of scope) rather than one word.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cloudctl.compute.models import Server
from cloudctl.core.models import Base, LabelledEnum, TimestampMixin, enum_column
from cloudctl.org.models import BusinessSystem, Unit

__all__ = [
    "Alert",
    "AlertStatus",
    "Asset",
    "BlockedAddress",
    "Drill",
    "DrillItem",
    "DrillPhase",
    "DrillTemplate",
    "DutyKind",
    "DutyPeriod",
    "DutyReport",
    "DutyShift",
    "Finding",
    "Incident",
    "IncidentLevel",
    "IncidentReport",
    "IncidentStatus",
    "IncidentStep",
    "ItemStatus",
    "LevelSource",
    "OperatorKind",
    "ScanImport",
    "Severity",
    "StepStatus",
    "Ticket",
    "TicketStatus",
    "TriageStep",
    "Verdict",
]


class Severity(LabelledEnum):
    CRITICAL = "critical", "严重", "bright_red"
    HIGH = "high", "高危", "red"
    MEDIUM = "medium", "中危", "yellow"
    LOW = "low", "低危", "cyan"
    INFO = "info", "信息", "bright_black"


class LevelSource(LabelledEnum):
    """Where an asset's MLPS level (等保级别) comes from."""

    SYSTEM = "system", "随业务系统", "cyan"
    MANUAL = "manual", "人工认定", "magenta"


class Asset(TimestampMixin, Base):
    """An address the scanners report on, tied to its unit, and to the cloud server (with its business system
    and MLPS level) that holds the address where the cloud says so."""

    __tablename__ = "security_assets"
    # MLPS levels as business systems have them (1–4); in practice 2 or 3. A host named without an address is
    # one asset per (lower-case) host name, as an address is one per address.
    __table_args__ = (CheckConstraint("mlps_level BETWEEN 1 AND 4", name="mlps_level_range"),
                      Index("uq_security_assets_host_name", "hostname", unique=True,
                            sqlite_where=text("kind != 'ip'"), postgresql_where=text("kind != 'ip'")))

    id: Mapped[int] = mapped_column(primary_key=True)
    # ip: an address the scanners reported, canonical (IPv6 compressed, lower-case); host: a host name without
    # an address; web: a web application, by the URL a web scanner gave (its host name is the asset).
    kind: Mapped[str] = mapped_column(String(8), default="ip", server_default="ip")
    ip: Mapped[str | None] = mapped_column(String(45), unique=True)
    hostname: Mapped[str | None] = mapped_column(String(255))
    url: Mapped[str | None] = mapped_column(String(2048))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="SET NULL"), index=True)
    server_id: Mapped[int | None] = mapped_column(ForeignKey("servers.id", ondelete="SET NULL"), index=True)
    business_system_id: Mapped[int | None] = mapped_column(ForeignKey("business_systems.id", ondelete="SET NULL"),
                                                           index=True)
    mlps_level: Mapped[int | None]
    # SYSTEM: follows the linked business system; MANUAL: set by the security team, which links never touch.
    mlps_level_source: Mapped[LevelSource | None] = mapped_column(enum_column(LevelSource, 16))
    internet_exposed: Mapped[bool] = mapped_column(default=False, server_default=false())
    # The last MLPS baseline run on the host: checks with a verdict (not-applicable ones left out), and passed.
    baseline_checks: Mapped[int | None]
    baseline_passed: Mapped[int | None]
    baseline_checked_at: Mapped[datetime | None]

    unit: Mapped[Unit | None] = relationship(lazy="joined")
    # Loaded on demand (the asset queries ask for them): a findings listing joins assets and needs neither.
    server: Mapped[Server | None] = relationship()
    business_system: Mapped[BusinessSystem | None] = relationship()

    @property
    def unit_code(self) -> str | None:
        return self.unit.code if self.unit is not None else None

    @property
    def target(self) -> str:
        """What the asset is known by: its address, else its host name."""
        return self.ip or self.hostname or f"asset {self.id}"

    @property
    def server_name(self) -> str | None:
        return self.server.name if self.server is not None else None

    @property
    def business_system_name(self) -> str | None:
        return self.business_system.name if self.business_system is not None else None


class ScanImport(Base):
    """One report brought in (a scan cloudctl ran, or a file a carrier or vendor handed over), per scope."""

    __tablename__ = "security_imports"
    # The same file twice into one scope is the same import: it changes nothing the second time.
    __table_args__ = (UniqueConstraint("scope", "file_sha256", name="uq_security_imports_scope_sha"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(128), index=True)
    scanner: Mapped[str] = mapped_column(String(16))
    file_sha256: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(255))
    started_at: Mapped[datetime | None]
    imported_at: Mapped[datetime]
    imported_by: Mapped[str] = mapped_column(String(128))
    hosts: Mapped[list[str]] = mapped_column(JSON)
    counts: Mapped[dict[str, int]] = mapped_column(JSON)


class TicketStatus(LabelledEnum):
    OPEN = "open", "整改中", "yellow"
    CLOSED = "closed", "已整改(复测通过)", "green"


class Ticket(TimestampMixin, Base):
    """A rectification ticket (整改单) of one unit: it closes only when a later scan no longer shows its findings."""

    __tablename__ = "security_tickets"

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    scope: Mapped[str] = mapped_column(String(128))
    title: Mapped[str] = mapped_column(String(255))
    assignee: Mapped[str | None] = mapped_column(String(128))
    deadline: Mapped[date] = mapped_column(Date)
    status: Mapped[TicketStatus] = mapped_column(enum_column(TicketStatus, 16), index=True)
    # [{"from", "to", "by", "reason", "at"}]: every extension, with who approved it.
    extensions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    evidence: Mapped[str | None] = mapped_column(Text)
    # The department's last word on it: in_progress (整改中) or fixed (已整改，请复核); a re-scan still decides.
    progress: Mapped[str | None] = mapped_column(String(16))
    closed_at: Mapped[datetime | None]
    closed_by_import_id: Mapped[int | None] = mapped_column(ForeignKey("security_imports.id", ondelete="SET NULL"))

    unit: Mapped[Unit] = relationship(lazy="joined", innerjoin=True)

    @property
    def unit_code(self) -> str:
        return self.unit.code


class Finding(TimestampMixin, Base):
    """One thing a scanner says about one service of one asset, kept across imports by its fingerprint."""

    __tablename__ = "security_findings"
    __table_args__ = (UniqueConstraint("scope", "fingerprint", name="uq_security_findings_scope_fingerprint"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(128))
    fingerprint: Mapped[str] = mapped_column(String(64))
    scanner: Mapped[str] = mapped_column(String(16))
    plugin_id: Mapped[str] = mapped_column(String(128))
    title: Mapped[str] = mapped_column(String(500))
    severity: Mapped[Severity] = mapped_column(enum_column(Severity, 16), index=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("security_assets.id", ondelete="CASCADE"), index=True)
    # The asset's address; None for a host the scanner named without one (the asset has its name and URL).
    ip: Mapped[str | None] = mapped_column(String(45))
    port: Mapped[int | None]
    protocol: Mapped[str | None] = mapped_column(String(8))
    service: Mapped[str | None] = mapped_column(String(64))
    cve: Mapped[list[str]] = mapped_column(JSON, default=list)
    cvss: Mapped[float | None] = mapped_column(Float)
    description: Mapped[str] = mapped_column(Text, default="")
    solution: Mapped[str] = mapped_column(Text, default="")
    evidence: Mapped[str] = mapped_column(Text, default="")
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
    # DefectDojo's flags: what the finding is, rather than one status word.
    active: Mapped[bool] = mapped_column(default=True, server_default=true(), index=True)
    verified: Mapped[bool] = mapped_column(default=False, server_default=false())
    false_positive: Mapped[bool] = mapped_column(default=False, server_default=false())
    risk_accepted: Mapped[bool] = mapped_column(default=False, server_default=false())
    risk_accepted_by: Mapped[str | None] = mapped_column(String(128))
    risk_accepted_until: Mapped[date | None] = mapped_column(Date)
    out_of_scope: Mapped[bool] = mapped_column(default=False, server_default=false())
    mitigated_at: Mapped[datetime | None]
    sla_deadline: Mapped[date | None] = mapped_column(Date, index=True)
    last_import_id: Mapped[int | None] = mapped_column(ForeignKey("security_imports.id", ondelete="SET NULL"))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("security_tickets.id", ondelete="SET NULL"), index=True)

    asset: Mapped[Asset] = relationship(lazy="joined", innerjoin=True)

    @property
    def target(self) -> str:
        return self.asset.target

    @property
    def unit_code(self) -> str | None:
        return self.asset.unit.code if self.asset.unit is not None else None

    @property
    def business_system_id(self) -> int | None:
        return self.asset.business_system_id

    @property
    def mlps_level(self) -> int | None:
        return self.asset.mlps_level


class Verdict(LabelledEnum):
    FALSE_POSITIVE = "false_positive", "误报", "bright_black"
    ATTACK = "attack", "攻击", "red"
    UNDETERMINED = "undetermined", "待定", "yellow"


class AlertStatus(LabelledEnum):
    NEW = "new", "待研判", "red"
    TRIAGED = "triaged", "已研判", "yellow"
    CLOSED = "closed", "已关闭", "green"


class Alert(TimestampMixin, Base):
    """An alert from the situational-awareness, audit or monitoring systems, one per source and reference."""

    __tablename__ = "security_alerts"
    __table_args__ = (UniqueConstraint("source", "source_ref", name="uq_security_alerts_source_ref"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    source_ref: Mapped[str] = mapped_column(String(128))
    title: Mapped[str] = mapped_column(String(500))
    severity: Mapped[Severity] = mapped_column(enum_column(Severity, 16), index=True)
    src_ip: Mapped[str | None] = mapped_column(String(45))
    dst_ip: Mapped[str | None] = mapped_column(String(45))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="SET NULL"), index=True)
    received_at: Mapped[datetime]
    last_received_at: Mapped[datetime]
    # How many times the source sent it again (a firing Alertmanager alert repeats every group_interval).
    repeats: Mapped[int] = mapped_column(default=0)
    status: Mapped[AlertStatus] = mapped_column(enum_column(AlertStatus, 16), index=True)
    verdict: Mapped[Verdict | None] = mapped_column(enum_column(Verdict, 16))
    verdict_by: Mapped[str | None] = mapped_column(String(128))
    verdict_at: Mapped[datetime | None]
    verdict_note: Mapped[str | None] = mapped_column(String(1000))
    closed_at: Mapped[datetime | None]
    closed_by: Mapped[str | None] = mapped_column(String(128))
    raw: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The incident an attack opened or joined.
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("security_incidents.id", ondelete="SET NULL"),
                                                    index=True)

    unit: Mapped[Unit | None] = relationship(lazy="joined")
    steps: Mapped[list[TriageStep]] = relationship(back_populates="alert", lazy="selectin",
                                                   order_by="TriageStep.position", cascade="all, delete-orphan")

    @property
    def unit_code(self) -> str | None:
        return self.unit.code if self.unit is not None else None

    @property
    def triage_seconds(self) -> float | None:
        """Time to triage: from the first arrival to the verdict."""
        return (self.verdict_at - self.received_at).total_seconds() if self.verdict_at is not None else None


class StepStatus(LabelledEnum):
    PENDING = "pending", "待办", "white"
    DONE = "done", "已完成", "green"
    SKIPPED = "skipped", "不适用", "bright_black"


class TriageStep(Base):
    """One of the six steps an alert judged an attack goes through: 阻断、响应、排查、查杀、备案、回复."""

    __tablename__ = "security_triage_steps"
    __table_args__ = (UniqueConstraint("alert_id", "step", name="uq_security_triage_steps_alert_step"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("security_alerts.id", ondelete="CASCADE"), index=True)
    step: Mapped[str] = mapped_column(String(16))
    position: Mapped[int]
    mandatory: Mapped[bool]
    status: Mapped[StepStatus] = mapped_column(enum_column(StepStatus, 16))
    actor: Mapped[str | None] = mapped_column(String(128))
    started_at: Mapped[datetime]
    done_at: Mapped[datetime | None]
    evidence: Mapped[str | None] = mapped_column(Text)

    alert: Mapped[Alert] = relationship(back_populates="steps")


class BlockedAddress(Base):
    """An address on the block list (封禁), with its reason and expiry, exported for the firewalls."""

    __tablename__ = "security_blocklist"

    id: Mapped[int] = mapped_column(primary_key=True)
    ip: Mapped[str] = mapped_column(String(49), index=True)  # an address or a CIDR
    reason: Mapped[str] = mapped_column(String(500))
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("security_alerts.id", ondelete="SET NULL"))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None] = mapped_column(index=True)
    lifted_at: Mapped[datetime | None]


class IncidentLevel(LabelledEnum):
    """The national four-level scale of cybersecurity incidents (网络安全事件分级)."""

    EXTRAORDINARY = "extraordinary", "特别重大", "bright_red"
    MAJOR = "major", "重大", "red"
    LARGE = "large", "较大", "yellow"
    GENERAL = "general", "一般", "cyan"


class OperatorKind(LabelledEnum):
    """Whose incident it is, which sets to whom and how fast it is reported (《国家网络安全事件报告管理办法》)."""

    CII = "cii", "关键信息基础设施运营者", "red"
    STATE_ORGAN = "state_organ", "中央和国家机关", "magenta"
    OTHER = "other", "其他网络运营者", "white"


class IncidentStatus(LabelledEnum):
    OPEN = "open", "处置中", "red"
    CLOSED = "closed", "已处置", "green"


class Incident(TimestampMixin, Base):
    """A cybersecurity incident (网络安全事件): opened by an alert judged an attack, joined by more; its level, its
    reporting deadline, the reports made, and the six response steps as its tasks."""

    __tablename__ = "security_incidents"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(500))
    level: Mapped[IncidentLevel] = mapped_column(enum_column(IncidentLevel, 16))
    operator_kind: Mapped[OperatorKind] = mapped_column(enum_column(OperatorKind, 16))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="SET NULL"), index=True)
    source_ip: Mapped[str | None] = mapped_column(String(45))
    status: Mapped[IncidentStatus] = mapped_column(enum_column(IncidentStatus, 16), index=True)
    opened_at: Mapped[datetime] = mapped_column(index=True)
    opened_by: Mapped[str] = mapped_column(String(128))
    # None where no report is owed within hours (一般).
    report_due_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]

    unit: Mapped[Unit | None] = relationship(lazy="joined")
    steps: Mapped[list[IncidentStep]] = relationship(lazy="selectin", order_by="IncidentStep.position",
                                                     cascade="all, delete-orphan")
    reports: Mapped[list[IncidentReport]] = relationship(lazy="selectin", order_by="IncidentReport.reported_at",
                                                         cascade="all, delete-orphan")

    @property
    def unit_code(self) -> str | None:
        return self.unit.code if self.unit is not None else None

    @property
    def reported_at(self) -> datetime | None:
        """The first report made."""
        return min((r.reported_at for r in self.reports), default=None)


class IncidentStep(Base):
    """One of the incident's six tasks (阻断、响应、排查、查杀、备案、回复): owner, log, and what it produced."""

    __tablename__ = "security_incident_steps"
    __table_args__ = (UniqueConstraint("incident_id", "step", name="uq_security_incident_steps_incident_step"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("security_incidents.id", ondelete="CASCADE"), index=True)
    step: Mapped[str] = mapped_column(String(16))
    position: Mapped[int]
    mandatory: Mapped[bool]
    status: Mapped[StepStatus] = mapped_column(enum_column(StepStatus, 16))
    owner: Mapped[str | None] = mapped_column(String(128))
    done_at: Mapped[datetime | None]
    # [{"at", "by", "text"}]: what was done, as it was done.
    log: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # 阻断: the block list entry; 备案: the filing number and where it was filed; 回复: to whom, and what.
    block_id: Mapped[int | None] = mapped_column(ForeignKey("security_blocklist.id", ondelete="SET NULL"))
    filing_number: Mapped[str | None] = mapped_column(String(64))
    filing_recipient: Mapped[str | None] = mapped_column(String(128))
    reply_to: Mapped[str | None] = mapped_column(String(128))
    reply: Mapped[str | None] = mapped_column(Text)


class IncidentReport(Base):
    """A report of the incident to the authority (事件报告): who reported, to whom, when, and what."""

    __tablename__ = "security_incident_reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("security_incidents.id", ondelete="CASCADE"), index=True)
    reporter: Mapped[str] = mapped_column(String(128))
    recipient: Mapped[str] = mapped_column(String(128))
    reported_at: Mapped[datetime]
    content: Mapped[str] = mapped_column(Text)
    recorded_by: Mapped[str] = mapped_column(String(128))
    # Made after the incident's reporting deadline (迟报).
    late: Mapped[bool] = mapped_column(default=False, server_default=false())


class DutyKind(LabelledEnum):
    DRILL = "drill", "护网值守", "red"
    HOLIDAY = "holiday", "节假日值守", "yellow"
    EVENT = "event", "重大活动保障", "magenta"


class DutyPeriod(TimestampMixin, Base):
    """A heightened-duty period (7×24值班): when units report, and whether a quiet period still needs a report."""

    __tablename__ = "security_duty_periods"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[DutyKind] = mapped_column(enum_column(DutyKind, 16))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    # Report times of day in Beijing time ("17:00"), or a report every N hours from the start.
    report_times: Mapped[list[str]] = mapped_column(JSON, default=list)
    every_hours: Mapped[int | None]
    # 零报告: a report is owed every slot, even when nothing happened.
    zero_reports: Mapped[bool] = mapped_column(default=True, server_default=true())
    grace_minutes: Mapped[int] = mapped_column(default=30)
    # Which kinds of unit owe reports (departments and counties by default).
    reporting_kinds: Mapped[list[str]] = mapped_column(JSON)


class DutyShift(Base):
    """A shift of the duty roster: officer, backup, leader, and the handover note to the next."""

    __tablename__ = "security_duty_shifts"

    id: Mapped[int] = mapped_column(primary_key=True)
    period_id: Mapped[int] = mapped_column(ForeignKey("security_duty_periods.id", ondelete="CASCADE"), index=True)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    # The names as shown (the user's display name, else the login); the ids say who they are.
    officer: Mapped[str] = mapped_column(String(64))
    backup: Mapped[str | None] = mapped_column(String(64))
    leader: Mapped[str | None] = mapped_column(String(64))
    officer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    backup_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    leader_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    # A roster written before rosters named users, with a name that matched no duty or security user: kept as it
    # was, shown as unresolved; only the security team checks in for it (migration 0017).
    unresolved: Mapped[bool] = mapped_column(default=False, server_default=false())
    checked_in_at: Mapped[datetime | None]
    handover_note: Mapped[str | None] = mapped_column(Text)


class DutyReport(Base):
    """A unit's report for one slot of a period: a zero-report, or counts of alerts and incidents."""

    __tablename__ = "security_duty_reports"
    __table_args__ = (UniqueConstraint("period_id", "unit_id", "slot_at", name="uq_security_duty_reports_slot"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    period_id: Mapped[int] = mapped_column(ForeignKey("security_duty_periods.id", ondelete="CASCADE"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    slot_at: Mapped[datetime]
    submitted_at: Mapped[datetime]
    submitted_by: Mapped[str] = mapped_column(String(128))
    zero: Mapped[bool]
    alerts: Mapped[int] = mapped_column(default=0)
    incidents: Mapped[int] = mapped_column(default=0)
    note: Mapped[str | None] = mapped_column(String(2000))
    # Filed after its slot's due time and grace (补报).
    late: Mapped[bool] = mapped_column(default=False, server_default=false())

    unit: Mapped[Unit] = relationship(lazy="joined", innerjoin=True)

    @property
    def unit_code(self) -> str:
        return self.unit.code


class DrillPhase(LabelledEnum):
    PREPARE = "prepare", "准备阶段", "white"
    SELF_CHECK = "self_check", "自查阶段", "cyan"
    ON_DUTY = "on_duty", "值守阶段", "red"
    SUMMARY = "summary", "总结阶段", "green"


class ItemStatus(LabelledEnum):
    WAITING = "waiting", "未开始", "white"
    IN_PROGRESS = "in_progress", "进行中", "yellow"
    DONE = "done", "已完成", "green"
    CANCELLED = "cancelled", "已取消", "bright_black"
    # Set aside by the security team, with a reason (audited): counts as settled for the phase to move on.
    WAIVED = "waived", "已豁免", "magenta"


class DrillTemplate(Base):
    """A city's own version of a checklist template (national drill, provincial drill, holiday guard…); the built-in
    ones ship with cloudctl as version 0."""

    __tablename__ = "security_drill_templates"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_security_drill_templates_name_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int]
    title: Mapped[str] = mapped_column(String(128))
    # [{"key", "title", "phase", "mandatory", "days"}], validated as the template's items.
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]


class Drill(TimestampMixin, Base):
    """An attack-defence drill (护网): organiser, period and phase; its units work through the checklist."""

    __tablename__ = "security_drills"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    organiser: Mapped[str] = mapped_column(String(128))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    phase: Mapped[DrillPhase] = mapped_column(enum_column(DrillPhase, 16))
    created_by: Mapped[str] = mapped_column(String(128))
    # The checklist template it was made from: its name and version (0: the built-in one).
    template_name: Mapped[str] = mapped_column(String(64), default="national", server_default="national")
    template_version: Mapped[int] = mapped_column(default=0, server_default="0")


class DrillItem(Base):
    """One checklist item of one unit in a drill."""

    __tablename__ = "security_drill_items"
    __table_args__ = (UniqueConstraint("drill_id", "unit_id", "key", name="uq_security_drill_items_unit_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    drill_id: Mapped[int] = mapped_column(ForeignKey("security_drills.id", ondelete="CASCADE"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    key: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(255))
    phase: Mapped[DrillPhase] = mapped_column(enum_column(DrillPhase, 16))
    position: Mapped[int]
    mandatory: Mapped[bool]
    due_at: Mapped[datetime]
    status: Mapped[ItemStatus] = mapped_column(enum_column(ItemStatus, 16), index=True)
    evidence: Mapped[str | None] = mapped_column(Text)
    # The evidence files (attachment ids, the attachment store's) the item was marked done with: what is verified.
    evidence_files: Mapped[list[int] | None] = mapped_column(JSON)
    updated_by: Mapped[str | None] = mapped_column(String(128))
    done_at: Mapped[datetime | None]
    verifier: Mapped[str | None] = mapped_column(String(128))
    verified_at: Mapped[datetime | None]
    waiver_reason: Mapped[str | None] = mapped_column(String(1000))
    waived_by: Mapped[str | None] = mapped_column(String(128))
    waived_at: Mapped[datetime | None]

    unit: Mapped[Unit] = relationship(lazy="joined", innerjoin=True)

    @property
    def unit_code(self) -> str:
        return self.unit.code
