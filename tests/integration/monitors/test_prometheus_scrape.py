"""A real Prometheus (Debian's) scrapes the demo city from the API on loopback and evaluates the shipped rules."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from api.app import create_app
from cloudctl.cli import app as cli
from cloudctl.core.cli_support import cli_state
from cloudctl.core.config import Settings, reset_settings
from cloudctl.core.db import dispose_engines
from tests.support.appserver import serve
from tests.support.promserver import PrometheusServer

pytestmark = pytest.mark.slow
RULES = Path(__file__).resolve().parents[3] / "monitors" / "rules"


@pytest.fixture(scope="module")
def demo_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("scrape")
    reset_settings(Settings(data_dir=data, database_url=f"sqlite:///{data / 'cloudctl.db'}",
                            simulator_build_seconds=0))
    cli_state.schema_checked = False
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0
    seeded = runner.invoke(cli, ["demo", "seed", "--tokens-file", str(data / "t.json")])
    assert seeded.exit_code == 0, seeded.output
    with serve(create_app()) as base:
        yield base
    reset_settings()
    dispose_engines()


@pytest.fixture(scope="module")
def prometheus(demo_api: str) -> Iterator[PrometheusServer]:
    target = demo_api.removeprefix("http://")
    with PrometheusServer(scrape_configs=[{"job_name": "cloudctl", "scrape_interval": "1s", "scrape_timeout": "1s",
                                           "static_configs": [{"targets": [target]}]}],
                          rule_files=sorted(RULES.glob("*.yml")), evaluation_interval="1s") as server:
        yield server


def _wait(prometheus: PrometheusServer, promql: str, timeout: float = 30) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        result = prometheus.query(promql)
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


def _value(result: list[dict[str, Any]]) -> float:
    assert len(result) == 1, result
    return float(result[0]["value"][1])


def test_prometheus_scrapes_the_demo_city(prometheus: PrometheusServer) -> None:
    assert _value(_wait(prometheus, 'up{job="cloudctl"} == 1')) == 1
    assert _value(_wait(prometheus, 'cloudctl_extranet_units_required{level="horizontal"}')) == 135
    assert _value(_wait(prometheus, 'cloudctl_extranet_units_connected{level="vertical"}')) == 1589
    assert _value(_wait(prometheus, 'cloudctl_cloud_vcpus{cloud="city-cloud",state="capacity"}')) == 6045
    assert _value(_wait(prometheus, 'sum(cloudctl_reclaim_recommendations{state="open"})')) == 85
    assert _value(_wait(prometheus, "sum(cloudctl_reclaim_reclaimable_vcpus)")) > 300
    assert _value(_wait(prometheus, "sum(cloudctl_extranet_violations_open)")) == 16
    ratio = _value(_wait(prometheus, 'level:cloudctl_extranet_access:ratio{level="horizontal"}'))
    assert abs(ratio - 132 / 135) < 1e-9
    assert _wait(prometheus, 'cloudctl_api_http_requests_total{handler="/metrics"}') == []  # not counted


def test_rules_fire_on_demo_data(prometheus: PrometheusServer) -> None:
    # New violations (none an hour ago) fire at once; the access rate below target waits its six hours.
    firing = _wait(prometheus, 'ALERTS{alertname="CloudctlComplianceViolationsNew",alertstate="firing"}')
    assert {r["metric"]["rule"] for r in firing} == {str(n) for n in range(1, 13)}
    assert _wait(prometheus, 'ALERTS{alertname="Watchdog",alertstate="firing"}')
    pending = _wait(prometheus, 'ALERTS{alertname="CloudctlExtranetAccessBelowTarget",alertstate="pending"}')
    assert {r["metric"]["level"] for r in pending} == {"horizontal", "vertical"}
