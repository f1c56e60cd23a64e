"""``cloudctl demo seed`` on a database nobody has migrated: it migrates, shows its steps, and -o json stays JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import select
from typer.testing import CliRunner

from cloudctl.cli import app
from cloudctl.core.audit import AuditEntry
from cloudctl.core.cli_support import cli_state
from cloudctl.core.config import Settings, reset_settings
from cloudctl.core.db import dispose_engines, get_engine, session_scope
from cloudctl.core.migrate import current_revision, head_revision
from cloudctl.core.output import console
from cloudctl.demo.cli import StepLines
from cloudctl.demo.seed import STEPS


@pytest.fixture
def empty(tmp_path: Path) -> Iterator[Path]:
    """A data directory with no database in it yet."""
    reset_settings(Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'data' / 'cloudctl.db'}",
                            simulator_build_seconds=0))
    cli_state.schema_checked = False
    console.width = 200
    yield tmp_path / "data"
    cli_state.schema_checked = False
    reset_settings()
    dispose_engines()


def test_json_seed_migrates_first_and_prints_nothing_but_the_json(empty: Path) -> None:
    seeded = CliRunner().invoke(app, ["demo", "seed", "-o", "json"])
    assert seeded.exit_code == 0, seeded.output
    answer = json.loads(seeded.output)  # the steps shown nothing on the captured streams
    assert (answer["counts"]["units"], answer["counts"]["compute.servers"],
            answer["counts"]["extranet.injected_violations"]) == (1757, 510, 16)
    assert list(answer["seconds"]) == list(STEPS)
    assert Path(answer["tokens_file"]) == empty / "demo-tokens.json"
    assert current_revision(get_engine()) == head_revision()
    with session_scope() as session:
        audited = [(e.action, e.after) for e in session.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    # One row per step with what it built, one for the whole seed, one for the tokens.
    assert [action for action, _ in audited] == [f"demo.seed.{step}" for step in STEPS] + ["demo.seed",
                                                                                          "demo.tokens"]
    compute = dict(audited)["demo.seed.compute"]
    assert compute is not None
    # 43 quotas set, then 27 departments' disk quota raised again for the data volumes their servers were given.
    assert (compute["servers"], compute["changes"]["quota.update"]) == (510, 70)
    again = CliRunner().invoke(app, ["demo", "seed", "-o", "json"])
    assert again.exit_code == 1
    assert "already has a city" in again.output


def test_table_seed_shows_each_step_with_its_time_then_what_it_built(empty: Path) -> None:
    seeded = CliRunner().invoke(app, ["demo", "seed"])
    assert seeded.exit_code == 0, seeded.output
    lines = seeded.output.splitlines()
    steps = [line.split()[1] for line in lines if line.startswith("✓ ")]
    assert steps == ["migrate", *STEPS, "tokens"]
    assert any(line.startswith("✓ migrate") and "empty → " in line for line in lines)
    assert all(line.split()[3] == "s" and float(line.split()[2]) >= 0 for line in lines if line.startswith("✓ "))
    assert any(line.startswith("临江市 seeded (seed 2026)") for line in lines)
    assert any(line.split()[:2] == ["units.village", "1503"] for line in lines)


def test_step_lines_print_each_finished_step_and_nothing_without_a_console() -> None:
    out = Console(record=True, width=100, force_terminal=False)
    with StepLines(out) as lines:
        lines.started("organisation")
        lines.finished("organisation", 0.123)
        with lines.step("tokens") as note:
            note.append("40 demo users")
    text = out.export_text()
    assert "✓ organisation     0.12 s" in text
    assert "✓ tokens" in text
    assert "40 demo users" in text
    with StepLines(None) as silent:  # JSON to a pipe: nothing shown anywhere
        silent.started("compute")
        silent.finished("compute", 1.0)
