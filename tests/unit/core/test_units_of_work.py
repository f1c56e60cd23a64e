"""Units of work that only read: deferred on SQLite (readers beside a writer), and refusing every write."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select, text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from cloudctl.core.db import SQLITE_BUSY_TIMEOUT_MS, ReadOnlyUnitOfWork, is_read_only, session_factory, session_scope
from cloudctl.org.models import Unit, UnitKind
from tests.factories import build_mini_city


@pytest.fixture
def city_engine(fresh_engine: Engine) -> Engine:
    with Session(fresh_engine) as session:
        build_mini_city(session)
        session.commit()
    return fresh_engine


def test_a_read_only_unit_of_work_refuses_to_write(city_engine: Engine) -> None:
    with session_scope(city_engine, write=False) as session:
        assert is_read_only(session)
        unit = session.scalars(select(Unit).where(Unit.code == "990100-D02")).one()
        unit.contact_name = "王芳"
        with pytest.raises(ReadOnlyUnitOfWork, match="read-only unit of work tried to write \\(Unit\\)"):
            session.flush()
        session.rollback()
        with pytest.raises(ReadOnlyUnitOfWork, match="INSERT, UPDATE or DELETE"):
            session.execute(update(Unit).where(Unit.code == "990100-D02").values(contact_name="王芳"))
        session.rollback()
        session.add(Unit(code="990100-D09", name="市测试局", kind=UnitKind.DEPARTMENT, path="/x/"))
        with pytest.raises(ReadOnlyUnitOfWork):
            session.flush()
        session.rollback()
    with Session(city_engine) as check:
        assert check.scalar(select(Unit.contact_name).where(Unit.code == "990100-D02")) is None
        assert check.scalar(select(Unit.id).where(Unit.code == "990100-D09")) is None


def test_a_writing_unit_of_work_writes(city_engine: Engine) -> None:
    with session_scope(city_engine) as session:
        assert not is_read_only(session)
        session.execute(update(Unit).where(Unit.code == "990100-D02").values(contact_name="王芳"))
    with session_scope(city_engine, write=False) as session:
        assert session.scalar(select(Unit.contact_name).where(Unit.code == "990100-D02")) == "王芳"


def test_a_reader_runs_while_another_connection_writes(city_engine: Engine) -> None:
    # The writer holds its transaction (on SQLite: the one write lock) open while the reader reads; the reader
    # neither waits for it nor keeps the writer from committing.
    reader = session_factory(city_engine, write=False)()
    with city_engine.connect() as writer:
        writer.begin()
        writer.execute(update(Unit).where(Unit.code == "990100-D02").values(contact_name="王芳"))
        assert reader.scalar(select(Unit.contact_name).where(Unit.code == "990100-D02")) is None
        writer.commit()
    reader.rollback()
    assert reader.scalar(select(Unit.contact_name).where(Unit.code == "990100-D02")) == "王芳"
    reader.close()


def test_a_writer_waits_for_no_reader(city_engine: Engine) -> None:
    # A read-only unit of work left open (on SQLite a deferred transaction that has read) never blocks a writer.
    with session_scope(city_engine, write=False) as reader:
        assert reader.scalar(text("SELECT count(*) FROM units")) == 7
        with session_scope(city_engine) as writer:
            writer.execute(update(Unit).where(Unit.code == "990100-D02").values(contact_name="王芳"))


def test_a_writer_that_cannot_have_the_lock_gets_sqlalchemys_operational_error(city_engine: Engine) -> None:
    # On SQLite a writing unit of work begins by taking the one write lock; held elsewhere past busy_timeout, its
    # BEGIN fails as SQLAlchemy's OperationalError (what the API answers 503 to, what token stamps skip on).
    if city_engine.dialect.name != "sqlite":
        pytest.skip("the write lock taken at BEGIN is SQLite's")
    with city_engine.connect() as holder:
        holder.begin()
        holder.execute(update(Unit).where(Unit.code == "990100-D02").values(contact_name="王芳"))
        with city_engine.connect() as waiting:
            driver = waiting.connection.driver_connection
            driver.execute("PRAGMA busy_timeout=20")  # type: ignore[union-attr]
            with pytest.raises(OperationalError, match="database is locked"):
                waiting.begin()
            driver.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")  # type: ignore[union-attr]
        holder.rollback()
    with session_scope(city_engine) as writer:  # the lock is free again: nothing was left half-begun
        writer.execute(update(Unit).where(Unit.code == "990100-D02").values(contact_name="李娜"))
