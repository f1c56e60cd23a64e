"""Running nmap: ``nmap -sV -oX - --stats-every 2s -p<ports> [extra] -- <targets>``, read as it runs.

nmap is a subprocess (argv, never a shell). Targets are checked before it starts: addresses, networks and host names
only, so nothing a caller passes as a target can become an nmap option. ``--`` ends nmap's options as a second guard.

While it scans, nmap writes ``<taskprogress task="SYN Stealth Scan" percent="41.20" …/>`` into the XML on stdout
(and, in its normal output, "SYN Stealth Scan Timing: About 41.20% done" lines). Each task counts from 0 to 100 on
its own, so the percentages are placed on one scale by phase (host discovery, port scan, service detection,
scripts) and only ever move forward: ``on_progress`` receives 0..100, and 100.0 once the report is parsed.
"""

from __future__ import annotations

import ipaddress
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from typing import IO

from cloudctl.core.errors import InvalidInput, ProviderError
from cloudctl.security.scanners.base import ScanReport
from cloudctl.security.scanners.parsers import parse_report

__all__ = ["NmapScanner", "validate_ports", "validate_targets"]

_HOSTNAME = re.compile(r"(?=.{1,253}$)(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")
_NUMERIC = re.compile(r"[\d.-]+")
# nmap's -p syntax: numbers and ranges, optionally per protocol (T: U: S: P:), comma-separated: "22,80,8000-8100".
_PORT_ITEM = r"(?:[TUSP]:)?(?:\d{1,5}-\d{1,5}|\d{1,5}-|-\d{1,5}|\d{1,5}|-)"  # "-" alone: every port
_PORTS = re.compile(rf"{_PORT_ITEM}(?:,{_PORT_ITEM})*")
# Options that read or write files on this machine, or replace the XML this adapter reads: never from a caller.
_REFUSED_EXTRA = re.compile(
    r"-o[NXSGAM]?.*|-i[LR].*|--(resume|datadir|servicedb|versiondb|excludefile|script-args-file|stylesheet|"
    r"webxml|no-stylesheet|append-output|log-errors|stats-every|iflist|interactive)(=.*)?|--")
# A script or data file named by path would run whatever Lua sits there: scripts are chosen by name or category.
_PATH_LIKE = re.compile(r"(^|[=,])(/|\.{1,2}/|~)|\.(nse|lua)($|,)")
_TASK_PROGRESS = re.compile(rb'<taskprogress task="([^"]*)"[^>]*percent="([\d.]+)"')
_TIMING = re.compile(r"^(.+?) Timing: About ([\d.]+)% done")

# Where each phase sits on the 0..100 scale (in the order nmap runs them); an unknown task does not move the bar.
_PHASES: tuple[tuple[str, float, float], ...] = (
    ("ping scan", 0.0, 10.0), ("arp ping scan", 0.0, 10.0), ("parallel dns", 0.0, 10.0),
    ("syn stealth scan", 10.0, 60.0), ("connect scan", 10.0, 60.0), ("udp scan", 10.0, 60.0),
    ("sctp init scan", 10.0, 60.0), ("service scan", 60.0, 85.0), ("nse", 85.0, 99.0), ("script scan", 85.0, 99.0),
)
_STDERR_TAIL = 2000


def validate_targets(targets: Sequence[str]) -> list[str]:
    """``targets`` stripped, each an IPv4/IPv6 address, a CIDR network or a host name; otherwise InvalidInput."""
    if isinstance(targets, str | bytes):
        raise InvalidInput("targets must be a list of addresses, networks or host names, not one string",
                           field="targets")
    checked: list[str] = []
    for target in targets:
        text = target.strip() if isinstance(target, str) else ""
        if not text:
            raise InvalidInput(f"{target!r} is not a target: give an address, a network or a host name",
                               field="targets")
        if text.startswith("-"):
            raise InvalidInput(f"{text!r} starts with '-': targets cannot be nmap options", field="targets")
        if not _is_target(text):
            raise InvalidInput(f"{text!r} is not an IPv4/IPv6 address, a CIDR network (192.0.2.0/24) or a host name",
                               field="targets")
        checked.append(text)
    if not checked:
        raise InvalidInput("no targets: give at least one address, network or host name", field="targets")
    return checked


def _is_target(text: str) -> bool:
    try:
        if "/" in text:
            ipaddress.ip_network(text, strict=False)
        else:
            ipaddress.ip_address(text)
        return True
    except ValueError:
        # Digits, dots and dashes only is an nmap range ("192.0.2.1-20") or a mistyped address, not a host name.
        return (":" not in text and "/" not in text and _HOSTNAME.fullmatch(text) is not None
                and _NUMERIC.fullmatch(text) is None)


def _family(target: str) -> int | None:
    """4 or 6 for an address or network, None for a host name (nmap resolves it over IPv4 unless told -6)."""
    try:
        return ipaddress.ip_network(target, strict=False).version
    except ValueError:
        return None


def validate_ports(ports: str) -> str:
    """An nmap ``-p`` list ("22,80,443", "1-1024", "T:22,U:53"), spaces removed; otherwise InvalidInput."""
    text = "".join(ports.split()) if isinstance(ports, str) else ""
    if not _PORTS.fullmatch(text) or any(int(n) > 65535 for n in re.findall(r"\d+", text)):
        raise InvalidInput(f"{ports!r} is not an nmap port list such as 22,80,443 or 1-1024 (ports 0–65535)",
                           field="ports")
    return text


class NmapScanner:
    """Scans with the nmap at ``binary`` (found on PATH when None), giving up after ``timeout`` seconds."""

    def __init__(self, binary: str | None = None, *, timeout: float = 600) -> None:
        if not timeout > 0:
            raise InvalidInput(f"the timeout must be positive, not {timeout}", field="timeout")
        self.binary = binary
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"NmapScanner({self.binary or 'nmap'!r}, timeout={self.timeout:g})"

    def command(self, targets: Sequence[str], *, ports: str | None = None, extra: Sequence[str] = ()) -> list[str]:
        """The argv ``scan`` runs (after checking every part), with the binary resolved."""
        checked = validate_targets(targets)
        options = ["-sV", "-oX", "-", "--stats-every", "2s"]
        families = {_family(target) for target in checked} - {None}
        if families == {4, 6}:
            raise InvalidInput("nmap scans IPv4 or IPv6 in one run, not both: scan the IPv6 targets separately",
                               field="targets")
        if families == {6}:
            options.append("-6")
        if ports is not None:
            options.append(f"-p{validate_ports(ports)}")
        for option in extra:
            if not isinstance(option, str) or "\x00" in option or not option.strip():
                raise InvalidInput(f"{option!r} is not an nmap option", field="extra")
            if _REFUSED_EXTRA.fullmatch(option.strip()) or _PATH_LIKE.search(option.strip()):
                raise InvalidInput(f"{option!r} is refused: options that read or write files, or change the XML "
                                   f"output, are set by cloudctl", field="extra")
            options.append(option)
        return [self._binary(), *options, "--", *checked]

    def scan(self, targets: Sequence[str], *, ports: str | None = None, extra: Sequence[str] = (),
             on_progress: Callable[[float], None] | None = None) -> ScanReport:
        """Run nmap over ``targets`` and return what it found; progress (0..100) goes to ``on_progress``."""
        argv = self.command(targets, ports=ports, extra=extra)
        stdout, stderr = self._run(argv, on_progress)
        try:
            report = parse_report(stdout, "nmap")
        except InvalidInput as exc:
            raise ProviderError(f"nmap wrote XML that cannot be read ({exc.detail}); its stderr ends: "
                                f"{_tail(stderr) or '(empty)'}", field="nmap") from None
        if on_progress is not None:
            on_progress(100.0)
        return report

    # -- the process ---------------------------------------------------------------------------------------------

    def _binary(self) -> str:
        name = self.binary or "nmap"
        found = shutil.which(name)
        if found is None:
            raise ProviderError(f"nmap is not installed ({name!r} is not an executable on PATH): install the Debian "
                                f"package nmap (apt-get install nmap)", field="nmap")
        return found

    def _run(self, argv: list[str], on_progress: Callable[[float], None] | None) -> tuple[bytes, bytes]:
        progress: queue.Queue[float] = queue.Queue()
        tracker = _Progress(progress)
        out_chunks: list[bytes] = []
        err_chunks: list[bytes] = []
        try:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       start_new_session=True)  # its own process group, so a timeout ends it all
        except OSError as exc:
            raise ProviderError(f"nmap could not be started ({argv[0]}): {exc}", field="nmap") from None
        assert process.stdout is not None
        assert process.stderr is not None
        readers = [
            threading.Thread(target=_read, args=(process.stdout, out_chunks, tracker.stdout_line), daemon=True),
            threading.Thread(target=_read, args=(process.stderr, err_chunks, tracker.stderr_line), daemon=True),
        ]
        for reader in readers:
            reader.start()
        deadline = time.monotonic() + self.timeout
        try:
            while process.poll() is None:
                if time.monotonic() > deadline:
                    raise ProviderError(f"nmap did not finish within {self.timeout:g}s and was stopped: scan fewer "
                                        f"targets or ports, or allow a longer timeout", field="nmap")
                _deliver(progress, on_progress, wait=0.2)
            for reader in readers:
                reader.join(timeout=5)
            _deliver(progress, on_progress, wait=0)
        finally:
            if process.poll() is None:
                _stop(process)
        stderr = b"".join(err_chunks)
        if process.returncode != 0:
            raise ProviderError(f"nmap exited with status {process.returncode}: {_tail(stderr) or '(no stderr)'}",
                                field="nmap", returncode=process.returncode)
        return b"".join(out_chunks), stderr


class _Progress:
    """Turns nmap's per-task percentages into one forward-only figure, queued for the caller's thread."""

    def __init__(self, sink: queue.Queue[float]) -> None:
        self._sink = sink
        self._last = 0.0
        self._lock = threading.Lock()

    def stdout_line(self, line: bytes) -> None:
        for task, percent in _TASK_PROGRESS.findall(line):
            self._task(task.decode("utf-8", "replace"), float(percent))

    def stderr_line(self, line: bytes) -> None:
        match = _TIMING.match(line.decode("utf-8", "replace").strip())
        if match:
            self._task(match.group(1), float(match.group(2)))

    def _task(self, task: str, percent: float) -> None:
        name = task.lower()
        phase = next(((low, high) for prefix, low, high in _PHASES if name.startswith(prefix)), None)
        if phase is None:
            return
        low, high = phase
        overall = low + (high - low) * min(max(percent, 0.0), 100.0) / 100.0
        with self._lock:
            if overall > self._last:
                self._last = overall
                self._sink.put(overall)


def _read(stream: IO[bytes], chunks: list[bytes], on_line: Callable[[bytes], None]) -> None:
    for line in iter(stream.readline, b""):
        chunks.append(line)
        on_line(line)
    stream.close()


def _deliver(progress: queue.Queue[float], on_progress: Callable[[float], None] | None, *, wait: float) -> None:
    try:
        value = progress.get(timeout=wait) if wait > 0 else progress.get_nowait()
    except queue.Empty:
        return
    while True:  # hand over the latest figure only: the caller's callback need not see every step
        try:
            value = progress.get_nowait()
        except queue.Empty:
            break
    if on_progress is not None:
        on_progress(value)


def _stop(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)
    except ProcessLookupError:
        pass


def _tail(stderr: bytes) -> str:
    text = stderr.decode("utf-8", "replace").strip()
    return text if len(text) <= _STDERR_TAIL else "…" + text[-_STDERR_TAIL:]
