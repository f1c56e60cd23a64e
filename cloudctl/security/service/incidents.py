"""Incidents (网络安全事件): an alert judged an attack opens one, or joins one already open; the incident has a level
on the national four-level scale and, for 较大 and above, a reporting deadline set by the operator's kind under the
《国家网络安全事件报告管理办法》 (in force since 2025-11-01): critical information infrastructure operators within
1 hour, central and state organs within 2 hours, other operators within 4 hours (configuration, with these
defaults). Reports are records: who reported, to whom, when, what; a report after the deadline is late.

The six response steps 阻断 → 响应 → 排查 → 查杀 → 备案 → 回复 are the incident's tasks, in order, each with its
owner, its log and its time; 阻断 puts the attacking source on the block list through the block list's own guard,
with an expiry; 备案 records the filing number and recipient; 回复 the reply to whoever reported it. The incident is
handled once every required step is done.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints, field_validator
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from cloudctl.core import attachments, audit, read
from cloudctl.core.auth import Principal, authorize
from cloudctl.core.config import get_settings
from cloudctl.core.errors import Conflict, InvalidInput
from cloudctl.core.models import utcnow
from cloudctl.core.text import NoControl, NoControlMultiline
from cloudctl.notify.service import emit
from cloudctl.security.models import (
    Alert,
    Incident,
    IncidentLevel,
    IncidentReport,
    IncidentStatus,
    IncidentStep,
    OperatorKind,
    StepStatus,
    Verdict,
)
from cloudctl.security.schemas import IncidentPublic, IncidentReportPublic, IncidentStepPublic
from cloudctl.security.service import alerts

__all__ = ["REPORTED_LEVELS", "IncidentOpen", "ReportIn", "StepUpdate", "file_report", "get_incident",
           "list_incidents", "open_incident", "public", "report_due", "step_seconds", "update_step"]

ENTITY = "security_incident"
# The levels that owe a report within hours (较大 and above).
REPORTED_LEVELS = (IncidentLevel.EXTRAORDINARY, IncidentLevel.MAJOR, IncidentLevel.LARGE)
STEP_LABELS = {key: label for key, label, _ in alerts.STEPS}
_Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=128), NoControl]


def _zoned(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError("give times with their zone (…+08:00)")
    return value


class IncidentOpen(BaseModel):
    level: IncidentLevel | None = Field(default=None, description="特别重大/重大/较大/一般; not when joining")
    operator_kind: OperatorKind = Field(default=OperatorKind.OTHER,
                                        description="cii (关键信息基础设施), state_organ (中央和国家机关), other")
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=500),
                     NoControl] | None = Field(default=None, description="default: the alert's title")
    join: int | None = Field(default=None, ge=1, le=2**31 - 1, description="an open incident this attack belongs to")


class ReportIn(BaseModel):
    recipient: _Name = Field(description="to whom: e.g. 省委网信办")
    content: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=10_000),
                       NoControlMultiline]
    reporter: _Name | None = Field(default=None, description="who reported (default: whoever records it)")
    reported_at: datetime | None = Field(default=None, description="when it was reported (default: now)")

    _at = field_validator("reported_at")(_zoned)


class StepUpdate(BaseModel):
    status: StepStatus | None = Field(default=None, description="done or skipped (查杀 only); none: a log entry")
    note: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000), NoControlMultiline] | None = None
    owner: _Name | None = None
    block_ip: Annotated[str, StringConstraints(min_length=2, max_length=49), NoControl] | None = Field(
        default=None, description="阻断: the source to block (default: the incident's source address)")
    block_expires_at: datetime | None = Field(default=None, description="阻断: when the block lapses")
    override: bool = Field(default=False, description="阻断: an administrator blocks inside the city's own space")
    filing_number: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
                             NoControl] | None = Field(default=None, description="备案: the filing number")
    filing_recipient: _Name | None = Field(default=None, description="备案: where it was filed")
    reply_to: _Name | None = Field(default=None, description="回复: whoever reported the incident")
    reply: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=10_000),
                     NoControlMultiline] | None = Field(default=None, description="回复: what was replied")

    _at = field_validator("block_expires_at")(_zoned)


def report_due(level: IncidentLevel, kind: OperatorKind, opened_at: datetime) -> datetime | None:
    """The reporting deadline: hours after the incident by the operator's kind, for 较大 and above."""
    if level not in REPORTED_LEVELS:
        return None
    settings = get_settings()
    hours = {OperatorKind.CII: settings.incident_report_hours_cii,
             OperatorKind.STATE_ORGAN: settings.incident_report_hours_state_organ,
             OperatorKind.OTHER: settings.incident_report_hours_other}[kind]
    return opened_at + timedelta(hours=hours)


def _query(principal: Principal) -> Select[Incident]:
    return read.within(select(Incident), principal, unit=Incident.unit_id)


def get_incident(session: Session, principal: Principal, incident_id: int) -> Incident:
    """An incident; a department sees those on its own (subtree's) assets only."""
    authorize(principal, "security.incident:read")
    return read.one(session, _query(principal).where(Incident.id == incident_id),
                    missing=f"no incident with id {incident_id}", field="incident")


def list_incidents(session: Session, principal: Principal, *, status: IncidentStatus | None = None,
                   level: IncidentLevel | None = None, since: datetime | None = None, until: datetime | None = None,
                   limit: int = 50, offset: int = 0) -> tuple[list[Incident], int]:
    authorize(principal, "security.incident:read")
    query = _query(principal)
    if status is not None:
        query = query.where(Incident.status == status)
    if level is not None:
        query = query.where(Incident.level == level)
    if since is not None:
        query = query.where(Incident.opened_at >= since)
    if until is not None:
        query = query.where(Incident.opened_at <= until)
    return read.page(session, query, limit=limit, offset=offset, order_by=(Incident.id.desc(),))


def _fetch(session: Session, principal: Principal, incident_id: int) -> int | None:
    """The incident (in the principal's scope) evidence files are attached to: its unit."""
    return get_incident(session, principal, incident_id).unit_id


# Evidence of the response (screenshots, logs, the filing receipt) goes to the attachment store.
attachments.register_record(ENTITY, _fetch, write="security.incident:write")


def evidence_files(session: Session, incident: Incident) -> list[int]:
    return list(session.scalars(select(attachments.Attachment.id).where(
        attachments.Attachment.entity == ENTITY, attachments.Attachment.entity_id == str(incident.id))
        .order_by(attachments.Attachment.id)))


def alert_ids(session: Session, incident: Incident) -> list[int]:
    return list(session.scalars(select(Alert.id).where(Alert.incident_id == incident.id).order_by(Alert.id)))


def open_incident(session: Session, principal: Principal, alert_id: int, data: IncidentOpen) -> Incident:
    """An alert judged an attack opens an incident (level required) or joins an open one (``join``)."""
    authorize(principal, "security.incident:write")
    alert = alerts.get_alert(session, principal, alert_id)
    if alert.verdict is not Verdict.ATTACK:
        raise Conflict("only an alert judged an attack opens or joins an incident", field="verdict")
    if alert.incident_id is not None:
        raise Conflict(f"alert {alert.id} belongs to incident {alert.incident_id}", field="alert")
    now = utcnow()
    if data.join is not None:
        if data.level is not None:
            raise InvalidInput("the incident joined keeps its level", field="level")
        incident = get_incident(session, principal, data.join)
        if incident.status is IncidentStatus.CLOSED:
            raise Conflict(f"incident {incident.id} is closed", field="join")
        alert.incident_id = incident.id
        session.flush()
        audit.record(session, principal, action="join", entity="security_incident", entity_id=incident.id,
                     after={"alert": alert.id}, unit_id=incident.unit_id)
        return incident
    if data.level is None:
        raise InvalidInput("give the incident's level (extraordinary, major, large, general)", field="level")
    incident = Incident(title=data.title or alert.title, level=data.level, operator_kind=data.operator_kind,
                        unit_id=alert.unit_id, source_ip=alert.src_ip, status=IncidentStatus.OPEN, opened_at=now,
                        opened_by=principal.actor,
                        report_due_at=report_due(data.level, data.operator_kind, now))
    for position, (key, _, mandatory) in enumerate(alerts.STEPS):
        incident.steps.append(IncidentStep(step=key, position=position, mandatory=mandatory,
                                           status=StepStatus.PENDING, log=[]))
    session.add(incident)
    session.flush()
    alert.incident_id = incident.id
    session.flush()
    audit.record(session, principal, action="open", entity="security_incident", entity_id=incident.id,
                 after={"alert": alert.id, "level": incident.level.value, "operator_kind": incident.operator_kind.value,
                        "report_due_at": incident.report_due_at}, unit_id=incident.unit_id)
    if incident.report_due_at is not None:
        # The deadline is hours away: the duty officer and the security team hear it at once, day or night.
        emit(session, "security.incident.report_due", unit_id=incident.unit_id, entity="security_incident",
             entity_id=incident.id, deadline=incident.report_due_at, link=f"/api/v1/security/incidents/{incident.id}",
             data={"incident": incident.id, "title": incident.title, "level": incident.level.label,
                   "operator_kind": incident.operator_kind.label})
    return incident


def file_report(session: Session, principal: Principal, incident_id: int, data: ReportIn) -> IncidentReport:
    """Record a report made to the authority: late when made after the reporting deadline."""
    authorize(principal, "security.incident:write")
    incident = get_incident(session, principal, incident_id)
    now = utcnow()
    at = data.reported_at or now
    if at > now + timedelta(minutes=5):
        raise InvalidInput("a report is recorded once it is made, not before", field="reported_at")
    if at < incident.opened_at - timedelta(days=1):
        raise InvalidInput("the report is dated before the incident", field="reported_at")
    report = IncidentReport(incident_id=incident.id, reporter=data.reporter or principal.actor,
                            recipient=data.recipient, reported_at=at, content=data.content,
                            recorded_by=principal.actor,
                            late=incident.report_due_at is not None and at > incident.report_due_at)
    incident.reports.append(report)
    session.flush()
    audit.record(session, principal, action="report", entity="security_incident", entity_id=incident.id,
                 after={"report": report.id, "recipient": report.recipient, "reported_at": at, "late": report.late},
                 unit_id=incident.unit_id)
    return report


def update_step(session: Session, principal: Principal, incident_id: int, step: str, data: StepUpdate) -> Incident:
    """Log on a step, give it an owner, or finish it: in order, 查杀 alone may be skipped; 阻断 blocks the source
    through the block list's guard, with an expiry; 备案 needs the filing number and recipient; 回复 the reply."""
    authorize(principal, "security.incident:write")
    incident = get_incident(session, principal, incident_id)
    if incident.status is IncidentStatus.CLOSED:
        raise Conflict(f"incident {incident.id} is closed", field="status")
    found = next((s for s in incident.steps if s.step == step), None)
    if found is None:
        raise InvalidInput(f"one of {', '.join(k for k, _, _ in alerts.STEPS)}", field="step")
    if found.status is not StepStatus.PENDING:
        raise Conflict(f"{step} ({STEP_LABELS[step]}) is {found.status.value}", field="step")
    now = utcnow()
    entry: dict[str, Any] = {"at": now.isoformat(), "by": principal.actor}
    if data.owner is not None:
        found.owner = entry["owner"] = data.owner
    if data.note:
        entry["text"] = data.note
    if data.status is StepStatus.PENDING:
        raise InvalidInput("done or skipped", field="status")
    if data.status is not None:
        earlier = [s for s in incident.steps if s.position < found.position and s.status is StepStatus.PENDING]
        if earlier:
            raise Conflict(f"{earlier[0].step} ({STEP_LABELS[earlier[0].step]}) comes first", field="step")
        if data.status is StepStatus.SKIPPED and found.mandatory:
            raise Conflict(f"{step} ({STEP_LABELS[step]}) cannot be skipped", field="status")
        if data.status is StepStatus.DONE:
            _finish(session, principal, incident, found, data, now)
        found.status, found.done_at = data.status, now
        found.owner = found.owner or principal.actor
        entry["status"] = data.status.value
    elif not data.note and data.owner is None:
        raise InvalidInput("give a status, a note or an owner", field="status")
    found.log = [*found.log, entry]
    if all(s.status is not StepStatus.PENDING for s in incident.steps):
        incident.status, incident.closed_at = IncidentStatus.CLOSED, now
    session.flush()
    audit.record(session, principal, action=f"step-{step}", entity="security_incident", entity_id=incident.id,
                 after={k: v for k, v in entry.items() if k != "at"}, unit_id=incident.unit_id)
    return incident


def _finish(session: Session, principal: Principal, incident: Incident, step: IncidentStep, data: StepUpdate,
            now: datetime) -> None:
    if step.step == "block":
        address = data.block_ip or incident.source_ip
        if address is None:
            raise InvalidInput("name the source to block: the incident has no source address", field="block_ip")
        expires = data.block_expires_at or now + timedelta(days=get_settings().incident_block_days)
        first_alert = session.scalar(select(Alert.id).where(Alert.incident_id == incident.id).order_by(Alert.id))
        reason = f"事件 #{incident.id} 阻断：{data.note or incident.title}"[:500]
        row = alerts.block(session, principal, address, reason=reason, expires_at=expires, alert_id=first_alert,
                           override=data.override)
        step.block_id = row.id
    elif step.step == "record":
        if not (data.filing_number and data.filing_recipient):
            raise InvalidInput("备案 records the filing number and where it was filed",
                               field="filing_number" if not data.filing_number else "filing_recipient")
        step.filing_number, step.filing_recipient = data.filing_number, data.filing_recipient
    elif step.step == "reply":
        if not (data.reply and data.reply_to):
            raise InvalidInput("回复 records the reply and to whom", field="reply" if not data.reply else "reply_to")
        step.reply_to, step.reply = data.reply_to, data.reply
    elif not data.note:
        raise InvalidInput("record what was done", field="note")


def step_seconds(incident: Incident) -> dict[str, float | None]:
    """Time from the incident to each step's end, in seconds (None while pending)."""
    return {s.step: (s.done_at - incident.opened_at).total_seconds() if s.done_at is not None else None
            for s in incident.steps}


def public(session: Session, incident: Incident, *, now: datetime | None = None) -> IncidentPublic:
    """The incident as shown: its alerts, its steps with their times, its reports, whether the report is overdue."""
    now = now or utcnow()
    seconds = step_seconds(incident)
    due, first = incident.report_due_at, incident.reported_at
    overdue = due is not None and ((first is None and now > due) or (first is not None and first > due))
    steps = [IncidentStepPublic(step=s.step, label=STEP_LABELS[s.step], position=s.position, mandatory=s.mandatory,
                                status=s.status, owner=s.owner, done_at=s.done_at, seconds=seconds[s.step],
                                log=list(s.log), block_id=s.block_id, filing_number=s.filing_number,
                                filing_recipient=s.filing_recipient, reply_to=s.reply_to, reply=s.reply)
             for s in incident.steps]
    return IncidentPublic(id=incident.id, title=incident.title, level=incident.level,
                          level_label=incident.level.label, operator_kind=incident.operator_kind,
                          unit_code=incident.unit_code, source_ip=incident.source_ip, status=incident.status,
                          opened_at=incident.opened_at, opened_by=incident.opened_by, report_due_at=due,
                          reported_at=first, report_overdue=overdue, closed_at=incident.closed_at,
                          alert_ids=alert_ids(session, incident), evidence_files=evidence_files(session, incident),
                          steps=steps,
                          reports=[IncidentReportPublic.model_validate(r) for r in incident.reports])
