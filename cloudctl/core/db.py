"""Database engine and sessions.

SQLite is the embedded default (WAL, foreign keys on, a busy timeout so the job
runner and the API can share the file); PostgreSQL is the production database.
Services never commit: the caller (a CLI command, an API request, a job) owns the
transaction, so a change and its audit row land together or not at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from cloudctl.core.config import Settings, get_settings

__all__ = ["PROCESS_KINDS", "dispose_engines", "engine_options", "get_engine", "make_engine", "process_kind",
           "session_factory", "session_scope", "set_process_kind"]

# What a process is, for the database server's list of sessions (application_name "cloudctl-api", …) and for the
# settings that differ by kind (the API's statement timeout).
PROCESS_KINDS = ("cli", "api", "worker", "exporter")
_process_kind = "cli"


def set_process_kind(kind: str) -> None:
    """Name this process's kind before its first engine is made (``cloudctl serve`` says "api", …)."""
    global _process_kind
    if kind not in PROCESS_KINDS:
        raise ValueError(f"process kind {kind!r} is not one of {', '.join(PROCESS_KINDS)}")
    _process_kind = kind


def process_kind() -> str:
    return _process_kind


def engine_options(url: str, settings: Settings | None = None, kind: str | None = None) -> dict[str, Any]:
    """create_engine's keyword arguments for a server database (PostgreSQL), from the settings and process kind."""
    settings = settings or get_settings()
    kind = kind or _process_kind
    connect_args: dict[str, Any] = {"application_name": f"cloudctl-{kind}",
                                    "connect_timeout": settings.db_connect_timeout_seconds}
    if kind == "api" and settings.api_statement_timeout_seconds:
        connect_args["options"] = f"-c statement_timeout={int(settings.api_statement_timeout_seconds * 1000)}"
    return {
        "pool_pre_ping": True,  # a connection the server dropped (a restart) is replaced, not handed out
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": settings.db_pool_timeout_seconds,
        "pool_recycle": settings.db_pool_recycle_seconds,
        "connect_args": connect_args,
    }


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling breaks SAVEPOINT; let SQLAlchemy issue BEGIN itself.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    # IMMEDIATE takes the write lock up front. A deferred transaction that reads and then
    # writes fails at once with "database is locked" if another connection (the job runner,
    # another request) committed in between; busy_timeout cannot help it. Taking the lock
    # first turns that into a short wait. SQLite has one writer at a time anyway.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, *, echo: bool = False, settings: Settings | None = None, kind: str | None = None) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # The API serves sync handlers from a thread pool: connections move between threads.
        engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, echo=echo, **engine_options(url, settings, kind))


_engines: dict[str, Engine] = {}


def get_engine(settings: Settings | None = None, *, kind: str | None = None) -> Engine:
    """This process's engine (one per URL); with ``kind``, one of its own for that kind of work (the API's
    embedded job runner works as a worker: no API statement timeout, its own pool)."""
    settings = settings or get_settings()
    url = settings.resolved_database_url
    # (On SQLite the kinds differ in nothing: one engine.)
    own = kind is not None and kind != _process_kind and make_url(url).get_backend_name() != "sqlite"
    key = f"{kind}:{url}" if own else url
    engine = _engines.get(key)
    if engine is None:
        engine = _engines[key] = make_engine(url, echo=settings.database_echo, settings=settings, kind=kind)
    return engine


def dispose_engines() -> None:
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()


def session_factory(engine: Engine | None = None) -> sessionmaker[Session]:
    return sessionmaker(bind=engine or get_engine(), expire_on_commit=False)


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    session = session_factory(engine)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
