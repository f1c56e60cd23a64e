"""``cloudctl tariff …``, ``cloudctl budget …`` and the monthly statement under ``cloudctl report …`` (thin)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path

import typer
from rich.table import Table

from cloudctl.billing import budgets, service
from cloudctl.billing.schemas import BudgetPublic, BudgetSet, TariffPublic, TariffSet
from cloudctl.compute.cli import report_app
from cloudctl.core.cli_support import OffsetOption, OutputOption, UnitFilter, limit_option, print_list, unit_of_work
from cloudctl.core.errors import InvalidInput
from cloudctl.core.export import csv_text, xlsx_bytes
from cloudctl.core.output import OutputFormat, console, print_json, print_one, write_text
from cloudctl.core.schemas import parse

__all__ = ["budget_app", "tariff_app"]

tariff_app = typer.Typer(help="Tariffs (资费) of each provider cloud: CNY per vCPU, GiB of RAM or GiB of disk and "
                              "month.", no_args_is_help=True)


@tariff_app.command("list")
def tariff_list(
    cloud: str | None = typer.Option(None, help="one cloud"),
    resource: str | None = typer.Option(None, help="vcpu, ram_gib, disk_gib or volume_gib:<type>"),
    at: str | None = typer.Option(None, help="only the prices in force on this day (YYYY-MM-DD)"),
    limit: int | None = limit_option(),
    offset: int = OffsetOption,
    output: OutputFormat = OutputOption,
) -> None:
    """The tariff history, newest first (with --at, the prices in force that day)."""
    day = _day(at, "--at") if at else None
    with unit_of_work() as (session, principal):
        print_list(lambda *, limit, offset: service.list_tariffs(session, principal, cloud=cloud, resource=resource,
                                                                 at=day, limit=limit, offset=offset),
                   TariffPublic, [("cloud", lambda t: t.cloud), ("resource", lambda t: t.resource),
                                  ("flavor family", lambda t: t.flavor_family or "*"),
                                  ("from", lambda t: t.effective_from), ("to", lambda t: t.effective_to or ""),
                                  ("CNY / month", lambda t: t.price), ("by", lambda t: t.set_by),
                                  ("note", lambda t: t.note or "")],
                   output, limit=limit, offset=offset, title="资费 tariffs")


@tariff_app.command("set")
def tariff_set(
    cloud: str = typer.Argument(..., help="the provider cloud"),
    resource: str = typer.Argument(..., help="vcpu, ram_gib, disk_gib or volume_gib:<type>"),
    price: str = typer.Argument(..., help="CNY per unit and month, e.g. 45.50"),
    effective_from: str = typer.Option(..., "--from", help="the first day the price holds (YYYY-MM-DD)"),
    flavor_family: str = typer.Option("", "--family", help="only flavors whose name starts with this"),
    note: str | None = typer.Option(None, help="e.g. the contract it comes from"),
    output: OutputFormat = OutputOption,
) -> None:
    """Set a price from a day on; earlier days keep the price they had."""
    try:
        amount = Decimal(price)
    except InvalidOperation:
        raise InvalidInput(f"{price!r} is not an amount like 45.50", field="price") from None
    data = parse(TariffSet, {"cloud": cloud, "resource": resource, "price": amount,
                             "effective_from": _day(effective_from, "--from"), "flavor_family": flavor_family,
                             "note": note})
    with unit_of_work() as (session, principal):
        tariff = service.set_tariff(session, principal, data)
    print_one(tariff, output, title=f"资费 {tariff.cloud} {tariff.resource}")


def _day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{text!r} is not a day like 2026-11-16", field=option) from None


@report_app.command("showback")
def report_showback(
    month: str = typer.Option(..., help="YYYY-MM"),
    unit: str | None = UnitFilter,
    lines: bool = typer.Option(False, "--lines", help="every server's charge (what ran, days, tariff), not totals"),
    output: str = typer.Option("table", "--output", "-o", help="table, json, csv or xlsx"),
    file: Path | None = typer.Option(None, "--file", help="write here (needed for xlsx)"),
) -> None:
    """The month's statement (账单): cost per unit and business system at each cloud's tariffs; closed months as
    stored when they were closed."""
    if output not in ("table", "json", "csv", "xlsx"):
        raise InvalidInput(f"unknown output {output!r}; use table, json, csv or xlsx", field="--output")
    if output == "xlsx" and file is None:
        raise InvalidInput("an .xlsx statement is written to a file: give --file", field="--file")
    with unit_of_work() as (session, principal):
        statement = service.statement(session, principal, month, unit=unit)
    if output == "json":
        print_json(statement.public().model_dump(mode="json"))
        return
    totals = statement.totals()
    if lines:
        header, rows = service.statement_rows(statement.lines)
    else:
        header = ["unit_code", "unit_name", "business_system", "servers", "cost_cny"]
        rows = [[t.unit_code, t.unit_name, t.business_system, t.servers, t.cost] for t in totals]
    if output in ("csv", "xlsx"):
        if output == "xlsx":
            assert file is not None
            file.write_bytes(xlsx_bytes(header, rows, title=f"账单 {month}"))
        elif file is not None:
            file.write_text(csv_text(header, rows), encoding="utf-8")
        else:
            write_text(csv_text(header, rows))
        if file is not None:
            console.print(f"{len(rows)} rows written to {file}")
        return
    state = "已结账 closed" if statement.closed else "未结账 open"
    table = Table(title=f"账单 showback {month} ({state})", header_style="bold")
    for name in header:
        table.add_column(name, justify="right" if name in ("servers", "cost_cny", "days") else "left")
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    table.add_section()
    table.add_row("total", *[""] * (len(header) - 2), f"{statement.total:,.2f}")
    console.print(table)


@report_app.command("close-month")
def report_close_month(month: str = typer.Option(..., help="YYYY-MM, a month that is over")) -> None:
    """Close a month (结账): its statement is stored and no later price or inventory change rewrites it."""
    with unit_of_work() as (session, principal):
        statement = service.close_month(session, principal, month)
        console.print(f"{month} closed: {len(statement.lines)} lines, {statement.total:,.2f} CNY")


budget_app = typer.Typer(help="Budgets (预算) per unit and year, against the cost committed.", no_args_is_help=True)


@budget_app.command("list")
def budget_list(
    year: int | None = typer.Option(None, min=2000, max=2100),
    unit: str | None = UnitFilter,
    limit: int | None = limit_option(),
    offset: int = OffsetOption,
    output: OutputFormat = OutputOption,
) -> None:
    """Budgets with what is committed: spent, this month, the months left at today's prices."""
    with unit_of_work() as (session, principal):
        print_list(lambda *, limit, offset: budgets.list_budgets(session, principal, year=year, unit=unit,
                                                                 limit=limit, offset=offset),
                   BudgetPublic, [("unit", lambda b: b.unit_code), ("year", lambda b: b.year),
                                  ("业务系统", lambda b: b.business_system or "*"),
                                  ("budget CNY", lambda b: f"{b.amount:,.2f}"),
                                  ("committed CNY", lambda b: f"{b.committed:,.2f}"),
                                  ("%", lambda b: "" if b.percent is None else f"{b.percent:g}"),
                                  ("over", lambda b: "超出" if b.over else "")],
                   output, limit=limit, offset=offset, title="预算 budgets")


@budget_app.command("set")
def budget_set(
    unit: str = typer.Argument(..., help="the unit's code"),
    year: int = typer.Argument(...),
    amount: str = typer.Argument(..., help="CNY for the year, e.g. 1200000"),
    system: int | None = typer.Option(None, "--system", help="one of the unit's business systems (its id)"),
    note: str | None = typer.Option(None),
    output: OutputFormat = OutputOption,
) -> None:
    """Set a unit's (or one business system's) budget for a year."""
    try:
        money = Decimal(amount)
    except InvalidOperation:
        raise InvalidInput(f"{amount!r} is not an amount like 1200000", field="amount") from None
    data = parse(BudgetSet, {"unit": unit, "year": year, "amount": money, "business_system": system, "note": note})
    with unit_of_work() as (session, principal):
        budget = budgets.set_budget(session, principal, data)
    print_one(budget, output, title=f"预算 {budget.unit_code} {budget.year}")
