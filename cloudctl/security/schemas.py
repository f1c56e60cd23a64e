"""Input and output shapes of the security domain."""

from __future__ import annotations

from datetime import date, datetime

from cloudctl.core.schemas import Schema
from cloudctl.security.models import Severity, TicketStatus

__all__ = ["FindingPublic", "TicketPublic"]


class FindingPublic(Schema):
    id: int
    scope: str
    fingerprint: str
    scanner: str
    plugin_id: str
    title: str
    severity: Severity
    ip: str
    port: int | None
    protocol: str | None
    service: str | None
    unit_code: str | None
    cve: list[str]
    cvss: float | None
    active: bool
    verified: bool
    false_positive: bool
    risk_accepted: bool
    out_of_scope: bool
    first_seen: datetime
    last_seen: datetime
    mitigated_at: datetime | None
    sla_deadline: date | None
    ticket_id: int | None


class TicketPublic(Schema):
    id: int
    unit_code: str
    scope: str
    title: str
    assignee: str | None
    deadline: date
    status: TicketStatus
    closed_at: datetime | None
    closed_by_import_id: int | None
