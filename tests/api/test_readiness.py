"""/readyz (database, schema, a worker's heartbeat), 503 problem+json while the database is away, and the
per-process database settings (pool, application name, the API's statement timeout)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text, update
from sqlalchemy.orm import Session

from api.app import create_app
from cloudctl.core.config import Settings, reset_settings
from cloudctl.core.db import dispose_engines, engine_options
from cloudctl.core.jobs import JobRunner, JobWorker
from cloudctl.core.models import utcnow
from cloudctl.org.service import TOKEN_PREFIX
from tests.support.appserver import free_port


@pytest.fixture
def app_on(tmp_path: Path) -> Iterator[object]:
    def make(url: str, **settings: object) -> TestClient:
        reset_settings(Settings(data_dir=tmp_path / "data", database_url=url,
                                simulator_database_url=f"sqlite:///{tmp_path / 'simulator.db'}", **settings))
        return TestClient(create_app(), raise_server_exceptions=False)

    yield make
    reset_settings()
    dispose_engines()


def _fields(response: object) -> list[str]:
    return [error["field"] for error in response.json().get("errors", [])]  # type: ignore[attr-defined]


def test_ready_only_with_the_newest_schema_and_a_worker_beating(app_on: object, fresh_url: str) -> None:
    client: TestClient = app_on(fresh_url, ready_worker_seconds=30)  # type: ignore[operator]
    alone = client.get("/readyz")
    assert alone.status_code == 503
    assert alone.headers["content-type"] == "application/problem+json"
    assert _fields(alone) == ["workers"]

    engine = create_engine(fresh_url)
    try:
        JobRunner(engine, owner="worker-1").beat_presence()
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["workers"] == 1
        assert ready.json()["status"] == "ready"

        with Session(engine) as session:  # the worker died a while ago: its heartbeat is old
            session.execute(update(JobWorker).values(heartbeat_at=utcnow() - timedelta(seconds=31)))
            session.execute(text("UPDATE alembic_version SET version_num = '0001'"))
            session.commit()
        stale = client.get("/readyz")
        assert stale.status_code == 503
        assert _fields(stale) == ["schema", "workers"]
        assert "cloudctl db upgrade" in stale.json()["detail"]
        assert client.get("/healthz").status_code == 200  # alive all the same
    finally:
        engine.dispose()


def test_a_deployment_may_be_ready_without_a_worker(app_on: object, fresh_url: str) -> None:
    client: TestClient = app_on(fresh_url, ready_needs_worker=False)  # type: ignore[operator]
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["workers"] == 0


def test_an_unreachable_database_is_a_prompt_503_problem_not_a_hang_or_a_traceback(app_on: object) -> None:
    nowhere = f"postgresql+psycopg://cloudctl@127.0.0.1:{free_port()}/cloudctl"
    client: TestClient = app_on(nowhere, db_connect_timeout_seconds=2)  # type: ignore[operator]
    for path, headers in (("/healthz", {}), ("/readyz", {}),
                          ("/api/v1/units", {"Authorization": f"Bearer {TOKEN_PREFIX}not-checked-without-a-database"})):
        started = time.monotonic()
        response = client.get(path, headers=headers)
        assert time.monotonic() - started < 5, path
        assert response.status_code == 503, (path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 503
        assert "database" in _fields(response)
        assert "Traceback" not in response.text
        assert "psycopg" not in response.text
    refused = client.get("/api/v1/units", headers={"Authorization": f"Bearer {TOKEN_PREFIX}x"})
    assert refused.headers["retry-after"] == "2"


def test_each_process_kind_names_itself_and_the_api_bounds_its_statements(db_url: str, fresh_url: str) -> None:
    if not fresh_url.startswith("postgresql"):
        pytest.skip("pools, application names and statement timeouts are PostgreSQL's")
    settings = Settings(database_url=fresh_url, api_statement_timeout_seconds=1.5, db_pool_size=3,
                        db_max_overflow=1)
    for kind, timeout in (("api", "1500ms"), ("worker", "0")):
        engine = create_engine(fresh_url, **engine_options(fresh_url, settings, kind))
        try:
            with engine.connect() as connection:
                name = connection.scalar(text("SELECT application_name FROM pg_stat_activity "
                                              "WHERE pid = pg_backend_pid()"))
                assert name == f"cloudctl-{kind}"
                assert connection.scalar(text("SHOW statement_timeout")) == timeout
            assert engine.pool.size() == 3  # type: ignore[attr-defined]
        finally:
            engine.dispose()


def test_the_liveness_probe_keeps_one_connection_and_outlives_a_dropped_one(app_on: object, fresh_url: str) -> None:
    if not fresh_url.startswith("postgresql"):
        pytest.skip("on SQLite the probe reads through the pool on the event loop: no connection of its own")
    app = app_on(fresh_url)  # type: ignore[operator]
    engine = create_engine(fresh_url)
    probes = ("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'cloudctl-api-probe' "
              "AND datname = current_database()")
    try:
        with TestClient(app.app) as client:  # one event loop for the app's life, as uvicorn serves it
            for _ in range(20):
                assert client.get("/healthz").status_code == 200
            with engine.connect() as connection:
                assert connection.scalar(text(probes)) == 1
                # The server drops the probe's connection (a restart, an administrator): the next probe replaces
                # it and answers, rather than reporting a database that is there as away.
                connection.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                        "WHERE application_name = 'cloudctl-api-probe' "
                                        "AND datname = current_database()"))
            assert client.get("/healthz").status_code == 200
        with engine.connect() as connection:  # closed with the app
            # A closed connection's server process takes a moment to go. pg_stat_activity is read once per
            # transaction (a snapshot), so each look is a transaction of its own.
            for _ in range(50):
                if connection.scalar(text(probes)) == 0:
                    break
                connection.rollback()
                time.sleep(0.1)
            assert connection.scalar(text(probes)) == 0
    finally:
        engine.dispose()
