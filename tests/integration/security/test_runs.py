"""`cloudctl sec baseline` and `cloudctl sec scan` as jobs: failed checks and open ports become findings."""

from __future__ import annotations

import json
import socket
import socketserver
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from cloudctl.cli import app
from cloudctl.core.cli_support import cli_state
from cloudctl.core.config import Settings, reset_settings
from cloudctl.core.db import dispose_engines, session_scope
from cloudctl.security.models import Asset
from cloudctl.security.scanners.base import ScanReport
from cloudctl.security.scanners.parsers import parse_report
from cloudctl.security.service import runs

pytestmark = pytest.mark.slow
DATA = Path(__file__).resolve().parents[2] / "data" / "security"


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[CliRunner]:
    reset_settings(Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'c.db'}"))
    cli_state.schema_checked = False
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    yield runner
    reset_settings()
    dispose_engines()


class _Banner(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")


LOCAL = f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"


def _gone() -> str:
    """An inventory line for a host whose ssh port refuses at once (a closed port on loopback)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return (f"gone ansible_host=127.0.0.1 ansible_port={port} ansible_connection=ssh "
            "ansible_ssh_common_args='-o ConnectTimeout=5 -o StrictHostKeyChecking=no'\n")


def test_baseline_failures_become_findings_and_a_rerun_changes_nothing(runner: CliRunner) -> None:
    first = runner.invoke(app, ["sec", "baseline", "--inventory", LOCAL, "-o", "json"])
    assert first.exit_code == 0, first.output
    result = json.loads(first.output)
    assert result["status"] == "succeeded"
    assert result["hosts"] == {"reached": {"localhost": "127.0.0.1"}, "unreachable": {}, "failed": {}}
    assert result["checks"] >= 25
    failed = result["checks"] - result["passed"]
    findings = json.loads(runner.invoke(app, ["sec", "findings", "--scope", "mlps-baseline", "-o", "json"]).output)
    assert len(findings) == result["created"]
    assert all(f["plugin_id"].startswith("L3-CES1-") for f in findings)
    # Kept under the host's address, not its inventory name.
    assert {f["ip"] for f in findings} == {"127.0.0.1"}
    assert result["created"] <= failed  # not-applicable checks are not findings
    with session_scope() as session:
        host = session.scalars(select(Asset)).one()
        assert host.baseline_passed == result["passed"]
        assert result["passed"] + result["created"] <= host.baseline_checks <= result["checks"]
    again = json.loads(runner.invoke(app, ["sec", "baseline", "--inventory", LOCAL, "-o", "json"]).output)
    assert (again["created"], again["closed"], again["untouched"]) == (0, 0, result["created"])


def test_a_baseline_run_that_reached_no_host_fails_and_finds_nothing(runner: CliRunner) -> None:
    ran = runner.invoke(app, ["sec", "baseline", "--inventory", _gone(), "-o", "json"])
    assert ran.exit_code == 1
    out = json.loads(ran.stdout)
    assert out["status"] == "failed"
    assert list(out["hosts"]["unreachable"]) == ["gone"]
    assert (out["checks"], out["passed"], out["created"]) == (0, 0, 0)
    assert "gone" in out["error"]
    assert "unreachable" in out["error"]
    assert "failed" in ran.stderr
    # An unreachable host is the run's error, not a security finding.
    assert json.loads(runner.invoke(app, ["sec", "findings", "-o", "json"]).output) == []
    job = json.loads(runner.invoke(app, ["job", "show", str(out["job"]), "-o", "json"]).output)
    assert job["status"] == "failed"


def test_a_baseline_run_that_reached_some_hosts_is_partially_failed(runner: CliRunner) -> None:
    ran = runner.invoke(app, ["sec", "baseline", "--inventory", LOCAL + _gone()])
    assert ran.exit_code == 1
    assert "1 of 2 host(s) checked (1 unreachable, 0 failed)" in ran.stdout
    assert "partially_failed" in ran.stderr
    findings = json.loads(runner.invoke(app, ["sec", "findings", "-o", "json"]).output)
    assert findings
    assert {f["ip"] for f in findings} == {"127.0.0.1"}
    jobs = json.loads(runner.invoke(app, ["job", "list", "-o", "json"]).output)
    assert jobs[0]["status"] == "partially_failed"


def test_a_scan_of_loopback_becomes_findings(runner: CliRunner) -> None:
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Banner) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        port = server.server_address[1]
        try:
            scanned = runner.invoke(app, ["sec", "scan", "127.0.0.1", "--ports", str(port), "--scope", "loopback",
                                          "-o", "json"])
        finally:
            server.shutdown()
    assert scanned.exit_code == 0, scanned.output
    assert json.loads(scanned.output)["created"] >= 1
    assert json.loads(scanned.output)["targets"] == {"reached": {"127.0.0.1": ["127.0.0.1"]}, "unreachable": []}
    findings = json.loads(runner.invoke(app, ["sec", "findings", "--scope", "loopback", "-o", "json"]).output)
    assert any(f["port"] == port and f["ip"] == "127.0.0.1" for f in findings)
    refused = runner.invoke(app, ["sec", "scan", "-sL", "--scope", "x"])
    assert refused.exit_code != 0


class _Recorded:
    """nmap's part played by a report it wrote: the targets these tests name are never contacted."""

    def __init__(self, name: str) -> None:
        self.data = (DATA / name).read_bytes()

    def scan(self, targets: object, **_: object) -> ScanReport:
        return parse_report(self.data, "nmap")


@pytest.mark.parametrize(("report", "targets", "status", "unreachable"), [
    ("nmap-nothing-up.xml", ["192.0.2.20"], "failed", ["192.0.2.20"]),
    ("nmap-localhost.xml", ["127.0.0.1", "web01.example.gov.test", "192.0.2.11"], "partially_failed",
     ["192.0.2.11"]),
])
def test_a_scan_that_reached_no_host_fails_and_one_that_reached_some_is_partial(
        runner: CliRunner, monkeypatch: pytest.MonkeyPatch, report: str, targets: list[str], status: str,
        unreachable: list[str]) -> None:
    monkeypatch.setattr(runs, "scanner", lambda: _Recorded(report))
    scanned = runner.invoke(app, ["sec", "scan", *targets, "--scope", "recorded", "-o", "json"])
    assert scanned.exit_code == 1
    out = json.loads(scanned.stdout)
    assert (out["status"], out["targets"]["unreachable"]) == (status, unreachable)
    assert "reached no host" in out["error"]
    findings = json.loads(runner.invoke(app, ["sec", "findings", "--scope", "recorded", "-o", "json"]).output)
    assert {f["ip"] for f in findings} <= {"127.0.0.1", "192.0.2.10"}
    assert bool(findings) == (status == "partially_failed")
