"""`cloudctl sec …`: report imports, findings and rectification tickets."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from cloudctl.core.cli_support import OutputOption, unit_of_work
from cloudctl.core.errors import InvalidInput
from cloudctl.core.output import OutputFormat, console, print_rows
from cloudctl.security import service
from cloudctl.security.models import Severity, TicketStatus
from cloudctl.security.schemas import FindingPublic, TicketPublic

__all__ = ["security_app"]

security_app = typer.Typer(help="Security operations (安全运营): scan reports, findings, rectification tickets.",
                           no_args_is_help=True)


@security_app.command("import")
def sec_import(file: Path = typer.Argument(..., help="an nmap XML, Nessus .nessus or Greenbone XML report"),
               fmt: str = typer.Option(..., "--format", help="nmap, nessus or gvm"),
               scope: str = typer.Option(..., help="what the report covers, e.g. 2026Q4-unicom-extranet"),
               output: OutputFormat = OutputOption) -> None:
    """Import a report: prints created / untouched / closed / reactivated; the same file twice does nothing."""
    if not file.is_file():
        raise InvalidInput(f"no such file: {file}", field="file")
    with unit_of_work() as (session, principal):
        outcome = service.import_report(session, principal, file.read_bytes(), fmt, scope=scope, source=file.name)
    if output is OutputFormat.JSON:
        sys.stdout.write(json.dumps(dict(outcome)) + "\n")
        return
    note = " (already imported: nothing changed)" if outcome["repeat"] else ""
    console.print(f"created {outcome['created']}, untouched {outcome['untouched']}, closed {outcome['closed']}, "
                  f"reactivated {outcome['reactivated']}{note}")


@security_app.command("findings")
def sec_findings(scope: str | None = typer.Option(None), unit: str | None = typer.Option(None),
                 severity: Severity | None = typer.Option(None, case_sensitive=False),
                 closed: bool = typer.Option(False, "--closed", help="the closed ones instead of the active"),
                 overdue: bool = typer.Option(False, "--overdue", help="past their SLA deadline"),
                 limit: int = typer.Option(100, min=1, max=100_000), output: OutputFormat = OutputOption) -> None:
    """Findings, earliest deadline first."""
    with unit_of_work() as (session, principal):
        rows, total = service.list_findings(session, principal, scope=scope, unit=unit, severity=severity,
                                            active=not closed, overdue=overdue, limit=limit)
        items = [FindingPublic.model_validate(f) for f in rows]
    print_rows(items, [
        ("id", lambda f: f.id), ("severity", lambda f: f.severity), ("ip", lambda f: f.ip),
        ("port", lambda f: f"{f.port}/{f.protocol}" if f.port else None), ("title", lambda f: f.title[:50]),
        ("unit", lambda f: f.unit_code), ("deadline", lambda f: f.sla_deadline), ("ticket", lambda f: f.ticket_id),
    ], output, title="漏洞 findings", total=total)


@security_app.command("tickets")
def sec_tickets(open_scope: str | None = typer.Option(None, "--open", help="first open tickets for this scope"),
                status: TicketStatus | None = typer.Option(None), output: OutputFormat = OutputOption) -> None:
    """Rectification tickets (整改单), per unit; `--open SCOPE` groups the scope's loose findings into new ones."""
    with unit_of_work() as (session, principal):
        if open_scope:
            opened = service.open_tickets(session, principal, scope=open_scope)
            console.print(f"{len(opened)} ticket(s) opened")
        rows, total = service.list_tickets(session, principal, status=status)
        items = [TicketPublic.model_validate(t) for t in rows]
    print_rows(items, [
        ("id", lambda t: t.id), ("unit", lambda t: t.unit_code), ("scope", lambda t: t.scope),
        ("title", lambda t: t.title), ("deadline", lambda t: t.deadline), ("status", lambda t: t.status),
    ], output, title="整改单 tickets", total=total)
