"""A department asks for VMs through the API and sees them become ACTIVE on the simulator (real commits)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from api.app import create_app
from cloudctl.core.config import Settings, reset_settings
from cloudctl.core.db import dispose_engines
from cloudctl.core.jobs import JobRunner, JobStatus
from tests.api.conftest import auth
from tests.factories import MiniCity, build_mini_city


@pytest.fixture
def live(fresh_url: str, fresh_engine: Engine, tmp_path: Path) -> Iterator[tuple[TestClient, MiniCity]]:
    reset_settings(Settings(data_dir=tmp_path / "d", database_url=fresh_url, simulator_build_seconds=0,
                            simulator_database_url=f"sqlite:///{tmp_path / 'sim.db'}", provision_poll_seconds=0.01))
    with Session(fresh_engine) as session:
        city = build_mini_city(session, with_cloud=True)
        session.commit()
    with TestClient(create_app()) as client:
        yield client, city
    reset_settings()
    dispose_engines()


def test_department_request_to_active_servers(live: tuple[TestClient, MiniCity], fresh_engine: Engine) -> None:
    client, city = live
    dept, ops = auth(city, "dept"), auth(city, "ops")
    body = {"business_system": city.systems["own"], "cloud": "test-cloud", "justification": "视频平台扩容",
            "items": [{"flavor": "c4m8", "count": 5}]}
    submitted = client.post("/api/v1/requests", json=body, headers=dept)
    assert submitted.status_code == 201, submitted.text
    request = submitted.json()
    # 20 vCPU: the department's leader approves first (部门负责人审批), then ops.
    assert (request["status"], request["unit_code"], request["items"][0]["vcpus"]) == ("awaiting_leader",
                                                                                       "990100-D01", 4)
    other = client.get("/api/v1/requests", headers=auth(city, "dept"))
    assert other.json()["total"] == 1
    assert client.post(f"/api/v1/requests/{request['id']}/approve", headers=dept).status_code == 403
    early = client.post(f"/api/v1/requests/{request['id']}/approve", headers=ops)
    assert (early.status_code, early.json()["errors"][0]["field"]) == (409, "status")
    led = client.post(f"/api/v1/requests/{request['id']}/approve", headers=auth(city, "dept_leader"),
                      json={"reason": "同意，报运维"})
    assert led.json()["status"] == "submitted", led.text
    approved = client.post(f"/api/v1/requests/{request['id']}/approve", headers=ops, json={"reason": "同意"})
    assert approved.json()["status"] == "approved"
    steps = [(a["step"], a["decision"], a["role"]) for a in approved.json()["approvals"]]
    assert steps == [("leader", "approved", "dept_leader"), ("ops", "approved", "ops")]
    again = client.post(f"/api/v1/requests/{request['id']}/approve", headers=ops)
    assert again.status_code == 409
    assert again.json()["errors"][0]["field"] == "status"

    job = JobRunner(fresh_engine).run_once()
    assert job is not None
    assert job.status is JobStatus.SUCCEEDED, job.error

    done = client.get(f"/api/v1/requests/{request['id']}", headers=dept).json()
    assert done["status"] == "fulfilled"
    servers = client.get("/api/v1/servers?unit=990100-D01", headers=dept).json()
    assert servers["total"] == 5
    assert {s["status"] for s in servers["items"]} == {"ACTIVE"}
    assert {s["business_system"] for s in servers["items"]} == {"城市视频监控联网平台"}
    quota = client.get("/api/v1/quotas", headers=dept).json()["items"][0]
    assert (quota["used_vcpus"], quota["reserved_vcpus"]) == (20, 0)
    job_view = client.get(f"/api/v1/jobs/{done['job_id']}", headers=dept).json()
    assert job_view["progress_done"] == 5
    assert len(job_view["log"]) == 5


def test_bad_request_bodies(live: tuple[TestClient, MiniCity]) -> None:
    client, city = live
    dept = auth(city, "dept")
    cases = [
        ({"business_system": city.systems["own"], "justification": "需要资源", "items": []}, "items"),
        ({"business_system": city.systems["own"], "justification": "要", "items": [{"flavor": "c4m8"}]},
         "justification"),
        ({"business_system": city.systems["own"], "justification": "需要资源",
          "items": [{"flavor": "c4m8", "count": 0}]}, "items.0.count"),
        ({"business_system": city.systems["other"], "justification": "需要资源",
          "items": [{"flavor": "c4m8"}]}, "business_system"),
        ({"business_system": city.systems["own"], "cloud": "test-cloud", "justification": "需要资源",
          "items": [{"flavor": "huge"}]}, "items.0.flavor"),
    ]
    for body, field in cases:
        response = client.post("/api/v1/requests", json=body, headers=dept)
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == field
    assert client.get("/api/v1/requests", headers=dept).json()["total"] == 0


def test_quota_increase_through_the_api(live: tuple[TestClient, MiniCity]) -> None:
    client, city = live
    body = {"business_system": city.systems["own"], "cloud": "test-cloud", "justification": "新增视频分析模块",
            "items": [{"kind": "quota", "vcpus": 8, "ram_gib": 16}]}
    submitted = client.post("/api/v1/requests", json=body, headers=auth(city, "dept")).json()
    assert submitted["status"] == "awaiting_leader"  # a quota increase always needs the leader and ops
    assert submitted["items"][0]["kind"] == "quota"
    client.post(f"/api/v1/requests/{submitted['id']}/approve", headers=auth(city, "dept_leader"))
    done = client.post(f"/api/v1/requests/{submitted['id']}/approve", headers=auth(city, "ops")).json()
    assert done["status"] == "fulfilled"
    quota = client.get("/api/v1/quotas", headers=auth(city, "dept")).json()["items"][0]
    assert (quota["limit_vcpus"], quota["limit_ram_gib"]) == (40, 80)
    anywhere = client.post("/api/v1/requests", json={**body, "cloud": "any"}, headers=auth(city, "dept"))
    assert anywhere.status_code == 422
    assert anywhere.json()["errors"][0]["field"] == "cloud"
