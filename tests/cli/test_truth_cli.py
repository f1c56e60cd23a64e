"""The untruths of issue 21, each caught at the CLI on both databases (a fresh SQLite or PostgreSQL database of
its own, committed for real): a fresh block is not "unused", an empty level's rate is not 100 %, JSON holds every
row, memory speaks GiB, and a filter value that matches nothing because it does not exist is refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cloudctl.cli import app
from cloudctl.core.cli_support import cli_state
from cloudctl.core.config import Settings, reset_settings
from cloudctl.core.db import dispose_engines, session_scope
from cloudctl.core.output import console
from tests.factories import build_mini_city, make_server, watched_plan

PAGE = 3  # a page smaller than the city, so every list crosses page edges


@pytest.fixture
def cli(fresh_url: str, tmp_path: Path) -> Iterator[CliRunner]:
    """The mini city with a cloud, a VM of 市公安局, a plan and a switch watched for sixty days."""
    reset_settings(Settings(data_dir=tmp_path / "data", database_url=fresh_url,
                            simulator_database_url=f"sqlite:///{tmp_path / 'simulator.db'}",
                            simulator_build_seconds=0, api_page_limit_max=PAGE))
    cli_state.schema_checked = False
    cli_state.act_as = None
    console.width = 200
    with session_scope() as session:
        city = build_mini_city(session, with_cloud=True)
        make_server(session, "990100-D01", city.systems["own"], "c4m8")
        watched_plan(session, terminal="10.64.9.9")
    yield CliRunner()
    cli_state.act_as = None
    reset_settings()
    dispose_engines()


def run(cli: CliRunner, *args: str) -> str:
    result = cli.invoke(app, list(args))
    assert result.exit_code == 0, f"{args}: {result.output}{result.exception!r}"
    return result.output


def test_a_fresh_approval_is_not_flagged_by_the_next_check(cli: CliRunner) -> None:
    applied = json.loads(run(cli, "--as", "dept-user", "extranet", "apply", "--zone", "public", "--prefix-length",
                             "28", "--purpose", "视频监控终端接入", "--signer", "张伟", "--accept-commitment",
                             "-o", "json"))
    block = json.loads(run(cli, "extranet", "approve", str(applied["id"]), "-o", "json"))["allocated"][0]
    run(cli, "extranet", "check")
    quiet = json.loads(run(cli, "extranet", "violations", "--rule", "11", "-o", "json"))
    assert block not in {v["subject"] for v in quiet}


def test_a_department_without_a_level_reads_not_applicable(cli: CliRunner) -> None:
    rows = {r["scope"]: r for r in json.loads(run(cli, "--as", "dept-user", "extranet", "rate", "-o", "json"))}
    assert (rows["vertical"]["required"], rows["vertical"]["rate"]) == (0, None)
    assert rows["vertical"]["rate_reason"]


def test_json_holds_every_row_across_pages(cli: CliRunner) -> None:
    units = json.loads(run(cli, "unit", "list", "-o", "json"))
    assert len(units) == 7 > PAGE
    assert [u["code"] for u in units] == sorted(u["code"] for u in units)
    assert len(json.loads(run(cli, "unit", "list", "--limit", "2", "-o", "json"))) == 2
    assert "showing 3 of 7" in run(cli, "unit", "list")


def test_memory_is_refused_in_gib(cli: CliRunner) -> None:
    refused = cli.invoke(app, ["quota", "set", "990100-D01", "test-cloud", "--ram-gib", "4"])
    assert refused.exit_code == 1
    assert refused.output.startswith("error: ram_gib: ")
    assert "8 GiB" in refused.output
    quota = json.loads(run(cli, "quota", "show", "--unit", "990100-D01", "-o", "json"))[0]
    assert (quota["used_ram_gib"], quota["limit_ram_gib"]) == (8.0, 64.0)


@pytest.mark.parametrize(("args", "named"), [
    (["server", "list", "--status", "RUNNING"], "SHUTOFF"),
    (["quota", "show", "--cloud", "test-clod"], "test-cloud"),
    (["job", "list", "--kind", "provison"], "compute.provision"),
])
def test_an_unknown_filter_value_is_refused(cli: CliRunner, args: list[str], named: str) -> None:
    refused = cli.invoke(app, args)
    assert refused.exit_code == 1
    assert named in refused.output
