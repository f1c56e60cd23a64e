"""`cloudctl reclaim …` over the seeded demo city: the campaign finds exactly what the generator planted."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from cloudctl.cli import app
from cloudctl.compute.models import Server, Volume
from cloudctl.compute.providers import simulator_store
from cloudctl.compute.providers.simulator import SimWorkload
from cloudctl.core.db import session_scope
from cloudctl.core.models import utcnow
from cloudctl.demo.seed import dept_username
from tests.cli.conftest import invoke
from tests.support.browser import artifact_dir, dump_dom, screenshot


def planted() -> dict[str, set[str]]:
    """What the demo generator planted, read from the simulator's workloads and the inventory's states."""
    with simulator_store().session() as sim:
        workloads = {w.server_id: w for w in sim.scalars(select(SimWorkload))}
    now = utcnow()
    expected: dict[str, set[str]] = {"idle": set(), "oversized": set(), "zombie": set()}
    with session_scope() as session:
        for server in session.scalars(select(Server).where(Server.status != "DELETED")):
            workload = workloads.get(server.provider_id)
            if server.status == "SHUTOFF" and server.status_since and now - server.status_since > timedelta(days=31):
                expected["zombie"].add(server.name)
            elif workload is None or server.status != "ACTIVE":
                continue
            elif workload.profile == "idle" and server.launched_at and now - server.launched_at > timedelta(days=15):
                expected["idle"].add(server.name)  # the young idle ones are too young to judge
            elif workload.profile == "steady":
                expected["oversized"].add(server.name)
    return expected


def planted_volumes() -> dict[str, set[str]]:
    """The demo's volumes left unattached 30 days or more by the end of yesterday, and those of deleted servers."""
    cutoff = datetime.combine(utcnow().date() - timedelta(days=1), datetime.min.time(), tzinfo=UTC) \
        - timedelta(days=29)
    with session_scope() as session:
        live = select(Volume.name).where(Volume.status != "deleted", Volume.unit_id.is_not(None))
        idle = set(session.scalars(live.where(Volume.server_id.is_(None), Volume.detached_since < cutoff)))
        orphan = set(session.scalars(live.join(Server, Volume.server_id == Server.id)
                                     .where(Server.status == "DELETED")))
    return {"volume_idle": idle, "volume_orphan": orphan}


def test_the_campaign_finds_exactly_the_planted_servers(demo: CliRunner) -> None:
    # The demo seed ran the first campaign; this one finds the same servers and updates their recommendations.
    campaign = json.loads(invoke(demo, "reclaim", "analyze", "-o", "json"))
    assert campaign["counts"]["created"] + campaign["counts"]["updated"] == campaign["counts"]["idle"] \
        + campaign["counts"]["oversized"] + campaign["counts"]["zombie"]
    # The campaign and its job name one operator, the same way.
    job = json.loads(invoke(demo, "job", "show", str(campaign["job_id"]), "-o", "json"))
    assert campaign["started_by"] == job["created_by"]
    assert campaign["started_by"].startswith("cli:")
    recs = json.loads(invoke(demo, "reclaim", "list", "-o", "json"))
    found: dict[str, set[str]] = {"idle": set(), "oversized": set(), "zombie": set(), "volume_idle": set(),
                                  "volume_orphan": set()}
    for rec in recs:
        found[rec["kind"]].add(rec["server"])
        assert rec["status"] == "open"
        assert rec["saving_month"] > 0
        if rec["volume_id"] is None:
            assert rec["evidence"]["verdict"] == rec["kind"]
    # Storage: the volumes the generator left unattached for a month or more.
    expected_volumes = planted_volumes()
    assert expected_volumes["volume_idle"]
    assert {k: found.pop(k) for k in list(expected_volumes)} == expected_volumes
    expected = planted()
    assert {k: len(v) for k, v in expected.items()} == {"idle": 27, "oversized": 42, "zombie": 16}
    assert found == expected
    # Every oversized one gets a flavor of the city cloud that is smaller than its own.
    assert all(r["recommended_flavor"] and r["recommended_flavor"] != r["current_flavor"]
               for r in recs if r["kind"] == "oversized")
    # A second run updates the same recommendations.
    again = json.loads(invoke(demo, "reclaim", "analyze", "-o", "json"))
    assert (again["counts"]["created"] + again["counts"]["volumes_created"],
            again["counts"]["updated"] + again["counts"]["volumes_updated"]) == (0, len(recs))


def test_notify_appeal_decide_and_execute(demo: CliRunner) -> None:
    recs = json.loads(invoke(demo, "reclaim", "list", "--kind", "idle", "-o", "json"))
    first, second = recs[0], recs[1]
    invoke(demo, "reclaim", "notify", str(first["id"]), str(second["id"]), "--grace-days", "0")
    dept = dept_username(first["unit_code"])
    mine = json.loads(invoke(demo, "--as", dept, "reclaim", "list", "-o", "json"))
    assert {r["unit_code"] for r in mine} == {first["unit_code"]}
    # The grace period of 0 days is already over: the appeal comes too late.
    late = demo.invoke(app, ["--as", dept, "reclaim", "appeal", str(first["id"]), "--reason", "灾备节点，平时空闲"])
    assert late.exit_code == 1
    assert late.output.strip().startswith("error: due_at")
    plan = json.loads(invoke(demo, "reclaim", "execute", "--dry-run", "-o", "json"))
    assert {(s["recommendation"], s["outcome"]) for s in plan} == {(first["id"], "planned"), (second["id"], "planned")}
    done = json.loads(invoke(demo, "reclaim", "execute", str(first["id"]), "-o", "json"))
    assert [(s["action"], s["outcome"]) for s in done] == [("shelve_offload", "done")]
    shown = json.loads(invoke(demo, "reclaim", "show", str(first["id"]), "-o", "json"))
    assert shown["status"] == "executed"
    server = json.loads(invoke(demo, "server", "show", str(shown["server_id"]), "-o", "json"))
    assert server["status"] == "SHELVED_OFFLOADED"
    audit = json.loads(invoke(demo, "audit", "list", "--entity", "reclaim_recommendation", "-o", "json"))
    assert {"notify", "execute"} <= {a["action"] for a in audit}


def test_a_volume_is_snapshotted_then_deleted(demo: CliRunner) -> None:
    recs = json.loads(invoke(demo, "reclaim", "list", "--kind", "volume_idle", "--cloud", "city-cloud", "-o", "json"))
    rec = recs[0]
    assert (rec["server_id"], rec["action"]) == (None, None)
    invoke(demo, "reclaim", "notify", str(rec["id"]), "--grace-days", "0")
    plan = json.loads(invoke(demo, "reclaim", "execute", "--dry-run", str(rec["id"]), "-o", "json"))
    assert [(s["action"], s["outcome"], s["server"]) for s in plan] == [("snapshot_delete", "planned", rec["server"])]
    done = json.loads(invoke(demo, "reclaim", "execute", str(rec["id"]), "-o", "json"))
    assert [(s["action"], s["outcome"], s["target"]) for s in done] == [("snapshot_delete", "done", "deleted")]
    shown = json.loads(invoke(demo, "reclaim", "show", str(rec["id"]), "-o", "json"))
    assert shown["status"] == "executed"
    assert shown["snapshot_id"]
    volume = json.loads(invoke(demo, "volume", "show", str(rec["volume_id"]), "-o", "json"))
    assert volume["status"] == "deleted"
    bad = demo.invoke(app, ["reclaim", "list", "--kind", "volume"])
    assert bad.exit_code != 0
    assert "Traceback" not in bad.output


def test_summary_by_unit_and_cloud(demo: CliRunner) -> None:
    by_cloud = json.loads(invoke(demo, "reclaim", "summary", "--by", "cloud", "-o", "json"))
    city = next(r for r in by_cloud if r["key"] == "city-cloud")
    assert city["servers"] == 510
    assert 0 < city["used_vcpus"] < city["vcpus"]
    assert city["reclaimable_vcpus"] > 100
    bad = demo.invoke(app, ["reclaim", "summary", "--by", "county"])
    assert bad.exit_code == 1
    assert bad.output.strip().startswith("error: by")


def test_import_refuses_a_bad_file_in_one_line(demo: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "summaries.csv"
    path.write_text("server,day,metric,p95,p99,max,mean,samples\n"
                    "990100-d01-s1-01,2026-01-05,cpu,0.2,0.3,0.5,0.1,288\n"
                    "990100-d01-s1-01,2026-01-05,mem,95,97,99,90,288\n", encoding="utf-8")
    result = demo.invoke(app, ["reclaim", "import", str(path)])
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1
    assert "rows.3.max" in result.output  # the row as a spreadsheet shows it: the header is row 1
    missing = demo.invoke(app, ["reclaim", "import", str(tmp_path / "nope.csv")])
    assert missing.exit_code == 1
    assert missing.output.strip().startswith("error: nope.csv: no such file")


@pytest.mark.slow
def test_the_report_opens_in_a_browser(demo: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "report"
    invoke(demo, "reclaim", "report", "--out", str(out))
    names = sorted(p.name for p in out.iterdir())
    assert names == ["reclaim-capacity-forecast.csv", "reclaim-capacity-history.csv", "reclaim-purchase-planning.csv",
                     "reclaim-recommendations.csv", "reclaim-report.html", "reclaim-systems.csv", "reclaim-units.csv",
                     "reclaim-volumes.csv"]
    unattached = (out / "reclaim-volumes.csv").read_text(encoding="utf-8-sig").splitlines()
    assert len(unattached) > 1  # the demo left data volumes unattached for months
    forecast = (out / "reclaim-capacity-forecast.csv").read_text(encoding="utf-8-sig").splitlines()
    city_cpu = next(line for line in forecast if line.startswith("city-cloud,vcpus,"))
    assert city_cpu.count("-") >= 8  # four forecast dates: without and with reclaim, by each model
    planning = (out / "reclaim-purchase-planning.csv").read_text(encoding="utf-8-sig").splitlines()
    assert planning[0].startswith("cloud,name,capacity_vcpus")
    assert any(line.startswith("city-cloud,市政务云中心,6045,") for line in planning)
    page = (out / "reclaim-report.html").as_uri()
    dom = dump_dom(page)
    assert "资源回收分析报告" in dom
    assert "市政务云中心" in dom
    assert dom.count("<rect") > 40  # the per-unit bars and the histograms were drawn
    shot = screenshot(page, artifact_dir() / "reclaim-report.png", height=2400)
    assert shot.stat().st_size > 20_000
