"""Findings on both databases: imports reconciled by fingerprint, SLA deadlines, tickets closed by re-scan."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloudctl.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from cloudctl.core.models import beijing_today
from cloudctl.extranet.models import PrefixStatus, Zone
from cloudctl.extranet.schemas import AggregateCreate, PrefixCreate
from cloudctl.extranet.service import ipam
from cloudctl.security.models import Finding, ScanImport, TicketStatus
from cloudctl.security.scanners.base import ScanFinding, ScanReport
from cloudctl.security.service import findings as service
from tests.factories import ADMIN, MiniCity, build_mini_city

DATA = Path(__file__).resolve().parents[2] / "data" / "security"
OWN, OTHER = "10.64.1.20", "10.64.2.30"  # 市公安局's and 市人社局's blocks


@pytest.fixture
def city(session: Session) -> MiniCity:
    city = build_mini_city(session)
    ipam.create_aggregate(session, ADMIN, AggregateCreate(prefix="10.64.0.0/12"))
    ipam.create_prefix(session, ADMIN, PrefixCreate(prefix="10.64.0.0/14", zone=Zone.PUBLIC,
                                                    status=PrefixStatus.CONTAINER))
    ipam.create_prefix(session, ADMIN, PrefixCreate(prefix="10.64.1.0/24", zone=Zone.PUBLIC, unit_code="990100-D01"))
    ipam.create_prefix(session, ADMIN, PrefixCreate(prefix="10.64.2.0/24", zone=Zone.PUBLIC, unit_code="990100-D02"))
    return city


def _finding(ip: str, port: int, plugin: str, severity: str = "high") -> ScanFinding:
    return ScanFinding(scanner="nessus", plugin_id=plugin, title=f"Plugin {plugin}", severity=severity,  # type: ignore[arg-type]
                       ip=ip, port=port, protocol="tcp", service="www", evidence=f"seen on {port}")


def _report(sha: str, *findings: ScanFinding, hosts: tuple[str, ...] = (OWN, OTHER)) -> ScanReport:
    return ScanReport(scanner="nessus", started_at=None, finished_at=None, hosts=hosts, findings=tuple(findings),
                      file_sha256=sha)


def test_reimports_sort_findings_into_created_untouched_closed_reactivated(session: Session, city: MiniCity) -> None:
    secops = city.principals["secops"]
    a, b, c = _finding(OWN, 443, "10001"), _finding(OWN, 80, "10002", "medium"), _finding(OTHER, 22, "10003")
    first = service.store_report(session, secops, _report("1" * 64, a, b, c), scope="2026Q4", source="q4.nessus")
    assert (first["created"], first["untouched"], first["closed"], first["reactivated"]) == (3, 0, 0, 0)
    # b is gone from the next scan of the same hosts; an unrelated host's absence closes nothing.
    second = service.store_report(session, secops, _report("2" * 64, a, c), scope="2026Q4", source="q4b.nessus")
    assert (second["created"], second["untouched"], second["closed"], second["reactivated"]) == (0, 2, 1, 0)
    third = service.store_report(session, secops, _report("3" * 64, a, b, hosts=(OWN,)), scope="2026Q4",
                                 source="q4c.nessus")
    assert (third["created"], third["untouched"], third["closed"], third["reactivated"]) == (0, 1, 0, 1)
    # c's host was not scanned this time: c stays active.
    _, total = service.list_findings(session, ADMIN, scope="2026Q4")
    assert total == 3
    # The same report into another scope is another set of findings.
    service.store_report(session, secops, _report("1" * 64, a), scope="2026Q4-other", source="x")
    assert session.scalar(select(func.count()).select_from(Finding)) == 4


def test_the_same_file_twice_changes_nothing(session: Session, city: MiniCity) -> None:
    data = (DATA / "nessus-small.nessus").read_bytes()
    first = service.import_report(session, ADMIN, data, "nessus", scope="carrier-2026-11", source="small.nessus")
    assert first["created"] > 0
    assert first["repeat"] is False
    again = service.import_report(session, ADMIN, data, "nessus", scope="carrier-2026-11", source="small.nessus")
    assert again["repeat"] is True
    assert (again["created"], again["closed"]) == (0, 0)
    assert session.scalar(select(func.count()).select_from(ScanImport)) == 1


@pytest.mark.parametrize("name", ["billion-laughs.xml", "external-entity.xml", "broken.xml"])
def test_hostile_or_broken_files_are_refused_and_change_nothing(session: Session, city: MiniCity,
                                                                name: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        service.import_report(session, ADMIN, (DATA / name).read_bytes(), "nmap", scope="x", source=name)
    assert caught.value.field == "file"
    assert session.scalar(select(func.count()).select_from(ScanImport)) == 0


def test_sla_deadlines_follow_severity(session: Session, city: MiniCity) -> None:
    service.store_report(session, ADMIN, _report("4" * 64, _finding(OWN, 443, "1", "critical"),
                                                 _finding(OWN, 80, "2", "low"), _finding(OWN, 81, "3", "info")),
                         scope="s", source="s")
    rows = {f.severity.value: f for f in service.list_findings(session, ADMIN, scope="s")[0]}
    # Days count from the Beijing date the finding was first seen (after 16:00 UTC that is the next day).
    assert rows["critical"].sla_deadline == beijing_today(rows["critical"].first_seen) + timedelta(days=7)
    assert rows["low"].sla_deadline == beijing_today(rows["low"].first_seen) + timedelta(days=120)
    assert rows["info"].sla_deadline is None


def test_a_ticket_closes_only_when_a_rescan_no_longer_shows_it(session: Session, city: MiniCity) -> None:
    secops = city.principals["secops"]
    a, b = _finding(OWN, 443, "10001", "critical"), _finding(OWN, 80, "10002", "medium")
    service.store_report(session, secops, _report("5" * 64, a, b, _finding(OTHER, 22, "10003")), scope="q",
                         source="q")
    tickets = service.open_tickets(session, secops, scope="q")
    assert sorted(t.unit_code for t in tickets) == ["990100-D01", "990100-D02"]
    own = next(t for t in tickets if t.unit_code == "990100-D01")
    assert own.deadline == min(f.sla_deadline for f in service.list_findings(session, ADMIN, unit="990100-D01")[0])
    service.store_report(session, secops, _report("6" * 64, b, hosts=(OWN,)), scope="q", source="q2")
    assert own.status is TicketStatus.OPEN  # b is still there
    outcome = service.store_report(session, secops, _report("7" * 64, hosts=(OWN,)), scope="q", source="q3")
    assert outcome["tickets_closed"] == 1
    assert own.status is TicketStatus.CLOSED
    assert own.closed_by_import_id == outcome["import_id"]


def test_a_department_sees_only_its_own_findings(session: Session, city: MiniCity) -> None:
    service.store_report(session, ADMIN, _report("8" * 64, _finding(OWN, 443, "1"), _finding(OTHER, 22, "2")),
                         scope="d", source="d")
    dept = city.principals["dept"]
    mine, total = service.list_findings(session, dept)
    assert total == 1
    assert mine[0].ip == OWN
    other = service.list_findings(session, ADMIN, unit="990100-D02")[0][0]
    with pytest.raises(NotFound):
        service.get_finding(session, dept, other.id)
    with pytest.raises(PermissionDenied):
        service.store_report(session, dept, _report("9" * 64), scope="d2", source="d")


def test_a_false_positive_follows_the_scans_without_coming_back(session: Session, city: MiniCity) -> None:
    secops = city.principals["secops"]
    a = _finding(OWN, 443, "10001")
    service.store_report(session, secops, _report("a" * 64, a, hosts=(OWN,)), scope="fp", source="fp")
    finding = service.list_findings(session, ADMIN, scope="fp")[0][0]
    service.mark_false_positive(session, secops, finding.id, "WAF 拦截页")
    again = service.store_report(session, secops, _report("b" * 64, a, hosts=(OWN,)), scope="fp", source="fp2")
    assert (again["reactivated"], again["untouched"]) == (0, 1)
    assert (finding.active, finding.false_positive, finding.mitigated_at) == (False, True, None)
    # Gone from a later scan of its host, then un-marked: it stays closed, not live.
    gone = service.store_report(session, secops, _report("c" * 64, hosts=(OWN,)), scope="fp", source="fp3")
    assert gone["closed"] == 0
    assert finding.mitigated_at is not None
    service.unmark_false_positive(session, secops, finding.id, "复测确认")
    assert (finding.active, finding.false_positive) == (False, False)
    with pytest.raises(PermissionDenied):
        service.mark_false_positive(session, city.principals["dept"], finding.id, "不是漏洞")


def test_today_is_the_beijing_date(session: Session, city: MiniCity, monkeypatch: pytest.MonkeyPatch) -> None:
    """At 2026-12-03 23:30 UTC it is already 12-04 in Beijing: deadlines and acceptances count from the 4th."""
    import cloudctl.core.models

    at = datetime(2026, 12, 3, 23, 30, tzinfo=UTC)
    assert (at.date(), beijing_today(at)) == (date(2026, 12, 3), date(2026, 12, 4))
    monkeypatch.setattr(cloudctl.core.models, "utcnow", lambda: at)
    monkeypatch.setattr(service, "utcnow", lambda: at)
    assert beijing_today() == date(2026, 12, 4)

    secops = city.principals["secops"]
    service.store_report(session, secops, _report("d" * 64, _finding(OWN, 443, "1"), _finding(OWN, 80, "2")),
                         scope="bj", source="bj")
    due, accepted = service.list_findings(session, ADMIN, scope="bj")[0]
    # A deadline of the 3rd has passed on the 4th; on the UTC date (still the 3rd) it would not have.
    due.sla_deadline = date(2026, 12, 3)
    assert [f.id for f in service.list_findings(session, ADMIN, scope="bj", overdue=True)[0]] == [due.id]
    # "After today" means after the 4th.
    with pytest.raises(InvalidInput) as caught:
        service.accept_risk(session, secops, accepted.id, "系统月底下线", date(2026, 12, 4))
    assert caught.value.field == "until"
    service.accept_risk(session, secops, accepted.id, "系统月底下线", date(2026, 12, 5))
    # An acceptance until the 3rd has run out on the 4th: the finding counts again.
    accepted.risk_accepted_until, accepted.sla_deadline = date(2026, 12, 3), date(2026, 12, 1)
    session.flush()
    assert {f.id for f in service.list_findings(session, ADMIN, scope="bj", overdue=True)[0]} == {due.id,
                                                                                                  accepted.id}
    assert session.scalar(select(func.count()).select_from(Finding).where(
        Finding.scope == "bj", service.accepted_now())) == 0
    assert session.scalar(select(func.count()).select_from(Finding).where(
        Finding.scope == "bj", service.accepted_now(date(2026, 12, 3)))) == 1


def test_verified_counts_the_same_and_out_of_scope_leaves_the_sla_tickets_and_counts(
        session: Session, city: MiniCity) -> None:
    secops = city.principals["secops"]
    a, b = _finding(OWN, 443, "20001"), _finding(OWN, 80, "20002")
    service.store_report(session, secops, _report("f" * 64, a, b, hosts=(OWN,)), scope="oos", source="oos")
    web, plain = sorted(service.list_findings(session, ADMIN, scope="oos")[0], key=lambda f: -(f.port or 0))

    def counted() -> set[int]:
        return set(session.scalars(select(Finding.id).where(Finding.scope == "oos", service.open_now())))

    service.set_verified(session, secops, web.id, "人工复核确认可利用")
    assert web.verified
    assert counted() == {web.id, plain.id}
    with pytest.raises(Conflict):
        service.set_verified(session, secops, web.id, "再次确认")
    ticket = service.open_tickets(session, secops, scope="oos")[0]
    assert {f.id for f in session.scalars(select(Finding).where(Finding.ticket_id == ticket.id))} == {web.id, plain.id}

    service.set_out_of_scope(session, secops, plain.id, "运营商扫到的非本单位主机")
    assert counted() == {web.id}
    for finding in (web, plain):
        finding.sla_deadline = beijing_today() - timedelta(days=1)
    session.flush()
    assert [f.id for f in service.list_findings(session, ADMIN, scope="oos", overdue=True)[0]] == [web.id]
    # The next scan no longer shows the in-scope one: the ticket closes, though the scan still shows the other.
    again = service.store_report(session, secops, _report("g" * 64, b, hosts=(OWN,)), scope="oos", source="oos2")
    assert (again["closed"], again["untouched"]) == (1, 1)
    assert (plain.active, plain.out_of_scope) == (True, True)  # the scans still follow it
    assert ticket.status is TicketStatus.CLOSED

    service.set_out_of_scope(session, secops, plain.id, "核实属本单位资产", out_of_scope=False)
    assert counted() == {plain.id}
    with pytest.raises(PermissionDenied):
        service.set_out_of_scope(session, city.principals["dept"], plain.id, "不归我们管")
    with pytest.raises(PermissionDenied):
        service.set_verified(session, city.principals["dept"], web.id, "我们确认了")
