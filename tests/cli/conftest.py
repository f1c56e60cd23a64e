"""A seeded demo city for CLI tests: a copy per test, on SQLite, as an operator's laptop would have it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cloudctl.cli import app
from cloudctl.core.cli_support import cli_state
from cloudctl.core.config import Settings, reset_settings
from cloudctl.core.db import dispose_engines
from cloudctl.core.output import console
from tests.support.democity import DemoCityFiles


@pytest.fixture
def demo(demo_city: DemoCityFiles, tmp_path: Path) -> Iterator[CliRunner]:
    """A CLI runner on a copy of the demo city of this test's own: what one test changes, the next never sees."""
    city = demo_city.copy_to(tmp_path / "demo")
    reset_settings(Settings(data_dir=city.directory, database_url=f"sqlite:///{city.database}",
                            simulator_build_seconds=0, provision_poll_seconds=0.01))
    cli_state.schema_checked = False
    cli_state.act_as = None
    console.width = 200
    yield CliRunner()
    cli_state.act_as = None
    reset_settings()
    dispose_engines()


def invoke(runner: CliRunner, *args: str) -> str:
    """Run a command that must succeed; its output."""
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output
