"""Where a request runs: a bounded read on SQLite on the event loop, everything else in one thread-pool turn.

A read marked ``bounded_read`` (one page, one record, a probe) costs no thread hand-off on SQLite, where the read is
this process's own CPU and never waits for the writer. A write (it may wait for SQLite's write lock), an unmarked
read (an export, a summary over the city) and every request on PostgreSQL (network round trips, a server that may
stall) keep their turn, so none of them can hold up the event loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_app
from api.deps import SessionDep, UnitOfWorkRoute, bounded_read, writes
from api.problems import install_problem_handlers
from cloudctl.core.config import Settings, reset_settings
from cloudctl.core.db import dispose_engines, is_read_only

BOUNDED = "__cloudctl_bounded_read__"
WRITES = "__cloudctl_writes__"


def _marked(route: APIRoute, mark: str) -> bool:
    return bool(getattr(route.endpoint, mark, False))


def test_bounded_reads_are_reads_that_write_nothing() -> None:
    app = create_app()
    bounded = [context for context in iter_route_contexts(app.routes)
               if isinstance(context.route, APIRoute) and _marked(context.route, BOUNDED)]
    assert bounded, "no route is marked bounded_read"
    for context in bounded:
        route = context.route
        assert isinstance(route, APIRoute)
        assert (route.methods or set()) <= {"GET", "HEAD"}, f"{context.path}: a bounded read answers GET only"
        assert not _marked(route, WRITES), f"{context.path}: a route that writes is not a bounded read"
    paths = {context.path for context in bounded}
    # The requests every screen and department system makes most often.
    assert {"/api/v1/me", "/api/v1/units", "/api/v1/servers", "/api/v1/units/{code}"} <= paths
    # Answers that grow with the city keep their thread-pool turn.
    assert not paths & {"/api/v1/screen/summary", "/api/v1/security/blocklist", "/api/v1/showback",
                        "/api/v1/reclaim/summary", "/api/v1/security/duty/missing",
                        "/api/v1/security/drills/{drill_id}/summary"}


async def loop_thread() -> int:
    return threading.get_ident()


Loop = Annotated[int, Depends(loop_thread)]


def _probe_app() -> tuple[FastAPI, dict[str, tuple[int, int, bool]]]:
    """An app with one route of each kind; each records (event loop thread, handler thread, read-only session)."""
    seen: dict[str, tuple[int, int, bool]] = {}
    router = APIRouter(route_class=UnitOfWorkRoute)

    def record(name: str, loop: int, session: SessionDep) -> dict[str, str]:
        session.execute(text("SELECT 1"))
        seen[name] = (loop, threading.get_ident(), is_read_only(session))
        return {"route": name}

    @router.get("/bounded")
    @bounded_read
    def bounded(loop: Loop, session: SessionDep) -> dict[str, str]:
        return record("bounded", loop, session)

    @router.get("/unbounded")
    def unbounded(loop: Loop, session: SessionDep) -> dict[str, str]:
        return record("unbounded", loop, session)

    @router.get("/bounded-but-writes")
    @bounded_read
    @writes
    def bounded_but_writes(loop: Loop, session: SessionDep) -> dict[str, str]:
        return record("bounded-but-writes", loop, session)

    @router.get("/bounded-but-slow")
    @bounded_read
    def bounded_but_slow(loop: Loop, session: SessionDep) -> dict[str, int]:
        # A read that turns out not to be quick: a few hundred thousand steps of SQLite's virtual machine.
        counted = session.scalar(text("WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n "
                                      "WHERE x < 300000) SELECT count(*) FROM n"))
        seen["bounded-but-slow"] = (loop, threading.get_ident(), is_read_only(session))
        return {"counted": int(counted or 0)}

    @router.post("/write")
    def write(loop: Loop, session: SessionDep) -> dict[str, str]:
        return record("write", loop, session)

    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(router)
    return app, seen


Probe = tuple[TestClient, dict[str, tuple[int, int, bool]]]


@pytest.fixture
def probe_on(fresh_url: str, tmp_path: Path) -> Iterator[Callable[..., Probe]]:
    clients: list[TestClient] = []

    def make(**settings: Any) -> Probe:
        reset_settings(Settings(data_dir=tmp_path / "d", database_url=fresh_url, **settings))
        app, seen = _probe_app()
        client = TestClient(app)
        clients.append(client.__enter__())
        return client, seen

    try:
        yield make
    finally:
        for client in clients:
            client.__exit__(None, None, None)
        reset_settings()
        dispose_engines()


@pytest.fixture
def probe(probe_on: Callable[..., Probe]) -> Probe:
    return probe_on()


def test_where_each_kind_of_request_runs(probe: Probe, fresh_url: str) -> None:
    client, seen = probe
    for method, path in (("GET", "/bounded"), ("GET", "/unbounded"), ("GET", "/bounded-but-writes"),
                         ("POST", "/write")):
        assert client.request(method, path).status_code == 200, path
    on_loop = {name for name, (loop, handler, _) in seen.items() if loop == handler}
    sqlite = fresh_url.startswith("sqlite")
    assert on_loop == ({"bounded"} if sqlite else set())
    # Where it runs changes nothing of what it may do: reads stay read-only, writes write.
    assert {name for name, (_, _, read_only) in seen.items() if read_only} == {"bounded", "unbounded"}


def test_a_bounded_read_on_the_loop_still_answers_its_errors(probe: Probe) -> None:
    client, _ = probe
    response = client.get("/bounded?nosuch=1")
    assert response.status_code == 422
    assert "nosuch" in response.json()["detail"]


def test_a_bounded_read_over_its_budget_is_finished_in_the_pool(probe_on: Callable[..., Probe], fresh_url: str,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    if not fresh_url.startswith("sqlite"):
        pytest.skip("on PostgreSQL every read takes a thread-pool turn")
    client, seen = probe_on(api_read_on_loop_ms=2)
    with caplog.at_level(logging.INFO, logger="api.deps"):
        slow = client.get("/bounded-but-slow")
        quick = client.get("/bounded")
    assert slow.status_code == 200, slow.text
    assert slow.json() == {"counted": 300000}  # the whole answer, not the part read before the interruption
    loop, handler, read_only = seen["bounded-but-slow"]
    assert handler != loop
    assert read_only
    assert "went over 2 ms" in caplog.text
    assert quick.status_code == 200
    assert seen["bounded"][0] == seen["bounded"][1]  # the next quick read is on the loop again


def test_no_read_on_the_loop_when_the_budget_is_zero(probe_on: Callable[..., Probe]) -> None:
    client, seen = probe_on(api_read_on_loop_ms=0)
    assert client.get("/bounded").status_code == 200
    loop, handler, _ = seen["bounded"]
    assert handler != loop
