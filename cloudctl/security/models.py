"""Tables of the security domain, first part: assets, report imports, findings and rectification tickets.

Findings follow DefectDojo's lessons: one row per scope and fingerprint (scanner family, plugin,
address, port, protocol, service — never evidence or times), so a re-import sorts the report into
created, untouched, closed and reactivated instead of piling up duplicates; status is a set of
flags (active, verified, false positive, risk accepted, out of scope) rather than one word.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, Float, ForeignKey, String, Text, UniqueConstraint, false, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cloudctl.core.models import Base, LabelledEnum, TimestampMixin, enum_column
from cloudctl.org.models import Unit

__all__ = ["Asset", "Finding", "ScanImport", "Severity", "Ticket", "TicketStatus"]


class Severity(LabelledEnum):
    CRITICAL = "critical", "严重", "bright_red"
    HIGH = "high", "高危", "red"
    MEDIUM = "medium", "中危", "yellow"
    LOW = "low", "低危", "cyan"
    INFO = "info", "信息", "bright_black"


class Asset(TimestampMixin, Base):
    """An address the scanners report on, tied to its unit where the extranet plan says whose it is."""

    __tablename__ = "security_assets"

    id: Mapped[int] = mapped_column(primary_key=True)
    ip: Mapped[str] = mapped_column(String(45), unique=True)
    hostname: Mapped[str | None] = mapped_column(String(255))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="SET NULL"), index=True)
    internet_exposed: Mapped[bool] = mapped_column(default=False, server_default=false())

    unit: Mapped[Unit | None] = relationship(lazy="joined")


class ScanImport(Base):
    """One report brought in (a scan cloudctl ran, or a file a carrier or vendor handed over), per scope."""

    __tablename__ = "security_imports"
    # The same file twice into one scope is the same import: it changes nothing the second time.
    __table_args__ = (UniqueConstraint("scope", "file_sha256", name="uq_security_imports_scope_sha"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(128), index=True)
    scanner: Mapped[str] = mapped_column(String(16))
    file_sha256: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(255))
    started_at: Mapped[datetime | None]
    imported_at: Mapped[datetime]
    imported_by: Mapped[str] = mapped_column(String(128))
    hosts: Mapped[list[str]] = mapped_column(JSON)
    counts: Mapped[dict[str, int]] = mapped_column(JSON)


class TicketStatus(LabelledEnum):
    OPEN = "open", "整改中", "yellow"
    CLOSED = "closed", "已整改(复测通过)", "green"


class Ticket(TimestampMixin, Base):
    """A rectification ticket (整改单) of one unit: it closes only when a later scan no longer shows its findings."""

    __tablename__ = "security_tickets"

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    scope: Mapped[str] = mapped_column(String(128))
    title: Mapped[str] = mapped_column(String(255))
    assignee: Mapped[str | None] = mapped_column(String(128))
    deadline: Mapped[date] = mapped_column(Date)
    status: Mapped[TicketStatus] = mapped_column(enum_column(TicketStatus, 16), index=True)
    # [{"from", "to", "by", "reason", "at"}]: every extension, with who approved it.
    extensions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    evidence: Mapped[str | None] = mapped_column(Text)
    closed_at: Mapped[datetime | None]
    closed_by_import_id: Mapped[int | None] = mapped_column(ForeignKey("security_imports.id", ondelete="SET NULL"))

    unit: Mapped[Unit] = relationship(lazy="joined", innerjoin=True)

    @property
    def unit_code(self) -> str:
        return self.unit.code


class Finding(TimestampMixin, Base):
    """One thing a scanner says about one service of one asset, kept across imports by its fingerprint."""

    __tablename__ = "security_findings"
    __table_args__ = (UniqueConstraint("scope", "fingerprint", name="uq_security_findings_scope_fingerprint"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(128))
    fingerprint: Mapped[str] = mapped_column(String(64))
    scanner: Mapped[str] = mapped_column(String(16))
    plugin_id: Mapped[str] = mapped_column(String(128))
    title: Mapped[str] = mapped_column(String(500))
    severity: Mapped[Severity] = mapped_column(enum_column(Severity, 16), index=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("security_assets.id", ondelete="CASCADE"), index=True)
    ip: Mapped[str] = mapped_column(String(45))
    port: Mapped[int | None]
    protocol: Mapped[str | None] = mapped_column(String(8))
    service: Mapped[str | None] = mapped_column(String(64))
    cve: Mapped[list[str]] = mapped_column(JSON, default=list)
    cvss: Mapped[float | None] = mapped_column(Float)
    description: Mapped[str] = mapped_column(Text, default="")
    solution: Mapped[str] = mapped_column(Text, default="")
    evidence: Mapped[str] = mapped_column(Text, default="")
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
    # DefectDojo's flags: what the finding is, rather than one status word.
    active: Mapped[bool] = mapped_column(default=True, server_default=true(), index=True)
    verified: Mapped[bool] = mapped_column(default=False, server_default=false())
    false_positive: Mapped[bool] = mapped_column(default=False, server_default=false())
    risk_accepted: Mapped[bool] = mapped_column(default=False, server_default=false())
    risk_accepted_by: Mapped[str | None] = mapped_column(String(128))
    risk_accepted_until: Mapped[date | None] = mapped_column(Date)
    out_of_scope: Mapped[bool] = mapped_column(default=False, server_default=false())
    mitigated_at: Mapped[datetime | None]
    sla_deadline: Mapped[date | None] = mapped_column(Date, index=True)
    last_import_id: Mapped[int | None] = mapped_column(ForeignKey("security_imports.id", ondelete="SET NULL"))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("security_tickets.id", ondelete="SET NULL"), index=True)

    asset: Mapped[Asset] = relationship(lazy="joined", innerjoin=True)

    @property
    def unit_code(self) -> str | None:
        return self.asset.unit.code if self.asset.unit is not None else None
