"""`cloudctl tariff …` and the monthly statement over the demo city: clouds priced differently, a price change last
month, the month before closed."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import openpyxl
from typer.testing import CliRunner

from cloudctl.cli import app
from cloudctl.core.models import beijing_today
from tests.cli.conftest import invoke

THIS_MONTH = beijing_today().replace(day=1)
LAST_MONTH = (THIS_MONTH - timedelta(days=1)).replace(day=1)
BEFORE_LAST = (LAST_MONTH - timedelta(days=1)).replace(day=1)


def test_the_demo_clouds_are_priced_differently(demo: CliRunner) -> None:
    at = LAST_MONTH.replace(day=20).isoformat()
    vcpu = {t["cloud"]: Decimal(t["price"]) for t in json.loads(invoke(demo, "tariff", "list", "--resource", "vcpu",
                                                                         "--at", at, "-o", "json"))}
    assert len(vcpu) == 4
    assert len(set(vcpu.values())) == 4
    history = json.loads(invoke(demo, "tariff", "list", "--cloud", "city-cloud", "--resource", "vcpu", "-o", "json"))
    assert [(t["effective_from"], t["effective_to"]) for t in history] == [
        (LAST_MONTH.replace(day=16).isoformat(), None),
        (history[1]["effective_from"], LAST_MONTH.replace(day=15).isoformat())]
    # A department reads the prices too.
    assert json.loads(invoke(demo, "--as", "dept-d01", "tariff", "list", "--cloud", "unicom-cloud", "-o", "json"))


def test_set_a_tariff_and_bad_input_is_one_line(demo: CliRunner) -> None:
    later = (THIS_MONTH + timedelta(days=40)).replace(day=1).isoformat()
    shown = json.loads(invoke(demo, "tariff", "set", "mobile-cloud", "volume_gib:ssd", "0.85", "--from", later,
                              "--note", "云硬盘 SSD", "-o", "json"))
    assert (shown["resource"], shown["price"], shown["effective_from"]) == ("volume_gib:ssd", "0.85", later)
    for args, field in ((["city-cloud", "vcpu", "cheap", "--from", later], "price"),
                        (["city-cloud", "vcpu", "1", "--from", "next week"], "--from"),
                        (["city-cloud", "vcpu", "1", "--from", BEFORE_LAST.isoformat()], "effective_from"),
                        (["nowhere", "vcpu", "1", "--from", later], "cloud")):
        result = demo.invoke(app, ["tariff", "set", *args])
        assert result.exit_code == 1, result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
        assert result.output.startswith(f"error: {field}"), result.output
    refused = demo.invoke(app, ["--as", "dept-d01", "tariff", "set", "city-cloud", "vcpu", "1", "--from", later])
    assert refused.exit_code == 1


def test_last_months_statement_shows_the_price_change_and_exports(demo: CliRunner, tmp_path: Path) -> None:
    month = LAST_MONTH.strftime("%Y-%m")
    rows = list(csv.DictReader(io.StringIO(invoke(demo, "report", "showback", "--month", month, "--lines",
                                                  "-o", "csv"))))
    city = [r for r in rows if r["cloud"] == "city-cloud"]
    assert {(r["first_day"][-2:], Decimal(r["vcpu_price"])) for r in city} >= {("01", Decimal(45)),
                                                                                ("16", Decimal(42))}
    target = tmp_path / "账单.xlsx"
    invoke(demo, "--as", "dept-d01", "report", "showback", "--month", month, "-o", "xlsx", "--file", str(target))
    sheet = openpyxl.load_workbook(target).active
    assert sheet is not None
    units = {row[0].value for row in sheet.iter_rows(min_row=2)}
    assert "990100-D01" in units
    assert "990100-D02" not in units  # a department's statement is its own subtree's
    missing = demo.invoke(app, ["report", "showback", "--month", month, "-o", "xlsx"])
    assert (missing.exit_code, "--file" in missing.output) == (1, True)


def test_the_month_before_last_is_closed(demo: CliRunner) -> None:
    month = BEFORE_LAST.strftime("%Y-%m")
    statement = json.loads(invoke(demo, "report", "showback", "--month", month, "-o", "json"))
    assert statement["closed"] is True
    assert Decimal(statement["total"]) > 0
    again = demo.invoke(app, ["report", "close-month", "--month", month])
    assert again.exit_code == 1
    assert "already closed" in again.output
    closed = invoke(demo, "report", "close-month", "--month", LAST_MONTH.strftime("%Y-%m"))
    assert "closed:" in closed
