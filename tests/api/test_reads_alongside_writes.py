"""Reads beside writes through a real uvicorn: a read answers while another connection holds the write lock,
readers and writers side by side all succeed, a change is there once its 2xx has arrived, and a cached token
is forgotten the moment it is revoked."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, select, text, update
from sqlalchemy.orm import Session

from api.app import create_app
from cloudctl.core.config import Settings, reset_settings
from cloudctl.core.db import dispose_engines
from cloudctl.org import service
from cloudctl.org.models import ApiToken, Unit
from tests.factories import ADMIN, MiniCity, build_mini_city
from tests.support.appserver import serve


@pytest.fixture
def served(fresh_url: str, fresh_engine: Engine, tmp_path: Path) -> Iterator[tuple[str, MiniCity, Engine]]:
    reset_settings(Settings(data_dir=tmp_path / "d", database_url=fresh_url, api_token_cache_seconds=60,
                            simulator_database_url=f"sqlite:///{tmp_path / 'sim.db'}"))
    with Session(fresh_engine) as session:
        city = build_mini_city(session, with_cloud=True)
        session.commit()
    service.token_cache.clear()
    try:
        with serve(create_app()) as base:
            yield base, city, fresh_engine
    finally:
        service.token_cache.clear()
        reset_settings()
        dispose_engines()


def _hold_write_lock(engine: Engine, connection: object) -> None:
    """Begin a writer's transaction on ``connection`` that keeps every other writer out until it ends."""
    from sqlalchemy import Connection

    assert isinstance(connection, Connection)
    connection.begin()  # on SQLite: BEGIN IMMEDIATE, the one write lock
    connection.execute(update(Unit).where(Unit.code == "990100-D02").values(contact_name="王芳"))
    if engine.dialect.name == "postgresql":
        # Writers of these tables wait; readers (ACCESS SHARE) do not.
        connection.execute(text("LOCK TABLE units, api_tokens IN EXCLUSIVE MODE"))


def test_a_read_answers_while_another_connection_holds_the_write_lock(
        served: tuple[str, MiniCity, Engine]) -> None:
    base, city, engine = served
    headers = {"Authorization": f"Bearer {city.tokens['dept']}"}
    token_id = _token_id(engine, "dept-user")
    with engine.connect() as holder:
        _hold_write_lock(engine, holder)
        started = time.monotonic()
        with httpx.Client(base_url=base, headers=headers, timeout=10) as client:
            me = client.get("/api/v1/me")
            units = client.get("/api/v1/units?limit=50")
            health = client.get("/healthz")
        elapsed = time.monotonic() - started
        assert (me.status_code, units.status_code, health.status_code) == (200, 200, 200), me.text + units.text
        assert me.json()["username"] == "dept-user"
        # The department's own subtree, as committed (the holder's change is not visible).
        assert {u["code"] for u in units.json()["items"]} == {"990100-D01", "990100-M001"}
        assert elapsed < 5, f"reads waited for the writer: {elapsed:.1f} s"  # the busy timeout is 15 s
        # The token's "last used" stamp cannot be written now: it is skipped, not waited for.
        assert service.stamp_token_used(engine, token_id) is False
        holder.rollback()
    assert service.stamp_token_used(engine, token_id) in (True, False)  # the request's own stamp may have won
    with Session(engine) as check:
        assert check.scalar(select(ApiToken.last_used_at).where(ApiToken.id == token_id)) is not None


def _token_id(engine: Engine, username: str) -> int:
    from cloudctl.org.models import User

    with Session(engine) as session:
        return int(session.scalars(select(ApiToken.id).join(ApiToken.user).where(User.username == username)).one())


def test_readers_and_writers_side_by_side_all_succeed(served: tuple[str, MiniCity, Engine]) -> None:
    base, city, _ = served
    headers = {"Authorization": f"Bearer {city.tokens['admin']}"}
    codes = [f"990102{n:03d}" for n in range(101, 117)]

    async def write(client: httpx.AsyncClient, code: str) -> tuple[int, int]:
        created = await client.post("/api/v1/units", json={"code": code, "name": f"测试镇{code[-3:]}",
                                                           "kind": "town", "parent": "990102"})
        # The unit of work committed before the answer left: the next request finds the unit.
        found = await client.get(f"/api/v1/units/{code}")
        return created.status_code, found.status_code

    async def read(client: httpx.AsyncClient, n: int) -> int:
        path = ("/api/v1/units?limit=50", "/api/v1/me", "/healthz", "/api/v1/business-systems")[n % 4]
        return (await client.get(path)).status_code

    async def run() -> tuple[list[tuple[int, int]], list[int]]:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=60) as client:
            writes = [write(client, code) for code in codes]
            reads = [read(client, n) for n in range(64)]
            results = await asyncio.gather(*writes, *reads)
        return list(results[:len(codes)]), list(results[len(codes):])  # type: ignore[arg-type]

    written, read_statuses = asyncio.run(run())
    assert written == [(201, 200)] * len(codes)
    assert read_statuses == [200] * 64
    listed = httpx.get(f"{base}/api/v1/units?parent=990102&limit=100", headers=headers).json()
    assert {u["code"] for u in listed["items"]} >= set(codes)


def test_a_cached_token_is_forgotten_when_revoked(served: tuple[str, MiniCity, Engine]) -> None:
    base, city, engine = served
    headers = {"Authorization": f"Bearer {city.tokens['dept']}"}
    assert httpx.get(f"{base}/api/v1/me", headers=headers).status_code == 200
    assert httpx.get(f"{base}/api/v1/me", headers=headers).status_code == 200  # from the cache (60 s here)
    with Session(engine) as session:
        service.revoke_token(session, ADMIN, str(_token_id(engine, "dept-user")))
        session.commit()
    answer = httpx.get(f"{base}/api/v1/me", headers=headers)
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"


def test_a_cached_token_is_forgotten_when_its_user_is_disabled(served: tuple[str, MiniCity, Engine]) -> None:
    from cloudctl.org.models import User

    base, city, engine = served
    headers = {"Authorization": f"Bearer {city.tokens['duty']}"}
    assert httpx.get(f"{base}/api/v1/me", headers=headers).status_code == 200
    with Session(engine) as session:
        session.scalars(select(User).where(User.username == "duty-user")).one().active = False
        session.commit()
    assert httpx.get(f"{base}/api/v1/me", headers=headers).status_code == 401
