"""Scanner adapters: parse nmap / Nessus / Greenbone report files, and run nmap. Pure adapters, no database."""

from cloudctl.security.scanners.base import (
    SEVERITIES,
    ScanFinding,
    Scanner,
    ScanReport,
    Severity,
    nessus_severity,
    severity_from_score,
)
from cloudctl.security.scanners.nmap import NmapScanner
from cloudctl.security.scanners.parsers import MAX_REPORT_BYTES, ReportFormat, parse_report

__all__ = [
    "MAX_REPORT_BYTES",
    "SEVERITIES",
    "NmapScanner",
    "ReportFormat",
    "ScanFinding",
    "ScanReport",
    "Scanner",
    "Severity",
    "nessus_severity",
    "parse_report",
    "severity_from_score",
]
