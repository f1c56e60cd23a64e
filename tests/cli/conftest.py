"""A seeded demo city for CLI tests: one per module, on SQLite, as an operator's laptop would have it."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from cloudctl.cli import app
from cloudctl.core.cli_support import cli_state
from cloudctl.core.config import Settings, reset_settings
from cloudctl.core.db import dispose_engines
from cloudctl.core.output import console


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliRunner]:
    """The demo city seeded into a fresh database: seeding takes a few seconds, so once per module."""
    data = tmp_path_factory.mktemp("demo")
    reset_settings(Settings(data_dir=data, database_url=f"sqlite:///{data / 'cloudctl.db'}",
                            simulator_build_seconds=0, provision_poll_seconds=0.01))
    cli_state.schema_checked = False
    console.width = 200
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    seeded = runner.invoke(app, ["demo", "seed", "--tokens-file", str(data / "t.json"), "-o", "json"])
    assert seeded.exit_code == 0, seeded.output
    counts = json.loads(seeded.output)["counts"]
    assert (counts["compute.clouds"], counts["compute.hosts"], counts["reclaim.utilisation_days"]) == (4, 50, 30)
    yield runner
    cli_state.act_as = None
    reset_settings()
    dispose_engines()


def invoke(runner: CliRunner, *args: str) -> str:
    """Run a command that must succeed; its output."""
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output
