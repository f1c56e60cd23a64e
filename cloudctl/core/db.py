"""Database engine and sessions.

SQLite is the embedded default (WAL, foreign keys on, a busy timeout so the job
runner and the API can share the file); PostgreSQL is the production database.
Services never commit: the caller (a CLI command, an API request, a job) owns the
transaction, so a change and its audit row land together or not at all.

A unit of work either writes or only reads. On SQLite a writing one begins with
``BEGIN IMMEDIATE`` (it takes the one write lock up front, so a read-then-write
never fails half way), a reading one with a deferred ``BEGIN``: in WAL mode readers
run side by side and never wait for the writer. A reading unit of work refuses any
write (:class:`ReadOnlyUnitOfWork`) on both databases, so a route that writes
cannot slip through as a read.

A read may run under a time budget (:func:`read_budget`, SQLite): once it is spent, SQLite interrupts the
statement running, so the caller can finish the read somewhere it holds up nobody (the API's reads on its
event loop, api.deps).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker

from cloudctl.core.config import Settings, get_settings

__all__ = ["PROCESS_KINDS", "SQLITE_BUSY_TIMEOUT_MS", "ReadBudget", "ReadOnlyUnitOfWork", "dispose_engines",
           "engine_options", "get_engine", "is_read_only", "make_engine", "process_kind", "read_budget",
           "read_connection", "session_factory", "session_scope", "set_process_kind"]

SQLITE_BUSY_TIMEOUT_MS = 15000

# Execution option naming how a SQLite transaction begins: "IMMEDIATE" (the default) or "DEFERRED".
_BEGIN = "cloudctl_sqlite_begin"
_READ_ONLY = "cloudctl_read_only"  # Session.info key


class ReadOnlyUnitOfWork(RuntimeError):
    """A unit of work opened for reading tried to write: the caller must open a writing one."""


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


class ReadBudget:
    """The time a read may still take; ``spent`` once SQLite was interrupted for going over it."""

    __slots__ = ("deadline", "spent")

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.spent = False


_budget: ContextVar[ReadBudget | None] = ContextVar("cloudctl_read_budget", default=None)

# SQLite calls the progress handler every this many virtual-machine steps (well under a millisecond of work).
_PROGRESS_STEPS = 20_000


def _over_budget() -> int:
    # Called by SQLite, in the thread and context running the statement: only a read under a budget is affected.
    budget = _budget.get()
    if budget is None or time.monotonic() < budget.deadline:
        return 0
    budget.spent = True
    return 1  # SQLite stops the statement: sqlite3.OperationalError "interrupted"


@contextmanager
def read_budget(seconds: float) -> Iterator[ReadBudget]:
    """SQLite statements run within this block are interrupted once ``seconds`` have passed (``spent`` is then
    set). A read only: an interrupted write inside a transaction would roll the transaction back."""
    budget = ReadBudget(seconds)
    token = _budget.set(budget)
    try:
        yield budget
    finally:
        _budget.reset(token)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling breaks SAVEPOINT; let SQLAlchemy issue BEGIN itself.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()
    dbapi_connection.set_progress_handler(_over_budget, _PROGRESS_STEPS)


def _sqlite_begin(connection: Any) -> None:
    # IMMEDIATE takes the write lock up front. A deferred transaction that reads and then
    # writes fails at once with "database is locked" if another connection (the job runner,
    # another request) committed in between; busy_timeout cannot help it. Taking the lock
    # first turns that into a short wait. SQLite has one writer at a time anyway.
    # A reading unit of work asks for DEFERRED: it takes no write lock, and WAL lets it read
    # while a writer works; it can never be the read-then-write that fails, as it cannot write.
    # Sent straight to the driver: through SQLAlchemy's statement path, a BEGIN cost a fifth of a short read's
    # unit of work (cursor, events, result), for a statement that returns nothing. A failure (the write lock not
    # had within busy_timeout) is raised as SQLAlchemy's own error, as that path would have raised it.
    begin = "BEGIN" if connection.get_execution_options().get(_BEGIN) == "DEFERRED" else "BEGIN IMMEDIATE"
    dbapi = connection.dialect.loaded_dbapi
    try:
        connection.connection.driver_connection.execute(begin)
    except dbapi.Error as exc:
        raise DBAPIError.instance(begin, (), exc, dbapi.Error, dialect=connection.dialect) from exc


def make_engine(url: str, *, echo: bool = False, settings: Settings | None = None, kind: str | None = None) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # The API serves sync handlers from a thread pool: connections move between threads. Enough connections
        # stay pooled for every unit of work the API lets open at once (api.deps.SESSION_SLOTS) and then some
        # (the job runner, the exporter, token stamps): one opened afresh costs its PRAGMAs every time.
        engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False}, pool_size=16,
                               max_overflow=16)
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
    _readers.clear()
    _factories.clear()


_readers: dict[Engine, Engine] = {}


def _reading(engine: Engine) -> Engine:
    """``engine`` (same pool) with deferred SQLite transactions."""
    reader = _readers.get(engine)
    if reader is None:
        reader = _readers[engine] = engine.execution_options(**{_BEGIN: "DEFERRED"})
    return reader


@contextmanager
def read_connection(engine: Engine | None = None) -> Iterator[Connection]:
    """A connection for a read without a session (deferred on SQLite), its transaction rolled back at the end."""
    with _reading(engine or get_engine()).connect() as connection:
        yield connection


def _refuse_flush(session: Session, _context: Any, _instances: Any) -> None:
    if session.info.get(_READ_ONLY) and (session.new or session.dirty or session.deleted):
        changed = sorted({type(o).__name__ for o in (*session.new, *session.dirty, *session.deleted)})
        raise ReadOnlyUnitOfWork(f"a read-only unit of work tried to write ({', '.join(changed)})")


def _refuse_statement(state: ORMExecuteState) -> None:
    if state.session.info.get(_READ_ONLY) and (state.is_insert or state.is_update or state.is_delete):
        raise ReadOnlyUnitOfWork("a read-only unit of work tried to run an INSERT, UPDATE or DELETE")


def is_read_only(session: Session) -> bool:
    return bool(session.info.get(_READ_ONLY))


_factories: dict[tuple[Engine, bool], sessionmaker[Session]] = {}


def session_factory(engine: Engine | None = None, *, write: bool = True) -> sessionmaker[Session]:
    """Sessions for units of work that write (the default), or that only read (``write=False``): deferred
    transactions on SQLite, and any write refused with :class:`ReadOnlyUnitOfWork`. One factory per engine and
    kind, kept: a sessionmaker makes a Session class of its own, whose event dispatch is built on first use."""
    engine = engine or get_engine()
    factory = _factories.get((engine, write))
    if factory is None:
        if write:
            factory = sessionmaker(bind=engine, expire_on_commit=False)
        else:
            factory = sessionmaker(bind=_reading(engine), expire_on_commit=False, info={_READ_ONLY: True})
        _factories[(engine, write)] = factory
    return factory


# On every session (cheap: one dict lookup), so a read-only one refuses however it was made.
event.listen(Session, "before_flush", _refuse_flush)
event.listen(Session, "do_orm_execute", _refuse_statement)


@contextmanager
def session_scope(engine: Engine | None = None, *, write: bool = True) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    session = session_factory(engine, write=write)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
