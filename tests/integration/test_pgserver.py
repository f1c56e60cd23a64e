"""The suite's own PostgreSQL: loopback only, UTF-8 intact, and gone without a trace when stopped."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from tests.support.pgserver import PostgresServer

pytestmark = pytest.mark.postgres

NAME = "市人力资源和社会保障局"


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    with PostgresServer() as pg:
        yield pg


def _accepts(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
        return True
    except OSError:
        return False


def test_round_trips_chinese_text_in_a_utf8_database(server: PostgresServer) -> None:
    engine = create_engine(server.create_database("roundtrip"))
    try:
        with engine.begin() as conn:
            assert conn.scalar(text("SHOW server_encoding")) == "UTF8"
            conn.execute(text("CREATE TEMP TABLE t (name text)"))
            conn.execute(text("INSERT INTO t VALUES (:n)"), {"n": NAME})
            assert conn.scalar(text("SELECT name FROM t WHERE name = :n"), {"n": NAME}) == NAME
    finally:
        engine.dispose()


def test_listens_on_127_0_0_1_only(server: PostgresServer) -> None:
    assert server.url.startswith(f"postgresql+psycopg://cloudctl@127.0.0.1:{server.port}/")
    engine = create_engine(server.url)
    with engine.connect() as conn:
        assert conn.scalar(text("SHOW listen_addresses")) == "127.0.0.1"
    engine.dispose()
    assert _accepts("127.0.0.1", server.port)
    assert not _accepts("127.0.0.2", server.port)  # same loopback interface, another address: refused


def test_a_second_server_does_not_interfere_and_leaves_nothing_behind(server: PostgresServer) -> None:
    with PostgresServer() as other:
        root, port = other.root, other.port
        assert root is not None
        assert root != server.root
        assert port != server.port
        assert root.stat().st_mode & 0o777 == 0o700
    assert not root.exists()
    assert not _accepts("127.0.0.1", port)
    assert _accepts("127.0.0.1", server.port)
