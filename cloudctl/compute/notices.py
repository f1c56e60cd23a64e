"""What the government cloud tells people: a request's steps, and quotas running out."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloudctl import notify
from cloudctl.compute.models import Quota, ResourceRequest
from cloudctl.core.schemas import gib
from cloudctl.notify.sender import reminder

__all__ = ["QUOTA_WARN_PERCENT", "request_event"]

# A quota this full (used and reserved, of any resource) is nearly exhausted.
QUOTA_WARN_PERCENT = 90


def summary(request: ResourceRequest) -> str:
    parts = []
    for item in request.items:
        if item.kind == "quota":
            parts.append(f"配额 +{item.vcpus} vCPU +{gib(item.ram_mb):g} GiB 内存 +{item.disk_gb} GiB 磁盘")
        elif item.kind == "volume":
            parts.append(f"{item.count} 块 {item.flavor} 云硬盘（每块 {item.disk_gb} GiB）")
        else:
            parts.append(f"{item.count} 台 {item.flavor}")
    return "、".join(parts) + f"（{request.cloud_name}）"


def request_event(session: Session, request: ResourceRequest, kind: str, *, step: str = "", **data: Any) -> None:
    """Tell the requesting unit (and, for what waits on them, the bureau's ops) about one step of a request."""
    values: dict[str, Any] = {"request": request.id, "summary": summary(request), "justification":
                              request.justification, "system": request.business_system_id, "note": "",
                              "reason": request.decision_reason or "", "approver": "", "lease": "", **data}
    if request.ends_on is not None:
        values["lease"] = f"租期至 {request.ends_on}，到期后将进入回收流程。"
    notify.emit(session, kind, unit_id=request.unit_id, entity="resource_request", entity_id=request.id,
                key=f"{kind}:{request.id}{':' + step if step else ''}", data=values,
                link=f"/api/v1/requests/{request.id}",
                roles=("ops",) if kind == "compute.request.needs_approval" and step == "ops" else ())


# Each limited resource of a quota: its columns' stem, what people call it, and how an amount reads (memory in GiB
# as at every edge, whatever the column counts in).
_RESOURCES: tuple[tuple[str, str, Callable[[int], str]], ...] = (
    ("vcpus", "vCPU", lambda n: f"{n} vCPU"),
    ("ram_mb", "内存", lambda n: f"{gib(n):g} GiB"),
    ("instances", "云主机数", lambda n: f"{n} 台"),
)


@reminder("compute.quota")
def remind_quotas(session: Session, now: datetime) -> int:
    """A quota at 90 % (used and reserved) of any limited resource: once per quota, resource and week."""
    emitted = 0
    week = now.strftime("%G-W%V")
    for quota in session.scalars(select(Quota)):
        for resource, label, amount in _RESOURCES:
            limit = getattr(quota, f"limit_{resource}")
            if not limit:
                continue
            used = getattr(quota, f"used_{resource}") + getattr(quota, f"reserved_{resource}")
            percent = round(100 * used / limit)
            if percent < QUOTA_WARN_PERCENT:
                continue
            event = notify.emit(session, "compute.quota.nearly_exhausted", unit_id=quota.unit_id, entity="quota",
                                entity_id=quota.id, key=f"compute.quota.nearly_exhausted:{quota.id}:{resource}:{week}",
                                data={"cloud": quota.cloud_name, "resource": label, "used": amount(used),
                                      "limit": amount(limit), "percent": percent},
                                link=f"/api/v1/quotas?unit={quota.unit_code}", now=now)
            emitted += event is not None
    return emitted
