"""The rules of security findings (以查促改): imports reconciled by fingerprint, SLA deadlines, tickets that
close only on re-scan verification.

An import of a scope sorts the report against the scope's findings:

- **created**: a fingerprint the scope has not seen;
- **untouched**: still there (last seen and evidence refreshed);
- **reactivated**: there again after a scan had found it gone;
- **closed**: absent from this report although the report scanned its host (a host the report did not
  reach says nothing about its findings).

The same file into the same scope twice is one import: the second changes nothing.

Triage is the security team's, never the department's: a false positive is taken out of the live findings
(inactive) and stays out whatever later scans say; an accepted risk stays active but leaves the SLA, the
tickets and the exporter until its date passes (:func:`accepted_now`); a ticket's deadline moves only by an
approved extension, each one kept on the ticket.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.orm import Session

from cloudctl.core import audit, read
from cloudctl.core.auth import Principal, authorize
from cloudctl.core.config import get_settings
from cloudctl.core.errors import Conflict, InvalidInput
from cloudctl.core.models import beijing_today, utcnow
from cloudctl.core.text import control_character
from cloudctl.org.service import under
from cloudctl.security.calendar import add_working_days, china
from cloudctl.security.models import Asset, Finding, ScanImport, Severity, Ticket, TicketStatus
from cloudctl.security.scanners.base import ScanFinding, ScanReport, Target, merge_findings, scan_target
from cloudctl.security.scanners.parsers import ACCEPTED, parse_report
from cloudctl.security.service.assets import link_assets, owner_in_plan

__all__ = ["ACCEPT_CRITICAL_DAYS", "ACCEPT_MAX_DAYS", "EXTEND_MAX_DAYS", "SLA_DAYS", "ImportOutcome",
           "accept_risk", "accepted_now", "extend_ticket", "get_finding", "get_ticket", "import_report",
           "list_findings", "list_tickets", "mark_false_positive", "open_now", "open_tickets", "revoke_risk",
           "set_out_of_scope", "set_verified", "sla_deadline", "store_report", "unmark_false_positive"]

# Days to fix, by severity (the bureau's defaults; CLOUDCTL_SECURITY_SLA_DAYS overrides them).
SLA_DAYS = {"critical": 7, "high": 30, "medium": 90, "low": 120}
# Severities that get a rectification ticket; low and info stay in the findings list.
TICKETED = (Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM)
# How long a risk may be accepted (a critical one for less), and how far one extension may move a deadline.
ACCEPT_MAX_DAYS, ACCEPT_CRITICAL_DAYS, EXTEND_MAX_DAYS = 365, 90, 90
# A reason the audit log can be read by: "ok" or "n/a" is not one.
REASON_MIN, REASON_MAX = 4, 1000


def accepted_now(today: date | None = None) -> ColumnElement[bool]:
    """Findings whose risk is accepted today: an acceptance past its ``until`` counts as none.

    Every query that leaves accepted risks out (SLA, tickets, exporter, screen) uses this, so expiry needs no job.
    """
    today = today or beijing_today()
    return and_(Finding.risk_accepted.is_(True),
                or_(Finding.risk_accepted_until.is_(None), Finding.risk_accepted_until >= today))


def open_now(today: date | None = None) -> ColumnElement[bool]:
    """The findings that count against a unit today: live, not a false positive, not out of scope, no risk
    accepted today."""
    return and_(Finding.active.is_(True), Finding.false_positive.is_(False), Finding.out_of_scope.is_(False),
                ~accepted_now(today))


def sla_deadline(severity: str, first_seen: datetime) -> date | None:
    """The date a finding must be fixed by, counted from its Beijing date (the date it is later compared with):
    in calendar days, or in working days when so configured."""
    settings = get_settings()
    days = {**SLA_DAYS, **settings.security_sla_days}.get(severity)
    if days is None:
        return None
    if settings.security_sla_working_days:
        return add_working_days(beijing_today(first_seen), days, china())
    return beijing_today(first_seen) + timedelta(days=days)


class ImportOutcome(dict[str, Any]):
    """created / untouched / closed / reactivated counts, the import's id, and whether it was a repeat."""


def _assets(session: Session, principal: Principal, report: ScanReport) -> dict[str, Asset]:
    """The report's assets by target key, new ones owned where the extranet plan says, all linked to the cloud
    servers holding their addresses (which outranks the plan: see :mod:`.assets`).

    An address is an ``ip`` asset; a host the scanner named without one (a web scanner's URL, a host name) is a
    ``host`` or ``web`` asset by its host name, its URL kept: never an address it is not.
    """
    targets = {raw: _target(raw) for raw in {f.ip for f in report.findings} | set(report.hosts)}
    ips = sorted({t.ip for t in targets.values() if t.ip is not None})
    names = sorted({t.key for t in targets.values() if t.ip is None})
    by_key: dict[str, Asset] = {}
    for start in range(0, len(ips), 500):
        by_key.update({a.ip: a for a in session.scalars(select(Asset).where(Asset.ip.in_(ips[start:start + 500])))
                       if a.ip is not None})
    for start in range(0, len(names), 500):
        by_key.update({a.hostname: a for a in session.scalars(select(Asset).where(
            Asset.kind != "ip", Asset.hostname.in_(names[start:start + 500]))) if a.hostname is not None})
    hostnames = {targets[f.ip].key: f.hostname for f in report.findings if f.hostname}
    urls = {targets[f.ip].key: f.url for f in report.findings if f.url}
    for target in sorted(set(targets.values()), key=lambda t: t.key):
        key = target.key
        asset = by_key.get(key)
        if asset is None:
            kind = "ip" if target.ip is not None else ("web" if urls.get(key) else "host")
            asset = by_key[key] = Asset(kind=kind, ip=target.ip,
                                        unit_id=owner_in_plan(session, key) if target.ip is not None else None,
                                        hostname=hostnames.get(key) if target.ip is not None else target.hostname)
            session.add(asset)
        url = urls.get(key) or target.url
        if url and asset.url != url:
            asset.url = url
            if asset.kind == "host":
                asset.kind = "web"
    session.flush()
    link_assets(session, principal, ips=ips)
    return {raw: by_key[target.key] for raw, target in targets.items()}


def _target(raw: str) -> Target:
    try:
        return scan_target(raw)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="host") from None


def import_report(session: Session, principal: Principal, data: bytes, fmt: str, *, scope: str,
                  source: str = "upload") -> ImportOutcome:
    """Parse a report file and reconcile it into the scope (all of it, or nothing on a bad file)."""
    authorize(principal, "security.finding:import")
    if fmt not in ("nmap", "nessus", "gvm"):
        raise InvalidInput(f"unknown report format {fmt[:40]!r}: cloudctl imports {ACCEPTED}", field="format")
    return store_report(session, principal, parse_report(data, fmt), scope=scope, source=source)  # type: ignore[arg-type]


def store_report(session: Session, principal: Principal, report: ScanReport, *, scope: str,
                 source: str) -> ImportOutcome:
    authorize(principal, "security.finding:import")
    scope = scope.strip()
    if not scope or len(scope) > 128:
        raise InvalidInput("name the scope the report covers (e.g. 2026Q4-unicom-extranet), 1–128 characters",
                           field="scope")
    found = control_character(scope)
    if found is not None:
        raise InvalidInput(f"must not contain control characters (found {found})", field="scope")
    repeat = session.scalar(select(ScanImport).where(ScanImport.scope == scope,
                                                     ScanImport.file_sha256 == report.file_sha256))
    if repeat is not None:
        return ImportOutcome(created=0, untouched=0, closed=0, reactivated=0, import_id=repeat.id, repeat=True)
    now = utcnow()
    record = ScanImport(scope=scope, scanner=report.scanner, file_sha256=report.file_sha256, source=source[:255],
                        started_at=report.started_at, imported_at=now, imported_by=principal.actor,
                        hosts=list(report.hosts), counts={})
    session.add(record)
    session.flush()
    assets = _assets(session, principal, report)
    existing = {f.fingerprint: f for f in session.scalars(select(Finding).where(Finding.scope == scope))}
    counts = {"created": 0, "untouched": 0, "closed": 0, "reactivated": 0}
    seen: set[str] = set()
    # One report may name one finding several times (a web scanner per path, two NSE outputs of one script):
    # one finding, with the evidence of each.
    for item in merge_findings(report.findings):
        fingerprint = item.fingerprint
        seen.add(fingerprint)
        finding = existing.get(fingerprint)
        if finding is None:
            session.add(_new(item, scope, fingerprint, assets[item.ip], record, now))
            counts["created"] += 1
            continue
        _refresh(finding, item, record, now)
        if finding.false_positive:
            # Sticky: the scanner still says so, the team has judged it is not so. Only mitigated_at (None:
            # still reported) follows the scans, so un-marking knows whether it is live.
            finding.mitigated_at = None
            counts["untouched"] += 1
        elif finding.active:
            counts["untouched"] += 1
        else:
            finding.active, finding.mitigated_at = True, None
            counts["reactivated"] += 1
    # Closed by re-scan: what the report scanned, by asset, so an address spelt another way is the same host.
    scanned = {assets[key].id for key in set(report.hosts) | {f.ip for f in report.findings}}
    for fingerprint, finding in existing.items():
        if fingerprint in seen or finding.asset_id not in scanned:
            continue
        if finding.active:
            finding.active, finding.mitigated_at = False, now
            counts["closed"] += 1
        elif finding.false_positive and finding.mitigated_at is None:
            finding.mitigated_at = now  # gone from the scan: un-marking it will not make it live
    session.flush()
    closed_tickets = _verify_tickets(session, scope, record)
    record.counts = {**counts, "tickets_closed": closed_tickets}
    audit.record(session, principal, action="import", entity="security_import", entity_id=record.id,
                 after={"scope": scope, "scanner": report.scanner, "source": record.source, **record.counts})
    return ImportOutcome(**counts, tickets_closed=closed_tickets, import_id=record.id, repeat=False)


def _new(item: ScanFinding, scope: str, fingerprint: str, asset: Asset, record: ScanImport, now: datetime) -> Finding:
    return Finding(scope=scope, fingerprint=fingerprint, scanner=item.scanner, plugin_id=item.plugin_id[:128],
                   title=item.title[:500], severity=Severity(item.severity), asset=asset, asset_id=asset.id,
                   ip=asset.ip, port=item.port, protocol=item.protocol, service=item.service, cve=list(item.cve),
                   cvss=item.cvss, description=item.description, solution=item.solution, evidence=item.evidence,
                   first_seen=now, last_seen=now, sla_deadline=sla_deadline(item.severity, now),
                   last_import_id=record.id)


def _refresh(finding: Finding, item: ScanFinding, record: ScanImport, now: datetime) -> None:
    finding.last_seen, finding.evidence, finding.last_import_id = now, item.evidence, record.id
    finding.title, finding.cvss, finding.cve = item.title[:500], item.cvss, list(item.cve)


def _verify_tickets(session: Session, scope: str, record: ScanImport) -> int:
    """A ticket closes when this scope's scan no longer shows any of its findings (re-scan verification)."""
    closed = 0
    for ticket in session.scalars(select(Ticket).where(Ticket.scope == scope, Ticket.status == TicketStatus.OPEN)):
        # Accepted risks still hold a ticket open: accepting defers the fix, it does not verify it.
        still = session.scalar(select(func.count()).where(Finding.ticket_id == ticket.id, Finding.active.is_(True),
                                                          Finding.false_positive.is_(False),
                                                          Finding.out_of_scope.is_(False)))
        if not still:
            ticket.status, ticket.closed_at, ticket.closed_by_import_id = TicketStatus.CLOSED, utcnow(), record.id
            closed += 1
    session.flush()
    return closed


# ---------------------------------------------------------------- reading


def _finding_query(principal: Principal) -> Select[Finding]:
    return read.within(select(Finding).join(Finding.asset), principal, unit=Asset.unit_id)


def list_findings(session: Session, principal: Principal, *, scope: str | None = None, unit: str | None = None,
                  severity: Severity | None = None, active: bool | None = True, overdue: bool = False,
                  business_system: int | None = None, mlps_level: int | None = None,
                  limit: int = 50, offset: int = 0) -> tuple[list[Finding], int]:
    authorize(principal, "security.finding:read")
    query = _finding_query(principal)
    if scope is not None:
        query = query.where(Finding.scope == scope)
    if unit is not None:
        query = query.where(under(session, principal, unit, Asset.unit_id))
    if severity is not None:
        query = query.where(Finding.severity == severity)
    # By the asset's business system and MLPS level (see .assets: taken from the cloud server it is on).
    if business_system is not None:
        query = query.where(Asset.business_system_id == business_system)
    if mlps_level is not None:
        query = query.where(Asset.mlps_level == mlps_level)
    if active is not None:
        query = query.where(Finding.active.is_(active))
    if overdue:  # past the deadline and still counting against the unit, as the exporter counts it
        today = beijing_today()
        query = query.where(Finding.sla_deadline < today, open_now(today))
    return read.page(session, query, limit=limit, offset=offset,
                     order_by=(Finding.sla_deadline.is_(None), Finding.sla_deadline, Finding.id))


def get_finding(session: Session, principal: Principal, finding_id: int) -> Finding:
    authorize(principal, "security.finding:read")
    return read.one(session, _finding_query(principal).where(Finding.id == finding_id),
                    missing=f"no finding with id {finding_id}")


def open_tickets(session: Session, principal: Principal, *, scope: str) -> list[Ticket]:
    """Group the scope's active medium-and-worse findings that have no ticket into one ticket per unit."""
    authorize(principal, "security.ticket:write")
    loose = list(session.scalars(select(Finding).join(Finding.asset).where(
        Finding.scope == scope, open_now(), Finding.ticket_id.is_(None), Finding.severity.in_(TICKETED),
        Asset.unit_id.is_not(None))))
    by_unit: dict[int, list[Finding]] = {}
    for finding in loose:
        assert finding.asset.unit_id is not None
        by_unit.setdefault(finding.asset.unit_id, []).append(finding)
    tickets = []
    for unit_id, findings in sorted(by_unit.items()):
        deadlines = [f.sla_deadline for f in findings if f.sla_deadline is not None]
        tickets.append(Ticket(unit_id=unit_id, scope=scope, status=TicketStatus.OPEN,
                              title=f"{scope}: {len(findings)} 项漏洞整改", deadline=min(deadlines) if deadlines
                              else beijing_today() + timedelta(days=30), extensions=[]))
    session.add_all(tickets)
    session.flush()  # one flush gives every ticket its id, in the order added
    for ticket, (unit_id, findings) in zip(tickets, sorted(by_unit.items()), strict=True):
        for finding in findings:
            finding.ticket_id = ticket.id
        audit.record(session, principal, action="open", entity="security_ticket", entity_id=ticket.id,
                     after={"scope": scope, "findings": len(findings), "deadline": ticket.deadline},
                     unit_id=unit_id)
    session.flush()
    return tickets


def list_tickets(session: Session, principal: Principal, *, status: TicketStatus | None = None,
                 limit: int = 50, offset: int = 0) -> tuple[list[Ticket], int]:
    authorize(principal, "security.ticket:read")
    query = read.within(select(Ticket), principal, unit=Ticket.unit_id)
    if status is not None:
        query = query.where(Ticket.status == status)
    return read.page(session, query, limit=limit, offset=offset, order_by=(Ticket.deadline, Ticket.id))


def get_ticket(session: Session, principal: Principal, ticket_id: int) -> Ticket:
    authorize(principal, "security.ticket:read")
    query = read.within(select(Ticket).where(Ticket.id == ticket_id), principal, unit=Ticket.unit_id)
    return read.one(session, query, missing=f"no ticket with id {ticket_id}")


# ---------------------------------------------------------------- triage (the security team's, not the unit's)

_TRIAGE_FIELDS = ("active", "verified", "false_positive", "out_of_scope", "risk_accepted", "risk_accepted_by",
                  "risk_accepted_until")


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not REASON_MIN <= len(reason) <= REASON_MAX:
        raise InvalidInput(f"say why, {REASON_MIN}–{REASON_MAX} characters", field="reason")
    return reason


def _triage(session: Session, principal: Principal, finding_id: int) -> Finding:
    """The finding, for a principal allowed to judge it (a department may not judge its own)."""
    authorize(principal, "security.finding:write")
    return get_finding(session, principal, finding_id)


def _audit_finding(session: Session, principal: Principal, finding: Finding, action: str,
                   before: dict[str, Any], reason: str) -> None:
    after = {**audit.snapshot(finding, _TRIAGE_FIELDS), "reason": reason}
    audit.record(session, principal, action=action, entity="security_finding", entity_id=finding.id,
                 before={**before, "reason": None}, after=after, unit_id=finding.asset.unit_id)


def mark_false_positive(session: Session, principal: Principal, finding_id: int, reason: str) -> Finding:
    """误报: out of the live findings, the SLA and the tickets, and kept out by later scans that still report it."""
    finding = _triage(session, principal, finding_id)
    reason = _reason(reason)
    if finding.false_positive:
        raise Conflict(f"finding {finding.id} is already a false positive", field="false_positive")
    before = audit.snapshot(finding, _TRIAGE_FIELDS)
    finding.false_positive, finding.active = True, False
    session.flush()
    _audit_finding(session, principal, finding, "false-positive", before, reason)
    return finding


def unmark_false_positive(session: Session, principal: Principal, finding_id: int, reason: str) -> Finding:
    """Undo a false positive: live again if the last scan of its host still reported it."""
    finding = _triage(session, principal, finding_id)
    reason = _reason(reason)
    if not finding.false_positive:
        raise Conflict(f"finding {finding.id} is not a false positive", field="false_positive")
    before = audit.snapshot(finding, _TRIAGE_FIELDS)
    finding.false_positive, finding.active = False, finding.mitigated_at is None
    session.flush()
    _audit_finding(session, principal, finding, "false-positive-undo", before, reason)
    return finding


def _set_flag(session: Session, principal: Principal, finding_id: int, reason: str, flag: str, value: bool, *,
              label: str, action: str) -> Finding:
    """Set one of the team's yes/no judgements on a finding, audited as ``action`` (``action-undo`` when cleared)."""
    finding = _triage(session, principal, finding_id)
    reason = _reason(reason)
    if getattr(finding, flag) is value:
        raise Conflict(f"finding {finding.id} is {'already' if value else 'not'} {label}", field=flag)
    before = audit.snapshot(finding, _TRIAGE_FIELDS)
    setattr(finding, flag, value)
    session.flush()
    _audit_finding(session, principal, finding, action if value else f"{action}-undo", before, reason)
    return finding


def set_verified(session: Session, principal: Principal, finding_id: int, reason: str, *,
                 verified: bool = True) -> Finding:
    """Verified (已验证): a person confirmed the scanner's finding is real (or, ``verified=False``, takes that back).

    It changes no count: a scanner's finding counts against its unit from the start; verification is what the
    rectification notice can stand on.
    """
    return _set_flag(session, principal, finding_id, reason, "verified", verified, label="verified",
                     action="verify")


def set_out_of_scope(session: Session, principal: Principal, finding_id: int, reason: str, *,
                     out_of_scope: bool = True) -> Finding:
    """Out of scope (不在范围): not the bureau's to fix (a host outside the government networks a carrier's scan
    reached, a system handed over to another authority). It leaves the SLA, the tickets and the counts while
    ``active`` keeps following the scans, so taking it back (``out_of_scope=False``) shows it as it is now."""
    return _set_flag(session, principal, finding_id, reason, "out_of_scope", out_of_scope, label="out of scope",
                     action="out-of-scope")


def accept_risk(session: Session, principal: Principal, finding_id: int, reason: str, until: date) -> Finding:
    """Accept the risk until a date (at most a year; a critical finding at most 90 days); again to renew."""
    finding = _triage(session, principal, finding_id)
    reason = _reason(reason)
    today = beijing_today()
    if until <= today:
        raise InvalidInput("must be a date after today", field="until")
    if until > today + timedelta(days=ACCEPT_MAX_DAYS):
        raise InvalidInput(f"at most {ACCEPT_MAX_DAYS} days away ({today + timedelta(days=ACCEPT_MAX_DAYS)})",
                           field="until")
    if finding.severity is Severity.CRITICAL and until > today + timedelta(days=ACCEPT_CRITICAL_DAYS):
        raise InvalidInput(f"a critical finding's risk is accepted for at most {ACCEPT_CRITICAL_DAYS} days "
                           f"({today + timedelta(days=ACCEPT_CRITICAL_DAYS)})", field="until")
    before = audit.snapshot(finding, _TRIAGE_FIELDS)
    finding.risk_accepted, finding.risk_accepted_by, finding.risk_accepted_until = True, principal.actor, until
    session.flush()
    _audit_finding(session, principal, finding, "accept-risk", before, reason)
    return finding


def revoke_risk(session: Session, principal: Principal, finding_id: int, reason: str) -> Finding:
    """Withdraw a risk acceptance (an expired one too): the finding counts against its SLA again."""
    finding = _triage(session, principal, finding_id)
    reason = _reason(reason)
    if not finding.risk_accepted:
        raise Conflict(f"finding {finding.id} has no accepted risk", field="risk_accepted")
    before = audit.snapshot(finding, _TRIAGE_FIELDS)
    finding.risk_accepted, finding.risk_accepted_by, finding.risk_accepted_until = False, None, None
    session.flush()
    _audit_finding(session, principal, finding, "revoke-risk", before, reason)
    return finding


def extend_ticket(session: Session, principal: Principal, ticket_id: int, to: date, reason: str) -> Ticket:
    """Move an open ticket's deadline later (at most 90 days per extension), approved by the security team."""
    authorize(principal, "security.ticket:write")
    ticket = get_ticket(session, principal, ticket_id)
    reason = _reason(reason)
    if ticket.status is not TicketStatus.OPEN:
        raise Conflict(f"ticket {ticket.id} is {ticket.status.value}: only an open ticket is extended",
                       field="status")
    if to <= ticket.deadline:
        raise InvalidInput(f"must be after the current deadline {ticket.deadline}", field="to")
    if to > ticket.deadline + timedelta(days=EXTEND_MAX_DAYS):
        raise InvalidInput(f"at most {EXTEND_MAX_DAYS} days after the current deadline "
                           f"({ticket.deadline + timedelta(days=EXTEND_MAX_DAYS)})", field="to")
    previous = ticket.deadline
    entry = {"from": previous.isoformat(), "to": to.isoformat(), "by": principal.actor, "reason": reason,
             "at": utcnow().isoformat()}
    ticket.extensions = [*(ticket.extensions or []), entry]  # a new list: SQLAlchemy sees the JSON change
    ticket.deadline = to
    session.flush()
    audit.record(session, principal, action="extend", entity="security_ticket", entity_id=ticket.id,
                 before={"deadline": previous}, after={"deadline": to, "reason": reason}, unit_id=ticket.unit_id)
    return ticket
