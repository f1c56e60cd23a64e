"""The liveness probe's one question, "does the database answer?", asked without a thread-pool turn.

SQLite is a library in this process: a ``SELECT 1`` on a pooled connection is a few microseconds, asked right on
the event loop (api.deps says why reads like it run there). PostgreSQL is a server: the probe keeps one asyncio
connection of its own (psycopg's ``AsyncConnection``, autocommit) and asks over it, so the event loop waits for the
network, not a pool thread for the GIL: probes every second from several load balancers cost the API next to nothing,
and a probe never waits behind a full pool. A connection the server dropped (a restart) is replaced once before the
probe says the database is away; a server that does not answer within ``db_connect_timeout_seconds`` is away.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import psycopg
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from cloudctl.core.config import get_settings
from cloudctl.core.db import get_engine, read_connection

__all__ = ["DatabaseAway", "DatabaseProbe"]


class DatabaseAway(Exception):
    """The database did not answer; the message names the kind of failure (never the driver's words)."""


class DatabaseProbe:
    """One per app: its PostgreSQL connection belongs to the app's event loop, and is closed with the app."""

    def __init__(self) -> None:
        self._connection: psycopg.AsyncConnection[Any] | None = None
        self._opening: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def ask(self) -> None:
        """Return when the database answers; raise :class:`DatabaseAway` when it does not."""
        engine = get_engine()
        if engine.dialect.name == "sqlite":
            try:
                with read_connection(engine) as connection:
                    connection.execute(text("SELECT 1"))
            except SQLAlchemyError as exc:
                raise DatabaseAway(type(exc).__name__) from None
            return
        if self._loop is not asyncio.get_running_loop():
            # Served by another event loop than before (a test client without a lifespan): what was opened there
            # cannot be used or awaited from here, so libpq closes its socket at once.
            if self._connection is not None:
                self._connection.pgconn.finish()
            self._connection, self._opening, self._loop = None, asyncio.Lock(), asyncio.get_running_loop()
        timeout = get_settings().db_connect_timeout_seconds
        try:
            await asyncio.wait_for(self._select_one(engine), timeout)
        except TimeoutError:
            await self.close()
            raise DatabaseAway(f"no answer within {timeout} s") from None
        except (psycopg.Error, OSError) as exc:
            await self.close()
            raise DatabaseAway(type(exc).__name__) from None

    async def _select_one(self, engine: Engine) -> None:
        held = self._connection
        if held is not None and not held.closed:
            try:
                await held.execute("SELECT 1")
                return
            except (psycopg.OperationalError, psycopg.InterfaceError):
                await self.close()  # dropped by the server (a restart): one fresh connection decides
        connection = await self._open(engine)
        await connection.execute("SELECT 1")

    async def _open(self, engine: Engine) -> psycopg.AsyncConnection[Any]:
        assert self._opening is not None
        async with self._opening:  # many probes at once open one connection, not one each
            if self._connection is None or self._connection.closed:
                url = engine.url.set(drivername="postgresql")
                self._connection = await psycopg.AsyncConnection.connect(
                    url.render_as_string(hide_password=False), autocommit=True,
                    application_name="cloudctl-api-probe",
                    connect_timeout=get_settings().db_connect_timeout_seconds)
            return self._connection

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.closed:
            with contextlib.suppress(psycopg.Error, OSError):  # already gone with the server
                await connection.close()
