"""How long a scrape of /metrics takes for a province-sized dataset, against a bare generate_latest.

    .venv/bin/python bench/exporter.py [--cities 10] [--runs 7]

Builds, in a throw-away SQLite database, ten cities' worth of data: about 20,000 units, 5,000 VMs a
city (50,000 in all), a quota per department and cloud, reclaim recommendations, extranet lines,
devices and violations. Then times, in the same run:

- the baseline: ``generate_latest`` over a registry holding the same series already built;
- the scrape as Prometheus sees it, over the collector ``build_registry()`` gives the API: answered
  from the last reading of the database. Two cases: the reading is fresh, and the reading is stale,
  so the scrape starts the next one in a background thread, which competes with the scrape for the
  GIL while it serialises (the worst case, and what every scrape of a 15 s Prometheus meets);
- the reading itself, what that background thread does (every family read from the database with
  its GROUP BY queries), and a scrape that reads synchronously (``refresh_seconds=0``, as
  ``cloudctl metrics`` does): no scrape waits for this, but it bounds how fresh the values are.

and the security domain: 100,000 findings on 20,000 department hosts with a ticket per department,
alerts, a running duty period owing reports, and a drill's checklist for every department and county.
Target: ≤ 250 ms a scrape, within 3× of the baseline. Prints figures (and each family group's share of
the reading, to show where the time goes), asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402
from prometheus_client.core import Metric  # noqa: E402
from prometheus_client.registry import Collector  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from cloudctl.compute.models import CapacitySnapshot, Cloud, CloudKind, Quota, Server  # noqa: E402
from cloudctl.core.config import Settings, reset_settings  # noqa: E402
from cloudctl.core.db import get_engine  # noqa: E402
from cloudctl.core.migrate import upgrade  # noqa: E402
from cloudctl.core.models import utcnow  # noqa: E402
from cloudctl.extranet.models import (  # noqa: E402
    AccessLink,
    LinkRole,
    LinkStatus,
    NetworkDevice,
    Violation,
    ViolationStatus,
    Zone,
)
from cloudctl.org.models import Unit, UnitKind  # noqa: E402
from cloudctl.reclaim.models import (  # noqa: E402
    ReclaimCampaign,
    Recommendation,
    RecommendationKind,
    RecommendationStatus,
)
from cloudctl.security.models import (  # noqa: E402
    Alert,
    AlertStatus,
    Asset,
    Drill,
    DrillItem,
    DrillPhase,
    DutyKind,
    DutyPeriod,
    Finding,
    ItemStatus,
    ScanImport,
    Severity,
    Ticket,
    TicketStatus,
)
from monitors.collector import CloudctlCollector  # noqa: E402
from monitors.exposition import database_sessions  # noqa: E402

SHAPE = ((UnitKind.DEPARTMENT, 35), (UnitKind.MUNICIPAL_UNIT, 100), (UnitKind.COUNTY, 8))


def _fill(cities: int) -> dict[str, int]:
    engine = get_engine()
    now = utcnow()
    counts = {"units": 0, "servers": 0, "quotas": 0, "recommendations": 0, "violations": 0, "links": 0,
              "findings": 0, "tickets": 0, "alerts": 0, "drill items": 0}
    uid = sid = aid = fid = 0
    severities = list(Severity)
    reporting: list[int] = []
    with engine.begin() as conn:
        conn.execute(insert(ScanImport), [{"id": 1, "scope": "bench", "scanner": "nessus", "file_sha256": "0" * 64,
                                           "source": "bench", "started_at": now, "imported_at": now,
                                           "imported_by": "bench", "hosts": [], "counts": {}}])
        conn.execute(insert(ReclaimCampaign), [{"id": 1, "as_of": date.today() - timedelta(days=1),
                                                "window_days": 30, "started_at": now, "started_by": "bench",
                                                "thresholds": {}, "counts": {}}])
        for c in range(cities):
            units: list[dict[str, object]] = []
            uid += 1
            city_id = uid
            units.append({"id": uid, "code": f"C{c:02d}", "name": f"城市{c}", "kind": UnitKind.CITY,
                          "parent_id": None, "path": f"/{uid}/"})
            departments = []
            for kind, n in SHAPE:
                for i in range(n):
                    uid += 1
                    units.append({"id": uid, "code": f"C{c:02d}-{kind.value[:1].upper()}{i:03d}",
                                  "name": f"{kind.label}{i}", "kind": kind, "parent_id": city_id,
                                  "path": f"/{city_id}/{uid}/"})
                    if kind is UnitKind.DEPARTMENT:
                        departments.append(uid)
                    if kind is UnitKind.COUNTY:
                        county = uid
                        for t in range(14):
                            uid += 1
                            town = uid
                            units.append({"id": uid, "code": f"C{c:02d}-T{i}{t:02d}", "name": f"镇{t}",
                                          "kind": UnitKind.TOWN, "parent_id": county,
                                          "path": f"/{city_id}/{county}/{uid}/"})
                            for v in range(13):
                                uid += 1
                                units.append({"id": uid, "code": f"C{c:02d}-V{i}{t:02d}{v:02d}", "name": f"村{v}",
                                              "kind": UnitKind.VILLAGE, "parent_id": town,
                                              "path": f"/{city_id}/{county}/{town}/{uid}/"})
            conn.execute(insert(Unit), units)
            counts["units"] += len(units)
            conn.execute(insert(Cloud), [{"id": c + 1, "name": f"cloud-{c:02d}", "display_name": f"城市{c}政务云",
                                          "kind": CloudKind.SIMULATOR, "cpu_allocation_ratio": 1.5,
                                          "ram_allocation_ratio": 1.0, "enabled": True}])
            conn.execute(insert(CapacitySnapshot), [
                {"cloud_id": c + 1, "resource": r, "total": t, "reserved": 0, "allocation_ratio": 1.0, "used": t // 2,
                 "taken_at": now} for r, t in (("vcpus", 6045), ("ram_mb", 20_480_000), ("disk_gb", 1_000_000))])
            conn.execute(insert(Quota), [{"unit_id": d, "cloud_id": c + 1, "limit_vcpus": 256, "limit_ram_mb": 524288,
                                          "limit_disk_gb": 10000, "limit_instances": 200, "used_vcpus": 100}
                                         for d in departments])
            counts["quotas"] += len(departments)
            servers = []
            for n in range(5000):
                sid += 1
                servers.append({"id": sid, "cloud_id": c + 1, "provider_id": f"vm-{sid}",
                                "name": f"vm-{sid}", "unit_id": departments[n % len(departments)], "flavor": "c4m8",
                                "vcpus": 4, "ram_mb": 8192, "disk_gb": 40, "status": "ACTIVE"})
            conn.execute(insert(Server), servers)
            counts["servers"] += len(servers)
            recs = [{"server_id": s["id"], "unit_id": s["unit_id"], "kind": RecommendationKind.IDLE,
                     "status": RecommendationStatus.OPEN, "campaign_id": 1, "evidence": {}, "current_flavor": "c4m8",
                     "reclaim_vcpus": 4, "reclaim_ram_mb": 8192, "reclaim_disk_gb": 0, "saving_month": 400.0}
                    for s in servers[::10]]
            conn.execute(insert(Recommendation), recs)
            counts["recommendations"] += len(recs)
            members = [u for u in units if u["kind"] is not UnitKind.CITY]
            conn.execute(insert(AccessLink), [{"unit_id": u["id"], "carrier": "中国电信", "line_type": "MSTP",
                                               "bandwidth_mbps": 100, "role": LinkRole.PRIMARY,
                                               "status": LinkStatus.ACTIVE, "uses_shared_exit": False}
                                              for u in members])
            counts["links"] += len(members)
            conn.execute(insert(NetworkDevice), [{"name": f"{u['code']}-sw1", "host": "10.0.0.1",
                                                  "device_type": "huawei_vrp", "role": "access", "unit_id": u["id"],
                                                  "zone": Zone.PUBLIC, "last_success_at": now} for u in members])
            conn.execute(insert(Violation), [{"rule": 1 + i % 12, "subject": f"C{c}-{i}", "unit_id": u["id"],
                                              "status": ViolationStatus.OPEN, "evidence": {}, "first_seen": now,
                                              "last_seen": now} for i, u in enumerate(members[::10])])
            counts["violations"] += len(members[::10])
            reporting += [u["id"] for u in units if u["kind"] in (UnitKind.DEPARTMENT, UnitKind.COUNTY)]
            tickets = [{"id": c * 1000 + n + 1, "unit_id": d, "scope": "bench", "title": "整改",
                        "deadline": date.today(), "status": TicketStatus.OPEN, "extensions": []}
                       for n, d in enumerate(departments)]
            conn.execute(insert(Ticket), tickets)
            counts["tickets"] += len(tickets)
            assets = []
            for n in range(2000):
                aid += 1
                assets.append({"id": aid, "ip": f"10.{c}.{n // 250}.{n % 250 + 1}",
                               "unit_id": departments[n % len(departments)], "internet_exposed": False,
                               "baseline_checks": 30, "baseline_passed": 20 + n % 11})
            conn.execute(insert(Asset), assets)
            found = []
            for n in range(10_000):
                fid += 1
                asset = assets[n % len(assets)]
                found.append({"id": fid, "scope": "bench", "fingerprint": f"{fid:064x}", "scanner": "nessus",
                              "plugin_id": str(n % 500), "title": "finding", "severity": severities[n % 5],
                              "asset_id": asset["id"], "ip": asset["ip"], "cve": [], "description": "",
                              "solution": "", "evidence": "", "first_seen": now, "last_seen": now, "active": n % 4 != 0,
                              "sla_deadline": date.today() + timedelta(days=n % 60 - 20), "last_import_id": 1,
                              "ticket_id": c * 1000 + (n % len(departments)) + 1 if n % 5 < 3 else None})
            conn.execute(insert(Finding), found)
            counts["findings"] += len(found)
            alerts = [{"source": "ids", "source_ref": f"{c}-{n}", "title": "alert", "severity": severities[n % 5],
                       "received_at": now, "last_received_at": now, "repeats": 0,
                       "status": AlertStatus.CLOSED if n % 4 else AlertStatus.NEW, "raw": {}} for n in range(200)]
            conn.execute(insert(Alert), alerts)
            counts["alerts"] += len(alerts)
        # One duty period running for two days (reports every 4 hours, none in), one drill over every reporting unit.
        conn.execute(insert(DutyPeriod), [{"name": "护网值守", "kind": DutyKind.DRILL,
                                           "starts_at": now - timedelta(days=2), "ends_at": now + timedelta(days=12),
                                           "report_times": [], "every_hours": 4, "zero_reports": True,
                                           "grace_minutes": 30, "reporting_kinds": ["department", "county"]}])
        conn.execute(insert(Drill), [{"id": 1, "name": "护网", "organiser": "bench",
                                      "starts_at": now + timedelta(days=5), "ends_at": now + timedelta(days=20),
                                      "phase": DrillPhase.SELF_CHECK, "created_by": "bench"}])
        items = [{"drill_id": 1, "unit_id": u, "key": f"k{k}", "title": "item", "phase": list(DrillPhase)[k % 4],
                  "position": k, "mandatory": True, "due_at": now + timedelta(days=k - 8),
                  "status": list(ItemStatus)[(u + k) % 4]} for u in reporting for k in range(13)]
        conn.execute(insert(DrillItem), items)
        counts["drill items"] = len(items)
    return counts


def _timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


class _Prebuilt(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cities", type=int, default=10)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        reset_settings(Settings(data_dir=Path(tmp), database_url=f"sqlite:///{tmp}/bench.db"))
        upgrade(get_engine())
        started = time.perf_counter()
        counts = _fill(args.cities)
        print(f"dataset ({time.perf_counter() - started:.1f}s to build): "
              + ", ".join(f"{n:,} {k}" for k, n in counts.items()))
        clock = [0.0]
        collector = CloudctlCollector(database_sessions, refresh_seconds=10, max_age_seconds=3600,
                                      clock=lambda: clock[0])
        registry = CollectorRegistry(auto_describe=False)
        registry.register(collector)  # what build_registry() gives the API
        first = generate_latest(registry)  # the first scrape waits for the first reading
        series = sum(1 for line in first.decode().splitlines() if line and not line.startswith("#"))
        prebuilt = CollectorRegistry(auto_describe=False)
        prebuilt.register(_Prebuilt(list(registry.collect())))
        synchronous = CollectorRegistry(auto_describe=False)
        synchronous.register(CloudctlCollector(database_sessions, refresh_seconds=0))
        bare, fresh, stale, reading, blocking = [], [], [], [], []
        for _ in range(args.runs):
            bare.append(_timed(lambda: generate_latest(prebuilt)))
            fresh.append(_timed(lambda: generate_latest(registry)))
            clock[0] += 11  # stale: this scrape starts the next reading in the background
            stale.append(_timed(lambda: generate_latest(registry)))
            collector.wait_for_refresh()
            reading.append(_timed(collector.refresh))
            blocking.append(_timed(lambda: generate_latest(synchronous)))
        b = statistics.median(bare)
        shares = []
        with database_sessions() as session:
            for name in ("_clouds", "_quotas", "_requests", "_reclaim", "_extranet", "_security", "_drills", "_jobs"):
                started = time.perf_counter()
                list(getattr(collector, name)(session))
                shares.append(f"{name[1:]} {(time.perf_counter() - started) * 1000:.0f}")

        def line(label: str, times: list[float], note: str) -> str:
            m = statistics.median(times)
            return f"{label:28s} {m * 1000:8.1f} ms  ratio {m / b:5.2f}  {note}"

        print(f"series exported              {series:,} ({len(first) / 1024:.0f} KiB)")
        print(f"bare generate_latest         {b * 1000:8.1f} ms  (same series, pre-built registry; baseline)")
        print(line("scrape, reading fresh", fresh, "(targets: ≤ 250 ms, ratio ≤ 3)"))
        print(line("scrape, starting a reading", stale, "(the reading runs beside it in a thread; same targets)"))
        print(line("the reading (database)", reading, "(in the background, at most every 10 s)"))
        print(line("scrape reading synchronously", blocking, "(refresh_seconds=0: cloudctl metrics)"))
        print("the reading by group, ms     " + ", ".join(shares))
        reset_settings()


if __name__ == "__main__":
    main()
