"""Units, business systems and the caller's identity (thin: parse, call the service, return a schema)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request, Response, status

from api.deps import PrincipalDep, SessionDep, UnitFilter, bounded_read
from api.routing import DomainRouter
from cloudctl.core.bounds import Id, Offset
from cloudctl.core.schemas import Page
from cloudctl.org import service
from cloudctl.org.models import UnitKind
from cloudctl.org.schemas import (
    BusinessSystemCreate,
    BusinessSystemPublic,
    BusinessSystemUpdate,
    MePublic,
    UnitCreate,
    UnitPublic,
    UnitUpdate,
)

router = DomainRouter(prefix="/api/v1")

Limit = Annotated[int, Query(ge=1, le=1000, description="page size")]


@router.get("/me", tags=["identity"])
@bounded_read
async def read_me(request: Request, principal: PrincipalDep) -> MePublic:
    # Everything shown was read with the token: no query, no thread-pool turn.
    check = request.state.token_check
    display_name, unit_name = service.whoami(check)
    return MePublic(
        username=principal.username,
        display_name=display_name,
        role=principal.role,
        role_label=principal.role.label,
        unit=principal.unit_code,
        unit_name=unit_name,
        token_expires_at=check.expires_at,
    )


@router.get("/units", tags=["units"])
@bounded_read
def list_units(
    session: SessionDep,
    principal: PrincipalDep,
    kind: UnitKind | None = None,
    parent: Annotated[str | None, Query(description="parent unit code")] = None,
    q: Annotated[str | None, Query(description="part of the name or code")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[UnitPublic]:
    rows, total = service.list_units(session, principal, kind=kind, parent=parent, q=q, limit=limit, offset=offset)
    return Page[UnitPublic].of(rows, total=total, limit=limit, offset=offset)


@router.post("/units", status_code=status.HTTP_201_CREATED, tags=["units"])
def create_unit(data: UnitCreate, response: Response, session: SessionDep, principal: PrincipalDep) -> UnitPublic:
    unit = UnitPublic.model_validate(service.create_unit(session, principal, data))
    response.headers["Location"] = f"/api/v1/units/{unit.code}"
    return unit


@router.get("/units/{code}", tags=["units"])
@bounded_read
def read_unit(code: str, session: SessionDep, principal: PrincipalDep) -> UnitPublic:
    return UnitPublic.model_validate(service.get_unit(session, principal, code))


@router.patch("/units/{code}", tags=["units"])
def update_unit(code: str, data: UnitUpdate, session: SessionDep, principal: PrincipalDep) -> UnitPublic:
    return UnitPublic.model_validate(service.update_unit(session, principal, code, data))


@router.get("/business-systems", tags=["business systems"])
@bounded_read
def list_systems(
    session: SessionDep,
    principal: PrincipalDep,
    unit: UnitFilter = None,
    mlps_level: Annotated[int | None, Query(ge=1, le=4, description="等保级别")] = None,
    q: Annotated[str | None, Query(description="part of the name")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[BusinessSystemPublic]:
    rows, total = service.list_systems(session, principal, unit=unit, mlps_level=mlps_level, q=q, limit=limit,
                                       offset=offset)
    return Page[BusinessSystemPublic].of(rows, total=total, limit=limit, offset=offset)


@router.post("/business-systems", status_code=status.HTTP_201_CREATED, tags=["business systems"])
def create_system(
    data: BusinessSystemCreate, response: Response, session: SessionDep, principal: PrincipalDep
) -> BusinessSystemPublic:
    system = BusinessSystemPublic.model_validate(service.create_system(session, principal, data))
    response.headers["Location"] = f"/api/v1/business-systems/{system.id}"
    return system


@router.get("/business-systems/{system_id}", tags=["business systems"])
@bounded_read
def read_system(system_id: Id, session: SessionDep, principal: PrincipalDep) -> BusinessSystemPublic:
    return BusinessSystemPublic.model_validate(service.get_system(session, principal, system_id))


@router.patch("/business-systems/{system_id}", tags=["business systems"])
def update_system(
    system_id: Id, data: BusinessSystemUpdate, session: SessionDep, principal: PrincipalDep
) -> BusinessSystemPublic:
    return BusinessSystemPublic.model_validate(service.update_system(session, principal, system_id, data))
