"""Request dependencies: one unit of work per request, and the principal behind the bearer token.

A request costs one thread-pool turn: the session is made on the event loop (no I/O), and the
handler, its commit (or rollback) and the session's close run together in the handler's thread
(:class:`UnitOfWorkRoute`). The unit of work is committed before the answer leaves, so a client that
got a 2xx finds the change. GET, HEAD and OPTIONS read (deferred transactions on SQLite: readers run
side by side) unless the route is marked :func:`writes`; every other method writes.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import BackgroundTasks, Depends, Query, Request
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from cloudctl.core.auth import Principal
from cloudctl.core.db import get_engine, session_factory
from cloudctl.core.errors import NotAuthenticated
from cloudctl.org.service import cached_token, stamp_token_used, verify_token

__all__ = ["PrincipalDep", "SessionDep", "UnitFilter", "UnitOfWork", "UnitOfWorkRoute", "bearer", "get_principal",
           "get_session", "in_unit_of_work", "writes"]

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_WRITES = "__cloudctl_writes__"

F = TypeVar("F", bound=Callable[..., Any])
R = TypeVar("R")


def writes(endpoint: F) -> F:
    """Mark a GET route that writes (it records something as it answers): its unit of work takes the write lock.
    Put it under the route decorator."""
    setattr(endpoint, _WRITES, True)
    return endpoint


class UnitOfWork:
    """A request's session, finished (committed or rolled back, then closed) exactly once."""

    __slots__ = ("finished", "session", "write")

    def __init__(self, *, write: bool) -> None:
        self.write = write
        self.session = session_factory(write=write)()
        self.finished = False

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
        unit = UnitOfWork(write=_writes(request))
        _current.set(unit)
        try:
            yield unit.session
        except BaseException:
            if not unit.finished:
                await run_in_threadpool(unit.finish, failed=True)
            raise
        else:
            if not unit.finished:
                await run_in_threadpool(unit.finish, failed=False)
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


async def in_unit_of_work(call: Callable[..., R], /, **kwargs: Any) -> R:
    """For async routes: run ``call(**kwargs)`` and finish the request's unit of work in one thread-pool turn."""
    return await run_in_threadpool(_run_and_finish, _current.get(), call, kwargs)


def _one_turn(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """``endpoint`` (sync) as a coroutine that runs it and finishes the unit of work in one thread-pool turn."""

    @functools.wraps(endpoint)
    async def run(**kwargs: Any) -> Any:
        return await run_in_threadpool(_run_and_finish, _current.get(), endpoint, kwargs)

    return run


class UnitOfWorkRoute(APIRoute):
    """A route whose sync handler runs, commits and closes its unit of work in one thread-pool turn."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        sync = not (inspect.iscoroutinefunction(endpoint) or inspect.isgeneratorfunction(endpoint)
                    or inspect.isasyncgenfunction(endpoint))
        super().__init__(path, _one_turn(endpoint) if sync else endpoint, **kwargs)


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
    token's "last used" stamp is written after the answer, in a transaction of its own."""
    if credentials is None:
        raise NotAuthenticated("missing bearer token (Authorization: Bearer <token>)")
    check = cached_token(credentials.credentials)
    if check is None:
        check = await run_in_threadpool(verify_token, session, credentials.credentials)
    request.state.token_expires_at = check.expires_at
    if check.stale:
        background.add_task(_stamp, check.token_id)
    return check.principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


# What ``unit`` means in every list that filters by it (cloudctl.core.read): the unit and every unit under it.
UnitFilter = Annotated[str | None, Query(description="a unit code: that unit and every unit under it")]
