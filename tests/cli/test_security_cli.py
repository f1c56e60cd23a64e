"""`cloudctl sec …`: imports print their counts; a hostile file is one clear line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cloudctl.cli import app
from cloudctl.core.cli_support import cli_state
from cloudctl.core.config import Settings, reset_settings
from cloudctl.core.db import dispose_engines
from cloudctl.core.output import console

DATA = Path(__file__).resolve().parents[1] / "data" / "security"


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[CliRunner]:
    reset_settings(Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'c.db'}"))
    cli_state.schema_checked = False
    console.width = 200
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    yield runner
    reset_settings()
    dispose_engines()


def test_import_twice_and_refuse_hostile_xml(runner: CliRunner) -> None:
    args = ["sec", "import", str(DATA / "nmap-localhost.xml"), "--format", "nmap", "--scope", "loopback"]
    first = runner.invoke(app, [*args, "-o", "json"])
    assert first.exit_code == 0, first.output
    counts = json.loads(first.output)
    assert counts["created"] > 0
    assert counts["repeat"] is False
    again = runner.invoke(app, args)
    assert again.exit_code == 0
    assert "already imported: nothing changed" in again.output
    listed = json.loads(runner.invoke(app, ["sec", "findings", "-o", "json"]).output)
    assert len(listed) == counts["created"]
    hostile = runner.invoke(app, ["sec", "import", str(DATA / "billion-laughs.xml"), "--format", "nmap",
                                  "--scope", "x"])
    assert hostile.exit_code == 1
    assert hostile.output.strip().startswith("error: file")
    assert len(hostile.output.strip().splitlines()) == 1


def test_drill_create_progress_and_report(demo: CliRunner, tmp_path: Path) -> None:
    created = demo.invoke(app, ["sec", "drill", "create", "--name", "2026 护网行动", "--organiser", "市网信办",
                                "--starts", "2026-12-01T09:00+08:00", "--ends", "2026-12-21T18:00+08:00"])
    assert created.exit_code == 0, created.output
    drill_id = created.output.split()[1]
    rows = json.loads(demo.invoke(app, ["sec", "drill", "progress", drill_id, "-o", "json"]).output)
    units = {r["unit_code"] for r in rows}
    assert len(units) > 1
    assert {r["phase"] for r in rows} >= {"prepare", "self_check"}
    assert all(r["done"] == 0 and r["total"] > 0 for r in rows)
    listed = json.loads(demo.invoke(app, ["sec", "drill", "list", "-o", "json"]).output)
    assert [d["phase"] for d in listed if str(d["id"]) == drill_id] == ["prepare"]
    early = demo.invoke(app, ["sec", "drill", "phase", drill_id, "on_duty"])
    assert early.exit_code == 1
    assert "next phase is self_check" in early.output
    assert "自查阶段" in demo.invoke(app, ["sec", "drill", "phase", drill_id, "self_check"]).output
    out = tmp_path / "summary.html"
    report = demo.invoke(app, ["sec", "drill", "report", drill_id, "--out", str(out)])
    assert report.exit_code == 0, report.output
    text = out.read_text(encoding="utf-8")
    assert "2026 护网行动" in text
    assert all(code in text for code in units)
    naive = demo.invoke(app, ["sec", "drill", "create", "--name", "x drill", "--organiser", "市网信办",
                              "--starts", "2026-12-01T09:00", "--ends", "2026-12-21T18:00+08:00"])
    assert naive.exit_code == 1
    assert "zone" in naive.output
    assert len(naive.output.strip().splitlines()) == 1
