"""Alerts and duty over HTTP: webhooks in both forms, the six steps before an attack closes, zero-reports."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from cloudctl.core.models import utcnow
from cloudctl.org.models import UnitKind
from cloudctl.security.models import DutyKind
from cloudctl.security.service import duty
from tests.api.conftest import auth
from tests.factories import ADMIN, MiniCity

GENERIC = {"source": "态势感知", "source_ref": "evt-20261125-0042", "title": "Webshell 上传尝试", "severity": "high",
           "src_ip": "203.0.113.7", "dst_ip": "10.64.1.20"}
ALERTMANAGER = {"version": "4", "status": "firing", "receiver": "duty-room", "groupKey": "{}:{}", "alerts": [
    {"status": "firing", "labels": {"alertname": "CloudctlExporterDown", "severity": "critical"},
     "annotations": {"summary": "Prometheus cannot scrape cloudctl."}, "startsAt": "2026-11-25T08:00:00Z",
     "fingerprint": "9f2c1e0b7a6d5c4b"}]}


def test_webhooks_deduplicate(client: TestClient, city: MiniCity) -> None:
    duty_headers = auth(city, "duty")
    first = client.post("/api/v1/security/alerts", json=GENERIC, headers=duty_headers)
    assert first.status_code == 202, first.text
    again = client.post("/api/v1/security/alerts", json=GENERIC, headers=duty_headers).json()
    assert again[0]["id"] == first.json()[0]["id"]
    assert again[0]["repeats"] == 1
    am = client.post("/api/v1/security/alerts", json=ALERTMANAGER, headers=duty_headers).json()
    assert (am[0]["source"], am[0]["source_ref"], am[0]["severity"]) == ("alertmanager/duty-room",
                                                                         "9f2c1e0b7a6d5c4b", "critical")
    bad = client.post("/api/v1/security/alerts", json={**GENERIC, "src_ip": "not-an-ip"}, headers=duty_headers)
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "src_ip"
    assert client.post("/api/v1/security/alerts", json=GENERIC, headers=auth(city, "dept")).status_code == 403


def test_an_attack_cannot_close_with_a_step_open(client: TestClient, city: MiniCity) -> None:
    headers = auth(city, "duty")
    alert_id = client.post("/api/v1/security/alerts", json=GENERIC, headers=headers).json()[0]["id"]
    url = f"/api/v1/security/alerts/{alert_id}"
    attack = client.post(f"{url}/verdict", json={"verdict": "attack", "note": "源地址在威胁情报黑名单"},
                         headers=headers)
    assert attack.status_code == 200
    body = attack.json()
    assert [s["step"] for s in body["steps"]] == ["block", "respond", "investigate", "kill", "record", "reply"]
    assert body["triage_seconds"] is not None
    out_of_order = client.post(f"{url}/steps/respond", json={"status": "done", "evidence": "已通知单位"},
                               headers=headers)
    assert out_of_order.status_code == 409
    assert out_of_order.json()["errors"][0]["field"] == "step"
    blocked = client.post("/api/v1/security/blocklist", headers=headers,
                          json={"ip": "203.0.113.7", "reason": "webshell 上传", "alert_id": alert_id})
    assert blocked.status_code == 201
    for step in ("block", "respond", "investigate"):
        assert client.post(f"{url}/steps/{step}", json={"status": "done", "evidence": f"{step} 完成"},
                           headers=headers).status_code == 200
    assert client.post(f"{url}/steps/record", json={"status": "skipped"}, headers=headers).status_code == 409
    early = client.post(f"{url}/close", headers=headers)
    assert early.status_code == 409
    assert early.json()["errors"][0]["field"] == "steps"
    assert client.post(f"{url}/steps/kill", json={"status": "skipped"}, headers=headers).status_code == 200
    for step in ("record", "reply"):
        client.post(f"{url}/steps/{step}", json={"status": "done", "evidence": "已备案/已回复"}, headers=headers)
    closed = client.post(f"{url}/close", headers=headers)
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "closed"
    text = client.get("/api/v1/security/blocklist", headers=headers)
    assert text.text == "203.0.113.7\n"
    csv_text = client.get("/api/v1/security/blocklist?format=csv", headers=headers).text
    assert csv_text.splitlines()[0] == "ip,reason,expires_at,alert_id,created_by,created_at"


@pytest.fixture
def period(session: Session, city: MiniCity) -> int:
    now = utcnow()
    period = duty.create_period(session, ADMIN, duty.PeriodCreate(
        name="2026 国庆节假日值守", kind=DutyKind.HOLIDAY, starts_at=now - timedelta(hours=7),
        ends_at=now + timedelta(days=2), every_hours=2, reporting_kinds=[UnitKind.DEPARTMENT]))
    session.commit()
    return period.id


def test_zero_reports_and_overdue_slots(client: TestClient, session: Session, city: MiniCity, period: int) -> None:
    missing = client.get("/api/v1/security/duty/missing", headers=auth(city, "duty")).json()
    overdue = [m for m in missing if m["overdue"]]
    # Slots at +2h, +4h and +6h are past (with 30 min of grace): both departments owe all three.
    assert len(overdue) == 6
    assert {m["unit_code"] for m in overdue} == {"990100-D01", "990100-D02"}
    # Filed now, the report is for the slot that has just passed (+6h, past its grace: late), not the next one.
    report = client.post(f"/api/v1/security/duty/periods/{period}/reports", headers=auth(city, "dept"),
                         json={"zero": True, "note": "本时段无安全事件"})
    assert report.status_code == 201, report.text
    slots = duty.slots(duty.get_period(session, ADMIN, period))
    assert (datetime.fromisoformat(report.json()["slot_at"]), report.json()["late"]) == (slots[2], True)
    # That one reported, the next report is the coming slot's, filed early; a third has no slot left to take.
    early = client.post(f"/api/v1/security/duty/periods/{period}/reports", headers=auth(city, "dept"),
                        json={"zero": True})
    assert (datetime.fromisoformat(early.json()["slot_at"]), early.json()["late"]) == (slots[3], False)
    twice = client.post(f"/api/v1/security/duty/periods/{period}/reports", headers=auth(city, "dept"),
                        json={"zero": True})
    assert twice.status_code == 409
    wrong = client.post(f"/api/v1/security/duty/periods/{period}/reports", headers=auth(city, "dept"),
                        json={"zero": True, "alerts": 2})
    assert wrong.status_code == 422
    mine = client.get("/api/v1/security/duty/missing", headers=auth(city, "dept")).json()
    assert {m["unit_code"] for m in mine} == {"990100-D01"}
    assert not [m for m in mine if not m["overdue"] and not m["late"]]  # the coming slot is reported
    # The slot reported late is listed as late (补报), the ones never reported as overdue.
    assert [datetime.fromisoformat(m["slot_at"]) for m in mine if m["late"]] == [slots[2]]


def test_a_drill_checklist_per_unit_with_progress(client: TestClient, city: MiniCity) -> None:
    start = utcnow() + timedelta(days=10)
    created = client.post("/api/v1/security/drills", headers=auth(city, "secops"), json={
        "name": "2026 护网行动", "organiser": "市委网信办", "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(days=14)).isoformat(), "units": ["990100-D01", "990100-D02"]})
    assert created.status_code == 201, created.text
    drill = created.json()["id"]
    mine = client.get(f"/api/v1/security/drills/{drill}/items", headers=auth(city, "dept")).json()
    assert {i["unit_code"] for i in mine} == {"990100-D01"}
    assert len(mine) == 13
    inventory = next(i for i in mine if i["key"] == "asset-inventory")
    url = f"/api/v1/security/drills/{drill}/items/{inventory['id']}"
    no_evidence = client.patch(url, json={"status": "done"}, headers=auth(city, "dept"))
    assert no_evidence.status_code == 422
    assert no_evidence.json()["errors"][0]["field"] == "evidence"
    done = client.patch(url, json={"status": "done", "evidence": "资产清单 v3（互联网暴露面 12 项）"},
                        headers=auth(city, "dept"))
    assert done.status_code == 200
    assert done.json()["verifier"] is None
    assert client.post(f"{url}/verify", headers=auth(city, "dept")).status_code == 403  # units do not self-verify
    verified = client.post(f"{url}/verify", headers=auth(city, "secops"))
    assert verified.status_code == 200
    assert verified.json()["verifier"] is not None
    waiting = next(i for i in mine if i["key"] == "exposure-reduction")
    assert client.post(f"/api/v1/security/drills/{drill}/items/{waiting['id']}/verify",
                       headers=auth(city, "secops")).status_code == 409
    listed = client.get("/api/v1/security/drills", headers=auth(city, "dept")).json()
    assert [(d["id"], d["phase"]) for d in listed] == [(drill, "prepare")]
    mandatory = next(i for i in mine if i["key"] == "weak-passwords")
    refused = client.patch(f"/api/v1/security/drills/{drill}/items/{mandatory['id']}", json={"status": "cancelled"},
                           headers=auth(city, "dept"))
    assert refused.status_code == 409
    progress = client.get(f"/api/v1/security/drills/{drill}/progress", headers=auth(city, "secops")).json()
    prepare = next(r for r in progress if r["unit_code"] == "990100-D01" and r["phase"] == "prepare")
    assert (prepare["done"], prepare["total"]) == (1, 4)
    # Progress in the drill's order of phases, not the alphabet's.
    assert [r["phase"] for r in progress if r["unit_code"] == "990100-D01"] == [
        "prepare", "self_check", "on_duty", "summary"]
    assert client.post(f"/api/v1/security/drills/{drill}/phase/on_duty", headers=auth(city, "secops")).status_code \
        == 409
    # One of four preparation items done in D01, none in D02: the phase holds.
    held = client.post(f"/api/v1/security/drills/{drill}/phase/self_check", headers=auth(city, "secops"))
    assert held.status_code == 409
    assert held.json()["errors"][0]["field"] == "phase"
    assert "7 required prepare" in held.json()["detail"]
    everything = client.get(f"/api/v1/security/drills/{drill}/items", headers=auth(city, "secops")).json()
    pending = [i for i in everything if i["phase"] == "prepare" and i["status"] != "done"]
    waive = f"/api/v1/security/drills/{drill}/items/{pending[0]['id']}/waive"
    assert client.post(waive, json={"reason": "x"}, headers=auth(city, "secops")).status_code == 422
    assert client.post(waive, json={"reason": "已纳入市级统一资产台账"}, headers=auth(city, "dept")).status_code in (
        403, 404)
    for item in pending:
        waived = client.post(f"/api/v1/security/drills/{drill}/items/{item['id']}/waive",
                             json={"reason": "已纳入市级统一资产台账"}, headers=auth(city, "secops"))
        assert waived.status_code == 200, waived.text
        assert (waived.json()["status"], waived.json()["waiver_reason"]) == ("waived", "已纳入市级统一资产台账")
    assert client.post(waive, json={"reason": "再次豁免"}, headers=auth(city, "secops")).status_code == 409
    d01_item = next(i for i in pending if i["unit_code"] == "990100-D01")
    assert client.patch(f"/api/v1/security/drills/{drill}/items/{d01_item['id']}", json={"status": "waiting"},
                        headers=auth(city, "dept")).status_code == 409  # the waiver is the security team's
    by_phase = client.get(f"/api/v1/security/drills/{drill}/progress?by=phase", headers=auth(city, "secops")).json()
    assert (by_phase[0]["phase"], by_phase[0]["unit_code"], by_phase[0]["done"], by_phase[0]["waived"],
            by_phase[0]["total"], by_phase[0]["ratio"]) == ("prepare", None, 1, 7, 8, 1.0)
    assert [r["phase"] for r in by_phase] == ["prepare", "self_check", "on_duty", "summary"]
    by_unit = client.get(f"/api/v1/security/drills/{drill}/progress?by=unit", headers=auth(city, "dept")).json()
    assert [(r["unit_code"], r["phase"], r["total"], r["done"], r["waived"]) for r in by_unit] == [
        ("990100-D01", None, 13, 1, 3)]
    assert client.post(f"/api/v1/security/drills/{drill}/phase/self_check",
                       headers=auth(city, "secops")).json()["phase"] == "self_check"
    summary = client.get(f"/api/v1/security/drills/{drill}/summary", headers=auth(city, "secops"))
    assert "2026 护网行动" in summary.text


@pytest.fixture
def city_space(session: Session, city: MiniCity) -> None:
    """The extranet plan's aggregate 10.64.0.0/12 and a cloud VM on 172.20.0.15."""
    from cloudctl.extranet.schemas import AggregateCreate
    from cloudctl.extranet.service import ipam
    from tests.factories import make_server

    ipam.create_aggregate(session, ADMIN, AggregateCreate(prefix="10.64.0.0/12", description="市电子政务外网"))
    server = make_server(session, "990100-D01", city.systems["own"])
    from cloudctl.compute.models import ServerAddress

    session.add(ServerAddress(server_id=server.id, ip="172.20.0.15", kind="fixed"))
    session.commit()


@pytest.mark.parametrize(("address", "reason"), [
    ("0.0.0.0/1", "broader than /16"), ("128.0.0.0/1", "broader than /16"), ("10.0.0.0/8", "broader than /16"),
    ("2001:db8::/32", "broader than /48"), ("127.0.0.1", "loopback"), ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback"), ("169.254.10.1", "link-local"), ("fe80::1", "link-local"),
    ("224.0.0.251", "multicast"), ("ff02::1", "multicast"), ("255.255.255.255", "reserved"),
    ("0.0.0.0", "this network"), ("10.64.3.7", "extranet plan"), ("10.70.0.0/16", "extranet plan"),
    ("172.20.0.15", "cloud server"), ("172.20.0.0/24", "cloud server"), ("not-an-ip", "not an address"),
])
def test_the_block_list_refuses_broad_special_and_internal_targets(client: TestClient, city: MiniCity,
                                                                    city_space: None, address: str,
                                                                    reason: str) -> None:
    answer = client.post("/api/v1/security/blocklist", headers=auth(city, "duty"),
                         json={"ip": address, "reason": "攻击源"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["field"] == "ip"
    assert reason in answer.json()["detail"]
    assert client.get("/api/v1/security/blocklist", headers=auth(city, "duty")).text == ""


def test_an_internal_block_is_an_administrators_override(client: TestClient, city: MiniCity, session: Session,
                                                         city_space: None) -> None:
    from cloudctl.core.audit import list_audit

    body = {"ip": "10.64.3.7", "reason": "失陷主机横向扫描，先行隔离", "override": True}
    for role in ("duty", "secops"):
        refused = client.post("/api/v1/security/blocklist", headers=auth(city, role), json=body)
        assert refused.status_code == 403, refused.text
        assert "only an administrator" in refused.json()["detail"]
    done = client.post("/api/v1/security/blocklist", headers=auth(city, "admin"), json=body)
    assert done.status_code == 201, done.text
    entries, _ = list_audit(session, ADMIN, entity="blocklist", entity_id="10.64.3.7")
    assert entries[0].after is not None
    assert entries[0].after["override"] is True
    assert entries[0].after["reason"] == "失陷主机横向扫描，先行隔离"
    # An outside address needs no override, and a /16 is as broad as one entry goes.
    assert client.post("/api/v1/security/blocklist", headers=auth(city, "duty"),
                       json={"ip": "198.51.0.0/16", "reason": "扫描源网段"}).status_code == 201


def test_the_block_step_blocks_through_the_same_guard(client: TestClient, city: MiniCity, city_space: None) -> None:
    headers = auth(city, "duty")
    alert_id = client.post("/api/v1/security/alerts", json=GENERIC, headers=headers).json()[0]["id"]
    url = f"/api/v1/security/alerts/{alert_id}"
    client.post(f"{url}/verdict", json={"verdict": "attack"}, headers=headers)
    broad = client.post(f"{url}/steps/block", headers=headers,
                        json={"status": "done", "evidence": "防火墙封禁", "block": ["203.0.113.7", "0.0.0.0/1"]})
    assert broad.status_code == 422
    assert broad.json()["errors"][0]["field"] == "ip"
    assert client.get("/api/v1/security/blocklist", headers=headers).text == ""
    done = client.post(f"{url}/steps/block", headers=headers,
                       json={"status": "done", "evidence": "防火墙封禁", "block": ["203.0.113.7"]})
    assert done.status_code == 200, done.text
    assert client.get("/api/v1/security/blocklist", headers=headers).text == "203.0.113.7\n"
    csv_text = client.get("/api/v1/security/blocklist?format=csv", headers=headers).text
    assert f",防火墙封禁,,{alert_id}," in csv_text
    elsewhere = client.post(f"{url}/steps/respond", headers=headers,
                            json={"status": "done", "evidence": "已响应", "block": ["198.51.100.1"]})
    assert elsewhere.status_code == 422
    assert elsewhere.json()["errors"][0]["field"] == "block"


def test_the_block_list_csv_neutralises_formulas(client: TestClient, city: MiniCity) -> None:
    headers = auth(city, "duty")
    assert client.post("/api/v1/security/blocklist", headers=headers,
                       json={"ip": "203.0.113.8", "reason": "=cmd|' /C calc'!A0"}).status_code == 201
    text = client.get("/api/v1/security/blocklist?format=csv", headers=headers)
    assert text.headers["content-type"].startswith("text/csv")
    assert "203.0.113.8,'=cmd|' /C calc'!A0," in text.text


def test_templates_are_versioned_chosen_at_creation_and_a_drill_takes_its_own_items(client: TestClient,
                                                                                     city: MiniCity) -> None:
    secops, dept = auth(city, "secops"), auth(city, "dept")
    listed = client.get("/api/v1/security/drills/templates", headers=dept).json()
    assert [(t["name"], t["version"]) for t in listed] == [("holiday", 0), ("national", 0), ("provincial", 0)]
    start = utcnow() + timedelta(days=20)
    body = {"name": "2027 国庆节假日保障", "organiser": "市委网信办", "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(days=7)).isoformat(), "units": ["990100-D01", "990100-D02"]}
    holiday = client.post("/api/v1/security/drills", headers=secops, json={**body, "template": "holiday"})
    assert holiday.status_code == 201, holiday.text
    assert (holiday.json()["template"], holiday.json()["template_version"]) == ("holiday", 0)
    items = client.get(f"/api/v1/security/drills/{holiday.json()['id']}/items", headers=dept).json()
    assert [i["key"] for i in items][-1] == "summary-report"
    assert len(items) == 6
    unknown = client.post("/api/v1/security/drills", headers=secops, json={**body, "template": "city-special"})
    assert (unknown.status_code, unknown.json()["errors"][0]["field"]) == (422, "template")

    # The city's own version of the national template; drills made before keep theirs.
    own = {"name": "national", "title": "国家护网行动（本市）", "items": [
        {"key": "asset-inventory", "title": "资产梳理", "phase": "prepare", "days": -10},
        {"key": "cloud-check", "title": "政务云租户安全检查", "phase": "self_check", "days": -3, "mandatory": False},
        {"key": "summary-report", "title": "护网总结报告", "phase": "summary", "days": 7}]}
    assert client.post("/api/v1/security/drills/templates", headers=dept, json=own).status_code == 403
    misplaced = client.post("/api/v1/security/drills/templates", headers=secops, json={
        **own, "items": [{"key": "summary-report", "title": "总结", "phase": "summary", "days": -1}]})
    assert misplaced.status_code == 422
    made = client.post("/api/v1/security/drills/templates", headers=secops, json=own)
    assert (made.status_code, made.json()["version"]) == (201, 1), made.text
    assert client.post("/api/v1/security/drills/templates", headers=secops, json=own).json()["version"] == 2
    latest = client.post("/api/v1/security/drills", headers=secops, json=body).json()
    assert (latest["template"], latest["template_version"]) == ("national", 2)
    assert len(client.get(f"/api/v1/security/drills/{latest['id']}/items", headers=secops).json()) == 6
    built_in = client.post("/api/v1/security/drills", headers=secops, json={**body, "template_version": 0}).json()
    assert len(client.get(f"/api/v1/security/drills/{built_in['id']}/items", headers=dept).json()) == 13

    # An item for one drill only, for each of its units, on its timeline.
    url = f"/api/v1/security/drills/{latest['id']}/items"
    extra = {"key": "hw-briefing", "title": "护网动员部署会", "phase": "prepare", "days": -5}
    assert client.post(url, headers=dept, json=extra).status_code == 403
    added = client.post(url, headers=secops, json=extra)
    assert added.status_code == 201, added.text
    assert {i["unit_code"] for i in added.json()} == {"990100-D01", "990100-D02"}
    due = datetime.fromisoformat(added.json()[0]["due_at"])
    assert utcnow() < due <= start - timedelta(days=5)
    assert client.post(url, headers=secops, json=extra).status_code == 409
    assert len(client.get(url, headers=dept).json()) == 4
    assert len(client.get(f"/api/v1/security/drills/{holiday.json()['id']}/items", headers=dept).json()) == 6


def test_evidence_files_on_items_in_the_attachment_store_verified_by_the_security_team(client: TestClient,
                                                                                        city: MiniCity) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    start = utcnow() + timedelta(days=15)
    drill = client.post("/api/v1/security/drills", headers=auth(city, "secops"), json={
        "name": "2027 护网行动", "organiser": "市委网信办", "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(days=14)).isoformat(), "units": ["990100-D01", "990100-D02"]}).json()["id"]
    items = client.get(f"/api/v1/security/drills/{drill}/items", headers=auth(city, "secops")).json()
    mine = next(i for i in items if i["unit_code"] == "990100-D01")
    theirs = next(i for i in items if i["unit_code"] == "990100-D02")
    dept = auth(city, "dept")
    upload = "/api/v1/attachments?entity=security_drill_item&entity_id={}&filename=资产台账截图.png"
    uploaded = client.post(upload.format(mine["id"]), content=png,
                           headers={**dept, "Content-Type": "application/octet-stream"})
    assert uploaded.status_code == 201, uploaded.text
    # Another unit's item is not there for the department; its files are not its evidence either.
    assert client.post(upload.format(theirs["id"]), content=png,
                       headers={**dept, "Content-Type": "application/octet-stream"}).status_code == 404
    other_file = client.post(upload.format(theirs["id"]), content=png, headers={
        **auth(city, "admin"), "Content-Type": "application/octet-stream"}).json()["id"]
    url = f"/api/v1/security/drills/{drill}/items/{mine['id']}"
    foreign = client.patch(url, headers=dept, json={"status": "done", "attachments": [other_file]})
    assert (foreign.status_code, foreign.json()["errors"][0]["field"]) == (422, "attachments")
    done = client.patch(url, headers=dept, json={"status": "done", "attachments": [uploaded.json()["id"]]})
    assert done.status_code == 200, done.text
    assert (done.json()["evidence_files"], done.json()["evidence"]) == ([uploaded.json()["id"]], None)
    assert client.post(f"{url}/verify", headers=dept).status_code == 403
    verified = client.post(f"{url}/verify", headers=auth(city, "secops"))
    assert verified.status_code == 200
    assert verified.json()["verifier"] is not None
    download = client.get(f"/api/v1/attachments/{uploaded.json()['id']}/content", headers=auth(city, "secops"))
    assert download.content == png
    listed = client.get(f"/api/v1/attachments?entity=security_drill_item&entity_id={mine['id']}", headers=dept)
    assert listed.json()["total"] == 1
