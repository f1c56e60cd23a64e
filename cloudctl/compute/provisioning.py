"""Resource requests (资源申请) from submission to running VMs, and the server inventory.

[awaiting_leader →] submitted → approved | rejected → provisioning → fulfilled | partially_failed | failed;
cancelled before provisioning. A department's request from ``leader_approval_min_vcpus`` (or ``…_ram_gb``) on,
and every quota increase it asks for, waits first for the department's own leader (``dept_leader``, 部门负责人审批),
then for the bureau's ops; each step is kept on the request (``approvals``), audited and told to the people
concerned. A request may carry a lease's last day (``ends_on``, 临时资源): its servers carry it, and reclaim opens a
recommendation of its own kind when it has passed. Approval reserves the whole request against the unit's
quota in one conditional UPDATE, or refuses it with a conflict: a request is never
half-admitted. Provisioning is a job; every VM carries the tag
``cloudctl:r<request>:i<item>:<n>``, so a retried or resumed job finds what it already
created instead of creating it twice.
"""

from __future__ import annotations

import contextlib
import ipaddress
import time
from collections.abc import Callable, Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from cloudctl.compute import service as compute
from cloudctl.compute.models import (
    AddressKind,
    Cloud,
    CloudKind,
    Flavor,
    ItemStatus,
    Quota,
    RequestItem,
    RequestStatus,
    ResourceRequest,
    Server,
    ServerAddress,
    UnitProject,
    VolumeQuota,
)
from cloudctl.compute.notices import request_event
from cloudctl.compute.providers import provider_for
from cloudctl.compute.providers.base import SERVER_STATES, CloudProvider, ServerAction, ServerInfo, ServerSpec
from cloudctl.compute.schemas import QuotaSet, RequestCreate
from cloudctl.compute.volumes import (
    release_volume_gib,
    reserve_volume_gib,
    sync_volumes,
    volume_provider,
    volume_types,
)
from cloudctl.core import audit, jobs, read
from cloudctl.core.auth import Principal, Role, authorize, can, system_principal
from cloudctl.core.config import get_settings
from cloudctl.core.display import local_time
from cloudctl.core.errors import CloudctlError, Conflict, InvalidInput, NotFound, ProviderError
from cloudctl.core.models import utcnow
from cloudctl.org.models import Unit
from cloudctl.org.service import get_system, under

__all__ = [
    "PROVISION_JOB",
    "approve_request",
    "cancel_request",
    "decommission_server",
    "delete_due_servers",
    "get_request",
    "get_server",
    "list_requests",
    "list_servers",
    "operate_server",
    "record_server",
    "record_servers",
    "register_submission_check",
    "reject_request",
    "request_ask",
    "resize_server",
    "submit_request",
    "sync_servers",
    "wait_for_status",
    "withdraw_decommission",
]

PROVISION_JOB = "compute.provision"
# Provisioning acts for the bureau, whoever submitted: a department's auto-approved request too.
PROVISIONER = system_principal("provisioner")
AUTO_APPROVER = system_principal("auto-approval")
ProviderLookup = Callable[[Cloud], CloudProvider]


# Checks a higher domain adds to submission (billing adds the budget): each sees the request as submitted (items
# sized, cloud chosen, not yet stored) and refuses it (raises) or answers why it needs the extra approval step.
SubmissionCheck = Callable[[Session, Principal, ResourceRequest], str | None]
_submission_checks: dict[str, SubmissionCheck] = {}


def register_submission_check(name: str, check: SubmissionCheck) -> None:
    _submission_checks[name] = check


# What a higher domain does when servers take or give back addresses (security links the assets scanned on them):
# called with the addresses that changed, or None after a whole cloud's sync; answers how many records it changed.
AddressListener = Callable[[Session, Principal | None, Collection[str] | None], int]
_address_listeners: dict[str, AddressListener] = {}


def register_address_listener(name: str, listener: AddressListener) -> None:
    _address_listeners[name] = listener


def _addresses_changed(session: Session, principal: Principal | None, ips: Collection[str] | None) -> int:
    return sum(listener(session, principal, ips) for listener in _address_listeners.values())


def request_ask(request: ResourceRequest) -> compute.Ask:
    """What the whole request holds against the quota."""
    return compute.Ask(
        vcpus=sum(i.vcpus * i.count for i in request.items),
        ram_mb=sum(i.ram_mb * i.count for i in request.items),
        disk_gb=sum(i.disk_gb * i.count for i in request.items),
        # A volume is storage, not an instance.
        instances=sum(i.count for i in request.items if i.kind != "volume"),
    )


def _volume_gib(request: ResourceRequest) -> dict[str, int]:
    """GiB asked per volume type: what approval holds against the unit's type quotas."""
    asked: dict[str, int] = {}
    for item in request.items:
        if item.kind == "volume":
            asked[item.flavor] = asked.get(item.flavor, 0) + item.disk_gb * item.count
    return asked


def _item_ask(item: RequestItem, count: int) -> compute.Ask:
    return compute.Ask(item.vcpus * count, item.ram_mb * count, item.disk_gb * count,
                       0 if item.kind == "volume" else count)


def _quota(session: Session, request: ResourceRequest) -> Quota:
    quota = session.scalar(select(Quota).where(Quota.unit_id == request.unit_id, Quota.cloud_id == request.cloud_id))
    if quota is None:
        raise Conflict(f"{request.unit_code} has no quota on {request.cloud_name}; ask for one first", field="cloud")
    return quota


# ---------------------------------------------------------------- reading


def get_request(session: Session, principal: Principal, request_id: int) -> ResourceRequest:
    authorize(principal, "compute.request:read")
    query = read.within(select(ResourceRequest).where(ResourceRequest.id == request_id), principal,
                        unit=ResourceRequest.unit_id)
    return read.one(session, query, missing=f"no request with id {request_id}")


def list_requests(
    session: Session, principal: Principal, *, unit: str | None = None, status: RequestStatus | None = None,
    limit: int = 50, offset: int = 0,
) -> tuple[list[ResourceRequest], int]:
    authorize(principal, "compute.request:read")
    query = read.within(select(ResourceRequest), principal, unit=ResourceRequest.unit_id)
    if unit is not None:
        query = query.where(under(session, principal, unit, ResourceRequest.unit_id))
    if status is not None:
        query = query.where(ResourceRequest.status == status)
    return read.page(session, query, limit=limit, offset=offset, order_by=(ResourceRequest.id.desc(),))


# ---------------------------------------------------------------- submitting and deciding


def _check_volume_quotas(session: Session, unit_id: int, cloud: Cloud, items: list[RequestItem]) -> None:
    """Volumes asked for must fit the unit's GiB quota of their type on the cloud (where it has one), counting
    what its volumes of that type already take (as last synced); the cloud holds it again at creation."""
    asked: dict[str, tuple[int, int]] = {}
    for index, item in enumerate(items):
        if item.kind == "volume":
            first, total = asked.get(item.flavor, (index, 0))
            asked[item.flavor] = (first, total + item.disk_gb * item.count)
    if not asked:
        return
    for quota in session.scalars(select(VolumeQuota).where(
            VolumeQuota.unit_id == unit_id, VolumeQuota.cloud_id == cloud.id, VolumeQuota.volume_type.in_(asked),
            VolumeQuota.limit_gib.is_not(None))):
        index, total = asked[quota.volume_type]
        assert quota.limit_gib is not None
        if quota.used_gib + total > quota.limit_gib:
            raise Conflict(f"{total} GiB of {quota.volume_type} asked; the unit's {quota.volume_type} quota on "
                           f"{cloud.name} is {quota.limit_gib} GiB with {quota.used_gib} GiB used",
                           field=f"items.{index}.size_gib")


def submit_request(session: Session, principal: Principal, data: RequestCreate) -> ResourceRequest:
    """Validate and record a request; approve it at once when it is small and the quota has room."""
    authorize(principal, "compute.request:submit")
    try:
        system = get_system(session, principal, data.business_system)
    except NotFound:
        raise InvalidInput(f"no business system with id {data.business_system}", field="business_system") from None
    unit = system.unit
    cloud = _choose_cloud(session, principal, unit, data)
    items = []
    types: list[str] | None = None
    for index, item in enumerate(data.items):
        if item.kind == "quota":
            items.append(RequestItem(kind="quota", flavor="", count=1, vcpus=item.vcpus, ram_mb=item.ram_gib * 1024,
                                     disk_gb=item.disk_gib, instances=item.instances, status=ItemStatus.PENDING))
            continue
        if item.kind == "volume":
            assert item.volume_type is not None
            assert item.size_gib is not None
            if types is None:
                types = volume_types(session, principal, cloud)
            if item.volume_type not in types:
                raise InvalidInput(f"volume type {item.volume_type!r} is not offered on {cloud.name}; one of: "
                                   f"{', '.join(types) or 'none'}", field=f"items.{index}.volume_type")
            # A volume item: the type in the flavor's place, each volume's size as its disk.
            items.append(RequestItem(kind="volume", flavor=item.volume_type, count=item.count, vcpus=0, ram_mb=0,
                                     disk_gb=item.size_gib, status=ItemStatus.PENDING))
            continue
        if cloud.kind == CloudKind.KUBERNETES:
            raise InvalidInput(f"{cloud.name} is a container cloud (容器云): ask it for namespace quota "
                               "(kind \"quota\"), not VMs", field=f"items.{index}.kind")
        flavor = session.scalar(select(Flavor).where(Flavor.cloud_id == cloud.id, Flavor.name == item.flavor))
        if flavor is None:
            raise InvalidInput(f"flavor {item.flavor!r} is not offered on {cloud.name}", field=f"items.{index}.flavor")
        items.append(RequestItem(kind=item.kind, flavor=flavor.name, count=item.count,
                                 image=item.image or cloud.default_image, network=item.network or cloud.default_network,
                                 vcpus=flavor.vcpus, ram_mb=flavor.ram_mb, disk_gb=flavor.disk_gb,
                                 status=ItemStatus.PENDING))
    _check_volume_quotas(session, unit.id, cloud, items)
    request = ResourceRequest(unit=unit, unit_id=unit.id, business_system_id=system.id, cloud=cloud,
                              cloud_id=cloud.id, status=RequestStatus.SUBMITTED, justification=data.justification,
                              submitted_by=principal.actor, items=items, ends_on=data.ends_on, approvals=[])
    notes = [note for check in _submission_checks.values() if (note := check(session, principal, request))]
    request.over_budget = "；".join(notes)[:500] or None
    leader_first = _needs_leader(principal, request)
    if leader_first:
        request.status = RequestStatus.AWAITING_LEADER
    elif principal.role is Role.DEPT_LEADER:
        # The leader's own request carries the leader's approval already.
        request.approvals = [_step("leader", "approved", principal, "由部门负责人本人提交")]
    session.add(request)
    session.flush()
    audit.record(session, principal, action="submit", entity="resource_request", entity_id=request.id,
                 after={"business_system": system.name, "cloud": cloud.name, "ends_on": data.ends_on,
                        "over_budget": request.over_budget,
                        "status": request.status.value, "items": [_describe(i) for i in items]}, unit_id=unit.id)
    request_event(session, request, "compute.request.submitted", system=system.name)
    if leader_first:
        request_event(session, request, "compute.request.needs_approval", step="leader", approver="部门负责人")
        return request
    # More quota is always the bureau's decision, and so is going over a budget; small VM requests within quota are
    # not.
    if not data.is_quota_increase and request.over_budget is None and _within_auto_tier(request):
        try:
            with session.begin_nested():
                _approve(session, principal, request, auto=True)
        except Conflict:
            # No room under the quota: it waits for ops like any other request. The status was moved
            # with a Core UPDATE, which a savepoint rollback does not expire: read it back.
            session.refresh(request)
    if request.status is RequestStatus.SUBMITTED:
        request_event(session, request, "compute.request.needs_approval", step="ops", approver="运维")
    return request


def _needs_leader(principal: Principal, request: ResourceRequest) -> bool:
    """A department's request (not its leader's own) that is a quota increase or reaches the leader's tier."""
    if principal.role is not Role.DEPT:
        return False
    if _is_quota_increase(request) or request.over_budget is not None:
        return True
    settings = get_settings()
    ask = request_ask(request)
    return (ask.vcpus >= settings.leader_approval_min_vcpus
            or ask.ram_mb >= settings.leader_approval_min_ram_gb * 1024)


def _step(step: str, decision: str, principal: Principal, note: str | None) -> dict[str, Any]:
    return {"step": step, "decision": decision, "by": principal.actor, "role": principal.role.value,
            "at": utcnow().isoformat(), "note": note}


def _describe(item: RequestItem) -> str:
    if item.kind == "quota":
        return (f"quota +{item.vcpus} vCPU +{item.ram_mb / 1024:g} GiB RAM +{item.disk_gb} GiB disk "
                f"+{item.instances} instances")
    if item.kind == "volume":
        return f"{item.count}×{item.flavor} {item.disk_gb} GiB volume"
    return f"{item.count}×{item.flavor}"


def _is_quota_increase(request: ResourceRequest) -> bool:
    return any(item.kind == "quota" for item in request.items)


def _within_auto_tier(request: ResourceRequest) -> bool:
    settings = get_settings()
    ask = request_ask(request)
    return ask.vcpus <= settings.auto_approve_max_vcpus and ask.ram_mb <= settings.auto_approve_max_ram_gb * 1024


def _choose_cloud(session: Session, principal: Principal, unit: Unit, data: RequestCreate) -> Cloud:
    if data.cloud != "any":
        try:
            cloud = compute.get_cloud(session, principal, data.cloud)
        except NotFound:
            raise InvalidInput(f"no cloud named {data.cloud!r}", field="cloud") from None
        if not cloud.enabled:
            raise InvalidInput(f"cloud {cloud.name} is disabled", field="cloud")
        # A request for VMs where the unit holds no quota could never be approved: refused now, not at approval.
        # A quota increase is how a unit gets its first quota on a cloud, so it may name any cloud.
        if not data.is_quota_increase and session.scalar(select(Quota.id).where(
                Quota.unit_id == unit.id, Quota.cloud_id == cloud.id)) is None:
            raise InvalidInput(f"{unit.code} has no quota on {cloud.name}; ask for a quota increase there first, "
                               "or name a cloud where it has one (or \"any\")", field="cloud")
        return cloud
    if data.is_quota_increase:
        raise InvalidInput("a quota increase names the cloud it is for", field="cloud")
    # "any": the enabled cloud where the unit's quota has the most vCPU room left and every flavor exists.
    best: tuple[int, Cloud] | None = None
    for quota in session.scalars(select(Quota).join(Quota.cloud).where(Quota.unit_id == unit.id,
                                                                       Cloud.enabled.is_(True))):
        offered = set(session.scalars(select(Flavor.name).where(Flavor.cloud_id == quota.cloud_id)))
        if not all(item.flavor in offered for item in data.items if item.kind == "vm"):
            continue
        room = (quota.limit_vcpus if quota.limit_vcpus is not None else 10**9) - quota.used_vcpus - quota.reserved_vcpus
        if best is None or room > best[0]:
            best = (room, quota.cloud)
    if best is None:
        raise InvalidInput(f"{unit.code} has no quota on a cloud that offers these flavors", field="cloud")
    return best[1]


def _decide(session: Session, request: ResourceRequest, to: RequestStatus, principal: Principal,
            reason: str | None, *, allowed: tuple[RequestStatus, ...]) -> None:
    """Move the request on only if nobody else moved it first (a conditional UPDATE, not read-then-write)."""
    moved = session.execute(
        update(ResourceRequest).where(ResourceRequest.id == request.id, ResourceRequest.status.in_(allowed))
        .values(status=to, decided_by=principal.actor, decided_at=utcnow(), decision_reason=reason)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if moved != 1:
        session.refresh(request)
        raise Conflict(f"request {request.id} is {request.status.value}, not "
                       f"{' or '.join(s.value for s in allowed)}", field="status")
    session.refresh(request)


def _approve(session: Session, principal: Principal, request: ResourceRequest, *, auto: bool,
             reason: str | None = None) -> None:
    if _is_quota_increase(request):
        _raise_quota(session, principal, request, reason)
        return
    quota = _quota(session, request)
    # An automatic approval is the bureau's rule deciding, not the department that submitted.
    decider = AUTO_APPROVER if auto else principal
    _decide(session, request, RequestStatus.APPROVED, decider, reason, allowed=(RequestStatus.SUBMITTED,))
    compute.reserve(session, quota.id, request_ask(request))
    reserve_volume_gib(session, request.unit_id, request.cloud_id, _volume_gib(request))
    for item in request.items:
        item.status = ItemStatus.RESERVED
    request.auto_approved = auto
    request.approvals = [*(request.approvals or []), _step("ops", "approved", decider, reason)]
    job = jobs.submit_job(session, principal, PROVISION_JOB, {"request_id": request.id},
                          idempotency_key=f"provision-request-{request.id}", unit_id=request.unit_id)
    session.flush()
    request.job_id = job.id
    audit.record(session, principal, action="auto-approve" if auto else "approve", entity="resource_request",
                 entity_id=request.id, before={"status": "submitted"}, after={"status": "approved", "job": job.id},
                 unit_id=request.unit_id)
    request_event(session, request, "compute.request.approved", step="ops",
                  approver="系统（小额自动审批）" if auto else "运维", note=reason or "")


def _raise_quota(session: Session, principal: Principal, request: ResourceRequest, reason: str | None) -> None:
    """Approving a quota-increase request raises the limits (pushed to the provider) and fulfils it at once."""
    authorize(principal, "compute.quota:write")
    _decide(session, request, RequestStatus.APPROVED, principal, reason, allowed=(RequestStatus.SUBMITTED,))
    quota = session.scalar(select(Quota).where(Quota.unit_id == request.unit_id, Quota.cloud_id == request.cloud_id))

    def raised(current: int | None, increase: int) -> int | None:
        # An unlimited resource stays unlimited; one never limited starts from what is asked.
        if increase == 0:
            return current
        return None if current is None and quota is not None else (current or 0) + increase

    wanted = {
        "vcpus": raised(quota.limit_vcpus if quota else None, sum(i.vcpus for i in request.items)),
        "ram_mb": raised(quota.limit_ram_mb if quota else None, sum(i.ram_mb for i in request.items)),
        "disk_gb": raised(quota.limit_disk_gb if quota else None, sum(i.disk_gb for i in request.items)),
        "instances": raised(quota.limit_instances if quota else None, sum(i.instances for i in request.items)),
    }
    given = {k: v for k, v in wanted.items() if v is not None}
    if "ram_mb" in given:
        given["ram_gib"] = -(-given.pop("ram_mb") // 1024)
    if "disk_gb" in given:
        given["disk_gib"] = given.pop("disk_gb")
    compute.set_quota(session, principal, request.unit_code, request.cloud_name, QuotaSet(**given))
    for item in request.items:
        item.status = ItemStatus.DONE
    request.status = RequestStatus.FULFILLED
    request.approvals = [*(request.approvals or []), _step("ops", "approved", principal, reason)]
    audit.record(session, principal, action="approve", entity="resource_request", entity_id=request.id,
                 before={"status": "submitted"}, after={"status": "fulfilled", "quota": given},
                 unit_id=request.unit_id)
    request_event(session, request, "compute.request.approved", step="ops", approver="运维", note=reason or "")
    request_event(session, request, "compute.request.fulfilled")


def _gate(session: Session, principal: Principal, request_id: int) -> tuple[ResourceRequest, str]:
    """The request and whose step it is now: the leader's (``lead-approve``) or ops' (``approve``)."""
    if not (can(principal, "compute.request:approve") or can(principal, "leader.request:approve")):
        authorize(principal, "compute.request:approve")
    request = get_request(session, principal, request_id)
    if request.status is RequestStatus.AWAITING_LEADER:
        if not can(principal, "leader.request:approve"):
            if can(principal, "compute.request:approve"):
                raise Conflict(f"request {request.id} waits for its department leader's approval (部门负责人审批) "
                               "first", field="status")
            authorize(principal, "leader.request:approve")
        return request, "leader"
    authorize(principal, "compute.request:approve")
    return request, "ops"


def approve_request(session: Session, principal: Principal, request_id: int,
                    reason: str | None = None) -> ResourceRequest:
    """The step due now: the department leader's (then it waits for ops), or ops' (reserve and provision)."""
    request, step = _gate(session, principal, request_id)
    if step == "leader":
        _decide(session, request, RequestStatus.SUBMITTED, principal, reason,
                allowed=(RequestStatus.AWAITING_LEADER,))
        request.approvals = [*(request.approvals or []), _step("leader", "approved", principal, reason)]
        session.flush()
        audit.record(session, principal, action="leader-approve", entity="resource_request", entity_id=request.id,
                     before={"status": "awaiting_leader"}, after={"status": "submitted", "note": reason},
                     unit_id=request.unit_id)
        request_event(session, request, "compute.request.approved", step="leader", approver="部门负责人",
                      note="已转运维审批。")
        request_event(session, request, "compute.request.needs_approval", step="ops", approver="运维")
        return request
    _approve(session, principal, request, auto=False, reason=reason)
    return request


def reject_request(session: Session, principal: Principal, request_id: int, reason: str | None) -> ResourceRequest:
    """Refuse the request at the step due now, with the reason the requester reads."""
    request, step = _gate(session, principal, request_id)
    if not reason:
        raise InvalidInput("say why the request is rejected; the department reads it", field="reason")
    was = request.status
    _decide(session, request, RequestStatus.REJECTED, principal, reason,
            allowed=(RequestStatus.AWAITING_LEADER,) if step == "leader" else (RequestStatus.SUBMITTED,))
    request.approvals = [*(request.approvals or []), _step(step, "rejected", principal, reason)]
    session.flush()
    audit.record(session, principal, action="leader-reject" if step == "leader" else "reject",
                 entity="resource_request", entity_id=request.id, before={"status": was.value},
                 after={"status": "rejected", "reason": reason}, unit_id=request.unit_id)
    request_event(session, request, "compute.request.rejected", approver="部门负责人" if step == "leader" else "运维",
                  reason=reason)
    return request


def cancel_request(session: Session, principal: Principal, request_id: int) -> ResourceRequest:
    """The department (or ops) withdraws a request before provisioning; a reservation is given back."""
    authorize(principal, "compute.request:submit")
    request = get_request(session, principal, request_id)
    was = request.status
    _decide(session, request, RequestStatus.CANCELLED, principal, None,
            allowed=(RequestStatus.AWAITING_LEADER, RequestStatus.SUBMITTED, RequestStatus.APPROVED))
    if was is RequestStatus.APPROVED:
        compute.release(session, _quota(session, request).id, request_ask(request))
        release_volume_gib(session, request.unit_id, request.cloud_id, _volume_gib(request))
        if request.job_id is not None:
            job = session.get(jobs.Job, request.job_id)
            if job is not None and job.status is jobs.JobStatus.QUEUED:
                job.status = jobs.JobStatus.CANCELLED
    for item in request.items:
        item.status = ItemStatus.RELEASED
    audit.record(session, principal, action="cancel", entity="resource_request", entity_id=request.id,
                 before={"status": was.value}, after={"status": "cancelled"}, unit_id=request.unit_id)
    return request


# ---------------------------------------------------------------- provisioning


def server_tag(request_id: int, item_id: int, n: int) -> str:
    return f"cloudctl:r{request_id}:i{item_id}:{n}"


@jobs.job_handler(PROVISION_JOB)
def provision(ctx: jobs.JobContext, *, providers: ProviderLookup = provider_for) -> dict[str, Any]:
    """Create every VM of an approved request, waiting for each to leave BUILD.

    Safe to run again at any point: each VM is looked up by its tag before it is
    created, and the item's ``settled`` cursor skips VMs already dealt with.
    """
    request_id = int(ctx.params["request_id"])
    with ctx.session() as session:
        request = session.get(ResourceRequest, request_id)
        if request is None:
            raise NotFound(f"no request with id {request_id}", field="request_id")
        if request.status not in (RequestStatus.APPROVED, RequestStatus.PROVISIONING):
            ctx.log(f"request {request_id} is {request.status.value}: nothing to provision")
            return {"skipped": request.status.value}
        request.status = RequestStatus.PROVISIONING
        cloud, unit = request.cloud, request.unit
        provider = providers(cloud)
        project = compute.ensure_project(session, unit, cloud, provider)
        plan = [(item.id, item.flavor, item.count, item.image, item.network, item.settled) for item in request.items
                if item.kind != "volume"]
        volume_plan = [(item.id, item.flavor, item.count, item.disk_gb, item.settled) for item in request.items
                       if item.kind == "volume"]
        lease = request.ends_on
        system_id, quota_id = request.business_system_id, _quota(session, request).id
        total = sum(p[2] for p in plan) + sum(v[2] for v in volume_plan)
        finished = sum(p[5] for p in plan) + sum(v[4] for v in volume_plan)
    settings = get_settings()
    for item_id, flavor, count, image, network, settled in plan:
        for n in range(settled, count):
            tag = server_tag(request_id, item_id, n)
            name = f"{unit.code.lower()}-r{request_id}-{item_id}-{n}"
            reason = ""
            info: ServerInfo | None = None
            try:
                info = provider.find_server_by_tag(project, tag) or provider.create_server(
                    project, ServerSpec(name=name, flavor=flavor, tag=tag, image=image, network=network,
                                        metadata={"unit": unit.code, "request": str(request_id)}))
                info = _wait_built(provider, info, settings.provision_timeout_seconds,
                                   settings.provision_poll_seconds)
                if info.status == "ERROR":
                    reason = info.fault or "the cloud put the server in ERROR"
            except CloudctlError as exc:
                reason = str(exc)
            with ctx.session() as session:
                if info is not None:
                    built_server = record_server(session, cloud.id, unit.id, system_id, item_id, info)
                    built_server.lease_ends_on = lease
                    if info.addresses:  # an address scanned before (a VM's recycled one) now has its owner
                        _addresses_changed(session, None, info.addresses)
                item = session.get(RequestItem, item_id)
                assert item is not None
                item.provisioned += 0 if reason else 1
                item.settled = n + 1
                if reason:
                    item.error = (f"{item.error}; " if item.error else "") + f"{name}: {reason}"
                    item.error = item.error[:500]
                # The VM's share of the reservation is usage now (until the sync below counts it from the cloud),
                # or, if it failed, handed back.
                if reason:
                    compute.release(session, quota_id, _item_ask(item, 1))
                else:
                    compute.consume(session, quota_id, _item_ask(item, 1))
            if reason:
                ctx.log(f"{name} failed: {reason}", level="error")
            else:
                assert info is not None
                ctx.log(f"{name} {info.status} on {info.host}")
            finished += 1
            ctx.progress(finished, total, message=f"{finished} of {total} VMs dealt with")
    first_vm = plan[0][0] if plan else None
    for item_id, volume_type, count, size_gib, settled in volume_plan:
        for n in range(settled, count):
            name = f"{unit.code.lower()}-r{request_id}-{item_id}-{n}"
            reason = ""
            try:
                store = volume_provider(cloud, providers)
                made = next((v for v in store.list_volumes(project) if v.name == name), None) or \
                    store.create_volume(project, name, volume_type, size_gib)
                # Asked for with VMs: the n-th volume goes to the n-th VM of the first VM line.
                server = provider.find_server_by_tag(project, server_tag(request_id, first_vm, n)) \
                    if first_vm is not None else None
                if server is not None and made.attached_to is None and server.status != "ERROR":
                    made = store.attach_volume(made.provider_id, server.provider_id)
            except CloudctlError as exc:
                reason = str(exc)
            with ctx.session() as session:
                item = session.get(RequestItem, item_id)
                assert item is not None
                item.provisioned += 0 if reason else 1
                item.settled = n + 1
                if reason:
                    item.error = ((f"{item.error}; " if item.error else "") + f"{name}: {reason}")[:500]
                compute.release(session, quota_id, _item_ask(item, 1))
                # The type's GiB are the volume's now (until a quota sync counts them from the cloud), or given back.
                release_volume_gib(session, unit.id, cloud.id, {volume_type: size_gib}, consumed=not reason)
            ctx.log(f"{name} failed: {reason}" if reason else f"volume {name} ready",
                    level="error" if reason else "info")
            finished += 1
            ctx.progress(finished, total, message=f"{finished} of {total} VMs and volumes dealt with")
    if volume_plan:
        with ctx.session() as session:
            sync_volumes(session, PROVISIONER, cloud.name, providers=providers)
    with ctx.session() as session:
        request = session.get(ResourceRequest, request_id)
        assert request is not None
        for item in request.items:
            item.status = (ItemStatus.DONE if item.provisioned == item.count else ItemStatus.FAILED
                           if item.provisioned == 0 else ItemStatus.PARTIAL)
        built = sum(item.provisioned for item in request.items)
        request.status = (RequestStatus.FULFILLED if built == total else RequestStatus.FAILED if built == 0
                          else RequestStatus.PARTIALLY_FAILED)
        unit_code, cloud_name = request.unit_code, request.cloud_name
        request_event(session, request, "compute.request.fulfilled" if built == total else "compute.request.failed",
                      built=built, failed=total - built)
    # Usage now comes from the provider itself, as in any sync.
    with ctx.session() as session:
        compute.sync_quota(session, PROVISIONER, unit_code, cloud_name, providers=providers)
    return {"built": built, "failed": total - built}


def _wait_built(provider: CloudProvider, info: ServerInfo, timeout: float, poll: float) -> ServerInfo:
    return _wait_while(provider, info, ("BUILD",), timeout, poll)


def _wait_while(provider: CloudProvider, info: ServerInfo, states: tuple[str, ...], timeout: float,
                poll: float) -> ServerInfo:
    """Poll until the server leaves ``states`` (Nova's transitional ones: BUILD, RESIZE…)."""
    deadline = time.monotonic() + timeout
    while info.status in states:
        if time.monotonic() > deadline:
            raise Conflict(f"server {info.name} still {info.status} after {timeout:g}s", field="status")
        time.sleep(poll)
        info = provider.get_server(info.provider_id)
    return info


def record_server(session: Session, cloud_id: int, unit_id: int | None, system_id: int | None,
                  item_id: int | None, info: ServerInfo) -> Server:
    return record_servers(session, cloud_id, [(unit_id, system_id, item_id, info)])[0]


def record_servers(session: Session, cloud_id: int,
                   found: Sequence[tuple[int | None, int | None, int | None, ServerInfo]]) -> list[Server]:
    """Write what the cloud reports of its servers, (unit id, system id, request item id, info) each, in order.

    A server already known keeps its owner and gets the cloud's view (status, host, flavor, addresses);
    a new one is added with the owner given. One query finds the known ones, one flush writes them all.
    """
    wanted = [info.provider_id for *_, info in found]
    known: dict[str, Server] = {}
    for start in range(0, len(wanted), 500):
        known.update((server.provider_id, server) for server in session.scalars(select(Server).where(
            Server.cloud_id == cloud_id, Server.provider_id.in_(wanted[start:start + 500]))))
    servers: list[Server] = []
    for unit_id, system_id, item_id, info in found:
        server = known.get(info.provider_id)
        if server is None:
            server = known[info.provider_id] = Server(
                cloud_id=cloud_id, provider_id=info.provider_id, unit_id=unit_id, business_system_id=system_id,
                request_item_id=item_id, name=info.name, flavor=info.flavor, vcpus=info.vcpus, ram_mb=info.ram_mb,
                disk_gb=info.disk_gb, status=info.status, tag=info.tag, addresses=[])
            session.add(server)
        if server.status_since is None or server.status != info.status:
            server.status_since = utcnow()
        server.name, server.flavor, server.status, server.host, server.fault = (info.name, info.flavor, info.status,
                                                                                 info.host, info.fault)
        server.vcpus, server.ram_mb, server.disk_gb = info.vcpus, info.ram_mb, info.disk_gb
        server.launched_at = server.launched_at or info.created_at
        server.synced_at = utcnow()
        servers.append(server)
    session.flush()
    _set_addresses(session, [(server, _addresses(info)) for server, (*_, info) in zip(servers, found, strict=True)])
    return servers


def _addresses(info: ServerInfo) -> list[tuple[str, AddressKind]]:
    floating = set(info.floating)
    return [(ip, AddressKind.FLOATING if ip in floating else AddressKind.FIXED) for ip in info.addresses]


def _set_addresses(session: Session, reported: Sequence[tuple[Server, list[tuple[str, AddressKind]]]]) -> None:
    """Replace each server's addresses by the ones given (what the cloud reports), where they changed.

    Deleted first, in SQL, then added: the ORM's own flush would insert before it deletes, and an
    address kept across the change would meet its old row in the (server, ip) unique constraint.
    """
    changed: dict[int, tuple[Server, list[tuple[str, AddressKind]]]] = {}
    for server, wanted in reported:
        if [(a.ip, a.kind) for a in server.addresses] != wanted:
            changed[server.id] = (server, wanted)
    if not changed:
        return
    ids = sorted(changed)
    for start in range(0, len(ids), 500):
        session.execute(delete(ServerAddress).where(ServerAddress.server_id.in_(ids[start:start + 500]))
                        .execution_options(synchronize_session=False))
    rows = [{"server_id": server.id, "ip": ip, "kind": kind}
            for server, wanted in changed.values() for ip, kind in wanted]
    if rows:
        session.execute(insert(ServerAddress), rows)
    for server, _ in changed.values():
        session.expire(server, ["addresses"])


# ---------------------------------------------------------------- inventory


def list_servers(
    session: Session, principal: Principal, *, unit: str | None = None, cloud: str | None = None,
    status: str | None = None, orphans: bool = False, ip: str | None = None, limit: int = 50, offset: int = 0,
) -> tuple[list[Server], int]:
    authorize(principal, "compute.server:read")
    query = read.within(select(Server), principal, unit=Server.unit_id)
    if ip is not None:
        try:
            address = str(ipaddress.ip_address(ip.strip()))
        except ValueError:
            raise InvalidInput(f"{ip!r} is not an IP address", field="ip") from None
        query = query.where(Server.addresses.any(ServerAddress.ip == address))
    if unit is not None:
        query = query.where(under(session, principal, unit, Server.unit_id))
    if cloud is not None:
        query = query.where(Server.cloud_id == compute.cloud_filter(session, principal, cloud).id)
    if status is not None:
        if status.strip().upper() not in SERVER_STATES:
            raise InvalidInput(f"{status!r} is not a server state; one of: {', '.join(SERVER_STATES)}",
                               field="status")
        query = query.where(Server.status == status.strip().upper())
    if orphans:
        query = query.where(Server.unit_id.is_(None))
    return read.page(session, query, limit=limit, offset=offset, order_by=(Server.id,))


def get_server(session: Session, principal: Principal, server_id: int) -> Server:
    authorize(principal, "compute.server:read")
    query = read.within(select(Server).where(Server.id == server_id), principal, unit=Server.unit_id)
    return read.one(session, query, missing=f"no server with id {server_id}")


def sync_servers(session: Session, principal: Principal, cloud_name: str,
                 *, providers: ProviderLookup = provider_for) -> dict[str, int]:
    """Read every server of a cloud into the inventory; a server whose project maps to no unit is an orphan."""
    authorize(principal, "compute.server:sync")
    cloud = compute.get_cloud(session, principal, cloud_name)
    projects = {project: unit_id for project, unit_id in session.execute(
        select(UnitProject.project_id, UnitProject.unit_id).where(UnitProject.cloud_id == cloud.id))}
    seen: set[str] = set()
    counts = {"servers": 0, "orphans": 0, "gone": 0}
    for info in providers(cloud).list_servers():
        seen.add(info.provider_id)
        existing = session.scalar(select(Server).where(Server.cloud_id == cloud.id,
                                                       Server.provider_id == info.provider_id))
        unit_id = projects.get(info.project)
        record_server(session, cloud.id, unit_id, existing.business_system_id if existing else None,
                       existing.request_item_id if existing else None, info)
        counts["servers"] += 1
        counts["orphans"] += unit_id is None
    for server in session.scalars(select(Server).where(Server.cloud_id == cloud.id, Server.status != "DELETED")):
        if server.provider_id not in seen:
            server.status = "DELETED"
            _set_addresses(session, [(server, [])])  # the cloud gives them to the next VM
            counts["gone"] += 1
    session.flush()
    # The security assets on this cloud's addresses follow the servers now there (security listens: it builds on
    # compute, not the other way round).
    counts["assets_linked"] = _addresses_changed(session, principal, None)
    return counts



# ---------------------------------------------------------------- operating servers


def operate_server(session: Session, principal: Principal, server_id: int, action: ServerAction,
                   *, providers: ProviderLookup = provider_for) -> Server:
    """Stop, start, shelve, shelve-offload, unshelve or confirm a resize, and record what the cloud says."""
    authorize(principal, "compute.server:operate")
    server = get_server(session, principal, server_id)
    if server.status == "DELETED":
        raise Conflict(f"server {server.name} is deleted", field="status")
    before = server.status
    info = providers(server.cloud).server_action(server.provider_id, action)
    record_server(session, server.cloud_id, server.unit_id, server.business_system_id, server.request_item_id, info)
    audit.record(session, principal, action=action, entity="server", entity_id=server.id,
                 before={"status": before}, after={"status": server.status}, unit_id=server.unit_id)
    return server


def resize_server(session: Session, principal: Principal, server_id: int, flavor: str, *, confirm: bool = True,
                  providers: ProviderLookup = provider_for) -> Server:
    """Move a server to another flavor of its cloud; with ``confirm``, confirm the resize as Nova asks.

    Growing holds the difference against the unit's quota first (the same conditional UPDATE as an
    approval), so a resize can never take what another approval was promised; shrinking gives it back
    through the quota sync that follows.
    """
    authorize(principal, "compute.server:operate")
    server = get_server(session, principal, server_id)
    if server.status not in ("ACTIVE", "SHUTOFF"):
        raise Conflict(f"server {server.name} is {server.status}; only an ACTIVE or SHUTOFF server can be resized",
                       field="status")
    target = session.scalar(select(Flavor).where(Flavor.cloud_id == server.cloud_id, Flavor.name == flavor))
    if target is None:
        raise InvalidInput(f"flavor {flavor!r} is not offered on {server.cloud.name}", field="flavor")
    if target.name == server.flavor:
        raise InvalidInput(f"server {server.name} already has flavor {flavor}", field="flavor")
    if target.disk_gb < server.disk_gb:
        # Nova refuses it too ("Resize to smaller disk flavor is not allowed"): say so before asking.
        raise InvalidInput(f"flavor {flavor} has a {target.disk_gb} GiB root disk, smaller than the server's "
                           f"{server.disk_gb} GiB; a root disk cannot shrink", field="flavor")
    growth = compute.Ask(vcpus=max(0, target.vcpus - server.vcpus), ram_mb=max(0, target.ram_mb - server.ram_mb),
                         disk_gb=max(0, target.disk_gb - server.disk_gb))
    quota = (session.scalar(select(Quota).where(Quota.unit_id == server.unit_id, Quota.cloud_id == server.cloud_id))
             if server.unit_id is not None else None)
    if quota is not None and growth != compute.Ask():
        compute.reserve(session, quota.id, growth)
    before = {"flavor": server.flavor, "vcpus": server.vcpus, "ram_mb": server.ram_mb, "status": server.status}
    provider = providers(server.cloud)
    settings = get_settings()
    info = provider.resize_server(server.provider_id, target.name)
    # Nova answers the resize at once and works in the background: the server shows its old flavor and state
    # (then RESIZE) until it reaches VERIFY_RESIZE, or ACTIVE on the new flavor where resizes confirm themselves.
    deadline = time.monotonic() + settings.provision_timeout_seconds
    while not (info.status in ("VERIFY_RESIZE", "ERROR")
               or (info.status in ("ACTIVE", "SHUTOFF") and info.flavor == target.name)):
        if time.monotonic() > deadline:
            raise Conflict(f"server {server.name} still {info.status} after resizing for "
                           f"{settings.provision_timeout_seconds:g}s", field="status")
        time.sleep(settings.provision_poll_seconds)
        info = provider.get_server(server.provider_id)
    if info.status == "ERROR":
        raise ProviderError(f"the cloud could not resize {server.name}: {info.fault or 'ERROR'}", field="flavor")
    if confirm and info.status == "VERIFY_RESIZE":
        # The confirmation, too, completes in the background: wait for the server to leave VERIFY_RESIZE.
        info = _wait_while(provider, provider.server_action(server.provider_id, "confirm_resize"),
                           ("VERIFY_RESIZE",), settings.provision_timeout_seconds, settings.provision_poll_seconds)
    record_server(session, server.cloud_id, server.unit_id, server.business_system_id, server.request_item_id, info)
    audit.record(session, principal, action="resize", entity="server", entity_id=server.id, before=before,
                 after={"flavor": server.flavor, "vcpus": server.vcpus, "ram_mb": server.ram_mb,
                        "status": server.status}, unit_id=server.unit_id)
    if quota is not None:
        if growth != compute.Ask():
            compute.release(session, quota.id, growth)  # it is usage now, which the sync below reads
        compute.sync_quota(session, PROVISIONER, quota.unit_code, quota.cloud_name, providers=providers)
    return server


def wait_for_status(session: Session, server: Server, statuses: tuple[str, ...], *,
                    providers: ProviderLookup = provider_for) -> Server:
    """Poll the cloud until the server reaches one of ``statuses`` (real Nova shelves and resizes in the
    background: the action's answer is the state it started from), and record what it says."""
    settings = get_settings()
    provider = providers(server.cloud)
    deadline = time.monotonic() + settings.provision_timeout_seconds
    info = provider.get_server(server.provider_id)
    while info.status not in statuses:
        if info.status == "ERROR" or time.monotonic() > deadline:
            raise Conflict(f"server {server.name} is {info.status}, not {' or '.join(statuses)}"
                           + (f": {info.fault}" if info.fault else ""), field="status")
        time.sleep(settings.provision_poll_seconds)
        info = provider.get_server(server.provider_id)
    record_server(session, server.cloud_id, server.unit_id, server.business_system_id, server.request_item_id, info)
    return server


# ---------------------------------------------------------------- decommissioning


def decommission_server(session: Session, principal: Principal, server_id: int, *, grace_days: int = 7,
                        providers: ProviderLookup = provider_for) -> Server:
    """Stop a VM now and schedule its deletion; until then the department can change its mind."""
    authorize(principal, "compute.server:decommission")
    if not 0 <= grace_days <= 90:
        raise InvalidInput("must be between 0 and 90 days", field="grace_days")
    server = get_server(session, principal, server_id)
    if server.status == "DELETED":
        raise Conflict(f"server {server.name} is already deleted", field="status")
    if server.decommission_at is not None:
        raise Conflict(f"server {server.name} is already due for deletion at {local_time(server.decommission_at)}",
                       field="status")
    provider = providers(server.cloud)
    if server.status in ("ACTIVE", "ERROR"):
        record_server(session, server.cloud_id, server.unit_id, server.business_system_id, server.request_item_id,
                      provider.server_action(server.provider_id, "stop"))
    server.decommission_at = utcnow() + timedelta(days=grace_days)
    server.decommission_by = principal.actor
    audit.record(session, principal, action="decommission", entity="server", entity_id=server.id,
                 before={"decommission_at": None}, after={"decommission_at": server.decommission_at},
                 unit_id=server.unit_id)
    return server


def withdraw_decommission(session: Session, principal: Principal, server_id: int) -> Server:
    authorize(principal, "compute.server:decommission")
    server = get_server(session, principal, server_id)
    if server.decommission_at is None or server.status == "DELETED":
        raise Conflict(f"server {server.name} is not due for deletion", field="status")
    before = server.decommission_at
    server.decommission_at, server.decommission_by = None, None
    audit.record(session, principal, action="withdraw-decommission", entity="server", entity_id=server.id,
                 before={"decommission_at": before}, after={"decommission_at": None}, unit_id=server.unit_id)
    return server


def delete_due_servers(session: Session, principal: Principal, *, now: datetime | None = None,
                       providers: ProviderLookup = provider_for) -> list[Server]:
    """Delete every server whose grace period is over, and give its resources back to the quota."""
    authorize(principal, "compute.server:delete")
    now = now or utcnow()
    due = list(session.scalars(select(Server).where(Server.decommission_at <= now, Server.status != "DELETED")))
    touched: set[tuple[str, str]] = set()
    for server in due:
        # Already gone at the provider is fine: the inventory catches up.
        with contextlib.suppress(NotFound):
            providers(server.cloud).delete_server(server.provider_id)
        server.status, server.host = "DELETED", None
        _set_addresses(session, [(server, [])])
        audit.record(session, principal, action="delete", entity="server", entity_id=server.id,
                     before={"status": "SHUTOFF"}, after={"status": "DELETED"}, unit_id=server.unit_id)
        if server.unit is not None:
            touched.add((server.unit.code, server.cloud.name))
    session.flush()
    for unit_code, cloud_name in sorted(touched):
        compute.sync_quota(session, PROVISIONER, unit_code, cloud_name, providers=providers)
    return due
