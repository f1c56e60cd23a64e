"""Scanner report files → ScanReport: nmap XML (``-oX``), Nessus ``.nessus`` (v2), Greenbone/OpenVAS XML reports.

Every file comes from outside, so it is parsed by defusedxml only, with DTDs, entity declarations and external
references refused: none of these formats needs them, and they are how an XML file expands a few KB into gigabytes
("billion laughs") or reads a local file into the report (external entities). The one exception is nmap's own
``<!DOCTYPE nmaprun>`` line, which every nmap writes (7.x, checked against 7.60, 7.93): a bare declaration without
an internal subset or an external id, which declares nothing. It alone is blanked out (with spaces, so the
parser's line and column numbers stay true) and any other DTD, in an nmap file or any other, is refused.

Formats, as read here:
- nmap ``-oX`` (xmloutputversion 1.04/1.05): ``nmaprun/host`` with ``address``, ``hostnames``, ``ports/port``
  (``state``, ``service``, ``script``) and ``hostscript/script``; ``runstats/finished/@time``.
- Nessus v2 (Nessus 6 – 10, Tenable.sc/.io exports): ``NessusClientData_v2/Report/ReportHost`` with
  ``HostProperties/tag[@name]`` and ``ReportItem`` (``port``, ``svc_name``, ``protocol``, ``severity``,
  ``pluginID``, ``pluginName``; children ``cve``, ``cvss3_base_score``, ``cvss_base_score``, ``solution``,
  ``plugin_output``, …).
- Greenbone (GVM 9 – 22.x, GMP 8 – 22.6): the "XML" report format as downloaded from GSA (root ``report`` with an
  inner ``report``) or a ``get_reports`` answer (root ``get_reports_response``); ``results/result`` with ``host``,
  ``port`` ("443/tcp", "general/tcp"), ``nvt`` (``@oid``, ``name``, ``cvss_base``, ``severities``, ``tags``,
  ``refs/ref``, ``solution``), ``severity``, ``threat``, ``description``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import replace
from datetime import UTC, datetime
from typing import Literal
from xml.etree.ElementTree import Element, ParseError  # types only: parsing goes through defusedxml

from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import fromstring
from pydantic import ValidationError

from cloudctl.core.errors import InvalidInput
from cloudctl.core.schemas import field_errors
from cloudctl.core.text import escape_control
from cloudctl.security.scanners.base import (
    ScanFinding,
    ScanReport,
    Severity,
    Target,
    Transport,
    cves_in,
    nessus_severity,
    scan_target,
    severity_from_score,
    trim_evidence,
)
from cloudctl.security.schemas import ReportItem

__all__ = ["ACCEPTED", "MAX_REPORT_BYTES", "ReportFormat", "parse_report"]

ReportFormat = Literal["nmap", "nessus", "gvm"]

# A 50,000-host Nessus export is about 1 GB; 512 MB is well past any one scan this city runs, and ElementTree
# holds a few times the file's size in memory while it parses.
MAX_REPORT_BYTES = 512 * 1024 * 1024

_ROOTS: dict[ReportFormat, tuple[str, ...]] = {
    "nmap": ("nmaprun",),
    "nessus": ("NessusClientData_v2",),
    "gvm": ("report", "get_reports_response"),
}
_NAMES: dict[ReportFormat, str] = {"nmap": "nmap XML (-oX)", "nessus": "Nessus (.nessus v2)", "gvm": "Greenbone XML"}
_ARTICLES: dict[ReportFormat, str] = {"nmap": "an", "nessus": "a", "gvm": "a"}
_NMAP_DOCTYPE = re.compile(rb"<!DOCTYPE[ \t\r\n]+nmaprun[ \t\r\n]*>")
# What `sec import` takes, for every refusal of something else (a CSV, HTML or PDF export of the same scan).
ACCEPTED = ("nmap XML (nmap -oX, --format nmap), Nessus .nessus v2 (--format nessus) or Greenbone/OpenVAS XML "
            "(--format gvm)")


def parse_report(data: bytes, fmt: ReportFormat, *, max_bytes: int = MAX_REPORT_BYTES) -> ScanReport:
    """The findings of one scanner file of format ``fmt``; a file that is not one, or is hostile, is InvalidInput."""
    if fmt not in _PARSERS:
        raise InvalidInput(f"unknown report format {fmt!r}: choose one of {', '.join(_PARSERS)}", field="format",
                           known=list(_PARSERS))
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidInput(f"the file must be bytes, not {type(data).__name__}", field="file")
    data = bytes(data)
    if len(data) > max_bytes:
        raise InvalidInput(f"the file is {len(data):,} bytes, over the limit of {max_bytes:,} bytes for a report: "
                           f"split the scan, or export fewer hosts per file", field="file")
    if not data.strip():
        raise InvalidInput("the file is empty", field="file")
    _refuse_other_exports(data)
    root = _parse_xml(data, fmt)
    found = _local(root.tag)
    if found not in _ROOTS[fmt]:
        expected = " or ".join(f"<{name}>" for name in _ROOTS[fmt])
        hint = next((f" (that is the root of {_ARTICLES[other]} {_NAMES[other]} file)"
                     for other, roots in _ROOTS.items() if other != fmt and found in roots), "")
        raise InvalidInput(f"this is not {_ARTICLES[fmt]} {_NAMES[fmt]} report: expected the root element {expected}, "
                           f"found <{found}>{hint}", field="file")
    return _PARSERS[fmt](root, hashlib.sha256(data).hexdigest())


def _refuse_other_exports(data: bytes) -> None:
    """Scanners also export CSV, HTML and PDF: say which formats are taken rather than "not well-formed XML"."""
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1024].lower()
    if head.startswith(b"%pdf"):
        what = "a PDF report"
    elif head.startswith((b"<!doctype html", b"<html")) or (head.startswith(b"<") and b"<html" in head):
        what = "an HTML report"
    elif head.startswith((b"{", b"[")):
        what = "a JSON export"
    elif not head.startswith(b"<"):
        what = "not XML (a CSV or text export?)"
    else:
        return
    raise InvalidInput(f"this is {what}: cloudctl imports {ACCEPTED}; export the scan in one of those",
                       field="file")


def _checked(where: str, finding: ScanFinding) -> ScanFinding:
    """The finding, checked against the columns it is stored in (refused naming the element), with control
    characters in its free text written as escapes."""
    try:
        ReportItem.model_validate({"plugin_id": finding.plugin_id, "title": finding.title, "port": finding.port,
                                   "protocol": finding.protocol, "service": finding.service,
                                   "hostname": finding.hostname, "cve": list(finding.cve), "cvss": finding.cvss})
    except ValidationError as exc:
        error = field_errors(exc)[0]
        raise InvalidInput(error.reason, field=f"{where}.{error.field}") from None
    description, solution, evidence = (escape_control(text) for text in (finding.description, finding.solution,
                                                                         finding.evidence))
    if (description, solution, evidence) == (finding.description, finding.solution, finding.evidence):
        return finding
    return replace(finding, description=description, solution=solution, evidence=evidence)


def _target(where: str, text: str) -> Target:
    try:
        return scan_target(text)
    except ValueError as exc:
        raise InvalidInput(str(exc), field=f"{where}.host") from None


def _port(where: str, text: str) -> int:
    """A port number as written (digits, perhaps a minus); the range is the schema's to check."""
    text = text.strip()
    if not re.fullmatch(r"-?[0-9]{1,25}", text):
        raise InvalidInput(f"{_short(text)!r} is not a port number", field=f"{where}.port")
    return int(text)


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


# -- XML, defused -------------------------------------------------------------------------------------------------


def _parse_xml(data: bytes, fmt: ReportFormat) -> Element:
    text = data
    # Blanked whatever format was asked for, so that an nmap file given as another format is told apart by its root.
    head = _NMAP_DOCTYPE.search(data, 0, 4096)
    if head is not None:
        text = data[:head.start()] + b" " * (head.end() - head.start()) + data[head.end():]
    try:
        root: Element = fromstring(text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DTDForbidden as exc:
        raise InvalidInput(_why_dtd(text, exc), field="file") from None
    except EntitiesForbidden as exc:
        raise InvalidInput(_entities_reason(exc), field="file") from None
    except ExternalReferenceForbidden as exc:
        raise InvalidInput(_external_reason(exc), field="file") from None
    except ParseError as exc:
        line, column = getattr(exc, "position", (0, 0))
        message = str(exc).split(":", 1)[0]
        raise InvalidInput(f"the file is not well-formed XML: {message} at line {line}, column {column + 1} "
                           f"(cloudctl imports {ACCEPTED})", field="file", line=line, column=column + 1) from None
    return root


def _why_dtd(text: bytes, exc: DTDForbidden) -> str:
    """Say what the refused DTD was for: entity declarations (entity expansion), external references, or nothing."""
    try:
        # Safe: entities and external references stay forbidden, so this stops at the first declaration.
        fromstring(text, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except EntitiesForbidden as inner:
        return _entities_reason(inner)
    except ExternalReferenceForbidden as inner:
        return _external_reason(inner)
    except (ParseError, ValueError):
        pass
    where = f" referring to {exc.sysid!r}" if exc.sysid else ""
    return (f"the file declares a DTD (<!DOCTYPE {exc.name}>{where}), which no scanner report needs: DTDs are refused "
            f"because they carry entity-expansion and external-entity attacks")


def _entities_reason(exc: EntitiesForbidden) -> str:
    if exc.sysid or exc.pubid:
        return (f"the file declares the external entity {exc.name!r} ({exc.sysid or exc.pubid}): external entities "
                f"(XXE) could read local files or URLs, and are refused")
    return (f"the file declares the entity {exc.name!r}: entity declarations are refused, as nested ones expand a "
            f"few bytes into gigabytes (\"billion laughs\")")


def _external_reason(exc: ExternalReferenceForbidden) -> str:
    return (f"the file refers to an external resource ({exc.sysid or exc.pubid}): external references (XXE) are "
            f"refused")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1] if tag.startswith("{") else tag


def _text(element: Element | None) -> str:
    return (element.text or "").strip() if element is not None else ""


def _float(text: str | None) -> float | None:
    if not text:
        return None
    match = re.match(r"\s*(-?\d+(?:\.\d+)?)", text)
    return float(match.group(1)) if match else None


def _epoch(text: str | None) -> datetime | None:
    if not text or not text.strip().isdigit():
        return None
    return datetime.fromtimestamp(int(text), UTC)


def _transport(text: str | None) -> Transport | None:
    text = (text or "").lower()
    if text == "tcp":
        return "tcp"
    if text == "udp":
        return "udp"
    return None


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(value for value in values if value))


def _bad_file(fmt: ReportFormat, what: str) -> InvalidInput:
    return InvalidInput(f"this {_NAMES[fmt]} report is malformed: {what}", field="file")


# -- nmap ---------------------------------------------------------------------------------------------------------


def _nmap(root: Element, digest: str) -> ScanReport:
    hosts: list[str] = []
    names: list[tuple[str, str]] = []
    findings: list[ScanFinding] = []
    for h, host in enumerate(root.iter("host"), 1):
        status = host.find("status")
        if status is not None and status.get("state") != "up":
            continue
        address = _nmap_address(host)
        if address is None:
            continue
        where = f"host[{h}]"
        target = _target(where, address)
        ip = target.key
        hosts.append(ip)
        names += [(ip, name.get("name", "")) for name in host.findall("hostnames/hostname")
                  if name.get("type") == "user" and name.get("name")]
        hostname = _nmap_hostname(host)
        for p, port in enumerate(host.findall("ports/port"), 1):
            state = port.find("state")
            if state is None or state.get("state") != "open":
                continue
            at = f"{where}/ports/port[{p}]"
            number = _port(at, port.get("portid", ""))
            protocol = _transport(port.get("protocol"))
            findings.append(_checked(at, _nmap_open_port(port, ip, number, protocol, hostname)))
            service = findings[-1].service
            for k, script in enumerate(port.findall("script"), 1):
                findings.append(_checked(f"{at}/script[{k}]",
                                         _nmap_script(script, ip, number, protocol, service, hostname)))
        for k, script in enumerate(host.findall("hostscript/script"), 1):
            findings.append(_checked(f"{where}/hostscript/script[{k}]",
                                     _nmap_script(script, ip, None, None, None, hostname)))
    finished = root.find("runstats/finished")
    return ScanReport(scanner="nmap", started_at=_epoch(root.get("start")),
                      finished_at=_epoch(finished.get("time") if finished is not None else None),
                      hosts=_unique(hosts), findings=tuple(findings), file_sha256=digest, names=tuple(names))


def _nmap_address(host: Element) -> str | None:
    for address in host.findall("address"):
        if address.get("addrtype") in ("ipv4", "ipv6") and address.get("addr"):
            return address.get("addr")
    return None


def _nmap_hostname(host: Element) -> str | None:
    names = host.findall("hostnames/hostname")
    for wanted in ("user", "PTR"):  # the name it was asked to scan, then reverse DNS
        for name in names:
            if name.get("type") == wanted and name.get("name"):
                return name.get("name")
    return next((name.get("name") for name in names if name.get("name")), None)


def _nmap_open_port(port: Element, ip: str, number: int, protocol: Transport | None,
                    hostname: str | None) -> ScanFinding:
    service = port.find("service")
    name = product = ""
    evidence: list[str] = []
    if service is not None:
        name = service.get("name", "")
        product = " ".join(part for part in (service.get("product"), service.get("version")) if part)
        extra = service.get("extrainfo")
        tunnel = service.get("tunnel")
        evidence.append(" ".join(part for part in (
            f"{tunnel}/{name}" if tunnel else name, product, f"({extra})" if extra else "") if part))
        evidence.extend(_text(cpe) for cpe in service.findall("cpe"))
        method = service.get("method")
        if method:
            evidence.append(f"service detection: {method}, confidence {service.get('conf', '?')}/10")
    label = " ".join(part for part in (name, product) if part)
    where = f"{number}/{protocol or port.get('protocol', '?')}"
    state = port.find("state")
    reason = state.get("reason") if state is not None else None
    return ScanFinding(
        scanner="nmap", plugin_id="open-port", title=f"Open port {where}" + (f" ({label})" if label else ""),
        severity="info", ip=ip, port=number, protocol=protocol, service=name or None,
        description=f"Port {where} on {ip} is open" + (f" ({reason})" if reason else "") + ".",
        evidence=trim_evidence("\n".join(line for line in evidence if line)), hostname=hostname)


def _nmap_script(script: Element, ip: str, port: int | None, protocol: Transport | None, service: str | None,
                 hostname: str | None) -> ScanFinding:
    script_id = script.get("id", "") or "nse-script"
    output = script.get("output", "")
    where = f"{port}/{protocol}" if port is not None else ip
    title = f"{script_id} on {where}"
    severity: Severity = "info"
    cves: tuple[str, ...] = ()
    cvss: float | None = None
    description = ""
    if script_id == "vulners":
        cves, cvss, title = _vulners(script, title)
    else:
        vulns = _vulns_tables(script)
        if vulns:
            cves, cvss, title, description = _vulns_summary(vulns, title)
    if cvss is not None:
        severity = severity_from_score(cvss)
    return ScanFinding(scanner="nmap", plugin_id=script_id, title=title, severity=severity, ip=ip, port=port,
                       protocol=protocol, service=service, cve=cves, cvss=cvss, description=description,
                       evidence=trim_evidence(output), hostname=hostname)


def _elems(table: Element) -> dict[str, str]:
    return {elem.get("key", ""): (elem.text or "").strip() for elem in table.findall("elem")}


def _vulners(script: Element, title: str) -> tuple[tuple[str, ...], float | None, str]:
    """vulners.nse: one table per CPE, holding one table per known vulnerability with id, type, cvss, is_exploit."""
    cves: list[str] = []
    scores: list[float] = []
    cpes: list[str] = []
    for cpe in script.findall("table"):
        cpes.append(cpe.get("key", ""))
        for entry in cpe.findall("table"):
            fields = _elems(entry)
            score = _float(fields.get("cvss"))
            if score is not None:
                scores.append(score)
            if fields.get("type", "").lower() == "cve" or fields.get("id", "").upper().startswith("CVE-"):
                cves.extend(cves_in(fields.get("id")))
    cvss = max(scores) if scores else None
    if scores:
        title = f"{len(scores)} known vulnerabilities in {', '.join(c for c in cpes if c)} (vulners)"
    return _unique(cves), cvss, title


def _vulns_tables(script: Element) -> list[Element]:
    """Tables written by nselib/vulns.lua (the "vuln" category scripts): each has a title and a state."""
    return [table for table in script.iter("table") if table.find("elem[@key='state']") is not None]


def _vulns_summary(tables: list[Element], title: str) -> tuple[tuple[str, ...], float | None, str, str]:
    # vulns.lua states: VULNERABLE, LIKELY VULNERABLE, VULNERABLE (DoS), VULNERABLE (Exploitable), NOT VULNERABLE,
    # UNKNOWN (unable to test). Only the vulnerable ones give a severity; the XML carries no risk factor, so a
    # vulnerable table without a score stays "info" rather than being guessed.
    vulnerable = [t for t in tables if _elems(t).get("state", "").upper().lstrip().startswith(("VULNERABLE", "LIKELY"))]
    chosen = vulnerable or tables
    cves: list[str] = []
    scores: list[float] = []
    descriptions: list[str] = []
    for table in chosen:
        ids = [_text(elem) for elem in table.findall("table[@key='ids']/elem")]
        cves.extend(cves_in(table.get("key"), *ids))
        if vulnerable:
            for elem in table.findall("table[@key='scores']/elem"):
                score = _float(elem.text)
                if score is not None:
                    scores.append(score)
        descriptions.extend(_text(elem) for elem in table.findall("table[@key='description']/elem"))
    first = _elems(chosen[0])
    heading = first.get("title") or title
    state = first.get("state", "")
    return (_unique(cves), max(scores) if scores else None, f"{heading} ({state})" if state else heading,
            "\n".join(d for d in descriptions if d))


# -- Nessus -------------------------------------------------------------------------------------------------------


def _nessus(root: Element, digest: str) -> ScanReport:
    hosts: list[str] = []
    findings: list[ScanFinding] = []
    starts: list[datetime] = []
    ends: list[datetime] = []
    for h, report_host in enumerate(root.iter("ReportHost"), 1):
        properties = {tag.get("name", ""): (tag.text or "").strip()
                      for tag in report_host.findall("HostProperties/tag")}
        name = report_host.get("name", "").strip()
        where = f"ReportHost[{h}]"
        if not (properties.get("host-ip") or name):
            raise _bad_file("nessus", f"{where} has neither a name nor a host-ip")
        # Web application scanners name the host by its URL (and may give no host-ip): the address when there is
        # one, else the host name, with the URL kept.
        target = _target(where, properties.get("host-ip") or name)
        named = target
        if name and name != properties.get("host-ip"):
            # The address is what counts; a name that is neither a host name nor a URL (a label) is not kept.
            with suppress(ValueError):
                named = scan_target(name)
        ip = target.key
        hosts.append(ip)
        hostname = (properties.get("host-fqdn") or properties.get("hostname") or properties.get("netbios-name")
                    or named.hostname or target.hostname)
        url = target.url or named.url
        for key, bucket in (("HOST_START", starts), ("HOST_END", ends)):
            when = _epoch(properties.get(f"{key}_TIMESTAMP")) or _nessus_time(properties.get(key))
            if when is not None:
                bucket.append(when)
        for i, item in enumerate(report_host.iter("ReportItem"), 1):
            at = f"{where}/ReportItem[{i}]"
            findings.append(_checked(at, _nessus_item(item, ip, hostname, at, url)))
    return ScanReport(scanner="nessus", started_at=min(starts, default=None), finished_at=max(ends, default=None),
                      hosts=_unique(hosts), findings=tuple(findings), file_sha256=digest)


def _nessus_time(text: str | None) -> datetime | None:
    """"Mon Jun 29 14:37:25 2020", as older Nessus writes HOST_START: no zone is given, so it is read as UTC."""
    if not text:
        return None
    try:
        return datetime.strptime(" ".join(text.split()), "%a %b %d %H:%M:%S %Y").replace(tzinfo=UTC)
    except ValueError:
        return None


def _nessus_item(item: Element, ip: str, hostname: str | None, where: str, url: str | None) -> ScanFinding:
    fields: dict[str, str] = {}
    cve_texts: list[str] = []
    for child in item:  # one pass over the children: a 50,000-item file is read once
        tag = child.tag
        if tag == "cve":
            cve_texts.append(child.text or "")
        elif tag not in fields:
            fields[tag] = child.text or ""
    plugin_id = item.get("pluginID", "").strip()
    try:
        severity = nessus_severity(item.get("severity", ""))
    except ValueError:
        raise _bad_file("nessus", f"plugin {plugin_id or '?'} on {ip} has severity {item.get('severity')!r}, "
                                  f"not 0–4") from None
    port = _port(where, item.get("port", "0") or "0") or None  # Nessus writes 0 for a finding about the host
    service = item.get("svc_name", "").strip().rstrip("?") or None
    if port is None and service == "general":
        service = None
    cvss = _float(fields.get("cvss3_base_score"))
    if cvss is None:
        cvss = _float(fields.get("cvss_base_score"))
    solution = fields.get("solution", "").strip()
    synopsis = fields.get("synopsis", "").strip()
    description = fields.get("description", "").strip()
    return ScanFinding(
        scanner="nessus", plugin_id=plugin_id,
        title=(item.get("pluginName") or fields.get("plugin_name") or plugin_id).strip()[:500],
        severity=severity, ip=ip, port=port, protocol=_transport(item.get("protocol")), service=service,
        cve=cves_in(*cve_texts), cvss=cvss,
        description="\n\n".join(part for part in (synopsis, description) if part),
        solution="" if solution.lower() == "n/a" else solution,
        evidence=trim_evidence(fields.get("plugin_output", "")), hostname=hostname, url=url)


# -- Greenbone ----------------------------------------------------------------------------------------------------

# Results GVM itself marks as not findings: overridden to "False Positive" (-1), and scanner errors (-2) / debug (-3).
_GVM_NOT_FINDINGS = {"false positive", "error", "debug"}
_GVM_PORT = re.compile(r"(?:(?P<service>[\w.+-]+) \()?(?P<port>-?[0-9]+|general|package)/(?P<proto>\w+)\)?")


def _gvm(root: Element, digest: str) -> ScanReport:
    if _local(root.tag) == "get_reports_response":
        status = root.get("status", "")
        if not status.startswith("2"):
            raise _bad_file("gvm", f"the GMP answer has status {status} ({root.get('status_text', '')}), not a report")
        outer = root.find("report")
        if outer is None:
            raise _bad_file("gvm", "the get_reports answer holds no <report>")
    else:
        outer = root
    report = outer.find("report")
    if report is None:  # an old-style export: results directly under the one <report>
        report = outer
    results = report.find("results")
    hosts: list[str] = [_text(host.find("ip")) for host in report.findall("host")]
    findings: list[ScanFinding] = []
    hosts = [_target(f"report/host[{h}]", ip).key for h, ip in enumerate(hosts, 1) if ip]
    for r, result in enumerate(results.findall("result") if results is not None else (), 1):
        at = f"results/result[{r}]"
        finding = _gvm_result(result, at)
        if finding is not None:
            hosts.append(finding.ip)
            findings.append(_checked(at, finding))
    return ScanReport(scanner="gvm", started_at=_iso(report.findtext("scan_start")),
                      finished_at=_iso(report.findtext("scan_end")), hosts=_unique(hosts),
                      findings=tuple(findings), file_sha256=digest)


def _iso(text: str | None) -> datetime | None:
    if not text or not text.strip():
        return None
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)


def _gvm_tags(text: str) -> dict[str, str]:
    """``cvss_base_vector=…|summary=…|solution=…`` → a dict (values may hold "=", never "|")."""
    tags: dict[str, str] = {}
    for part in text.split("|"):
        key, _, value = part.partition("=")
        if key.strip():
            tags[key.strip()] = value.strip()
    return tags


def _gvm_result(result: Element, where: str) -> ScanFinding | None:
    threat = _text(result.find("threat")).lower()
    score = _float(result.findtext("severity"))
    if threat in _GVM_NOT_FINDINGS or (score is not None and score < 0):
        return None
    host = result.find("host")
    if not _text(host):
        raise _bad_file("gvm", f"result {result.get('id', '?')} names no host")
    target = _target(where, _text(host))
    ip = target.key
    hostname = _text(host.find("hostname")) if host is not None else ""
    port: int | None = None
    protocol: Transport | None = None
    service: str | None = None
    match = _GVM_PORT.search(_text(result.find("port")))
    if match:
        port = _port(where, match["port"]) if match["port"][0].isdigit() else None
        protocol = _transport(match["proto"])
        service = match["service"]
    nvt = result.find("nvt")
    if nvt is None:
        raise _bad_file("gvm", f"result {result.get('id', '?')} on {ip} has no <nvt>")
    tags = _gvm_tags(nvt.findtext("tags") or "")
    severities = nvt.find("severities")
    cvss = _float(severities.get("score") if severities is not None else None)
    if cvss is None:
        cvss = _float(nvt.findtext("cvss_base"))
    if score is None:
        score = cvss if cvss is not None else 0.0
    refs = [ref.get("id", "") for ref in nvt.findall("refs/ref") if ref.get("type", "").lower() == "cve"]
    # GVM before 9 wrote <cve>CVE-…, CVE-…</cve> (or NOCVE) in the nvt; some exports carry cve= in the tags.
    cves = cves_in(*refs) or cves_in(nvt.findtext("cve"), tags.get("cve"))
    solution = _text(nvt.find("solution")) or tags.get("solution", "")
    description = "\n\n".join(part for part in (tags.get("summary", ""), tags.get("insight", "")) if part)
    return ScanFinding(
        scanner="gvm", plugin_id=nvt.get("oid", "").strip(),
        title=(nvt.findtext("name") or result.findtext("name") or "").strip(),
        severity=severity_from_score(score), ip=ip, port=port, protocol=protocol, service=service,
        cve=cves, cvss=cvss if cvss is not None and cvss > 0 else (score if score > 0 else None),
        description=description, solution=solution, evidence=trim_evidence(result.findtext("description") or ""),
        hostname=hostname or target.hostname, url=target.url)


_PARSERS: dict[ReportFormat, Callable[[Element, str], ScanReport]] = {
    "nmap": _nmap,
    "nessus": _nessus,
    "gvm": _gvm,
}
