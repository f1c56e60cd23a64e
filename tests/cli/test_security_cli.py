"""`cloudctl sec …`: imports print their counts; a hostile file is one clear line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cloudctl.cli import app
from cloudctl.core.cli_support import cli_state
from cloudctl.core.config import Settings, reset_settings
from cloudctl.core.db import dispose_engines
from cloudctl.core.models import BEIJING
from cloudctl.core.output import console

DATA = Path(__file__).resolve().parents[1] / "data" / "security"


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[CliRunner]:
    reset_settings(Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'c.db'}"))
    cli_state.schema_checked = False
    console.width = 200
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    yield runner
    reset_settings()
    dispose_engines()


def test_import_twice_and_refuse_hostile_xml(runner: CliRunner) -> None:
    args = ["sec", "import", str(DATA / "nmap-localhost.xml"), "--format", "nmap", "--scope", "loopback"]
    first = runner.invoke(app, [*args, "-o", "json"])
    assert first.exit_code == 0, first.output
    counts = json.loads(first.output)
    assert counts["created"] > 0
    assert counts["repeat"] is False
    again = runner.invoke(app, args)
    assert again.exit_code == 0
    assert "already imported: nothing changed" in again.output
    listed = json.loads(runner.invoke(app, ["sec", "findings", "-o", "json"]).output)
    assert len(listed) == counts["created"]
    hostile = runner.invoke(app, ["sec", "import", str(DATA / "billion-laughs.xml"), "--format", "nmap",
                                  "--scope", "x"])
    assert hostile.exit_code == 1
    assert hostile.output.strip().startswith("error: billion-laughs.xml: the file declares the entity 'lol'")
    assert len(hostile.output.strip().splitlines()) == 1


def test_drill_create_progress_and_report(demo: CliRunner, tmp_path: Path) -> None:
    created = demo.invoke(app, ["sec", "drill", "create", "--name", "2026 护网行动", "--organiser", "市网信办",
                                "--starts", "2026-12-01T09:00+08:00", "--ends", "2026-12-21T18:00+08:00"])
    assert created.exit_code == 0, created.output
    drill_id = created.output.split()[1]
    rows = json.loads(demo.invoke(app, ["sec", "drill", "progress", drill_id, "-o", "json"]).output)
    units = {r["unit_code"] for r in rows}
    assert [r["phase"] for r in rows if r["unit_code"] == rows[0]["unit_code"]] == [
        "prepare", "self_check", "on_duty", "summary"]
    assert len(units) > 1
    assert {r["phase"] for r in rows} >= {"prepare", "self_check"}
    assert all(r["done"] == 0 and r["total"] > 0 for r in rows)
    listed = json.loads(demo.invoke(app, ["sec", "drill", "list", "-o", "json"]).output)
    assert [d["phase"] for d in listed if str(d["id"]) == drill_id] == ["prepare"]
    early = demo.invoke(app, ["sec", "drill", "phase", drill_id, "on_duty"])
    assert early.exit_code == 1
    assert "next phase is self_check" in early.output
    # A drill of two units created two weeks ahead: nothing is overdue, the summary report is due after the end.
    two = sorted(units)[:2]
    ahead = datetime.now(BEIJING).replace(microsecond=0) + timedelta(days=14)
    created = demo.invoke(app, ["sec", "drill", "create", "--name", "2027 护网行动", "--organiser", "市网信办",
                                "--starts", ahead.isoformat(), "--ends", (ahead + timedelta(days=14)).isoformat(),
                                "--unit", two[0], "--unit", two[1]])
    assert created.exit_code == 0, created.output
    drill_id = created.output.split()[1]
    rows = json.loads(demo.invoke(app, ["sec", "drill", "progress", drill_id, "-o", "json"]).output)
    assert ({r["unit_code"] for r in rows}, sum(r["overdue"] for r in rows)) == (set(two), 0)
    items = json.loads(demo.invoke(app, ["sec", "drill", "items", drill_id, "-o", "json"]).output)
    report_due = next(datetime.fromisoformat(i["due_at"]) for i in items if i["key"] == "summary-report")
    assert report_due == ahead + timedelta(days=19)
    # One preparation item done is not the phase done: the drill holds, naming what is open.
    first = items[0]
    assert first["phase"] == "prepare"
    assert demo.invoke(app, ["sec", "drill", "item", drill_id, str(first["id"]), "done", "--evidence",
                             "资产台账 v3"]).exit_code == 0
    held = demo.invoke(app, ["sec", "drill", "phase", drill_id, "self_check"])
    assert held.exit_code == 1
    assert "required prepare" in held.output
    assert len(held.output.strip().splitlines()) == 1
    by_phase = json.loads(demo.invoke(app, ["sec", "drill", "progress", drill_id, "--by", "phase", "-o",
                                            "json"]).output)
    assert [r["phase"] for r in by_phase] == ["prepare", "self_check", "on_duty", "summary"]
    assert by_phase[0]["done"] == 1
    assert "准备阶段" in demo.invoke(app, ["sec", "drill", "progress", drill_id, "--by", "phase"]).output
    assert demo.invoke(app, ["sec", "drill", "progress", drill_id, "--by", "week"]).exit_code == 1
    # The security team waives the rest of the preparation with a reason; then the phase moves on.
    for item in json.loads(demo.invoke(app, ["sec", "drill", "items", drill_id, "-o", "json"]).output):
        if item["phase"] == "prepare" and item["status"] == "waiting":
            waived = demo.invoke(app, ["sec", "drill", "waive", drill_id, str(item["id"]), "--reason", "已纳入台账"])
            assert waived.exit_code == 0, waived.output
    assert "自查阶段" in demo.invoke(app, ["sec", "drill", "phase", drill_id, "self_check"]).output
    out = tmp_path / "summary.html"
    report = demo.invoke(app, ["sec", "drill", "report", drill_id, "--out", str(out)])
    assert report.exit_code == 0, report.output
    text = out.read_text(encoding="utf-8")
    assert "2027 护网行动" in text
    assert all(code in text for code in two)
    assert "值守报告" in text
    assert "攻击处置用时" in text
    book = tmp_path / "summary.xlsx"
    assert demo.invoke(app, ["sec", "drill", "report", drill_id, "--out", str(book)]).exit_code == 0
    assert book.read_bytes()[:2] == b"PK"
    figures = json.loads(demo.invoke(app, ["sec", "drill", "report", drill_id, "-o", "json"]).output)
    assert {r["unit_code"] for r in figures["checklist"]} == set(two)
    wrong = demo.invoke(app, ["sec", "drill", "report", drill_id, "--out", str(tmp_path / "summary.pdf")])
    assert (wrong.exit_code, len(wrong.output.strip().splitlines())) == (1, 1)
    naive = demo.invoke(app, ["sec", "drill", "create", "--name", "x drill", "--organiser", "市网信办",
                              "--starts", "2026-12-01T09:00", "--ends", "2026-12-21T18:00+08:00"])
    assert naive.exit_code == 1
    assert "zone" in naive.output
    assert len(naive.output.strip().splitlines()) == 1


def test_duty_period_roster_and_on_shift(demo: CliRunner) -> None:
    now = datetime.now(BEIJING).replace(second=0, microsecond=0)

    def at(hours: float) -> str:
        return (now + timedelta(hours=hours)).isoformat()

    created = demo.invoke(app, ["sec", "duty", "period-create", "--name", "2026 国庆节假日值守", "--kind", "holiday",
                                "--starts", at(-2), "--ends", at(48), "--report-time", "09:00",
                                "--report-time", "17:00", "--no-zero-reports"])
    assert created.exit_code == 0, created.output
    period_id = created.output.split()[2]
    periods = json.loads(demo.invoke(app, ["sec", "duty", "periods", "--active", "-o", "json"]).output)
    listed = next(p for p in periods if str(p["id"]) == period_id)
    assert (listed["kind"], listed["report_times"], listed["zero_reports"]) == ("holiday", ["09:00", "17:00"], False)

    # The roster names users: an unknown name is refused in one line naming the field.
    unknown = demo.invoke(app, ["sec", "duty", "shift-add", period_id, "--starts", at(-1), "--ends", at(1),
                                "--officer", "张伟"])
    assert unknown.exit_code == 1
    assert "officer" in unknown.output
    assert "no user '张伟'" in unknown.output
    assert len(unknown.output.strip().splitlines()) == 1
    for login, role, name in (("zhangwei", "duty", "张伟"), ("wangfang", "duty", "王芳"), ("lina", "duty", "李娜"),
                              ("zhaolei", "duty", "赵磊"), ("chenzr", "secops", "陈主任"), ("clerk", "ops", "钱科员")):
        made = demo.invoke(app, ["user", "create", login, "--role", role, "--display-name", name])
        assert made.exit_code == 0, made.output
    not_duty = demo.invoke(app, ["sec", "duty", "shift-add", period_id, "--starts", at(-1), "--ends", at(1),
                                 "--officer", "张伟", "--backup", "钱科员"])
    assert not_duty.exit_code == 1
    assert "backup" in not_duty.output
    assert "duty or secops" in not_duty.output
    added = demo.invoke(app, ["sec", "duty", "shift-add", period_id, "--starts", at(-1), "--ends", at(1),
                              "--officer", "张伟", "--backup", "王芳", "--leader", "陈主任"])
    assert added.exit_code == 0, added.output
    shift_id = added.output.split()[1]
    clash = demo.invoke(app, ["sec", "duty", "shift-add", period_id, "--starts", at(0), "--ends", at(4),
                              "--officer", "李娜"])
    assert clash.exit_code == 1
    assert "handover" in clash.output
    assert len(clash.output.strip().splitlines()) == 1

    # Another duty officer may not check in for 张伟; 张伟 may.
    assert demo.invoke(app, ["--as", "lina", "sec", "duty", "check-in", shift_id]).exit_code == 1
    checked = demo.invoke(app, ["--as", "zhangwei", "sec", "duty", "check-in", shift_id, "--note", "告警已清零"])
    assert checked.exit_code == 0, checked.output
    on_shift = json.loads(demo.invoke(app, ["sec", "duty", "on-shift", "-o", "json"]).output)
    assert (str(on_shift["id"]), on_shift["officer"], on_shift["handover_note"]) == (shift_id, "张伟", "告警已清零")
    assert on_shift["checked_in_at"] is not None
    assert "张伟" in demo.invoke(app, ["sec", "duty", "on-shift"]).output
    roster = json.loads(demo.invoke(app, ["sec", "duty", "shifts", period_id, "-o", "json"]).output)
    assert [s["officer"] for s in roster] == ["张伟"]

    bad = demo.invoke(app, ["sec", "duty", "shift-add", period_id, "--starts", "tomorrow 8am", "--ends", at(6),
                            "--officer", "赵磊"])
    assert bad.exit_code == 1
    assert bad.output.strip().startswith("error:")
    assert "starts_at" in bad.output
    assert len(bad.output.strip().splitlines()) == 1
    bad_time = demo.invoke(app, ["sec", "duty", "period-create", "--name", "x 值守", "--kind", "event",
                                 "--starts", at(0), "--ends", at(24), "--report-time", "25:00"])
    assert bad_time.exit_code == 1
    assert "25:00" in bad_time.output
    assert len(bad_time.output.strip().splitlines()) == 1
    # The old command still answers.
    assert demo.invoke(app, ["sec", "duty-missing"]).exit_code == 0


def test_demo_assets_on_cloud_servers_list_show_and_grade(demo: CliRunner) -> None:
    def run(*args: str) -> str:
        result = demo.invoke(app, list(args))
        assert result.exit_code == 0, result.output
        return result.output

    linked = json.loads(run("sec", "asset", "list", "--linked", "--limit", "1000", "-o", "json"))
    assert len(linked) == 60  # the demo scan's cloud hosts
    assert all(a["server_id"] and a["business_system"] and a["mlps_level"] in (1, 2, 3) for a in linked)
    assert {a["mlps_level_source"] for a in linked} == {"system", "manual"}  # one graded by hand
    terminals = json.loads(run("sec", "asset", "list", "--unlinked", "--limit", "1000", "-o", "json"))
    assert len(terminals) == 20
    assert all(a["server_id"] is None and a["mlps_level"] is None for a in terminals)

    asset = next(a for a in linked if a["mlps_level_source"] == "system")
    shown = run("sec", "asset", "show", str(asset["id"]))
    assert asset["server_name"] in shown
    assert asset["business_system"] in shown
    server = run("server", "show", str(asset["server_id"]))
    assert asset["ip"] in server
    by_ip = json.loads(run("server", "list", "--ip", asset["ip"], "-o", "json"))
    assert [s["id"] for s in by_ip] == [asset["server_id"]]
    assert by_ip[0]["addresses"] == [{"ip": asset["ip"], "kind": "fixed"}]

    dept = "dept-" + asset["unit_code"].rsplit("-", 1)[-1].lower()
    own = json.loads(run("--as", dept, "sec", "asset", "list", "--limit", "1000", "-o", "json"))
    assert own
    assert {a["unit_code"] for a in own} == {asset["unit_code"]}

    level = 2 if asset["mlps_level"] == 3 else 3
    assert f"MLPS level {level}" in run("sec", "asset", "level", str(asset["id"]), str(level), "--reason",
                                        "按实际承载业务定级")
    again = json.loads(run("sec", "asset", "show", str(asset["id"]), "-o", "json"))
    assert (again["mlps_level"], again["mlps_level_source"]) == (level, "manual")
    refused = demo.invoke(app, ["sec", "asset", "level", str(asset["id"]), "--reason", "没给级别"])
    assert refused.exit_code == 1
    findings = json.loads(run("sec", "findings", "--system", str(asset["business_system_id"]), "--limit", "1000",
                              "-o", "json"))
    assert findings
    assert {f["business_system_id"] for f in findings} == {asset["business_system_id"]}


def test_false_positive_and_a_bad_until(runner: CliRunner) -> None:
    imported = runner.invoke(app, ["sec", "import", str(DATA / "nmap-localhost.xml"), "--format", "nmap",
                                   "--scope", "loopback"])
    assert imported.exit_code == 0, imported.output
    listed = json.loads(runner.invoke(app, ["sec", "findings", "-o", "json"]).output)
    finding = str(listed[0]["id"])
    marked = runner.invoke(app, ["sec", "false-positive", finding, "--reason", "本机回环地址，不对外"])
    assert marked.exit_code == 0, marked.output
    assert "false positive" in marked.output
    after = json.loads(runner.invoke(app, ["sec", "findings", "-o", "json"]).output)
    assert finding not in {str(f["id"]) for f in after}
    undone = runner.invoke(app, ["sec", "false-positive", finding, "--reason", "复测确认", "--undo"])
    assert undone.exit_code == 0, undone.output
    assert "active" in undone.output
    for until in ("next week", "2020-01-01"):
        bad = runner.invoke(app, ["sec", "accept-risk", finding, "--reason", "业务需要", "--until", until])
        assert bad.exit_code == 1
        assert bad.output.strip().startswith("error:")
        assert "until" in bad.output
        assert len(bad.output.strip().splitlines()) == 1
    verified = runner.invoke(app, ["sec", "verify", finding, "--reason", "人工复测确认"])
    assert (verified.exit_code, "verified" in verified.output) == (0, True), verified.output
    twice = runner.invoke(app, ["sec", "verify", finding, "--reason", "人工复测确认"])
    assert twice.exit_code == 1
    assert twice.output.strip().startswith("error: verified:"), twice.output
    out = runner.invoke(app, ["sec", "out-of-scope", finding, "--reason", "回环地址不在本次范围"])
    assert (out.exit_code, "out of scope" in out.output) == (0, True), out.output
    back = runner.invoke(app, ["sec", "out-of-scope", finding, "--reason", "纳入范围", "--undo"])
    assert (back.exit_code, "in scope (active)" in back.output) == (0, True), back.output



def test_sec_block_goes_through_the_guard(runner: CliRunner) -> None:
    broad = runner.invoke(app, ["sec", "block", "0.0.0.0/1", "--reason", "攻击源"])
    assert broad.exit_code == 1
    assert "broader than /16" in broad.output
    assert len(broad.output.strip().splitlines()) == 1
    loopback = runner.invoke(app, ["sec", "block", "127.0.0.1", "--reason", "攻击源"])
    assert loopback.exit_code == 1
    assert "loopback" in loopback.output
    done = runner.invoke(app, ["sec", "block", "203.0.113.9", "--reason", "暴力破解"])
    assert done.exit_code == 0, done.output
    assert runner.invoke(app, ["sec", "blocklist"]).output == "203.0.113.9\n"


def test_an_attack_becomes_an_incident_worked_through_its_steps(runner: CliRunner) -> None:
    from cloudctl.core.auth import system_principal
    from cloudctl.core.db import session_scope
    from cloudctl.security.service import alerts

    with session_scope() as session:
        attack = alerts.receive(session, system_principal(), {
            "source": "态势感知", "source_ref": "evt-9", "title": "Webshell 上传", "severity": "critical",
            "src_ip": "203.0.113.77", "dst_ip": "192.0.2.10"})[0].id
    alert_id = str(attack)
    not_judged = runner.invoke(app, ["sec", "incident-open", alert_id, "--level", "major"])
    assert (not_judged.exit_code, len(not_judged.output.strip().splitlines())) == (1, 1)
    assert "judged an attack" in not_judged.output
    assert runner.invoke(app, ["sec", "verdict", alert_id, "attack"]).exit_code == 0
    bad = runner.invoke(app, ["sec", "incident-open", alert_id, "--level", "huge"])
    assert bad.exit_code != 0
    opened = runner.invoke(app, ["sec", "incident-open", alert_id, "--level", "major", "--operator-kind",
                                 "state_organ"])
    assert opened.exit_code == 0, opened.output
    assert "重大" in opened.output
    assert "report due" in opened.output
    incident_id = opened.output.split()[5]
    listed = json.loads(runner.invoke(app, ["sec", "incidents", "-o", "json"]).output)
    assert [(str(i["id"]), i["level"], i["source_ip"]) for i in listed] == [(incident_id, "major", "203.0.113.77")]
    # 阻断 blocks the source through the block list's guard, with an expiry.
    blocked = runner.invoke(app, ["sec", "incident-step", incident_id, "block", "--status", "done",
                                  "--note", "防火墙封禁"])
    assert blocked.exit_code == 0, blocked.output
    assert runner.invoke(app, ["sec", "blocklist"]).output == "203.0.113.77\n"
    refused = runner.invoke(app, ["sec", "incident-step", incident_id, "respond", "--status", "done"])
    assert (refused.exit_code, len(refused.output.strip().splitlines())) == (1, 1)
    assert "note" in refused.output
    for args in (["respond", "--status", "done", "--note", "已响应", "--owner", "王芳"],
                 ["investigate", "--status", "done", "--note", "已排查"], ["kill", "--status", "skipped"],
                 ["record", "--status", "done", "--filing-number", "BA-9", "--filing-recipient", "市网安支队"],
                 ["reply", "--status", "done", "--reply-to", "省委网信办", "--reply", "已处置"]):
        worked = runner.invoke(app, ["sec", "incident-step", incident_id, *args])
        assert worked.exit_code == 0, worked.output
    assert "已处置" in worked.output
    reported = runner.invoke(app, ["sec", "incident-report", incident_id, "--to", "市委网信办", "--content", "首报"])
    assert reported.exit_code == 0, reported.output
    shown = json.loads(runner.invoke(app, ["sec", "incident", incident_id, "-o", "json"]).output)
    assert shown["status"] == "closed"
    assert shown["reports"][0]["recipient"] == "市委网信办"
    assert shown["steps"][4]["filing_number"] == "BA-9"
    table = runner.invoke(app, ["sec", "incident", incident_id])
    assert table.exit_code == 0
    assert "阻断" in table.output
    assert "市委网信办" in table.output
    missing = runner.invoke(app, ["sec", "incident", "999"])
    assert (missing.exit_code, len(missing.output.strip().splitlines())) == (1, 1)


def test_drill_templates_from_a_file_and_an_item_for_one_drill(runner: CliRunner, tmp_path: Path) -> None:
    from cloudctl.core.db import session_scope
    from tests.factories import build_mini_city

    with session_scope() as session:
        build_mini_city(session)
    listed = json.loads(runner.invoke(app, ["sec", "drill", "templates", "-o", "json"]).output)
    assert {(t["name"], t["version"]) for t in listed} == {("national", 0), ("provincial", 0), ("holiday", 0)}
    own = tmp_path / "guard.yml"
    own.write_text("name: spring-festival\ntitle: 春节安全保障\nitems:\n"
                   "  - {key: duty-roster, title: 春节值班表, phase: prepare, days: -3}\n"
                   "  - {key: summary-report, title: 春节保障小结, phase: summary, days: 2}\n", encoding="utf-8")
    added = runner.invoke(app, ["sec", "drill", "template-add", str(own)])
    assert added.exit_code == 0, added.output
    assert "spring-festival version 1: 2 items" in added.output
    bad = tmp_path / "bad.yml"
    bad.write_text("name: x\ntitle: t\nitems: [{key: a, title: 总结, phase: summary, days: -2}]\n", encoding="utf-8")
    refused = runner.invoke(app, ["sec", "drill", "template-add", str(bad)])
    assert (refused.exit_code, len(refused.output.strip().splitlines())) == (1, 1)
    start = datetime.now(BEIJING).replace(microsecond=0) + timedelta(days=10)
    created = runner.invoke(app, ["sec", "drill", "create", "--name", "2027 春节保障", "--organiser", "市网信办",
                                  "--starts", start.isoformat(), "--ends", (start + timedelta(days=7)).isoformat(),
                                  "--unit", "990100-D01", "--template", "spring-festival"])
    assert created.exit_code == 0, created.output
    assert "spring-festival v1" in created.output
    drill_id = created.output.split()[1]
    item = runner.invoke(app, ["sec", "drill", "item-add", drill_id, "--key", "briefing", "--title", "保障动员会",
                               "--phase", "prepare", "--days", "-2"])
    assert item.exit_code == 0, item.output
    keys = [i["key"] for i in json.loads(runner.invoke(app, ["sec", "drill", "items", drill_id, "-o", "json"]).output)]
    assert keys == ["duty-roster", "briefing", "summary-report"]
    # Evidence files go to the attachment store; the security team verifies the item with them.
    shot = tmp_path / "值班表.png"
    shot.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    first = json.loads(runner.invoke(app, ["sec", "drill", "items", drill_id, "-o", "json"]).output)[0]
    done = runner.invoke(app, ["sec", "drill", "item", drill_id, str(first["id"]), "done", "--file", str(shot)])
    assert done.exit_code == 0, done.output
    exe = tmp_path / "x.exe"
    exe.write_bytes(b"MZ\x90\x00" + b"\x00" * 40)
    second = json.loads(runner.invoke(app, ["sec", "drill", "items", drill_id, "-o", "json"]).output)[1]
    refused = runner.invoke(app, ["sec", "drill", "item", drill_id, str(second["id"]), "done", "--file", str(exe)])
    assert (refused.exit_code, len(refused.output.strip().splitlines())) == (1, 1)
    verified = runner.invoke(app, ["sec", "drill", "verify", drill_id, str(first["id"])])
    assert verified.exit_code == 0, verified.output
    assert "with files" in verified.output
    shown = json.loads(runner.invoke(app, ["sec", "drill", "items", drill_id, "-o", "json"]).output)[0]
    assert shown["evidence_files"]
    assert shown["verifier"]
