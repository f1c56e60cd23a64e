"""What the CLI prints is true: JSON holds every matching row, a table says which rows it shows, nothing is cut
to "…", and every time a person reads is in one zone, named."""

from __future__ import annotations

import json
import re

from typer.testing import CliRunner

from cloudctl.cli import app
from cloudctl.core.config import get_settings, reset_settings
from cloudctl.core.output import console
from tests.cli.conftest import invoke


def test_json_prints_every_matching_row_unless_a_limit_is_given(demo: CliRunner) -> None:
    every = json.loads(invoke(demo, "server", "list", "-o", "json"))
    assert len(every) == 510  # the demo city's VMs, not the first page of 50
    assert len({s["id"] for s in every}) == 510
    assert len(json.loads(invoke(demo, "server", "list", "--limit", "7", "-o", "json"))) == 7
    rest = json.loads(invoke(demo, "server", "list", "--offset", "500", "-o", "json"))
    assert [s["id"] for s in rest] == [s["id"] for s in every[500:]]
    # The same in other lists: one helper prints them all.
    units = json.loads(invoke(demo, "unit", "list", "-o", "json"))
    assert len(units) > 1000
    assert len(json.loads(invoke(demo, "extranet", "scorecard", "-o", "json"))) > 50


def test_a_table_shows_a_page_and_says_of_how_many(demo: CliRunner) -> None:
    page = invoke(demo, "server", "list")
    assert "showing 50 of 510" in page
    assert "--output json prints them all" in page
    later = invoke(demo, "server", "list", "--offset", "500", "--limit", "20")
    assert "showing rows 501–510 of 510" in later
    assert "prints them all" not in later


def test_at_80_columns_unit_codes_are_whole(demo: CliRunner) -> None:
    console.width = 80
    table = invoke(demo, "unit", "list", "--kind", "village", "--limit", "5")
    codes = [u["code"] for u in json.loads(invoke(demo, "unit", "list", "--kind", "village", "--limit", "5",
                                                   "-o", "json"))]
    assert all(len(line) <= 80 for line in table.splitlines())
    assert all(code in table for code in codes)
    assert "…" not in table


def test_request_show_lists_its_items_once(demo: CliRunner) -> None:
    request = json.loads(invoke(demo, "request", "list", "--limit", "1", "-o", "json"))[0]
    shown = invoke(demo, "request", "show", str(request["id"]))
    assert not re.search(r"^\s*items\b", shown, re.MULTILINE)
    assert request["items"][0]["flavor"] in shown


def test_times_a_person_reads_are_in_the_display_zone_with_the_zone(demo: CliRunner) -> None:
    notified = invoke(demo, "reclaim", "notify", "--grace-days", "3")
    assert re.search(r"appeals until \d{4}-\d\d-\d\d \d\d:\d\d UTC\+08:00$", notified.strip())
    rec = json.loads(invoke(demo, "reclaim", "list", "--status", "notified", "--limit", "1", "-o", "json"))[0]
    assert rec["due_at"].endswith("Z")  # machine output: UTC, with its offset
    table = invoke(demo, "reclaim", "list", "--status", "notified", "--limit", "1")
    assert "times 时间: UTC+08:00 (Asia/Shanghai)" in table
    # Another display zone is one setting away, and every time follows it.
    reset_settings(get_settings().model_copy(update={"display_timezone": "Asia/Kolkata"}))
    shown = invoke(demo, "reclaim", "show", str(rec["id"]))
    assert "UTC+05:30" in shown
    assert "UTC+08:00" not in shown
    result = demo.invoke(app, ["reclaim", "notify", str(rec["id"])])
    assert "UTC" not in result.output or "UTC+05:30" in result.output


def test_an_unknown_filter_value_is_refused_naming_the_accepted_ones(demo: CliRunner) -> None:
    for args, named in ((["server", "list", "--status", "RUNNING"], "SHUTOFF"),
                        (["job", "list", "--kind", "provison"], "compute.provision"),
                        (["quota", "show", "--cloud", "city-clod"], "city-cloud"),
                        (["reclaim", "list", "--cloud", "city-clod"], "city-cloud")):
        refused = demo.invoke(app, args)
        assert refused.exit_code == 1, args
        assert named in refused.output, refused.output
    # A misspelt option is Click's to refuse, as it always was.
    assert demo.invoke(app, ["request", "list", "--tiket", "50"]).exit_code == 2


def test_a_name_is_shown_as_typed_never_read_as_markup(demo: CliRunner) -> None:
    """A department names its system what it likes; the operator's table shows those brackets, unstyled and whole,
    and a stray closing tag cannot break the listing."""
    unit = json.loads(invoke(demo, "unit", "list", "--kind", "department", "--limit", "1", "-o", "json"))[0]
    name = "[red]门户[/red] [/] [bold]"
    created = json.loads(invoke(demo, "system", "create", "--unit", unit["code"], "--name", name,
                                "--mlps-level", "2", "-o", "json"))
    assert name in invoke(demo, "system", "show", str(created["id"]))
    assert name in invoke(demo, "system", "list", "--unit", unit["code"], "--limit", "1000")


def test_an_id_beyond_64_bits_is_one_line_not_a_traceback(demo: CliRunner) -> None:
    for args in (["system", "show", str(2**64)], ["job", "show", str(2**70)], ["reclaim", "appeal", str(2**64),
                                                                              "--reason", "仍在使用"]):
        result = demo.invoke(app, args)
        assert result.exit_code == 1, result.output
        assert result.output.strip() == f"error: a number given is beyond what the database keeps (at most {2**63 - 1})"
        assert "Traceback" not in result.output


def test_a_message_naming_a_record_prints_the_name_as_typed(demo: CliRunner) -> None:
    """One-line messages name what they touched; a name with brackets is printed as it is, not parsed as markup
    (a stray ``[/]`` used to end in Rich's MarkupError, a traceback)."""
    name = "[/] [bold]春节值守[/bold] [/x]"
    result = demo.invoke(app, ["sec", "duty", "period-create", "--name", name, "--kind", "holiday",
                               "--starts", "2027-02-10T00:00+08:00", "--ends", "2027-02-12T00:00+08:00",
                               "--report-time", "09:00"])
    assert result.exit_code == 0, result.output
    assert f"created: {name} (" in result.output
    assert "Traceback" not in result.output


def test_markup_is_kept_where_a_message_asks_for_it() -> None:
    with console.capture() as captured:
        console.print("[bold]kept[/] [/]", markup=False)
        console.print("[bold]styled[/]", markup=True)
    assert captured.get().splitlines() == ["[bold]kept[/] [/]", "styled"]
