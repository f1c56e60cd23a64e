"""The demo city's security picture: a quarter's vulnerability scan over cloud servers and extranet terminals, and
the year's attack-defence drill (护网) two weeks ahead, for every department and county, nothing yet overdue.

Most findings land on the city cloud's VMs, so the assets come out linked to their servers, business systems
and MLPS levels; the rest are on units' extranet terminals, owned through the IP plan. One asset is graded
by hand, as the security team does for a host that serves the public. Deterministic for a seed.
"""

from __future__ import annotations

import hashlib
import random
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloudctl.compute.models import Cloud, Server, ServerAddress
from cloudctl.core.auth import Principal
from cloudctl.core.models import utcnow
from cloudctl.demo.city import DemoCity
from cloudctl.demo.seed import demo_step
from cloudctl.extranet.models import AddressRole, IPAddress
from cloudctl.security.models import Asset, DrillItem
from cloudctl.security.scanners.base import ScanFinding, ScanReport, Severity
from cloudctl.security.service import assets, drills, findings

__all__ = ["DRILL_STARTS_IN", "SCOPE", "seed_security"]

SCOPE = "2026Q4-city-scan"
CLOUD_HOSTS, EXTRANET_HOSTS = 60, 20
# The drill starts two weeks after the seed and lasts two: its preparation is compressed into the time left.
DRILL_STARTS_IN, DRILL_DAYS = timedelta(days=14), timedelta(days=14)

# Nessus plugins a city scan turns up, with the service they sit on.
PLUGINS: tuple[tuple[str, str, Severity, int, str, tuple[str, ...], float | None], ...] = (
    ("134862", "Apache Tomcat AJP Connector Request Injection (Ghostcat)", "critical", 8009, "ajp13",
     ("CVE-2020-1938",), 9.8),
    ("97833", "MS17-010: Security Update for Microsoft Windows SMB Server (ETERNALBLUE)", "critical", 445, "cifs",
     ("CVE-2017-0144",), 8.1),
    ("187201", "OpenSSH < 9.6 Multiple Vulnerabilities (Terrapin)", "medium", 22, "ssh", ("CVE-2023-48795",), 5.9),
    ("42873", "SSL Medium Strength Cipher Suites Supported (SWEET32)", "high", 443, "www", ("CVE-2016-2183",), 7.5),
    ("100464", "Microsoft IIS 6.0 Unsupported Version Detection", "high", 80, "www", (), 10.0),
    ("11213", "HTTP TRACE / TRACK Methods Allowed", "medium", 80, "www", ("CVE-2003-1567",), 5.3),
    ("57608", "SMB Signing not required", "medium", 445, "cifs", (), 5.3),
    ("10114", "ICMP Timestamp Request Remote Date Disclosure", "low", 0, "general", ("CVE-1999-0524",), 2.1),
)


def _findings(ip: str, rng: random.Random) -> list[ScanFinding]:
    picked = rng.sample(PLUGINS, k=rng.randint(1, 3))
    return [ScanFinding(scanner="nessus", plugin_id=plugin, title=title, severity=severity, ip=ip,
                        port=port or None, protocol="tcp" if port else None, service=service, cve=cve, cvss=cvss,
                        evidence=f"{title}: {ip}:{port}" if port else title)
            for plugin, title, severity, port, service, cve, cvss in picked]


@demo_step("security")
def seed_security(session: Session, principal: Principal, city: DemoCity, seed: int) -> dict[str, int]:
    rng = random.Random(seed + 11)
    cloud_ips = list(session.scalars(
        select(ServerAddress.ip).join(Server, Server.id == ServerAddress.server_id).join(Cloud)
        .where(Cloud.name == "city-cloud", Server.status != "DELETED").order_by(ServerAddress.id)))
    extranet_ips = list(session.scalars(select(IPAddress.address).where(IPAddress.role == AddressRole.HOST)
                                        .order_by(IPAddress.id)))
    hosts = (rng.sample(cloud_ips, k=min(CLOUD_HOSTS, len(cloud_ips)))
             + rng.sample(extranet_ips, k=min(EXTRANET_HOSTS, len(extranet_ips))))
    found = [f for ip in hosts for f in _findings(ip, rng)]
    digest = hashlib.sha256("\n".join(f.fingerprint for f in found).encode()).hexdigest()
    report = ScanReport(scanner="nessus", started_at=None, finished_at=None, hosts=tuple(hosts),
                        findings=tuple(found), file_sha256=digest)
    outcome = findings.store_report(session, principal, report, scope=SCOPE, source="demo-2026Q4.nessus")
    # A host the team grades above its system (a level-2 system's public portal): kept by every later link.
    graded = session.scalar(select(Asset).where(Asset.server_id.is_not(None), Asset.mlps_level == 2)
                            .order_by(Asset.ip).limit(1))
    if graded is not None:
        assets.set_mlps_level(session, principal, graded.id, 3, "对外提供服务的门户主机，按三级防护")
    linked = len(session.scalars(select(Asset.id).where(Asset.server_id.is_not(None))).all())
    counts = {"findings": int(outcome["created"]), "assets": len(hosts), "assets_on_servers": linked,
              "tickets": len(findings.open_tickets(session, principal, scope=SCOPE))}
    # On the hour, so the countdown reads evenly.
    starts = (utcnow() + DRILL_STARTS_IN).replace(minute=0, second=0, microsecond=0)
    drill = drills.create_drill(session, principal, drills.DrillCreate(
        name=f"{starts.year} 护网行动", organiser="市委网信办", starts_at=starts, ends_at=starts + DRILL_DAYS))
    counts["drill_items"] = int(session.scalar(select(func.count()).select_from(DrillItem)
                                               .where(DrillItem.drill_id == drill.id)) or 0)
    return counts
