"""Clouds, flavors and quotas (thin: parse, call the service, return a schema)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import PrincipalDep, SessionDep
from cloudctl.compute import service
from cloudctl.compute.schemas import CapacityRow, CloudPublic, FlavorPublic, QuotaPublic, QuotaSet
from cloudctl.core.schemas import Page

router = APIRouter(prefix="/api/v1", tags=["government cloud"])


@router.get("/clouds")
def list_clouds(session: SessionDep, principal: PrincipalDep) -> list[CloudPublic]:
    return [CloudPublic.model_validate(c) for c in service.list_clouds(session, principal)]


@router.get("/clouds/{name}")
def read_cloud(name: str, session: SessionDep, principal: PrincipalDep) -> CloudPublic:
    return CloudPublic.model_validate(service.get_cloud(session, principal, name))


@router.get("/clouds/{name}/flavors")
def list_flavors(name: str, session: SessionDep, principal: PrincipalDep) -> list[FlavorPublic]:
    return [FlavorPublic.model_validate(f) for f in service.list_flavors(session, principal, name)]


@router.get("/clouds/{name}/capacity")
def read_capacity(name: str, session: SessionDep, principal: PrincipalDep) -> list[CapacityRow]:
    return service.capacity(session, principal, name)


@router.get("/quotas")
def list_quotas(
    session: SessionDep,
    principal: PrincipalDep,
    unit: Annotated[str | None, Query(description="unit code")] = None,
    cloud: Annotated[str | None, Query(description="cloud name")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Page[QuotaPublic]:
    rows, total = service.list_quotas(session, principal, unit=unit, cloud=cloud, limit=limit, offset=offset)
    return Page[QuotaPublic](items=[QuotaPublic.model_validate(q) for q in rows], total=total, limit=limit,
                             offset=offset)


@router.put("/quotas/{unit}/{cloud}")
def set_quota(unit: str, cloud: str, data: QuotaSet, session: SessionDep, principal: PrincipalDep) -> QuotaPublic:
    return QuotaPublic.model_validate(service.set_quota(session, principal, unit, cloud, data))
