"""`cloudctl sec …`: report imports, findings and rectification tickets."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, cast

import typer
import yaml

from cloudctl.core import attachments, tabular
from cloudctl.core.cli_support import OffsetOption, OutputOption, UnitFilter, limit_option, print_list, unit_of_work
from cloudctl.core.config import get_settings
from cloudctl.core.display import local_time
from cloudctl.core.errors import InvalidInput
from cloudctl.core.models import utcnow
from cloudctl.core.output import OutputFormat, console, err_console, print_json, print_one, print_rows, write_text
from cloudctl.core.schemas import parse
from cloudctl.security.models import (
    AlertStatus,
    DrillPhase,
    IncidentLevel,
    IncidentStatus,
    ItemStatus,
    OperatorKind,
    Severity,
    StepStatus,
    TicketStatus,
    Verdict,
)
from cloudctl.security.scanners.parsers import MAX_REPORT_BYTES
from cloudctl.security.schemas import (
    AlertPublic,
    AssetLevelIn,
    AssetPublic,
    BlockIn,
    DrillItemPublic,
    DrillPublic,
    DutyPeriodPublic,
    DutyShiftPublic,
    ExtensionIn,
    FindingPublic,
    ReasonIn,
    RiskAcceptanceIn,
    StepIn,
    TicketPublic,
)
from cloudctl.security.service import alerts, assets, drill_summary, drills, duty, incidents, runs
from cloudctl.security.service import findings as service
from cloudctl.security.service import rectification as _rectification  # noqa: F401  (its reminders: job workers)

__all__ = ["security_app"]

security_app = typer.Typer(help="Security operations (安全运营): scan reports, findings, rectification tickets.",
                           no_args_is_help=True)


@security_app.command("import")
def sec_import(file: Path = typer.Argument(..., help="an nmap XML, Nessus .nessus or Greenbone XML report"),
               fmt: str = typer.Option(..., "--format", help="nmap, nessus or gvm"),
               scope: str = typer.Option(..., help="what the report covers, e.g. 2026Q4-unicom-extranet"),
               output: OutputFormat = OutputOption) -> None:
    """Import a report: prints created / untouched / closed / reactivated; the same file twice does nothing."""
    with tabular.in_file(file):
        data = tabular.read_bytes(file, max_bytes=MAX_REPORT_BYTES)
        with unit_of_work() as (session, principal):
            outcome = service.import_report(session, principal, data, fmt, scope=scope, source=file.name)
    if output is OutputFormat.JSON:
        sys.stdout.write(json.dumps(dict(outcome)) + "\n")
        return
    note = " (already imported: nothing changed)" if outcome["repeat"] else ""
    console.print(f"created {outcome['created']}, untouched {outcome['untouched']}, closed {outcome['closed']}, "
                  f"reactivated {outcome['reactivated']}{note}")


@security_app.command("findings")
def sec_findings(scope: str | None = typer.Option(None), unit: str | None = UnitFilter,
                 severity: Severity | None = typer.Option(None, case_sensitive=False),
                 closed: bool = typer.Option(False, "--closed", help="the closed ones instead of the active"),
                 overdue: bool = typer.Option(False, "--overdue", help="past their SLA deadline"),
                 system: int | None = typer.Option(None, "--system", help="business system id (业务系统)"),
                 mlps_level: int | None = typer.Option(None, "--mlps-level", min=1, max=4, help="等保级别"),
                 limit: int | None = limit_option(), offset: int = OffsetOption,
                 output: OutputFormat = OutputOption) -> None:
    """Findings, earliest deadline first."""
    with unit_of_work() as (session, principal):
        print_list(partial(service.list_findings, session, principal, scope=scope, unit=unit, severity=severity,
                           active=not closed, overdue=overdue, business_system=system, mlps_level=mlps_level),
                   FindingPublic, [
            ("id", lambda f: f.id), ("severity", lambda f: f.severity), ("target", lambda f: f.target),
            ("port", lambda f: f"{f.port}/{f.protocol}" if f.port else None), ("title", lambda f: f.title[:50]),
            ("unit", lambda f: f.unit_code), ("等保", lambda f: f.mlps_level), ("deadline", lambda f: f.sla_deadline),
            ("ticket", lambda f: f.ticket_id),
        ], output, limit=limit, offset=offset, title="漏洞 findings")


asset_app = typer.Typer(help="Assets (资产): scanned addresses, their unit, cloud server, business system and "
                             "MLPS level.", no_args_is_help=True)
security_app.add_typer(asset_app, name="asset")


def _level(asset: AssetPublic) -> str | None:
    if asset.mlps_level is None:
        return None
    source = asset.mlps_level_source
    return f"{asset.mlps_level} ({source.label})" if source is not None else str(asset.mlps_level)


@asset_app.command("list")
def asset_list(unit: str | None = UnitFilter,
               system: int | None = typer.Option(None, "--system", help="business system id (业务系统)"),
               mlps_level: int | None = typer.Option(None, "--mlps-level", min=1, max=4, help="等保级别"),
               linked: bool | None = typer.Option(None, "--linked/--unlinked",
                                                  help="only those on a cloud server, or only those not"),
               ip: str | None = typer.Option(None, "--ip"), limit: int | None = limit_option(),
               offset: int = OffsetOption, output: OutputFormat = OutputOption) -> None:
    """Assets; a department sees its own unit's."""
    with unit_of_work() as (session, principal):
        print_list(partial(assets.list_assets, session, principal, unit=unit, business_system=system,
                           mlps_level=mlps_level, linked=linked, ip=ip), AssetPublic, [
            ("id", lambda a: a.id), ("ip", lambda a: a.ip or a.url), ("host", lambda a: a.hostname),
            ("unit", lambda a: a.unit_code), ("server 云主机", lambda a: a.server_name),
            ("system 业务系统", lambda a: a.business_system), ("等保", _level),
            ("internet", lambda a: a.internet_exposed),
            ("baseline", lambda a: f"{a.baseline_passed}/{a.baseline_checks}" if a.baseline_checks else None),
        ], output, limit=limit, offset=offset, title="资产 assets")


@asset_app.command("show")
def asset_show(asset_id: int = typer.Argument(...), output: OutputFormat = OutputOption) -> None:
    """One asset."""
    with unit_of_work() as (session, principal):
        asset = AssetPublic.model_validate(assets.get_asset(session, principal, asset_id))
    print_one(asset, output, title=f"资产 {asset.target}")


@asset_app.command("level")
def asset_level(asset_id: int = typer.Argument(...),
                level: int | None = typer.Argument(None, help="1–4; leave out with --system to follow the system"),
                follow_system: bool = typer.Option(False, "--system", help="follow the business system's level again"),
                reason: str = typer.Option(..., help="why (kept in the audit log)")) -> None:
    """Set an asset's MLPS level (等保级别) by hand; later links to the cloud keep it."""
    if (level is None) != follow_system:
        raise InvalidInput("give a level, or --system to follow the business system's", field="mlps_level")
    data = parse(AssetLevelIn, {"mlps_level": level, "reason": reason})
    with unit_of_work() as (session, principal):
        asset = assets.set_mlps_level(session, principal, asset_id, data.mlps_level, data.reason)
        source = asset.mlps_level_source.label if asset.mlps_level_source is not None else "未定级"
        console.print(f"asset {asset.id} ({asset.target}): MLPS level {asset.mlps_level or '–'} ({source})")


@security_app.command("tickets")
def sec_tickets(open_scope: str | None = typer.Option(None, "--open", help="first open tickets for this scope"),
                status: TicketStatus | None = typer.Option(None), limit: int | None = limit_option(),
                offset: int = OffsetOption, output: OutputFormat = OutputOption) -> None:
    """Rectification tickets (整改单), per unit; `--open SCOPE` groups the scope's loose findings into new ones."""
    with unit_of_work() as (session, principal):
        if open_scope:
            opened = service.open_tickets(session, principal, scope=open_scope)
            (err_console if output is OutputFormat.JSON else console).print(f"{len(opened)} ticket(s) opened")
        print_list(partial(service.list_tickets, session, principal, status=status), TicketPublic, [
            ("id", lambda t: t.id), ("unit", lambda t: t.unit_code), ("scope", lambda t: t.scope),
            ("title", lambda t: t.title), ("deadline", lambda t: t.deadline), ("status", lambda t: t.status),
        ], output, limit=limit, offset=offset, title="整改单 tickets")


@security_app.command("false-positive")
def sec_false_positive(finding_id: int = typer.Argument(...),
                       reason: str = typer.Option(..., help="why it is not so (kept in the audit log)"),
                       undo: bool = typer.Option(False, "--undo", help="it is a real finding after all")) -> None:
    """Mark a finding a false positive (误报): out of the live findings, and later scans keep it out."""
    data = parse(ReasonIn, {"reason": reason})
    with unit_of_work() as (session, principal):
        if undo:
            finding = service.unmark_false_positive(session, principal, finding_id, data.reason)
            state = "active" if finding.active else "closed"
            console.print(f"finding {finding.id}: no longer a false positive ({state})")
        else:
            finding = service.mark_false_positive(session, principal, finding_id, data.reason)
            console.print(f"finding {finding.id}: false positive")


@security_app.command("verify")
def sec_verify(finding_id: int = typer.Argument(...),
               reason: str = typer.Option(..., help="how it was confirmed (kept in the audit log)"),
               undo: bool = typer.Option(False, "--undo", help="take the verification back")) -> None:
    """Mark a finding verified (已验证): a person confirmed it is real. Counts do not change."""
    data = parse(ReasonIn, {"reason": reason})
    with unit_of_work() as (session, principal):
        finding = service.set_verified(session, principal, finding_id, data.reason, verified=not undo)
        console.print(f"finding {finding.id}: {'verified' if finding.verified else 'no longer verified'}")


@security_app.command("out-of-scope")
def sec_out_of_scope(finding_id: int = typer.Argument(...),
                     reason: str = typer.Option(..., help="why it is not the bureau's to fix (kept in the audit log)"),
                     undo: bool = typer.Option(False, "--undo", help="it is in scope after all")) -> None:
    """Mark a finding out of scope (不在范围): out of the SLA, the tickets and the counts; scans still follow it."""
    data = parse(ReasonIn, {"reason": reason})
    with unit_of_work() as (session, principal):
        finding = service.set_out_of_scope(session, principal, finding_id, data.reason, out_of_scope=not undo)
        state = "out of scope" if finding.out_of_scope else f"in scope ({'active' if finding.active else 'closed'})"
        console.print(f"finding {finding.id}: {state}")


@security_app.command("accept-risk")
def sec_accept_risk(finding_id: int = typer.Argument(...),
                    reason: str = typer.Option(..., help="why the risk is borne (kept in the audit log)"),
                    until: str | None = typer.Option(None, help="YYYY-MM-DD: at most a year away, 90 days if critical"),
                    revoke: bool = typer.Option(False, "--revoke", help="withdraw the acceptance")) -> None:
    """Accept a finding's risk until a date (it leaves the SLA and the tickets until then), or --revoke it."""
    with unit_of_work() as (session, principal):
        if revoke:
            data = parse(ReasonIn, {"reason": reason})
            finding = service.revoke_risk(session, principal, finding_id, data.reason)
            console.print(f"finding {finding.id}: risk acceptance revoked")
        else:
            accepted = parse(RiskAcceptanceIn, {"reason": reason, "until": until})
            finding = service.accept_risk(session, principal, finding_id, accepted.reason, accepted.until)
            console.print(f"finding {finding.id}: risk accepted until {finding.risk_accepted_until}")


@security_app.command("extend")
def sec_extend(ticket_id: int = typer.Argument(...),
               to: str = typer.Option(..., help="YYYY-MM-DD: the new deadline, at most 90 days after the current"),
               reason: str = typer.Option(..., help="why the unit needs longer (kept on the ticket)")) -> None:
    """Extend an open rectification ticket's deadline (延期), as its approver."""
    data = parse(ExtensionIn, {"to": to, "reason": reason})
    with unit_of_work() as (session, principal):
        ticket = service.extend_ticket(session, principal, ticket_id, data.to, data.reason)
        console.print(f"ticket {ticket.id}: deadline {ticket.deadline} ({len(ticket.extensions)} extension(s))")


@security_app.command("alerts")
def sec_alerts(status: AlertStatus | None = typer.Option(None), limit: int | None = limit_option(),
               offset: int = OffsetOption, output: OutputFormat = OutputOption) -> None:
    """Alerts, newest first, with their verdict and how far the response has come."""
    with unit_of_work() as (session, principal):
        print_list(partial(alerts.list_alerts, session, principal, status=status), AlertPublic, [
            ("id", lambda a: a.id), ("severity", lambda a: a.severity), ("title", lambda a: a.title[:40]),
            ("src", lambda a: a.src_ip), ("unit", lambda a: a.unit_code), ("status", lambda a: a.status),
            ("verdict", lambda a: a.verdict),
            ("steps", lambda a: f"{sum(s.status.value != 'pending' for s in a.steps)}/{len(a.steps)}"
             if a.steps else None),
        ], output, limit=limit, offset=offset, title="告警 alerts")


@security_app.command("incidents")
def sec_incidents(status: IncidentStatus | None = typer.Option(None), level: IncidentLevel | None = typer.Option(None),
                  limit: int | None = limit_option(), offset: int = OffsetOption,
                  output: OutputFormat = OutputOption) -> None:
    """Incidents (网络安全事件), newest first: level, reporting deadline, how far the response has come."""
    with unit_of_work() as (session, principal):
        print_list(partial(incidents.list_incidents, session, principal, status=status, level=level),
                   lambda rows: [incidents.public(session, i) for i in rows], [
            ("id", lambda i: i.id), ("level", lambda i: i.level_label), ("title", lambda i: i.title[:40]),
            ("unit", lambda i: i.unit_code), ("source", lambda i: i.source_ip), ("status", lambda i: i.status),
            ("report due", lambda i: _local(i.report_due_at)), ("reported", lambda i: _local(i.reported_at)),
            ("overdue", lambda i: i.report_overdue or None),
            ("steps", lambda i: f"{sum(s.status.value != 'pending' for s in i.steps)}/{len(i.steps)}"),
        ], output, limit=limit, offset=offset, title="网络安全事件 incidents")


@security_app.command("incident")
def sec_incident(incident_id: int = typer.Argument(...), output: OutputFormat = OutputOption) -> None:
    """One incident: its level, deadline and reports, and its six steps with owner, time and log."""
    with unit_of_work() as (session, principal):
        row = incidents.public(session, incidents.get_incident(session, principal, incident_id))
    print_one(row, output, title=f"事件 incident {row.id}", table_omits=("steps", "reports"),
              table_only={"alert_ids": ", ".join(str(a) for a in row.alert_ids)})
    if output is not OutputFormat.JSON:
        print_rows(row.steps, [("step", lambda s: s.label), ("status", lambda s: s.status),
                               ("owner", lambda s: s.owner), ("done", lambda s: _local(s.done_at)),
                               ("minutes", lambda s: round(s.seconds / 60, 1) if s.seconds is not None else None),
                               ("log", lambda s: len(s.log))], output, title="处置步骤 steps")
        print_rows(row.reports, [("reporter", lambda r: r.reporter), ("to", lambda r: r.recipient),
                                 ("at", lambda r: _local(r.reported_at)), ("late", lambda r: r.late),
                                 ("content", lambda r: r.content[:40])], output, title="事件报告 reports")


@security_app.command("incident-open")
def sec_incident_open(alert_id: int = typer.Argument(...),
                      level: IncidentLevel | None = typer.Option(None, help="extraordinary 特别重大, major 重大, "
                                                                            "large 较大, general 一般"),
                      operator_kind: OperatorKind = typer.Option(OperatorKind.OTHER, "--operator-kind",
                                                                 help="cii, state_organ or other"),
                      title: str | None = typer.Option(None), join: int | None = typer.Option(
                          None, help="join this open incident instead")) -> None:
    """An alert judged an attack opens an incident (with its level and reporting deadline) or joins one."""
    data = parse(incidents.IncidentOpen, {"level": level, "operator_kind": operator_kind, "title": title,
                                          "join": join})
    with unit_of_work() as (session, principal):
        incident = incidents.open_incident(session, principal, alert_id, data)
        due = f", report due {_local(incident.report_due_at)}" if incident.report_due_at else ""
        console.print(f"alert {alert_id} is in incident {incident.id} ({incident.level.label}{due})")


@security_app.command("incident-report")
def sec_incident_report(incident_id: int = typer.Argument(...), to: str = typer.Option(..., help="e.g. 省委网信办"),
                        content: str = typer.Option(...), reporter: str | None = typer.Option(None),
                        at: str | None = typer.Option(None, help="when it was reported (ISO time with zone)")) -> None:
    """Record the incident's report to the authority: who, to whom, when, what."""
    data = parse(incidents.ReportIn, {"recipient": to, "content": content, "reporter": reporter, "reported_at": at})
    with unit_of_work() as (session, principal):
        report = incidents.file_report(session, principal, incident_id, data)
        console.print(f"incident {incident_id}: reported to {report.recipient} at {_local(report.reported_at)}"
                      + (" (late 迟报)" if report.late else ""))


@security_app.command("incident-step")
def sec_incident_step(
        incident_id: int = typer.Argument(...),
        step: str = typer.Argument(..., help="block, respond, investigate, kill, record or reply"),
        status: str | None = typer.Option(None, help="done or skipped; without it, a log entry"),
        note: str | None = typer.Option(None), owner: str | None = typer.Option(None),
        block_ip: str | None = typer.Option(None, "--block-ip", help="阻断: the source (default: the incident's)"),
        block_expires: str | None = typer.Option(None, "--block-expires", help="阻断: ISO time with zone"),
        filing_number: str | None = typer.Option(None, "--filing-number", help="备案: the filing number"),
        filing_recipient: str | None = typer.Option(None, "--filing-recipient", help="备案: filed with"),
        reply_to: str | None = typer.Option(None, "--reply-to", help="回复: to whom"),
        reply: str | None = typer.Option(None, help="回复: what was replied")) -> None:
    """Work an incident's step: a log entry, an owner, or done (阻断 blocks the source through the guard)."""
    data = parse(incidents.StepUpdate, {k: v for k, v in {
        "status": status, "note": note, "owner": owner, "block_ip": block_ip, "block_expires_at": block_expires,
        "filing_number": filing_number, "filing_recipient": filing_recipient, "reply_to": reply_to,
        "reply": reply}.items() if v is not None})
    with unit_of_work() as (session, principal):
        incident = incidents.update_step(session, principal, incident_id, step, data)
        found = next(s for s in incident.steps if s.step == step)
        console.print(f"incident {incident.id}: {step} ({incidents.STEP_LABELS[step]}) {found.status.value}"
                      + (f"; the incident is {incident.status.label}" if incident.closed_at else ""))


@security_app.command("verdict")
def sec_verdict(alert_id: int = typer.Argument(...), verdict: Verdict = typer.Argument(...),
                note: str | None = typer.Option(None)) -> None:
    """Judge an alert: false_positive, attack (opens the six steps) or undetermined."""
    with unit_of_work() as (session, principal):
        alert = alerts.set_verdict(session, principal, alert_id, verdict, note)
        console.print(f"alert {alert.id}: {alert.verdict.label if alert.verdict else ''}")


@security_app.command("step")
def sec_step(alert_id: int = typer.Argument(...), step: str = typer.Argument(..., help="block, respond, investigate, "
                                                                                     "kill, record, reply"),
             evidence: str | None = typer.Option(None), skip: bool = typer.Option(False, "--skip"),
             block: list[str] = typer.Option([], "--block", help="阻断: an address or network it blocked "
                                                                 "(repeatable), put on the block list"),
             override: bool = typer.Option(False, "--override", help="an administrator blocks inside the city's "
                                                                     "own space")) -> None:
    """Record a response step done (with evidence), or 查杀 not applicable (--skip)."""
    data = parse(StepIn, {"status": "skipped" if skip else "done", "evidence": evidence, "block": block,
                          "override": override})
    with unit_of_work() as (session, principal):
        alerts.update_step(session, principal, alert_id, step, status=StepStatus(data.status),
                           evidence=data.evidence, block_addresses=data.block, override=data.override)
        console.print(f"alert {alert_id}: {step} {'skipped' if skip else 'done'}")


@security_app.command("block")
def sec_block(address: str = typer.Argument(..., help="an address or a network (at most /16, IPv6 /48)"),
              reason: str = typer.Option(..., help="why: kept with the entry and in the audit log"),
              expires: datetime | None = typer.Option(None, help="lift it then (with a zone, e.g. …+08:00)"),
              alert: int | None = typer.Option(None, help="the alert it answers"),
              override: bool = typer.Option(False, "--override", help="an administrator blocks an address inside "
                                                                      "the extranet plan or a cloud's space")) -> None:
    """Put an address on the firewalls' block list (封禁); never loopback, link-local, multicast or a broad range."""
    data = parse(BlockIn, {"ip": address, "reason": reason, "expires_at": expires, "alert_id": alert,
                           "override": override})
    with unit_of_work() as (session, principal):
        row = alerts.block(session, principal, data.ip, reason=data.reason, expires_at=data.expires_at,
                           alert_id=data.alert_id, override=data.override)
        console.print(f"blocked {row.ip}")


@security_app.command("close")
def sec_close(alert_id: int = typer.Argument(...)) -> None:
    """Close an alert (an attack only once every mandatory step is done)."""
    with unit_of_work() as (session, principal):
        alerts.close_alert(session, principal, alert_id)
        console.print(f"alert {alert_id} closed")


@security_app.command("blocklist")
def sec_blocklist(fmt: str = typer.Option("txt", "--format", help="txt or csv")) -> None:
    """The addresses blocked now, for the firewalls."""
    with unit_of_work() as (session, principal):
        write_text(alerts.blocklist(session, principal, fmt=fmt))


@security_app.command("duty-missing")
def sec_duty_missing(period: int | None = typer.Option(None),
                     late: bool = typer.Option(True, "--late/--no-late", help="list the reports filed late (补报) too"),
                     output: OutputFormat = OutputOption) -> None:
    """Duty reports owed and not in: overdue, and due in the coming slot; and those filed late (补报)."""
    with unit_of_work() as (session, principal):
        rows = duty.missing_reports(session, principal, period_id=period, include_late=late)
    print_rows(rows, [("period", lambda m: m.period_id), ("unit", lambda m: m.unit_code),
                      ("slot", lambda m: m.slot_at), ("overdue", lambda m: m.overdue), ("late", lambda m: m.late),
                      ("submitted", lambda m: m.submitted_at)], output,
               title="值班报告缺报与迟报 missing and late duty reports")


duty_app = typer.Typer(help="7×24 duty (值班): periods, the roster, check-in.", no_args_is_help=True)
security_app.add_typer(duty_app, name="duty")


def _local(at: datetime | None) -> str | None:
    return local_time(at) if at is not None else None


_SHIFT_COLUMNS: list[tuple[str, Callable[[DutyShiftPublic], object]]] = [
    ("id", lambda s: s.id), ("period", lambda s: s.period_id), ("starts", lambda s: _local(s.starts_at)),
    ("ends", lambda s: _local(s.ends_at)), ("officer", lambda s: s.officer), ("backup", lambda s: s.backup),
    ("leader", lambda s: s.leader), ("checked in", lambda s: _local(s.checked_in_at)),
    ("unresolved", lambda s: s.unresolved or None),
    ("handover", lambda s: (s.handover_note or "")[:40] or None),
]


@duty_app.command("period-create")
def duty_period_create(
        name: str = typer.Option(...),
        kind: str = typer.Option(..., help="drill (护网值守), holiday (节假日值守) or event (重大活动保障)"),
        starts: str = typer.Option(..., help="ISO time with zone, e.g. 2026-10-01T00:00+08:00"),
        ends: str = typer.Option(...),
        report_time: list[str] = typer.Option(None, "--report-time", help="HH:MM Beijing time; repeat for more"),
        every_hours: int | None = typer.Option(None, "--every-hours", help="a report every N hours from the start"),
        zero_reports: bool = typer.Option(True, "--zero-reports/--no-zero-reports",
                                          help="a report (零报告) is owed even when nothing happened"),
        grace_minutes: int = typer.Option(30, "--grace-minutes", help="how late a report may come")) -> None:
    """Open a duty period, with report times of day (--report-time) or a report every N hours."""
    data = parse(duty.PeriodCreate, {"name": name, "kind": kind, "starts_at": starts, "ends_at": ends,
                                     "report_times": report_time or [], "every_hours": every_hours,
                                     "zero_reports": zero_reports, "grace_minutes": grace_minutes})
    with unit_of_work() as (session, principal):
        period = duty.create_period(session, principal, data)
        console.print(f"duty period {period.id} created: {period.name} ({period.kind.label})")


@duty_app.command("periods")
def duty_periods(active: bool = typer.Option(False, "--active", help="only those running now"),
                 output: OutputFormat = OutputOption) -> None:
    """Duty periods, latest first."""
    with unit_of_work() as (session, principal):
        rows = [DutyPeriodPublic.model_validate(p) for p in
                duty.list_periods(session, principal, active_at=utcnow() if active else None)]
    print_rows(rows, [
        ("id", lambda p: p.id), ("name", lambda p: p.name), ("kind", lambda p: p.kind),
        ("starts", lambda p: _local(p.starts_at)), ("ends", lambda p: _local(p.ends_at)),
        ("reports", lambda p: ", ".join(p.report_times) if p.report_times else f"every {p.every_hours} h"),
        ("零报告", lambda p: p.zero_reports), ("grace", lambda p: f"{p.grace_minutes} min"),
    ], output, title="值班 duty periods")


@duty_app.command("shift-add")
def duty_shift_add(period_id: int = typer.Argument(...),
                   starts: str = typer.Option(..., help="ISO time with zone, e.g. 2026-10-01T08:00+08:00"),
                   ends: str = typer.Option(...),
                   officer: str = typer.Option(..., help="值班员: a duty or secops user (login or display name)"),
                   backup: str | None = typer.Option(None, help="备班: a duty or secops user"),
                   leader: str | None = typer.Option(None, help="带班领导: a duty or secops user")) -> None:
    """Add a shift to the roster: inside the period, overlapping another by at most a 30-minute handover."""
    data = parse(duty.ShiftCreate, {"starts_at": starts, "ends_at": ends, "officer": officer, "backup": backup,
                                    "leader": leader})
    with unit_of_work() as (session, principal):
        shift = duty.add_shift(session, principal, period_id, data)
        console.print(f"shift {shift.id} added: {shift.officer}, {_local(shift.starts_at)} – {_local(shift.ends_at)}")


@duty_app.command("shifts")
def duty_shifts(period_id: int = typer.Argument(...), output: OutputFormat = OutputOption) -> None:
    """The period's roster, earliest first."""
    with unit_of_work() as (session, principal):
        rows = [DutyShiftPublic.model_validate(s) for s in duty.list_shifts(session, principal, period_id)]
    print_rows(rows, _SHIFT_COLUMNS, output, title="排班 duty roster")


@duty_app.command("check-in")
def duty_check_in(shift_id: int = typer.Argument(...),
                  note: str | None = typer.Option(None, "--note", help="the handover note (交接班)")) -> None:
    """Check in to a shift (签到), from 30 minutes before it starts until it ends."""
    with unit_of_work() as (session, principal):
        shift = duty.check_in(session, principal, shift_id, handover_note=note)
        console.print(f"shift {shift.id}: {shift.officer} checked in at {_local(shift.checked_in_at)}")


@duty_app.command("on-shift")
def duty_on_shift(output: OutputFormat = OutputOption) -> None:
    """Who is on duty now (the incoming officer during a handover)."""
    with unit_of_work() as (session, principal):
        shift = duty.on_shift(session, principal)
        row = DutyShiftPublic.model_validate(shift) if shift is not None else None
    if row is None:
        if output is OutputFormat.JSON:
            sys.stdout.write("null\n")
        else:
            console.print("no one is on shift now")
        return
    print_one(row, output, title="当前值班 on shift")


def _run_job(job_id: int, output: OutputFormat, summary: Callable[[dict[str, Any]], str]) -> None:
    """Run a job against hosts here and report it: the summary of what it did, then, when some or all of its hosts
    were not reached, the job's error as the red line and exit 1 (a run that reached nothing never succeeds)."""
    from cloudctl.core import jobs
    from cloudctl.core.db import get_engine

    jobs.JobRunner(get_engine()).run_to_end(job_id)  # with its shards, when it splits
    with unit_of_work() as (session, principal):
        job = jobs.get_job(session, principal, job_id)
        status, error, result = job.status, job.error, dict(job.result or {})
    if output is OutputFormat.JSON:
        print_json({**result, "job": job_id, "status": status.value, "error": error})
    elif result:
        console.print(summary(result))
    if status is not jobs.JobStatus.SUCCEEDED:
        raise InvalidInput(f"job {job_id} {status.value}: {error or 'see cloudctl job show'}", field="job")


@security_app.command("scan")
def sec_scan(targets: list[str] = typer.Argument(..., help="addresses, networks or host names you are allowed to scan"),
             scope: str = typer.Option(...), ports: str | None = typer.Option(None, help="e.g. 22,80,443 or 1-1024"),
             output: OutputFormat = OutputOption) -> None:
    """Scan with nmap -sV (a job) and reconcile the findings into the scope."""
    with unit_of_work() as (session, principal):
        job = runs.submit_scan(session, principal, targets, scope=scope, ports=ports)
        session.flush()
        job_id = job.id
    _run_job(job_id, output, lambda r: (
        f"{len(r['targets']['reached'])} of {len(targets)} target(s) reached, {r['hosts']} host(s) up; findings "
        f"created {r['created']}, untouched {r['untouched']}, closed {r['closed']}, reactivated {r['reactivated']}"))


@security_app.command("baseline")
def sec_baseline(inventory: str = typer.Option(..., help="an Ansible inventory (file, directory or host list)"),
                 limit: str | None = typer.Option(None), scope: str = typer.Option("mlps-baseline"),
                 output: OutputFormat = OutputOption) -> None:
    """Run the MLPS level-3 baseline checks (check-only, a job); failed checks become findings on the host."""
    with unit_of_work() as (session, principal):
        job = runs.submit_baseline(session, principal, inventory, limit=limit, scope=scope)
        session.flush()
        job_id = job.id

    def summary(r: dict[str, Any]) -> str:
        hosts = r["hosts"]
        reached = len(hosts["reached"])
        total = reached + len(hosts["unreachable"]) + len(hosts["failed"])
        return (f"{reached} of {total} host(s) checked ({len(hosts['unreachable'])} unreachable, "
                f"{len(hosts['failed'])} failed); {r['passed']} of {r['checks']} checks passed; findings created "
                f"{r['created']}, closed {r['closed']}")

    _run_job(job_id, output, summary)


drill_app = typer.Typer(help="Attack-defence drills (护网): checklists per unit, progress, the summary report.",
                        no_args_is_help=True)
security_app.add_typer(drill_app, name="drill")


@drill_app.command("create")
def drill_create(name: str = typer.Option(...), organiser: str = typer.Option(...),
                 starts: str = typer.Option(..., help="ISO time with zone, e.g. 2026-12-01T09:00+08:00"),
                 ends: str = typer.Option(...),
                 unit: list[str] = typer.Option(None, "--unit", help="unit codes; default departments, counties"),
                 template: str = typer.Option("national", help="national, provincial, holiday, or the city's own"),
                 template_version: int | None = typer.Option(None, "--template-version", help="default: latest")
                 ) -> None:
    """Create a drill and give every unit in scope the checklist of the template chosen."""
    data = parse(drills.DrillCreate, {"name": name, "organiser": organiser, "starts_at": starts, "ends_at": ends,
                                      "units": unit or [], "template": template,
                                      "template_version": template_version})
    with unit_of_work() as (session, principal):
        drill = drills.create_drill(session, principal, data)
        console.print(f"drill {drill.id} created: {drill.name} (template {drill.template_name} "
                      f"v{drill.template_version})")


@drill_app.command("templates")
def drill_templates(output: OutputFormat = OutputOption) -> None:
    """Checklist templates: built-in (version 0) and the city's own versions."""
    with unit_of_work() as (session, principal):
        rows = drills.list_templates(session, principal)
    print_rows(rows, [("name", lambda t: t.name), ("version", lambda t: t.version), ("title", lambda t: t.title),
                      ("items", lambda t: len(t.items))], output, title="护网检查模板 drill templates")


@drill_app.command("template-add")
def drill_template_add(file: Path = typer.Argument(..., help="YAML: name, title, items (as the built-in ones)")
                       ) -> None:
    """Add a version of a checklist template from a YAML file (a new name starts at version 1)."""
    try:
        text = file.read_text(encoding="utf-8")[:1_000_000]
        loaded = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InvalidInput(f"{file.name}: not a readable YAML file ({type(exc).__name__})", field="file") from None
    data = parse(drills.TemplateCreate, loaded if isinstance(loaded, dict) else {})
    with unit_of_work() as (session, principal):
        made = drills.create_template(session, principal, data)
        console.print(f"template {made.name} version {made.version}: {len(made.items)} items")


@drill_app.command("item-add")
def drill_item_add(drill_id: int = typer.Argument(...), key: str = typer.Option(...), title: str = typer.Option(...),
                   phase: DrillPhase = typer.Option(...),
                   days: int = typer.Option(..., help="prepare/self_check: days before the start (≤ 0); on_duty: "
                                                      "before the end (≤ 0); summary: after the end (≥ 0)"),
                   optional: bool = typer.Option(False, "--optional", help="not required for the phase")) -> None:
    """Add an item to this drill alone, for every unit in it."""
    data = parse(drills.TemplateItem, {"key": key, "title": title, "phase": phase, "days": days,
                                       "mandatory": not optional})
    with unit_of_work() as (session, principal):
        added = drills.add_item(session, principal, drill_id, data)
        console.print(f"item {key} added for {len(added)} units, due {local_time(added[0].due_at)}"
                      if added else "no units in the drill")


@drill_app.command("list")
def drill_list(output: OutputFormat = OutputOption) -> None:
    """Drills, newest first."""
    with unit_of_work() as (session, principal):
        rows = [DrillPublic.model_validate(d) for d in drills.list_drills(session, principal)]
    print_rows(rows, [("id", lambda r: r.id), ("name", lambda r: r.name), ("organiser", lambda r: r.organiser),
                      ("period", lambda r: f"{local_time(r.starts_at)} – {local_time(r.ends_at)}"),
                      ("phase", lambda r: r.phase.label)], output, title="护网 drills")


@drill_app.command("phase")
def drill_phase(drill_id: int = typer.Argument(...),
                phase: DrillPhase = typer.Argument(..., help="the next phase: self_check, on_duty, summary")) -> None:
    """Move the drill to its next phase (准备 → 自查 → 值守 → 总结)."""
    with unit_of_work() as (session, principal):
        drill = drills.advance_phase(session, principal, drill_id, phase)
        console.print(f"drill {drill.id} is in {drill.phase.value} ({drill.phase.label})")


@drill_app.command("progress")
def drill_progress(drill_id: int = typer.Argument(...),
                   by: str = typer.Option("unit_phase", "--by", help="unit_phase, unit or phase"),
                   output: OutputFormat = OutputOption) -> None:
    """Checklist progress per unit and phase, per unit (--by unit) or per phase (--by phase: 准备, 自查, 值守, 总结)."""
    if by not in ("unit_phase", "unit", "phase"):
        raise InvalidInput("--by is unit_phase, unit or phase", field="by")
    with unit_of_work() as (session, principal):
        rows = drills.progress(session, principal, drill_id, by=cast("drills.ProgressBy", by))
    columns: list[tuple[str, Callable[[drills.ProgressRow], object]]] = []
    if by != "phase":
        columns += [("unit", lambda r: r.unit_code), ("name", lambda r: r.unit_name)]
    if by != "unit":
        columns += [("phase", lambda r: r.phase_label)]
    columns += [("done", lambda r: f"{r.done}/{r.total}"), ("waived", lambda r: r.waived),
                ("%", lambda r: f"{r.ratio:.0%}"), ("overdue", lambda r: r.overdue)]
    print_rows(rows, columns, output, title="护网进度 drill progress")


@drill_app.command("items")
def drill_items(drill_id: int = typer.Argument(...), unit: str | None = UnitFilter,
                output: OutputFormat = OutputOption) -> None:
    """The drill's checklist items (a unit's and those under it with --unit), in the order of its phases."""
    with unit_of_work() as (session, principal):
        rows = [DrillItemPublic.model_validate(i) for i in drills.list_items(session, principal, drill_id, unit=unit)]
    print_rows(rows, [("id", lambda r: r.id), ("unit", lambda r: r.unit_code), ("phase", lambda r: r.phase.label),
                      ("title", lambda r: r.title), ("required", lambda r: r.mandatory),
                      ("due", lambda r: local_time(r.due_at)), ("status", lambda r: r.status.label),
                      ("verified by", lambda r: r.verifier)], output, title="护网检查项 drill checklist")


@drill_app.command("item")
def drill_item(drill_id: int = typer.Argument(...), item_id: int = typer.Argument(...),
               status: ItemStatus = typer.Argument(..., help="waiting, in_progress, done or cancelled"),
               evidence: str | None = typer.Option(None, help="what shows it is done (截图、报告、记录)"),
               file: list[Path] = typer.Option(None, "--file", help="an evidence file (截图、报告); repeat for more")
               ) -> None:
    """Move a checklist item on; done needs the evidence: a note, or files (kept in the attachment store)."""
    contents = []
    for path in file or []:
        try:
            with path.open("rb") as handle:
                contents.append((path.name, handle.read(get_settings().attachment_max_bytes + 1)))
        except OSError as exc:
            raise InvalidInput(f"{path.name}: cannot be read ({exc.strerror})", field="file") from None
    with unit_of_work() as (session, principal):
        ids = [attachments.add_attachment(session, principal, drills.ENTITY, item_id, data, filename=name).id
               for name, data in contents]
        item = drills.update_item(session, principal, drill_id, item_id, status, evidence, ids)
        console.print(f"item {item.id} ({item.unit_code} {item.title}) is {item.status.value}")


@drill_app.command("verify")
def drill_verify(drill_id: int = typer.Argument(...), item_id: int = typer.Argument(...)) -> None:
    """Verify a done item and its evidence files (核验; the security team)."""
    with unit_of_work() as (session, principal):
        item = drills.verify_item(session, principal, drill_id, item_id)
        files = f" with files {', '.join(str(f) for f in item.evidence_files)}" if item.evidence_files else ""
        console.print(f"item {item.id} ({item.unit_code} {item.title}) verified by {item.verifier}{files}")


@drill_app.command("waive")
def drill_waive(drill_id: int = typer.Argument(...), item_id: int = typer.Argument(...),
                reason: str = typer.Option(..., help="why the item is set aside (豁免理由)")) -> None:
    """Waive a checklist item with a reason (the security team; audited), so its phase may move on."""
    data = parse(drills.Waiver, {"reason": reason})
    with unit_of_work() as (session, principal):
        item = drills.waive_item(session, principal, drill_id, item_id, data)
        console.print(f"item {item.id} ({item.unit_code} {item.title}) waived")


@drill_app.command("report")
def drill_report(drill_id: int = typer.Argument(...),
                 out: Path = typer.Option(Path("drill-summary.html"), help="a .html page or a .xlsx workbook"),
                 output: OutputFormat = OutputOption) -> None:
    """The drill's summary over its window: alerts, attacks and handling times, blocks, findings, duty reports,
    checklist completion per unit and the units furthest behind; written to --out (.html or .xlsx), or printed
    as JSON with -o json."""
    suffix = out.suffix.lower()
    if output is not OutputFormat.JSON and suffix not in (".html", ".htm", ".xlsx"):
        raise InvalidInput(f"write the summary as .html or .xlsx, not {suffix or 'no suffix'}", field="out")
    with unit_of_work() as (session, principal):
        data = drill_summary.summary(session, principal, drill_id)
    if output is OutputFormat.JSON:
        print_json(data.model_dump(mode="json"))
        return
    if suffix == ".xlsx":
        out.write_bytes(drill_summary.summary_xlsx(data))
    else:
        out.write_text(drill_summary.summary_html(data), encoding="utf-8")
    console.print(str(out))
