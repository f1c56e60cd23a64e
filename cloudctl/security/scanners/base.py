"""What every scanner adapter returns: findings with a stable fingerprint, gathered in one report per file or scan.

A finding is one thing a scanner says about one service (or one host): an open port, a script's output, a
vulnerability. Its ``fingerprint`` names *what* was found *where*, so that the same finding in next month's scan,
or in the same file imported twice, has the same fingerprint: it hashes the scanner family, the plugin, the
address, port, protocol and service, and never what changes between two runs (evidence, hostnames, times).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

__all__ = [
    "EVIDENCE_LIMIT",
    "SCANNERS",
    "SEVERITIES",
    "ScanFinding",
    "ScanReport",
    "Scanner",
    "ScannerName",
    "Severity",
    "Transport",
    "cves_in",
    "nessus_severity",
    "normalise_title",
    "severity_from_score",
    "trim_evidence",
]

ScannerName = Literal["nmap", "nessus", "gvm"]
SCANNERS: tuple[ScannerName, ...] = ("nmap", "nessus", "gvm")
Severity = Literal["critical", "high", "medium", "low", "info"]
SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium", "low", "info")  # worst first
Transport = Literal["tcp", "udp"]

# Plugin output can be a whole HTTP page or a certificate chain; a finding keeps the start of it, enough to show why.
EVIDENCE_LIMIT = 4096

# Names a scanner goes by → its family. Greenbone's scanner was OpenVAS; Tenable.sc and Tenable.io export .nessus.
_FAMILIES: dict[str, str] = {"openvas": "gvm", "greenbone": "gvm", "tenable": "nessus"}

# Nessus writes ReportItem/@severity as 0..4 (0 = informational "None" risk), the same scale in every version.
_NESSUS: dict[int, Severity] = {0: "info", 1: "low", 2: "medium", 3: "high", 4: "critical"}


def nessus_severity(value: int | str) -> Severity:
    """Nessus' ``severity`` attribute (0–4) → info … critical; anything else is a ValueError."""
    number = int(value)
    if number not in _NESSUS:
        raise ValueError(f"Nessus severity {value!r} is not one of 0, 1, 2, 3, 4")
    return _NESSUS[number]


def severity_from_score(score: float) -> Severity:
    """A CVSS base score (or GVM's severity score, which is one) → its band.

    The bands are CVSS v3.x's qualitative severity rating scale (FIRST, CVSS v3.1 specification §5, "Qualitative
    Severity Rating Scale"): None 0.0, Low 0.1–3.9, Medium 4.0–6.9, High 7.0–8.9, Critical 9.0–10.0. Greenbone uses the
    same bounds for its threat levels (GSA: High ≥ 7.0, Medium ≥ 4.0, Low > 0.0, Log 0.0; Critical ≥ 9.0 since
    Greenbone 24.10). Scores below 0 (GVM's -1 false positive, -2 error, -3 debug) are "info".
    """
    if score >= 9.0:
        return "critical"
    if score >= 7.0:
        return "high"
    if score >= 4.0:
        return "medium"
    if score > 0.0:
        return "low"
    return "info"


def normalise_title(title: str) -> str:
    """Lower-cased, whitespace collapsed: "OpenSSH  9.2p1 < 9.3 Multiple\\nVulnerabilities" → "openssh 9.2p1 < 9.3 …".

    Version numbers are kept on purpose: "OpenSSH < 9.3" and "OpenSSH < 9.6" are two findings.
    """
    return " ".join(title.lower().split())


def trim_evidence(text: str, limit: int = EVIDENCE_LIMIT) -> str:
    """``text`` stripped, cut to ``limit`` characters with a note of how much was left out."""
    text = text.strip()
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n… [{len(text) - limit} more characters not kept]"


def _canonical_ip(ip: str) -> str:
    """One spelling per address (IPv6 compressed, lower-case); a name that is not an address is lower-cased."""
    try:
        return ipaddress.ip_address(ip.strip()).compressed
    except ValueError:
        return ip.strip().lower()


_CVE = re.compile(r"CVE-\d{4}-\d{4,}", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ScanFinding:
    """One thing one scanner reported about one service (``port`` set) or one host (``port`` None)."""

    scanner: ScannerName
    plugin_id: str  # nmap: the NSE script id, or "open-port"; Nessus: pluginID; GVM: the NVT's OID
    title: str
    severity: Severity
    ip: str
    port: int | None
    protocol: Transport | None
    service: str | None
    cve: tuple[str, ...] = ()
    cvss: float | None = None
    description: str = ""
    solution: str = ""
    evidence: str = ""  # the plugin's output for this host, trimmed to EVIDENCE_LIMIT
    hostname: str | None = None

    @property
    def fingerprint(self) -> str:
        """sha256 hex of (scanner family, plugin id or normalised title, ip, port, protocol, service)."""
        family = _FAMILIES.get(self.scanner.lower(), self.scanner.lower())
        plugin = self.plugin_id.strip() or f"title:{normalise_title(self.title)}"
        parts = (family, plugin, _canonical_ip(self.ip), "" if self.port is None else str(self.port),
                 self.protocol or "", (self.service or "").strip().lower())
        # A unit separator cannot occur in any part, so ("a", "bc") and ("ab", "c") never hash alike.
        return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class ScanReport:
    """One scanner file (or one nmap run): when it ran, which hosts answered, what was found, and the file's sha256."""

    scanner: ScannerName
    started_at: datetime | None  # timezone-aware UTC, None when the file does not say
    finished_at: datetime | None
    hosts: tuple[str, ...]  # addresses of the hosts the report covers, in file order, each once
    findings: tuple[ScanFinding, ...]
    file_sha256: str
    # (address, name) for each host that was asked for by name (nmap's hostname of type "user").
    names: tuple[tuple[str, str], ...] = ()


@runtime_checkable
class Scanner(Protocol):
    """Something that scans targets now and reports, as nmap.NmapScanner does."""

    def scan(self, targets: Sequence[str], *, ports: str | None = None, extra: Sequence[str] = (),
             on_progress: Callable[[float], None] | None = None) -> ScanReport:
        ...


def cves_in(*texts: str | None) -> tuple[str, ...]:
    """The CVE ids named in ``texts``, upper-cased, each once, in order of appearance."""
    seen: dict[str, None] = {}
    for text in texts:
        if text:
            for match in _CVE.findall(text):
                seen.setdefault(match.upper(), None)
    return tuple(seen)
