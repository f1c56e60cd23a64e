"""`cloudctl sec baseline` and `cloudctl sec scan` as jobs: failed checks and open ports become findings."""

from __future__ import annotations

import json
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

pytestmark = pytest.mark.slow


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


def test_baseline_failures_become_findings_and_a_rerun_changes_nothing(runner: CliRunner) -> None:
    inventory = f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    first = runner.invoke(app, ["sec", "baseline", "--inventory", inventory, "-o", "json"])
    assert first.exit_code == 0, first.output
    result = json.loads(first.output)
    assert result["checks"] >= 25
    failed = result["checks"] - result["passed"]
    findings = json.loads(runner.invoke(app, ["sec", "findings", "--scope", "mlps-baseline", "-o", "json"]).output)
    assert len(findings) == result["created"]
    assert all(f["plugin_id"].startswith("L3-CES1-") for f in findings)
    assert result["created"] <= failed  # not-applicable checks are not findings
    with session_scope() as session:
        host = session.scalars(select(Asset)).one()
        assert host.baseline_passed == result["passed"]
        assert result["passed"] + result["created"] <= host.baseline_checks <= result["checks"]
    again = json.loads(runner.invoke(app, ["sec", "baseline", "--inventory", inventory, "-o", "json"]).output)
    assert (again["created"], again["closed"], again["untouched"]) == (0, 0, result["created"])


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
    findings = json.loads(runner.invoke(app, ["sec", "findings", "--scope", "loopback", "-o", "json"]).output)
    assert any(f["port"] == port and f["ip"] == "127.0.0.1" for f in findings)
    refused = runner.invoke(app, ["sec", "scan", "-sL", "--scope", "x"])
    assert refused.exit_code != 0
