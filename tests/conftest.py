"""Fixtures shared by the whole suite.

Every test that asks for ``session`` runs twice: on SQLite and on a real PostgreSQL
server that the suite starts itself (``CLOUDCTL_TEST_DATABASES=sqlite`` narrows this
for a quick local run; CI always runs both). The schema is built by the Alembic
migrations, so the migrations are tested too; each test runs inside a transaction
that is rolled back, with the code under test committing to a savepoint.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cloudctl.core.config import Settings, reset_settings
from cloudctl.core.db import dispose_engines, make_engine
from cloudctl.core.migrate import upgrade

# Property-based tests: the same examples on every run (CI is stable), few enough to keep each test to seconds,
# and no per-example deadline on a shared, noisy machine. The database fixtures are reused across examples on
# purpose: each example cleans up after itself inside the test's transaction.
hypothesis_settings.register_profile("cloudctl", derandomize=True, max_examples=60, deadline=None,
                                     suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                            HealthCheck.too_slow])
hypothesis_settings.load_profile(os.environ.get("CLOUDCTL_HYPOTHESIS_PROFILE", "cloudctl"))

DATABASES = [name.strip() for name in os.environ.get("CLOUDCTL_TEST_DATABASES", "sqlite,postgresql").split(",")
             if name.strip()]


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from tests.support.pgserver import PostgresServer

    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="session", params=DATABASES)
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'cloudctl.db'}"
    if request.param == "postgresql":
        server = request.getfixturevalue("pg_server")
        return str(server.create_database("cloudctl_test"))  # type: ignore[attr-defined]
    raise ValueError(f"CLOUDCTL_TEST_DATABASES: unknown database {request.param!r}")


@pytest.fixture(scope="session")
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Iterator[Settings]:
    # The simulator cloud's store is per test (a real cloud outlives cloudctl's transactions,
    # so its changes are not rolled back with the test's).
    settings = reset_settings(Settings(data_dir=tmp_path / "data", database_url=db_url,
                                       simulator_database_url=f"sqlite:///{tmp_path / 'simulator.db'}",
                                       simulator_build_seconds=0))
    yield settings
    reset_settings()
    dispose_engines()


@pytest.fixture
def fresh_url(request: pytest.FixtureRequest, db_url: str, tmp_path: Path) -> str:
    """A new, migrated database of the current backend, for code that commits for real (CLI, workers)."""
    if db_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'fresh.db'}"
    else:
        server = request.getfixturevalue("pg_server")
        url = str(server.create_database(f"t_{uuid.uuid4().hex[:16]}"))
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture
def fresh_engine(fresh_url: str) -> Iterator[Engine]:
    engine = make_engine(fresh_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine, settings: Settings) -> Iterator[Session]:
    connection = engine.connect()
    outer = connection.begin()
    session = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield session
    finally:
        session.close()
        outer.rollback()
        connection.close()
