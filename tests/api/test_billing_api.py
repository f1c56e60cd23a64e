"""Tariffs and statements through the API: ops prices a cloud, a department reads its own bill as JSON, CSV and
.xlsx, and bad input is a problem naming the field."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import openpyxl
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from cloudctl.core.models import beijing_today
from tests.api.conftest import auth
from tests.factories import MiniCity, make_server

THIS_MONTH = beijing_today().replace(day=1)
LAST = (THIS_MONTH - timedelta(days=1)).strftime("%Y-%m")


def _servers(session: Session, city: MiniCity) -> None:
    for code, system in (("990100-D01", "own"), ("990100-D02", "other")):
        server = make_server(session, code, city.systems[system], "c4m8", name=f"{code.lower()}-app")
        server.launched_at = datetime(2025, 3, 1, tzinfo=UTC)
    session.commit()


def test_ops_sets_prices_and_a_department_reads_its_own_statement(client: TestClient, session: Session,
                                                                  city: MiniCity) -> None:
    _servers(session, city)
    ops, dept = auth(city, "ops"), auth(city, "dept")
    for resource, price in (("vcpu", "45"), ("ram_gib", "20"), ("disk_gib", "0.5")):
        answer = client.post("/api/v1/tariffs", headers=ops, json={
            "cloud": "test-cloud", "resource": resource, "price": price, "effective_from": "2025-01-01"})
        assert answer.status_code == 201, answer.text
    tariffs = client.get("/api/v1/tariffs?cloud=test-cloud", headers=dept).json()
    assert tariffs["total"] == 3
    assert {(t["resource"], Decimal(t["price"])) for t in tariffs["items"]} == {
        ("vcpu", 45), ("ram_gib", 20), ("disk_gib", Decimal("0.5"))}

    statement = client.get(f"/api/v1/showback?month={LAST}", headers=dept).json()
    assert statement["closed"] is False
    assert {line["unit_code"] for line in statement["lines"]} == {"990100-D01"}
    [line] = statement["lines"]
    assert (line["vcpus"], line["ram_gib"], line["disk_gib"], Decimal(line["vcpu_price"])) == (4, 8.0, 40, 45)
    assert Decimal(statement["total"]) == Decimal(4 * 45 + 8 * 20 + 20)  # a whole month of c4m8 at these prices
    assert client.get(f"/api/v1/showback?month={LAST}&unit=990100-D02", headers=dept).status_code == 404
    everyone = client.get(f"/api/v1/showback?month={LAST}", headers=ops).json()
    assert {t["unit_code"] for t in everyone["totals"]} == {"990100-D01", "990100-D02"}

    closed = client.post("/api/v1/showback/closed-months", headers=ops, json={"month": LAST})
    assert closed.status_code == 201, closed.text
    assert closed.json()["closed"] is True
    late = client.post("/api/v1/tariffs", headers=ops, json={
        "cloud": "test-cloud", "resource": "vcpu", "price": "99", "effective_from": f"{LAST}-15"})
    assert (late.status_code, late.json()["errors"][0]["field"]) == (409, "effective_from")
    assert client.get(f"/api/v1/showback?month={LAST}", headers=dept).json()["lines"] == statement["lines"]


def test_exports_are_safe_to_open(client: TestClient, session: Session, city: MiniCity) -> None:
    from cloudctl.org.models import BusinessSystem

    _servers(session, city)
    system = session.get(BusinessSystem, city.systems["own"])
    assert system is not None
    formula = '=HYPERLINK("http://evil.example/x","详情")'
    system.name = formula
    session.commit()
    dept = auth(city, "dept")
    answer = client.get(f"/api/v1/showback?month={LAST}&format=csv", headers=dept)
    assert answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [r["business_system"] for r in rows] == ["'" + formula]
    assert Decimal(rows[0]["cost_cny"]) > 0
    workbook = client.get(f"/api/v1/showback?month={LAST}&format=xlsx", headers=dept)
    sheet = openpyxl.load_workbook(io.BytesIO(workbook.content)).active
    assert sheet is not None
    header = [c.value for c in sheet[1]]
    cells = dict(zip(header, [c for c in sheet[2]], strict=True))
    assert (cells["business_system"].value, cells["business_system"].data_type) == ("'" + formula, "s")
    assert isinstance(cells["cost_cny"].value, int | float)  # a number the sheet can sum, not text
    assert "990100-D02" not in {c.value for row in sheet.iter_rows() for c in row}


def test_bad_input_is_a_problem_naming_the_field(client: TestClient, city: MiniCity) -> None:
    ops = auth(city, "ops")
    cases = [
        ("GET", "/api/v1/showback?month=2026-13", None, "month"),
        ("GET", "/api/v1/showback?month=２０２６-11", None, "month"),
        ("GET", f"/api/v1/showback?month={LAST}&format=pdf", None, "format"),
        ("GET", "/api/v1/tariffs?cloud=nowhere", None, "cloud"),
        ("POST", "/api/v1/tariffs", {"cloud": "test-cloud", "resource": "vcpu", "price": "1.23456",
                                     "effective_from": "2026-01-01"}, "price"),
        ("POST", "/api/v1/tariffs", {"cloud": "test-cloud", "resource": "gpu", "price": "1",
                                     "effective_from": "2026-01-01"}, "resource"),
        ("POST", "/api/v1/tariffs", {"cloud": "nowhere", "resource": "vcpu", "price": "1",
                                     "effective_from": "2026-01-01"}, "cloud"),
        ("POST", "/api/v1/showback/closed-months", {"month": beijing_today().strftime("%Y-%m")}, "month"),
    ]
    for method, url, body, field in cases:
        answer = client.request(method, url, json=body, headers=ops)
        assert answer.status_code in (404, 422), (url, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["errors"][0]["field"].split(".")[-1] == field, (url, answer.text)


def test_budgets_through_the_api(client: TestClient, session: Session, city: MiniCity) -> None:
    _servers(session, city)
    ops, dept = auth(city, "ops"), auth(city, "dept")
    year = beijing_today().year
    for code in ("990100-D01", "990100-D02"):
        answer = client.put("/api/v1/budgets", headers=ops, json={"unit": code, "year": year, "amount": "100"})
        assert answer.status_code == 200, answer.text
    mine = client.get(f"/api/v1/budgets?year={year}", headers=dept).json()
    assert [b["unit_code"] for b in mine["items"]] == ["990100-D01"]
    assert mine["items"][0]["over"] is True  # a c4m8 all year costs more than 100 CNY
    request = client.post("/api/v1/requests", headers=dept, json={
        "business_system": city.systems["own"], "cloud": "test-cloud", "justification": "业务上线需要应用服务器",
        "items": [{"flavor": "c2m4"}]}).json()
    assert request["status"] == "awaiting_leader"
    assert request["over_budget"].startswith("超出预算")
    bad = client.put("/api/v1/budgets", headers=ops, json={"unit": "990100-D01", "year": 1999, "amount": "1"})
    assert (bad.status_code, bad.json()["errors"][0]["field"]) == (422, "year")
    assert client.put("/api/v1/budgets", headers=dept, json={"unit": "990100-D01", "year": year,
                                                              "amount": "1"}).status_code == 403
