"""The attachment store: evidence files (佐证材料) kept by their content, one row per file and record.

A file is stored once under its SHA-256 (``<root>/ab/abcdef…``), written to a temporary name and renamed, so a
reader never sees half a file and the same screenshot attached to two records takes its room once. Each
attachment row says which record it belongs to (``entity`` and ``entity_id``), the record's unit, who uploaded it,
and the file's hash, size and media type. The type is recognised from the content (PNG, JPEG, PDF, ZIP and the
Office files inside one, UTF-8 text), never taken from the name or from what the client claims, and must be one
the settings allow; a file larger than ``attachment_max_bytes`` is refused.

Who may see an attachment is who may see its record. The domain that owns a kind of record registers, with
:func:`register_record`, how to fetch that record for a principal (raising not-found outside its scope) and the
permission to attach to it; core never imports the domains.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO
from pathlib import Path

from sqlalchemy import ForeignKey, Index, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from cloudctl.core import audit, read
from cloudctl.core.auth import Principal, authorize
from cloudctl.core.config import get_settings
from cloudctl.core.errors import InvalidInput, NotFound
from cloudctl.core.models import Base, utcnow
from cloudctl.core.text import control_character

__all__ = ["Attachment", "RecordRef", "add_attachment", "get_attachment", "list_attachments", "read_content",
           "register_record", "sniff", "store_root"]


class Attachment(Base):
    __tablename__ = "attachments"
    __table_args__ = (Index("ix_attachments_entity", "entity", "entity_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    entity: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str] = mapped_column(String(64))
    # The record's unit: a department sees the attachments of its own subtree's records.
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="SET NULL"), index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int]
    media_type: Mapped[str] = mapped_column(String(128))
    filename: Mapped[str] = mapped_column(String(255))
    uploaded_by: Mapped[str] = mapped_column(String(128))
    uploaded_at: Mapped[datetime] = mapped_column(default=utcnow)


@dataclass(frozen=True, slots=True)
class RecordRef:
    """How a domain's record is found for a principal: ``fetch`` raises NotFound outside the principal's scope and
    returns the record's unit id; ``write`` is the permission to attach evidence to it."""

    fetch: Callable[[Session, Principal, int], int | None]
    write: str


_records: dict[str, RecordRef] = {}


def register_record(entity: str, fetch: Callable[[Session, Principal, int], int | None], *, write: str) -> None:
    _records[entity] = RecordRef(fetch, write)


def _record(entity: str) -> RecordRef:
    ref = _records.get(entity)
    if ref is None:
        raise InvalidInput(f"one of {', '.join(sorted(_records)) or 'none'}", field="entity")
    return ref


def store_root() -> Path:
    settings = get_settings()
    return settings.attachments_dir or settings.data_dir / "attachments"


_OFFICE = {"word/": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
           "xl/": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def sniff(data: bytes) -> str | None:
    """The media type the content shows, or None when it is none of the kinds recognised."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    if data.startswith(b"PK\x03\x04"):
        try:
            names = zipfile.ZipFile(BytesIO(data)).namelist()
        except zipfile.BadZipFile:
            return None
        for prefix, media in _OFFICE.items():
            if any(name.startswith(prefix) for name in names):
                return media
        return "application/zip"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return "text/plain" if control_character(text, multiline=True) is None else None


def _write(data: bytes, sha: str) -> None:
    path = store_root() / sha[:2] / sha
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def add_attachment(session: Session, principal: Principal, entity: str, entity_id: int, data: bytes, *,
                   filename: str) -> Attachment:
    """Keep ``data`` as evidence on the record: within the size limit, of an allowed type, once per content."""
    ref = _record(entity)
    authorize(principal, "attachment:write")
    authorize(principal, ref.write)
    unit_id = ref.fetch(session, principal, entity_id)
    settings = get_settings()
    name = filename.strip().replace("\\", "/").rsplit("/", 1)[-1]
    if not name or len(name) > 255 or control_character(name) is not None:
        raise InvalidInput("a file name of 1–255 characters, without control characters", field="filename")
    if not data:
        raise InvalidInput("the file is empty", field="body")
    if len(data) > settings.attachment_max_bytes:
        raise InvalidInput(f"larger than {settings.attachment_max_bytes} bytes", field="body")
    media = sniff(data)
    if media is None or media not in settings.attachment_types:
        raise InvalidInput(f"not a file of an allowed type ({', '.join(settings.attachment_types)})",
                           field="body")
    sha = hashlib.sha256(data).hexdigest()
    _write(data, sha)
    row = Attachment(entity=entity, entity_id=str(entity_id), unit_id=unit_id, sha256=sha, size=len(data),
                     media_type=media, filename=name, uploaded_by=principal.actor, uploaded_at=utcnow())
    session.add(row)
    session.flush()
    audit.record(session, principal, action="attach", entity=entity, entity_id=entity_id,
                 after={"attachment": row.id, "filename": name, "sha256": sha, "size": len(data)}, unit_id=unit_id)
    return row


def list_attachments(session: Session, principal: Principal, entity: str, entity_id: int, *, limit: int = 50,
                     offset: int = 0) -> tuple[list[Attachment], int]:
    authorize(principal, "attachment:read")
    _record(entity).fetch(session, principal, entity_id)
    query = read.within(select(Attachment).where(Attachment.entity == entity,
                                                 Attachment.entity_id == str(entity_id)),
                        principal, unit=Attachment.unit_id)
    return read.page(session, query, limit=limit, offset=offset, order_by=(Attachment.id,))


def get_attachment(session: Session, principal: Principal, attachment_id: int) -> Attachment:
    """The attachment, if the principal may see its record (the record's own rule decides, then the unit's)."""
    authorize(principal, "attachment:read")
    row = read.one(session, read.within(select(Attachment).where(Attachment.id == attachment_id), principal,
                                        unit=Attachment.unit_id),
                   missing=f"no attachment with id {attachment_id}")
    ref = _records.get(row.entity)
    if ref is None:
        raise NotFound(f"no attachment with id {attachment_id}", field="id")
    try:
        ref.fetch(session, principal, int(row.entity_id))
    except NotFound:
        raise NotFound(f"no attachment with id {attachment_id}", field="id") from None
    return row


def read_content(row: Attachment) -> bytes:
    path = store_root() / row.sha256[:2] / row.sha256
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"the file of attachment {row.id} is missing from the store", field="id") from None
    if hashlib.sha256(data).hexdigest() != row.sha256:
        raise NotFound(f"the file of attachment {row.id} does not match its hash", field="id")
    return data
