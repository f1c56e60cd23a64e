"""Every endpoint × every role × own/other unit: one table of expected answers.

A dept token is bound to 市公安局 (990100-D01); "other" names 市人社局 (990100-D02).
Another unit's record is 404 for a department, never 403: existence must not leak.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from cloudctl.core import jobs
from cloudctl.org.service import get_unit
from tests.api.conftest import auth
from tests.factories import ADMIN, MiniCity

ROLES = ("admin", "ops", "secops", "duty", "auditor", "dept")
UNIT = {"own": "990100-D01", "other": "990100-D02"}


@jobs.job_handler("test.api")
def _noop(ctx: jobs.JobContext) -> None:
    return None


def expect(**by_role: int) -> dict[str, int]:
    """Expected status per role; ``rest`` covers roles not named."""
    rest = by_role.pop("rest", 200)
    return {role: by_role.get(role, rest) for role in ROLES}


WRITERS = {"admin": 200, "ops": 200, "rest": 403}
# (name, method, path, body, target, expected per role)
CASES: list[tuple[str, str, str, dict[str, Any] | None, str, dict[str, int]]] = [
    ("list units", "GET", "/api/v1/units", None, "own", expect()),
    ("read own unit", "GET", "/api/v1/units/{unit}", None, "own", expect()),
    ("read other unit", "GET", "/api/v1/units/{unit}", None, "other", expect(dept=404)),
    ("patch own unit contacts", "PATCH", "/api/v1/units/{unit}", {"contact_name": "刘洋"}, "own",
     expect(**WRITERS, dept=200)),
    ("patch other unit contacts", "PATCH", "/api/v1/units/{unit}", {"contact_name": "刘洋"}, "other",
     expect(**WRITERS, dept=404)),
    ("rename own unit", "PATCH", "/api/v1/units/{unit}", {"name": "市公安局新名"}, "own", expect(**WRITERS)),
    ("create unit", "POST", "/api/v1/units",
     {"code": "990100-D09", "name": "市新设局", "kind": "department", "parent": "990100"}, "own",
     expect(admin=201, ops=201, rest=403)),
    ("list systems", "GET", "/api/v1/business-systems", None, "own", expect()),
    ("read own system", "GET", "/api/v1/business-systems/{system}", None, "own", expect()),
    ("read other system", "GET", "/api/v1/business-systems/{system}", None, "other", expect(dept=404)),
    # Raising a system's MLPS level is the owner's (and ops'); grading alone is the security team's too.
    ("patch own system", "PATCH", "/api/v1/business-systems/{system}", {"mlps_level": 4}, "own",
     expect(**WRITERS, secops=200, dept=200)),
    ("patch other system", "PATCH", "/api/v1/business-systems/{system}", {"mlps_level": 4}, "other",
     expect(**WRITERS, secops=200, dept=404)),
    ("rename own system", "PATCH", "/api/v1/business-systems/{system}", {"name": "视频监控联网平台二期"}, "own",
     expect(**WRITERS, dept=200)),
    # Lowering it is the security team's decision alone (a department asks them).
    ("lower own system", "PATCH", "/api/v1/business-systems/{system}", {"mlps_level": 2}, "own",
     expect(admin=200, secops=200, rest=403)),
    ("lower other system", "PATCH", "/api/v1/business-systems/{system}", {"mlps_level": 2}, "other",
     expect(admin=200, secops=200, dept=404, rest=403)),
    ("create own system", "POST", "/api/v1/business-systems",
     {"unit_code": "{unit}", "name": "移动警务平台", "mlps_level": 3}, "own",
     expect(admin=201, ops=201, dept=201, rest=403)),
    # Naming another unit in a body reads as naming no unit at all: 422 on the field, as for a typo.
    ("create other system", "POST", "/api/v1/business-systems",
     {"unit_code": "{unit}", "name": "移动警务平台", "mlps_level": 3}, "other",
     expect(admin=201, ops=201, dept=422, rest=403)),
    ("me", "GET", "/api/v1/me", None, "own", expect()),
    ("list clouds", "GET", "/api/v1/clouds", None, "own", expect()),
    ("flavors", "GET", "/api/v1/clouds/test-cloud/flavors", None, "own", expect()),
    ("capacity", "GET", "/api/v1/clouds/test-cloud/capacity", None, "own", expect(dept=403)),
    ("list quotas", "GET", "/api/v1/quotas", None, "own", expect()),
    ("list own quotas", "GET", "/api/v1/quotas?unit={unit}", None, "own", expect()),
    ("list other quotas", "GET", "/api/v1/quotas?unit={unit}", None, "other", expect(dept=404)),
    ("list requests", "GET", "/api/v1/requests", None, "own", expect()),
    ("submit own request", "POST", "/api/v1/requests",
     {"business_system": "{system}", "cloud": "test-cloud", "justification": "业务扩容", "items": [{"flavor": "c2m4"}]},
     "own", expect(admin=201, ops=201, dept=201, rest=403)),
    ("list servers", "GET", "/api/v1/servers", None, "own", expect()),
    ("set own quota", "PUT", "/api/v1/quotas/{unit}/test-cloud", {"vcpus": 40}, "own", expect(**WRITERS)),
    ("list recommendations", "GET", "/api/v1/reclaim/recommendations", None, "own", expect()),
    ("other unit's recommendations", "GET", "/api/v1/reclaim/recommendations?unit={unit}", None, "other",
     expect(dept=404)),
    ("reclaim summary", "GET", "/api/v1/reclaim/summary", None, "own", expect()),
    ("access rate", "GET", "/api/v1/extranet/access-rate", None, "own", expect()),
    ("list violations", "GET", "/api/v1/extranet/violations", None, "own", expect()),
    ("other unit's violations", "GET", "/api/v1/extranet/violations?unit={unit}", None, "other", expect(dept=404)),
    ("own IP application", "POST", "/api/v1/extranet/ip-applications",
     {"zone": "public", "count": 1, "purpose": "业务终端接入", "unit_code": "{unit}",
      "commitment": {"signer": "张伟", "accepted": True}}, "own",
     expect(admin=201, ops=201, dept=201, rest=403)),
    ("audit", "GET", "/api/v1/audit", None, "own", expect(admin=200, auditor=200, rest=403)),
    ("list jobs", "GET", "/api/v1/jobs", None, "own", expect()),
    ("read own job", "GET", "/api/v1/jobs/{job}", None, "own", expect()),
    ("read other job", "GET", "/api/v1/jobs/{job}", None, "other", expect(dept=404)),
    ("cancel own job", "POST", "/api/v1/jobs/{job}/cancel", None, "own",
     expect(admin=200, ops=200, secops=200, rest=403)),
]


def _fill(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**names)
    if isinstance(value, dict):
        return {k: _fill(v, names) for k, v in value.items()}
    return value


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("name", "method", "path", "body", "target", "expected"), CASES,
                         ids=[case[0] for case in CASES])
def test_matrix(client: TestClient, city: MiniCity, session: Session, role: str, name: str, method: str,
                path: str, body: dict[str, Any] | None, target: str, expected: dict[str, int]) -> None:
    unit = get_unit(session, ADMIN, UNIT[target])
    job = jobs.submit_job(session, ADMIN, "test.api", unit_id=unit.id)
    session.commit()
    names = {"unit": UNIT[target], "system": str(city.systems[target]), "job": str(job.id)}
    response = client.request(method, _fill(path, names), json=_fill(body, names), headers=auth(city, role))
    assert response.status_code == expected[role], response.text
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"


def test_dept_lists_only_its_subtree(client: TestClient, city: MiniCity) -> None:
    units = client.get("/api/v1/units", headers=auth(city, "dept")).json()
    assert {u["code"] for u in units["items"]} == {"990100-D01", "990100-M001"}
    assert units["total"] == 2
    systems = client.get("/api/v1/business-systems", headers=auth(city, "dept")).json()
    assert [s["id"] for s in systems["items"]] == [city.systems["own"]]
    # A filter naming another unit finds nothing rather than revealing it.
    response = client.get("/api/v1/business-systems?unit=990100-D02", headers=auth(city, "dept"))
    assert response.status_code == 404


@pytest.mark.parametrize("header", [None, "Bearer nope", "Bearer cct_wrong", "Basic YWRtaW46YWRtaW4="])
def test_missing_or_bad_token_is_401(client: TestClient, city: MiniCity, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = client.get("/api/v1/units", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["type"].endswith("/not-authenticated")


def test_revoked_token_is_401(client: TestClient, city: MiniCity, session: Session) -> None:
    from cloudctl.org.service import list_tokens, revoke_token

    token = next(t for t in list_tokens(session, ADMIN, username="ops-user"))
    assert client.get("/api/v1/me", headers=auth(city, "ops")).status_code == 200
    revoke_token(session, ADMIN, str(token.id))
    session.commit()
    assert client.get("/api/v1/me", headers=auth(city, "ops")).status_code == 401
