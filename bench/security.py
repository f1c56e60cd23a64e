"""Importing large scanner reports: findings per second of parse_report, against a bare defusedxml parse.

    .venv/bin/python bench/security.py [--findings 50000] [--runs 3] [--per-host 50]

1. A generated Nessus v2 file of ``--findings`` ReportItems (``--per-host`` per ReportHost), shaped like a real
   export: HostProperties, description, synopsis, solution, CVSS v2/v3, CVEs and a plugin output per item.
2. A generated nmap ``-oX`` file of about as many findings: hosts with open ports, each with service detection and
   one NSE script output (two findings per port).

For each, the median over ``--runs`` of ``parse_report`` (findings per second, MB per second), and the baseline in the
same run over the same bytes: ``defusedxml.ElementTree.fromstring`` alone, with the ratio parse_report / baseline
(what turning the tree into findings costs on top of reading the XML).

3. Then the whole import into a throw-away SQLite database (``import_report``: parse, assets, fingerprints,
   reconcile, SLA deadlines), and a re-import of the same findings in a new file of the same scope (a later scan
   that found the same things): findings per second for each, and the re-import's counts, which must be
   0 created, 0 closed. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from defusedxml.ElementTree import fromstring

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cloudctl.security.scanners import parse_report  # noqa: E402

PLUGINS = [  # (id, name, severity, svc, port, cvss3, cves)
    ("187201", "OpenSSH &lt; 9.6 Multiple Vulnerabilities", 2, "ssh", 22, "6.5", ["CVE-2023-48795", "CVE-2023-51384"]),
    ("42873", "SSL Medium Strength Cipher Suites Supported (SWEET32)", 3, "www", 443, "7.5", ["CVE-2016-2183"]),
    ("51192", "SSL Certificate Cannot Be Trusted", 2, "www", 443, "6.5", []),
    ("97833", "MS17-010: Security Update for Microsoft Windows SMB Server", 4, "cifs", 445, "8.1",
     ["CVE-2017-0143", "CVE-2017-0144"]),
    ("10267", "SSH Server Type and Version Information", 0, "ssh", 22, "", []),
    ("10114", "ICMP Timestamp Request Remote Date Disclosure", 1, "general", 0, "", ["CVE-1999-0524"]),
]


def _ip(n: int) -> str:
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def nessus_file(findings: int, per_host: int) -> bytes:
    parts = ['<?xml version="1.0" ?>\n<NessusClientData_v2>\n<Report name="bench" xmlns:cm="http://www.nessus.org/cm">\n']
    made = host = 0
    while made < findings:
        host += 1
        ip = _ip(host)
        parts.append(f'<ReportHost name="{ip}"><HostProperties>\n<tag name="HOST_END_TIMESTAMP">1741241952</tag>\n'
                     f'<tag name="host-ip">{ip}</tag>\n<tag name="host-fqdn">h{host}.example.gov.test</tag>\n'
                     f'<tag name="HOST_START_TIMESTAMP">1741241052</tag>\n</HostProperties>\n')
        for index in range(min(per_host, findings - made)):
            plugin_id, name, severity, svc, port, cvss3, cves = PLUGINS[index % len(PLUGINS)]
            plugin_id = str(int(plugin_id) + index // len(PLUGINS))  # distinct plugins per host
            parts.append(
                f'<ReportItem port="{port}" svc_name="{svc}" protocol="tcp" severity="{severity}" '
                f'pluginID="{plugin_id}" pluginName="{name}" pluginFamily="General">\n'
                + (f"<cvss3_base_score>{cvss3}</cvss3_base_score>\n<cvss_base_score>5.0</cvss_base_score>\n"
                   if cvss3 else "")
                + "<description>The remote host is affected by the issue this plugin checks for, as its banner "
                  "and the answers to the plugin's probes show.</description>\n<fname>check.nasl</fname>\n"
                  "<plugin_type>remote</plugin_type>\n<risk_factor>Medium</risk_factor>\n"
                  "<solution>Upgrade to the fixed version, or apply the vendor's workaround.</solution>\n"
                  "<synopsis>The remote service is affected by a vulnerability.</synopsis>\n"
                + "".join(f"<cve>{cve}</cve>\n" for cve in cves)
                + f"<plugin_output>\n  Installed version : 9.2p1\n  Fixed version     : 9.6\n  Host : {ip}\n"
                  "</plugin_output>\n</ReportItem>\n")
            made += 1
        parts.append("</ReportHost>\n")
    parts.append("</Report>\n</NessusClientData_v2>\n")
    return "".join(parts).encode()


def nmap_file(findings: int) -> bytes:
    services = [(22, "ssh", 'product="OpenSSH" version="9.2p1 Debian 2" extrainfo="protocol 2.0"'),
                (80, "http", 'product="nginx" version="1.22.1"'), (443, "https", 'product="nginx" version="1.22.1"'),
                (3306, "mysql", 'product="MySQL" version="8.0.36"'), (8080, "http-proxy", "")]
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE nmaprun>\n<nmaprun scanner="nmap" '
             'args="nmap -sV -oX - 10.0.0.0/16" start="1795620000" version="7.93" xmloutputversion="1.05">\n']
    made = host = 0
    while made < findings:
        host += 1
        parts.append(f'<host starttime="1795620000" endtime="1795620100"><status state="up" reason="syn-ack" '
                     f'reason_ttl="63"/>\n<address addr="{_ip(host)}" addrtype="ipv4"/>\n<hostnames>\n'
                     f'<hostname name="h{host}.example.gov.test" type="PTR"/>\n</hostnames>\n<ports>')
        for port, name, product in services:
            if made >= findings:
                break
            parts.append(f'<port protocol="tcp" portid="{port}"><state state="open" reason="syn-ack" '
                         f'reason_ttl="63"/><service name="{name}" {product} method="probed" conf="10">'
                         f"<cpe>cpe:/a:example:{name}</cpe></service>"
                         f'<script id="banner" output="{name} banner of h{host}"><elem>{name}</elem></script>'
                         f"</port>\n")
            made += 2
        parts.append("</ports>\n</host>\n")
    parts.append('<runstats><finished time="1795620100" elapsed="100.00" exit="success"/>'
                 f'<hosts up="{host}" down="0" total="{host}"/></runstats>\n</nmaprun>\n')
    return "".join(parts).encode()


def median_seconds(function: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(label: str, data: bytes, fmt: str, runs: int) -> None:
    count = len(parse_report(data, fmt).findings)  # type: ignore[arg-type]
    parsed = median_seconds(lambda: parse_report(data, fmt), runs)  # type: ignore[arg-type]
    bare = median_seconds(lambda: fromstring(data, forbid_dtd=False), runs)
    megabytes = len(data) / 1e6
    print(f"{label}: {count:,} findings, {megabytes:.1f} MB")
    for name, seconds in (("parse_report", parsed), ("defusedxml baseline", bare)):
        print(f"  {name:<20}{seconds * 1000:8.1f} ms  {count / seconds:12,.0f} findings/s  "
              f"{megabytes / seconds:6.1f} MB/s")
    print(f"  ratio parse_report / baseline: {parsed / bare:.2f}")


def measure_import(label: str, data: bytes, again: bytes, fmt: str) -> None:
    """One import and one re-import into a fresh database; single runs (a second import of a file is a no-op)."""
    from cloudctl.core.auth import system_principal
    from cloudctl.core.config import Settings, reset_settings
    from cloudctl.core.db import dispose_engines, get_engine, session_scope
    from cloudctl.core.migrate import upgrade
    from cloudctl.security.service.findings import import_report

    with tempfile.TemporaryDirectory() as tmp:
        reset_settings(Settings(data_dir=Path(tmp), database_url=f"sqlite:///{tmp}/bench.db"))
        upgrade(get_engine())
        admin = system_principal("bench")
        print(f"{label} into SQLite:")
        for name, payload in (("first import", data), ("re-import, same findings", again)):
            started = time.perf_counter()
            with session_scope() as session:
                outcome = import_report(session, admin, payload, fmt, scope="bench")
            seconds = time.perf_counter() - started
            seen = outcome["created"] + outcome["untouched"] + outcome["reactivated"]
            print(f"  {name:<26}{seconds:7.2f} s  {seen / seconds:10,.0f} findings/s  created {outcome['created']:,}"
                  f"  untouched {outcome['untouched']:,}  closed {outcome['closed']:,}"
                  f"  reactivated {outcome['reactivated']:,}")
        dispose_engines()
        reset_settings()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--findings", type=int, default=50_000, help="findings per generated file (50,000)")
    parser.add_argument("--per-host", type=int, default=50, help="Nessus ReportItems per ReportHost (50)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per measurement; the median is printed (3)")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, median of {args.runs} runs")
    nessus, nmap = nessus_file(args.findings, args.per_host), nmap_file(args.findings)
    measure("Nessus v2", nessus, "nessus", args.runs)
    measure("nmap -oX", nmap, "nmap", args.runs)
    # The later scan: the same findings, another file (its hosts' end times moved on an hour).
    measure_import("Nessus v2", nessus, nessus.replace(b"1741241952", b"1741245552"), "nessus")
    measure_import("nmap -oX", nmap, nmap.replace(b'endtime="1795620100"', b'endtime="1795623700"'), "nmap")


if __name__ == "__main__":
    main()
