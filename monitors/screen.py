"""What the duty room's big screen (值班大屏) shows, gathered from the domains' services for one JSON answer.

The page (``monitors/static/screen.html``) reads this through the API every few seconds; it never
touches the database itself. Security operations (drill phase, duty officer, reports due, alerts by
triage step, blocked IPs, critical findings) join this summary when that domain is in place; until
then the page says so rather than showing zeros.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloudctl.compute.models import CapacitySnapshot, Cloud, RequestStatus, ResourceRequest
from cloudctl.core.auth import Principal, authorize
from cloudctl.core.jobs import Job, JobStatus
from cloudctl.core.models import utcnow
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
    security: dict[str, Any] | None


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
        requests_pending=int(pending), jobs_failed_24h=int(failed), security=None)
