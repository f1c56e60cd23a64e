"""NmapScanner against the real nmap (Debian's package) and two tiny TCP servers on 127.0.0.1.

One server greets like OpenSSH on Debian 12, the other answers HTTP with a Server header; nmap's service detection
must name them ssh and http. Nothing outside 127.0.0.1 is scanned.
"""

from __future__ import annotations

import contextlib
import shutil
import socketserver
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudctl.core.errors import InvalidInput, ProviderError
from cloudctl.security.scanners import NmapScanner, ScanFinding, ScanReport

pytestmark = pytest.mark.slow

SSH_BANNER = b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"
HTTP_BODY = b"<html><head><title>cloudctl scan target</title></head><body>ok</body></html>"


@pytest.fixture(scope="module", autouse=True)
def _nmap_installed() -> None:
    if shutil.which("nmap") is None:
        pytest.fail("nmap is not installed: ./scripts/test installs it (Debian package nmap), or run "
                    "`apt-get install nmap`", pytrace=False)


class _SSHLike(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.sendall(SSH_BANNER)
        self.request.settimeout(3)
        with contextlib.suppress(OSError):
            self.request.recv(1024)  # the client's banner; then hang up, as sshd does on garbage


class _HTTP(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        # Wait for the request as a web server does. Hanging up on a silent client within nmap's `tcpwrappedms`
        # (3 s, during its NULL probe) makes nmap call the port "tcpwrapped": a 3 s timeout here did, under load.
        self.request.settimeout(10)
        try:
            self.request.recv(4096)
        except OSError:
            return
        head = (b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nContent-Type: text/html\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(HTTP_BODY))
        with contextlib.suppress(OSError):
            self.request.sendall(head + HTTP_BODY)


class _Silent(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        time.sleep(20)  # accepts and never answers: service detection waits on it


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def _serve(handler: type[socketserver.BaseRequestHandler]) -> Iterator[int]:
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def ssh_port() -> Iterator[int]:
    yield from _serve(_SSHLike)


@pytest.fixture(scope="module")
def http_port() -> Iterator[int]:
    yield from _serve(_HTTP)


@pytest.fixture
def silent_port() -> Iterator[int]:
    yield from _serve(_Silent)


def _open_ports(report: ScanReport) -> dict[int, ScanFinding]:
    return {f.port: f for f in report.findings if f.plugin_id == "open-port" and f.port is not None}


def test_scan_finds_both_services_with_stable_fingerprints(ssh_port: int, http_port: int) -> None:
    progress: list[float] = []
    report = NmapScanner().scan(["127.0.0.1"], ports=f"{ssh_port},{http_port}", extra=["--script", "http-title"],
                                on_progress=progress.append)

    assert report.scanner == "nmap"
    assert report.hosts == ("127.0.0.1",)
    assert report.started_at is not None
    assert report.finished_at is not None
    found = _open_ports(report)
    assert set(found) == {ssh_port, http_port}
    ssh, http = found[ssh_port], found[http_port]
    assert (ssh.service, ssh.protocol, ssh.ip, ssh.severity) == ("ssh", "tcp", "127.0.0.1", "info")
    assert ssh.title.startswith(f"Open port {ssh_port}/tcp (ssh OpenSSH 9.2p1")
    assert http.service == "http"
    assert "nginx" in http.title
    title = [f for f in report.findings if f.plugin_id == "http-title"]
    assert [(f.port, f.evidence) for f in title] == [(http_port, "cloudctl scan target")]

    # The fingerprint is what a finding is, not when it was seen: the same as one built by hand, and as a re-scan's.
    expected = ScanFinding(scanner="nmap", plugin_id="open-port", title="", severity="info", ip="127.0.0.1",
                           port=ssh_port, protocol="tcp", service="ssh")
    assert ssh.fingerprint == expected.fingerprint
    again = NmapScanner().scan(["127.0.0.1"], ports=f"{ssh_port},{http_port}")
    assert {f.fingerprint for f in _open_ports(again).values()} == {ssh.fingerprint, http.fingerprint}

    assert progress, "on_progress was never called"
    assert progress[-1] == 100.0
    assert progress == sorted(progress)
    assert all(0.0 <= value <= 100.0 for value in progress)


def test_option_injection_target_is_refused_before_nmap_runs(tmp_path: Path) -> None:
    written = tmp_path / "owned.txt"
    for target in (f"-oN{written}", "-iL/etc/passwd", "--script=/tmp/evil.nse", "127.0.0.1 -oN x"):
        with pytest.raises(InvalidInput) as caught:
            NmapScanner().scan([target], ports="22")
        assert caught.value.field == "targets"
    with pytest.raises(InvalidInput) as caught:
        NmapScanner().scan(["127.0.0.1"], ports="22", extra=[f"-oN{written}"])
    assert caught.value.field == "extra"
    with pytest.raises(InvalidInput) as caught:
        NmapScanner().scan(["127.0.0.1"], ports="22;id")
    assert caught.value.field == "ports"
    assert not written.exists()


def test_missing_nmap_says_which_package_to_install() -> None:
    with pytest.raises(ProviderError, match="Debian package nmap"):
        NmapScanner("/nonexistent/nmap").scan(["127.0.0.1"], ports="22")


def test_nmap_failure_reports_its_stderr() -> None:
    with pytest.raises(ProviderError) as caught:
        NmapScanner().scan(["127.0.0.1"], ports="22", extra=["--no-such-nmap-option"])
    assert "no-such-nmap-option" in caught.value.detail
    assert caught.value.extra["returncode"] != 0


def test_timeout_stops_nmap(silent_port: int) -> None:
    started = time.monotonic()
    with pytest.raises(ProviderError, match="did not finish within 1s"):
        NmapScanner(timeout=1).scan(["127.0.0.1"], ports=str(silent_port))
    assert time.monotonic() - started < 10
