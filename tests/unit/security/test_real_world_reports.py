"""Scanner files as bureaus receive them: hosts named by URL, IPv6 in any case, repeated items, out-of-range values,
exports in the wrong format; and, whatever the bytes, a report or our own refusal, on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloudctl.core.errors import InvalidInput
from cloudctl.security.models import Asset, Finding
from cloudctl.security.scanners import parse_report
from cloudctl.security.scanners.base import ScanFinding, ScanReport, merge_findings, scan_target
from cloudctl.security.service import findings as service
from tests.factories import ADMIN

DATA = Path(__file__).resolve().parents[2] / "data" / "security"


def _read(name: str) -> bytes:
    return (DATA / name).read_bytes()


def _nmap(address: str = "192.0.2.5", portid: str = "80", service: str = "http", extra: str = "") -> bytes:
    return (f'<?xml version="1.0"?><!DOCTYPE nmaprun><nmaprun start="1767225600"><host><status state="up"/>'
            f'<address addr="{address}" addrtype="ipv4"/><ports><port protocol="tcp" portid="{portid}">'
            f'<state state="open"/><service name="{service}"/>{extra}</port></ports></host></nmaprun>').encode()


def _refusal(data: bytes, fmt: str) -> str:
    with pytest.raises(InvalidInput) as caught:
        parse_report(data, fmt)  # type: ignore[arg-type]
    assert "\n" not in str(caught.value)
    return str(caught.value)


# -- values checked against their columns, naming the element ---------------------------------------------------


@pytest.mark.parametrize(("portid", "words"), [
    (str(2**70), "host[1]/ports/port[1].port: Input should be less than or equal to 65535"),
    ("-1", "host[1]/ports/port[1].port: Input should be greater than or equal to 0"),
    ("9" * 5000, "host[1]/ports/port[1].port: '99999999"),
    ("٣", "is not a port number"),
])
def test_a_port_outside_0_to_65535_is_refused_naming_its_element(portid: str, words: str) -> None:
    assert words in _refusal(_nmap(portid=portid), "nmap")


def test_a_service_name_longer_than_its_column_is_refused() -> None:
    assert _refusal(_nmap(service="s" * 80), "nmap").startswith(
        "host[1]/ports/port[1].service: String should have at most 64 characters")


def test_a_nessus_port_beyond_the_range_and_a_bidi_control_in_a_title_are_refused() -> None:
    def nessus(item: str) -> bytes:
        return (b'<NessusClientData_v2><Report><ReportHost name="192.0.2.1"><HostProperties/>' + item.encode()
                + b"</ReportHost></Report></NessusClientData_v2>")

    assert "ReportHost[1]/ReportItem[1].port" in _refusal(nessus(
        f'<ReportItem port="{2**70}" severity="1" pluginID="1" pluginName="x"/>'), "nessus")
    assert "ReportHost[1]/ReportItem[1].title: must not contain control characters (found U+202E" in _refusal(
        nessus('<ReportItem port="80" severity="1" pluginID="1" pluginName="a\u202eb"/>'), "nessus")


def test_control_characters_in_evidence_are_kept_as_escapes() -> None:
    report = parse_report(_nmap(extra='<script id="banner" output="ok \u009b31m red"/>'), "nmap")
    banner = next(f for f in report.findings if f.plugin_id == "banner")
    assert banner.evidence == "ok \\x9b31m red"


# -- hosts: URL and host names are not addresses; addresses in one spelling --------------------------------------


def test_scan_targets_are_classified() -> None:
    assert scan_target("2001:DB8::1").key == "2001:db8::1"
    assert scan_target("010.064.001.030").key == "10.64.1.30"
    web = scan_target("https://Portal.Example.gov.test:8443/zwfw/login.action")
    assert (web.kind, web.key, web.ip, web.url) == ("web", "portal.example.gov.test", None,
                                                    "https://Portal.Example.gov.test:8443/zwfw/login.action")
    on_address = scan_target("http://10.64.1.30/oa/")
    assert (on_address.kind, on_address.ip, on_address.url) == ("ip", "10.64.1.30", "http://10.64.1.30/oa/")
    assert scan_target("oa.example.gov.test:8080").kind == "host"
    for bad in ("", "http://", "a host", "x" * 300, "https://[::1"):
        with pytest.raises(ValueError):
            scan_target(bad)


def test_a_web_application_report_keeps_urls_and_merges_one_plugin_reported_per_path(session: Session) -> None:
    report = parse_report(_read("nessus-webapp.nessus"), "nessus")
    assert report.hosts == ("portal.example.gov.test", "10.64.1.30")
    outcome = service.store_report(session, ADMIN, report, scope="web-2026", source="nessus-webapp.nessus")
    assert outcome["created"] == 3
    assets = {a.target: a for a in session.scalars(select(Asset))}
    portal = assets["portal.example.gov.test"]
    assert (portal.kind, portal.ip, portal.url) == ("web", None,
                                                    "https://portal.example.gov.test:8443/zwfw/login.action?from=index")
    oa = assets["10.64.1.30"]
    assert (oa.kind, oa.url) == ("ip", "http://10.64.1.30/oa/")
    csp = session.scalar(select(Finding).where(Finding.plugin_id == "98115"))
    assert csp is not None
    assert csp.ip is None
    assert csp.target == "portal.example.gov.test"
    assert "login.action" in csp.evidence
    assert "query.action" in csp.evidence
    again = service.store_report(session, ADMIN, parse_report(_read("nessus-webapp.nessus"), "nessus"),
                                 scope="web-2026", source="again")
    assert again["repeat"] is True


def test_an_ipv6_host_closes_its_finding_on_rescan_whatever_the_case(session: Session) -> None:
    first = service.store_report(session, ADMIN, parse_report(_read("nmap-ipv6-first.xml"), "nmap"), scope="v6",
                                 source="first")
    assert first["created"] == 2
    assert [a.ip for a in session.scalars(select(Asset))] == ["2001:db8:40::10"]
    rescan = service.store_report(session, ADMIN, parse_report(_read("nmap-ipv6-rescan.xml"), "nmap"), scope="v6",
                                  source="rescan")
    assert (rescan["created"], rescan["untouched"], rescan["closed"]) == (0, 1, 1)
    closed = session.scalar(select(Finding).where(Finding.port == 8080))
    assert closed is not None
    assert closed.active is False


def test_a_report_built_elsewhere_with_an_address_in_capitals_finds_the_same_asset(session: Session) -> None:
    def report(ip: str, sha: str) -> ScanReport:
        return ScanReport(scanner="nmap", started_at=None, finished_at=None, hosts=(ip,), file_sha256=sha,
                          findings=(ScanFinding(scanner="nmap", plugin_id="open-port", title="Open port 22/tcp",
                                                severity="info", ip=ip, port=22, protocol="tcp", service="ssh"),))

    service.store_report(session, ADMIN, report("2001:DB8::7", "a" * 64), scope="s", source="a")
    outcome = service.store_report(session, ADMIN, report("2001:db8::7", "b" * 64), scope="s", source="b")
    assert outcome["untouched"] == 1
    assert len(session.scalars(select(Asset)).all()) == 1


def test_merging_keeps_every_piece_of_evidence_the_worst_severity_and_every_cve() -> None:
    base = ScanFinding(scanner="gvm", plugin_id="1.3.6.1.4.1.25623.1.0.1", title="t", severity="medium",
                       ip="192.0.2.9", port=443, protocol="tcp", service=None, evidence="path /a", cve=("CVE-1",))
    other = ScanFinding(scanner="gvm", plugin_id="1.3.6.1.4.1.25623.1.0.1", title="t", severity="high",
                        ip="192.0.2.9", port=443, protocol="tcp", service=None, evidence="path /b", cve=("CVE-2",),
                        cvss=7.5)
    (merged,) = merge_findings([base, other, base])
    assert merged.evidence == "path /a\n\npath /b"
    assert (merged.severity, merged.cve, merged.cvss) == ("high", ("CVE-1", "CVE-2"), 7.5)


# -- the wrong format --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "what"), [("scanner-export.csv", "not XML"), ("scanner-report.html", "HTML report")])
def test_a_csv_or_html_export_is_refused_naming_the_formats_taken(name: str, what: str) -> None:
    message = _refusal(_read(name), "nessus")
    assert what in message
    assert "nmap XML" in message
    assert "Nessus .nessus v2" in message
    assert "Greenbone" in message


def test_an_unknown_format_lists_the_known_ones() -> None:
    assert "choose one of nmap, nessus, gvm" in _refusal(b"<x/>", "qualys")
    with pytest.raises(InvalidInput) as caught:
        service.import_report(None, ADMIN, b"<x/>", "qualys", scope="s")  # type: ignore[arg-type]
    assert "nmap XML" in str(caught.value)


# -- properties --------------------------------------------------------------------------------------------------


@given(data=st.binary(max_size=1024), fmt=st.sampled_from(["nmap", "nessus", "gvm"]))
def test_arbitrary_bytes_give_a_report_or_a_refusal(data: bytes, fmt: str) -> None:
    try:
        report = parse_report(data, fmt)  # type: ignore[arg-type]
    except InvalidInput:
        return
    assert report.scanner == fmt


_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=80)


def _xml(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;"))


@given(address=st.one_of(st.ip_addresses().map(str), _TEXT), port=st.one_of(st.integers(), _TEXT),
       service_name=_TEXT, output=_TEXT, fmt=st.sampled_from(["nmap", "nessus", "gvm"]))
def test_arbitrary_values_in_every_format_give_stored_findings_or_a_refusal(session: Session, address: str,
                                                                            port: int | str, service_name: str,
                                                                            output: str, fmt: str) -> None:
    if fmt == "nmap":
        data = _nmap(_xml(address), _xml(str(port)), _xml(service_name),
                     f'<script id="x" output="{_xml(output)}"/>')
    elif fmt == "nessus":
        data = (f'<NessusClientData_v2><Report><ReportHost name="{_xml(address)}"><HostProperties/>'
                f'<ReportItem port="{_xml(str(port))}" svc_name="{_xml(service_name)}" protocol="tcp" severity="2" '
                f'pluginID="1" pluginName="p"><plugin_output>{_xml(output)}</plugin_output></ReportItem>'
                f"</ReportHost></Report></NessusClientData_v2>").encode()
    else:
        data = (f'<report><report><results><result id="r"><host>{_xml(address)}</host>'
                f"<port>{_xml(service_name)} ({_xml(str(port))}/tcp)</port><severity>5.0</severity>"
                f'<nvt oid="1.2.3"><name>n</name></nvt><description>{_xml(output)}</description></result>'
                f"</results></report></report>").encode()
    try:
        report = parse_report(data, fmt)  # type: ignore[arg-type]
    except InvalidInput:
        return
    # What the parser let through, both databases store: the checks ran before the database.
    with session.begin_nested() as savepoint:
        outcome = service.store_report(session, ADMIN, report, scope="any", source="hypothesis")
        session.flush()
        assert outcome["created"] == len(merge_findings(report.findings))
        savepoint.rollback()


def test_a_nessus_host_with_an_address_and_an_odd_name_keeps_the_address() -> None:
    data = (b'<NessusClientData_v2><Report><ReportHost name="FINANCE PC 01"><HostProperties>'
            b'<tag name="host-ip">192.0.2.44</tag></HostProperties><ReportItem port="445" severity="1" pluginID="1" '
            b'pluginName="SMB"/></ReportHost></Report></NessusClientData_v2>')
    report = parse_report(data, "nessus")
    assert report.hosts == ("192.0.2.44",)
    assert report.findings[0].hostname is None
