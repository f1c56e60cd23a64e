"""Where the exposition is served: the API's ``/metrics``, ``cloudctl monitors serve``, ``cloudctl metrics``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry
from sqlalchemy.orm import Session

from cloudctl.core.db import get_engine, session_factory
from monitors.collector import CloudctlCollector, SessionFactory

__all__ = ["build_registry", "database_sessions"]


@contextmanager
def database_sessions() -> Iterator[Session]:
    """A read-only session of its own: a scrape never joins (or waits on) a request's transaction, and on SQLite
    takes no write lock (a deferred transaction; any write is refused)."""
    with session_factory(get_engine(), write=False)() as session:
        try:
            yield session
        finally:
            session.rollback()


def build_registry(sessions: SessionFactory = database_sessions, *,
                   refresh_seconds: float = 10.0) -> CollectorRegistry:
    """A registry of its own (not prometheus_client's global one): every app and test gets a fresh one.

    ``refresh_seconds=0`` reads the database on every scrape; otherwise scrapes are answered from the
    last reading, refreshed in the background (see :class:`CloudctlCollector`).
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CloudctlCollector(sessions, refresh_seconds=refresh_seconds))
    return registry
