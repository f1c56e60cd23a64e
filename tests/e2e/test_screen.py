"""The big screen (值班大屏) in real headless Chromium: it loads, shows the demo city's numbers from the JSON
API, shows new numbers after the data changes, and a screenshot is kept as a test artifact."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from api.app import create_app
from cloudctl.cli import app as cli
from cloudctl.core.cli_support import cli_state
from cloudctl.core.config import Settings, reset_settings
from cloudctl.core.db import dispose_engines, session_scope
from cloudctl.core.models import utcnow
from cloudctl.extranet.models import NetworkDevice, Zone
from cloudctl.org.models import Unit
from tests.support.appserver import serve
from tests.support.browser import artifact_dir, dump_dom, screenshot

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str], CliRunner]]:
    data = tmp_path_factory.mktemp("screen")
    reset_settings(Settings(data_dir=data, database_url=f"sqlite:///{data / 'cloudctl.db'}",
                            simulator_build_seconds=0))
    cli_state.schema_checked = False
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0
    seeded = runner.invoke(cli, ["demo", "seed", "--tokens-file", str(data / "t.json")])
    assert seeded.exit_code == 0, seeded.output
    tokens = json.loads((data / "t.json").read_text())["tokens"]
    with serve(create_app()) as base:
        yield base, tokens, runner
    reset_settings()
    dispose_engines()


def _text(dom: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"[^>]*>(.*?)</', dom, re.S)
    assert match, element_id
    return re.sub(r"<[^>]+>", "", match.group(1)).strip()


def test_the_screen_shows_the_demo_city_and_follows_changes(demo: tuple[str, dict[str, str], CliRunner]) -> None:
    base, tokens, runner = demo
    url = f"{base}/screen?token={tokens['duty']}&refresh=2"
    dom = dump_dom(url)
    assert _text(dom, "h-rate") == "97.8%"
    assert _text(dom, "v-rate") == "98.0%"
    assert _text(dom, "violations") == "16"
    assert "已接入 132 / 应接入 135" in _text(dom, "h-detail")
    assert "市政务云中心" in dom
    assert _text(dom, "reclaim") != "—"
    assert _text(dom, "security") == "0 / 0"
    assert _text(dom, "error") == ""
    shot = screenshot(url, artifact_dir() / "big-screen.png", width=1600, height=900)
    assert shot.stat().st_size > 20_000
    # One of the three municipal units without a line gets one, and its switch answers: the screen follows.
    added = runner.invoke(cli, ["extranet", "link", "add", "--unit", "990100-M098", "--carrier", "中国电信",
                                "--line-type", "MSTP", "--bandwidth", "50"])
    assert added.exit_code == 0, added.output
    with session_scope() as session:
        unit = session.scalars(select(Unit).where(Unit.code == "990100-M098")).one()
        session.add(NetworkDevice(name="990100-m098-sw1", host="10.71.200.1", device_type="huawei_vrp",
                                  role="access", unit_id=unit.id, zone=Zone.PUBLIC, last_success_at=utcnow()))
    dom = dump_dom(url)
    assert _text(dom, "h-rate") == "98.5%"
    assert "已接入 133 / 应接入 135" in _text(dom, "h-detail")


def test_the_summary_needs_a_token(demo: tuple[str, dict[str, str], CliRunner]) -> None:
    base, tokens, _ = demo
    assert httpx.get(f"{base}/api/v1/screen/summary", timeout=10).status_code == 401
    assert httpx.get(f"{base}/screen", timeout=10).status_code == 200  # the page holds no data
    answer = httpx.get(f"{base}/api/v1/screen/summary", headers={"Authorization": f"Bearer {tokens['auditor']}"},
                       timeout=10)
    assert answer.status_code == 200
    assert answer.json()["access"]["horizontal"]["required"] == 135
