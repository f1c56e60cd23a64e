"""The big screen's answer over HTTP on both databases: the drill per phase and its units furthest behind, and the
open incidents with their report deadlines, the city's for the city and a department's own for the department."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloudctl.core.models import utcnow
from cloudctl.extranet.models import PrefixStatus, Zone
from cloudctl.extranet.schemas import AggregateCreate, PrefixCreate
from cloudctl.extranet.service import ipam
from cloudctl.org.models import Unit
from cloudctl.security.models import Incident, ItemStatus
from cloudctl.security.service import drills
from tests.api.conftest import auth
from tests.factories import ADMIN, MiniCity

URL = "/api/v1/security"


def _incident(client: TestClient, city: MiniCity, dst: str, level: str, ref: str) -> int:
    alert = client.post(f"{URL}/alerts", headers=auth(city, "admin"), json={
        "source": "态势感知", "source_ref": ref, "title": f"Webshell 上传 {ref}", "severity": "high",
        "src_ip": "203.0.113.7", "dst_ip": dst}).json()[0]
    assert client.post(f"{URL}/alerts/{alert['id']}/verdict", headers=auth(city, "duty"),
                       json={"verdict": "attack"}).status_code == 200
    opened = client.post(f"{URL}/alerts/{alert['id']}/incident", headers=auth(city, "duty"),
                         json={"level": level, "operator_kind": "other"})
    assert opened.status_code == 201, opened.text
    return int(opened.json()["id"])


def test_the_screen_shows_the_drill_by_phase_its_laggards_and_open_incidents(
        client: TestClient, city: MiniCity, session: Session) -> None:
    now = utcnow()
    drill = drills.create_drill(session, ADMIN, drills.DrillCreate(
        name="2026 护网行动", organiser="市委网信办", starts_at=now + timedelta(days=10),
        ends_at=now + timedelta(days=24), units=["990100-D01", "990100-D02"]))
    items = drills.list_items(session, ADMIN, drill.id)
    d01 = session.scalar(select(Unit.id).where(Unit.code == "990100-D01"))
    own = [i for i in items if i.unit_id == d01]
    other = [i for i in items if i.unit_id != d01]
    drills.update_item(session, ADMIN, drill.id, own[0].id, ItemStatus.DONE, evidence="资产台账 v3")
    other[0].due_at = now - timedelta(hours=1)  # 市人社局 is late with its first preparation item
    ipam.create_aggregate(session, ADMIN, AggregateCreate(prefix="10.64.0.0/12"))
    ipam.create_prefix(session, ADMIN, PrefixCreate(prefix="10.64.0.0/14", zone=Zone.PUBLIC,
                                                    status=PrefixStatus.CONTAINER))
    ipam.create_prefix(session, ADMIN, PrefixCreate(prefix="10.64.1.0/24", zone=Zone.PUBLIC, unit_code="990100-D01"))
    ipam.create_prefix(session, ADMIN, PrefixCreate(prefix="10.64.2.0/24", zone=Zone.PUBLIC, unit_code="990100-D02"))
    session.commit()
    own_incident = _incident(client, city, "10.64.1.20", "large", "own")
    general = _incident(client, city, "10.64.1.21", "general", "general")
    late = _incident(client, city, "10.64.2.20", "major", "other")
    incident = session.get(Incident, late)
    assert incident is not None
    incident.report_due_at = now - timedelta(minutes=5)  # its four hours have passed with no report
    session.commit()

    city_screen = client.get("/api/v1/screen/summary", headers=auth(city, "duty")).json()["security"]
    shown = city_screen["drill"]
    assert (shown["id"], shown["phase_label"]) == (drill.id, "准备阶段")
    # The phases in the drill's order, each counted over both units.
    assert [p["phase_label"] for p in shown["phases"]] == ["准备阶段", "自查阶段", "值守阶段", "总结阶段"]
    assert sum(p["items"] for p in shown["phases"]) == shown["items"] == len(items)
    prepare = shown["phases"][0]
    assert (prepare["settled"], prepare["overdue"]) == (1, 1)
    # The unit with an item overdue is the furthest behind; the one with an item done comes after it.
    assert [u["unit"] for u in shown["behind"]] == ["990100-D02", "990100-D01"]
    assert (shown["behind"][0]["overdue"], shown["behind"][1]["settled"]) == (1, 1)
    # Open incidents: the overdue report first, then the nearest deadline, then one owing no report within hours.
    assert city_screen["incidents_open"] == 3
    assert [i["id"] for i in city_screen["incidents"]] == [late, own_incident, general]
    assert [i["report_overdue"] for i in city_screen["incidents"]] == [True, False, False]
    assert city_screen["incidents"][0]["level_label"] == "重大"
    assert city_screen["incidents"][2]["report_due_at"] is None

    # A report filed after the deadline: late, and it shows so.
    assert client.post(f"{URL}/incidents/{late}/reports", headers=auth(city, "duty"), json={
        "recipient": "省委网信办", "content": "首报"}).status_code == 201
    again = client.get("/api/v1/screen/summary", headers=auth(city, "duty")).json()["security"]
    assert [i["report_overdue"] for i in again["incidents"] if i["id"] == late] == [True]

    dept = client.get("/api/v1/screen/summary", headers=auth(city, "dept")).json()["security"]
    assert [u["unit"] for u in dept["drill"]["behind"]] == ["990100-D01"]
    assert sum(p["items"] for p in dept["drill"]["phases"]) == len(own)
    assert dept["drill"]["phases"][0]["overdue"] == 0
    assert dept["incidents_open"] == 2
    assert {i["unit"] for i in dept["incidents"]} == {"990100-D01"}


def test_a_screen_without_a_drill_or_incidents_says_so(client: TestClient, city: MiniCity) -> None:
    security = client.get("/api/v1/screen/summary", headers=auth(city, "auditor")).json()["security"]
    assert (security["drill"], security["incidents_open"], security["incidents"]) == (None, 0, [])
