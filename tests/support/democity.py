"""The demo city, seeded once per test run and copied for each test or module that needs one of its own.

Seeding builds 1,757 units, 510 VMs with a month of utilisation, the extranet and a quarter's scan;
the CLI, screen, wire and scrape tests each want that city to change as they please. Copying two
SQLite files (made whole once with SQLite's online backup, so no write-ahead log is left behind) gives each
module (or test) the same city as a fresh seed would, at a fraction of the cost. The seed itself goes
through ``cloudctl demo seed``, as an operator's would, so the command stays under test.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner

__all__ = ["DemoCityFiles", "seed_demo_files"]


@dataclass(frozen=True)
class DemoCityFiles:
    """A seeded demo city's files: the database, the simulator's store and the demo tokens."""

    directory: Path

    @property
    def database(self) -> Path:
        return self.directory / "cloudctl.db"

    @property
    def simulator(self) -> Path:
        return self.directory / "simulator.db"

    @property
    def tokens_file(self) -> Path:
        return self.directory / "tokens.json"

    @property
    def tokens(self) -> dict[str, str]:
        tokens: dict[str, str] = json.loads(self.tokens_file.read_text(encoding="utf-8"))["tokens"]
        return tokens

    def copy_to(self, directory: Path) -> DemoCityFiles:
        """The same city in ``directory``, to change as one pleases (a plain copy of checkpointed files)."""
        directory.mkdir(parents=True, exist_ok=True)
        copy = DemoCityFiles(directory)
        for source, target in ((self.database, copy.database), (self.simulator, copy.simulator),
                               (self.tokens_file, copy.tokens_file)):
            shutil.copyfile(source, target)
        return copy


def _backup(source: Path, target: Path) -> None:
    # SQLite's online backup: the whole database in one file, whatever is still in a write-ahead log.
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


def seed_demo_files(directory: Path) -> DemoCityFiles:
    """Seed the demo city (seed 2026) into ``directory`` with ``cloudctl demo seed``."""
    from cloudctl.cli import app
    from cloudctl.core.cli_support import cli_state
    from cloudctl.core.config import Settings, reset_settings
    from cloudctl.core.db import dispose_engines

    seeding = DemoCityFiles(directory / "seeding")
    reset_settings(Settings(data_dir=seeding.directory, database_url=f"sqlite:///{seeding.database}",
                            simulator_database_url=f"sqlite:///{seeding.simulator}", simulator_build_seconds=0))
    cli_state.schema_checked = False
    try:
        runner = CliRunner()
        upgraded = runner.invoke(app, ["db", "upgrade"])
        assert upgraded.exit_code == 0, upgraded.output
        seeded = runner.invoke(app, ["demo", "seed", "--tokens-file", str(seeding.tokens_file), "-o", "json"])
        assert seeded.exit_code == 0, seeded.output
        counts = json.loads(seeded.output)["counts"]
        assert (counts["compute.clouds"], counts["compute.hosts"], counts["reclaim.utilisation_days"]) == (4, 50, 30)
    finally:
        cli_state.schema_checked = False
        reset_settings()
        dispose_engines()
    files = DemoCityFiles(directory)
    _backup(seeding.database, files.database)
    _backup(seeding.simulator, files.simulator)
    shutil.copyfile(seeding.tokens_file, files.tokens_file)
    return files
