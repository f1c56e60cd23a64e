"""Units, business systems, /me, audit and jobs over HTTP: happy paths, bad input, Chinese text."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloudctl.core import jobs
from cloudctl.org.models import BusinessSystem, Unit
from tests.api.conftest import auth
from tests.factories import ADMIN, MiniCity


def test_create_read_patch_unit(client: TestClient, city: MiniCity) -> None:
    ops = auth(city, "ops")
    body = {"code": "990103", "name": "西山县", "kind": "county", "parent": "990100", "contact_name": "欧阳娜娜",
            "contact_phone": "0799-86123456", "contact_email": "xishan@gov.example.cn"}
    created = client.post("/api/v1/units", json=body, headers=ops)
    assert created.status_code == 201
    assert created.headers["location"] == "/api/v1/units/990103"
    unit = created.json()
    assert {k: unit[k] for k in body} == body
    assert unit["kind_label"] == "县/市/区"
    assert unit["level"] == "vertical"
    patched = client.patch("/api/v1/units/990103", json={"name": "西山区", "contact_name": None}, headers=ops)
    assert patched.status_code == 200
    assert patched.json()["name"] == "西山区"
    assert patched.json()["contact_name"] is None
    read = client.get("/api/v1/units/990103", headers=ops)
    assert read.json() == patched.json()
    # JSON answers are UTF-8 and carry the Chinese as it was sent.
    assert "西山区".encode() in read.content


def test_list_filters_and_pagination(client: TestClient, city: MiniCity) -> None:
    ops = auth(city, "ops")
    page = client.get("/api/v1/units?limit=2&offset=1", headers=ops).json()
    assert page["total"] == 7
    assert (page["limit"], page["offset"], len(page["items"])) == (2, 1, 2)
    assert [u["code"] for u in page["items"]] == ["990100-D01", "990100-D02"]
    departments = client.get("/api/v1/units?kind=department", headers=ops).json()
    assert [u["code"] for u in departments["items"]] == ["990100-D01", "990100-D02"]
    children = client.get("/api/v1/units?parent=990102", headers=ops).json()
    assert [u["code"] for u in children["items"]] == ["990102001"]
    found = client.get("/api/v1/units", params={"q": "社会保障"}, headers=ops).json()
    assert [u["code"] for u in found["items"]] == ["990100-D02"]
    level3 = client.get("/api/v1/business-systems?mlps_level=3&unit=990100-D01", headers=ops).json()
    assert [s["name"] for s in level3["items"]] == ["城市视频监控联网平台"]


def test_business_system_create_and_patch(client: TestClient, city: MiniCity) -> None:
    dept = auth(city, "dept")
    created = client.post("/api/v1/business-systems", json={
        "unit_code": "990100-D01", "name": "移动警务平台", "mlps_level": 3, "contact_name": "周杰"}, headers=dept)
    assert created.status_code == 201
    system = created.json()
    assert system["unit_code"] == "990100-D01"
    assert created.headers["location"] == f"/api/v1/business-systems/{system['id']}"
    patched = client.patch(f"/api/v1/business-systems/{system['id']}", json={"mlps_level": 4}, headers=dept)
    assert patched.json()["mlps_level"] == 4
    # Lowering the level is the security team's decision: the department asks them.
    lowered = client.patch(f"/api/v1/business-systems/{system['id']}", json={"mlps_level": 2}, headers=dept)
    assert lowered.status_code == 403
    assert lowered.json()["errors"][0]["field"] == "mlps_level"
    assert "security team" in lowered.json()["detail"]
    regraded = client.patch(f"/api/v1/business-systems/{system['id']}", json={"mlps_level": 2},
                            headers=auth(city, "secops"))
    assert regraded.status_code == 200, regraded.text
    assert regraded.json()["mlps_level"] == 2
    # Anything beyond the level stays the owner's and ops'.
    assert client.patch(f"/api/v1/business-systems/{system['id']}", json={"mlps_level": 2, "name": "移动警务"},
                        headers=auth(city, "secops")).status_code == 403


def test_me(client: TestClient, city: MiniCity) -> None:
    me = client.get("/api/v1/me", headers=auth(city, "dept")).json()
    assert me["username"] == "dept-user"
    assert me["role"] == "dept"
    assert me["role_label"] == "部门用户"
    assert me["unit"] == "990100-D01"
    assert me["unit_name"] == "市公安局"
    assert me["token_expires_at"] is not None


def test_every_change_is_audited(client: TestClient, city: MiniCity) -> None:
    client.patch("/api/v1/units/990100-D01", json={"contact_phone": "0799-86000110"}, headers=auth(city, "dept"))
    trail = client.get("/api/v1/audit?entity=unit&entity_id=990100-D01", headers=auth(city, "auditor")).json()
    latest = trail["items"][0]
    assert latest["actor"] == "api:dept-user"
    assert latest["action"] == "update"
    assert latest["before"] == {"contact_phone": "13800000001"}
    assert latest["after"] == {"contact_phone": "0799-86000110"}


@jobs.job_handler("test.api-progress")
def _progress(ctx: jobs.JobContext) -> None:
    return None


def test_job_detail(client: TestClient, city: MiniCity, session: Session) -> None:
    job = jobs.submit_job(session, ADMIN, "test.api-progress", {"n": 1})
    session.commit()
    detail = client.get(f"/api/v1/jobs/{job.id}", headers=auth(city, "ops")).json()
    assert detail["status"] == "queued"
    assert detail["kind"] == "test.api-progress"
    assert detail["log"] == []
    cancelled = client.post(f"/api/v1/jobs/{job.id}/cancel", headers=auth(city, "ops")).json()
    assert cancelled["status"] == "cancelled"
    again = client.post(f"/api/v1/jobs/{job.id}/cancel", headers=auth(city, "ops"))
    assert again.status_code == 422
    assert again.json()["errors"][0]["field"] == "status"


BAD_UNITS = [
    ({"code": "990100-D01", "name": "重复", "kind": "department", "parent": "990100"}, 409, "code"),
    ({"code": "X1", "name": "无父单位", "kind": "department", "parent": "NOPE"}, 422, "parent"),
    ({"code": "X2", "name": "   ", "kind": "department", "parent": "990100"}, 422, "name"),
    ({"code": "X3", "name": "长" * 65, "kind": "department", "parent": "990100"}, 422, "name"),
    ({"code": "X4", "name": "坏类型", "kind": "ministry", "parent": "990100"}, 422, "kind"),
    ({"code": "bad code!", "name": "坏编码", "kind": "department", "parent": "990100"}, 422, "code"),
    ({"code": "X5", "name": "多余字段", "kind": "department", "parent": "990100", "budget": 1}, 422, "budget"),
    ({"code": "X6", "name": "坏邮箱", "kind": "department", "parent": "990100", "contact_email": "nope"}, 422,
     "contact_email"),
]


@pytest.mark.parametrize(("body", "status", "field"), BAD_UNITS, ids=[c[2] + str(i) for i, c in enumerate(BAD_UNITS)])
def test_bad_unit_is_refused_naming_the_field(client: TestClient, city: MiniCity, session: Session,
                                              body: dict[str, object], status: int, field: str) -> None:
    before = session.scalar(select(func.count(Unit.id)))
    response = client.post("/api/v1/units", json=body, headers=auth(city, "ops"))
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status
    assert problem["instance"] == "/api/v1/units"
    assert problem["errors"][0]["field"] == field
    assert field in problem["detail"]
    assert session.scalar(select(func.count(Unit.id))) == before


def test_cycle_is_refused_and_nothing_moves(client: TestClient, city: MiniCity) -> None:
    ops = auth(city, "ops")
    response = client.patch("/api/v1/units/990100-D01", json={"parent": "990100-M001"}, headers=ops)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "parent"
    assert "cycle" in response.json()["detail"]
    assert client.get("/api/v1/units/990100-D01", headers=ops).json()["parent"] == "990100"


@pytest.mark.parametrize(("query", "field"), [("limit=0", "limit"), ("limit=5000", "limit"), ("offset=-1", "offset"),
                                              ("kind=ministry", "kind")])
def test_bad_query_parameters(client: TestClient, city: MiniCity, query: str, field: str) -> None:
    response = client.get(f"/api/v1/units?{query}", headers=auth(city, "ops"))
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == field


def test_bad_system_and_malformed_body(client: TestClient, city: MiniCity, session: Session) -> None:
    ops = auth(city, "ops")
    before = session.scalar(select(func.count(BusinessSystem.id)))
    level5 = client.post("/api/v1/business-systems", json={"unit_code": "990100-D01", "name": "X", "mlps_level": 5},
                         headers=ops)
    assert level5.json()["errors"][0]["field"] == "mlps_level"
    duplicate = client.post("/api/v1/business-systems", headers=ops, json={
        "unit_code": "990100-D01", "name": "城市视频监控联网平台", "mlps_level": 3})
    assert duplicate.status_code == 409
    assert duplicate.json()["errors"][0]["field"] == "name"
    broken = client.post("/api/v1/units", content=b'{"code": "X9", ',
                         headers={**ops, "content-type": "application/json"})
    assert broken.status_code == 422
    assert broken.headers["content-type"] == "application/problem+json"
    assert session.scalar(select(func.count(BusinessSystem.id))) == before


def test_unknown_route_and_health(client: TestClient) -> None:
    missing = client.get("/api/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert client.get("/healthz").json() == {"status": "ok", "database": "ok"}
    assert client.get("/openapi.json").json()["info"]["title"] == "cloudctl"
