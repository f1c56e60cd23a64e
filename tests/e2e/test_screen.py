"""The big screen (值班大屏) in real headless Chromium: it loads, shows the demo city's numbers from the JSON
API, shows new numbers after the data changes, and a screenshot is kept as a test artifact."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from api.app import create_app
from cloudctl.cli import app as cli
from cloudctl.core.auth import system_principal
from cloudctl.core.cli_support import cli_state
from cloudctl.core.config import Settings, reset_settings
from cloudctl.core.db import dispose_engines, session_scope
from cloudctl.core.models import beijing_today, utcnow
from cloudctl.extranet.models import NetworkDevice, Prefix, PrefixStatus, Zone
from cloudctl.org.models import Unit
from cloudctl.security.models import Asset, DutyKind, Finding, IncidentLevel, ItemStatus, Severity, Verdict
from cloudctl.security.scanners.base import ScanFinding, ScanReport
from cloudctl.security.service import alerts, drills, duty, findings, incidents
from tests.factories import make_officers
from tests.support.appserver import serve
from tests.support.browser import artifact_dir, dump_dom, screenshot
from tests.support.democity import DemoCityFiles

pytestmark = pytest.mark.slow


@pytest.fixture
def demo(demo_city: DemoCityFiles, tmp_path: Path) -> Iterator[tuple[str, dict[str, str], CliRunner]]:
    """The demo city served for this test alone: what one test plants (a drill, findings), the next never sees."""
    city = demo_city.copy_to(tmp_path / "screen")
    reset_settings(Settings(data_dir=city.directory, database_url=f"sqlite:///{city.database}",
                            simulator_build_seconds=0))
    cli_state.schema_checked = False
    with serve(create_app()) as base:
        yield base, city.tokens, CliRunner()
    reset_settings()
    dispose_engines()


def _text(dom: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"[^>]*>(.*?)</', dom, re.S)
    assert match, element_id
    return re.sub(r"<[^>]+>", "", match.group(1)).strip()


def test_the_screen_shows_the_demo_city_and_follows_changes(demo: tuple[str, dict[str, str], CliRunner]) -> None:
    base, tokens, runner = demo
    url = f"{base}/screen?refresh=2#token={tokens['duty']}"
    dom = dump_dom(url)
    assert _text(dom, "h-rate") == "97.8%"
    assert _text(dom, "v-rate") == "98.0%"
    assert _text(dom, "violations") == "16"
    assert "已接入 132 / 应接入 135" in _text(dom, "h-detail")
    assert "市政务云中心" in dom
    assert _text(dom, "reclaim") != "—"
    assert _text(dom, "security") == "0 / 0"
    assert _text(dom, "error") == ""
    shot = screenshot(url, artifact_dir() / "big-screen.png", width=1600, height=900)
    assert shot.stat().st_size > 20_000
    # One of the three municipal units without a line gets one, and its switch answers: the screen follows.
    added = runner.invoke(cli, ["extranet", "link", "add", "--unit", "990100-M098", "--carrier", "中国电信",
                                "--line-type", "MSTP", "--bandwidth", "50"])
    assert added.exit_code == 0, added.output
    with session_scope() as session:
        unit = session.scalars(select(Unit).where(Unit.code == "990100-M098")).one()
        session.add(NetworkDevice(name="990100-m098-sw1", host="10.71.200.1", device_type="huawei_vrp",
                                  role="access", unit_id=unit.id, zone=Zone.PUBLIC, last_success_at=utcnow()))
    dom = dump_dom(url)
    assert _text(dom, "h-rate") == "98.5%"
    assert "已接入 133 / 应接入 135" in _text(dom, "h-detail")
    # The demo's drill two weeks ahead (seeded on the hour): counting down, nothing overdue before it starts.
    assert re.fullmatch(r"准备阶段 · 距开始 1[34]天\d+时\d+分", _text(dom, "drill")), _text(dom, "drill")
    assert "超期未完成 0" in _text(dom, "drill-detail")
    assert _text(dom, "officer") == "无排班"


def test_the_screen_counts_down_to_the_drill_and_names_the_officer(
        demo: tuple[str, dict[str, str], CliRunner]) -> None:
    base, tokens, _ = demo
    now = utcnow()
    with session_scope() as session:
        admin = system_principal()
        drill = drills.create_drill(session, admin, drills.DrillCreate(
            name="2026 护网演练", organiser="市委网信办", starts_at=now + timedelta(days=10, minutes=5),
            ends_at=now + timedelta(days=30), units=["990100-D01", "990100-D02"]))
        first, second = drills.list_items(session, admin, drill.id)[:2]
        drills.update_item(session, admin, drill.id, first.id, ItemStatus.DONE, evidence="资产台账 v3")
        second.due_at = now - timedelta(hours=1)  # days have passed: the next preparation item is late
        late_unit = session.scalars(select(Unit.code).where(Unit.id == second.unit_id)).one()
        period = duty.create_period(session, admin, duty.PeriodCreate(
            name="护网值守", kind=DutyKind.DRILL, starts_at=now - timedelta(hours=1), ends_at=now + timedelta(days=16),
            report_times=["09:00", "17:00"]))
        make_officers(session, "王值班", "李备班", "赵处长")
        duty.add_shift(session, admin, period.id, duty.ShiftCreate(
            starts_at=now - timedelta(hours=1), ends_at=now + timedelta(hours=11), officer="王值班", backup="李备班",
            leader="赵处长"))
        # A critical finding on a department's host, ticketed, and the ticket past its deadline.
        block = session.scalars(select(Prefix).where(Prefix.status == PrefixStatus.ACTIVE, Prefix.unit_id.is_not(None))
                                .order_by(Prefix.start).limit(1)).one()
        host = str(ipaddress.IPv4Address(block.start + 20))
        # The demo's own scan may have found critical ones on this unit already: ours is one more.
        critical_before = session.scalar(
            select(func.count()).select_from(Finding).join(Asset, Asset.id == Finding.asset_id)
            .where(Asset.unit_id == block.unit_id, Finding.severity == Severity.CRITICAL,
                   findings.open_now(beijing_today()))) or 0
        critical = ScanFinding(scanner="nessus", plugin_id="97833", title="MS17-010", severity="critical", ip=host,
                               port=445, protocol="tcp", service="cifs")
        findings.store_report(session, admin, ScanReport(scanner="nessus", started_at=None, finished_at=None,
                                                         hosts=(host,), file_sha256="e" * 64, findings=(critical,)),
                              scope="screen", source="test")
        ticket = findings.open_tickets(session, admin, scope="screen")[0]
        ticket.deadline = now.date() - timedelta(days=1)
        assert block.unit is not None
        chased = block.unit.code
        # An attack on that host becomes an incident of 重大 whose four hours to report have passed.
        alert = alerts.receive(session, admin, [{"source": "态势感知", "source_ref": "evt-screen", "severity": "high",
                                                 "title": "Webshell 上传", "src_ip": "203.0.113.7", "dst_ip": host}])[0]
        alerts.set_verdict(session, admin, alert.id, Verdict.ATTACK)
        incident = incidents.open_incident(session, admin, alert.id, incidents.IncidentOpen(level=IncidentLevel.MAJOR))
        incident.report_due_at = now - timedelta(minutes=5)
    dom = dump_dom(f"{base}/screen?refresh=2#token={tokens['duty']}")
    # Before the demo's own drill (two weeks ahead), this one is the next to start.
    assert re.fullmatch(r"准备阶段 · 距开始 10天0时[45]分", _text(dom, "drill")), _text(dom, "drill")
    # 13 items a unit, compressed into the ten days; one done, and one made late by hand.
    assert "检查项完成 1 / 26 · 超期未完成 1" in _text(dom, "drill-detail")
    # Per phase in the drill's order, and the unit with the late item first among those behind.
    phases = re.findall(r"<tr><td>(\S+阶段)</td>", dom)
    assert phases[:2] == ["准备阶段", "自查阶段"], phases
    behind = re.search(r'id="drill-behind"[^>]*>.*?进度落后单位.*?<tr><td>(990100-D0\d)</td>', dom, re.S)
    assert behind, dom[-3000:]
    assert behind.group(1) == late_unit
    assert _text(dom, "incidents-detail") == "处置中 1 · 报告超期 1"
    shown = re.search(rf'id="incidents".*?(<tr><td>#{incident.id}</td>.*?</tr>)', dom, re.S)
    assert shown, dom[-3000:]
    assert "重大" in shown.group(1)
    assert "Webshell 上传" in shown.group(1)
    assert re.search(r'class="num bad">报告时限 ', shown.group(1)), shown.group(1)
    assert _text(dom, "officer") == "王值班"
    assert "未签到 · 备班 李备班 · 带班领导 赵处长" in _text(dom, "duty-detail")
    assert "护网值守" in _text(dom, "duty-detail")
    row = re.search(rf'id="units".*?(<tr><td>{chased}</td>.*?</tr>)', dom, re.S)
    assert row, dom[-2000:]
    assert "超期整改单 1" in row.group(1)
    assert f"严重漏洞 {critical_before + 1}" in row.group(1)
    screenshot(f"{base}/screen#token={tokens['duty']}", artifact_dir() / "big-screen-drill.png", width=1600,
               height=900)


def test_the_summary_needs_a_token(demo: tuple[str, dict[str, str], CliRunner]) -> None:
    base, tokens, _ = demo
    assert httpx.get(f"{base}/api/v1/screen/summary", timeout=10).status_code == 401
    assert httpx.get(f"{base}/screen", timeout=10).status_code == 200  # the page holds no data
    answer = httpx.get(f"{base}/api/v1/screen/summary", headers={"Authorization": f"Bearer {tokens['auditor']}"},
                       timeout=10)
    assert answer.status_code == 200
    assert answer.json()["access"]["horizontal"]["required"] == 135


def test_a_department_screen_shows_its_own_figures_and_no_city_panel(
        demo: tuple[str, dict[str, str], CliRunner]) -> None:
    base, tokens, _ = demo
    summary = httpx.get(f"{base}/api/v1/screen/summary", headers={"Authorization": f"Bearer {tokens['dept-d01']}"},
                        timeout=10).json()
    assert summary["unit"] == "990100-D01"
    dom = dump_dom(f"{base}/screen?refresh=2#token={tokens['dept-d01']}")
    assert _text(dom, "error") == ""
    assert _text(dom, "title") == f"{summary['unit_name']} 值班大屏"
    # Its own figures (the alerts on its own assets too); the panels of the whole city (the duty officer) show a dash.
    assert _text(dom, "violations") == str(summary["violations_open"])
    security = summary["security"]
    assert _text(dom, "security") == f"{security['alerts_new']} / {security['attacks_open']}"
    assert _text(dom, "officer") == "—"
    assert "市政务云中心" not in dom
