"""Request dependencies: one unit of work per request, and the principal behind the bearer token.

A request costs at most one thread-pool turn: the session is made on the event loop (no I/O), and the
handler, its commit (or rollback) and the session's close run together in the handler's thread
(:class:`UnitOfWorkRoute`). The unit of work is committed before the answer leaves, so a client that
got a 2xx finds the change. GET, HEAD and OPTIONS read (deferred transactions on SQLite: readers run
side by side) unless the route is marked :func:`writes`; every other method writes.

A read marked :func:`bounded_read` (one page, one record) costs no thread-pool turn on SQLite: it runs on
the event loop. SQLite is a library in this process, not a server: a read in a WAL database never waits for
the writer, so such a read is a few hundred microseconds of this process's own CPU, which a pool thread would
spend too, holding the GIL, after a hand-off that costs about as much as the read (and, with many connections,
waits for the GIL behind the event loop). A bounded read that takes longer than ``api_read_on_loop_ms`` (a
filter scanning a large table) is interrupted by SQLite and run again in the pool. Writes (they may wait for
SQLite's one write lock), reads of unbounded size (exports, reports, summaries over the city) and everything
on PostgreSQL (a network round trip per statement, and a server that can stall) keep their turn.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextvars import ContextVar
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import BackgroundTasks, Depends, Query, Request, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api import strict
from cloudctl.core.auth import Principal
from cloudctl.core.config import get_settings
from cloudctl.core.db import get_engine, read_budget, session_factory
from cloudctl.core.errors import NotAuthenticated
from cloudctl.org.service import cached_token, stamp_token_used, verify_token

__all__ = ["PrincipalDep", "SessionDep", "UnitFilter", "UnitOfWork", "UnitOfWorkRoute", "bearer", "bounded_read",
           "get_principal", "get_session", "in_unit_of_work", "on_loop", "writes"]

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_WRITES = "__cloudctl_writes__"
_BOUNDED = "__cloudctl_bounded_read__"

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
R = TypeVar("R")


def writes(endpoint: F) -> F:
    """Mark a GET route that writes (it records something as it answers): its unit of work takes the write lock.
    Put it under the route decorator."""
    setattr(endpoint, _WRITES, True)
    return endpoint


def bounded_read(endpoint: F) -> F:
    """Mark a GET route whose answer is bounded (one page of at most the page cap, one record): on SQLite
    it runs on the event loop, without a thread-pool turn. Never for a route that writes, nor for one whose work
    grows with the city (an export, a report, a summary): those would hold up every other request meanwhile.
    Put it under the route decorator."""
    setattr(endpoint, _BOUNDED, True)
    return endpoint


def _loop_budget(engine: Engine) -> float:
    """Seconds a bounded read may take on the event loop: none but on SQLite (see the module's docstring)."""
    if engine.dialect.name != "sqlite":
        return 0.0
    return get_settings().api_read_on_loop_ms / 1000


def on_loop() -> bool:
    """Whether bounded reads run on the event loop: on SQLite, unless ``api_read_on_loop_ms`` is 0."""
    return _loop_budget(get_engine()) > 0


class UnitOfWork:
    """A request's session, finished (committed or rolled back, then closed) exactly once. ``on_loop``: a bounded
    read on SQLite, run and finished on the event loop."""

    __slots__ = ("finished", "on_loop", "session", "write")

    def __init__(self, *, write: bool, bounded: bool = False) -> None:
        self.write = write
        factory = session_factory(write=write)
        self.on_loop = bounded and not write and _loop_budget(factory.kw["bind"]) > 0
        self.session = factory()
        self.finished = False

    @property
    def idle(self) -> bool:
        """Never began a transaction (a cached token, no query): finishing it touches no database."""
        return not self.session.in_transaction()

    def finish(self, *, failed: bool) -> None:
        if self.finished:
            return
        self.finished = True
        try:
            if failed:
                self.session.rollback()
            else:
                self.session.commit()
        except BaseException:
            self.session.rollback()
            raise
        finally:
            self.session.close()


_current: ContextVar[UnitOfWork | None] = ContextVar("cloudctl_unit_of_work", default=None)


def _writes(request: Request) -> bool:
    if request.method not in READ_METHODS:
        return True
    return bool(getattr(request.scope.get("endpoint"), _WRITES, False))


def _bounded(request: Request) -> bool:
    return bool(getattr(request.scope.get("endpoint"), _BOUNDED, False))


# A unit of work that has begun (the token lookup on a cache miss, an async route) may wait for another
# thread-pool turn while it holds a connection and, on SQLite, maybe the write lock. Were every pool thread
# taken by requests waiting for a connection or that lock, it could never finish. So fewer units of work may
# be open at once than there are threads (40) or pooled connections (32 on SQLite); the rest wait on the
# event loop, holding nothing.
SESSION_SLOTS = 12


def _session_slots(request: Request) -> anyio.Semaphore:
    # One semaphore per app, made on first use: it belongs to the event loop serving the app.
    slots: anyio.Semaphore | None = getattr(request.app.state, "session_slots", None)
    if slots is None:
        # fast_acquire: a free slot is taken without yielding to the event loop (a whole loop turn per request).
        slots = request.app.state.session_slots = anyio.Semaphore(SESSION_SLOTS, fast_acquire=True)
    return slots


async def get_session(request: Request) -> AsyncIterator[Session]:
    """The request's unit of work. The handler's thread finishes it (see :class:`UnitOfWorkRoute`); whatever is left
    (an async route, a failure before the handler ran) is finished here, still before the answer is sent."""
    async with _session_slots(request):
        write = _writes(request)
        unit = UnitOfWork(write=write, bounded=not write and _bounded(request))
        _current.set(unit)
        try:
            yield unit.session
        except BaseException:
            if not unit.finished:
                await _turn(unit.on_loop or unit.idle, unit.finish, failed=True)
            raise
        else:
            if not unit.finished:
                await _turn(unit.on_loop or unit.idle, unit.finish, failed=False)
        finally:
            _current.set(None)


# scope="function": the exit code above runs before the answer is sent, never after.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def _run_and_finish(unit: UnitOfWork | None, call: Callable[..., R], kwargs: dict[str, Any]) -> R:
    if unit is None or unit.finished:
        return call(**kwargs)
    try:
        result = call(**kwargs)
    except BaseException:
        unit.finish(failed=True)
        raise
    unit.finish(failed=False)
    return result


async def _read_here(unit: UnitOfWork | None, call: Callable[..., R], kwargs: dict[str, Any]) -> R:
    """A bounded read on the event loop, within ``api_read_on_loop_ms``. One that goes over (a filter scanning a
    large table) is interrupted by SQLite, rolled back, and run again in a thread-pool turn, where it holds up no
    other request: a read has changed nothing, so running it again is safe."""
    seconds = get_settings().api_read_on_loop_ms / 1000
    with read_budget(seconds) as budget:
        try:
            return _run_and_finish(unit, call, kwargs)
        except Exception:
            if not budget.spent:
                raise
    log.info("a bounded read went over %g ms on the event loop: finished in the thread pool", seconds * 1000)
    if unit is not None:
        unit.finished = False  # rolled back and closed: its session begins afresh
    return await run_in_threadpool(_run_and_finish, unit, call, kwargs)


async def _turn(here: bool, call: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
    """``call`` right here on the event loop, or in a thread-pool turn."""
    if here:
        return call(*args, **kwargs)
    return await run_in_threadpool(call, *args, **kwargs)


async def in_unit_of_work(call: Callable[..., R], /, **kwargs: Any) -> R:
    """For async routes: run ``call(**kwargs)`` and finish the request's unit of work in one thread-pool turn."""
    unit = _current.get()
    if unit is not None and unit.on_loop:
        return await _read_here(unit, call, kwargs)
    return await run_in_threadpool(_run_and_finish, unit, call, kwargs)


def _one_turn(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """``endpoint`` (sync) as a coroutine that runs it and finishes the unit of work in one thread-pool turn, or,
    a bounded read on SQLite, on the event loop."""
    bounded = getattr(endpoint, _BOUNDED, False) and not getattr(endpoint, _WRITES, False)

    @functools.wraps(endpoint)
    async def run(**kwargs: Any) -> Any:
        unit = _current.get()
        if unit.on_loop if unit is not None else bounded and on_loop():
            return await _read_here(unit, endpoint, kwargs)
        return await run_in_threadpool(_run_and_finish, unit, endpoint, kwargs)

    return run


class UnitOfWorkRoute(APIRoute):
    """A route whose sync handler runs, commits and closes its unit of work in one thread-pool turn (or, a bounded
    read on SQLite, on the event loop), and that refuses query parameters it does not declare (api.strict)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        sync = not (inspect.iscoroutinefunction(endpoint) or inspect.isgeneratorfunction(endpoint)
                    or inspect.isasyncgenfunction(endpoint))
        super().__init__(path, _one_turn(endpoint) if sync else endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            strict.refuse_unknown_query(self, request)
            return await handler(request)

        return checked


bearer = HTTPBearer(auto_error=False, description="an API token from `cloudctl token create`")


def _stamp(token_id: int) -> None:
    stamp_token_used(get_engine(), token_id)


async def get_principal(
    request: Request,
    background: BackgroundTasks,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The principal behind the bearer token: from a short cache, or one indexed lookup that writes nothing. The
    check is kept on ``request.state`` (``token_check``). The token's "last used" stamp is written after the answer,
    in a transaction of its own."""
    if credentials is None:
        raise NotAuthenticated("missing bearer token (Authorization: Bearer <token>)")
    check = cached_token(credentials.credentials)
    if check is None:
        unit = _current.get()
        check = await _turn(unit is not None and unit.on_loop, verify_token, session, credentials.credentials)
    request.state.token_check = check
    if check.stale:
        background.add_task(_stamp, check.token_id)
    return check.principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


# What ``unit`` means in every list that filters by it (cloudctl.core.read): the unit and every unit under it.
UnitFilter = Annotated[str | None, Query(description="a unit code: that unit and every unit under it")]
