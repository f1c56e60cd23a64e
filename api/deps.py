"""Request dependencies: one database session per request, and the principal behind the bearer token."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from cloudctl.core.auth import Principal
from cloudctl.core.db import session_factory
from cloudctl.core.errors import NotAuthenticated
from cloudctl.org.service import authenticate_token

__all__ = ["PrincipalDep", "SessionDep", "get_principal", "get_session"]


def get_session() -> Iterator[Session]:
    """The request's unit of work: committed when the handler returns, rolled back if it raises."""
    session = session_factory()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(get_session)]

_bearer = HTTPBearer(auto_error=False, description="an API token from `cloudctl token create`")


def get_principal(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise NotAuthenticated("missing bearer token (Authorization: Bearer <token>)")
    principal, token = authenticate_token(session, credentials.credentials)
    request.state.token_expires_at = token.expires_at
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]
