"""A scan of more targets than a shard holds is split into shard jobs; the findings are imported once, in the
combine step, over every shard's hosts: a finding is closed only on a host some shard scanned."""

from __future__ import annotations

import json
import shutil
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from cloudctl.cli import app
from cloudctl.core.cli_support import cli_state
from cloudctl.core.config import Settings, reset_settings
from cloudctl.core.db import dispose_engines, session_scope
from cloudctl.core.errors import ProviderError
from cloudctl.core.jobs import Job, JobStatus
from cloudctl.security.models import ScanImport
from cloudctl.security.scanners.base import ScanFinding, ScanReport
from cloudctl.security.service import runs

pytestmark = pytest.mark.slow


@pytest.fixture
def runner(tmp_path: Path, fresh_url: str) -> Iterator[CliRunner]:
    reset_settings(Settings(data_dir=tmp_path, database_url=fresh_url, security_scan_shard_targets=1))
    cli_state.schema_checked = False
    yield CliRunner()
    reset_settings()
    dispose_engines()


class _Banner(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")


def _scan(runner: CliRunner, *args: str) -> dict[str, object]:
    scanned = runner.invoke(app, ["sec", "scan", *args, "--scope", "loopback", "-o", "json"])
    assert scanned.exit_code == 0, scanned.output
    return dict(json.loads(scanned.stdout))


def _last_scan() -> tuple[Job, list[Job]]:
    with session_scope() as session:
        parent = session.scalars(select(Job).where(Job.kind == runs.SCAN_JOB).order_by(Job.id.desc())).first()
        assert parent is not None
        return parent, list(session.scalars(select(Job).where(Job.parent_id == parent.id).order_by(Job.id)))


def test_a_sharded_scan_of_loopback_imports_once_and_closes_what_it_no_longer_sees(runner: CliRunner) -> None:
    if shutil.which("nmap") is None:
        pytest.fail("nmap is not installed (Debian package nmap)", pytrace=False)
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Banner)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    try:
        first = _scan(runner, "127.0.0.1", "127.0.0.2", "--ports", str(port))
    finally:
        server.shutdown()
        server.server_close()
    parent, shards = _last_scan()
    assert parent.status is JobStatus.SUCCEEDED
    assert [shard.params["targets"] for shard in shards] == [["127.0.0.1"], ["127.0.0.2"]]
    assert {shard.kind for shard in shards} == {runs.SCAN_SHARD_JOB}
    assert first["shards"] == 2
    assert first["targets"] == {"reached": {"127.0.0.1": ["127.0.0.1"], "127.0.0.2": ["127.0.0.2"]},
                                "unreachable": []}
    assert first["created"] >= 1
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(ScanImport)) == 1  # one import, not one per shard
    findings = json.loads(runner.invoke(app, ["sec", "findings", "--scope", "loopback", "-o", "json"]).output)
    assert any(f["port"] == port and f["ip"] == "127.0.0.1" for f in findings)

    # The port is closed now: the next sharded scan reached the host, so its open-port finding closes.
    again = _scan(runner, "127.0.0.1", "127.0.0.2", "--ports", str(port))
    assert again["closed"] >= 1
    assert again["created"] == 0
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(ScanImport)) == 2


class _OneDown:
    """nmap's part for two recorded hosts, one shard of which breaks: nothing here contacts them."""

    def __init__(self) -> None:
        self.broken = False

    def scan(self, targets: list[str], **_: object) -> ScanReport:
        if self.broken and targets == ["192.0.2.11"]:
            raise ProviderError("nmap: killed")
        findings = tuple(ScanFinding(scanner="nmap", plugin_id="open-port", title=f"Open port 22/tcp on {t}",
                                     severity="info", ip=t, port=22, protocol="tcp", service="ssh")
                         for t in targets)
        return ScanReport(scanner="nmap", started_at=None, finished_at=None, hosts=tuple(targets),
                          findings=findings, file_sha256=f"{targets}{self.broken}")


def test_a_failed_shard_closes_nothing_of_its_hosts(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    double = _OneDown()
    monkeypatch.setattr(runs, "scanner", lambda: double)
    assert _scan(runner, "192.0.2.10", "192.0.2.11")["created"] == 2
    double.broken = True
    # The finding of 192.0.2.10 would close if the first shard's report were imported alone; it is kept open, and
    # so is the one of 192.0.2.11, which no shard scanned.
    scanned = runner.invoke(app, ["sec", "scan", "192.0.2.10", "192.0.2.11", "--scope", "loopback", "-o", "json"])
    assert scanned.exit_code == 1
    out = json.loads(scanned.stdout)
    assert out["status"] == "partially_failed"
    assert out["targets"]["not_scanned"] == ["192.0.2.11"]
    assert "not scanned" in out["error"]
    assert (out["closed"], out["untouched"]) == (0, 1)
    findings = json.loads(runner.invoke(app, ["sec", "findings", "--scope", "loopback", "-o", "json"]).output)
    assert sorted(f["ip"] for f in findings) == ["192.0.2.10", "192.0.2.11"]
    parent, shards = _last_scan()
    assert parent.status is JobStatus.PARTIALLY_FAILED
    assert [shard.status for shard in shards] == [JobStatus.SUCCEEDED, JobStatus.FAILED]
