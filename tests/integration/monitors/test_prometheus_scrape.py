"""A real Prometheus (Debian's) scrapes the demo city from the API on loopback and evaluates the shipped rules."""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from api.app import create_app
from cloudctl.core.auth import system_principal
from cloudctl.core.cli_support import cli_state
from cloudctl.core.config import Settings, reset_settings
from cloudctl.core.db import dispose_engines, session_scope
from cloudctl.core.models import utcnow
from tests.support.appserver import serve
from tests.support.democity import DemoCityFiles
from tests.support.promserver import PrometheusServer

pytestmark = pytest.mark.slow
DATA = Path(__file__).resolve().parents[2] / "data" / "security"
RULES = Path(__file__).resolve().parents[3] / "monitors" / "rules"


@pytest.fixture(scope="module")
def demo_api(demo_city: DemoCityFiles, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    city = demo_city.copy_to(tmp_path_factory.mktemp("scrape"))
    reset_settings(Settings(data_dir=city.directory, database_url=f"sqlite:///{city.database}",
                            simulator_build_seconds=0))
    cli_state.schema_checked = False
    _a_day_of_security_work()
    with serve(create_app()) as base:
        yield base
    reset_settings()
    dispose_engines()


def _a_day_of_security_work() -> None:
    """What the security team does on a day of a drill's preparation, through the services, so the security
    dashboard has something to show: a Nessus report on two of a department's hosts (findings, a ticket), a
    baseline run, alerts judged, an address blocked, a duty period owing reports, a drill behind on its checklist."""
    from cloudctl.extranet.models import Prefix, PrefixStatus
    from cloudctl.security.baseline import BaselineResult
    from cloudctl.security.models import DutyKind, Verdict
    from cloudctl.security.service import alerts, drills, duty, findings, runs

    admin = system_principal()
    now = utcnow()
    with session_scope() as session:
        block = session.scalars(select(Prefix).where(Prefix.status == PrefixStatus.ACTIVE, Prefix.unit_id.is_not(None))
                                .order_by(Prefix.start).limit(1)).one()
        first, second = (str(ipaddress.IPv4Address(block.start + n)) for n in (10, 11))
        report = (DATA / "nessus-small.nessus").read_text(encoding="utf-8")
        report = report.replace("192.0.2.20", first).replace("198.51.100.7", second)
        findings.import_report(session, admin, report.encode(), "nessus", scope="2026-Q4 外网资产")
        assert findings.open_tickets(session, admin, scope="2026-Q4 外网资产")
        runs.record_baseline(session, [
            BaselineResult(check_id=f"L3-CES1-{n:02d}", title="", host=first, outcome="pass" if n % 4 else "fail",
                           evidence="", theme="") for n in range(1, 31)], {first: first})
        attack, _ = alerts.receive(session, admin, [
            {"source": "ids", "source_ref": "a-1", "title": "Web 攻击 SQL 注入", "severity": "high"},
            {"source": "ids", "source_ref": "a-2", "title": "端口扫描"}])
        alerts.set_verdict(session, admin, attack.id, Verdict.ATTACK)
        alerts.block(session, admin, "203.0.113.66", reason="SQL 注入来源")
        duty.create_period(session, admin, duty.PeriodCreate(
            name="护网值守", kind=DutyKind.DRILL, starts_at=now - timedelta(hours=3),
            ends_at=now + timedelta(days=20), every_hours=1, grace_minutes=15))
        drill = drills.create_drill(session, admin, drills.DrillCreate(
            name="2026 护网行动", organiser="市委网信办", starts_at=now + timedelta(days=11),
            ends_at=now + timedelta(days=25)))
        for item in drills.list_items(session, admin, drill.id)[:3]:
            item.due_at = now - timedelta(hours=1)  # days have passed: the first items are late


@pytest.fixture(scope="module")
def prometheus(demo_api: str) -> Iterator[PrometheusServer]:
    target = demo_api.removeprefix("http://")
    with PrometheusServer(scrape_configs=[{"job_name": "cloudctl", "scrape_interval": "1s", "scrape_timeout": "1s",
                                           "static_configs": [{"targets": [target]}]}],
                          rule_files=sorted(RULES.glob("*.yml")), evaluation_interval="1s") as server:
        yield server


def _wait(prometheus: PrometheusServer, promql: str, timeout: float = 30) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        result = prometheus.query(promql)
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


def _value(result: list[dict[str, Any]]) -> float:
    assert len(result) == 1, result
    return float(result[0]["value"][1])


def test_prometheus_scrapes_the_demo_city(prometheus: PrometheusServer, demo_api: str) -> None:
    import httpx

    assert _value(_wait(prometheus, 'up{job="cloudctl"} == 1')) == 1
    assert _value(_wait(prometheus, 'cloudctl_extranet_units_required{level="horizontal"}')) == 135
    assert _value(_wait(prometheus, 'cloudctl_extranet_units_connected{level="vertical"}')) == 1589
    assert _value(_wait(prometheus, 'cloudctl_cloud_vcpus{cloud="city-cloud",state="capacity"}')) == 6045
    servers = 'sum(cloudctl_reclaim_recommendations{state="open",kind=~"idle|oversized|zombie"})'
    assert _value(_wait(prometheus, servers)) == 85
    # Storage the demo left unattached for a month or more: recommendations of their own kind.
    assert _value(_wait(prometheus, 'sum(cloudctl_reclaim_recommendations{state="open",kind="volume_idle"})')) > 0
    assert _value(_wait(prometheus, "sum(cloudctl_reclaim_reclaimable_vcpus)")) > 300
    assert _value(_wait(prometheus, "sum(cloudctl_extranet_violations_open)")) == 16
    ratio = _value(_wait(prometheus, 'level:cloudctl_extranet_access:ratio{level="horizontal"}'))
    assert abs(ratio - 132 / 135) < 1e-9
    # Scrapes are not counted as API requests: once a request is in a scrape, no /metrics series is beside it.
    httpx.get(f"{demo_api}/healthz", timeout=10)
    assert _wait(prometheus, 'cloudctl_api_http_requests_total{handler="/healthz"}')
    assert prometheus.query('cloudctl_api_http_requests_total{handler="/metrics"}') == []


def test_rules_fire_on_demo_data(prometheus: PrometheusServer) -> None:
    # New violations (none an hour ago) fire at once; the access rate below target waits its six hours.
    firing = _wait(prometheus, 'ALERTS{alertname="CloudctlComplianceViolationsNew",alertstate="firing"}')
    assert {r["metric"]["rule"] for r in firing} == {str(n) for n in range(1, 13)}
    assert _wait(prometheus, 'ALERTS{alertname="Watchdog",alertstate="firing"}')
    pending = _wait(prometheus, 'ALERTS{alertname="CloudctlExtranetAccessBelowTarget",alertstate="pending"}')
    assert {r["metric"]["level"] for r in pending} == {"horizontal", "vertical"}


# ---------------------------------------------------------------- dashboards

DASHBOARDS = Path(__file__).resolve().parents[3] / "monitors" / "dashboards"


def _boards() -> list[dict[str, Any]]:
    return [json.loads(path.read_text(encoding="utf-8")) for path in sorted(DASHBOARDS.glob("*.json"))]


def test_dashboards_are_valid_and_current() -> None:
    from monitors.dashboards.build import DASHBOARDS as SPECS
    from monitors.dashboards.build import dashboard_json

    boards = _boards()
    assert len(boards) == len(SPECS) >= 4
    assert sorted(b["uid"] for b in boards) == sorted({b["uid"] for b in boards})  # unique
    current = {spec.uid: dashboard_json(spec) for spec in SPECS}
    for board in boards:
        assert board == current[board["uid"]], f"{board['uid']}.json is stale: run python -m monitors.dashboards.build"
        cells: set[tuple[int, int]] = set()
        for panel in board["panels"]:
            grid = panel["gridPos"]
            assert grid["x"] >= 0, panel["title"]
            assert grid["x"] + grid["w"] <= 24, panel["title"]
            covered = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                       for y in range(grid["y"], grid["y"] + grid["h"])}
            assert not covered & cells, f"{panel['title']} overlaps another panel"
            cells |= covered
            assert panel["targets"], panel["title"]


def test_every_panel_query_returns_data(prometheus: PrometheusServer, demo_api: str) -> None:
    import httpx

    # A few API requests, scraped twice, so the request-rate and latency panels have something to show.
    for _ in range(5):
        httpx.get(f"{demo_api}/healthz", timeout=10)
    time.sleep(2.5)
    for _ in range(5):
        httpx.get(f"{demo_api}/healthz", timeout=10)
    empty = []
    for board in _boards():
        for panel in board["panels"]:
            for target in panel["targets"]:
                if not _wait(prometheus, target["expr"], timeout=20):
                    empty.append(f"{board['uid']} / {panel['title']}: {target['expr']}")
    assert not empty, "\n".join(empty)
