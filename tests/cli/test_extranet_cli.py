"""`cloudctl extranet …` over the seeded demo city: access rate, plan, applications, compliance."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cloudctl.cli import app
from cloudctl.demo.city import generate_city
from cloudctl.extranet.demo import plan_wire
from tests.cli.conftest import invoke


def test_access_rate_names_the_missing_units(demo: CliRunner) -> None:
    rows = {r["scope"]: r for r in json.loads(invoke(demo, "extranet", "rate", "-o", "json"))}
    wire = plan_wire(generate_city(2026), 2026)
    horizontal, vertical = rows["horizontal"], rows["vertical"]
    assert (horizontal["required"], horizontal["connected"]) == (135, 132)
    assert horizontal["missing"] == wire.missing["horizontal"]
    assert (vertical["required"], vertical["connected"]) == (1621, 1589)
    assert sorted(vertical["missing"]) == wire.missing["vertical"]
    assert abs(horizontal["rate"] - 0.9778) < 1e-4
    counties = [r for scope, r in rows.items() if scope not in ("horizontal", "vertical")]
    assert len(counties) == 8
    assert sum(r["required"] for r in counties) == 1621


def test_a_department_reads_its_own_rate_and_an_empty_level_is_not_applicable(demo: CliRunner) -> None:
    rows = {r["scope"]: r for r in json.loads(invoke(demo, "--as", "dept-d01", "extranet", "rate", "-o", "json"))}
    assert (rows["vertical"]["required"], rows["vertical"]["rate"]) == (0, None)
    assert rows["vertical"]["rate_reason"]
    assert rows["horizontal"]["required"] >= 1
    table = invoke(demo, "--as", "dept-d01", "extranet", "rate")
    vertical = next(line for line in table.splitlines() if "vertical" in line)
    assert "n/a" in vertical
    assert "%" not in vertical
    # The missing units by code and name, so the reader knows whom to call.
    everyone = {r["scope"]: r for r in json.loads(invoke(demo, "extranet", "rate", "-o", "json"))}
    first_code, first_name = everyone["horizontal"]["missing"][0], everyone["horizontal"]["missing_names"][0]
    assert f"{first_code} {first_name}" in invoke(demo, "extranet", "rate", "--missing")


def test_check_lists_every_rule_and_a_department_sees_only_its_own(demo: CliRunner) -> None:
    counts = json.loads(invoke(demo, "extranet", "check", "-o", "json"))
    wire = plan_wire(generate_city(2026), 2026)
    assert counts["found"] == len(wire.expected)
    violations = json.loads(invoke(demo, "extranet", "violations", "-o", "json"))
    assert {(v["rule"], v["subject"]) for v in violations} == wire.expected
    assert all(v["evidence"] and v["deadline"] for v in violations)
    nat = next(v for v in violations if v["rule"] == 7)
    mine = json.loads(invoke(demo, "--as", "dept-" + nat["unit_code"].rsplit("-", 1)[-1].lower(),
                             "extranet", "violations", "-o", "json"))
    assert [v["id"] for v in mine] == [nat["id"]]
    # A second check finds the same violations and opens nothing new.
    again = json.loads(invoke(demo, "extranet", "check", "-o", "json"))
    assert (again["opened"], again["updated"]) == (0, len(wire.expected))
    waived = demo.invoke(app, ["extranet", "violation", str(nat["id"]), "--status", "waived"])
    assert waived.exit_code == 1
    assert waived.output.strip() == "error: note: say why the violation is waived"
    shown = json.loads(invoke(demo, "extranet", "violation", str(nat["id"]), "--status", "rectifying",
                              "--note", "已通知单位拆除私设路由器", "-o", "json"))
    assert shown["status"] == "rectifying"
    scorecard = json.loads(invoke(demo, "extranet", "scorecard", "--limit", "5", "-o", "json"))
    assert scorecard[0]["score"] <= scorecard[-1]["score"]
    assert not scorecard[0]["connected"]


def test_apply_approve_and_refusals(demo: CliRunner) -> None:
    refused = demo.invoke(app, ["--as", "dept-d03", "extranet", "apply", "--zone", "public", "--prefix-length", "28",
                                "--purpose", "新增视频会议终端", "--signer", "王磊"])
    assert refused.exit_code == 1
    assert refused.output.strip().startswith("error: commitment.accepted")
    app_json = json.loads(invoke(demo, "--as", "dept-d03", "extranet", "apply", "--zone", "public",
                                 "--prefix-length", "28", "--purpose", "新增视频会议终端", "--signer", "王磊",
                                 "--accept-commitment", "-o", "json"))
    assert (app_json["unit_code"], app_json["status"]) == ("990100-D03", "submitted")
    approved = json.loads(invoke(demo, "extranet", "approve", str(app_json["id"]), "-o", "json"))
    block = approved["allocated"][0]
    assert block.endswith("/28")
    twice = demo.invoke(app, ["extranet", "approve", str(app_json["id"])])
    assert twice.exit_code == 1
    assert "not submitted" in twice.output
    prefixes = json.loads(invoke(demo, "extranet", "prefix", "list", "--unit", "990100-D03", "-o", "json"))
    assert block in {p["prefix"] for p in prefixes}
    assert all(0 <= p["utilisation"] <= 1 for p in prefixes)
    # The wire has been watched for forty days, but the block is a day old: not "unused for 30 days".
    invoke(demo, "extranet", "check")
    quiet = json.loads(invoke(demo, "--as", "dept-d03", "extranet", "violations", "--rule", "11", "-o", "json"))
    assert block not in {v["subject"] for v in quiet}


def test_plan_export_and_import_round_trip(demo: CliRunner, tmp_path: Path) -> None:
    exported = demo.invoke(app, ["extranet", "prefix", "export", "--format", "yaml"])
    assert exported.exit_code == 0
    assert "10.64.0.0/12" in exported.output
    bad = tmp_path / "plan.yml"
    bad.write_text("- {kind: prefix, prefix: 10.64.0.0/14, zone: public, status: container}\n", encoding="utf-8")
    result = demo.invoke(app, ["extranet", "prefix", "import", str(bad)])
    assert result.exit_code == 1
    assert result.output.strip().startswith("error: plan.yml: rows.1.prefix: 10.64.0.0/14 already exists")
