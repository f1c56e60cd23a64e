"""The department's side of each loop, through the API: what it reads to act, progress with evidence, extension
requests the security team decides, alerts on its own assets (read-only), and filters it cannot mistype."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloudctl.core.models import beijing_today, utcnow
from cloudctl.extranet.models import Violation, ViolationStatus
from cloudctl.notify.models import Delivery, Event
from cloudctl.org.models import Unit
from cloudctl.security.scanners.base import ScanFinding, ScanReport
from cloudctl.security.service import alerts, findings
from cloudctl.security.service.assets import owner_in_plan
from tests.api.conftest import auth
from tests.factories import ADMIN, MiniCity

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
def ticket(session: Session, city: MiniCity, monkeypatch: pytest.MonkeyPatch) -> int:
    """A critical finding on a host of 市公安局, ticketed (the host's unit as the extranet plan would give it)."""
    d01 = session.scalars(select(Unit.id).where(Unit.code == "990100-D01")).one()
    monkeypatch.setattr("cloudctl.security.service.findings.owner_in_plan",
                        lambda s, ip: d01 if ip == "10.64.1.20" else owner_in_plan(s, ip))
    findings.store_report(session, ADMIN, ScanReport(
        scanner="nessus", started_at=None, finished_at=None, hosts=("10.64.1.20",), file_sha256="a" * 64,
        findings=(ScanFinding(scanner="nessus", plugin_id="97833", title="MS17-010", severity="critical",
                              ip="10.64.1.20", port=445, protocol="tcp", service="cifs",
                              description="SMBv1 远程代码执行漏洞", solution="安装 MS17-010 补丁并关闭 SMBv1"),)),
        scope="2026Q4", source="test")
    (opened,) = findings.open_tickets(session, ADMIN, scope="2026Q4")
    session.commit()
    return opened.id


def test_a_department_reports_progress_with_evidence_and_asks_for_more_time(
        client: TestClient, session: Session, city: MiniCity, ticket: int) -> None:
    dept, secops = auth(city, "dept"), auth(city, "secops")
    # What it needs to act: the findings of its ticket, with the scanner's description and solution.
    listed = client.get(f"/api/v1/security/findings?ticket={ticket}", headers=dept).json()
    assert listed["total"] == 1
    assert listed["items"][0]["solution"] == "安装 MS17-010 补丁并关闭 SMBv1"
    assert listed["items"][0]["description"] == "SMBv1 远程代码执行漏洞"
    typo = client.get(f"/api/v1/security/findings?tickte={ticket}", headers=dept)
    assert (typo.status_code, typo.json()["errors"][0]["field"]) == (422, "tickte")

    # Evidence: uploaded as the body, its type read from its content, kept by hash, downloadable by who sees it.
    uploaded = client.post(f"/api/v1/attachments?entity=security_ticket&entity_id={ticket}&filename=补丁截图.png",
                           content=PNG, headers={**dept, "Content-Type": "application/octet-stream"})
    assert uploaded.status_code == 201, uploaded.text
    evidence = uploaded.json()
    assert (evidence["media_type"], evidence["size"]) == ("image/png", len(PNG))
    exe = client.post(f"/api/v1/attachments?entity=security_ticket&entity_id={ticket}&filename=x.exe",
                      content=b"MZ\x90\x00\x03" + b"\x00" * 40, headers=dept)
    assert (exe.status_code, exe.json()["errors"][0]["field"]) == (422, "body")
    download = client.get(f"/api/v1/attachments/{evidence['id']}/content", headers=secops)
    assert (download.content, download.headers["content-type"]) == (PNG, "image/png")
    assert download.headers["content-disposition"].startswith("attachment;")
    assert client.get(f"/api/v1/attachments?entity=security_ticket&entity_id={ticket}",
                      headers=dept).json()["total"] == 1

    progress = client.post(f"/api/v1/security/tickets/{ticket}/progress", headers=dept, json={
        "status": "fixed", "note": "已安装补丁并关闭 SMBv1，请复测", "attachments": [evidence["id"]]})
    assert progress.status_code == 201, progress.text
    shown = client.get(f"/api/v1/security/tickets/{ticket}", headers=dept).json()
    assert (shown["progress"], shown["status"]) == ("fixed", "open")  # only a re-scan closes it
    assert client.post(f"/api/v1/security/tickets/{ticket}/progress", headers=dept,
                       json={"status": "fixed", "note": "附件", "attachments": [evidence["id"] + 99]}
                       ).status_code == 422

    # More time: the department asks, the security team decides, the deadline moves by the ticket's rule.
    deadline = beijing_today() + timedelta(days=7)
    wanted = (deadline + timedelta(days=30)).isoformat()
    asked = client.post(f"/api/v1/security/tickets/{ticket}/extension-requests", headers=dept,
                        json={"to": wanted, "reason": "等待厂商补丁"})
    assert asked.status_code == 201, asked.text
    assert client.post(f"/api/v1/security/tickets/{ticket}/extension-requests/{asked.json()['id']}/decision",
                       headers=dept, json={"grant": True}).status_code == 403
    granted = client.post(f"/api/v1/security/tickets/{ticket}/extension-requests/{asked.json()['id']}/decision",
                          headers=secops, json={"grant": True, "note": "同意延期"})
    assert granted.json()["status"] == "granted", granted.text
    assert client.get(f"/api/v1/security/tickets/{ticket}", headers=dept).json()["deadline"] == wanted
    updates = client.get(f"/api/v1/security/tickets/{ticket}/updates", headers=dept).json()
    assert [(u["kind"], u["status"]) for u in updates] == [("progress", "fixed"), ("extension", "granted")]
    assert updates[1]["decision_note"] == "同意延期"
    # Each step was an event for someone: the opening, the progress to the security team, the decision back.
    kinds = set(session.scalars(select(Event.kind)))
    assert {"security.ticket.opened", "security.ticket.progress", "security.extension.requested",
            "security.extension.decided"} <= kinds
    assert session.scalar(select(Delivery.id)) is None  # nobody subscribed and no channel: recorded, not sent


def test_alerts_on_its_own_assets_are_read_only(client: TestClient, session: Session, city: MiniCity,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    d01 = session.scalars(select(Unit.id).where(Unit.code == "990100-D01")).one()
    monkeypatch.setattr("cloudctl.security.service.alerts.owner", lambda s, ip: d01 if ip == "10.64.1.20" else None)
    alert = alerts.receive(session, ADMIN, {"source": "态势感知", "source_ref": "e1", "title": "Webshell",
                                            "severity": "high", "dst_ip": "10.64.1.20"})[0]
    elsewhere = alerts.receive(session, ADMIN, {"source": "态势感知", "source_ref": "e2", "title": "扫描",
                                                "severity": "low", "dst_ip": "203.0.113.9"})[0]
    session.commit()
    dept = auth(city, "dept")
    mine = client.get("/api/v1/security/alerts", headers=dept).json()
    assert [a["id"] for a in mine["items"]] == [alert.id]
    assert client.get(f"/api/v1/security/alerts/{elsewhere.id}", headers=dept).status_code == 404
    assert client.post(f"/api/v1/security/alerts/{alert.id}/verdict", headers=dept,
                       json={"verdict": "false_positive"}).status_code == 403
    assert client.get("/api/v1/security/blocklist", headers=dept).status_code == 403


def test_violation_progress_and_extension(client: TestClient, session: Session, city: MiniCity) -> None:
    d01 = session.scalars(select(Unit.id).where(Unit.code == "990100-D01")).one()
    row = Violation(rule=3, subject="10.64.1.77", unit_id=d01, status=ViolationStatus.OPEN, evidence={},
                    first_seen=utcnow(), last_seen=utcnow(),
                    deadline=beijing_today() + timedelta(days=15))
    session.add(row)
    session.commit()
    dept, ops = auth(city, "dept"), auth(city, "ops")
    reported = client.post(f"/api/v1/extranet/violations/{row.id}/progress", headers=dept,
                           json={"status": "in_progress", "note": "已通知终端使用人补办IP申请"})
    assert reported.status_code == 201, reported.text
    assert client.get(f"/api/v1/extranet/violations/{row.id}", headers=dept).json()["status"] == "rectifying"
    asked = client.post(f"/api/v1/extranet/violations/{row.id}/extension-requests", headers=dept,
                        json={"to": (beijing_today() + timedelta(days=40)).isoformat(), "reason": "设备采购中"})
    refused = client.post(f"/api/v1/extranet/violations/{row.id}/extension-requests/{asked.json()['id']}/decision",
                          headers=ops, json={"grant": False})
    assert (refused.status_code, refused.json()["errors"][0]["field"]) == (422, "note")
    refused = client.post(f"/api/v1/extranet/violations/{row.id}/extension-requests/{asked.json()['id']}/decision",
                          headers=ops, json={"grant": False, "note": "请按期整改"})
    assert refused.json()["status"] == "refused"
    assert client.get(f"/api/v1/extranet/violations/{row.id}", headers=dept).json()["deadline"] == (
        beijing_today() + timedelta(days=15)).isoformat()

