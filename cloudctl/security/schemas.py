"""Input and output shapes of the security domain."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from cloudctl.core.bounds import Id
from cloudctl.core.schemas import Schema
from cloudctl.core.text import FreeText, NoControl, NoControlMultiline
from cloudctl.security.models import (
    AlertStatus,
    DrillPhase,
    DutyKind,
    IncidentLevel,
    IncidentStatus,
    ItemStatus,
    LevelSource,
    OperatorKind,
    Severity,
    StepStatus,
    TicketStatus,
    Verdict,
)

__all__ = [
    "AlertPublic",
    "AssetLevelIn",
    "AssetPublic",
    "BlockIn",
    "CheckInIn",
    "DrillItemPublic",
    "DrillPublic",
    "DutyPeriodPublic",
    "DutyReportPublic",
    "DutyShiftPublic",
    "ExtensionIn",
    "FindingPublic",
    "IncidentPublic",
    "IncidentReportPublic",
    "IncidentStepPublic",
    "ReasonIn",
    "ReportItem",
    "RiskAcceptanceIn",
    "StepIn",
    "TicketPublic",
    "TriageStepPublic",
    "VerdictIn",
]


# Why a finding, an asset or a ticket is treated so: kept in the audit log, and may run over several lines.
Reason = Annotated[str, StringConstraints(min_length=4, max_length=1000), NoControlMultiline]


class AssetPublic(Schema):
    id: int
    # ip: an address; host: a host name a scanner gave without an address; web: a web application (its URL).
    kind: Literal["ip", "host", "web"]
    ip: str | None
    hostname: str | None
    url: str | None
    target: str = Field(description="the address, else the host name")
    unit_code: str | None
    # The cloud server holding the address, and its business system (null: no cloud claims the address).
    server_id: int | None
    server_name: str | None
    business_system_id: int | None
    business_system: str | None = Field(validation_alias="business_system_name")
    mlps_level: int | None
    # system: the business system's level; manual: set by the security team, kept by later links.
    mlps_level_source: LevelSource | None
    internet_exposed: bool
    baseline_checks: int | None
    baseline_passed: int | None
    baseline_checked_at: datetime | None
    created_at: datetime
    updated_at: datetime


class AssetLevelIn(Schema):
    """Set an asset's MLPS level by hand; null hands it back to its business system's level."""

    mlps_level: int | None = Field(ge=1, le=4)
    reason: Reason


class FindingPublic(Schema):
    id: int
    scope: str
    fingerprint: str
    scanner: str
    plugin_id: str
    title: str
    severity: Severity
    ip: str | None = Field(description="the asset's address; null for a host a scanner named without one")
    target: str = Field(description="the address, else the host name")
    port: int | None
    protocol: str | None
    service: str | None
    unit_code: str | None
    business_system_id: int | None
    mlps_level: int | None
    cve: list[str]
    cvss: float | None
    # What the scanner says the weakness is and how to fix it: what the department acts on.
    description: str
    solution: str
    active: bool
    verified: bool
    false_positive: bool
    # As recorded: an acceptance whose risk_accepted_until has passed counts as none.
    risk_accepted: bool
    risk_accepted_by: str | None
    risk_accepted_until: date | None
    out_of_scope: bool
    first_seen: datetime
    last_seen: datetime
    mitigated_at: datetime | None
    sla_deadline: date | None
    ticket_id: int | None


class DrillPublic(Schema):
    id: int
    name: str
    organiser: str
    starts_at: datetime
    ends_at: datetime
    phase: DrillPhase
    template_name: str
    template_version: int


class DrillItemPublic(Schema):
    id: int
    unit_code: str
    key: str
    title: str
    phase: DrillPhase
    mandatory: bool
    due_at: datetime
    status: ItemStatus
    evidence: str | None
    evidence_files: list[int] | None = Field(description="the attachment ids it was done with, verified with it")
    verifier: str | None
    verified_at: datetime | None
    waiver_reason: str | None
    waived_by: str | None
    waived_at: datetime | None


class TicketPublic(Schema):
    id: int
    unit_code: str
    scope: str
    title: str
    assignee: str | None
    deadline: date
    status: TicketStatus
    # Every extension of the deadline: {"from", "to", "by", "reason", "at"}.
    extensions: list[dict[str, Any]]
    # The department's last progress report: in_progress or fixed (please verify); the re-scan decides.
    progress: str | None
    closed_at: datetime | None
    closed_by_import_id: int | None


class ReasonIn(Schema):
    """Why (a false positive marked, an acceptance revoked): kept in the audit log."""

    reason: Reason


class RiskAcceptanceIn(Schema):
    reason: Reason
    until: date


class ExtensionIn(Schema):
    to: date
    reason: Reason


class TriageStepPublic(Schema):
    step: str
    position: int
    mandatory: bool
    status: StepStatus
    actor: str | None
    done_at: datetime | None
    evidence: str | None


class AlertPublic(Schema):
    id: int
    source: str
    source_ref: str
    title: str
    severity: Severity
    src_ip: str | None
    dst_ip: str | None
    unit_code: str | None
    received_at: datetime
    last_received_at: datetime
    repeats: int
    status: AlertStatus
    verdict: Verdict | None
    verdict_by: str | None
    verdict_at: datetime | None
    triage_seconds: float | None
    closed_at: datetime | None
    steps: list[TriageStepPublic]
    incident_id: int | None


class IncidentStepPublic(Schema):
    step: str
    label: str
    position: int
    mandatory: bool
    status: StepStatus
    owner: str | None
    done_at: datetime | None
    seconds: float | None = Field(description="from the incident to the step's end")
    log: list[dict[str, Any]]
    block_id: int | None
    filing_number: str | None
    filing_recipient: str | None
    reply_to: str | None
    reply: str | None


class IncidentReportPublic(Schema):
    id: int
    reporter: str
    recipient: str
    reported_at: datetime
    content: str
    recorded_by: str
    late: bool


class IncidentPublic(Schema):
    id: int
    title: str
    level: IncidentLevel
    level_label: str
    operator_kind: OperatorKind
    unit_code: str | None
    source_ip: str | None
    status: IncidentStatus
    opened_at: datetime
    opened_by: str
    report_due_at: datetime | None
    reported_at: datetime | None = Field(description="the first report made")
    report_overdue: bool = Field(description="the deadline passed with no report made by it")
    closed_at: datetime | None
    alert_ids: list[int]
    evidence_files: list[int] = Field(description="files in the attachment store (entity security_incident)")
    steps: list[IncidentStepPublic]
    reports: list[IncidentReportPublic]


class VerdictIn(Schema):
    verdict: Verdict
    note: Annotated[str, StringConstraints(max_length=1000), NoControlMultiline] | None = None


class StepIn(Schema):
    status: Literal["done", "skipped"]
    evidence: FreeText | None = None
    block: list[Annotated[str, StringConstraints(min_length=2, max_length=49), NoControl]] = Field(
        default_factory=list, max_length=32,
        description="阻断 done: the addresses or networks blocked, put on the block list with the evidence as reason")
    override: bool = Field(default=False, description="an administrator blocks inside the city's own space")


class BlockIn(Schema):
    ip: Annotated[str, StringConstraints(min_length=2, max_length=49), NoControl]
    reason: Annotated[str, StringConstraints(min_length=2, max_length=500), NoControlMultiline]
    expires_at: datetime | None = None
    alert_id: Id | None = None
    override: bool = Field(default=False, description="an administrator's explicit block of an address inside the "
                                                      "city's extranet plan or a cloud's address space")


class DutyPeriodPublic(Schema):
    id: int
    name: str
    kind: DutyKind
    starts_at: datetime
    ends_at: datetime
    report_times: list[str]
    every_hours: int | None
    zero_reports: bool
    grace_minutes: int
    reporting_kinds: list[str]


class DutyShiftPublic(Schema):
    id: int
    period_id: int
    starts_at: datetime
    ends_at: datetime
    officer: str
    backup: str | None
    leader: str | None
    # The users the roster names; None with ``unresolved`` for a name from before rosters named users.
    officer_id: int | None
    backup_id: int | None
    leader_id: int | None
    unresolved: bool
    checked_in_at: datetime | None
    handover_note: str | None


class CheckInIn(Schema):
    """The body of a check-in (签到), optional: what the next shift must know (交接班)."""

    handover_note: FreeText | None = None


class DutyReportPublic(Schema):
    id: int
    period_id: int
    unit_code: str
    slot_at: datetime
    submitted_at: datetime
    submitted_by: str
    zero: bool
    alerts: int
    incidents: int
    note: str | None
    # Filed after its slot's due time and grace (补报).
    late: bool


class ReportItem(BaseModel):
    """One finding of a scanner file, checked against the columns it is stored in before anything is written,
    so that SQLite and PostgreSQL refuse the same files (PostgreSQL alone enforces a VARCHAR's length)."""

    model_config = ConfigDict(extra="forbid")

    plugin_id: Annotated[str, StringConstraints(max_length=128), NoControl]
    title: Annotated[str, StringConstraints(max_length=500), NoControl]
    port: int | None = Field(ge=0, le=65535)
    protocol: Literal["tcp", "udp"] | None
    service: Annotated[str, StringConstraints(max_length=64), NoControl] | None
    hostname: Annotated[str, StringConstraints(max_length=255), NoControl] | None
    cve: list[Annotated[str, StringConstraints(max_length=32)]] = Field(max_length=10_000)
    cvss: float | None = Field(ge=0, le=10, allow_inf_nan=False)

