"""Security findings and tickets over HTTP (thin: parse, call the service, return a schema)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, status
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field

from api.deps import PrincipalDep, SessionDep, UnitFilter, bounded_read
from api.routing import DomainRouter
from cloudctl.core.bounds import Id, Offset
from cloudctl.core.models import utcnow
from cloudctl.core.schemas import (
    ExtensionDecisionIn,
    ExtensionRequestIn,
    Page,
    ProgressIn,
    RectificationUpdatePublic,
)
from cloudctl.core.text import FreeText, NoControlMultiline
from cloudctl.security.models import (
    AlertStatus,
    DrillPhase,
    IncidentLevel,
    IncidentStatus,
    ItemStatus,
    Severity,
    StepStatus,
    TicketStatus,
    Verdict,
)
from cloudctl.security.schemas import (
    AlertPublic,
    AssetLevelIn,
    AssetPublic,
    BlockIn,
    CheckInIn,
    DrillItemPublic,
    DrillPublic,
    DutyPeriodPublic,
    DutyReportPublic,
    DutyShiftPublic,
    ExtensionIn,
    FindingPublic,
    IncidentPublic,
    ReasonIn,
    RiskAcceptanceIn,
    StepIn,
    TicketPublic,
    VerdictIn,
)
from cloudctl.security.service import alerts, assets, drill_summary, drills, duty, incidents, rectification
from cloudctl.security.service import findings as service

router = DomainRouter(prefix="/api/v1/security", tags=["security"])
# Why a flag is taken back (DELETE carries no body): kept in the audit log as a body's reason would be.
QueryReason = Annotated[str, Query(min_length=4, max_length=1000), NoControlMultiline]


@router.get("/assets")
@bounded_read
def list_assets(session: SessionDep, principal: PrincipalDep, unit: UnitFilter = None,
                business_system: Annotated[Id | None, Query(description="business system id")] = None,
                mlps_level: Annotated[int | None, Query(ge=1, le=4)] = None,
                linked: Annotated[bool | None, Query(description="on a cloud server (true) or not (false)")] = None,
                ip: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 50,
                offset: Offset = 0) -> Page[AssetPublic]:
    """Scanned addresses with their unit, cloud server, business system and MLPS level; a department sees its own."""
    rows, total = assets.list_assets(session, principal, unit=unit, business_system=business_system,
                                     mlps_level=mlps_level, linked=linked, ip=ip, limit=limit, offset=offset)
    return Page[AssetPublic].of(rows, total=total, limit=limit, offset=offset)


@router.get("/assets/{asset_id}")
@bounded_read
def read_asset(asset_id: Id, session: SessionDep, principal: PrincipalDep) -> AssetPublic:
    return AssetPublic.model_validate(assets.get_asset(session, principal, asset_id))


@router.put("/assets/{asset_id}/mlps-level")
def set_mlps_level(asset_id: Id, body: AssetLevelIn, session: SessionDep, principal: PrincipalDep) -> AssetPublic:
    """Set the MLPS level by hand (later links keep it), or null to follow the business system again."""
    return AssetPublic.model_validate(assets.set_mlps_level(session, principal, asset_id, body.mlps_level,
                                                            body.reason))


@router.get("/findings")
@bounded_read
def list_findings(session: SessionDep, principal: PrincipalDep, scope: str | None = None, unit: UnitFilter = None,
                  severity: Severity | None = None, active: bool | None = True, overdue: bool = False,
                  business_system: Annotated[Id | None, Query(description="business system id")] = None,
                  mlps_level: Annotated[int | None, Query(ge=1, le=4)] = None,
                  ticket: Annotated[Id | None, Query(description="the findings of one rectification ticket")] = None,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 50,
                  offset: Offset = 0) -> Page[FindingPublic]:
    """Findings with the scanner's description and solution; a department sees its own."""
    rows, total = service.list_findings(session, principal, scope=scope, unit=unit, severity=severity, active=active,
                                        overdue=overdue, business_system=business_system, mlps_level=mlps_level,
                                        ticket=ticket, limit=limit, offset=offset)
    return Page[FindingPublic].of(rows, total=total, limit=limit, offset=offset)


@router.get("/findings/{finding_id}")
@bounded_read
def read_finding(finding_id: Id, session: SessionDep, principal: PrincipalDep) -> FindingPublic:
    return FindingPublic.model_validate(service.get_finding(session, principal, finding_id))


@router.get("/tickets")
@bounded_read
def list_tickets(session: SessionDep, principal: PrincipalDep, status: TicketStatus | None = None,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 50,
                 offset: Offset = 0) -> Page[TicketPublic]:
    rows, total = service.list_tickets(session, principal, status=status, limit=limit, offset=offset)
    return Page[TicketPublic].of(rows, total=total, limit=limit, offset=offset)


# Triage is the security team's: a department reads its findings but does not judge them.


@router.post("/findings/{finding_id}/false-positive")
def mark_false_positive(finding_id: Id, body: ReasonIn, session: SessionDep,
                        principal: PrincipalDep) -> FindingPublic:
    """误报: out of the live findings, and kept out by later scans that still report it."""
    return FindingPublic.model_validate(service.mark_false_positive(session, principal, finding_id, body.reason))


@router.delete("/findings/{finding_id}/false-positive")
def unmark_false_positive(finding_id: Id, session: SessionDep, principal: PrincipalDep,
                          reason: QueryReason) -> FindingPublic:
    return FindingPublic.model_validate(service.unmark_false_positive(session, principal, finding_id, reason))


@router.post("/findings/{finding_id}/verified")
def verify_finding(finding_id: Id, body: ReasonIn, session: SessionDep, principal: PrincipalDep) -> FindingPublic:
    """已验证: a person confirmed the finding is real (counts do not change)."""
    return FindingPublic.model_validate(service.set_verified(session, principal, finding_id, body.reason))


@router.delete("/findings/{finding_id}/verified")
def unverify_finding(finding_id: Id, session: SessionDep, principal: PrincipalDep,
                     reason: QueryReason) -> FindingPublic:
    return FindingPublic.model_validate(service.set_verified(session, principal, finding_id, reason, verified=False))


@router.post("/findings/{finding_id}/out-of-scope")
def set_out_of_scope(finding_id: Id, body: ReasonIn, session: SessionDep, principal: PrincipalDep) -> FindingPublic:
    """不在范围: not the bureau's to fix; out of the SLA, the tickets and the counts, still followed by the scans."""
    return FindingPublic.model_validate(service.set_out_of_scope(session, principal, finding_id, body.reason))


@router.delete("/findings/{finding_id}/out-of-scope")
def unset_out_of_scope(finding_id: Id, session: SessionDep, principal: PrincipalDep,
                       reason: QueryReason) -> FindingPublic:
    return FindingPublic.model_validate(service.set_out_of_scope(session, principal, finding_id, reason,
                                                                 out_of_scope=False))


@router.post("/findings/{finding_id}/risk-acceptance")
def accept_risk(finding_id: Id, body: RiskAcceptanceIn, session: SessionDep, principal: PrincipalDep) -> FindingPublic:
    """Accept the risk until a date: at most 365 days away, 90 for a critical finding."""
    return FindingPublic.model_validate(service.accept_risk(session, principal, finding_id, body.reason, body.until))


@router.delete("/findings/{finding_id}/risk-acceptance")
def revoke_risk(finding_id: Id, session: SessionDep, principal: PrincipalDep,
                reason: QueryReason) -> FindingPublic:
    return FindingPublic.model_validate(service.revoke_risk(session, principal, finding_id, reason))


@router.get("/tickets/{ticket_id}")
@bounded_read
def read_ticket(ticket_id: Id, session: SessionDep, principal: PrincipalDep) -> TicketPublic:
    return TicketPublic.model_validate(service.get_ticket(session, principal, ticket_id))


@router.get("/tickets/{ticket_id}/updates")
def ticket_updates(ticket_id: Id, session: SessionDep, principal: PrincipalDep) -> list[RectificationUpdatePublic]:
    """The department's progress reports and extension requests, with the security team's decisions."""
    return [RectificationUpdatePublic.model_validate(u)
            for u in rectification.ticket_updates(session, principal, ticket_id)]


@router.post("/tickets/{ticket_id}/progress", status_code=status.HTTP_201_CREATED)
def report_progress(ticket_id: Id, body: ProgressIn, session: SessionDep,
                    principal: PrincipalDep) -> RectificationUpdatePublic:
    """整改进展 with evidence (attached first): in_progress, or fixed (please verify). A re-scan closes the ticket."""
    return RectificationUpdatePublic.model_validate(rectification.report_progress(
        session, principal, ticket_id, status=body.status, note=body.note, evidence=body.attachments))


@router.post("/tickets/{ticket_id}/extension-requests", status_code=status.HTTP_201_CREATED)
def request_extension(ticket_id: Id, body: ExtensionRequestIn, session: SessionDep,
                      principal: PrincipalDep) -> RectificationUpdatePublic:
    """The department asks for a later deadline; the security team grants or refuses it."""
    return RectificationUpdatePublic.model_validate(rectification.request_extension(
        session, principal, ticket_id, to=body.to, reason=body.reason))


@router.post("/tickets/{ticket_id}/extension-requests/{extension_id}/decision")
def decide_extension(ticket_id: Id, extension_id: Id, body: ExtensionDecisionIn, session: SessionDep,
                     principal: PrincipalDep) -> RectificationUpdatePublic:
    return RectificationUpdatePublic.model_validate(rectification.decide_extension(
        session, principal, ticket_id, extension_id, grant=body.grant, note=body.note))


@router.post("/tickets/{ticket_id}/extensions")
def extend_ticket(ticket_id: Id, body: ExtensionIn, session: SessionDep, principal: PrincipalDep) -> TicketPublic:
    """Move an open ticket's deadline later, at most 90 days per extension; each one is kept on the ticket."""
    return TicketPublic.model_validate(service.extend_ticket(session, principal, ticket_id, body.to, body.reason))


# ---------------------------------------------------------------- alerts and triage


@router.post("/alerts", status_code=status.HTTP_202_ACCEPTED)
def receive_alerts(payload: dict[str, Any] | list[dict[str, Any]], session: SessionDep,
                   principal: PrincipalDep) -> list[AlertPublic]:
    """The generic form ``{"source", "source_ref", "title", "severity", "src_ip", "dst_ip"}`` (or a list of them),
    or an Alertmanager webhook (``{"version": "4", "alerts": [...]}``)."""
    return [AlertPublic.model_validate(a) for a in alerts.receive(session, principal, payload)]


@router.get("/alerts")
@bounded_read
def list_alerts(session: SessionDep, principal: PrincipalDep, status_: Annotated[AlertStatus | None,
                Query(alias="status")] = None, verdict: Verdict | None = None,
                limit: Annotated[int, Query(ge=1, le=1000)] = 50,
                offset: Offset = 0) -> Page[AlertPublic]:
    rows, total = alerts.list_alerts(session, principal, status=status_, verdict=verdict, limit=limit, offset=offset)
    return Page[AlertPublic].of(rows, total=total, limit=limit, offset=offset)


@router.get("/alerts/{alert_id}")
@bounded_read
def read_alert(alert_id: Id, session: SessionDep, principal: PrincipalDep) -> AlertPublic:
    return AlertPublic.model_validate(alerts.get_alert(session, principal, alert_id))


@router.post("/alerts/{alert_id}/verdict")
def set_verdict(alert_id: Id, body: VerdictIn, session: SessionDep, principal: PrincipalDep) -> AlertPublic:
    return AlertPublic.model_validate(alerts.set_verdict(session, principal, alert_id, body.verdict, body.note))


@router.post("/alerts/{alert_id}/steps/{step}")
def update_step(alert_id: Id, step: str, body: StepIn, session: SessionDep, principal: PrincipalDep) -> AlertPublic:
    return AlertPublic.model_validate(alerts.update_step(session, principal, alert_id, step,
                                                         status=StepStatus(body.status), evidence=body.evidence,
                                                         block_addresses=body.block, override=body.override))


@router.post("/alerts/{alert_id}/close")
def close_alert(alert_id: Id, session: SessionDep, principal: PrincipalDep) -> AlertPublic:
    return AlertPublic.model_validate(alerts.close_alert(session, principal, alert_id))


# ---------------------------------------------------------------- incidents


@router.post("/alerts/{alert_id}/incident", status_code=status.HTTP_201_CREATED)
def open_incident(alert_id: Id, body: incidents.IncidentOpen, session: SessionDep,
                  principal: PrincipalDep) -> IncidentPublic:
    """An alert judged an attack opens an incident (with its level and reporting deadline) or joins an open one."""
    return incidents.public(session, incidents.open_incident(session, principal, alert_id, body))


@router.get("/incidents")
@bounded_read
def list_incidents(session: SessionDep, principal: PrincipalDep,
                   status_: Annotated[IncidentStatus | None, Query(alias="status")] = None,
                   level: IncidentLevel | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 50,
                   offset: Offset = 0) -> Page[IncidentPublic]:
    """Incidents, newest first; a department sees those on its own assets."""
    rows, total = incidents.list_incidents(session, principal, status=status_, level=level, limit=limit,
                                           offset=offset)
    return Page[IncidentPublic](items=[incidents.public(session, i) for i in rows], total=total, limit=limit,
                                offset=offset)


@router.get("/incidents/{incident_id}")
@bounded_read
def read_incident(incident_id: Id, session: SessionDep, principal: PrincipalDep) -> IncidentPublic:
    return incidents.public(session, incidents.get_incident(session, principal, incident_id))


@router.post("/incidents/{incident_id}/reports", status_code=status.HTTP_201_CREATED)
def report_incident(incident_id: Id, body: incidents.ReportIn, session: SessionDep,
                    principal: PrincipalDep) -> IncidentPublic:
    """Record the report made to the authority (who, to whom, when, what); late after the deadline."""
    incidents.file_report(session, principal, incident_id, body)
    return incidents.public(session, incidents.get_incident(session, principal, incident_id))


@router.post("/incidents/{incident_id}/steps/{step}")
def update_incident_step(incident_id: Id, step: str, body: incidents.StepUpdate, session: SessionDep,
                         principal: PrincipalDep) -> IncidentPublic:
    """Log on a step, give it an owner, or finish it (阻断 blocks the source; 备案 the filing; 回复 the reply)."""
    return incidents.public(session, incidents.update_step(session, principal, incident_id, step, body))


@router.post("/blocklist", status_code=status.HTTP_201_CREATED)
def block(body: BlockIn, session: SessionDep, principal: PrincipalDep) -> dict[str, Any]:
    row = alerts.block(session, principal, body.ip, reason=body.reason, expires_at=body.expires_at,
                       alert_id=body.alert_id, override=body.override)
    return {"id": row.id, "ip": row.ip, "reason": row.reason, "expires_at": row.expires_at}


@router.get("/blocklist", response_class=PlainTextResponse, responses={200: {
    "description": "one address or network per line (txt), or CSV with reason and expiry (csv)",
    "content": {"text/plain": {"schema": {"type": "string"}}, "text/csv": {"schema": {"type": "string"}}}}})
def blocklist(session: SessionDep, principal: PrincipalDep,
              fmt: Annotated[str, Query(alias="format", pattern="^(txt|csv)$")] = "txt") -> PlainTextResponse:
    """The addresses blocked now, for the firewalls: one per line (txt) or with reason and expiry (csv)."""
    return PlainTextResponse(alerts.blocklist(session, principal, fmt=fmt),
                             media_type="text/csv" if fmt == "csv" else "text/plain")


# ---------------------------------------------------------------- duty


@router.post("/duty/periods", status_code=status.HTTP_201_CREATED)
def create_period(body: duty.PeriodCreate, session: SessionDep, principal: PrincipalDep) -> DutyPeriodPublic:
    return DutyPeriodPublic.model_validate(duty.create_period(session, principal, body))


@router.get("/duty/periods")
def list_periods(session: SessionDep, principal: PrincipalDep, active: bool = False) -> list[DutyPeriodPublic]:
    """Duty periods, latest first; ``active=true`` only those running now."""
    rows = duty.list_periods(session, principal, active_at=utcnow() if active else None)
    return [DutyPeriodPublic.model_validate(p) for p in rows]


@router.get("/duty/periods/{period_id}")
@bounded_read
def read_period(period_id: Id, session: SessionDep, principal: PrincipalDep) -> DutyPeriodPublic:
    return DutyPeriodPublic.model_validate(duty.get_period(session, principal, period_id))


@router.post("/duty/periods/{period_id}/shifts", status_code=status.HTTP_201_CREATED)
def add_shift(period_id: Id, body: duty.ShiftCreate, session: SessionDep, principal: PrincipalDep) -> DutyShiftPublic:
    return DutyShiftPublic.model_validate(duty.add_shift(session, principal, period_id, body))


@router.get("/duty/periods/{period_id}/shifts")
def list_shifts(period_id: Id, session: SessionDep, principal: PrincipalDep) -> list[DutyShiftPublic]:
    return [DutyShiftPublic.model_validate(s) for s in duty.list_shifts(session, principal, period_id)]


@router.post("/duty/shifts/{shift_id}/check-in")
def check_in(shift_id: Id, session: SessionDep, principal: PrincipalDep,
             body: CheckInIn | None = None) -> DutyShiftPublic:
    """签到, from 30 minutes before the shift until its end, with an optional handover note (交接班)."""
    note = body.handover_note if body is not None else None
    return DutyShiftPublic.model_validate(duty.check_in(session, principal, shift_id, handover_note=note))


@router.get("/duty/on-shift")
def on_shift(session: SessionDep, principal: PrincipalDep) -> DutyShiftPublic | None:
    """The shift on duty now (the incoming one during a handover), or null."""
    shift = duty.on_shift(session, principal)
    return DutyShiftPublic.model_validate(shift) if shift is not None else None


@router.get("/duty/periods/{period_id}/reports")
def list_reports(period_id: Id, session: SessionDep, principal: PrincipalDep) -> list[DutyReportPublic]:
    """The period's reports; a department sees its own unit's."""
    return [DutyReportPublic.model_validate(r) for r in duty.list_reports(session, principal, period_id)]


@router.post("/duty/periods/{period_id}/reports", status_code=status.HTTP_201_CREATED)
def submit_report(period_id: Id, body: duty.ReportCreate, session: SessionDep,
                  principal: PrincipalDep) -> DutyReportPublic:
    return DutyReportPublic.model_validate(duty.submit_report(session, principal, period_id, body))


@router.get("/duty/missing")
def missing_reports(session: SessionDep, principal: PrincipalDep, period: Id | None = None,
                    late: bool = True) -> list[duty.Missing]:
    """Reports owed and not in: overdue, and due in the coming slot; and (unless ``late=false``) those filed late."""
    return duty.missing_reports(session, principal, period_id=period, include_late=late)


# ---------------------------------------------------------------- drills


class ItemUpdate(BaseModel):
    status: ItemStatus
    evidence: FreeText | None = None
    attachments: list[Id] = Field(default_factory=list, max_length=50,
                                  description="evidence files uploaded to the item (entity security_drill_item)")


@router.get("/drills/templates")
def list_drill_templates(session: SessionDep, principal: PrincipalDep) -> list[drills.TemplatePublic]:
    """Checklist templates: the built-in ones (version 0: national, provincial, holiday) and the city's versions."""
    return drills.list_templates(session, principal)


@router.post("/drills/templates", status_code=status.HTTP_201_CREATED)
def create_drill_template(body: drills.TemplateCreate, session: SessionDep,
                          principal: PrincipalDep) -> drills.TemplatePublic:
    """A new version of a checklist template (a new name starts at 1); drills keep the version they were made from."""
    return drills.create_template(session, principal, body)


@router.post("/drills/{drill_id}/items", status_code=status.HTTP_201_CREATED)
def add_drill_item(drill_id: Id, body: drills.TemplateItem, session: SessionDep,
                   principal: PrincipalDep) -> list[DrillItemPublic]:
    """An item added to this drill alone, for every unit in it, placed on the drill's timeline."""
    return [DrillItemPublic.model_validate(i) for i in drills.add_item(session, principal, drill_id, body)]


@router.post("/drills", status_code=status.HTTP_201_CREATED)
def create_drill(body: drills.DrillCreate, session: SessionDep, principal: PrincipalDep) -> dict[str, Any]:
    drill = drills.create_drill(session, principal, body)
    return {"id": drill.id, "name": drill.name, "phase": drill.phase.value, "template": drill.template_name,
            "template_version": drill.template_version}


@router.get("/drills")
def list_drills(session: SessionDep, principal: PrincipalDep) -> list[DrillPublic]:
    return [DrillPublic.model_validate(d) for d in drills.list_drills(session, principal)]


@router.post("/drills/{drill_id}/phase/{phase}")
def advance_phase(drill_id: Id, phase: DrillPhase, session: SessionDep, principal: PrincipalDep) -> dict[str, Any]:
    drill = drills.advance_phase(session, principal, drill_id, phase)
    return {"id": drill.id, "phase": drill.phase.value}


@router.get("/drills/{drill_id}/progress")
def drill_progress(drill_id: Id, session: SessionDep, principal: PrincipalDep,
                   by: drills.ProgressBy = "unit_phase") -> list[drills.ProgressRow]:
    """Checklist progress per unit and phase (``by=unit_phase``), per unit, or per phase (准备, 自查, 值守, 总结)."""
    return drills.progress(session, principal, drill_id, by=by)


@router.get("/drills/{drill_id}/items")
def drill_items(drill_id: Id, session: SessionDep, principal: PrincipalDep,
                unit: UnitFilter = None) -> list[DrillItemPublic]:
    return [DrillItemPublic.model_validate(i) for i in drills.list_items(session, principal, drill_id, unit=unit)]


@router.patch("/drills/{drill_id}/items/{item_id}")
def update_item(drill_id: Id, item_id: Id, body: ItemUpdate, session: SessionDep,
                principal: PrincipalDep) -> DrillItemPublic:
    return DrillItemPublic.model_validate(drills.update_item(session, principal, drill_id, item_id, body.status,
                                                             body.evidence, body.attachments))


@router.post("/drills/{drill_id}/items/{item_id}/waive")
def waive_item(drill_id: Id, item_id: Id, body: drills.Waiver, session: SessionDep,
               principal: PrincipalDep) -> DrillItemPublic:
    """The security team sets an item aside with a reason (豁免), so its phase may move on; audited."""
    return DrillItemPublic.model_validate(drills.waive_item(session, principal, drill_id, item_id, body))


@router.post("/drills/{drill_id}/items/{item_id}/verify")
def verify_item(drill_id: Id, item_id: Id, session: SessionDep, principal: PrincipalDep) -> DrillItemPublic:
    return DrillItemPublic.model_validate(drills.verify_item(session, principal, drill_id, item_id))


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@router.get("/drills/{drill_id}/summary", response_model=drill_summary.DrillSummary, responses={200: {
    "description": "the summary page (html), workbook (xlsx) or figures (json)",
    "content": {"text/html": {"schema": {"type": "string"}},
                XLSX: {"schema": {"type": "string", "format": "binary"}}}}})
def read_drill_summary(drill_id: Id, session: SessionDep, principal: PrincipalDep,
                       fmt: Annotated[str, Query(alias="format", pattern="^(html|xlsx|json)$")] = "html") -> Response:
    """The drill's summary over its window: alerts by source and verdict, attacks and the time to each step, blocks
    added, findings opened and closed, duty reports per unit, checklist completion per unit, the units behind."""
    data = drill_summary.summary(session, principal, drill_id)
    if fmt == "xlsx":
        return Response(drill_summary.summary_xlsx(data), media_type=XLSX, headers={
            "Content-Disposition": f'attachment; filename="drill-{drill_id}-summary.xlsx"'})
    if fmt == "json":
        return JSONResponse(data.model_dump(mode="json"))
    return HTMLResponse(drill_summary.summary_html(data))
