"""Fixtures shared by the whole suite.

Every test that asks for ``session`` runs twice: on SQLite and on a real PostgreSQL
server that the suite starts itself (``CLOUDCTL_TEST_DATABASES=sqlite`` narrows this
for a quick local run; CI always runs both). The schema is built by the Alembic
migrations, so the migrations are tested too; each test runs inside a transaction
that is rolled back, with the code under test committing to a savepoint.

What is expensive is built once per run and copied: the migrated schema (a SQLite file,
a PostgreSQL template database) for tests that commit for real (``fresh_url``), and the
seeded demo city (``demo_city``) for the CLI, screen, wire and scrape tests.

The run is sandboxed (``tests/support/sandbox.py``, imported before anything else): its own
home and data directory, and a guard that fails a test that writes, opens a database or
connects outside its temporary directories and loopback.
"""

from __future__ import annotations

from tests.support import sandbox

# isort: split

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis.configuration import set_hypothesis_home_dir
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cloudctl.core.config import Settings, reset_settings
from cloudctl.core.db import dispose_engines, make_engine
from cloudctl.core.migrate import upgrade
from tests.support.democity import DemoCityFiles, seed_demo_files

DATABASES = [name.strip() for name in os.environ.get("CLOUDCTL_TEST_DATABASES", "sqlite,postgresql").split(",")
             if name.strip()]

# Property-based tests: the same examples on every run (CI is stable) and no example database in the checkout,
# few enough to keep each test to seconds, and no per-example deadline on a shared, noisy machine. The database
# fixtures are reused across examples on purpose: each example cleans up inside the test's transaction.
hypothesis_settings.register_profile("cloudctl", derandomize=True, database=None, max_examples=60, deadline=None,
                                     suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                            HealthCheck.too_slow])
hypothesis_settings.load_profile("cloudctl")
# Its caches (constants found in the code under test, scratch files) go to the sandbox, not the checkout.
set_hypothesis_home_dir(str(sandbox.SANDBOX / "hypothesis"))


# ---------------------------------------------------------------- the sandbox's guard


def pytest_sessionstart(session: pytest.Session) -> None:
    sandbox.arm()


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    sandbox.disarm()
    left = sandbox.take_violations()
    if left:  # touched by a session or module fixture's teardown, after the last test's own check
        session.config.get_terminal_writer().line(
            "test sandbox: touched outside the temporary directories:\n  " + "\n  ".join(left), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True)
def _sandboxed() -> Iterator[None]:
    """Fail the test during which (or during whose fixtures) anything outside the sandbox was touched."""
    before = sandbox.take_violations()
    yield
    touched = before + sandbox.take_violations()
    if touched:
        pytest.fail("test sandbox: touched outside the temporary directories:\n  " + "\n  ".join(touched),
                    pytrace=False)


# ---------------------------------------------------------------- databases


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


@pytest.fixture(scope="session")
def migrated_template(request: pytest.FixtureRequest, db_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database migrated to head once per run, which ``fresh_url`` copies: a SQLite file or a PostgreSQL
    template database (``CREATE DATABASE … TEMPLATE`` copies it at file level, far faster than migrating)."""
    if db_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path_factory.mktemp('template') / 'migrated.db'}"
    else:
        server = request.getfixturevalue("pg_server")
        url = str(server.create_database("cloudctl_migrated"))
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()  # SQLite: the last connection's close checkpoints the WAL into the file that is copied
    return url


@pytest.fixture
def fresh_url(request: pytest.FixtureRequest, migrated_template: str, tmp_path: Path) -> str:
    """A new, migrated database of the current backend, for code that commits for real (CLI, workers)."""
    if migrated_template.startswith("sqlite"):
        path = tmp_path / "fresh.db"
        shutil.copyfile(migrated_template.removeprefix("sqlite:///"), path)
        return f"sqlite:///{path}"
    server = request.getfixturevalue("pg_server")
    return str(server.create_database(f"t_{uuid.uuid4().hex[:16]}",  # type: ignore[attr-defined]
                                      template=migrated_template.rsplit("/", 1)[1]))


@pytest.fixture
def fresh_engine(fresh_url: str) -> Iterator[Engine]:
    engine = make_engine(fresh_url)
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


# ---------------------------------------------------------------- the demo city


@pytest.fixture(scope="session")
def demo_city(tmp_path_factory: pytest.TempPathFactory) -> DemoCityFiles:
    """The demo city seeded once per run on SQLite (database, simulator store, tokens); copy it with
    :meth:`DemoCityFiles.copy_to` for a module of one's own."""
    return seed_demo_files(tmp_path_factory.mktemp("demo-city"))
