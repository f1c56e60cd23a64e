"""The department's side of a rectification ticket (整改单), and what time brings to tickets, duty and drills.

A department reports progress on its own tickets (in progress / fixed, please verify) with evidence files, and
asks for a later deadline; the security team grants the extension (the ticket's own extension rule moves the
deadline, at most 90 days) or refuses it with a note. A ticket still closes only by a re-scan.

The reminders (催办) registered here run in the ``notify.remind`` sweep: tickets due within seven days and
overdue, duty reports due in the coming hour and overdue (to the unit's duty contact, and the duty officer), and
drill items due within three days and overdue.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloudctl.core import attachments, rectification
from cloudctl.core.auth import Principal, authorize, system_principal
from cloudctl.core.errors import Conflict
from cloudctl.core.models import beijing_today
from cloudctl.core.rectification import Progress, RectificationUpdate
from cloudctl.notify.sender import reminder
from cloudctl.notify.service import emit
from cloudctl.org.models import Unit
from cloudctl.security.models import DrillItem, DutyPeriod, Finding, ItemStatus, Ticket, TicketStatus
from cloudctl.security.service import duty
from cloudctl.security.service.findings import extend_ticket, get_ticket, open_now

__all__ = ["ENTITY", "decide_extension", "report_progress", "request_extension", "ticket_updates"]

ENTITY = "security_ticket"
SWEEPER = system_principal("security-reminder")
# How far ahead a deadline is announced.
TICKET_NOTICE_DAYS, DRILL_NOTICE_DAYS = 7, 3
DUTY_NOTICE = timedelta(hours=1)


def _fetch(session: Session, principal: Principal, ticket_id: int) -> int | None:
    return get_ticket(session, principal, ticket_id).unit_id


attachments.register_record(ENTITY, _fetch, write="security.ticket:progress")


def _open(session: Session, principal: Principal, ticket_id: int) -> Ticket:
    ticket = get_ticket(session, principal, ticket_id)
    if ticket.status is not TicketStatus.OPEN:
        raise Conflict(f"ticket {ticket.id} is {ticket.status.value}: a closed ticket takes no more reports",
                       field="status")
    return ticket


def report_progress(session: Session, principal: Principal, ticket_id: int, *, status: Progress, note: str,
                    evidence: list[int] | None = None) -> RectificationUpdate:
    """The department says how far it got; the security team hears it. Only a re-scan closes the ticket."""
    authorize(principal, "security.ticket:progress")
    ticket = _open(session, principal, ticket_id)
    row = rectification.add_progress(session, principal, ENTITY, ticket.id, ticket.unit_id, status=status, note=note,
                                     attachments=evidence or [])
    ticket.progress = status.value
    emit(session, "security.ticket.progress", unit_id=ticket.unit_id, entity=ENTITY, entity_id=ticket.id,
         key=f"security.ticket.progress:{row.id}", link=f"/api/v1/security/tickets/{ticket.id}",
         data={"ticket": ticket.id, "status": status.label, "note": row.note})
    return row


def request_extension(session: Session, principal: Principal, ticket_id: int, *, to: date,
                      reason: str) -> RectificationUpdate:
    authorize(principal, "security.ticket:progress")
    ticket = _open(session, principal, ticket_id)
    row = rectification.request_extension(session, principal, ENTITY, ticket.id, ticket.unit_id,
                                          current=ticket.deadline, to=to, reason=reason)
    emit(session, "security.extension.requested", unit_id=ticket.unit_id, entity=ENTITY, entity_id=ticket.id,
         key=f"security.extension.requested:{ENTITY}:{row.id}", link=f"/api/v1/security/tickets/{ticket.id}",
         data={"record": f"整改单 #{ticket.id}", "to": to.isoformat(), "reason": row.note})
    return row


def decide_extension(session: Session, principal: Principal, ticket_id: int, request_id: int, *, grant: bool,
                     note: str | None) -> RectificationUpdate:
    """The security team grants (the deadline moves, by the ticket's extension rule) or refuses, with a note."""
    authorize(principal, "security.ticket:write")
    ticket = get_ticket(session, principal, ticket_id)
    row = rectification.get_extension(session, ENTITY, ticket.id, request_id)
    if grant:
        assert row.requested_to is not None
        extend_ticket(session, principal, ticket.id, row.requested_to, row.note)
    rectification.decide_extension(session, principal, row, grant=grant, note=note)
    decision = f"已批准，期限延至 {row.requested_to}" if grant else "未批准，请按原期限整改"
    emit(session, "security.extension.decided", unit_id=ticket.unit_id, entity=ENTITY, entity_id=ticket.id,
         key=f"security.extension.decided:{ENTITY}:{row.id}", link=f"/api/v1/security/tickets/{ticket.id}",
         data={"record": f"整改单 #{ticket.id}", "decision": decision, "note": f"说明：{note}" if note else ""})
    return row


def ticket_updates(session: Session, principal: Principal, ticket_id: int) -> list[RectificationUpdate]:
    ticket = get_ticket(session, principal, ticket_id)
    return rectification.list_updates(session, principal, ENTITY, ticket.id)


# ---------------------------------------------------------------- reminders


def _ticket_event(session: Session, ticket: Ticket, kind: str, today: date) -> bool:
    count = session.scalar(select(func.count()).where(Finding.ticket_id == ticket.id, open_now(today))) or 0
    return emit(session, kind, unit_id=ticket.unit_id, entity=ENTITY, entity_id=ticket.id,
                key=f"{kind}:{ticket.id}:{ticket.deadline}", deadline=ticket.deadline,
                link=f"/api/v1/security/tickets/{ticket.id}",
                data={"ticket": ticket.id, "title": ticket.title, "count": count}) is not None


@reminder("security.tickets")
def remind_tickets(session: Session, now: datetime) -> int:
    today = beijing_today(now)
    told = 0
    for ticket in session.scalars(select(Ticket).where(Ticket.status == TicketStatus.OPEN,
                                                       Ticket.deadline <= today + timedelta(days=TICKET_NOTICE_DAYS))):
        kind = "security.ticket.overdue" if ticket.deadline < today else "security.ticket.due"
        told += _ticket_event(session, ticket, kind, today)
    return told


@reminder("security.duty")
def remind_duty(session: Session, now: datetime) -> int:
    """Each reporting unit's report due within the hour, and each one overdue (urgent: to the duty officer too)."""
    told = 0
    codes = dict(session.execute(select(Unit.code, Unit.id)).all())
    for missing in duty.missing_reports(session, SWEEPER, now=now):
        if not missing.overdue and missing.slot_at - now > DUTY_NOTICE:
            continue
        period = session.get(DutyPeriod, missing.period_id)
        assert period is not None
        kind = "security.duty.overdue" if missing.overdue else "security.duty.due"
        event = emit(session, kind, unit_id=codes.get(missing.unit_code), entity="duty_period", entity_id=period.id,
                     key=f"{kind}:{period.id}:{missing.unit_code}:{missing.slot_at.isoformat()}",
                     deadline=missing.slot_at, link=f"/api/v1/security/duty/periods/{period.id}/reports",
                     data={"period": period.name}, now=now)
        told += event is not None
    return told


@reminder("security.drills")
def remind_drills(session: Session, now: datetime) -> int:
    from cloudctl.security.models import Drill

    told = 0
    settled = (ItemStatus.DONE, ItemStatus.CANCELLED, ItemStatus.WAIVED)
    items = session.scalars(select(DrillItem).where(DrillItem.status.not_in(settled),
                                                    DrillItem.due_at <= now + timedelta(days=DRILL_NOTICE_DAYS)))
    for item in items:
        drill = session.get(Drill, item.drill_id)
        kind = "security.drill.overdue" if item.due_at < now else "security.drill.due"
        event = emit(session, kind, unit_id=item.unit_id, entity="drill_item", entity_id=item.id,
                     key=f"{kind}:{item.id}:{item.due_at.isoformat()}", deadline=item.due_at,
                     link=f"/api/v1/security/drills/{item.drill_id}/items?unit={item.unit_code}",
                     data={"drill": drill.name if drill else "", "title": item.title}, now=now)
        told += event is not None
    return told


@reminder("security.incidents")
def remind_incidents(session: Session, now: datetime) -> int:
    """Each incident whose reporting deadline has passed with no report made: urgent, to the duty officer and the
    security team (the deadline itself was announced when the incident opened)."""
    from cloudctl.security.models import Incident, IncidentReport

    told = 0
    reported = select(IncidentReport.incident_id)
    for incident in session.scalars(select(Incident).where(Incident.report_due_at.is_not(None),
                                                           Incident.report_due_at < now,
                                                           Incident.id.not_in(reported))):
        event = emit(session, "security.incident.report_overdue", unit_id=incident.unit_id,
                     entity="security_incident", entity_id=incident.id, deadline=incident.report_due_at,
                     link=f"/api/v1/security/incidents/{incident.id}",
                     data={"incident": incident.id, "title": incident.title, "level": incident.level.label,
                           "operator_kind": incident.operator_kind.label}, now=now)
        told += event is not None
    return told
