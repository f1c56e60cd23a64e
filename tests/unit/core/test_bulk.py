"""insert_rows stores what an insert() would store, on SQLite (executemany) and PostgreSQL (COPY)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from cloudctl.core.bulk import insert_rows, insert_rows_with_ids
from cloudctl.extranet.models import NetworkDevice, Violation, ViolationStatus, Zone
from cloudctl.org.models import Unit, UnitKind
from tests.factories import make_unit

COLUMNS = ("name", "host", "device_type", "role", "unit_id", "zone", "last_success_at", "last_error")
BEIJING = ZoneInfo("Asia/Shanghai")


def _devices(unit_id: int, prefix: str) -> list[tuple[object, ...]]:
    seen = datetime(2026, 11, 3, 9, 30, tzinfo=BEIJING)  # 01:30 UTC
    return [(f"{prefix}-sw{i}", f"10.70.0.{i}", "huawei_vrp", "access", unit_id, Zone.ENTERPRISE if i % 2 else
             Zone.PUBLIC, seen if i % 3 else None, "timed out" if i == 4 else None) for i in range(1, 6)]


def test_rows_are_stored_as_an_insert_stores_them_with_defaults_and_in_order(session: Session) -> None:
    unit = make_unit(session, "990100", "临江市", UnitKind.CITY)
    as_insert, as_rows = _devices(unit.id, "a"), _devices(unit.id, "b")
    session.execute(insert(NetworkDevice), [dict(zip(COLUMNS, row, strict=True)) for row in as_insert])
    assert insert_rows(session, NetworkDevice, COLUMNS, as_rows) == 5

    def stored(prefix: str) -> list[tuple[object, ...]]:
        devices = session.scalars(select(NetworkDevice).where(NetworkDevice.name.startswith(f"{prefix}-"))
                                  .order_by(NetworkDevice.id)).all()
        return [(d.name[2:], d.host, d.device_type, d.role, d.unit_id, d.zone, d.last_success_at, d.last_error)
                for d in devices]

    session.expire_all()
    assert stored("b") == stored("a")
    first = session.scalars(select(NetworkDevice).where(NetworkDevice.name == "b-sw1")).one()
    # The time given in Beijing comes back as the same instant in UTC; the enum by its member.
    assert first.last_success_at == datetime(2026, 11, 3, 1, 30, tzinfo=UTC)
    assert first.zone is Zone.ENTERPRISE
    # Python-side defaults were filled in (the created and updated times), ids follow the order given.
    assert first.created_at is not None
    assert first.created_at.tzinfo is not None
    ids = session.scalars(select(NetworkDevice.id).where(NetworkDevice.name.startswith("b-"))
                          .order_by(NetworkDevice.name)).all()
    assert list(ids) == sorted(ids)


def test_pending_orm_changes_go_first_and_nothing_is_a_no_op(session: Session) -> None:
    # A unit added to the session but not flushed yet: its devices may name it.
    unit = Unit(code="990100", name="临江市", kind=UnitKind.CITY, path="/")
    session.add(unit)
    assert insert_rows(session, NetworkDevice, COLUMNS, []) == 0
    assert unit.id is not None
    assert insert_rows(session, NetworkDevice, COLUMNS, _devices(unit.id, "c")) == 5


def test_a_column_the_table_lacks_is_refused(session: Session) -> None:
    with pytest.raises(ValueError, match="no column colour"):
        insert_rows(session, NetworkDevice, ("name", "colour"), [("x", "red")])


def test_json_documents_and_dates_round_trip(session: Session) -> None:
    seen = datetime(2026, 11, 3, 1, 30, tzinfo=UTC)
    evidence = {"macs": ["02:00:00:00:00:01", "02:00:00:00:00:02"], "port": "GigabitEthernet0/0/7", "count": 2}
    insert_rows(session, Violation, ("rule", "subject", "status", "evidence", "first_seen", "last_seen", "deadline"),
                [(6, "d01-sw1:GigabitEthernet0/0/7", ViolationStatus.OPEN, evidence, seen, seen, date(2026, 11, 10))])
    stored = session.scalars(select(Violation)).one()
    assert (stored.evidence, stored.status, stored.deadline) == (evidence, ViolationStatus.OPEN, date(2026, 11, 10))


def test_rows_with_ids_get_the_ids_the_database_would_have_given(session: Session) -> None:
    unit = make_unit(session, "990100", "临江市", UnitKind.CITY)
    session.execute(insert(NetworkDevice), [dict(zip(COLUMNS, row, strict=True)) for row in _devices(unit.id, "a")])
    last = session.scalar(select(func.max(NetworkDevice.id)))
    assert last is not None
    ids = insert_rows_with_ids(session, NetworkDevice, COLUMNS, _devices(unit.id, "b"))
    assert ids == list(range(last + 1, last + 6))
    assert [session.scalars(select(NetworkDevice.name).where(NetworkDevice.id == id_)).one() for id_ in ids] == [
        f"b-sw{i}" for i in range(1, 6)]
    # The next row the database numbers itself comes after them: the sequence (PostgreSQL) moved on too.
    session.execute(insert(NetworkDevice), [dict(zip(COLUMNS, row, strict=True)) for row in _devices(unit.id, "c")])
    assert session.scalar(select(func.min(NetworkDevice.id)).where(NetworkDevice.name.startswith("c-"))) == ids[-1] + 1
    assert insert_rows_with_ids(session, NetworkDevice, COLUMNS, []) == []
