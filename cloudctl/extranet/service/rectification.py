"""The unit's side of a compliance violation (外网合规整改): progress with evidence, and requests for more time.

A department reports progress on its own violations (in progress / fixed, please verify) with evidence files and
asks for a later deadline; the bureau (those who may change violations) grants it, moving the deadline, or refuses
it with a note. A violation is still resolved only by the next check that no longer finds it.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloudctl.core import attachments, audit, rectification
from cloudctl.core.auth import Principal, authorize
from cloudctl.core.errors import Conflict
from cloudctl.core.models import beijing_today
from cloudctl.core.rectification import Progress, RectificationUpdate
from cloudctl.extranet.models import Violation, ViolationStatus
from cloudctl.extranet.service.compliance import get_violation
from cloudctl.notify.sender import reminder
from cloudctl.notify.service import emit

__all__ = ["ENTITY", "decide_extension", "report_progress", "request_extension", "violation_updates"]

ENTITY = "extranet_violation"
NOTICE_DAYS = 3
LIVE = (ViolationStatus.OPEN, ViolationStatus.RECTIFYING)


def _fetch(session: Session, principal: Principal, violation_id: int) -> int | None:
    return get_violation(session, principal, violation_id).unit_id


attachments.register_record(ENTITY, _fetch, write="extranet.violation:progress")


def _live(session: Session, principal: Principal, violation_id: int) -> Violation:
    row = get_violation(session, principal, violation_id)
    if row.status not in LIVE:
        raise Conflict(f"violation {row.id} is {row.status.value}: it takes no more reports", field="status")
    return row


def report_progress(session: Session, principal: Principal, violation_id: int, *, status: Progress, note: str,
                    evidence: list[int] | None = None) -> RectificationUpdate:
    authorize(principal, "extranet.violation:progress")
    row = _live(session, principal, violation_id)
    update = rectification.add_progress(session, principal, ENTITY, row.id, row.unit_id, status=status, note=note,
                                        attachments=evidence or [])
    row.progress = status.value
    if row.status is ViolationStatus.OPEN:
        row.status = ViolationStatus.RECTIFYING
    return update


def request_extension(session: Session, principal: Principal, violation_id: int, *, to: date,
                      reason: str) -> RectificationUpdate:
    authorize(principal, "extranet.violation:progress")
    row = _live(session, principal, violation_id)
    current = row.deadline or beijing_today()
    update = rectification.request_extension(session, principal, ENTITY, row.id, row.unit_id, current=current,
                                             to=to, reason=reason)
    emit(session, "security.extension.requested", unit_id=row.unit_id, entity=ENTITY, entity_id=row.id,
         key=f"security.extension.requested:{ENTITY}:{update.id}", link=f"/api/v1/extranet/violations/{row.id}",
         data={"record": f"合规问题 #{row.id}（{row.title}）", "to": to.isoformat(), "reason": update.note},
         roles=("ops",))
    return update


def decide_extension(session: Session, principal: Principal, violation_id: int, request_id: int, *, grant: bool,
                     note: str | None) -> RectificationUpdate:
    authorize(principal, "extranet.violation:write")
    row = get_violation(session, principal, violation_id)
    update = rectification.get_extension(session, ENTITY, row.id, request_id)
    rectification.decide_extension(session, principal, update, grant=grant, note=note)
    if grant:
        before = row.deadline
        row.deadline = update.requested_to
        audit.record(session, principal, action="extend", entity=ENTITY, entity_id=row.id,
                     before={"deadline": before}, after={"deadline": row.deadline, "request": update.id},
                     unit_id=row.unit_id)
    decision = f"已批准，期限延至 {update.requested_to}" if grant else "未批准，请按原期限整改"
    emit(session, "security.extension.decided", unit_id=row.unit_id, entity=ENTITY, entity_id=row.id,
         key=f"security.extension.decided:{ENTITY}:{update.id}", link=f"/api/v1/extranet/violations/{row.id}",
         data={"record": f"合规问题 #{row.id}（{row.title}）", "decision": decision,
               "note": f"说明：{note}" if note else ""})
    return update


def violation_updates(session: Session, principal: Principal, violation_id: int) -> list[RectificationUpdate]:
    row = get_violation(session, principal, violation_id)
    return rectification.list_updates(session, principal, ENTITY, row.id)


@reminder("extranet.violations")
def remind_violations(session: Session, now: datetime) -> int:
    """A unit's violation whose deadline is within three days (or passed): told once per deadline."""
    today = beijing_today(now)
    told = 0
    for row in session.scalars(select(Violation).where(Violation.status.in_(LIVE), Violation.unit_id.is_not(None),
                                                       Violation.deadline <= today + timedelta(days=NOTICE_DAYS))):
        event = emit(session, "extranet.violation.due", unit_id=row.unit_id, entity=ENTITY, entity_id=row.id,
                     key=f"extranet.violation.due:{row.id}:{row.deadline}", deadline=row.deadline,
                     link=f"/api/v1/extranet/violations/{row.id}", data={"title": row.title, "subject": row.subject},
                     now=now)
        told += event is not None
    return told
