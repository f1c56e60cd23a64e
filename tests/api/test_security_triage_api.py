"""Triage over HTTP on both databases: false positives that stay so, accepted risks that expire, ticket extensions.

The security team judges; a department reads its findings and tickets but judges neither.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloudctl.core.audit import AuditEntry
from cloudctl.core.models import beijing_today
from cloudctl.extranet.models import PrefixStatus, Zone
from cloudctl.extranet.schemas import AggregateCreate, PrefixCreate
from cloudctl.extranet.service import ipam
from cloudctl.security.models import Finding, Ticket, TicketStatus
from cloudctl.security.scanners.base import ScanFinding, ScanReport
from cloudctl.security.service import findings as service
from tests.api.conftest import auth
from tests.factories import ADMIN, MiniCity

OWN = "10.64.1.20"  # in 市公安局's block: the dept user's unit
FINDINGS = "/api/v1/security/findings"


def _item(port: int, plugin: str, severity: str = "high") -> ScanFinding:
    return ScanFinding(scanner="nessus", plugin_id=plugin, title=f"Plugin {plugin}", severity=severity,  # type: ignore[arg-type]
                       ip=OWN, port=port, protocol="tcp", service="www", evidence=f"seen on {port}")


def _report(sha: str, *items: ScanFinding) -> ScanReport:
    return ScanReport(scanner="nessus", started_at=None, finished_at=None, hosts=(OWN,), findings=items,
                      file_sha256=sha)


HIGH, CRITICAL = _item(443, "10001"), _item(22, "10002", "critical")


@pytest.fixture
def found(session: Session, city: MiniCity) -> dict[str, int]:
    """A high and a critical finding on 市公安局's host, by severity."""
    ipam.create_aggregate(session, ADMIN, AggregateCreate(prefix="10.64.0.0/12"))
    ipam.create_prefix(session, ADMIN, PrefixCreate(prefix="10.64.0.0/14", zone=Zone.PUBLIC,
                                                    status=PrefixStatus.CONTAINER))
    ipam.create_prefix(session, ADMIN, PrefixCreate(prefix="10.64.1.0/24", zone=Zone.PUBLIC, unit_code="990100-D01"))
    service.store_report(session, ADMIN, _report("1" * 64, HIGH, CRITICAL), scope="2026Q4", source="q4.nessus")
    session.commit()
    return {f.severity.value: f.id for f in session.scalars(select(Finding))}


def _open_ids(client: TestClient, city: MiniCity, **params: str) -> set[int]:
    page = client.get(FINDINGS, params=params, headers=auth(city, "secops"))
    assert page.status_code == 200, page.text
    return {f["id"] for f in page.json()["items"]}


def test_a_department_judges_nothing(client: TestClient, city: MiniCity, found: dict[str, int],
                                     session: Session) -> None:
    dept, finding = auth(city, "dept"), found["high"]
    until = (beijing_today() + timedelta(days=30)).isoformat()
    assert client.get(f"{FINDINGS}/{finding}", headers=dept).status_code == 200  # it reads its own
    assert client.post(f"{FINDINGS}/{finding}/false-positive", json={"reason": "不是漏洞"},
                       headers=dept).status_code == 403
    assert client.post(f"{FINDINGS}/{finding}/risk-acceptance", json={"reason": "业务需要", "until": until},
                       headers=dept).status_code == 403
    ticket = service.open_tickets(session, ADMIN, scope="2026Q4")[0]
    session.commit()
    to = (ticket.deadline + timedelta(days=10)).isoformat()
    assert client.post(f"/api/v1/security/tickets/{ticket.id}/extensions", json={"to": to, "reason": "需要采购设备"},
                       headers=dept).status_code == 403
    # Nor may ops, who only read security.
    assert client.post(f"{FINDINGS}/{finding}/false-positive", json={"reason": "不是漏洞"},
                       headers=auth(city, "ops")).status_code == 403


def test_a_false_positive_leaves_the_open_list_and_stays_out_after_a_rescan(
        client: TestClient, city: MiniCity, found: dict[str, int], session: Session) -> None:
    headers, finding = auth(city, "secops"), found["high"]
    short = client.post(f"{FINDINGS}/{finding}/false-positive", json={"reason": "no"}, headers=headers)
    assert short.status_code == 422
    assert short.json()["errors"][0]["field"] == "reason"
    marked = client.post(f"{FINDINGS}/{finding}/false-positive", json={"reason": "WAF 拦截页被误识别为漏洞"},
                         headers=headers)
    assert marked.status_code == 200, marked.text
    assert (marked.json()["false_positive"], marked.json()["active"]) == (True, False)
    assert finding not in _open_ids(client, city)
    again = client.post(f"{FINDINGS}/{finding}/false-positive", json={"reason": "再次标记"}, headers=headers)
    assert again.status_code == 409
    entry = session.scalar(select(AuditEntry).where(AuditEntry.entity == "security_finding",
                                                    AuditEntry.entity_id == str(finding)))
    assert entry is not None
    assert (entry.action, entry.after["reason"]) == ("false-positive", "WAF 拦截页被误识别为漏洞")  # type: ignore[index]

    # The next quarter's scan still reports it: it is not reactivated, and no ticket takes it.
    outcome = service.store_report(session, ADMIN, _report("2" * 64, HIGH, CRITICAL), scope="2026Q4",
                                   source="q4b.nessus")
    assert (outcome["created"], outcome["reactivated"], outcome["untouched"]) == (0, 0, 2)
    session.commit()
    assert finding not in _open_ids(client, city)
    row = client.get(f"{FINDINGS}/{finding}", headers=headers).json()
    assert (row["false_positive"], row["active"]) == (True, False)
    tickets = service.open_tickets(session, ADMIN, scope="2026Q4")
    assert finding not in {f.id for f in session.scalars(select(Finding).where(Finding.ticket_id == tickets[0].id))}
    session.commit()

    # Undone, it is live again: the last scan still reported it.
    undone = client.delete(f"{FINDINGS}/{finding}/false-positive", params={"reason": "复测确认为真实漏洞"},
                           headers=headers)
    assert undone.status_code == 200, undone.text
    assert (undone.json()["false_positive"], undone.json()["active"]) == (False, True)
    assert finding in _open_ids(client, city)


def test_accepted_risk_has_limits_and_expires(client: TestClient, city: MiniCity, found: dict[str, int],
                                             session: Session) -> None:
    # The service's "today" is the Beijing date (a UTC date is a day behind from 16:00 UTC).
    headers, today = auth(city, "secops"), beijing_today()
    high, critical = found["high"], found["critical"]

    def accept(finding: int, days: int) -> dict[str, object]:
        until = (today + timedelta(days=days)).isoformat()
        response = client.post(f"{FINDINGS}/{finding}/risk-acceptance", headers=headers,
                               json={"reason": "系统年底下线，已加访问控制", "until": until})
        return {"status": response.status_code, **response.json()}

    for finding, days in ((high, 0), (high, -3), (high, 366), (critical, 91)):
        refused = accept(finding, days)
        assert refused["status"] == 422, (finding, days, refused)
        assert refused["errors"][0]["field"] == "until"  # type: ignore[index]
    assert accept(critical, 90)["status"] == 200
    accepted = accept(high, 365)
    assert (accepted["status"], accepted["risk_accepted"]) == (200, True)
    assert accepted["risk_accepted_by"] == "api:secops-user"
    assert accepted["risk_accepted_until"] == (today + timedelta(days=365)).isoformat()

    # Both are past their SLA: accepted, neither is overdue.
    for row in session.scalars(select(Finding)):
        row.sla_deadline = today - timedelta(days=1)
    session.commit()
    assert _open_ids(client, city, overdue="true") == set()
    assert service.open_tickets(session, ADMIN, scope="2026Q4") == []

    # An acceptance past its date counts as none: overdue again, and ticketed.
    session.get(Finding, high).risk_accepted_until = today - timedelta(days=1)  # type: ignore[union-attr]
    session.commit()
    assert _open_ids(client, city, overdue="true") == {high}
    revoked = client.delete(f"{FINDINGS}/{critical}/risk-acceptance", params={"reason": "设备已到货，按期整改"},
                            headers=headers)
    assert revoked.status_code == 200, revoked.text
    assert (revoked.json()["risk_accepted"], revoked.json()["risk_accepted_until"]) == (False, None)
    assert _open_ids(client, city, overdue="true") == {high, critical}
    assert client.delete(f"{FINDINGS}/{critical}/risk-acceptance", params={"reason": "再次撤销"},
                         headers=headers).status_code == 409


def test_a_ticket_extension_is_kept_and_bounded(client: TestClient, city: MiniCity, found: dict[str, int],
                                               session: Session) -> None:
    ticket = service.open_tickets(session, ADMIN, scope="2026Q4")[0]
    session.commit()
    url, headers, deadline = f"/api/v1/security/tickets/{ticket.id}/extensions", auth(city, "secops"), ticket.deadline
    too_far = client.post(url, json={"to": (deadline + timedelta(days=91)).isoformat(), "reason": "需要采购设备"},
                          headers=headers)
    assert too_far.status_code == 422
    assert too_far.json()["errors"][0]["field"] == "to"
    earlier = client.post(url, json={"to": deadline.isoformat(), "reason": "需要采购设备"}, headers=headers)
    assert earlier.status_code == 422
    assert earlier.json()["errors"][0]["field"] == "to"
    to = deadline + timedelta(days=30)
    extended = client.post(url, json={"to": to.isoformat(), "reason": "需要采购设备"}, headers=headers)
    assert extended.status_code == 200, extended.text
    body = extended.json()
    assert body["deadline"] == to.isoformat()
    assert [(e["from"], e["to"], e["by"], e["reason"]) for e in body["extensions"]] == [
        (deadline.isoformat(), to.isoformat(), "api:secops-user", "需要采购设备")]
    second = client.post(url, json={"to": (to + timedelta(days=90)).isoformat(), "reason": "厂商补丁未发布"},
                         headers=auth(city, "admin"))
    assert second.status_code == 200, second.text
    assert len(second.json()["extensions"]) == 2
    session.expire_all()
    stored = session.get(Ticket, ticket.id)
    assert stored is not None
    assert len(stored.extensions) == 2
    # The department sees its ticket's new deadline.
    mine = client.get(f"/api/v1/security/tickets/{ticket.id}", headers=auth(city, "dept"))
    assert mine.json()["deadline"] == (to + timedelta(days=90)).isoformat()

    stored.status = TicketStatus.CLOSED
    session.commit()
    closed = client.post(url, json={"to": (to + timedelta(days=100)).isoformat(), "reason": "已关闭的单"},
                         headers=headers)
    assert closed.status_code == 409
    assert closed.json()["errors"][0]["field"] == "status"


def test_verified_and_out_of_scope_over_http(client: TestClient, city: MiniCity, found: dict[str, int],
                                             session: Session) -> None:
    headers, finding = auth(city, "secops"), found["critical"]
    verified = client.post(f"{FINDINGS}/{finding}/verified", json={"reason": "人工复测确认"}, headers=headers)
    assert verified.status_code == 200, verified.text
    assert verified.json()["verified"] is True
    assert client.post(f"{FINDINGS}/{finding}/verified", json={"reason": "人工复测确认"},
                       headers=headers).json()["errors"][0]["field"] == "verified"  # 409, named
    out = client.post(f"{FINDINGS}/{finding}/out-of-scope", json={"reason": "已移交省级单位管理"}, headers=headers)
    assert out.status_code == 200, out.text
    assert (out.json()["out_of_scope"], out.json()["active"]) == (True, True)
    assert client.post(f"{FINDINGS}/{finding}/out-of-scope", json={"reason": "不归我们"},
                       headers=auth(city, "dept")).status_code == 403
    entry = session.scalar(select(AuditEntry).where(AuditEntry.entity == "security_finding",
                                                    AuditEntry.entity_id == str(finding),
                                                    AuditEntry.action == "out-of-scope"))
    assert entry is not None
    assert entry.after["reason"] == "已移交省级单位管理"  # type: ignore[index]
    back = client.delete(f"{FINDINGS}/{finding}/out-of-scope", params={"reason": "收回本单位管理"}, headers=headers)
    assert back.status_code == 200, back.text
    assert back.json()["out_of_scope"] is False
    unverified = client.delete(f"{FINDINGS}/{finding}/verified", params={"reason": "复核有误"}, headers=headers)
    assert unverified.json()["verified"] is False
