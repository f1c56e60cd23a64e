"""The audit log (admin, auditor)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Query

from api.deps import PrincipalDep, SessionDep, bounded_read
from api.routing import DomainRouter
from cloudctl.core.audit import list_audit
from cloudctl.core.bounds import Offset
from cloudctl.core.schemas import AuditEntryPublic, Page

router = DomainRouter(prefix="/api/v1", tags=["audit"])


@router.get("/audit")
@bounded_read
def read_audit(
    session: SessionDep,
    principal: PrincipalDep,
    entity: str | None = None,
    entity_id: str | None = None,
    actor: str | None = None,
    since: Annotated[datetime | None, Query(description="ISO 8601 with a zone")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Offset = 0,
) -> Page[AuditEntryPublic]:
    rows, total = list_audit(session, principal, entity=entity, entity_id=entity_id, actor=actor, since=since,
                             limit=limit, offset=offset)
    return Page[AuditEntryPublic].of(rows, total=total, limit=limit, offset=offset)
