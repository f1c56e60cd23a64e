"""Purchase planning (为下步云资源采购提供支撑数据): each cloud's capacity against allocations, with use beside it,
its monthly history and when each resource reaches the threshold, with and without reclaim.

Capacity is what Placement counts: (total − reserved) × allocation ratio. Headroom is capacity less what the
servers hold (their allocations), not less what they measurably use: a VM's vCPUs are taken whether it is busy or
not, and only reclaim gives them back. Everything here reads what is stored (the capacity history kept from each
capacity snapshot, the utilisation summaries, the recommendations); no provider is called.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloudctl.compute.models import CapacityMonth, Cloud
from cloudctl.core.auth import Principal, authorize
from cloudctl.core.config import get_settings
from cloudctl.core.errors import InvalidInput
from cloudctl.reclaim import service
from cloudctl.reclaim.forecast import forecast
from cloudctl.reclaim.schemas import CapacityMonthPublic, ForecastPublic, PlanResourcePublic

__all__ = ["purchase_plan"]

# Each resource as the clouds count it, as people do, and the scale between the two.
_RESOURCES = (("vcpus", "vcpus", "vCPU", 1.0), ("ram_mb", "ram", "GiB", 1 / 1024), ("disk_gb", "disk", "GiB", 1.0))


def purchase_plan(session: Session, principal: Principal, *, threshold: float | None = None,
                  cloud: str | None = None) -> list[PlanResourcePublic]:
    authorize(principal, "compute.capacity:read")
    authorize(principal, "reclaim.recommendation:read")
    threshold = get_settings().capacity_threshold if threshold is None else threshold
    if not 0 < threshold <= 2:
        raise InvalidInput("a share of capacity between 0 and 2 (0.8 is 80 %)", field="threshold")
    rollup = {row.key: row for row in service.rollup(session, principal, by="cloud")}
    query = select(Cloud).where(Cloud.enabled.is_(True)).order_by(Cloud.name)
    if cloud is not None:
        query = query.where(Cloud.name == cloud)
    plan = []
    for row in session.scalars(query):
        months = list(session.scalars(select(CapacityMonth).where(CapacityMonth.cloud_id == row.id)
                                      .order_by(CapacityMonth.month)))
        roll = rollup.get(row.name)
        for stored, resource, unit, scale in _RESOURCES:
            series = [m for m in months if m.resource == stored]
            if not series:
                continue
            last = series[-1]
            capacity, allocated = last.usable * scale, last.allocated * scale
            used = reclaimable = None
            if resource == "vcpus":
                used, reclaimable = (roll.used_vcpus, float(roll.reclaimable_vcpus)) if roll else (None, 0.0)
            elif resource == "ram":
                used, reclaimable = (roll.used_ram_gib, roll.reclaimable_ram_gib) if roll else (None, 0.0)
            reclaimable = reclaimable or 0.0
            values = [m.allocated * scale for m in series]
            last_month = date.fromisoformat(f"{last.month}-01")
            answers = forecast(last_month, values, target=threshold * capacity, reclaimable=reclaimable)
            plan.append(PlanResourcePublic(
                cloud=row.name, name=row.display_name, resource=resource, unit=unit,
                capacity=round(capacity, 1), allocated=round(allocated, 1), promised=round(last.promised * scale, 1),
                used=used, reclaimable=round(reclaimable, 1), headroom=round(capacity - allocated, 1),
                headroom_after_reclaim=round(capacity - allocated + reclaimable, 1),
                allocated_ratio=round(allocated / capacity, 4) if capacity else None, threshold=threshold,
                history=[CapacityMonthPublic(month=m.month, capacity=round(m.usable * scale, 1),
                                             allocated=round(m.allocated * scale, 1),
                                             promised=round(m.promised * scale, 1)) for m in series],
                forecasts=[ForecastPublic(**asdict(a)) for a in answers]))
    return plan
