"""`cloudctl db backup` / `db restore`: a round trip gives back every table's rows and the same audit log, the
simulator's store included; a backup of a newer schema, of the other database kind, or not a backup at all is
refused in one line and nothing changes."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, inspect, select, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from cloudctl.cli import app
from cloudctl.core.audit import AuditEntry
from cloudctl.core.cli_support import cli_state
from cloudctl.core.config import Settings, reset_settings
from cloudctl.core.db import dispose_engines
from tests.factories import build_mini_city, make_server


def fingerprint(engine: Engine) -> dict[str, object]:
    """Every table's row count and a checksum of the audit log, entry by entry."""
    with engine.connect() as connection:
        counts: dict[str, object] = {table: connection.scalar(text(f'SELECT count(*) FROM "{table}"'))
                                     for table in sorted(inspect(connection).get_table_names())}
        if "audit_log" in counts:
            digest = hashlib.sha256()
            for row in connection.execute(select(AuditEntry.id, AuditEntry.at, AuditEntry.actor, AuditEntry.action,
                                                 AuditEntry.entity, AuditEntry.entity_id, AuditEntry.before,
                                                 AuditEntry.after).order_by(AuditEntry.id)):
                digest.update(json.dumps([str(value) for value in row], ensure_ascii=False).encode())
            counts["audit_log#sha256"] = digest.hexdigest()
    return counts


@pytest.fixture
def city(fresh_url: str, tmp_path: Path) -> Iterator[tuple[CliRunner, Engine, Engine | None]]:
    # SQLite: the simulator keeps a file of its own (saved beside); PostgreSQL: its sim_ tables share the database.
    simulator = f"sqlite:///{tmp_path / 'sim.db'}" if fresh_url.startswith("sqlite") else ""
    reset_settings(Settings(data_dir=tmp_path / "data", database_url=fresh_url, simulator_database_url=simulator,
                            simulator_build_seconds=0))
    cli_state.schema_checked = False
    engine = create_engine(fresh_url)
    sim_engine = create_engine(simulator) if simulator else None
    with Session(engine) as session:
        city = build_mini_city(session, with_cloud=True)
        for _ in range(3):
            make_server(session, "990100-D01", city.systems["own"])
        session.commit()
    dispose_engines()
    try:
        yield CliRunner(), engine, sim_engine
    finally:
        engine.dispose()
        if sim_engine is not None:
            sim_engine.dispose()
        reset_settings()
        dispose_engines()


def _cli(runner: CliRunner, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def test_round_trip_gives_back_every_row_and_the_audit_log(city: tuple[CliRunner, Engine, Engine | None],
                                                          tmp_path: Path) -> None:
    runner, engine, sim_engine = city
    before = fingerprint(engine)
    sim_before = fingerprint(sim_engine) if sim_engine is not None else None
    assert before["servers"] == 3
    assert before["audit_log"]

    code, out = _cli(runner, "db", "backup", str(tmp_path / "nightly.tar.gz"))
    assert code == 0, out
    assert "backed up cloudctl" in out
    with tarfile.open(tmp_path / "nightly.tar.gz") as archive:
        names = set(archive.getnames())
    assert names == ({"manifest.json", "cloudctl.sqlite", "simulator.sqlite"} if sim_engine is not None
                     else {"manifest.json", "cloudctl.dump"})

    with engine.begin() as connection:  # a bad day: rows lost, the audit log tampered with, a table gone
        connection.execute(text("DELETE FROM audit_log WHERE id = (SELECT min(id) FROM audit_log)"))
        connection.execute(text("UPDATE units SET name = '错' WHERE code = '990100'"))
        connection.execute(text("DROP TABLE job_log"))
    if sim_engine is not None:
        with sim_engine.begin() as connection:
            connection.execute(text("DELETE FROM sim_servers"))
    assert fingerprint(engine) != before

    code, out = _cli(runner, "db", "restore", str(tmp_path / "nightly.tar.gz"), "--yes")
    assert code == 0, out
    engine.dispose()
    assert fingerprint(engine) == before
    if sim_engine is not None:
        sim_engine.dispose()
        assert fingerprint(sim_engine) == sim_before
    code, out = _cli(runner, "unit", "list")
    assert code == 0, out
    assert "错" not in out


def _rewrite_manifest(source: Path, target: Path, **changes: object) -> None:
    with tarfile.open(source) as original, tarfile.open(target, "w:gz") as copy:
        for member in original.getmembers():
            data = original.extractfile(member)
            assert data is not None
            content = data.read()
            if member.name == "manifest.json":
                content = json.dumps({**json.loads(content), **changes}).encode()
                member.size = len(content)
            copy.addfile(member, io.BytesIO(content))


def test_a_backup_it_cannot_take_is_refused_and_nothing_changes(city: tuple[CliRunner, Engine, Engine | None],
                                                                tmp_path: Path) -> None:
    runner, engine, _ = city
    assert _cli(runner, "db", "backup", str(tmp_path / "b.tar.gz"))[0] == 0
    before = fingerprint(engine)
    _rewrite_manifest(tmp_path / "b.tar.gz", tmp_path / "newer.tar.gz", revision="0999", cloudctl="9.0")
    code, out = _cli(runner, "db", "restore", str(tmp_path / "newer.tar.gz"), "--yes")
    assert code == 1
    assert "schema 0999, newer than this cloudctl knows" in out
    assert "cloudctl 9.0" in out

    other = "postgresql" if engine.dialect.name == "sqlite" else "sqlite"
    _rewrite_manifest(tmp_path / "b.tar.gz", tmp_path / "other.tar.gz", database=other)
    code, out = _cli(runner, "db", "restore", str(tmp_path / "other.tar.gz"), "--yes")
    assert code == 1
    assert f"the backup is of a {other} database" in out

    (tmp_path / "junk.tar.gz").write_bytes(b"not a backup")
    code, out = _cli(runner, "db", "restore", str(tmp_path / "junk.tar.gz"), "--yes")
    assert code == 1
    assert "is not a cloudctl backup" in out
    assert fingerprint(engine) == before
