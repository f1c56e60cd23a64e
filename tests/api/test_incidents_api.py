"""Incidents over HTTP on both databases: an attack opens one with its level and reporting deadline, the six steps
are its tasks (阻断 blocks through the block list's guard), reports are records, a department sees its own."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloudctl.core.config import Settings, get_settings, reset_settings
from cloudctl.core.models import utcnow
from cloudctl.extranet.models import PrefixStatus, Zone
from cloudctl.extranet.schemas import AggregateCreate, PrefixCreate
from cloudctl.extranet.service import ipam
from cloudctl.notify.models import Event
from cloudctl.security.models import BlockedAddress
from tests.api.conftest import auth
from tests.factories import ADMIN, MiniCity

URL = "/api/v1/security"


@pytest.fixture
def attacks(client: TestClient, session: Session, city: MiniCity) -> dict[str, int]:
    """Alerts judged attacks: two on 市公安局's host (D01, the dept user's), one on 市人社局's (D02)."""
    ipam.create_aggregate(session, ADMIN, AggregateCreate(prefix="10.64.0.0/12"))
    ipam.create_prefix(session, ADMIN, PrefixCreate(prefix="10.64.0.0/14", zone=Zone.PUBLIC,
                                                    status=PrefixStatus.CONTAINER))
    ipam.create_prefix(session, ADMIN, PrefixCreate(prefix="10.64.1.0/24", zone=Zone.PUBLIC, unit_code="990100-D01"))
    ipam.create_prefix(session, ADMIN, PrefixCreate(prefix="10.64.2.0/24", zone=Zone.PUBLIC, unit_code="990100-D02"))
    session.commit()
    out = {}
    for name, dst, src in (("own", "10.64.1.20", "203.0.113.7"), ("own2", "10.64.1.21", "203.0.113.7"),
                           ("other", "10.64.2.20", "198.51.100.9"), ("fp", "10.64.1.22", "198.51.100.10")):
        alert = client.post(f"{URL}/alerts", headers=auth(city, "admin"), json={
            "source": "态势感知", "source_ref": f"evt-{name}", "title": f"Webshell 上传 {name}", "severity": "high",
            "src_ip": src, "dst_ip": dst}).json()[0]
        verdict = "false_positive" if name == "fp" else "attack"
        assert client.post(f"{URL}/alerts/{alert['id']}/verdict", headers=auth(city, "duty"),
                           json={"verdict": verdict}).status_code == 200
        out[name] = alert["id"]
    return out


def test_an_attack_opens_an_incident_with_its_reporting_deadline(client: TestClient, city: MiniCity,
                                                                  session: Session, attacks: dict[str, int]) -> None:
    duty = auth(city, "duty")
    before = utcnow()
    opened = client.post(f"{URL}/alerts/{attacks['own']}/incident", headers=duty,
                         json={"level": "large", "operator_kind": "cii"})
    assert opened.status_code == 201, opened.text
    incident = opened.json()
    assert (incident["level"], incident["level_label"], incident["unit_code"], incident["source_ip"]) == (
        "large", "较大", "990100-D01", "203.0.113.7")
    due = datetime.fromisoformat(incident["report_due_at"])
    assert before + timedelta(hours=1) <= due <= utcnow() + timedelta(hours=1)  # CII operator: within the hour
    assert [s["label"] for s in incident["steps"]] == ["阻断", "响应", "排查", "查杀", "备案", "回复"]
    assert incident["alert_ids"] == [attacks["own"]]
    # The deadline goes out through the outbox, urgent.
    event = session.scalar(select(Event).where(Event.kind == "security.incident.report_due"))
    assert event is not None
    assert (event.urgent, event.deadline) == (True, due)

    # A second attack from the same source joins it; a false positive opens nothing; twice is refused.
    joined = client.post(f"{URL}/alerts/{attacks['own2']}/incident", headers=duty, json={"join": incident["id"]})
    assert joined.status_code == 201, joined.text
    assert joined.json()["alert_ids"] == [attacks["own"], attacks["own2"]]
    assert client.get(f"{URL}/alerts/{attacks['own2']}", headers=duty).json()["incident_id"] == incident["id"]
    fp = client.post(f"{URL}/alerts/{attacks['fp']}/incident", headers=duty, json={"level": "general"})
    assert (fp.status_code, fp.json()["errors"][0]["field"]) == (409, "verdict")
    again = client.post(f"{URL}/alerts/{attacks['own']}/incident", headers=duty, json={"level": "major"})
    assert again.status_code == 409
    no_level = client.post(f"{URL}/alerts/{attacks['other']}/incident", headers=duty, json={})
    assert (no_level.status_code, no_level.json()["errors"][0]["field"]) == (422, "level")
    bad_level = client.post(f"{URL}/alerts/{attacks['other']}/incident", headers=duty, json={"level": "huge"})
    assert bad_level.status_code == 422
    # 一般: no report owed within hours; other operators have 4 hours for 较大 and above.
    general = client.post(f"{URL}/alerts/{attacks['other']}/incident", headers=duty, json={"level": "general"})
    assert general.json()["report_due_at"] is None

    # The report is a record: who, to whom, when, what; after the deadline it is late, and shows so.
    url = f"{URL}/incidents/{incident['id']}"
    future = client.post(f"{url}/reports", headers=duty, json={
        "recipient": "省委网信办", "content": "首报", "reported_at": (utcnow() + timedelta(hours=3)).isoformat()})
    assert (future.status_code, future.json()["errors"][0]["field"]) == (422, "reported_at")
    filed = client.post(f"{url}/reports", headers=duty, json={
        "recipient": "省委网信办", "content": "首报：市公安局门户网站遭 Webshell 上传。", "reporter": "张伟"})
    assert filed.status_code == 201, filed.text
    report = filed.json()["reports"][0]
    assert (report["reporter"], report["recipient"], report["late"]) == ("张伟", "省委网信办", False)
    assert filed.json()["report_overdue"] is False


def test_the_six_steps_block_through_the_guard_and_are_timed(client: TestClient, city: MiniCity,
                                                              attacks: dict[str, int]) -> None:
    secops = auth(city, "secops")
    incident = client.post(f"{URL}/alerts/{attacks['own']}/incident", headers=secops,
                           json={"level": "major", "operator_kind": "state_organ"}).json()
    url = f"{URL}/incidents/{incident['id']}"
    # A log entry and an owner on a step not yet done; steps go in order.
    logged = client.post(f"{url}/steps/respond", headers=secops, json={"note": "已通知市公安局", "owner": "王芳"})
    assert logged.status_code == 200, logged.text
    respond = logged.json()["steps"][1]
    assert (respond["owner"], respond["status"], respond["log"][0]["text"]) == ("王芳", "pending", "已通知市公安局")
    early = client.post(f"{url}/steps/respond", headers=secops, json={"status": "done", "note": "已响应"})
    assert (early.status_code, early.json()["errors"][0]["field"]) == (409, "step")
    # 阻断 goes through the block list's guard: the city's own address is refused, nothing half-written.
    inside = client.post(f"{url}/steps/block", headers=secops, json={"status": "done", "block_ip": "10.64.1.0/24"})
    assert (inside.status_code, inside.json()["errors"][0]["field"]) == (422, "ip")
    wide = client.post(f"{url}/steps/block", headers=secops, json={"status": "done", "block_ip": "203.0.0.0/8"})
    assert wide.status_code == 422
    expires = (utcnow() + timedelta(days=7)).isoformat()
    blocked = client.post(f"{url}/steps/block", headers=secops, json={
        "status": "done", "note": "防火墙封禁来源", "block_expires_at": expires})
    assert blocked.status_code == 200, blocked.text
    assert blocked.json()["steps"][0]["block_id"] is not None
    assert blocked.json()["steps"][0]["seconds"] >= 0
    assert client.get(f"{URL}/blocklist", headers=secops).text == "203.0.113.7\n"
    for step, body in (("respond", {"note": "已响应"}), ("investigate", {"note": "日志排查完毕"}),
                       ("kill", {})):
        status = "skipped" if step == "kill" else "done"
        done = client.post(f"{url}/steps/{step}", headers=secops, json={"status": status, **body})
        assert done.status_code == 200, done.text
    no_number = client.post(f"{url}/steps/record", headers=secops,
                            json={"status": "done", "filing_recipient": "市公安局网安支队"})
    assert (no_number.status_code, no_number.json()["errors"][0]["field"]) == (422, "filing_number")
    record = client.post(f"{url}/steps/record", headers=secops, json={
        "status": "done", "filing_number": "BA-2026-0012", "filing_recipient": "市公安局网安支队"})
    assert record.json()["steps"][4]["filing_number"] == "BA-2026-0012"
    no_reply = client.post(f"{url}/steps/reply", headers=secops, json={"status": "done", "reply_to": "省委网信办"})
    assert (no_reply.status_code, no_reply.json()["errors"][0]["field"]) == (422, "reply")
    replied = client.post(f"{url}/steps/reply", headers=secops, json={
        "status": "done", "reply_to": "省委网信办", "reply": "已处置完毕，来源已封禁。"})
    assert replied.status_code == 200
    assert (replied.json()["status"], replied.json()["closed_at"] is not None) == ("closed", True)
    assert all(s["seconds"] is not None for s in replied.json()["steps"] if s["status"] == "done")
    # Evidence files of the response go to the attachment store, on the incident.
    upload = f"/api/v1/attachments?entity=security_incident&entity_id={incident['id']}&filename=封禁截图.png"
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    assert client.post(upload, content=png, headers={**auth(city, "dept"),
                                                     "Content-Type": "application/octet-stream"}).status_code == 403
    kept = client.post(upload, content=png, headers={**secops, "Content-Type": "application/octet-stream"})
    assert kept.status_code == 201, kept.text
    assert client.get(url, headers=auth(city, "dept")).json()["evidence_files"] == [kept.json()["id"]]
    assert client.post(f"{url}/steps/reply", headers=secops, json={"note": "补充"}).status_code == 409


def test_a_department_sees_incidents_on_its_own_assets(client: TestClient, city: MiniCity,
                                                       attacks: dict[str, int]) -> None:
    secops = auth(city, "secops")
    own = client.post(f"{URL}/alerts/{attacks['own']}/incident", headers=secops, json={"level": "large"}).json()
    other = client.post(f"{URL}/alerts/{attacks['other']}/incident", headers=secops, json={"level": "large"}).json()
    dept = auth(city, "dept")
    page = client.get(f"{URL}/incidents", headers=dept).json()
    assert ([i["id"] for i in page["items"]], page["total"]) == ([own["id"]], 1)
    assert client.get(f"{URL}/incidents/{other['id']}", headers=dept).status_code == 404
    assert client.get(f"{URL}/incidents/{own['id']}", headers=dept).status_code == 200
    everyone = client.get(f"{URL}/incidents?level=large", headers=auth(city, "auditor")).json()
    assert everyone["total"] == 2
    assert client.post(f"{URL}/incidents/{own['id']}/steps/block", headers=dept,
                       json={"status": "done"}).status_code == 403


def test_the_deadlines_are_configuration(client: TestClient, city: MiniCity, attacks: dict[str, int]) -> None:
    reset_settings(Settings(**{**get_settings().model_dump(), "incident_report_hours_other": 6}))
    opened = client.post(f"{URL}/alerts/{attacks['own']}/incident", headers=auth(city, "secops"),
                         json={"level": "extraordinary"}).json()
    due = datetime.fromisoformat(opened["report_due_at"]) - datetime.fromisoformat(opened["opened_at"])
    assert due == timedelta(hours=6)


def test_a_late_report_is_visible(client: TestClient, city: MiniCity, session: Session,
                                  attacks: dict[str, int]) -> None:
    from cloudctl.security.models import Incident

    opened = client.post(f"{URL}/alerts/{attacks['own']}/incident", headers=auth(city, "secops"),
                         json={"level": "large"}).json()
    incident = session.get(Incident, opened["id"])
    assert incident is not None
    incident.opened_at -= timedelta(hours=5)
    incident.report_due_at = incident.opened_at + timedelta(hours=4)
    session.commit()
    overdue = client.get(f"{URL}/incidents/{opened['id']}", headers=auth(city, "dept")).json()
    assert overdue["report_overdue"] is True
    # The reminder sweep tells the duty officer and the security team once, urgently.
    from cloudctl.security.service.rectification import remind_incidents

    assert remind_incidents(session, utcnow()) == 1
    assert remind_incidents(session, utcnow()) == 0
    told = session.scalar(select(Event).where(Event.kind == "security.incident.report_overdue"))
    assert told is not None
    assert (told.urgent, told.entity_id) == (True, str(opened["id"]))
    session.commit()
    filed = client.post(f"{URL}/incidents/{opened['id']}/reports", headers=auth(city, "secops"),
                        json={"recipient": "省委网信办", "content": "补报"}).json()
    assert (filed["reports"][0]["late"], filed["report_overdue"]) == (True, True)
    assert session.scalar(select(BlockedAddress.id)) is None


def test_the_drill_summary_counts_alerts_attacks_blocks_and_duty_over_its_window(
        client: TestClient, city: MiniCity, session: Session, attacks: dict[str, int]) -> None:
    from io import BytesIO

    from openpyxl import load_workbook

    from cloudctl.security.scanners.base import ScanFinding, ScanReport
    from cloudctl.security.service import findings

    secops, dept = auth(city, "secops"), auth(city, "dept")
    now = utcnow()
    drill = client.post(f"{URL}/drills", headers=secops, json={
        "name": "=HYPERLINK(\"http://x\") 护网", "organiser": "市委网信办",
        "starts_at": (now - timedelta(days=1)).isoformat(), "ends_at": (now + timedelta(days=6)).isoformat(),
        "units": ["990100-D01", "990100-D02"]}).json()["id"]
    incident = client.post(f"{URL}/alerts/{attacks['own']}/incident", headers=secops, json={"level": "large"}).json()
    assert client.post(f"{URL}/incidents/{incident['id']}/steps/block", headers=secops,
                       json={"status": "done", "note": "封禁"}).status_code == 200
    findings.store_report(session, ADMIN, ScanReport(
        scanner="nessus", started_at=None, finished_at=None, hosts=("10.64.1.20",), file_sha256="7" * 64,
        findings=(ScanFinding(scanner="nessus", plugin_id="97833", title="MS17-010", severity="critical",
                              ip="10.64.1.20", port=445, protocol="tcp", service="cifs"),)), scope="hw", source="t")
    session.commit()
    period = client.post(f"{URL}/duty/periods", headers=secops, json={
        "name": "护网值守", "kind": "drill", "starts_at": (now - timedelta(hours=7)).isoformat(),
        "ends_at": (now + timedelta(days=6)).isoformat(), "every_hours": 2,
        "reporting_kinds": ["department"]}).json()["id"]
    assert client.post(f"{URL}/duty/periods/{period}/reports", headers=dept, json={"zero": True}).json()["late"]

    url = f"{URL}/drills/{drill}/summary"
    city_wide = client.get(f"{url}?format=json", headers=secops).json()
    assert (city_wide["alerts_total"], city_wide["attacks"], city_wide["incidents"]) == (4, 3, 1)
    assert {(a["source"], a["verdict"], a["count"]) for a in city_wide["alerts"]} == {
        ("态势感知", "attack", 3), ("态势感知", "false_positive", 1)}
    block = next(s for s in city_wide["steps"] if s["step"] == "block")
    assert (block["label"], block["count"]) == ("阻断", 1)
    assert (city_wide["blocks_added"], city_wide["findings_opened"], city_wide["findings_closed"]) == (1, 1, 0)
    assert [(d["unit_code"], d["on_time"], d["late"], d["missing"]) for d in city_wide["duty"]] == [
        ("990100-D01", 0, 1, 2), ("990100-D02", 0, 0, 3)]
    assert [r["unit_code"] for r in city_wide["checklist"]] == ["990100-D01", "990100-D02"]
    assert len(city_wide["behind"]) == 2
    # A department's summary is its own subtree's; the block list is not its to see.
    own = client.get(f"{url}?format=json", headers=dept).json()
    assert (own["alerts_total"], own["attacks"], own["blocks_added"]) == (3, 2, None)
    assert [d["unit_code"] for d in own["duty"]] == ["990100-D01"]
    assert [r["unit_code"] for r in own["checklist"]] == ["990100-D01"]

    page = client.get(url, headers=secops)
    assert page.headers["content-type"].startswith("text/html")
    assert "告警" in page.text
    assert "攻击" in page.text
    assert "封禁" in page.text
    assert "值守报告" in page.text
    assert "=HYPERLINK(&quot;" in page.text
    sheet = client.get(f"{url}?format=xlsx", headers=secops)
    assert sheet.headers["content-type"].startswith("application/vnd.openxmlformats")
    book = load_workbook(BytesIO(sheet.content))
    assert book.sheetnames == ["概况", "告警", "处置用时", "值守报告", "检查项", "落后单位"]
    overview = book["概况"]
    assert str(overview["A2"].value).startswith("'=HYPERLINK")
    assert overview["F2"].value == 4
    assert [c.value for c in book["值守报告"][2]] == ["990100-D01", "市公安局", 0, 1, 2]
    assert client.get(f"{url}?format=pdf", headers=secops).status_code == 422
