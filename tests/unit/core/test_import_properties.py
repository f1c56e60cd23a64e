"""Property-based: whatever values a file's rows hold, the unit, utilisation and IP-plan imports end in a result or
InvalidInput (the domain's own refusal), on SQLite and on PostgreSQL alike, and a refusal leaves nothing behind."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloudctl.core.errors import Conflict, InvalidInput, NotFound
from cloudctl.core.tabular import Row, rows_of_records
from cloudctl.extranet.models import Prefix
from cloudctl.extranet.service import ipam
from cloudctl.org import service as org
from cloudctl.org.cli import UNIT_IMPORT_COLUMNS
from cloudctl.org.models import Unit, UnitKind
from cloudctl.org.schemas import UnitCreate
from cloudctl.reclaim import service as reclaim
from cloudctl.reclaim.models import UtilisationDay
from tests.factories import ADMIN, make_cloud, make_server, make_unit

_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
_NUMBER = st.one_of(st.integers(min_value=-(2**70), max_value=2**70).map(str),
                    st.floats(allow_nan=True, allow_infinity=True).map(repr))
# Plausible values too, so that some examples get past validation and reach the database.
_VALUE = st.one_of(st.sampled_from(["0", "0.1", "0.5", "1", "288", "100"]), _TEXT, _NUMBER)


def _count(session: Session, table: Any) -> int:
    return session.scalar(select(func.count()).select_from(table)) or 0


@pytest.fixture
def server(session: Session) -> str:
    make_unit(session, "990100", "临江市", UnitKind.CITY)
    make_unit(session, "990100-D01", "市公安局", UnitKind.DEPARTMENT, "990100")
    make_cloud(session)
    return make_server(session, "990100-D01", None, name="ga-web-01").name


@given(rows=st.lists(st.fixed_dictionaries({
    "server": st.one_of(st.just("ga-web-01"), _TEXT), "day": st.one_of(st.just("2026-01-05"), _TEXT),
    "metric": st.sampled_from(["cpu", "mem", "net_rx", "net_tx", "disk", ""]), "p95": _VALUE, "p99": _VALUE,
    "max": _VALUE, "mean": _VALUE, "samples": _VALUE}), min_size=1, max_size=4))
def test_any_utilisation_rows_import_or_are_refused(session: Session, server: str, rows: list[dict[str, str]]) -> None:
    before = _count(session, UtilisationDay)
    with session.begin_nested() as savepoint:
        try:
            result = reclaim.import_summaries(session, ADMIN, [Row(r, n) for n, r in enumerate(rows, 2)])
        except InvalidInput as exc:
            field = exc.field
        else:
            session.flush()
            assert result.rows == len(rows)
            field = None
        if field is not None:
            assert field.startswith("rows.")
            assert _count(session, UtilisationDay) == before
        savepoint.rollback()


@given(records=st.lists(st.dictionaries(st.sampled_from(["code", "name", "kind", "parent", "联系人", "电话", "邮箱"]),
                                        st.one_of(_VALUE, st.sampled_from(["990100", "county", "市直部门"])),
                                        max_size=6), min_size=1, max_size=4))
def test_any_unit_records_import_or_are_refused(session: Session, server: str, records: list[dict[str, str]]) -> None:
    before = _count(session, Unit)
    with session.begin_nested() as savepoint:
        try:
            rows = rows_of_records(records, UNIT_IMPORT_COLUMNS)
            units = [UnitCreate.model_validate(dict(row)) for row in rows]
            org.import_units(session, ADMIN, units, numbers=[row.number for row in rows])
        except (InvalidInput, NotFound, Conflict, ValidationError):
            assert _count(session, Unit) == before
        else:
            session.flush()
        savepoint.rollback()


@given(rows=st.lists(st.fixed_dictionaries({
    "kind": st.sampled_from(["aggregate", "prefix", "address", "", "x"]),
    "prefix": st.one_of(st.sampled_from(["10.64.0.0/12", "10.64.1.0/24", "0.0.0.0/0"]), _TEXT),
    "zone": st.one_of(st.sampled_from(["public", "enterprise"]), _TEXT),
    "vlan": _VALUE, "description": _TEXT}), min_size=1, max_size=4))
def test_any_plan_rows_import_or_are_refused(session: Session, server: str, rows: list[dict[str, str]]) -> None:
    before = _count(session, Prefix)
    with session.begin_nested() as savepoint:
        try:
            ipam.import_plan(session, ADMIN, [Row(r, n) for n, r in enumerate(rows, 2)])
        except (InvalidInput, NotFound, Conflict) as exc:
            refused: str | None = exc.field or "?"
        else:
            session.flush()
            refused = None
        if refused is not None:
            assert refused.startswith("rows.")
            assert _count(session, Prefix) == before
        savepoint.rollback()
