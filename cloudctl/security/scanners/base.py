"""What every scanner adapter returns: findings with a stable fingerprint, gathered in one report per file or scan.

A finding is one thing a scanner says about one service (or one host): an open port, a script's output, a
vulnerability. Its ``fingerprint`` names *what* was found *where*, so that the same finding in next month's scan,
or in the same file imported twice, has the same fingerprint: it hashes the scanner family, the plugin, the
address, port, protocol and service, and never what changes between two runs (evidence, hostnames, times).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable
from urllib.parse import urlsplit

from cloudctl.core.addresses import canonical_ip
from cloudctl.core.text import control_character

__all__ = [
    "EVIDENCE_LIMIT",
    "SCANNERS",
    "SEVERITIES",
    "URL_LIMIT",
    "ScanFinding",
    "ScanReport",
    "Scanner",
    "ScannerName",
    "Severity",
    "Target",
    "Transport",
    "canonical_ip",
    "cves_in",
    "merge_findings",
    "nessus_severity",
    "normalise_title",
    "scan_target",
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

# The longest URL an asset keeps: what browsers and web servers commonly accept.
URL_LIMIT = 2048

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
    """The fingerprint's spelling of a target: a canonical address, or a name lower-cased."""
    return canonical_ip(ip) or ip.strip().lower()


@dataclass(frozen=True, slots=True)
class Target:
    """What a scanner names as the host: an address, a host name, or a web application's URL.

    ``key`` is the asset it is: the canonical address, or the lower-case host name when the scanner gave no
    address (a URL's host that is an address is that address, with the URL kept).
    """

    kind: Literal["ip", "host", "web"]
    key: str
    ip: str | None
    hostname: str | None
    url: str | None


_HOST_NAME = re.compile(r"(?=.{1,253}$)[^\s/\\:@?#\[\]<>\"'`,;|]+")


def scan_target(text: str) -> Target:
    """Classify a scanner's host text; ValueError (with the reason) for something that names no host."""
    text = text.strip()
    ip = canonical_ip(text)
    if ip is not None:
        return Target("ip", ip, ip, None, None)
    found = control_character(text)
    if found is not None:
        raise ValueError(f"the host holds a control character ({found})")
    if "://" in text:
        if len(text) > URL_LIMIT:
            raise ValueError(f"a URL of {len(text):,} characters, over the limit of {URL_LIMIT:,}")
        try:
            host = urlsplit(text).hostname
        except ValueError as exc:
            raise ValueError(f"{text[:80]!r} is not a URL ({exc})") from None
        if not host:
            raise ValueError(f"the URL {text[:80]!r} names no host")
        ip = canonical_ip(host)
        if ip is not None:
            return Target("ip", ip, ip, None, text)
        return Target("web", _host_name(host), None, _host_name(host), text)
    # host:port, as some exports write a web server
    host = re.sub(r":[0-9]{1,5}$", "", text)
    return Target("host", _host_name(host), None, _host_name(host), None)


def _host_name(text: str) -> str:
    name = text.strip().rstrip(".").lower()
    if not _HOST_NAME.fullmatch(name) or any(len(label) > 63 or not label for label in name.split(".")):
        raise ValueError(f"{text[:80]!r} is neither an IP address, a host name nor a URL")
    return name


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
    url: str | None = None  # a web application scanner's URL for the host, kept as given

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


_WORST = {severity: rank for rank, severity in enumerate(SEVERITIES)}


def merge_findings(findings: Iterable[ScanFinding]) -> tuple[ScanFinding, ...]:
    """One finding per fingerprint, in the order first seen; the others' evidence added to it, not dropped.

    A report can name one finding several times (a web scanner's item per path, two NSE outputs of one script):
    the evidence of each is kept, as are every CVE, the highest score and the worst severity.
    """
    merged: dict[str, ScanFinding] = {}
    evidence: dict[str, list[str]] = {}
    for finding in findings:
        key = finding.fingerprint
        first = merged.get(key)
        if first is None:
            merged[key] = finding
            evidence[key] = [finding.evidence] if finding.evidence else []
            continue
        if finding.evidence and finding.evidence not in evidence[key]:
            evidence[key].append(finding.evidence)
        scores = [score for score in (first.cvss, finding.cvss) if score is not None]
        merged[key] = replace(
            first, cve=tuple(dict.fromkeys((*first.cve, *finding.cve))), cvss=max(scores) if scores else None,
            severity=min(first.severity, finding.severity, key=_WORST.__getitem__),
            description=first.description or finding.description, solution=first.solution or finding.solution,
            hostname=first.hostname or finding.hostname, url=first.url or finding.url)
    return tuple(replace(finding, evidence=trim_evidence("\n\n".join(evidence[key])))
                 if len(evidence[key]) > 1 else finding for key, finding in merged.items())


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
