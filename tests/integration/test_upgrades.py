"""Upgrades keep data: a database is walked from the first revision to the newest, one revision at a time, and at
every revision each table that is still empty gets a row; at every step, and at the end, every row seeded so far
is still there with the values it was given (where its columns still exist).

So for each earlier revision, a database at that revision with data in it upgrades to the newest with nothing
lost, on both databases, in one pass. The rows are made from the schema as it is at that revision (reflected),
not from today's models, as an operator's old database would hold them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Engine,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    create_engine,
    func,
    select,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from cloudctl.core.db import make_engine
from cloudctl.core.migrate import MIGRATIONS, current_revision, head_revision, upgrade

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture
def empty_engine(request: pytest.FixtureRequest, db_url: str, tmp_path: Path) -> Any:
    if db_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        url = request.getfixturevalue("pg_server").create_database(f"u_{uuid.uuid4().hex[:12]}")
    engine = make_engine(url)
    yield engine
    engine.dispose()


def _value(column: Any) -> Any:
    kind = column.type
    if isinstance(kind, Boolean):
        return False
    if isinstance(kind, Integer):
        # A year is checked against a range (budgets: 2000-2100); 2026 is a value every integer column takes.
        return 2026 if column.name == "year" else 1
    if isinstance(kind, Float | Numeric):
        return 1
    if isinstance(kind, DateTime):
        return NOW if getattr(kind, "timezone", False) else NOW.replace(tzinfo=None)
    if isinstance(kind, Date):
        return date(2026, 1, 2)
    if isinstance(kind, JSON):
        return {}
    if isinstance(kind, LargeBinary):
        return b"1"
    if isinstance(kind, String):
        return "1"
    return "1"


def _seed(connection: Connection, table: Table) -> dict[str, Any] | None:
    """One row for ``table`` (its references pointing at the first row of the tables referred to), or None."""
    references: dict[str, Any] = {}
    for fk in table.foreign_keys:
        referred = fk.column
        references[fk.parent.name] = connection.scalar(select(referred).order_by(referred).limit(1))
    auto = [c.name for c in table.primary_key.columns if isinstance(c.type, Integer)]
    if len(auto) != 1:
        auto = []
    required = {c.name for c in table.columns if not c.nullable and c.server_default is None and c.name not in auto}
    candidates = [
        {c.name for c in table.columns if c.name not in auto},   # every column
        required | set(references),                                 # what must be there, and the references
        required,                                                   # only what must be there
    ]
    for names in candidates:
        row = {name: references[name] if name in references else _value(table.columns[name]) for name in names}
        if any(row[name] is None for name in required):
            continue
        try:
            with connection.begin_nested():
                connection.execute(table.insert().values(**row))
        except DBAPIError:
            continue
        return row
    return None


def _count(connection: Connection, table: Table) -> int:
    return int(connection.scalar(select(func.count()).select_from(table)) or 0)


def test_every_revision_upgrades_with_its_data_kept(empty_engine: Engine) -> None:
    script = ScriptDirectory(str(MIGRATIONS))
    revisions = [r.revision for r in script.walk_revisions()][::-1]
    seeded: dict[str, tuple[str, dict[str, Any]]] = {}  # table -> (revision it was seeded at, row)
    unseedable: dict[str, str] = {}
    for revision in revisions:
        upgrade(empty_engine, revision)
        assert current_revision(empty_engine) == revision
        metadata = MetaData()
        metadata.reflect(bind=empty_engine)
        with empty_engine.begin() as connection:
            for name, (at, _) in seeded.items():
                if name in metadata.tables:
                    assert _count(connection, metadata.tables[name]) == 1, f"{name} (seeded at {at}) lost its row " \
                                                                           f"in the upgrade to {revision}"
            for table in metadata.sorted_tables:
                if table.name == "alembic_version" or table.name in seeded or _count(connection, table):
                    continue
                row = _seed(connection, table)
                if row is None:
                    unseedable[table.name] = revision
                else:
                    seeded[table.name] = (revision, row)
                    unseedable.pop(table.name, None)
    assert current_revision(empty_engine) == head_revision()
    assert len(seeded) > 40, sorted(seeded)
    assert unseedable == {}

    metadata = MetaData()
    metadata.reflect(bind=empty_engine)
    changed = {}
    with create_engine(empty_engine.url).connect() as connection:
        for name, (at, row) in seeded.items():
            table = metadata.tables[name]
            found = connection.execute(select(table)).mappings().one()
            kept = {key: value for key, value in row.items() if key in table.columns}
            differs = {key: (value, found[key]) for key, value in kept.items() if not _same(value, found[key])}
            if differs:
                changed[f"{name} (seeded at {at})"] = differs
    assert changed == {}


def _same(given: Any, found: Any) -> bool:
    if isinstance(given, datetime) and isinstance(found, datetime):
        return given.replace(tzinfo=None) == found.replace(tzinfo=None)
    if isinstance(given, int) and isinstance(found, float | int):
        return float(given) == float(found)
    return bool(given == found) or str(given) == str(found)
