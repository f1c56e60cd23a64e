"""What the duty room's big screen (值班大屏) shows, gathered from the domains' services for one JSON answer.

The page (``monitors/static/screen.html``) reads this through the API every few seconds; it never
touches the database itself. Security operations (drill phase, duty officer, reports due, alerts by
triage step, blocked IPs, critical findings, duty reports) come from the security domain's services.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from cloudctl.compute.models import CapacitySnapshot, Cloud, RequestStatus, ResourceRequest
from cloudctl.core.auth import Principal, authorize
from cloudctl.core.jobs import Job, JobStatus
from cloudctl.core.models import beijing_today, utcnow
from cloudctl.extranet.models import Violation, ViolationStatus
from cloudctl.extranet.service.access import access_rate
from cloudctl.org.models import Unit, UnitKind
from cloudctl.reclaim.models import Recommendation, RecommendationStatus

__all__ = ["ScreenSummary", "summary"]


class ScreenSummary(BaseModel):
    generated_at: str
    city: str
    access: dict[str, dict[str, Any]]
    violations_open: int
    violations_by_rule: dict[str, int]
    clouds: list[dict[str, Any]]
    reclaim: dict[str, Any]
    requests_pending: int
    jobs_failed_24h: int
    security: dict[str, Any]


def summary(session: Session, principal: Principal) -> ScreenSummary:
    authorize(principal, "compute.cloud:read")
    city = session.scalar(select(Unit.name).where(Unit.kind == UnitKind.CITY)) or ""
    access = {row.scope: {"required": row.required, "connected": row.connected, "rate": row.rate,
                          "missing": len(row.missing)}
              for row in access_rate(session, principal) if row.scope in ("horizontal", "vertical")}
    by_rule = {str(rule): n for rule, n in session.execute(
        select(Violation.rule, func.count()).where(Violation.status.in_(
            (ViolationStatus.OPEN, ViolationStatus.RECTIFYING))).group_by(Violation.rule).order_by(Violation.rule))}
    clouds = []
    for name, display, total, reserved, ratio, used in session.execute(
            select(Cloud.name, Cloud.display_name, CapacitySnapshot.total,
                   CapacitySnapshot.reserved, CapacitySnapshot.allocation_ratio, CapacitySnapshot.used)
            .join(CapacitySnapshot, CapacitySnapshot.cloud_id == Cloud.id)
            .where(CapacitySnapshot.resource == "vcpus").order_by(Cloud.name)):
        capacity = int((total - reserved) * ratio)
        clouds.append({"cloud": name, "name": display, "vcpu_capacity": capacity, "vcpu_used": used,
                       "headroom": round(1 - used / capacity, 4) if capacity else None})
    active = (RecommendationStatus.OPEN, RecommendationStatus.NOTIFIED, RecommendationStatus.SCHEDULED)
    count, vcpus, saving = session.execute(
        select(func.count(), func.coalesce(func.sum(Recommendation.reclaim_vcpus), 0),
               func.coalesce(func.sum(Recommendation.saving_month), 0))
        .where(Recommendation.status.in_(active))).one()
    pending = session.scalar(select(func.count()).where(ResourceRequest.status == RequestStatus.SUBMITTED)) or 0
    failed = session.scalar(select(func.count()).select_from(Job).where(
        Job.status == JobStatus.FAILED, Job.finished_at >= utcnow() - timedelta(hours=24))) or 0
    return ScreenSummary(
        generated_at=utcnow().isoformat(timespec="seconds"), city=city, access=access,
        violations_open=sum(by_rule.values()), violations_by_rule=by_rule, clouds=clouds,
        reclaim={"recommendations": int(count), "reclaimable_vcpus": int(vcpus), "saving_month": float(saving)},
        requests_pending=int(pending), jobs_failed_24h=int(failed), security=_security(session, principal))


def _security(session: Session, principal: Principal) -> dict[str, Any]:
    """Alerts waiting for a verdict, attacks still being answered, blocks, overdue findings and duty reports."""
    from cloudctl.security.models import Alert, AlertStatus, BlockedAddress, Finding, Severity, Verdict
    from cloudctl.security.service.duty import list_periods, missing_reports, on_shift
    from cloudctl.security.service.findings import open_now

    now = utcnow()
    new = session.scalar(select(func.count()).select_from(Alert).where(Alert.status == AlertStatus.NEW)) or 0
    attacks = session.scalar(select(func.count()).select_from(Alert).where(
        Alert.status != AlertStatus.CLOSED, Alert.verdict == Verdict.ATTACK)) or 0
    blocked_today = session.scalar(select(func.count()).select_from(BlockedAddress).where(
        BlockedAddress.created_at >= now - timedelta(hours=24))) or 0
    today = beijing_today(now)  # deadlines are Beijing dates
    critical_overdue = session.scalar(select(func.count()).select_from(Finding).where(
        open_now(today), Finding.severity == Severity.CRITICAL, Finding.sla_deadline < today)) or 0
    missing = missing_reports(session, principal, now=now)
    periods = list_periods(session, principal, active_at=now)
    shift = on_shift(session, principal, at=now)
    return {"alerts_new": int(new), "attacks_open": int(attacks), "blocked_24h": int(blocked_today),
            "critical_overdue": int(critical_overdue), "duty_overdue": sum(1 for m in missing if m.overdue),
            "duty_due": sum(1 for m in missing if not m.overdue),
            "duty_period": periods[0].name if periods else None,
            "on_shift": None if shift is None else {
                "officer": shift.officer, "backup": shift.backup, "leader": shift.leader,
                "checked_in": shift.checked_in_at is not None, "ends_at": shift.ends_at.isoformat()},
            "drill": _drill(session, now), "units": _units_to_chase(session, now)}


def _units_to_chase(session: Session, now: datetime, top: int = 8) -> list[dict[str, Any]]:
    """The units with the most overdue rectification tickets, then open critical findings: whom to call."""
    from cloudctl.security.models import Asset, Finding, Severity, Ticket, TicketStatus
    from cloudctl.security.service.findings import open_now

    today = beijing_today(now)
    rows: dict[str, dict[str, Any]] = {}
    for code, name, n in session.execute(
            select(Unit.code, Unit.name, func.count()).select_from(Finding)
            .join(Asset, Asset.id == Finding.asset_id).join(Unit, Unit.id == Asset.unit_id)
            .where(open_now(today), Finding.severity == Severity.CRITICAL)
            .group_by(Unit.code, Unit.name)):
        rows[code] = {"unit": code, "name": name, "critical": int(n), "tickets_overdue": 0}
    for code, name, n in session.execute(
            select(Unit.code, Unit.name, func.count()).select_from(Ticket).join(Unit, Unit.id == Ticket.unit_id)
            .where(Ticket.status == TicketStatus.OPEN, Ticket.deadline < today).group_by(Unit.code, Unit.name)):
        rows.setdefault(code, {"unit": code, "name": name, "critical": 0, "tickets_overdue": 0})["tickets_overdue"] = n
    return sorted(rows.values(), key=lambda r: (-r["tickets_overdue"], -r["critical"], r["unit"]))[:top]


def _drill(session: Session, now: datetime) -> dict[str, Any] | None:
    """The drill the room is working on: the running one, else the next to start (a countdown); not one that is
    only being summed up."""
    from cloudctl.security.models import Drill, DrillItem, DrillPhase, ItemStatus
    from cloudctl.security.service.drills import late_items

    drill = session.scalar(select(Drill).where(Drill.phase != DrillPhase.SUMMARY, Drill.ends_at >= now)
                           .order_by(Drill.starts_at, Drill.id).limit(1))
    if drill is None:
        return None
    is_done = DrillItem.status == ItemStatus.DONE
    total, done, late = session.execute(
        select(func.count(), func.coalesce(func.sum(case((is_done, 1), else_=0)), 0),
               func.coalesce(func.sum(case((late_items(now), 1), else_=0)), 0))
        .select_from(DrillItem).where(DrillItem.drill_id == drill.id, DrillItem.status != ItemStatus.CANCELLED)).one()
    return {"name": drill.name, "phase": drill.phase.value, "phase_label": drill.phase.label,
            "starts_at": drill.starts_at.isoformat(), "ends_at": drill.ends_at.isoformat(),
            "items": int(total), "items_done": int(done), "items_overdue": int(late)}
