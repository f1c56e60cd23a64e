"""The suite's own PostgreSQL: starts on loopback only and keeps Chinese text intact."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from tests.support.pgserver import PostgresServer

pytestmark = pytest.mark.postgres


def test_server_listens_on_loopback_and_round_trips_utf8(pg_server: PostgresServer) -> None:
    engine = create_engine(pg_server.create_database("roundtrip"))
    with engine.begin() as conn:
        assert conn.scalar(text("SHOW server_encoding")) == "UTF8"
        assert conn.scalar(text("SHOW listen_addresses")) == "127.0.0.1"
        conn.execute(text("CREATE TEMP TABLE t (name text)"))
        conn.execute(text("INSERT INTO t VALUES (:n)"), {"n": "市人力资源和社会保障局"})
        assert conn.scalar(text("SELECT name FROM t")) == "市人力资源和社会保障局"
    engine.dispose()
