"""The extranet over HTTP (thin: parse, call the service, return a schema)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, status

from api.deps import PrincipalDep, SessionDep, UnitFilter, bounded_read
from api.routing import DomainRouter
from cloudctl.core.bounds import Id, Offset
from cloudctl.core.schemas import (
    ExtensionDecisionIn,
    ExtensionRequestIn,
    Page,
    ProgressIn,
    RectificationUpdatePublic,
)
from cloudctl.extranet.models import ApplicationStatus, LinkStatus, PrefixStatus, ViolationStatus, Zone
from cloudctl.extranet.schemas import (
    AccessRateRow,
    ApplicationCreate,
    ApplicationDecision,
    ApplicationPublic,
    DevicePublic,
    LinkCreate,
    LinkPublic,
    LinkUpdate,
    PrefixPublic,
    ScorecardRow,
    ViolationPublic,
    ViolationUpdate,
)
from cloudctl.extranet.service import access, collection, compliance, ipam, rectification

router = DomainRouter(prefix="/api/v1/extranet", tags=["extranet"])
Limit = Annotated[int, Query(ge=1, le=1000)]


@router.get("/access-rate")
def access_rate(session: SessionDep, principal: PrincipalDep) -> list[AccessRateRow]:
    return access.access_rate(session, principal)


@router.get("/links")
@bounded_read
def list_links(session: SessionDep, principal: PrincipalDep, unit: UnitFilter = None,
               status: LinkStatus | None = None, limit: Limit = 50, offset: Offset = 0) -> Page[LinkPublic]:
    rows, total = access.list_links(session, principal, unit=unit, status=status, limit=limit, offset=offset)
    return Page[LinkPublic].of(rows, total=total, limit=limit, offset=offset)


@router.post("/links", status_code=status.HTTP_201_CREATED)
def create_link(body: LinkCreate, session: SessionDep, principal: PrincipalDep) -> LinkPublic:
    return LinkPublic.model_validate(access.create_link(session, principal, body))


@router.patch("/links/{link_id}")
def update_link(link_id: Id, body: LinkUpdate, session: SessionDep, principal: PrincipalDep) -> LinkPublic:
    return LinkPublic.model_validate(access.update_link(session, principal, link_id, body))


@router.get("/prefixes")
@bounded_read
def list_prefixes(session: SessionDep, principal: PrincipalDep, zone: Zone | None = None, unit: UnitFilter = None,
                  status: PrefixStatus | None = None, contains: str | None = None, limit: Limit = 50,
                  offset: Offset = 0) -> Page[PrefixPublic]:
    rows, total = ipam.list_prefixes(session, principal, zone=zone, unit=unit, status=status, contains=contains,
                                     limit=limit, offset=offset)
    return Page[PrefixPublic](items=ipam.describe_prefixes(session, rows), total=total, limit=limit, offset=offset)


@router.get("/ip-applications")
@bounded_read
def list_applications(session: SessionDep, principal: PrincipalDep, status: ApplicationStatus | None = None,
                      unit: UnitFilter = None, limit: Limit = 50, offset: Offset = 0) -> Page[ApplicationPublic]:
    rows, total = ipam.list_applications(session, principal, status=status, unit=unit, limit=limit, offset=offset)
    return Page[ApplicationPublic].of(rows, total=total, limit=limit, offset=offset)


@router.post("/ip-applications", status_code=status.HTTP_201_CREATED)
def submit_application(body: ApplicationCreate, session: SessionDep, principal: PrincipalDep) -> ApplicationPublic:
    return ApplicationPublic.model_validate(ipam.submit_application(session, principal, body))


@router.get("/ip-applications/{app_id}")
@bounded_read
def read_application(app_id: Id, session: SessionDep, principal: PrincipalDep) -> ApplicationPublic:
    return ApplicationPublic.model_validate(ipam.get_application(session, principal, app_id))


@router.post("/ip-applications/{app_id}/approve")
def approve_application(app_id: Id, session: SessionDep, principal: PrincipalDep,
                        body: ApplicationDecision | None = None) -> ApplicationPublic:
    return ApplicationPublic.model_validate(ipam.approve_application(session, principal, app_id,
                                                                     body.reason if body else None))


@router.post("/ip-applications/{app_id}/reject")
def reject_application(app_id: Id, body: ApplicationDecision, session: SessionDep,
                       principal: PrincipalDep) -> ApplicationPublic:
    return ApplicationPublic.model_validate(ipam.reject_application(session, principal, app_id, body.reason))


@router.post("/ip-applications/{app_id}/cancel")
def cancel_application(app_id: Id, session: SessionDep, principal: PrincipalDep) -> ApplicationPublic:
    return ApplicationPublic.model_validate(ipam.cancel_application(session, principal, app_id))


@router.post("/ip-applications/{app_id}/release")
def release_application(app_id: Id, session: SessionDep, principal: PrincipalDep) -> ApplicationPublic:
    return ApplicationPublic.model_validate(ipam.release_application(session, principal, app_id))


@router.get("/devices")
@bounded_read
def list_devices(session: SessionDep, principal: PrincipalDep, unit: UnitFilter = None, failing: bool = False,
                 limit: Limit = 50, offset: Offset = 0) -> Page[DevicePublic]:
    rows, total = collection.list_devices(session, principal, unit=unit, failing=failing, limit=limit, offset=offset)
    return Page[DevicePublic].of(rows, total=total, limit=limit, offset=offset)


@router.get("/violations")
@bounded_read
def list_violations(session: SessionDep, principal: PrincipalDep,
                    rule: Annotated[int | None, Query(ge=1, le=12)] = None, unit: UnitFilter = None,
                    status: ViolationStatus | None = None, limit: Limit = 50,
                    offset: Offset = 0) -> Page[ViolationPublic]:
    rows, total = compliance.list_violations(session, principal, rule=rule, unit=unit, status=status, limit=limit,
                                             offset=offset)
    return Page[ViolationPublic].of(rows, total=total, limit=limit, offset=offset)


@router.get("/violations/{violation_id}")
@bounded_read
def read_violation(violation_id: Id, session: SessionDep, principal: PrincipalDep) -> ViolationPublic:
    return ViolationPublic.model_validate(compliance.get_violation(session, principal, violation_id))


@router.patch("/violations/{violation_id}")
def update_violation(violation_id: Id, body: ViolationUpdate, session: SessionDep,
                     principal: PrincipalDep) -> ViolationPublic:
    return ViolationPublic.model_validate(compliance.update_violation(session, principal, violation_id, body))


@router.get("/violations/{violation_id}/updates")
def violation_updates(violation_id: Id, session: SessionDep,
                      principal: PrincipalDep) -> list[RectificationUpdatePublic]:
    return [RectificationUpdatePublic.model_validate(u)
            for u in rectification.violation_updates(session, principal, violation_id)]


@router.post("/violations/{violation_id}/progress", status_code=status.HTTP_201_CREATED)
def report_progress(violation_id: Id, body: ProgressIn, session: SessionDep,
                    principal: PrincipalDep) -> RectificationUpdatePublic:
    """整改进展 with evidence: in_progress, or fixed (please verify). The next check resolves the violation."""
    return RectificationUpdatePublic.model_validate(rectification.report_progress(
        session, principal, violation_id, status=body.status, note=body.note, evidence=body.attachments))


@router.post("/violations/{violation_id}/extension-requests", status_code=status.HTTP_201_CREATED)
def request_extension(violation_id: Id, body: ExtensionRequestIn, session: SessionDep,
                      principal: PrincipalDep) -> RectificationUpdatePublic:
    return RectificationUpdatePublic.model_validate(rectification.request_extension(
        session, principal, violation_id, to=body.to, reason=body.reason))


@router.post("/violations/{violation_id}/extension-requests/{extension_id}/decision")
def decide_extension(violation_id: Id, extension_id: Id, body: ExtensionDecisionIn, session: SessionDep,
                     principal: PrincipalDep) -> RectificationUpdatePublic:
    return RectificationUpdatePublic.model_validate(rectification.decide_extension(
        session, principal, violation_id, extension_id, grant=body.grant, note=body.note))


@router.get("/scorecard")
def scorecard(session: SessionDep, principal: PrincipalDep, unit: UnitFilter = None) -> list[ScorecardRow]:
    return compliance.scorecard(session, principal, unit=unit)
