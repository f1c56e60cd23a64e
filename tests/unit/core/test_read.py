"""The read kit (who sees what, stated once) and the one meaning of a unit filter, on SQLite and PostgreSQL."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloudctl.core import read
from cloudctl.core.auth import Principal, Role
from cloudctl.core.config import Settings, reset_settings
from cloudctl.core.errors import InvalidInput, NotFound
from cloudctl.core.models import utcnow
from cloudctl.core.schemas import Page
from cloudctl.org import service as org
from cloudctl.org.models import Unit, UnitKind
from cloudctl.org.schemas import UnitPublic
from tests.factories import ADMIN, build_mini_city, make_server, make_system, make_user

COUNTY, TOWN, VILLAGE, DEPARTMENT = "990102", "990102001", "990102001001", "990100-D01"
UNITS = (COUNTY, TOWN, VILLAGE, DEPARTMENT)

# Every list that answers a page: (module, function). A new one that is not here fails test_the_list_is_complete.
PAGED = (
    ("cloudctl.org.service", "list_units"),
    ("cloudctl.org.service", "list_systems"),
    ("cloudctl.core.jobs", "list_jobs"),
    ("cloudctl.core.audit", "list_audit"),
    ("cloudctl.compute.service", "list_quotas"),
    ("cloudctl.billing.service", "list_tariffs"),
    ("cloudctl.compute.provisioning", "list_requests"),
    ("cloudctl.compute.provisioning", "list_servers"),
    ("cloudctl.reclaim.service", "list_recommendations"),
    ("cloudctl.extranet.service.access", "list_links"),
    ("cloudctl.extranet.service.ipam", "list_prefixes"),
    ("cloudctl.extranet.service.ipam", "list_applications"),
    ("cloudctl.extranet.service.collection", "list_devices"),
    ("cloudctl.extranet.service.compliance", "list_violations"),
    ("cloudctl.security.service.assets", "list_assets"),
    ("cloudctl.security.service.findings", "list_findings"),
    ("cloudctl.security.service.findings", "list_tickets"),
    ("cloudctl.security.service.alerts", "list_alerts"),
)
SERVICE_MODULES = sorted({module for module, _ in PAGED} | {
    "cloudctl.security.service.duty", "cloudctl.security.service.drills", "cloudctl.billing.service"})


def _lister(name: tuple[str, str]) -> Callable[..., tuple[list[Any], int]]:
    fn: Callable[..., tuple[list[Any], int]] = getattr(importlib.import_module(name[0]), name[1])
    return fn


def test_the_list_is_complete() -> None:
    found = {(module, fn_name) for module in SERVICE_MODULES
             for fn_name, fn in inspect.getmembers(importlib.import_module(module), inspect.isfunction)
             if fn.__module__ == module and "limit" in inspect.signature(fn).parameters
             and "offset" in inspect.signature(fn).parameters}
    assert found == set(PAGED)


@pytest.mark.parametrize("name", PAGED, ids=[f"{m.rsplit('.', 1)[-1]}.{f}" for m, f in PAGED])
def test_every_list_keeps_to_the_configured_page_maximum(session: Session, settings: Settings,
                                                         name: tuple[str, str]) -> None:
    build_mini_city(session)
    reset_settings(settings.model_copy(update={"api_page_limit_max": 3}))
    lister = _lister(name)
    rows, total = lister(session, ADMIN, limit=3, offset=0)
    assert len(rows) <= 3
    assert total >= len(rows)
    for limit, offset, field in ((4, 0, "limit"), (0, 0, "limit"), (3, -1, "offset")):
        with pytest.raises(InvalidInput) as refused:
            lister(session, ADMIN, limit=limit, offset=offset)
        assert refused.value.field == field
        assert "between 1 and 3" in refused.value.detail or field == "offset"


def test_page_counts_everything_and_returns_one_page(session: Session) -> None:
    build_mini_city(session)
    every_code = sorted(session.scalars(select(Unit.code)))
    rows, total = read.page(session, select(Unit), limit=3, offset=2, order_by=(Unit.code,))
    assert total == len(every_code) == 7
    assert [u.code for u in rows] == every_code[2:5]
    assert read.page(session, select(Unit), limit=3, offset=7, order_by=(Unit.code,)) == ([], 7)


def test_every_walks_a_list_page_by_page(session: Session) -> None:
    build_mini_city(session)
    calls: list[tuple[int, int]] = []

    def lister(*, limit: int, offset: int) -> tuple[list[Unit], int]:
        calls.append((limit, offset))
        return org.list_units(session, ADMIN, limit=limit, offset=offset)

    codes = [u.code for u in read.every(lister, size=3)]
    assert codes == sorted(session.scalars(select(Unit.code)))
    assert calls == [(3, 0), (3, 3), (3, 6)]
    # Through partial, as callers use it, with the configured page size.
    assert [u.code for u in read.every(partial(org.list_units, session, ADMIN))] == codes
    # And of a query, through page.
    assert [u.code for u in read.every(partial(read.page, session, select(Unit), order_by=(Unit.code,)), size=2)] \
        == codes


def test_within_keeps_a_scoped_principal_in_its_subtree(session: Session) -> None:
    city = build_mini_city(session)
    query = select(Unit.code).order_by(Unit.code)
    assert session.scalars(read.within(query, city.principals["dept"], unit=Unit.id)).all() == [
        "990100-D01", "990100-M001"]
    assert len(session.scalars(read.within(query, city.principals["auditor"], unit=Unit.id)).all()) == 7
    unbound = Principal(username="lost", role=Role.DEPT)
    assert session.scalars(read.within(query, unbound, unit=Unit.id)).all() == []
    assert read.visible(city.principals["ops"], Unit.id) is None


def test_one_answers_not_found_outside_the_scope(session: Session) -> None:
    city = build_mini_city(session)
    query = select(Unit).where(Unit.code == "990100-D02")
    assert read.one(session, query, missing="no such unit").code == "990100-D02"
    with pytest.raises(NotFound) as hidden:
        read.one(session, read.within(query, city.principals["dept"], unit=Unit.id), missing="no unit 990100-D02",
                 field="code")
    assert (hidden.value.field, hidden.value.detail) == ("code", "no unit 990100-D02")


# ---------------------------------------------------------------- the unit filter: the unit and all below it


@pytest.fixture
def county(session: Session) -> dict[str, Principal]:
    """The mini city with a block of the extranet plan, a cloud quota and a business system in the county, its
    town, its village and 市公安局; a department user bound to the county."""
    from cloudctl.compute import service as compute
    from cloudctl.compute.schemas import QuotaSet
    from cloudctl.extranet.models import Zone
    from cloudctl.extranet.schemas import AggregateCreate, PrefixCreate
    from cloudctl.extranet.service import ipam

    build_mini_city(session, with_cloud=True)
    ipam.create_aggregate(session, ADMIN, AggregateCreate(prefix="10.80.0.0/16"))
    for n, code in enumerate(UNITS, 1):
        ipam.create_prefix(session, ADMIN, PrefixCreate(prefix=f"10.80.{n}.0/24", zone=Zone.PUBLIC, unit_code=code))
        compute.set_quota(session, ADMIN, code, "test-cloud", QuotaSet(vcpus=16, ram_gib=32, instances=4))
        make_system(session, code, f"{code} 业务系统")
    user = make_user(session, "dept-county", Role.DEPT, COUNTY)
    return {"dept": org.principal_for_user(user)}


def _system(session: Session, code: str) -> int:
    from cloudctl.org.models import BusinessSystem

    found = session.scalar(select(BusinessSystem.id).join(BusinessSystem.unit).where(Unit.code == code))
    assert found is not None
    return found


def _unit_id(session: Session, code: str) -> int:
    return org.get_unit(session, ADMIN, code).id


def _links(session: Session, code: str) -> None:
    from cloudctl.extranet.schemas import LinkCreate
    from cloudctl.extranet.service import access

    access.create_link(session, ADMIN, LinkCreate(unit_code=code, carrier="中国电信", line_type="MSTP",
                                                  bandwidth_mbps=100))


def _applications(session: Session, code: str) -> None:
    from cloudctl.extranet.schemas import ApplicationCreate
    from cloudctl.extranet.service import ipam

    ipam.submit_application(session, ADMIN, ApplicationCreate.model_validate(
        {"zone": "public", "count": 1, "purpose": "业务终端接入", "unit_code": code,
         "commitment": {"signer": "张伟", "accepted": True}}))


def _devices(session: Session, code: str) -> None:
    from cloudctl.extranet.models import NetworkDevice, Zone

    session.add(NetworkDevice(name=f"sw-{code}", host="127.0.0.1", device_type="huawei_vrp", role="access",
                              unit_id=_unit_id(session, code), zone=Zone.PUBLIC))
    session.flush()


def _violations(session: Session, code: str) -> None:
    from cloudctl.extranet.models import Violation, ViolationStatus

    now = utcnow()
    session.add(Violation(rule=10, subject=code, unit_id=_unit_id(session, code), status=ViolationStatus.OPEN,
                          evidence={}, first_seen=now, last_seen=now))
    session.flush()


def _scanned(session: Session, code: str) -> None:
    from cloudctl.security.scanners.base import ScanFinding, ScanReport
    from cloudctl.security.service import findings

    host = f"10.80.{UNITS.index(code) + 1}.10"
    found = ScanFinding(scanner="nessus", plugin_id="97833", title="MS17-010", severity="critical", ip=host,
                        port=445, protocol="tcp", service="cifs")
    findings.store_report(session, ADMIN, ScanReport(scanner="nessus", started_at=None, finished_at=None,
                                                     hosts=(host,), file_sha256=f"{UNITS.index(code):064d}",
                                                     findings=(found,)), scope=f"s-{code}", source="test")


def _requests(session: Session, code: str) -> None:
    from cloudctl.compute import provisioning
    from cloudctl.compute.schemas import RequestCreate

    provisioning.submit_request(session, ADMIN, RequestCreate.model_validate(
        {"business_system": _system(session, code), "cloud": "test-cloud", "justification": "业务扩容",
         "items": [{"flavor": "c2m4"}]}))


def _servers(session: Session, code: str) -> None:
    make_server(session, code, _system(session, code), "c2m4")


def _drill(session: Session, code: str) -> None:
    from cloudctl.security.service import drills

    if code == UNITS[0]:  # one drill over all four units
        now = utcnow()
        drills.create_drill(session, ADMIN, drills.DrillCreate(name="护网", organiser="市委网信办", starts_at=now,
                                                               ends_at=now + timedelta(days=10), units=list(UNITS)))


def _nothing(session: Session, code: str) -> None:
    return None


def _codes(rows: Iterable[Any], code: Callable[[Any], str | None]) -> set[str]:
    return {c for c in map(code, rows) if c is not None}


def _paged(fn: Callable[..., tuple[list[Any], int]], code: Callable[[Any], str | None]
           ) -> Callable[[Session, Principal, str | None], set[str]]:
    return lambda session, principal, unit: _codes(fn(session, principal, unit=unit, limit=1000)[0], code)


def _drill_items(session: Session, principal: Principal, unit: str | None) -> set[str]:
    from cloudctl.security.models import Drill
    from cloudctl.security.service import drills

    drill = session.scalars(select(Drill)).one()
    return _codes(drills.list_items(session, principal, drill.id, unit=unit), lambda i: i.unit_code)


def _showback(session: Session, principal: Principal, unit: str | None) -> set[str]:
    from cloudctl.billing import service as billing

    return _codes(billing.statement(session, principal, f"{utcnow():%Y-%m}", unit=unit).lines,
                  lambda line: line.unit_code)


def _scorecard(session: Session, principal: Principal, unit: str | None) -> set[str]:
    from cloudctl.extranet.service import compliance

    return _codes(compliance.scorecard(session, principal, unit=unit), lambda row: row.unit_code)


def _users(session: Session, principal: Principal, unit: str | None) -> set[str]:
    return _codes(org.list_users(session, principal, role=Role.DEPT, unit=unit), lambda u: u.unit.code)


def _filters() -> dict[str, tuple[Callable[[Session, str], None], Callable[[Session, Principal, str | None],
                                                                              set[str]]]]:
    from cloudctl.compute import provisioning
    from cloudctl.compute import service as compute
    from cloudctl.extranet.service import access, collection, compliance, ipam
    from cloudctl.security.service import assets, findings

    return {
        "systems": (_nothing, _paged(org.list_systems, lambda s: s.unit_code)),
        "quotas": (_nothing, _paged(compute.list_quotas, lambda q: q.unit_code)),
        "requests": (_requests, _paged(provisioning.list_requests, lambda r: r.unit_code)),
        "servers": (_servers, _paged(provisioning.list_servers, lambda s: s.unit.code if s.unit else None)),
        "showback": (_servers, _showback),
        "links": (_links, _paged(access.list_links, lambda link: link.unit_code)),
        "prefixes": (_nothing, _paged(ipam.list_prefixes, lambda p: p.unit_code)),
        "applications": (_applications, _paged(ipam.list_applications, lambda a: a.unit_code)),
        "devices": (_devices, _paged(collection.list_devices, lambda d: d.unit.code)),
        "violations": (_violations, _paged(compliance.list_violations, lambda v: v.unit.code if v.unit else None)),
        "scorecard": (_nothing, _scorecard),
        "assets": (_scanned, _paged(assets.list_assets, lambda a: a.unit.code if a.unit else None)),
        "findings": (_scanned, _paged(findings.list_findings, lambda f: f.asset.unit.code if f.asset.unit else None)),
        "drill items": (_drill, _drill_items),
        "users": (_users_of, _users),
    }


def _users_of(session: Session, code: str) -> None:
    make_user(session, f"dept-{code.lower()}", Role.DEPT, code)


FILTERS = ("systems", "quotas", "requests", "servers", "showback", "links", "prefixes", "applications", "devices",
           "violations", "scorecard", "assets", "findings", "drill items", "users")


@pytest.mark.parametrize("what", FILTERS)
def test_a_unit_filter_means_the_unit_and_everything_under_it(session: Session, county: dict[str, Principal],
                                                              what: str) -> None:
    make, rows = _filters()[what]
    for code in UNITS:
        make(session, code)
    session.flush()
    assert rows(session, ADMIN, COUNTY) == {COUNTY, TOWN, VILLAGE}
    assert rows(session, ADMIN, TOWN) == {TOWN, VILLAGE}
    assert rows(session, ADMIN, VILLAGE) == {VILLAGE}
    assert rows(session, ADMIN, None) >= set(UNITS)
    with pytest.raises(NotFound) as unknown:
        rows(session, ADMIN, "NO-SUCH-UNIT")
    assert unknown.value.field == "unit"
    if what == "users":
        return  # users are the administrators' to list
    dept = county["dept"]
    # A county's own user sees its towns and villages too, and nothing of the city's departments.
    assert rows(session, dept, None) == {COUNTY, TOWN, VILLAGE}
    assert rows(session, dept, TOWN) == {TOWN, VILLAGE}
    with pytest.raises(NotFound) as outside:
        rows(session, dept, DEPARTMENT)
    assert outside.value.field == "unit"



def test_a_page_of_rows_sees_what_the_session_has_not_yet_written(session: Session) -> None:
    # Rows of columns and counts are read as plain SQL: they must still see pending changes, as the ORM's own
    # queries would (autoflush).
    build_mini_city(session)
    city = session.scalars(select(Unit).where(Unit.code == "990100")).one()
    session.add(Unit(code="990100-D99", name="市新设局", kind=UnitKind.DEPARTMENT, parent=city))
    codes = [row.code for row in read.every(partial(org.list_units, session, ADMIN), size=3)]
    assert "990100-D99" in codes
    _rows, total = org.list_units(session, ADMIN, limit=3, offset=0)
    assert total == len(codes) == 8


def test_a_page_validates_rows_of_columns_as_their_records_would(session: Session) -> None:
    build_mini_city(session)
    rows, total = org.list_units(session, ADMIN, limit=50, offset=0)
    page = Page[UnitPublic].of(rows, total=total, limit=50, offset=0)
    records = session.scalars(select(Unit).order_by(Unit.code)).all()
    assert page.items == [UnitPublic.model_validate(unit) for unit in records]
    assert {None, "990100", COUNTY, TOWN} <= {item.parent for item in page.items}
    # Records (ORM objects) are validated by their attributes.
    assert Page[UnitPublic].of(records, total=total, limit=50, offset=0) == page
    assert Page[UnitPublic].of([], total=0, limit=50, offset=0).items == []
