"""Security findings and tickets over HTTP (thin: parse, call the service, return a schema)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import PrincipalDep, SessionDep
from cloudctl.core.schemas import Page
from cloudctl.security import service
from cloudctl.security.models import Severity, TicketStatus
from cloudctl.security.schemas import FindingPublic, TicketPublic

router = APIRouter(prefix="/api/v1/security", tags=["security"])


@router.get("/findings")
def list_findings(session: SessionDep, principal: PrincipalDep, scope: str | None = None, unit: str | None = None,
                  severity: Severity | None = None, active: bool | None = True, overdue: bool = False,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 50,
                  offset: Annotated[int, Query(ge=0)] = 0) -> Page[FindingPublic]:
    rows, total = service.list_findings(session, principal, scope=scope, unit=unit, severity=severity, active=active,
                                        overdue=overdue, limit=limit, offset=offset)
    return Page[FindingPublic](items=[FindingPublic.model_validate(f) for f in rows], total=total, limit=limit,
                               offset=offset)


@router.get("/findings/{finding_id}")
def read_finding(finding_id: int, session: SessionDep, principal: PrincipalDep) -> FindingPublic:
    return FindingPublic.model_validate(service.get_finding(session, principal, finding_id))


@router.get("/tickets")
def list_tickets(session: SessionDep, principal: PrincipalDep, status: TicketStatus | None = None,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 50,
                 offset: Annotated[int, Query(ge=0)] = 0) -> Page[TicketPublic]:
    rows, total = service.list_tickets(session, principal, status=status, limit=limit, offset=offset)
    return Page[TicketPublic](items=[TicketPublic.model_validate(t) for t in rows], total=total, limit=limit,
                              offset=offset)
