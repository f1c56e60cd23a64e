"""The seeded demo city in a real database: counts, tree paths, users, tokens, one audit row."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloudctl.core.audit import AuditEntry
from cloudctl.core.errors import Conflict
from cloudctl.demo.seed import issue_demo_tokens, seed_demo, write_tokens_file
from cloudctl.org import service
from cloudctl.org.models import Unit, UnitKind, User
from cloudctl.org.schemas import UnitCreate
from tests.factories import ADMIN


def test_seed_writes_the_city_and_scopes_its_departments(session: Session, tmp_path: Path) -> None:
    result = seed_demo(session, ADMIN, seed=2026)
    assert result.counts["units"] == 1757
    assert result.counts["business_systems"] == 70
    assert result.counts["units.village"] == 1503
    assert session.scalar(select(func.count(User.id)).where(User.role == "dept")) == 35
    # Paths were written for every unit: a village's path runs through its town and county.
    village = session.scalars(select(Unit).where(Unit.kind == UnitKind.VILLAGE).limit(1)).one()
    town = service.get_unit(session, ADMIN, village.parent_code or "")
    assert village.path == f"{town.path}{village.id}/"
    assert village.path.count("/") == 5

    tokens = issue_demo_tokens(session, ADMIN, ["ops", "dept-d01"])
    dept, _ = service.authenticate_token(session, tokens["dept-d01"])
    assert dept.unit_code == "990100-D01"
    units, total = service.list_units(session, dept)
    assert total == 1
    assert units[0].name == "市公安局"
    systems, _ = service.list_systems(session, dept)
    assert systems
    assert {s.unit_code for s in systems} == {"990100-D01"}

    path = write_tokens_file(tmp_path / "demo-tokens.json", tokens, base_url="http://127.0.0.1:8000")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text(encoding="utf-8"))["tokens"] == tokens

    seeded = session.scalars(select(AuditEntry).where(AuditEntry.action == "demo.seed")).one()
    assert seeded.after is not None
    assert seeded.after["units"] == 1757


def test_seeding_a_database_that_has_a_city_is_refused(session: Session) -> None:
    # Any city will do: the guard looks for one, whatever seeded it.
    service.create_unit(session, ADMIN, UnitCreate(code="990100", name="临江市", kind=UnitKind.CITY))
    units = session.scalar(select(func.count(Unit.id)))
    with pytest.raises(Conflict) as caught:
        seed_demo(session, ADMIN)
    assert caught.value.field == "database"
    assert session.scalar(select(func.count(Unit.id))) == units
