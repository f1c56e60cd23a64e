"""The audit log: one row per change, written in the same transaction as the change.

Work in bulk that a person starts as one act (seeding the demo city) may be audited as one row
instead: inside :func:`batch`, the changes the services record are counted, and the batch writes
one row saying what was done and how many changes of each kind it made.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from cloudctl.core import read
from cloudctl.core.auth import Principal, authorize
from cloudctl.core.models import Base, utcnow

__all__ = ["AuditEntry", "batch", "jsonable", "list_audit", "record", "snapshot"]

_BATCH = "cloudctl.audit.batch"


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_entity", "entity", "entity_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(128), index=True)
    actor_role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str] = mapped_column(String(64))
    # The unit the record belongs to, so an auditor can ask "what changed in 市公安局".
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="SET NULL"), index=True)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)


def jsonable(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return value


def snapshot(obj: Any, fields: Iterable[str]) -> dict[str, Any]:
    """The audited view of a record: the named attributes, JSON-safe."""
    return {name: jsonable(getattr(obj, name)) for name in fields}


def record(
    session: Session,
    principal: Principal,
    *,
    action: str,
    entity: str,
    entity_id: object,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    unit_id: int | None = None,
) -> AuditEntry | None:
    """Add the audit row to the caller's transaction. An update that changed nothing is not audited."""
    if before is not None and after is not None:
        changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
        if not changed:
            return None
        before = {k: before.get(k) for k in sorted(changed)}
        after = {k: after.get(k) for k in sorted(changed)}
    counted: dict[str, int] | None = session.info.get(_BATCH)
    if counted is not None:
        key = f"{entity}.{action}"
        counted[key] = counted.get(key, 0) + 1
        return None
    entry = AuditEntry(
        actor=principal.actor,
        actor_role=principal.role.value,
        action=action,
        entity=entity,
        entity_id=str(entity_id),
        unit_id=unit_id,
        before=jsonable(dict(before)) if before is not None else None,
        after=jsonable(dict(after)) if after is not None else None,
    )
    session.add(entry)
    return entry


@contextmanager
def batch(session: Session, principal: Principal, *, action: str, entity: str, entity_id: object,
          unit_id: int | None = None) -> Iterator[dict[str, Any]]:
    """Audit everything recorded in the block as one row, ``after`` = what the caller puts in the yielded
    dict plus ``changes``: how many changes of each kind (``"quota.update": 43``) the block recorded.

    Nothing is written if the block fails. A batch inside a batch is counted by the outer one as one change.
    """
    outer: dict[str, int] | None = session.info.get(_BATCH)
    counted: dict[str, int] = {}
    summary: dict[str, Any] = {}
    session.info[_BATCH] = counted
    try:
        yield summary
    finally:
        if outer is None:
            session.info.pop(_BATCH, None)
        else:
            session.info[_BATCH] = outer
    record(session, principal, action=action, entity=entity, entity_id=entity_id, unit_id=unit_id,
           after={**summary, "changes": dict(sorted(counted.items()))})


def list_audit(
    session: Session,
    principal: Principal,
    *,
    entity: str | None = None,
    entity_id: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[AuditEntry], int]:
    """The audit trail, newest first. Only admins and auditors read it."""
    authorize(principal, "audit:read")
    query = select(AuditEntry)
    if entity:
        query = query.where(AuditEntry.entity == entity)
    if entity_id:
        query = query.where(AuditEntry.entity_id == entity_id)
    if actor:
        query = query.where(AuditEntry.actor.contains(actor))
    if since:
        query = query.where(AuditEntry.at >= since)
    return read.page(session, query, limit=limit, offset=offset, order_by=(AuditEntry.id.desc(),))
