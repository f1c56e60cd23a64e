"""Backup and restore of cloudctl's database and the simulator's store (``cloudctl db backup|restore``).

A backup is one gzipped tar file: ``manifest.json`` (format, cloudctl version, schema revision, database kind,
the stores it holds) and one member per store: ``<store>.sqlite`` taken through SQLite's online backup API
(consistent while the API and workers write), or ``<store>.dump`` from ``pg_dump --format=custom`` (one
snapshot). The simulator's store is included when it is kept apart from cloudctl's database (a SQLite file of
its own); on PostgreSQL it usually shares the database (its tables are prefixed ``sim_``) and is in that dump.

Restoring replaces the target's contents with the backup's, then brings the schema to the newest revision. A
backup from a newer cloudctl (a schema revision this one does not know) is refused, as is a backup of the other
kind of database.
"""

from __future__ import annotations

import glob
import io
import json
import re
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import make_url

from cloudctl.core.config import Settings, get_settings
from cloudctl.core.db import make_engine
from cloudctl.core.errors import CloudctlError, InvalidInput
from cloudctl.core.migrate import MIGRATIONS, current_revision, upgrade

__all__ = ["BackupInfo", "backup", "read_manifest", "restore"]

FORMAT = 1


class BackupFailed(CloudctlError):
    status = 500
    title = "Backup or restore failed"
    slug = "backup-failed"


@dataclass(frozen=True, slots=True)
class BackupInfo:
    path: Path
    revision: str | None
    database: str  # "sqlite" or "postgresql"
    stores: list[str]
    size: int


def _stores(settings: Settings) -> dict[str, str]:
    """The stores to save: cloudctl's database and, when it is kept apart and exists, the simulator's."""
    stores = {"cloudctl": settings.resolved_database_url}
    simulator = settings.resolved_simulator_url
    if simulator != stores["cloudctl"]:
        parsed = make_url(simulator)
        if parsed.get_backend_name() != "sqlite" or (parsed.database and Path(parsed.database).is_file()):
            stores["simulator"] = simulator
    return stores


def _kind(url: str) -> str:
    return make_url(url).get_backend_name()


def _libpq_url(url: str) -> str:
    """pg_dump and pg_restore take libpq's URL, not SQLAlchemy's ``postgresql+psycopg://``."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _pg_tool(name: str) -> str:
    """The newest installed PostgreSQL client binary of this name (Debian keeps them per version), else PATH."""
    def key(path: str) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", Path(path).parent.parent.name))

    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=key)
    if found:
        return found[-1]
    on_path = shutil.which(name)
    if on_path:
        return on_path
    raise BackupFailed(f"{name} not found: install the PostgreSQL client (Debian: postgresql-client)",
                       field="database")


def _run(*command: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise BackupFailed(f"{Path(command[0]).name} failed: {' / '.join(tail)}", field="database")


def _sqlite_copy(source: str, target: str) -> None:
    """SQLite's online backup API: a consistent copy while other connections write."""
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        with dst:
            src.backup(dst)
    finally:
        src.close()
        dst.close()


def _sqlite_path(url: str) -> str:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise InvalidInput("an in-memory SQLite database has nothing to back up or restore", field="database")
    return database


def backup(path: Path, *, settings: Settings | None = None) -> BackupInfo:
    """Write a backup of the database (and the simulator's store where it is apart) to ``path``."""
    settings = settings or get_settings()
    stores = _stores(settings)
    kind = _kind(stores["cloudctl"])
    members: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix="cloudctl-backup-") as work:
        for name, url in stores.items():
            if _kind(url) == "sqlite":
                members[f"{name}.sqlite"] = Path(work) / f"{name}.sqlite"
                _sqlite_copy(_sqlite_path(url), str(members[f"{name}.sqlite"]))
            else:
                members[f"{name}.dump"] = Path(work) / f"{name}.dump"
                _run(_pg_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges",
                     f"--file={members[f'{name}.dump']}", f"--dbname={_libpq_url(url)}")
        revision = _revision_of(stores["cloudctl"], members)
        manifest = {"format": FORMAT, "cloudctl": version("cloudctl"), "database": kind, "revision": revision,
                    "stores": {name: next(m for m in members if m.startswith(f"{name}.")) for name in stores},
                    "created_at": datetime.now(UTC).isoformat(timespec="seconds")}
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        with tarfile.open(partial, "w:gz") as archive:
            data = json.dumps(manifest, indent=2).encode()
            entry = tarfile.TarInfo("manifest.json")
            entry.size = len(data)
            archive.addfile(entry, io.BytesIO(data))
            for member, file in members.items():
                archive.add(file, arcname=member)
        partial.replace(path)  # a backup interrupted half-way never looks like a whole one
    return BackupInfo(path, revision, kind, list(stores), path.stat().st_size)


def _revision_of(url: str, members: dict[str, Path]) -> str | None:
    if "cloudctl.sqlite" in members:  # read from the copy itself: the live file may have moved on
        connection = sqlite3.connect(members["cloudctl.sqlite"])
        try:
            row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.Error:
            row = None
        finally:
            connection.close()
        return str(row[0]) if row else None
    engine = make_engine(url)
    try:
        return current_revision(engine)
    finally:
        engine.dispose()


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        with tarfile.open(path, "r:gz") as archive:
            member = archive.extractfile("manifest.json")
            if member is None:
                raise KeyError("manifest.json")
            manifest: dict[str, Any] = json.loads(member.read())
    except (OSError, tarfile.TarError, KeyError, ValueError):
        raise InvalidInput(f"{path} is not a cloudctl backup (no readable manifest)", field="file") from None
    if manifest.get("format") != FORMAT:
        raise InvalidInput(f"{path}: backup format {manifest.get('format')!r} is not one this cloudctl reads",
                           field="file")
    return manifest


def restore(path: Path, *, settings: Settings | None = None) -> BackupInfo:
    """Replace the database's contents (and the simulator's store's) with the backup's; then migrate to head."""
    settings = settings or get_settings()
    manifest = read_manifest(path)
    revision = manifest.get("revision")
    known = {script.revision for script in ScriptDirectory(str(MIGRATIONS)).walk_revisions()}
    if revision is not None and revision not in known:
        head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
        raise InvalidInput(f"the backup is of schema {revision}, newer than this cloudctl knows (its newest is "
                           f"{head}; backup made by cloudctl {manifest.get('cloudctl')}): restore it with that "
                           "cloudctl or a newer one", field="file")
    stores = _stores(settings)
    kind = _kind(stores["cloudctl"])
    if manifest.get("database") != kind:
        raise InvalidInput(f"the backup is of a {manifest.get('database')} database, this cloudctl uses {kind}",
                           field="file")
    with tempfile.TemporaryDirectory(prefix="cloudctl-restore-") as work, tarfile.open(path, "r:gz") as archive:
        archive.extractall(work, filter="data")
        for name, member in manifest["stores"].items():
            url = stores.get(name) or (settings.resolved_simulator_url if name == "simulator" else None)
            if url is None:
                continue
            _restore_store(url, Path(work) / member)
    engine = make_engine(stores["cloudctl"], settings=settings)
    try:
        upgrade(engine)  # a backup of an earlier schema comes back at the newest
        current = current_revision(engine)
    finally:
        engine.dispose()
    return BackupInfo(path, current, kind, list(manifest["stores"]), path.stat().st_size)


def _restore_store(url: str, file: Path) -> None:
    if file.suffix == ".sqlite":
        if _kind(url) != "sqlite":
            raise InvalidInput(f"{file.name} is a SQLite store, the target is {_kind(url)}", field="file")
        target = _sqlite_path(url)
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        _sqlite_copy(str(file), target)  # the backup API writes the whole database into the target
        return
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            # Everything of cloudctl's goes, tables of a newer schema included, before the dump comes back.
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()
    _run(_pg_tool("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error",
         f"--dbname={_libpq_url(url)}", str(file))
