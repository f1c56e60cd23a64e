"""Request dependencies: one database session per request, and the principal behind the bearer token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import anyio
import anyio.to_thread
from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from cloudctl.core.auth import Principal
from cloudctl.core.db import session_factory
from cloudctl.core.errors import NotAuthenticated
from cloudctl.org.service import authenticate_token

__all__ = ["PrincipalDep", "SessionDep", "UnitFilter", "bearer", "get_principal", "get_session"]


# A request that holds a database connection (and, on SQLite, the write lock) still needs
# thread-pool turns for its principal, its handler and its commit. Were every pool thread
# taken by requests waiting for a connection or the lock, the holder could never finish:
# all of them would wait until the timeouts failed them. So fewer requests may hold a
# session at once than there are threads (40) or pooled connections (15 on SQLite); the
# rest wait on the event loop, holding nothing.
SESSION_SLOTS = 12
_finishers = anyio.CapacityLimiter(SESSION_SLOTS)


def _session_slots(request: Request) -> anyio.Semaphore:
    # One semaphore per app, made on first use: it belongs to the event loop serving the app.
    slots: anyio.Semaphore | None = getattr(request.app.state, "session_slots", None)
    if slots is None:
        slots = request.app.state.session_slots = anyio.Semaphore(SESSION_SLOTS)
    return slots


async def get_session(request: Request) -> AsyncIterator[Session]:
    """The request's unit of work: committed when the handler returns, rolled back if it raises."""
    async with _session_slots(request):
        session = session_factory()()
        try:
            yield session
            await anyio.to_thread.run_sync(session.commit, limiter=_finishers)
        except BaseException:
            await anyio.to_thread.run_sync(session.rollback, limiter=_finishers)
            raise
        finally:
            await anyio.to_thread.run_sync(session.close, limiter=_finishers)


SessionDep = Annotated[Session, Depends(get_session)]

bearer = HTTPBearer(auto_error=False, description="an API token from `cloudctl token create`")


def get_principal(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if credentials is None:
        raise NotAuthenticated("missing bearer token (Authorization: Bearer <token>)")
    principal, token = authenticate_token(session, credentials.credentials)
    request.state.token_expires_at = token.expires_at
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


# What ``unit`` means in every list that filters by it (cloudctl.core.read): the unit and every unit under it.
UnitFilter = Annotated[str | None, Query(description="a unit code: that unit and every unit under it")]
