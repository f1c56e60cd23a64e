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
