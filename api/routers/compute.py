"""Clouds, flavors and quotas (thin: parse, call the service, return a schema)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Response, status

from api.deps import PrincipalDep, SessionDep, UnitFilter, bounded_read, writes
from api.routing import DomainRouter
from cloudctl.compute import provisioning, service, volumes
from cloudctl.compute.models import RequestStatus
from cloudctl.compute.providers.base import ServerAction
from cloudctl.compute.schemas import (
    CapacityRow,
    CloudPublic,
    FlavorPublic,
    QuotaPublic,
    QuotaSet,
    RequestCreate,
    RequestDecision,
    RequestPublic,
    ServerPublic,
    ServerResize,
    VolumePublic,
    VolumeQuotaPublic,
    VolumeQuotaSet,
)
from cloudctl.core.bounds import Id, Offset
from cloudctl.core.schemas import Page

router = DomainRouter(prefix="/api/v1", tags=["government cloud"])


@router.get("/clouds")
def list_clouds(session: SessionDep, principal: PrincipalDep) -> list[CloudPublic]:
    return [CloudPublic.model_validate(c) for c in service.list_clouds(session, principal)]


@router.get("/clouds/{name}")
@bounded_read
def read_cloud(name: str, session: SessionDep, principal: PrincipalDep) -> CloudPublic:
    return CloudPublic.model_validate(service.get_cloud(session, principal, name))


@router.get("/clouds/{name}/flavors")
def list_flavors(name: str, session: SessionDep, principal: PrincipalDep) -> list[FlavorPublic]:
    return [FlavorPublic.model_validate(f) for f in service.list_flavors(session, principal, name)]


@router.get("/clouds/{name}/capacity")
@writes  # records a capacity snapshot as it answers
def read_capacity(name: str, session: SessionDep, principal: PrincipalDep) -> list[CapacityRow]:
    return service.capacity(session, principal, name)


@router.get("/quotas")
@bounded_read
def list_quotas(
    session: SessionDep,
    principal: PrincipalDep,
    unit: UnitFilter = None,
    cloud: Annotated[str | None, Query(description="cloud name")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Offset = 0,
) -> Page[QuotaPublic]:
    rows, total = service.list_quotas(session, principal, unit=unit, cloud=cloud, limit=limit, offset=offset)
    return Page[QuotaPublic].of(rows, total=total, limit=limit, offset=offset)


@router.put("/quotas/{unit}/{cloud}")
def set_quota(unit: str, cloud: str, data: QuotaSet, session: SessionDep, principal: PrincipalDep) -> QuotaPublic:
    return QuotaPublic.model_validate(service.set_quota(session, principal, unit, cloud, data))


@router.get("/volume-quotas")
@bounded_read
def list_volume_quotas(
    session: SessionDep,
    principal: PrincipalDep,
    unit: UnitFilter = None,
    cloud: Annotated[str | None, Query(description="cloud name")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Offset = 0,
) -> Page[VolumeQuotaPublic]:
    """Block storage quotas in GiB per volume type: a department sees its own subtree's."""
    rows, total = volumes.list_volume_quotas(session, principal, unit=unit, cloud=cloud, limit=limit, offset=offset)
    return Page[VolumeQuotaPublic].of(rows, total=total, limit=limit, offset=offset)


@router.put("/volume-quotas/{unit}/{cloud}/{volume_type}")
def set_volume_quota(unit: str, cloud: str, volume_type: str, data: VolumeQuotaSet, session: SessionDep,
                     principal: PrincipalDep) -> VolumeQuotaPublic:
    """Set and push a unit's GiB limit for one volume type (refused below what its volumes already take)."""
    return VolumeQuotaPublic.model_validate(
        volumes.set_volume_quota(session, principal, unit, cloud, volume_type, data.limit_gib))


@router.post("/requests", status_code=status.HTTP_201_CREATED)
def submit_request(data: RequestCreate, response: Response, session: SessionDep,
                   principal: PrincipalDep) -> RequestPublic:
    request = RequestPublic.model_validate(provisioning.submit_request(session, principal, data))
    response.headers["Location"] = f"/api/v1/requests/{request.id}"
    return request


@router.get("/requests")
@bounded_read
def list_requests(
    session: SessionDep,
    principal: PrincipalDep,
    unit: UnitFilter = None,
    status: RequestStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Offset = 0,
) -> Page[RequestPublic]:
    rows, total = provisioning.list_requests(session, principal, unit=unit, status=status, limit=limit,
                                             offset=offset)
    return Page[RequestPublic].of(rows, total=total, limit=limit, offset=offset)


@router.get("/requests/{request_id}")
@bounded_read
def read_request(request_id: Id, session: SessionDep, principal: PrincipalDep) -> RequestPublic:
    return RequestPublic.model_validate(provisioning.get_request(session, principal, request_id))


@router.post("/requests/{request_id}/approve")
def approve_request(request_id: Id, session: SessionDep, principal: PrincipalDep,
                    decision: RequestDecision | None = None) -> RequestPublic:
    reason = decision.reason if decision else None
    return RequestPublic.model_validate(provisioning.approve_request(session, principal, request_id, reason))


@router.post("/requests/{request_id}/reject")
def reject_request(request_id: Id, decision: RequestDecision, session: SessionDep,
                   principal: PrincipalDep) -> RequestPublic:
    return RequestPublic.model_validate(provisioning.reject_request(session, principal, request_id,
                                                                    decision.reason))


@router.post("/requests/{request_id}/cancel")
def cancel_request(request_id: Id, session: SessionDep, principal: PrincipalDep) -> RequestPublic:
    return RequestPublic.model_validate(provisioning.cancel_request(session, principal, request_id))


@router.get("/servers")
@bounded_read
def list_servers(
    session: SessionDep,
    principal: PrincipalDep,
    unit: UnitFilter = None,
    cloud: Annotated[str | None, Query(description="cloud name")] = None,
    status: Annotated[str | None, Query(description="ACTIVE, SHUTOFF, ERROR …")] = None,
    orphans: bool = False,
    ip: Annotated[str | None, Query(description="the server holding this address (fixed or floating)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Offset = 0,
) -> Page[ServerPublic]:
    rows, total = provisioning.list_servers(session, principal, unit=unit, cloud=cloud, status=status,
                                            orphans=orphans, ip=ip, limit=limit, offset=offset)
    return Page[ServerPublic].of(rows, total=total, limit=limit, offset=offset)


@router.get("/servers/{server_id}")
@bounded_read
def read_server(server_id: Id, session: SessionDep, principal: PrincipalDep) -> ServerPublic:
    return ServerPublic.model_validate(provisioning.get_server(session, principal, server_id))


@router.post("/servers/{server_id}/decommission")
def decommission_server(server_id: Id, session: SessionDep, principal: PrincipalDep,
                        grace_days: Annotated[int, Query(ge=0, le=90)] = 7) -> ServerPublic:
    return ServerPublic.model_validate(provisioning.decommission_server(session, principal, server_id,
                                                                        grace_days=grace_days))


@router.delete("/servers/{server_id}/decommission")
def withdraw_decommission(server_id: Id, session: SessionDep, principal: PrincipalDep) -> ServerPublic:
    return ServerPublic.model_validate(provisioning.withdraw_decommission(session, principal, server_id))


@router.post("/servers/{server_id}/actions/{action}")
def operate_server(server_id: Id, action: ServerAction, session: SessionDep, principal: PrincipalDep) -> ServerPublic:
    return ServerPublic.model_validate(provisioning.operate_server(session, principal, server_id, action))


@router.post("/servers/{server_id}/resize")
def resize_server(server_id: Id, body: ServerResize, session: SessionDep, principal: PrincipalDep) -> ServerPublic:
    return ServerPublic.model_validate(provisioning.resize_server(session, principal, server_id, body.flavor,
                                                                  confirm=body.confirm))


@router.get("/volumes")
@bounded_read
def list_volumes(
    session: SessionDep,
    principal: PrincipalDep,
    unit: UnitFilter = None,
    cloud: Annotated[str | None, Query(description="cloud name")] = None,
    status: Annotated[str | None, Query(description="available, in-use …", max_length=32)] = None,
    unattached_days: Annotated[int | None, Query(ge=0, le=3650,
                                                 description="only volumes unattached at least this many days")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Offset = 0,
) -> Page[VolumePublic]:
    """Block volumes (云硬盘): a department sees its own subtree's."""
    rows, total = volumes.list_volumes(session, principal, unit=unit, cloud=cloud, status=status,
                                       unattached_days=unattached_days, limit=limit, offset=offset)
    return Page[VolumePublic].of(rows, total=total, limit=limit, offset=offset)


@router.get("/volumes/{volume_id}")
@bounded_read
def read_volume(volume_id: Id, session: SessionDep, principal: PrincipalDep) -> VolumePublic:
    return VolumePublic.model_validate(volumes.get_volume(session, principal, volume_id))
