"""Reclaim over HTTP: a department sees and appeals only its own recommendations; ops decide."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from cloudctl.core.models import utcnow
from cloudctl.reclaim import service
from tests.api.conftest import auth
from tests.factories import ADMIN, MiniCity, ReclaimFleet, build_mini_city, build_reclaim_fleet, plant_storage


@pytest.fixture
def fleet(session: Session) -> ReclaimFleet:
    fleet = build_reclaim_fleet(session)
    service.analyze(session, ADMIN)
    service.notify(session, ADMIN)
    session.commit()
    return fleet


@pytest.fixture
def city(fleet: ReclaimFleet) -> MiniCity:
    return fleet.city


def _by_server(client: TestClient, city: MiniCity, role: str) -> dict[str, dict[str, object]]:
    page = client.get("/api/v1/reclaim/recommendations", headers=auth(city, role)).json()
    return {str(r["server"]).split("-", 2)[-1]: r for r in page["items"]}


def test_a_department_sees_only_its_own(client: TestClient, city: MiniCity) -> None:
    mine = _by_server(client, city, "dept")
    assert set(mine) == {"idle", "oversized", "zombie"}
    assert {r["unit_code"] for r in mine.values()} == {"990100-D01"}
    assert mine["oversized"]["recommended_flavor"] == "c2m4"
    assert mine["idle"]["status"] == "notified"
    assert mine["idle"]["due_at"] is not None
    everyone = _by_server(client, city, "ops")
    assert "other-idle" in everyone
    hidden = client.get(f"/api/v1/reclaim/recommendations/{everyone['other-idle']['id']}", headers=auth(city, "dept"))
    assert hidden.status_code == 404
    assert hidden.headers["content-type"] == "application/problem+json"
    filtered = client.get("/api/v1/reclaim/recommendations?unit=990100-D02", headers=auth(city, "dept"))
    assert filtered.status_code == 404
    idle_only = client.get("/api/v1/reclaim/recommendations?kind=idle", headers=auth(city, "ops")).json()
    assert idle_only["total"] == 2


def test_appeal_and_decision(client: TestClient, city: MiniCity) -> None:
    rec_id = _by_server(client, city, "dept")["idle"]["id"]
    url = f"/api/v1/reclaim/recommendations/{rec_id}"
    short = client.post(f"{url}/appeal", json={"reason": "不"}, headers=auth(city, "dept"))
    assert short.status_code == 422
    assert short.json()["errors"][0]["field"] == "reason"
    appealed = client.post(f"{url}/appeal", json={"reason": "同城灾备节点，演练时满载"}, headers=auth(city, "dept"))
    assert appealed.status_code == 200, appealed.text
    assert appealed.json()["appeal_status"] == "pending"
    again = client.post(f"{url}/appeal", json={"reason": "再次申诉一下"}, headers=auth(city, "dept"))
    assert again.status_code == 409
    assert again.json()["errors"][0]["field"] == "appeal_status"
    by_dept = client.post(f"{url}/appeal/decision", json={"accept": True}, headers=auth(city, "dept"))
    assert by_dept.status_code == 403
    decided = client.post(f"{url}/appeal/decision", json={"accept": True, "exempt_until": "2099-01-01",
                                                          "note": "灾备节点，保留"}, headers=auth(city, "ops"))
    assert decided.status_code == 200, decided.text
    assert (decided.json()["status"], decided.json()["exempt_until"]) == ("exempted", "2099-01-01")
    other = _by_server(client, city, "ops")["other-idle"]["id"]
    foreign = client.post(f"/api/v1/reclaim/recommendations/{other}/appeal", json={"reason": "不是我们的系统"},
                          headers=auth(city, "dept"))
    assert foreign.status_code == 404


def test_summary_and_latest_campaign(client: TestClient, city: MiniCity) -> None:
    rows = client.get("/api/v1/reclaim/summary?by=unit", headers=auth(city, "dept")).json()
    assert [r["key"] for r in rows] == ["990100-D01"]
    assert rows[0]["reclaimable_vcpus"] == 4 + 6 + 2
    bad = client.get("/api/v1/reclaim/summary?by=county", headers=auth(city, "ops"))
    assert bad.status_code == 422
    campaign = client.get("/api/v1/reclaim/campaigns/latest", headers=auth(city, "auditor")).json()
    assert campaign["counts"]["created"] == 4


def test_storage_recommendations_through_the_same_workflow(client: TestClient, session: Session) -> None:
    city = build_mini_city(session, with_cloud=True)
    plant_storage(session, city)
    service.analyze(session, ADMIN)
    session.commit()
    volumes = client.get("/api/v1/reclaim/recommendations?kind=volume_idle", headers=auth(city, "dept")).json()
    assert [(r["server"], r["server_id"], r["unit_code"]) for r in volumes["items"]] == [
        ("旧数据盘", None, "990100-D01")]
    mine = volumes["items"][0]
    assert (mine["reclaim_disk_gib"], mine["action"], mine["snapshot_id"]) == (1000, None, None)
    assert mine["volume_id"] is not None
    orphans = client.get("/api/v1/reclaim/recommendations?kind=volume_orphan", headers=auth(city, "ops")).json()
    assert [r["server"] for r in orphans["items"]] == ["社保影像"]
    hidden = client.get(f"/api/v1/reclaim/recommendations/{orphans['items'][0]['id']}", headers=auth(city, "dept"))
    assert hidden.status_code == 404
    url = f"/api/v1/reclaim/recommendations/{mine['id']}"
    notified = client.post(f"{url}/notify?grace_days=1", headers=auth(city, "ops"))
    assert notified.status_code == 200, notified.text
    assert notified.json()["status"] == "notified"
    appealed = client.post(f"{url}/appeal", json={"reason": "历史案卷需保留"}, headers=auth(city, "dept"))
    assert appealed.status_code == 200, appealed.text
    rejected = client.post(f"{url}/appeal/decision", json={"accept": False, "note": "已有归档副本"},
                           headers=auth(city, "ops"))
    assert rejected.json()["appeal_status"] == "rejected"
    assert service.execute(session, ADMIN, now=utcnow()) == []  # the grace period still runs
    assert service.execute(session, ADMIN, now=utcnow() + timedelta(days=2))[0].outcome == "done"
    session.commit()
    shown = client.get(url, headers=auth(city, "dept")).json()
    assert (shown["status"], shown["action"]) == ("executed", "snapshot_delete")
    assert shown["snapshot_id"]
    assert shown["snapshot_until"]
