"""`cloudctl extranet …`: lines and the access rate, the address plan, applications, collection, compliance."""

from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from cloudctl.core import jobs, tabular
from cloudctl.core.cli_support import (
    OffsetOption,
    OutputOption,
    UnitFilter,
    limit_option,
    print_list,
    rows_of,
    unit_of_work,
)
from cloudctl.core.db import get_engine
from cloudctl.core.errors import InvalidInput
from cloudctl.core.export import csv_text
from cloudctl.core.output import OutputFormat, console, print_one, print_rows, write_text
from cloudctl.extranet.devices import COMMANDS
from cloudctl.extranet.models import ApplicationStatus, LinkRole, LinkStatus, PrefixStatus, ViolationStatus, Zone
from cloudctl.extranet.schemas import (
    AddressCreate,
    AddressPublic,
    ApplicationCreate,
    ApplicationPublic,
    DevicePublic,
    LinkCreate,
    LinkPublic,
    LinkUpdate,
    PrefixCreate,
    ScorecardRow,
    ViolationPublic,
    ViolationUpdate,
)
from cloudctl.extranet.service import access, collection, compliance, ipam
from cloudctl.extranet.service import rectification as _rectification  # noqa: F401  (its reminders: job workers)

__all__ = ["extranet_app"]

extranet_app = typer.Typer(help="E-government extranet (电子政务外网): access, IP plan, applications, collection, "
                                "compliance.", no_args_is_help=True)
link_app = typer.Typer(help="Access lines (接入线路) of the units.", no_args_is_help=True)
prefix_app = typer.Typer(help="The IP address plan (IP地址规划): aggregates, pools and blocks.", no_args_is_help=True)
address_app = typer.Typer(help="Registered addresses and their MAC bindings.", no_args_is_help=True)
extranet_app.add_typer(link_app, name="link")
extranet_app.add_typer(prefix_app, name="prefix")
extranet_app.add_typer(address_app, name="address")


def _parse(model: Any, data: dict[str, Any]) -> Any:
    from cloudctl.core.schemas import parse

    return parse(model, {k: v for k, v in data.items() if v is not None})


# ---------------------------------------------------------------- access


@extranet_app.command("rate")
def extranet_rate(output: OutputFormat = OutputOption,
                  show_missing: bool = typer.Option(False, "--missing", help="list the units not connected")) -> None:
    """The access rate (接入率) per level and per county, and which units are missing."""
    with unit_of_work() as (session, principal):
        rows = access.access_rate(session, principal)
    if output is OutputFormat.JSON:
        print_rows(rows, [], output)
        return
    print_rows(rows, [
        ("scope", lambda r: r.scope), ("name", lambda r: r.name), ("required", lambda r: r.required),
        ("connected", lambda r: r.connected),
        ("rate", lambda r: f"{r.rate:.1%}" if r.rate is not None else Text("n/a 不适用", style="dim")),
        ("missing", lambda r: len(r.missing)),
    ], output, title="电子政务外网接入率 access rate")
    if any(r.rate is None for r in rows):
        console.print(f"[dim]n/a: {escape(access.NOT_APPLICABLE)}[/]", markup=True)
    if show_missing:
        for row in rows[:2]:  # horizontal and vertical: every required unit is in one of them
            names = [f"{code} {name}" for code, name in zip(row.missing, row.missing_names, strict=True)]
            console.print(f"[bold]{escape(row.name)}[/] missing: " + escape("; ".join(names) or "none"), markup=True)


@link_app.command("list")
def link_list(unit: str | None = UnitFilter, status: LinkStatus | None = typer.Option(None),
              limit: int | None = limit_option(), offset: int = OffsetOption,
              output: OutputFormat = OutputOption) -> None:
    """Lines, by unit."""
    with unit_of_work() as (session, principal):
        print_list(partial(access.list_links, session, principal, unit=unit, status=status), LinkPublic, [
            ("id", lambda r: r.id), ("unit", lambda r: r.unit_code), ("direction", lambda r: r.direction),
            ("carrier", lambda r: r.carrier), ("type", lambda r: r.line_type), ("Mbps", lambda r: r.bandwidth_mbps),
            ("role", lambda r: r.role), ("status", lambda r: r.status),
            ("shared exit", lambda r: r.uses_shared_exit),
        ], output, limit=limit, offset=offset, title="接入线路 lines")


@link_app.command("add")
def link_add(unit: str = typer.Option(...), carrier: str = typer.Option(...), line_type: str = typer.Option(...),
             bandwidth_mbps: int = typer.Option(..., "--bandwidth"), role: LinkRole = typer.Option(LinkRole.PRIMARY),
             status: LinkStatus = typer.Option(LinkStatus.ACTIVE), shared_exit: bool = typer.Option(False),
             output: OutputFormat = OutputOption) -> None:
    """Register a unit's line."""
    data = _parse(LinkCreate, {"unit_code": unit, "carrier": carrier, "line_type": line_type,
                               "bandwidth_mbps": bandwidth_mbps, "role": role, "status": status,
                               "uses_shared_exit": shared_exit})
    with unit_of_work() as (session, principal):
        link = LinkPublic.model_validate(access.create_link(session, principal, data))
    print_one(link, output, title="接入线路 line")


@link_app.command("set")
def link_set(link_id: int = typer.Argument(...), status: LinkStatus | None = typer.Option(None),
             bandwidth_mbps: int | None = typer.Option(None, "--bandwidth"),
             output: OutputFormat = OutputOption) -> None:
    """Change a line's status or bandwidth."""
    data = _parse(LinkUpdate, {"status": status, "bandwidth_mbps": bandwidth_mbps})
    with unit_of_work() as (session, principal):
        link = LinkPublic.model_validate(access.update_link(session, principal, link_id, data))
    print_one(link, output, title="接入线路 line")


# ---------------------------------------------------------------- the plan


PREFIX_COLUMNS = [
    ("id", lambda p: p.id), ("prefix", lambda p: p.prefix), ("zone", lambda p: p.zone), ("vrf", lambda p: p.vrf),
    ("status", lambda p: p.status), ("unit", lambda p: p.unit_code), ("vlan", lambda p: p.vlan),
    ("used", lambda p: f"{p.used}/{p.usable}"), ("%", lambda p: f"{p.utilisation:.0%}"),
]


@prefix_app.command("list")
def prefix_list(zone: Zone | None = typer.Option(None), unit: str | None = UnitFilter,
                status: PrefixStatus | None = typer.Option(None),
                contains: str | None = typer.Option(None, help="blocks holding this address"),
                limit: int | None = limit_option(), offset: int = OffsetOption,
                output: OutputFormat = OutputOption) -> None:
    """Prefixes with their honest utilisation."""
    with unit_of_work() as (session, principal):
        print_list(partial(ipam.list_prefixes, session, principal, zone=zone, unit=unit, status=status,
                           contains=contains), partial(ipam.describe_prefixes, session), PREFIX_COLUMNS, output,
                   limit=limit, offset=offset, title="IP 地址规划 prefixes")


@prefix_app.command("add")
def prefix_add(prefix: str = typer.Argument(...), zone: Zone = typer.Option(...), unit: str | None = typer.Option(None),
               status: PrefixStatus = typer.Option(PrefixStatus.ACTIVE), vrf: str = typer.Option("global"),
               vlan: int | None = typer.Option(None), description: str | None = typer.Option(None),
               output: OutputFormat = OutputOption) -> None:
    """Add a pool (--status container) or a unit's block to the plan."""
    data = _parse(PrefixCreate, {"prefix": prefix, "zone": zone, "unit_code": unit, "status": status, "vrf": vrf,
                                 "vlan": vlan, "description": description})
    with unit_of_work() as (session, principal):
        row = ipam.create_prefix(session, principal, data)
        view = ipam.describe_prefixes(session, [row])[0]
    print_one(view, output, title="IP 地址段 prefix")


@prefix_app.command("import")
def prefix_import(file: Path = typer.Argument(..., help="CSV, .xlsx or YAML rows of kind aggregate, prefix, address"),
                  encoding: str | None = typer.Option(None, help="the CSV's encoding (default: UTF-8, else GB18030 "
                                                                 "detected)"),
                  output: OutputFormat = OutputOption) -> None:
    """Import a plan: every row valid, or nothing imported."""
    with tabular.in_file(file):
        rows = _read_rows(file, encoding)
        with unit_of_work() as (session, principal):
            result = ipam.import_plan(session, principal, rows)
    counts = {"aggregates": result.aggregates, "prefixes": result.prefixes, "addresses": result.addresses}
    if output is OutputFormat.JSON:
        sys.stdout.write(json.dumps(counts) + "\n")
        return
    console.print(", ".join(f"{n} {k}" for k, n in counts.items()) + " imported")


@prefix_app.command("export")
def prefix_export(fmt: str = typer.Option("yaml", "--format", help="yaml or csv")) -> None:
    """Write the plan to standard output, as rows `prefix import` takes back."""
    if fmt not in ("yaml", "csv"):
        raise InvalidInput("yaml or csv", field="--format")
    with unit_of_work() as (session, principal):
        rows = ipam.export_plan(session, principal)
    if fmt == "yaml":
        sys.stdout.write(yaml.safe_dump(rows, allow_unicode=True, sort_keys=False))
        return
    columns = ["kind", "prefix", "address", "zone", "vrf", "status", "unit_code", "vlan", "role", "mac", "description"]
    write_text(csv_text(columns, [[row.get(c) for c in columns] for row in rows]))


def _read_rows(file: Path, encoding: str | None) -> list[tabular.Row]:
    if file.suffix.lower() in (".yml", ".yaml", ".json"):
        data = tabular.load_document(tabular.decode(tabular.read_bytes(file), encoding=encoding)[0],
                                     "json" if file.suffix.lower() == ".json" else "yaml")
        return tabular.rows_of_records(data, ipam.PLAN_COLUMNS)
    return tabular.read_table(file, ipam.PLAN_COLUMNS, encoding=encoding).rows


@address_app.command("add")
def address_add(address: str = typer.Argument(...), role: str = typer.Option("host"),
                mac: str | None = typer.Option(None), unit: str | None = typer.Option(None),
                zone: Zone | None = typer.Option(None), output: OutputFormat = OutputOption) -> None:
    """Register an address (a gateway, a VRRP address, a terminal with its MAC)."""
    data = _parse(AddressCreate, {"address": address, "role": role, "mac": mac, "unit_code": unit, "zone": zone})
    with unit_of_work() as (session, principal):
        row = AddressPublic.model_validate(ipam.create_address(session, principal, data))
    print_one(row, output, title="IP 地址 address")


# ---------------------------------------------------------------- applications


APPLICATION_COLUMNS = [
    ("id", lambda a: a.id), ("unit", lambda a: a.unit_code), ("zone", lambda a: a.zone),
    ("asks", lambda a: f"/{a.prefix_length}" if a.prefix_length else f"{a.count} 个"),
    ("status", lambda a: a.status), ("signer", lambda a: a.commitment_signer),
    ("allocated", lambda a: ", ".join(a.allocated[:3]) + ("…" if len(a.allocated) > 3 else "")),
    ("purpose", lambda a: a.purpose[:30]),
]


@extranet_app.command("applications")
def extranet_applications(
    status: ApplicationStatus | None = typer.Option(None), unit: str | None = UnitFilter,
    limit: int | None = limit_option(), offset: int = OffsetOption, output: OutputFormat = OutputOption,
) -> None:
    """IP applications (IP地址申请), newest first."""
    with unit_of_work() as (session, principal):
        print_list(partial(ipam.list_applications, session, principal, status=status, unit=unit), ApplicationPublic,
                   APPLICATION_COLUMNS, output, limit=limit, offset=offset, title="IP 地址申请 applications")


@extranet_app.command("apply")
def extranet_apply(zone: Zone = typer.Option(...), purpose: str = typer.Option(...),
                   signer: str = typer.Option(..., help="who signs the security commitment (安全承诺)"),
                   accept: bool = typer.Option(False, "--accept-commitment", help="the unit accepts the commitment"),
                   prefix_length: int | None = typer.Option(None, "--prefix-length"),
                   count: int | None = typer.Option(None), unit: str | None = typer.Option(None),
                   output: OutputFormat = OutputOption) -> None:
    """Apply for a block or a number of addresses, with the signed security commitment."""
    data = _parse(ApplicationCreate, {"zone": zone, "purpose": purpose, "prefix_length": prefix_length,
                                      "count": count, "unit_code": unit,
                                      "commitment": {"signer": signer, "accepted": accept}})
    with unit_of_work() as (session, principal):
        app = ApplicationPublic.model_validate(ipam.submit_application(session, principal, data))
    print_one(app, output, title="IP 地址申请 application")


@extranet_app.command("approve")
def extranet_approve(app_id: int = typer.Argument(...), reason: str | None = typer.Option(None),
                     output: OutputFormat = OutputOption) -> None:
    """Approve an application: allocate the next free block or addresses, once."""
    with unit_of_work() as (session, principal):
        app = ApplicationPublic.model_validate(ipam.approve_application(session, principal, app_id, reason))
    print_one(app, output, title="IP 地址申请 approved")


@extranet_app.command("reject")
def extranet_reject(app_id: int = typer.Argument(...), reason: str = typer.Option(...)) -> None:
    """Reject an application, with the reason the unit will read."""
    with unit_of_work() as (session, principal):
        ipam.reject_application(session, principal, app_id, reason)
    console.print(f"application {app_id} rejected")


@extranet_app.command("release")
def extranet_release(app_id: int = typer.Argument(...)) -> None:
    """Return what an application received to the pool (回收)."""
    with unit_of_work() as (session, principal):
        app = ipam.release_application(session, principal, app_id)
        console.print(f"application {app.id} released: {', '.join(app.allocated)}")


# ---------------------------------------------------------------- collection and compliance


@extranet_app.command("collect")
def extranet_collect(inventory: Path | None = typer.Option(None, help="inventory file or directory "
                                                                      "(default: CLOUDCTL_EXTRANET_INVENTORY, "
                                                                      "else the simulated devices)"),
                     limit: list[str] = typer.Option(None, "--limit", help="only these devices"),
                     wait: bool = typer.Option(True, "--wait/--no-wait")) -> None:
    """Read every device's ARP and MAC tables (a job, with a progress bar)."""
    with unit_of_work() as (session, principal):
        job = collection.submit_collection(session, principal, inventory=inventory, limit=limit or None)
        session.flush()
        job_id = job.id
    if not wait:
        console.print(f"job {job_id} queued")
        return
    runner = jobs.JobRunner(get_engine())
    import threading

    # Here, with its shards when it splits (workers elsewhere take their share of them).
    worker = threading.Thread(target=runner.run_to_end, args=(job_id,), daemon=True)
    worker.start()
    with Progress(TextColumn("[bold]collect"), BarColumn(), TaskProgressColumn(),
                  TextColumn("{task.fields[msg]}", markup=False), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("collect", total=None, msg="")
        while worker.is_alive():
            worker.join(0.3)
            with unit_of_work() as (session, principal):
                row = jobs.get_job(session, principal, job_id)
                bar.update(task, completed=row.progress_done, total=row.progress_total, msg=row.message or "")
    with unit_of_work() as (session, principal):
        row = jobs.get_job(session, principal, job_id)
        status, result, error = row.status, dict(row.result or {}), row.error
    if status is not jobs.JobStatus.SUCCEEDED:
        raise InvalidInput(f"job {job_id} {status.value}: {error}", field="job")
    console.print(f"{result.get('succeeded', 0)} of {result.get('devices', 0)} devices collected, "
                  f"{result.get('failed', 0)} failed; {result.get('arp_new', 0)} new ARP and "
                  f"{result.get('mac_new', 0)} new MAC entries")


def _read(counts: dict[str, dict[str, int]] | None, which: int, device_type: str) -> str | None:
    """"209/1": rows parsed / skipped by the last collection of the device's ARP (0) or MAC (1) command."""
    commands = COMMANDS.get(device_type)
    found = (counts or {}).get(commands[which]) if commands else None
    return f"{found.get('parsed', 0)}/{found.get('skipped', 0)}" if found else None


@extranet_app.command("devices")
def extranet_devices(unit: str | None = UnitFilter, failing: bool = typer.Option(False),
                     skipped: bool = typer.Option(False, "--skipped", help="print the rows the last collection "
                                                                          "skipped, with their raw lines"),
                     limit: int | None = limit_option(), offset: int = OffsetOption,
                     output: OutputFormat = OutputOption) -> None:
    """Devices and their last collection (coverage): rows parsed / skipped per command."""
    with unit_of_work() as (session, principal):
        items = print_list(partial(collection.list_devices, session, principal, unit=unit, failing=failing),
                           DevicePublic, [
            ("name", lambda d: d.name), ("host", lambda d: d.host), ("type", lambda d: d.device_type),
            ("unit", lambda d: d.unit_code), ("last success", lambda d: d.last_success_at),
            ("ARP read/skipped", lambda d: _read(d.parse_counts, 0, d.device_type)),
            ("MAC read/skipped", lambda d: _read(d.parse_counts, 1, d.device_type)),
            ("error", lambda d: d.last_error),
        ], output, limit=limit, offset=offset, title="网络设备 devices")
    if skipped and output is not OutputFormat.JSON:
        for item in items:
            for row in item.skipped_rows or []:
                console.print(f"{item.name} · {row['command']} · {row['reason']}: {row['line']}", markup=False,
                              soft_wrap=True)


@extranet_app.command("check")
def extranet_check(output: OutputFormat = OutputOption) -> None:
    """Run the compliance rules over the plan and what the wire shows."""
    with unit_of_work() as (session, principal):
        counts = compliance.check(session, principal)
    if output is OutputFormat.JSON:
        sys.stdout.write(json.dumps(counts, ensure_ascii=False) + "\n")
        return
    console.print(", ".join(f"{k} {v}" for k, v in counts.items()))


@extranet_app.command("violations")
def extranet_violations(
    rule: int | None = typer.Option(None, min=1, max=12), unit: str | None = UnitFilter,
    status: ViolationStatus | None = typer.Option(None), limit: int | None = limit_option(),
    offset: int = OffsetOption, output: OutputFormat = OutputOption,
) -> None:
    """Compliance violations, each with its rule, unit and evidence."""
    with unit_of_work() as (session, principal):
        print_list(partial(compliance.list_violations, session, principal, rule=rule, unit=unit, status=status),
                   ViolationPublic, [
            ("id", lambda v: v.id), ("rule", lambda v: v.rule), ("title", lambda v: v.title.split(" (")[0]),
            ("subject", lambda v: v.subject), ("unit", lambda v: v.unit_code), ("status", lambda v: v.status),
            ("deadline", lambda v: v.deadline), ("last seen", lambda v: v.last_seen),
        ], output, limit=limit, offset=offset, title="合规检查 violations")


@extranet_app.command("violation")
def extranet_violation(violation_id: int = typer.Argument(...),
                       status: str | None = typer.Option(None, help="rectifying, resolved or waived"),
                       note: str | None = typer.Option(None), output: OutputFormat = OutputOption) -> None:
    """Show one violation, or move it on (rectifying, resolved, waived with a note)."""
    with unit_of_work() as (session, principal):
        if status is None and note is None:
            row = compliance.get_violation(session, principal, violation_id)
        else:
            row = compliance.update_violation(session, principal, violation_id,
                                              _parse(ViolationUpdate, {"status": status, "note": note}))
        view = ViolationPublic.model_validate(row)
    print_one(view, output, title=f"违规 {view.id} · rule {view.rule}")


@extranet_app.command("scorecard")
def extranet_scorecard(unit: str | None = UnitFilter, limit: int | None = limit_option(),
                       offset: int = OffsetOption, output: OutputFormat = OutputOption) -> None:
    """The unit scorecard (评估): access, collection, violations and rectification, lowest score first."""
    with unit_of_work() as (session, principal):
        rows = compliance.scorecard(session, principal, unit=unit)
    print_list(rows_of(rows), ScorecardRow, [
        ("unit", lambda r: r.unit_code), ("name", lambda r: r.name), ("level", lambda r: r.level),
        ("connected", lambda r: r.connected), ("backup", lambda r: r.backup_line),
        ("devices", lambda r: f"{r.devices_collected}/{r.devices}"), ("open", lambda r: r.violations_open),
        ("resolved", lambda r: r.violations_resolved), ("score", lambda r: r.score),
    ], output, limit=limit, offset=offset, title="单位评估 scorecard")
