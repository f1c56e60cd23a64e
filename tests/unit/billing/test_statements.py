"""Tariffs and statements on a database (SQLite and PostgreSQL): a price change mid-month, a department's own
statement, and a closed month that no later price, rename or inventory change rewrites."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloudctl.billing import service
from cloudctl.billing.models import Tariff
from cloudctl.billing.schemas import TariffSet
from cloudctl.compute.models import Server
from cloudctl.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from cloudctl.core.models import beijing_today
from cloudctl.core.schemas import parse
from cloudctl.org.models import Unit
from tests.factories import ADMIN, MiniCity, build_mini_city, make_server

THIS_MONTH = beijing_today().replace(day=1)
LAST_MONTH = (THIS_MONTH - timedelta(days=1)).replace(day=1)
LAST = LAST_MONTH.strftime("%Y-%m")
MID = LAST_MONTH.replace(day=16)
DAYS = (THIS_MONTH - LAST_MONTH).days


@pytest.fixture
def city(session: Session) -> MiniCity:
    city = build_mini_city(session, with_cloud=True)
    long_ago = datetime(2025, 3, 1, tzinfo=UTC)
    for code, system in (("990100-D01", "own"), ("990100-D02", "other")):
        make_server(session, code, city.systems[system], "c4m8", name=f"{code.lower()}-app").launched_at = long_ago
    for resource, price in (("vcpu", "45"), ("ram_gib", "20"), ("disk_gib", "0.5")):
        service.set_tariff(session, ADMIN, TariffSet(cloud="test-cloud", resource=resource, price=Decimal(price),
                                                     effective_from=date(2025, 1, 1)))
    service.set_tariff(session, ADMIN, TariffSet(cloud="test-cloud", resource="vcpu", price=Decimal("42"),
                                                 effective_from=MID, note="续签合同"))
    session.flush()
    return city


def test_a_price_change_mid_month_applies_from_its_day(session: Session, city: MiniCity) -> None:
    statement = service.statement(session, ADMIN, LAST)
    assert statement.closed is None
    own = [line for line in statement.lines if line.unit_code == "990100-D01"]
    assert [(line.first_day, line.last_day, line.vcpu_price) for line in own] == [
        (LAST_MONTH, MID - timedelta(days=1), Decimal(45)), (MID, THIS_MONTH - timedelta(days=1), Decimal(42))]
    # c4m8: 4 vCPU, 8 GiB, 40 GiB of disk; each run of days pays its share of the month at its prices.
    before, after = 4 * 45 + 8 * 20 + 40 * Decimal("0.5"), 4 * 42 + 8 * 20 + 40 * Decimal("0.5")
    expected = (before * 15 / DAYS).quantize(Decimal("0.01")) + (after * (DAYS - 15) / DAYS).quantize(Decimal("0.01"))
    assert sum(line.cost for line in own) == expected
    [total] = [t for t in statement.totals() if t.unit_code == "990100-D01"]
    assert (total.servers, total.business_system, total.cost) == (1, "城市视频监控联网平台", expected)


def test_the_tariff_history_says_until_when_each_price_held(session: Session, city: MiniCity) -> None:
    rows, total = service.list_tariffs(session, ADMIN, cloud="test-cloud", resource="vcpu")
    assert total == 2
    assert [(r.effective_from, r.effective_to, r.price) for r in rows] == [
        (MID, None, Decimal(42)), (date(2025, 1, 1), MID - timedelta(days=1), Decimal(45))]
    in_force, _ = service.list_tariffs(session, city.principals["dept"], at=MID - timedelta(days=1))
    assert {(r.resource, r.price) for r in in_force} == {("vcpu", 45), ("ram_gib", 20), ("disk_gib", Decimal("0.5"))}
    # A price to the ten-thousandth of a yuan comes back exactly; a fifth decimal place is refused at the edge.
    exact = service.set_tariff(session, ADMIN, TariffSet(cloud="test-cloud", resource="volume_gib:ssd",
                                                         price=Decimal("0.0125"), effective_from=MID))
    session.expire_all()
    assert session.get(Tariff, exact.id).price == Decimal("0.0125")  # type: ignore[union-attr]
    with pytest.raises(InvalidInput) as caught:
        parse(TariffSet, {"cloud": "test-cloud", "resource": "vcpu", "price": "0.00001", "effective_from": MID})
    assert caught.value.field == "price"
    for bad, field in (({"resource": "gpu"}, "resource"), ({"price": "-1"}, "price"),
                       ({"effective_from": "1900-01-01"}, "effective_from")):
        with pytest.raises(InvalidInput) as caught:
            parse(TariffSet, {"cloud": "test-cloud", "resource": "vcpu", "price": "1", "effective_from": MID} | bad)
        assert caught.value.field == field
    with pytest.raises(InvalidInput) as caught:
        service.list_tariffs(session, ADMIN, cloud="nowhere")
    assert caught.value.field == "cloud"
    with pytest.raises(PermissionDenied):
        service.set_tariff(session, city.principals["dept"], TariffSet(
            cloud="test-cloud", resource="vcpu", price=Decimal(1), effective_from=MID))


def test_a_department_reads_its_own_statement_only(session: Session, city: MiniCity) -> None:
    dept = city.principals["dept"]
    statement = service.statement(session, dept, LAST)
    assert {line.unit_code for line in statement.lines} == {"990100-D01"}
    assert service.statement(session, dept, LAST, unit="990100-D01").total == statement.total
    with pytest.raises(NotFound):
        service.statement(session, dept, LAST, unit="990100-D02")
    with pytest.raises(PermissionDenied):
        service.statement(session, city.principals["secops"], LAST)
    with pytest.raises(InvalidInput) as caught:
        service.statement(session, dept, "2026-1")
    assert caught.value.field == "month"


def test_a_closed_month_is_frozen(session: Session, city: MiniCity) -> None:
    before = service.statement(session, ADMIN, LAST)
    with pytest.raises(PermissionDenied):
        service.close_month(session, city.principals["dept"], LAST)
    closed = service.close_month(session, ADMIN, LAST)
    assert closed.closed is not None
    assert closed.lines == before.lines
    # A later price for a day of the closed month is refused; one after it is taken and changes only later months.
    with pytest.raises(Conflict) as caught:
        service.set_tariff(session, ADMIN, TariffSet(cloud="test-cloud", resource="vcpu", price=Decimal(99),
                                                     effective_from=MID))
    assert caught.value.field == "effective_from"
    service.set_tariff(session, ADMIN, TariffSet(cloud="test-cloud", resource="ram_gib", price=Decimal(99),
                                                 effective_from=THIS_MONTH))
    # The inventory changes too: a server resized, a unit renamed, a server deleted.
    server = session.scalars(select(Server).where(Server.name == "990100-d01-app")).one()
    server.vcpus, server.flavor = 16, "c16m32"
    session.scalars(select(Unit).where(Unit.code == "990100-D01")).one().name = "市公安局（新）"
    session.scalars(select(Server).where(Server.name == "990100-d02-app")).one().status = "DELETED"
    session.flush()
    again = service.statement(session, ADMIN, LAST)
    assert again.lines == before.lines
    assert again.total == before.total
    dept = service.statement(session, city.principals["dept"], LAST)
    assert {line.unit_code for line in dept.lines} == {"990100-D01"}
    assert dept.lines[0].unit_name == "市公安局"
    # The month still open is priced as things stand now.
    now = {line.unit_code: line for line in service.statement(session, ADMIN, THIS_MONTH.strftime("%Y-%m")).lines}
    assert (now["990100-D01"].vcpus, now["990100-D01"].ram_gib_price) == (16, Decimal(99))
    assert now["990100-D02"].last_day == beijing_today()  # deleted today: charged to today
    with pytest.raises(Conflict) as caught:
        service.close_month(session, ADMIN, LAST)
    assert caught.value.field == "month"
    with pytest.raises(InvalidInput) as caught:
        service.close_month(session, ADMIN, THIS_MONTH.strftime("%Y-%m"))
    assert caught.value.field == "month"


def test_volumes_are_charged_by_their_type(session: Session, city: MiniCity) -> None:
    from cloudctl.compute import volumes
    from cloudctl.compute.models import Volume
    from tests.factories import simulator_of

    sim = simulator_of(session)
    server = session.scalars(select(Server).where(Server.name == "990100-d01-app")).one()
    project = sim.get_server(server.provider_id).project
    for kind, size in (("ssd", 500), ("hdd", 1000)):
        made = sim.create_volume(project, f"data-{kind}", kind, size)
        if kind == "ssd":
            sim.attach_volume(made.provider_id, server.provider_id)
    volumes.sync_volumes(session, ADMIN, "test-cloud")
    for row in session.scalars(select(Volume)):
        row.provider_created_at = datetime(2025, 3, 1, tzinfo=UTC)
    service.set_tariff(session, ADMIN, TariffSet(cloud="test-cloud", resource="volume_gib:ssd",
                                                 price=Decimal("0.8"), effective_from=date(2025, 1, 1)))
    session.flush()
    statement = service.statement(session, city.principals["dept"], LAST)
    lines = {line.server: line for line in statement.lines if line.flavor.startswith("volume:")}
    assert (lines["data-ssd"].disk_gib_price, lines["data-ssd"].cost) == (Decimal("0.8"), Decimal("400.00"))
    assert lines["data-ssd"].business_system == "城市视频监控联网平台"  # the system of the server it serves
    # No tariff for hdd on this cloud: the bureau's default price per GiB (0.6).
    assert (lines["data-hdd"].disk_gib_price, lines["data-hdd"].cost) == (Decimal("0.6"), Decimal("600.00"))
    assert (lines["data-ssd"].vcpu_price, lines["data-ssd"].vcpus) == (0, 0)
    [total] = [t for t in statement.totals() if t.business_system == "城市视频监控联网平台"]
    assert total.servers == 1  # volumes are charged, not counted as servers
