"""audit.batch: the changes of one act in bulk, audited as one row with their counts."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloudctl.core import audit
from cloudctl.core.audit import AuditEntry
from cloudctl.org.models import UnitKind
from tests.factories import ADMIN, make_system, make_unit


def _entries(session: Session) -> list[AuditEntry]:
    session.flush()
    return list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def test_a_batch_writes_one_row_with_what_it_did_and_how_many_changes(session: Session) -> None:
    with audit.batch(session, ADMIN, action="import", entity="city", entity_id="990100") as summary:
        make_unit(session, "990100", "临江市", UnitKind.CITY)
        make_unit(session, "990100-D01", "市公安局", UnitKind.DEPARTMENT, parent="990100")
        make_system(session, "990100-D01", "警务综合平台")
        summary["source"] = "units.csv"
    [entry] = _entries(session)
    assert (entry.action, entry.entity, entry.entity_id, entry.actor) == ("import", "city", "990100", ADMIN.actor)
    assert entry.after == {"source": "units.csv", "changes": {"business_system.create": 1, "unit.create": 2}}
    # After the batch, every change has its own row again.
    make_unit(session, "990100-D02", "市人力资源和社会保障局", UnitKind.DEPARTMENT, parent="990100")
    assert [(e.action, e.entity) for e in _entries(session)] == [("import", "city"), ("create", "unit")]


def test_a_batch_inside_a_batch_is_one_change_of_the_outer(session: Session) -> None:
    with audit.batch(session, ADMIN, action="seed", entity="city", entity_id="990100"):
        make_unit(session, "990100", "临江市", UnitKind.CITY)
        with audit.batch(session, ADMIN, action="seed-part", entity="city", entity_id="990100"):
            make_unit(session, "990100-D01", "市公安局", UnitKind.DEPARTMENT, parent="990100")
    [entry] = _entries(session)
    assert entry.after == {"changes": {"city.seed-part": 1, "unit.create": 1}}


def _seed_and_fail(session: Session) -> None:
    with audit.batch(session, ADMIN, action="seed", entity="city", entity_id="x"):
        make_unit(session, "990100", "临江市", UnitKind.CITY)
        raise RuntimeError("disk full")


def test_a_failed_batch_writes_nothing(session: Session) -> None:
    with pytest.raises(RuntimeError):
        _seed_and_fail(session)
    assert _entries(session) == []
    make_unit(session, "990100-D01", "市公安局", UnitKind.DEPARTMENT, parent="990100")
    assert [(e.action, e.entity) for e in _entries(session)] == [("create", "unit")]
