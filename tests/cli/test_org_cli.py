"""The CLI as an operator uses it: real commits to a fresh database, Rich tables and JSON output."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from cloudctl.cli import app
from cloudctl.core.audit import AuditEntry
from cloudctl.core.cli_support import cli_state
from cloudctl.core.config import Settings, reset_settings
from cloudctl.core.db import dispose_engines
from cloudctl.core.output import console
from cloudctl.org.models import Unit


@pytest.fixture
def cli(fresh_url: str, tmp_path: Path) -> Iterator[CliRunner]:
    reset_settings(Settings(data_dir=tmp_path / "data", database_url=fresh_url))
    cli_state.schema_checked = False
    console.width = 200  # tables wider than the test's pseudo-terminal would wrap the names
    yield CliRunner()
    cli_state.act_as = None
    reset_settings()
    dispose_engines()


def run(cli: CliRunner, *args: str, ok: bool = True) -> str:
    result = cli.invoke(app, list(args))
    if ok:
        assert result.exit_code == 0, f"{args}: {result.output}{result.exception!r}"
    else:
        assert result.exit_code != 0, f"{args} should have failed: {result.output}"
    return result.output


def city(cli: CliRunner) -> None:
    run(cli, "unit", "create", "990100", "--name", "临江市", "--kind", "city")
    run(cli, "unit", "create", "990100-D01", "--name", "市公安局", "--kind", "department", "--parent", "990100")
    run(cli, "unit", "create", "990100-D02", "--name", "市人力资源和社会保障局", "--kind", "department",
        "--parent", "990100", "--contact-name", "王芳", "--contact-phone", "0791-86000000")


def test_units_create_list_show_update_round_trip_chinese(cli: CliRunner) -> None:
    city(cli)
    listed = json.loads(run(cli, "unit", "list", "--kind", "department", "--output", "json"))
    assert [u["code"] for u in listed] == ["990100-D01", "990100-D02"]
    shown = json.loads(run(cli, "unit", "show", "990100-D02", "-o", "json"))
    assert shown["name"] == "市人力资源和社会保障局"
    assert shown["contact_name"] == "王芳"
    assert shown["parent"] == "990100"
    assert shown["kind_label"] == "市直部门"
    run(cli, "unit", "update", "990100-D02", "--contact-name", "李娜")
    assert json.loads(run(cli, "unit", "show", "990100-D02", "-o", "json"))["contact_name"] == "李娜"
    table = run(cli, "unit", "list")
    assert "市人力资源和社会保障局" in table
    assert "990100-D01" in table


def test_bad_input_is_one_clear_line_and_changes_nothing(cli: CliRunner, fresh_engine: Engine) -> None:
    city(cli)
    cases = [
        (("unit", "create", "990100-D01", "--name", "重复", "--kind", "department", "--parent", "990100"), "code"),
        (("unit", "create", "X1", "--name", "无父", "--kind", "department", "--parent", "NOPE"), "parent"),
        (("unit", "create", "X2", "--name", " ", "--kind", "department", "--parent", "990100"), "name"),
        (("unit", "create", "X3", "--name", "长" * 65, "--kind", "department", "--parent", "990100"), "name"),
        (("unit", "update", "990100", "--parent", "990100-D01"), "parent"),
        (("system", "create", "--unit", "990100-D01", "--name", "警务云", "--mlps-level", "5"), "mlps_level"),
    ]
    with Session(fresh_engine) as session:
        before = session.scalar(select(func.count(Unit.id)))
    for args, field in cases:
        output = run(cli, *args, ok=False)
        lines = [line for line in output.splitlines() if line.strip()]
        assert len(lines) == 1, output
        assert lines[0].startswith("error:"), output
        assert field in lines[0], output
    with Session(fresh_engine) as session:
        assert session.scalar(select(func.count(Unit.id))) == before


def test_systems_and_scoped_users(cli: CliRunner) -> None:
    city(cli)
    created = json.loads(run(cli, "system", "create", "--unit", "990100-D01", "--name", "城市视频监控联网平台",
                             "--mlps-level", "3", "-o", "json"))
    run(cli, "system", "create", "--unit", "990100-D02", "--name", "社会保障卡管理系统", "--mlps-level", "3")
    assert created["unit_code"] == "990100-D01"
    run(cli, "system", "update", str(created["id"]), "--mlps-level", "2")
    assert json.loads(run(cli, "system", "show", str(created["id"]), "-o", "json"))["mlps_level"] == 2
    run(cli, "user", "create", "dept-d01", "--role", "dept", "--unit", "990100-D01")
    # Acting as the department user, only its own unit's systems exist.
    scoped = json.loads(run(cli, "--as", "dept-d01", "system", "list", "-o", "json"))
    assert [s["name"] for s in scoped] == ["城市视频监控联网平台"]
    assert "no unit with code" in run(cli, "--as", "dept-d01", "unit", "show", "990100-D02", ok=False)
    assert "may not" in run(cli, "--as", "dept-d01", "unit", "create", "X9", "--name", "新单位", "--kind",
                            "department", "--parent", "990100", ok=False)


def test_tokens_are_shown_once_and_revocable(cli: CliRunner, fresh_engine: Engine) -> None:
    city(cli)
    run(cli, "user", "create", "ops1", "--role", "ops", "--display-name", "赵磊")
    issued = json.loads(run(cli, "token", "create", "--user", "ops1", "--ttl-days", "30", "-o", "json"))
    assert issued["token"].startswith("cct_")
    listed = run(cli, "token", "list", "-o", "json")
    assert issued["token"] not in listed
    assert json.loads(listed)[0]["prefix"] == issued["prefix"]
    run(cli, "token", "revoke", str(issued["id"]))
    assert json.loads(run(cli, "token", "list", "-o", "json"))[0]["revoked_at"] is not None
    with Session(fresh_engine) as session:
        actions = set(session.scalars(select(AuditEntry.action).where(AuditEntry.entity == "api_token")))
    assert actions == {"create", "revoke"}


def test_import_units_from_csv_all_or_nothing(cli: CliRunner, tmp_path: Path, fresh_engine: Engine) -> None:
    city(cli)
    good = tmp_path / "units.csv"
    # Excel writes UTF-8 with a BOM; a child may come before its parent.
    good.write_text("code,name,kind,parent,contact_name\n"
                    "990102001,青山镇,town,990102,\n"
                    "990102,东湖区,county,990100,陈静\n", encoding="utf-8-sig")
    counts = json.loads(run(cli, "unit", "import", str(good), "-o", "json"))
    assert counts["created"] == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("code,name,kind,parent\n990103,西山县,county,990100\n990103001,,town,990103\n", encoding="utf-8")
    output = run(cli, "unit", "import", str(bad), ok=False)
    assert "bad.csv: rows.3.name" in output  # the row as a spreadsheet shows it: the header is row 1
    with Session(fresh_engine) as session:
        assert session.scalar(select(Unit.id).where(Unit.code == "990103")) is None


def test_audit_and_db_commands(cli: CliRunner) -> None:
    city(cli)
    assert "up to date" in run(cli, "db", "current")
    audit = json.loads(run(cli, "audit", "list", "--entity", "unit", "-o", "json"))
    assert {a["entity_id"] for a in audit} == {"990100", "990100-D01", "990100-D02"}
    assert all(a["actor"].startswith("cli:") for a in audit)
    run(cli, "user", "create", "aud", "--role", "auditor")
    run(cli, "user", "create", "ops2", "--role", "ops")
    assert json.loads(run(cli, "--as", "aud", "audit", "list", "-o", "json"))
    assert "may not" in run(cli, "--as", "ops2", "audit", "list", ok=False)
