"""The exporter's families, read from both databases through the collector, and /metrics over HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session

from api.app import create_app
from api.deps import get_session
from cloudctl.compute import provisioning
from cloudctl.compute import service as compute
from cloudctl.compute.schemas import RequestCreate
from monitors.collector import CloudctlCollector
from tests.factories import ADMIN, MiniCity, build_mini_city


def _registry(session: Session) -> CollectorRegistry:
    @contextmanager
    def sessions() -> Iterator[Session]:
        yield session  # the test's own transaction: what it wrote is what the scrape reads

    registry = CollectorRegistry(auto_describe=False)
    registry.register(CloudctlCollector(sessions, refresh_seconds=0))
    return registry


def test_quota_capacity_and_request_families(session: Session) -> None:
    city: MiniCity = build_mini_city(session, with_cloud=True)
    compute.capacity(session, ADMIN, "test-cloud")  # the snapshot the exporter reads
    request = RequestCreate.model_validate({"business_system": city.systems["own"], "cloud": "test-cloud",
                                            "justification": "业务扩容需要", "items": [{"flavor": "c4m8", "count": 5}]})
    provisioning.submit_request(session, city.principals["dept_leader"], request)  # 20 vCPU: waits for ops
    registry = _registry(session)
    value = registry.get_sample_value
    assert value("cloudctl_quota_limits_vcpus_max", {"unit": "990100-D01", "cloud": "test-cloud"}) == 32
    assert value("cloudctl_quota_limits_memory_bytes_max", {"unit": "990100-D01", "cloud": "test-cloud"}) == 64 * 2**30
    assert value("cloudctl_quota_limits_vcpus_used", {"unit": "990100-D02", "cloud": "test-cloud"}) == 0
    assert value("cloudctl_cloud_vcpus", {"cloud": "test-cloud", "state": "capacity"}) == 128  # 64 × 2.0
    assert value("cloudctl_cloud_vcpus", {"cloud": "test-cloud", "state": "allocated"}) == 64
    assert value("cloudctl_cloud_memory_bytes", {"cloud": "test-cloud", "state": "capacity"}) == (524288 - 4096) * 2**20
    assert value("cloudctl_resource_requests", {"status": "submitted"}) == 1
    assert value("cloudctl_resource_requests", {"status": "fulfilled"}) == 0
    assert value("cloudctl_exporter_collect_failures_total") == 0
    assert value("cloudctl_exporter_last_success_timestamp_seconds") > 0


def test_cost_and_budget_families_per_unit_and_cloud(session: Session) -> None:
    from datetime import UTC, datetime, timedelta
    from decimal import Decimal

    from cloudctl.billing import budgets
    from cloudctl.billing import service as billing
    from cloudctl.billing.schemas import BudgetSet, TariffSet
    from cloudctl.core.models import beijing_today
    from cloudctl.org.models import UnitKind
    from tests.factories import make_server, make_unit

    city = build_mini_city(session, with_cloud=True)
    today = beijing_today()
    for resource, price in (("vcpu", "45"), ("ram_gib", "20"), ("disk_gib", "0.5")):
        billing.set_tariff(session, ADMIN, TariffSet(cloud="test-cloud", resource=resource, price=Decimal(price),
                                                     effective_from=today - timedelta(days=400)))
    long_ago = datetime(today.year - 1, 1, 1, tzinfo=UTC)
    make_server(session, "990100-D01", city.systems["own"], "c4m8").launched_at = long_ago
    # A village's server is counted under its county: labels stay bounded.
    make_unit(session, "990102001002", "桃园村", UnitKind.VILLAGE, "990102001")
    make_server(session, "990102001002", None, "c2m4").launched_at = long_ago
    budgets.set_budget(session, ADMIN, BudgetSet(unit="990100-D01", year=today.year, amount=Decimal(5000)))
    session.flush()
    value = _registry(session).get_sample_value
    assert value("cloudctl_cost_month_cny", {"unit": "990100-D01", "cloud": "test-cloud"}) == 360.0
    assert value("cloudctl_cost_month_cny", {"unit": "990102", "cloud": "test-cloud"}) == 190.0  # c2m4: 90 + 80 + 20
    assert value("cloudctl_cost_month_cny", {"unit": "990102001002", "cloud": "test-cloud"}) is None
    assert value("cloudctl_budget_cny", {"unit": "990100-D01"}) == 5000
    assert value("cloudctl_budget_committed_cny", {"unit": "990100-D01"}) == 12 * 360


def test_every_family_is_prefixed_and_follows_the_conventions(session: Session) -> None:
    build_mini_city(session, with_cloud=True)
    text = generate_latest(_registry(session)).decode()
    families = list(text_string_to_metric_families(text))
    assert families
    for family in families:
        assert family.name.startswith("cloudctl_"), family.name
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples)
        assert not family.name.endswith("_total") or family.type == "counter"
        for sample in family.samples:
            # Bounded labels only: no address, MAC or free text ever becomes a label.
            assert set(sample.labels) <= {"cloud", "state", "unit", "status", "kind", "level", "county", "rule",
                                          "zone", "le", "finding_severity", "sla", "stage"}, sample


def test_a_failing_database_is_counted_not_raised() -> None:
    @contextmanager
    def broken() -> Iterator[Session]:
        raise RuntimeError("the database went away")
        yield  # pragma: no cover

    registry = CollectorRegistry(auto_describe=False)
    registry.register(CloudctlCollector(broken, refresh_seconds=0))
    assert registry.get_sample_value("cloudctl_exporter_collect_failures_total") == 1


def test_metrics_over_http_with_request_counts(session: Session) -> None:
    city = build_mini_city(session, with_cloud=True)
    session.commit()

    @contextmanager
    def sessions() -> Iterator[Session]:
        yield session

    app = create_app(metrics_sessions=sessions)
    app.dependency_overrides[get_session] = lambda: session
    with TestClient(app) as client:
        assert client.get("/api/v1/units", headers={"Authorization": f"Bearer {city.tokens['ops']}"}).status_code == 200
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    names = {f.name for f in text_string_to_metric_families(response.text)}
    assert "cloudctl_api_http_requests" in names
    assert "cloudctl_quota_limits_vcpus_max" in names
    assert 'handler="/api/v1/units"' in response.text


def test_security_families(session: Session) -> None:
    from datetime import timedelta

    from cloudctl.core.models import utcnow
    from cloudctl.security.models import Finding, Verdict
    from cloudctl.security.scanners.base import ScanFinding, ScanReport
    from cloudctl.security.service import alerts, findings

    build_mini_city(session)
    critical = ScanFinding(scanner="nessus", plugin_id="1", title="t", severity="critical", ip="192.0.2.10", port=443,
                           protocol="tcp", service="www")
    report = ScanReport(scanner="nessus", started_at=None, finished_at=None, hosts=("192.0.2.10",),
                        file_sha256="a" * 64, findings=(critical,))
    findings.store_report(session, ADMIN, report, scope="s", source="s")
    for finding in session.query(Finding):
        finding.sla_deadline = utcnow().date() - timedelta(days=1)
    alert = alerts.receive(session, ADMIN, {"source": "ids", "source_ref": "1", "title": "scan", "severity": "high"})[0]
    alerts.set_verdict(session, ADMIN, alert.id, Verdict.ATTACK)
    alerts.receive(session, ADMIN, {"source": "ids", "source_ref": "2", "title": "probe"})
    alerts.block(session, ADMIN, "203.0.113.0/24", reason="扫描源")
    value = _registry(session).get_sample_value
    assert value("cloudctl_security_findings_open", {"finding_severity": "critical", "sla": "overdue", "unit": ""}) == 1
    assert value("cloudctl_security_alerts_open", {"stage": "block"}) == 1
    assert value("cloudctl_security_alerts_open", {"stage": "new"}) == 1
    assert value("cloudctl_security_blocked_addresses") == 1
    assert value("cloudctl_security_attack_open_since_timestamp_seconds") > 0


def test_incident_families_count_levels_reports_and_time_to_each_step(session: Session) -> None:
    from datetime import timedelta

    from cloudctl.core.models import utcnow
    from cloudctl.security.models import IncidentLevel, StepStatus, Verdict
    from cloudctl.security.service import alerts, incidents

    build_mini_city(session)
    opened = []
    for n, level in enumerate((IncidentLevel.MAJOR, IncidentLevel.GENERAL, IncidentLevel.LARGE)):
        alert = alerts.receive(session, ADMIN, {"source": "ids", "source_ref": f"i{n}", "title": "webshell",
                                                "severity": "high", "src_ip": f"203.0.113.{n + 1}"})[0]
        alerts.set_verdict(session, ADMIN, alert.id, Verdict.ATTACK)
        opened.append(incidents.open_incident(session, ADMIN, alert.id, incidents.IncidentOpen(level=level)))
    major, _, large = opened
    # The major one began two hours ago and was blocked after 40 minutes; its report is still owed (4 hours).
    major.opened_at -= timedelta(hours=2)
    incidents.update_step(session, ADMIN, major.id, "block", incidents.StepUpdate(status=StepStatus.DONE))
    major.steps[0].done_at = major.opened_at + timedelta(minutes=40)
    # The large one's deadline has passed with no report.
    large.report_due_at = utcnow() - timedelta(minutes=5)
    session.flush()
    value = _registry(session).get_sample_value
    assert value("cloudctl_security_incidents", {"level": "major", "status": "open"}) == 1
    assert value("cloudctl_security_incidents", {"level": "general", "status": "open"}) == 1
    # Every level and status is a figure, zero included: a city without such incidents shows 0, not "no data".
    assert value("cloudctl_security_incidents", {"level": "extraordinary", "status": "closed"}) == 0
    assert value("cloudctl_security_incident_reports", {"state": "overdue"}) == 1
    assert value("cloudctl_security_incident_reports", {"state": "late"}) == 0
    assert value("cloudctl_security_incident_step_seconds_count", {"stage": "block"}) == 1
    assert value("cloudctl_security_incident_step_seconds_sum", {"stage": "block"}) == 2400
    assert value("cloudctl_security_incident_step_seconds_bucket", {"stage": "block", "le": "900.0"}) == 0
    assert value("cloudctl_security_incident_step_seconds_bucket", {"stage": "block", "le": "3600.0"}) == 1
    assert value("cloudctl_security_incident_step_seconds_count", {"stage": "reply"}) == 0


def test_drill_families_count_items_and_name_the_late_units(session: Session) -> None:
    from datetime import timedelta

    from cloudctl.core.models import utcnow
    from cloudctl.security.models import DrillPhase, ItemStatus
    from cloudctl.security.service import drills

    build_mini_city(session)
    starts = utcnow() + timedelta(days=11)
    drill = drills.create_drill(session, ADMIN, drills.DrillCreate(
        name="2026 护网", organiser="市网信办", starts_at=starts, ends_at=starts + timedelta(days=14),
        units=["990100-D01", "990100-D02"]))
    assert not [i for i in drills.list_items(session, ADMIN, drill.id) if i.due_at < utcnow()]
    # Days pass: the first three items of each unit fall due.
    for item in drills.list_items(session, ADMIN, drill.id):
        if item.key in ("asset-inventory", "exposure-reduction", "weak-passwords"):
            item.due_at = utcnow() - timedelta(hours=1)
    late = [i for i in drills.list_items(session, ADMIN, drill.id) if i.due_at < utcnow()]
    assert {i.key for i in late} == {"asset-inventory", "exposure-reduction", "weak-passwords"}
    first = next(i for i in late if i.unit_code == "990100-D01")
    drills.update_item(session, ADMIN, drill.id, first.id, ItemStatus.DONE, evidence="台账已更新")
    of_drill = {"drill_id": str(drill.id), "drill": "2026 护网"}
    value = _registry(session).get_sample_value
    d01, d02 = {**of_drill, "unit": "990100-D01"}, {**of_drill, "unit": "990100-D02"}
    assert value("cloudctl_drill_checklist_items", {**d01, "phase": "prepare", "status": "done"}) == 1
    assert value("cloudctl_drill_checklist_items", {**d02, "phase": "prepare", "status": "done"}) is None
    assert value("cloudctl_drill_checklist_items", {**d01, "phase": "self_check", "status": "waiting"}) == 7
    assert value("cloudctl_drill_checklist_items", {**d02, "phase": "self_check", "status": "waiting"}) == 7
    assert value("cloudctl_drill_checklist_items_overdue", {**of_drill, "unit": "990100-D01"}) == 2
    assert value("cloudctl_drill_checklist_items_overdue", {**of_drill, "unit": "990100-D02"}) == 3
    # Eleven days before the start, the drill is in its phase on time; days after it, the preparation is behind.
    assert value("cloudctl_drill_phase_behind_seconds", {**of_drill, "phase": "prepare"}) == 0
    drill.starts_at = utcnow() - timedelta(hours=2)
    session.flush()
    behind = _registry(session).get_sample_value("cloudctl_drill_phase_behind_seconds",
                                                 {**of_drill, "phase": "prepare"})
    assert behind is not None
    assert 7200 <= behind < 7200 + 600
    drill.starts_at = starts
    session.flush()
    for phase in (DrillPhase.SELF_CHECK, DrillPhase.ON_DUTY, DrillPhase.SUMMARY):
        for item in drills.list_items(session, ADMIN, drill.id):
            if item.phase is not phase and item.status is ItemStatus.WAITING and item.mandatory:
                drills.waive_item(session, ADMIN, drill.id, item.id, drills.Waiver(reason="演练提前结束"))
        drills.advance_phase(session, ADMIN, drill.id, phase)
    value = _registry(session).get_sample_value
    assert value("cloudctl_drill_checklist_items_overdue", {**of_drill, "unit": "990100-D01"}) is None
    assert value("cloudctl_drill_phase_behind_seconds", {**of_drill, "phase": "summary"}) is None


def test_baseline_checks_per_unit_from_the_last_run(session: Session) -> None:
    from cloudctl.security.baseline import BaselineResult
    from cloudctl.security.models import Asset
    from cloudctl.security.scanners.base import ScanReport
    from cloudctl.security.service.findings import store_report
    from cloudctl.security.service.runs import record_baseline

    build_mini_city(session)
    hosts = ("192.0.2.21", "192.0.2.22")
    store_report(session, ADMIN, ScanReport(scanner="baseline", started_at=None, finished_at=None, hosts=hosts,
                                            file_sha256="b" * 64, findings=()), scope="mlps-baseline", source="t")

    def result(host: str, check: str, outcome: str) -> BaselineResult:
        return BaselineResult(check_id=check, title=check, host=host, outcome=outcome,  # type: ignore[arg-type]
                              evidence="", theme="身份鉴别")

    record_baseline(session, [result("192.0.2.21", "L3-CES1-01", "pass"), result("192.0.2.21", "L3-CES1-02", "fail"),
                              result("192.0.2.21", "L3-CES1-03", "notapplicable"),
                              result("192.0.2.22", "L3-CES1-01", "pass"), result("192.0.2.22", "L3-CES1-02", "error")],
                    {host: host for host in hosts})
    assets = {a.ip: (a.baseline_checks, a.baseline_passed) for a in session.query(Asset)}
    assert assets == {"192.0.2.21": (2, 1), "192.0.2.22": (2, 1)}
    value = _registry(session).get_sample_value
    # TEST-NET addresses are in no unit's block: the unit label is empty, as for findings.
    assert value("cloudctl_security_baseline_checks", {"unit": "", "outcome": "passed"}) == 2
    assert value("cloudctl_security_baseline_checks", {"unit": "", "outcome": "failed"}) == 2


# ---------------------------------------------------------------- the reading, off the scrape's path

class _Counting(CloudctlCollector):
    """The collector's refresh machinery over a stand-in reading: one gauge holding how many readings ran."""

    def __init__(self, **options: Any) -> None:
        @contextmanager
        def sessions() -> Iterator[Session]:
            yield cast(Session, None)

        super().__init__(sessions, **options)
        self.readings = 0
        self.release = threading.Event()
        self.release.set()
        self.reading = threading.Event()  # a reading has started and not finished

    def _families(self, session: Session) -> Iterator[Metric]:
        self.reading.set()
        try:
            assert self.release.wait(10), "the test never let the reading finish"
            self.readings += 1
        finally:
            self.reading.clear()
        yield GaugeMetricFamily("cloudctl_test_readings", "Readings so far.", value=self.readings)


def _scrape(collector: _Counting) -> float | None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry.get_sample_value("cloudctl_test_readings")


def test_a_scrape_is_answered_from_the_last_reading_and_refreshes_it_in_the_background() -> None:
    now = [1000.0]
    collector = _Counting(refresh_seconds=10, max_age_seconds=120, clock=lambda: now[0])
    assert _scrape(collector) == 1  # nothing read yet: the first scrape waits for a reading
    now[0] += 5
    assert _scrape(collector) == 1  # fresh: served as it is, nothing read
    assert collector.readings == 1
    now[0] += 10  # stale: served the last reading at once, the next one is read in the background
    collector.release.clear()
    assert _scrape(collector) == 1
    assert _scrape(collector) == 1  # a second scraper while the reading runs starts no other
    collector.release.set()
    collector.wait_for_refresh(10)
    assert collector.readings == 2
    assert _scrape(collector) == 2


def test_a_reading_too_old_is_taken_before_answering() -> None:
    now = [1000.0]
    collector = _Counting(refresh_seconds=10, max_age_seconds=60, clock=lambda: now[0])
    assert _scrape(collector) == 1
    now[0] += 61  # nobody scraped for a while: today's numbers, not a minute-old reading
    assert _scrape(collector) == 2
    assert collector.readings == 2


def test_refresh_seconds_zero_reads_on_every_scrape() -> None:
    collector = _Counting(refresh_seconds=0)
    assert [_scrape(collector) for _ in range(3)] == [1, 2, 3]


def test_a_slow_database_does_not_hold_the_scrape() -> None:
    now = [1000.0]
    collector = _Counting(refresh_seconds=10, clock=lambda: now[0])
    _scrape(collector)
    now[0] += 11
    collector.release.clear()  # the background reading hangs on the database
    assert _scrape(collector) == 1
    # Answered while the reading still hangs: had the scrape waited for it, the reading would be over by now.
    assert collector.reading.wait(10)
    assert collector.readings == 1
    collector.release.set()
    collector.wait_for_refresh(10)
