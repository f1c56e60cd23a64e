"""What the duty room's big screen (值班大屏) shows, gathered from the domains' records for one JSON answer.

The page (``monitors/static/screen.html``) reads this through the API every few seconds; it never
touches the database itself.

Who sees what on the screen is the read kit's rule (:mod:`cloudctl.core.read`), panel by panel in
:data:`PANELS`: a panel is shown to a principal whose role may read its records; a department's (or a
county's) figures are its own subtree's; the city-wide panels are only for the roles that see the whole
city. A panel that is not shown is ``null`` in the answer (not zero: nothing is claimed about it).

==================  ==========================  ===========  =============================================
panel               needs                       city-wide    a scoped principal (dept) sees
==================  ==========================  ===========  =============================================
access              extranet.link:read          no           its subtree's units required and connected
violations          extranet.violation:read     no           its subtree's open violations, by rule
clouds              compute.capacity:read       yes          —
reclaim             reclaim.recommendation:read no           its recommendations' vCPU and saving
requests_pending    compute.request:read        no           its subtree's requests waiting for approval
jobs_failed_24h     job:read                    no           its subtree's failed jobs
alerts              security.alert:read         no           — (its role may not read alerts)
blocked_24h         security.alert:read         yes          —
critical_overdue    security.finding:read       no           its subtree's overdue critical findings
duty                security.duty:read          no           its subtree's reports due and overdue
on_shift            security.duty:read          yes          —
drill               security.drill:read         no           the drill, with its subtree's items only: per
                                                             phase, and its units furthest behind
incidents           security.incident:read      no           its subtree's open incidents and report deadlines
units               security.ticket:read        no           its subtree's units to chase
==================  ==========================  ===========  =============================================
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, NamedTuple

from pydantic import BaseModel
from sqlalchemy import SQLColumnExpression, case, func, select
from sqlalchemy.orm import Session

from cloudctl.compute.models import CapacitySnapshot, Cloud, RequestStatus, ResourceRequest
from cloudctl.core import read
from cloudctl.core.auth import Principal, authorize, can
from cloudctl.core.config import get_settings
from cloudctl.core.jobs import Job, JobStatus
from cloudctl.core.models import beijing_today, utcnow
from cloudctl.extranet.models import Violation, ViolationStatus
from cloudctl.extranet.service.access import access_rate
from cloudctl.org.models import Unit, UnitKind
from cloudctl.reclaim.models import Recommendation, RecommendationStatus

__all__ = ["PANELS", "Panel", "ScreenSummary", "shows", "summary"]


class Panel(NamedTuple):
    permission: str
    # Figures of the whole city that a subtree cannot have a share of (the clouds, the duty officer, the firewall).
    city_wide: bool = False


PANELS: dict[str, Panel] = {
    "access": Panel("extranet.link:read"),
    "violations": Panel("extranet.violation:read"),
    "clouds": Panel("compute.capacity:read", city_wide=True),
    "reclaim": Panel("reclaim.recommendation:read"),
    "requests_pending": Panel("compute.request:read"),
    "jobs_failed_24h": Panel("job:read"),
    "alerts": Panel("security.alert:read"),
    "blocked_24h": Panel("security.alert:read", city_wide=True),
    "critical_overdue": Panel("security.finding:read"),
    "duty": Panel("security.duty:read"),
    "on_shift": Panel("security.duty:read", city_wide=True),
    "drill": Panel("security.drill:read"),
    "incidents": Panel("security.incident:read"),
    "units": Panel("security.ticket:read"),
}


def shows(principal: Principal, panel: str) -> bool:
    """Whether ``panel`` is on ``principal``'s screen."""
    rule = PANELS[panel]
    return can(principal, rule.permission) and not (rule.city_wide and principal.is_scoped)


class ScreenSummary(BaseModel):
    generated_at: str
    # The zone the page shows times in: the console's one display zone.
    timezone: str
    city: str
    # The unit whose subtree the figures are of; None: the whole city.
    unit: str | None
    unit_name: str | None
    access: dict[str, dict[str, Any]] | None
    violations_open: int | None
    violations_by_rule: dict[str, int] | None
    clouds: list[dict[str, Any]] | None
    reclaim: dict[str, Any] | None
    requests_pending: int | None
    jobs_failed_24h: int | None
    security: dict[str, Any]


def _count(session: Session, principal: Principal, query: Any, unit: SQLColumnExpression[Any]) -> int:
    return int(session.scalar(read.within(query, principal, unit=unit)) or 0)


def summary(session: Session, principal: Principal) -> ScreenSummary:
    authorize(principal, "compute.cloud:read")
    city = session.scalar(select(Unit.name).where(Unit.kind == UnitKind.CITY)) or ""
    unit_name = session.scalar(select(Unit.name).where(Unit.code == principal.unit_code)) \
        if principal.is_scoped and principal.unit_code else None
    access = None
    if shows(principal, "access"):
        access = {row.scope: {"required": row.required, "connected": row.connected, "rate": row.rate,
                              "missing": len(row.missing)}
                  for row in access_rate(session, principal) if row.scope in ("horizontal", "vertical")}
    by_rule = None
    if shows(principal, "violations"):
        open_ = Violation.status.in_((ViolationStatus.OPEN, ViolationStatus.RECTIFYING))
        by_rule = {str(rule): n for rule, n in session.execute(read.within(
            select(Violation.rule, func.count()).where(open_).group_by(Violation.rule).order_by(Violation.rule),
            principal, unit=Violation.unit_id))}
    reclaim = None
    if shows(principal, "reclaim"):
        active = (RecommendationStatus.OPEN, RecommendationStatus.NOTIFIED, RecommendationStatus.SCHEDULED)
        count, vcpus, saving = session.execute(read.within(
            select(func.count(), func.coalesce(func.sum(Recommendation.reclaim_vcpus), 0),
                   func.coalesce(func.sum(Recommendation.saving_month), 0)).where(Recommendation.status.in_(active)),
            principal, unit=Recommendation.unit_id)).one()
        reclaim = {"recommendations": int(count), "reclaimable_vcpus": int(vcpus), "saving_month": float(saving)}
    pending = _count(session, principal, select(func.count()).select_from(ResourceRequest).where(
        ResourceRequest.status == RequestStatus.SUBMITTED), ResourceRequest.unit_id) \
        if shows(principal, "requests_pending") else None
    failed = _count(session, principal, select(func.count()).select_from(Job).where(
        Job.status.in_((JobStatus.FAILED, JobStatus.PARTIALLY_FAILED)),
        Job.finished_at >= utcnow() - timedelta(hours=24)), Job.unit_id) \
        if shows(principal, "jobs_failed_24h") else None
    return ScreenSummary(
        generated_at=utcnow().isoformat(timespec="seconds"), timezone=get_settings().display_timezone, city=city,
        unit=principal.unit_code if principal.is_scoped else None, unit_name=unit_name, access=access,
        violations_open=sum(by_rule.values()) if by_rule is not None else None, violations_by_rule=by_rule,
        clouds=_clouds(session) if shows(principal, "clouds") else None, reclaim=reclaim, requests_pending=pending,
        jobs_failed_24h=failed, security=_security(session, principal))


def _clouds(session: Session) -> list[dict[str, Any]]:
    clouds = []
    for name, display, total, reserved, ratio, used in session.execute(
            select(Cloud.name, Cloud.display_name, CapacitySnapshot.total,
                   CapacitySnapshot.reserved, CapacitySnapshot.allocation_ratio, CapacitySnapshot.used)
            .join(CapacitySnapshot, CapacitySnapshot.cloud_id == Cloud.id)
            .where(CapacitySnapshot.resource == "vcpus").order_by(Cloud.name)):
        capacity = int((total - reserved) * ratio)
        clouds.append({"cloud": name, "name": display, "vcpu_capacity": capacity, "vcpu_used": used,
                       "headroom": round(1 - used / capacity, 4) if capacity else None})
    return clouds


def _security(session: Session, principal: Principal) -> dict[str, Any]:
    """Alerts waiting for a verdict, attacks still being answered, blocks, overdue findings and duty reports."""
    from cloudctl.security.models import Alert, AlertStatus, Asset, BlockedAddress, Finding, Severity, Verdict
    from cloudctl.security.service.duty import list_periods, missing_reports, on_shift
    from cloudctl.security.service.findings import open_now

    now = utcnow()
    today = beijing_today(now)  # deadlines are Beijing dates
    out: dict[str, Any] = dict.fromkeys(("alerts_new", "attacks_open", "blocked_24h", "critical_overdue",
                                         "duty_overdue", "duty_due", "duty_period", "on_shift", "drill", "units",
                                         "incidents_open", "incidents"))
    if shows(principal, "alerts"):
        out["alerts_new"] = _count(session, principal, select(func.count()).select_from(Alert).where(
            Alert.status == AlertStatus.NEW), Alert.unit_id)
        out["attacks_open"] = _count(session, principal, select(func.count()).select_from(Alert).where(
            Alert.status != AlertStatus.CLOSED, Alert.verdict == Verdict.ATTACK), Alert.unit_id)
    if shows(principal, "blocked_24h"):
        out["blocked_24h"] = int(session.scalar(select(func.count()).select_from(BlockedAddress).where(
            BlockedAddress.created_at >= now - timedelta(hours=24))) or 0)
    if shows(principal, "critical_overdue"):
        out["critical_overdue"] = _count(session, principal, select(func.count()).select_from(Finding).join(
            Asset, Asset.id == Finding.asset_id).where(
            open_now(today), Finding.severity == Severity.CRITICAL, Finding.sla_deadline < today), Asset.unit_id)
    if shows(principal, "duty"):
        missing = missing_reports(session, principal, now=now)
        periods = list_periods(session, principal, active_at=now)
        out["duty_overdue"] = sum(1 for m in missing if m.overdue)
        out["duty_due"] = sum(1 for m in missing if not m.overdue)
        out["duty_period"] = periods[0].name if periods else None
    if shows(principal, "on_shift"):
        shift = on_shift(session, principal, at=now)
        out["on_shift"] = None if shift is None else {
            "officer": shift.officer, "backup": shift.backup, "leader": shift.leader,
            "checked_in": shift.checked_in_at is not None, "ends_at": shift.ends_at.isoformat()}
    if shows(principal, "drill"):
        out["drill"] = _drill(session, principal, now)
    if shows(principal, "units"):
        out["units"] = _units_to_chase(session, principal, now)
    if shows(principal, "incidents"):
        out["incidents_open"], out["incidents"] = _incidents(session, principal, now)
    return out


def _incidents(session: Session, principal: Principal, now: datetime,
               top: int = 8) -> tuple[int, list[dict[str, Any]]]:
    """Open incidents, those whose report is overdue first, then by the nearest deadline: what to report now."""
    from cloudctl.security.models import Incident, IncidentReport, IncidentStatus

    first = (select(IncidentReport.incident_id, func.min(IncidentReport.reported_at).label("at"))
             .group_by(IncidentReport.incident_id).subquery())
    is_open = Incident.status == IncidentStatus.OPEN
    total = _count(session, principal, select(func.count()).select_from(Incident).where(is_open), Incident.unit_id)
    owed = Incident.report_due_at.is_not(None) & first.c.at.is_(None)
    rows = session.execute(read.within(
        select(Incident.id, Incident.title, Incident.level, Unit.code, Incident.opened_at, Incident.report_due_at,
               first.c.at).outerjoin(first, first.c.incident_id == Incident.id)
        .outerjoin(Unit, Unit.id == Incident.unit_id).where(is_open)
        .order_by(case((owed & (Incident.report_due_at < now), 0), (owed, 1), else_=2),
                  Incident.report_due_at, Incident.opened_at.desc(), Incident.id.desc()).limit(top),
        principal, unit=Incident.unit_id))
    out = []
    for incident_id, title, level, code, opened_at, due, reported in rows:
        if reported is not None and reported.tzinfo is None:
            reported = reported.replace(tzinfo=now.tzinfo)  # an aggregate may come back without the column's type
        overdue = due is not None and ((reported is None and now > due) or (reported is not None and reported > due))
        out.append({"id": incident_id, "title": title, "level": level.value, "level_label": level.label,
                    "unit": code, "opened_at": opened_at.isoformat(),
                    "report_due_at": due.isoformat() if due is not None else None,
                    "reported_at": reported.isoformat() if reported is not None else None,
                    "report_overdue": overdue})
    return total, out


def _units_to_chase(session: Session, principal: Principal, now: datetime, top: int = 8) -> list[dict[str, Any]]:
    """The units with the most overdue rectification tickets, then open critical findings: whom to call."""
    from cloudctl.security.models import Asset, Finding, Severity, Ticket, TicketStatus
    from cloudctl.security.service.findings import open_now

    today = beijing_today(now)
    rows: dict[str, dict[str, Any]] = {}
    for code, name, n in session.execute(read.within(
            select(Unit.code, Unit.name, func.count()).select_from(Finding)
            .join(Asset, Asset.id == Finding.asset_id).join(Unit, Unit.id == Asset.unit_id)
            .where(open_now(today), Finding.severity == Severity.CRITICAL)
            .group_by(Unit.code, Unit.name), principal, unit=Asset.unit_id)):
        rows[code] = {"unit": code, "name": name, "critical": int(n), "tickets_overdue": 0}
    for code, name, n in session.execute(read.within(
            select(Unit.code, Unit.name, func.count()).select_from(Ticket).join(Unit, Unit.id == Ticket.unit_id)
            .where(Ticket.status == TicketStatus.OPEN, Ticket.deadline < today).group_by(Unit.code, Unit.name),
            principal, unit=Ticket.unit_id)):
        rows.setdefault(code, {"unit": code, "name": name, "critical": 0, "tickets_overdue": 0})["tickets_overdue"] = n
    return sorted(rows.values(), key=lambda r: (-r["tickets_overdue"], -r["critical"], r["unit"]))[:top]


def _drill(session: Session, principal: Principal, now: datetime, top: int = 6) -> dict[str, Any] | None:
    """The drill the room is working on: the running one, else the next to start (a countdown); not one that is
    only being summed up. Its items are the principal's: in all, per phase (in phase order), and the units furthest
    behind (most items overdue, then least settled: done or waived)."""
    from cloudctl.security.models import Drill, DrillItem, DrillPhase, ItemStatus
    from cloudctl.security.service.drills import PHASES, late_items

    drill = session.scalar(select(Drill).where(Drill.phase != DrillPhase.SUMMARY, Drill.ends_at >= now)
                           .order_by(Drill.starts_at, Drill.id).limit(1))
    if drill is None:
        return None
    is_done = DrillItem.status == ItemStatus.DONE
    total, done, late = session.execute(read.within(
        select(func.count(), func.coalesce(func.sum(case((is_done, 1), else_=0)), 0),
               func.coalesce(func.sum(case((late_items(now), 1), else_=0)), 0))
        .select_from(DrillItem).where(DrillItem.drill_id == drill.id, DrillItem.status != ItemStatus.CANCELLED),
        principal, unit=DrillItem.unit_id)).one()
    # Per unit and phase in one pass; the phases' totals and the units' are sums of it.
    phases = {phase: {"phase": phase.value, "phase_label": phase.label, "items": 0, "settled": 0, "overdue": 0}
              for phase in PHASES}
    units: dict[str, dict[str, Any]] = {}
    settled = DrillItem.status.in_((ItemStatus.DONE, ItemStatus.WAIVED))
    for code, name, phase, n, n_settled, n_late in session.execute(read.within(
            select(Unit.code, Unit.name, DrillItem.phase, func.count(), func.sum(case((settled, 1), else_=0)),
                   func.sum(case((late_items(now), 1), else_=0)))
            .select_from(DrillItem).join(Unit, Unit.id == DrillItem.unit_id)
            .where(DrillItem.drill_id == drill.id, DrillItem.status != ItemStatus.CANCELLED)
            .group_by(Unit.code, Unit.name, DrillItem.phase), principal, unit=DrillItem.unit_id)):
        unit = units.setdefault(code, {"unit": code, "name": name, "items": 0, "settled": 0, "overdue": 0})
        for row in (phases[DrillPhase(phase)], unit):
            row["items"] += int(n)
            row["settled"] += int(n_settled or 0)
            row["overdue"] += int(n_late or 0)
    for row in (*phases.values(), *units.values()):
        row["ratio"] = round(row["settled"] / row["items"], 4) if row["items"] else 1.0
    behind = sorted((u for u in units.values() if u["settled"] < u["items"]),
                    key=lambda u: (-u["overdue"], u["ratio"], u["unit"]))[:top]
    return {"id": drill.id, "name": drill.name, "phase": drill.phase.value, "phase_label": drill.phase.label,
            "starts_at": drill.starts_at.isoformat(), "ends_at": drill.ends_at.isoformat(),
            "items": int(total), "items_done": int(done), "items_overdue": int(late),
            "phases": [row for row in phases.values() if row["items"]], "behind": behind}
