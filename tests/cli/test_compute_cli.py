"""`cloudctl cloud …` and `cloudctl quota …` over the seeded demo city."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from cloudctl.cli import app
from tests.cli.conftest import invoke


def test_capacity_of_the_city_cloud_matches_the_real_city(demo: CliRunner) -> None:
    rows = {r["resource"]: r for r in json.loads(invoke(demo, "cloud", "capacity", "city-cloud", "-o", "json"))}
    assert rows["vcpus"]["capacity"] == 6045
    assert (rows["ram"]["capacity"], rows["ram"]["unit"]) == (20000, "GiB")
    assert 0 < rows["vcpus"]["allocated"] < rows["vcpus"]["capacity"]


def test_clouds_flavors_and_quotas(demo: CliRunner) -> None:
    clouds = json.loads(invoke(demo, "cloud", "list", "-o", "json"))
    assert {c["name"] for c in clouds} == {"city-cloud", "unicom-cloud", "mobile-cloud", "container-cloud"}
    flavors = json.loads(invoke(demo, "cloud", "flavors", "city-cloud", "-o", "json"))
    assert flavors[0] == {"name": "c1m2", "vcpus": 1, "ram_gib": 2.0, "disk_gib": 40}
    mine = json.loads(invoke(demo, "--as", "dept-d01", "quota", "show", "-o", "json"))
    assert {q["unit_code"] for q in mine} == {"990100-D01"}
    used = mine[0]["used_vcpus"]
    assert used > 0  # the demo's VMs
    updated = json.loads(invoke(demo, "quota", "set", "990100-D01", "city-cloud", "--vcpus", str(used + 100), "-o",
                                "json"))
    assert updated["limit_vcpus"] == used + 100
    synced = json.loads(invoke(demo, "quota", "sync", "990100-D01", "city-cloud", "-o", "json"))
    assert (synced["limit_vcpus"], synced["used_vcpus"]) == (used + 100, used)
    assert synced["synced_at"] is not None
    everything = json.loads(invoke(demo, "quota", "sync", "-o", "json"))
    assert len(everything) >= 35
    assert all(q["synced_at"] for q in everything)
    below = demo.invoke(app, ["quota", "set", "990100-D01", "city-cloud", "--vcpus", str(used - 1)])
    assert below.exit_code == 1
    assert "cannot go below" in below.output


def test_demo_servers_requests_and_provisioning(demo: CliRunner) -> None:
    servers = json.loads(invoke(demo, "server", "list", "--limit", "1000", "-o", "json"))
    assert len(servers) == 510
    assert {s["status"] for s in servers} == {"ACTIVE", "SHUTOFF"}
    assert not [s for s in servers if s["orphan"]]
    pending = json.loads(invoke(demo, "request", "list", "--status", "submitted", "-o", "json"))
    assert len(pending) == 4
    # The demo's queue holds requests that fit and one that does not: the latter is refused whole.
    outcomes = {str(p["id"]): demo.invoke(app, ["request", "approve", str(p["id"])]) for p in pending}
    assert sorted(r.exit_code for r in outcomes.values()) == [0, 0, 0, 1]
    refused = next(r for r in outcomes.values() if r.exit_code)
    assert "does not fit" in refused.output
    request_id = next(i for i, r in outcomes.items() if r.exit_code == 0)
    assert "ran 3 job(s)" in invoke(demo, "job", "work", "--once")
    assert json.loads(invoke(demo, "request", "show", request_id, "-o", "json"))["status"] == "fulfilled"
    refused_id = next(i for i, r in outcomes.items() if r.exit_code)
    assert demo.invoke(app, ["request", "reject", refused_id]).exit_code != 0  # --reason is required
    invoke(demo, "request", "reject", refused_id, "--reason", "超出配额，请先申请扩容")


def test_bad_quota_input_is_one_line(demo: CliRunner) -> None:
    result = demo.invoke(app, ["quota", "set", "990100-D01", "city-cloud", "--vcpus", "-5"])
    assert result.exit_code == 1
    assert result.output.strip().startswith("error: vcpus")
    result = demo.invoke(app, ["quota", "set", "990100-D01", "nowhere", "--vcpus", "5"])
    assert result.exit_code == 1
    assert "no cloud named 'nowhere'" in result.output


def test_showback_csv(demo: CliRunner) -> None:
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(invoke(demo, "report", "showback", "--month", "2026-11", "-o", "csv"))))
    assert sum(int(r["servers"]) for r in rows) >= 510
    assert {r["unit_code"] for r in rows} >= {"990100-D01"}
    assert all(float(r["cost_cny"]) > 0 for r in rows)


def test_resize_a_demo_server_and_refuse_a_bad_flavor(demo: CliRunner) -> None:
    servers = json.loads(invoke(demo, "server", "list", "--status", "ACTIVE", "--limit", "1000", "-o", "json"))
    server = next(s for s in servers if s["flavor"] == "c4m8")
    resized = json.loads(invoke(demo, "server", "resize", str(server["id"]), "c2m4", "-o", "json"))
    assert (resized["flavor"], resized["vcpus"], resized["status"]) == ("c2m4", 2, "ACTIVE")
    result = demo.invoke(app, ["server", "resize", str(server["id"]), "c999m1"])
    assert result.exit_code == 1
    assert result.output.strip().startswith("error: flavor")
    assert len(result.output.strip().splitlines()) == 1


def test_memory_is_given_and_refused_in_gib(demo: CliRunner) -> None:
    used = json.loads(invoke(demo, "quota", "show", "--unit", "990100-D01", "--cloud", "city-cloud",
                             "-o", "json"))[0]["used_ram_gib"]
    assert used > 1
    below = demo.invoke(app, ["quota", "set", "990100-D01", "city-cloud", "--ram-gib", "1"])
    assert below.exit_code == 1
    assert below.output.startswith("error: ram_gib: ")
    assert f"{used:g} GiB" in below.output
    assert "MiB" not in below.output
    assert "ram_mb" not in below.output
    table = invoke(demo, "quota", "show", "--unit", "990100-D01")
    assert "RAM GiB" in table


def test_a_quota_increase_approval_says_what_it_did(demo: CliRunner) -> None:
    from sqlalchemy import select

    from cloudctl.compute import provisioning
    from cloudctl.compute.schemas import RequestCreate
    from cloudctl.core.db import session_scope
    from cloudctl.org.models import BusinessSystem, Unit, User
    from cloudctl.org.service import principal_for_user

    with session_scope() as session:
        user = session.scalars(select(User).where(User.username == "dept-d01")).one()
        system = session.scalars(select(BusinessSystem).join(Unit).where(Unit.code == "990100-D01")).first()
        assert system is not None
        request = provisioning.submit_request(session, principal_for_user(user), RequestCreate.model_validate({
            "business_system": system.id, "cloud": "city-cloud", "justification": "新系统上线，扩容配额",
            "items": [{"kind": "quota", "vcpus": 8, "ram_gib": 16}]}))
        request_id = request.id
    # More quota asked by a department is its leader's decision first, then ops'.
    led = invoke(demo, "request", "approve", str(request_id))
    assert "approved by its department leader" in led
    approved = invoke(demo, "request", "approve", str(request_id))
    assert "None" not in approved
    assert "quota on city-cloud raised" in approved
    shown = json.loads(invoke(demo, "request", "show", str(request_id), "-o", "json"))
    assert (shown["status"], shown["job_id"], shown["items"][0]["ram_gib"]) == ("fulfilled", None, 16.0)


def test_showback_csv_neutralises_formulas_and_the_cli_prints_no_raw_control_characters(demo: CliRunner) -> None:
    """A department names its system like a formula: the CSV (opened in Excel) shows it as text. A name stored
    with an escape sequence before names were checked prints as ␛, never as ESC."""
    import csv
    import io

    from sqlalchemy import select

    from cloudctl.compute.models import Server
    from cloudctl.core.db import session_scope
    from cloudctl.org.models import BusinessSystem

    with session_scope() as session:
        system = session.scalar(select(BusinessSystem).join(Server, Server.business_system_id == BusinessSystem.id)
                                .order_by(BusinessSystem.id).limit(1))
        assert system is not None
        system_id, original = system.id, system.name
    formula = '=HYPERLINK("http://evil.example/x","详情")'
    invoke(demo, "system", "update", str(system_id), "--name", formula)
    try:
        rows = list(csv.DictReader(io.StringIO(invoke(demo, "report", "showback", "--month", "2026-11", "-o",
                                                      "csv"))))
        cells = {r["business_system"] for r in rows}
        assert "'" + formula in cells
        assert formula not in cells
        assert all(not str(v).startswith(("=", "+", "@")) for r in rows for v in r.values())
    finally:
        invoke(demo, "system", "update", str(system_id), "--name", original)

    with session_scope() as session:
        stored = session.get(BusinessSystem, system_id)
        assert stored is not None
        stored.description = "二期\x1b[2J\x1b]0;pwned\x07\u202e建设"
    shown = invoke(demo, "system", "show", str(system_id))
    assert "\x1b" not in shown
    assert "\x07" not in shown
    assert "\u202e" not in shown
    assert "␛[2J" in shown
    as_json = invoke(demo, "system", "show", str(system_id), "-o", "json")
    assert "\x1b" not in as_json
    assert "\u202e" not in as_json
    assert json.loads(as_json)["description"] == "二期\x1b[2J\x1b]0;pwned\x07\u202e建设"


def test_volume_quotas_per_type(demo: CliRunner) -> None:
    synced = json.loads(invoke(demo, "volume", "quota", "sync", "city-cloud", "-o", "json"))
    used = {(q["unit_code"], q["volume_type"]): q["used_gib"] for q in synced}
    assert {q["volume_type"] for q in synced} == {"ssd", "hdd"}
    assert sum(used.values()) > 0  # the demo's data volumes
    unit, kind = max(used, key=lambda key: used[key])
    quota = json.loads(invoke(demo, "volume", "quota", "set", unit, "city-cloud", kind,
                              "--limit-gib", str(used[(unit, kind)] + 100), "-o", "json"))
    assert (quota["limit_gib"], quota["used_gib"]) == (used[(unit, kind)] + 100, used[(unit, kind)])
    below = demo.invoke(app, ["volume", "quota", "set", unit, "city-cloud", kind, "--limit-gib", "1"])
    assert below.exit_code == 1
    assert below.output.strip().startswith("error: limit_gib")
    both = demo.invoke(app, ["volume", "quota", "set", unit, "city-cloud", kind])
    assert both.exit_code == 1
    assert len(both.output.strip().splitlines()) == 1
    listed = json.loads(invoke(demo, "volume", "quota", "list", "--unit", unit, "-o", "json"))
    assert [(q["volume_type"], q["limit_gib"]) for q in listed if q["volume_type"] == kind] == [
        (kind, used[(unit, kind)] + 100)]
    lifted = json.loads(invoke(demo, "volume", "quota", "set", unit, "city-cloud", kind, "--unlimited", "-o", "json"))
    assert lifted["limit_gib"] is None
