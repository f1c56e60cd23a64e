"""The department's side of rectification (整改): progress reports with evidence, and requests for more time.

A rectification record (a finding ticket, an extranet violation) belongs to its domain; what a department says
about it is kept here, one row per report or request, the same for every kind of record:

- a *progress* report: ``in_progress`` (整改中) or ``fixed`` (已整改，请复核) with a note and evidence files (the
  attachment store's ids on the same record). It never closes the record: a ticket closes by a re-scan, a
  violation by the next check.
- an *extension* request: the date asked for and why; the record's own team grants it (the domain moves the
  deadline, as its own extension rule says) or refuses it with a note.

The domains call these with the record they have already fetched for the principal, so who may see and act on
it is their rule, stated once there.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import JSON, Date, ForeignKey, Index, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from cloudctl.core import audit, read
from cloudctl.core.attachments import Attachment
from cloudctl.core.auth import Principal
from cloudctl.core.errors import Conflict, InvalidInput, NotFound
from cloudctl.core.models import Base, LabelledEnum, enum_column, utcnow

__all__ = ["ExtensionStatus", "Progress", "RectificationUpdate", "UpdateKind", "add_progress", "decide_extension",
           "get_extension", "list_updates", "request_extension"]


class UpdateKind(LabelledEnum):
    PROGRESS = "progress", "整改进展", "cyan"
    EXTENSION = "extension", "延期申请", "yellow"


class Progress(LabelledEnum):
    IN_PROGRESS = "in_progress", "整改中", "yellow"
    FIXED = "fixed", "已整改，请复核", "green"


class ExtensionStatus(LabelledEnum):
    PENDING = "pending", "待审批", "yellow"
    GRANTED = "granted", "已批准", "green"
    REFUSED = "refused", "未批准", "red"


class RectificationUpdate(Base):
    __tablename__ = "rectification_updates"
    __table_args__ = (Index("ix_rectification_updates_entity", "entity", "entity_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    entity: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str] = mapped_column(String(64))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="SET NULL"), index=True)
    kind: Mapped[UpdateKind] = mapped_column(enum_column(UpdateKind, 16))
    # progress: in_progress | fixed; extension: pending | granted | refused.
    status: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(String(2000))
    requested_to: Mapped[date | None] = mapped_column(Date)
    attachments: Mapped[list[int]] = mapped_column(JSON, default=list)
    by: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_by: Mapped[str | None] = mapped_column(String(128))
    decided_at: Mapped[datetime | None]
    decision_note: Mapped[str | None] = mapped_column(String(1000))


def _note(note: str, field: str = "note") -> str:
    note = (note or "").strip()
    if len(note) < 2:
        raise InvalidInput("say what was done, in a few words", field=field)
    return note


def add_progress(session: Session, principal: Principal, entity: str, entity_id: int, unit_id: int | None, *,
                 status: Progress, note: str, attachments: Sequence[int] = ()) -> RectificationUpdate:
    """Record a progress report; the evidence named must already be attached to this very record."""
    ids = sorted(set(attachments))
    if ids:
        found = set(session.scalars(select(Attachment.id).where(Attachment.id.in_(ids), Attachment.entity == entity,
                                                                Attachment.entity_id == str(entity_id))))
        missing = [i for i in ids if i not in found]
        if missing:
            raise InvalidInput(f"attachment {missing[0]} is not evidence of this record (upload it to it first)",
                               field="attachments")
    row = RectificationUpdate(entity=entity, entity_id=str(entity_id), unit_id=unit_id, kind=UpdateKind.PROGRESS,
                              status=status.value, note=_note(note), attachments=ids, by=principal.actor, at=utcnow())
    session.add(row)
    session.flush()
    audit.record(session, principal, action="progress", entity=entity, entity_id=entity_id,
                 after={"progress": status.value, "note": row.note, "attachments": ids}, unit_id=unit_id)
    return row


def request_extension(session: Session, principal: Principal, entity: str, entity_id: int, unit_id: int | None, *,
                      current: date, to: date, reason: str) -> RectificationUpdate:
    """Ask for a later deadline; one request waits at a time."""
    if to <= current:
        raise InvalidInput(f"must be after the current deadline {current}", field="to")
    waiting = session.scalar(select(RectificationUpdate.id).where(
        RectificationUpdate.entity == entity, RectificationUpdate.entity_id == str(entity_id),
        RectificationUpdate.kind == UpdateKind.EXTENSION, RectificationUpdate.status == ExtensionStatus.PENDING.value))
    if waiting is not None:
        raise Conflict(f"extension request {waiting} is still waiting for a decision", field="to")
    row = RectificationUpdate(entity=entity, entity_id=str(entity_id), unit_id=unit_id, kind=UpdateKind.EXTENSION,
                              status=ExtensionStatus.PENDING.value, note=_note(reason, "reason"), requested_to=to,
                              attachments=[], by=principal.actor, at=utcnow())
    session.add(row)
    session.flush()
    audit.record(session, principal, action="request-extension", entity=entity, entity_id=entity_id,
                 after={"to": to, "reason": row.note, "request": row.id}, unit_id=unit_id)
    return row


def get_extension(session: Session, entity: str, entity_id: int, request_id: int) -> RectificationUpdate:
    row = session.scalar(select(RectificationUpdate).where(
        RectificationUpdate.id == request_id, RectificationUpdate.entity == entity,
        RectificationUpdate.entity_id == str(entity_id), RectificationUpdate.kind == UpdateKind.EXTENSION))
    if row is None:
        raise NotFound(f"no extension request {request_id} on this record", field="request")
    return row


def decide_extension(session: Session, principal: Principal, row: RectificationUpdate, *, grant: bool,
                     note: str | None) -> RectificationUpdate:
    """Mark a waiting request granted or refused (the domain moves the deadline itself when granted)."""
    if row.status != ExtensionStatus.PENDING.value:
        raise Conflict(f"extension request {row.id} was already {row.status}", field="status")
    if not grant and not (note and note.strip()):
        raise InvalidInput("say why the extension is refused; the department reads it", field="note")
    row.status = (ExtensionStatus.GRANTED if grant else ExtensionStatus.REFUSED).value
    row.decided_by, row.decided_at, row.decision_note = principal.actor, utcnow(), (note or "").strip() or None
    session.flush()
    audit.record(session, principal, action="grant-extension" if grant else "refuse-extension", entity=row.entity,
                 entity_id=row.entity_id, before={"request": row.id, "status": "pending"},
                 after={"request": row.id, "status": row.status, "note": row.decision_note}, unit_id=row.unit_id)
    return row


def list_updates(session: Session, principal: Principal, entity: str, entity_id: int) -> list[RectificationUpdate]:
    """A record's reports and requests, oldest first (the caller has fetched the record for the principal)."""
    query = read.within(select(RectificationUpdate).where(RectificationUpdate.entity == entity,
                                                          RectificationUpdate.entity_id == str(entity_id)),
                        principal, unit=RectificationUpdate.unit_id)
    return list(session.scalars(query.order_by(RectificationUpdate.id)))
