"""PrometheusSource against a real Prometheus 2.42 holding three backfilled days, and the recording rules it reads.

The Prometheus is started once for the module (tests/support/promserver.py) with five-minute samples of the
four recorded gauges, as monitors/rules/reclaim-recording.yml names them, for a few servers of known shape;
every summary is checked against numpy on the same samples.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import numpy as np
import pytest
import yaml

from cloudctl.core.errors import InvalidInput, ProviderError
from cloudctl.reclaim.sources.base import METRICS, DailySummary, Metric
from cloudctl.reclaim.sources.prometheus import CEILOMETER, LIBVIRT, PROFILES, MetricProfile, PrometheusSource
from tests.support.promserver import PrometheusServer, openmetrics_family, openmetrics_text

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
RULES = ROOT / "monitors" / "rules" / "reclaim-recording.yml"
RULE_TESTS = ROOT / "monitors" / "rules" / "tests" / "reclaim-recording_test.yml"

DAY0, DAY1, DAY2 = date(2025, 3, 3), date(2025, 3, 4), date(2025, 3, 5)
STEP = 300


def _midnight(day: date) -> int:
    return int(datetime.combine(day, time(0), tzinfo=UTC).timestamp())


# Every five minutes from DAY0 00:00 to DAY2+1 00:00, both ends included: the boundary samples are there on purpose.
STAMPS = np.arange(_midnight(DAY0), _midnight(DAY2 + timedelta(days=1)) + 1, STEP, dtype=np.int64)


def _between(start: int, end: int) -> np.ndarray:
    """Mask of the STAMPS in [start, end)."""
    stamps = STAMPS
    return (stamps >= start) & (stamps < end)


def _server(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}.reclaim.cloudctl.test"))


STEADY, DIURNAL, GAPPY, GONE, UNASKED, CEILO, EDGE = (
    _server(n) for n in ("steady", "diurnal", "gappy", "gone", "unasked", "ceilo", "edge"))
ASKED = [STEADY, DIURNAL, GAPPY, GONE, CEILO, _server("never-seen")]
SPIKE_AT_DAY1, SPIKE_AT_DAY2 = 0.91, 0.97  # steady's cpu at DAY1 00:00 (DAY1's) and at DAY2 00:00 (DAY2's, not DAY1's)


def _shapes() -> dict[tuple[str, str], dict[Metric, np.ndarray]]:
    """(server, source) → metric → one value per STAMPS entry; NaN is no sample."""
    rng = np.random.default_rng(20250304)
    n = len(STAMPS)
    hour = (STAMPS % 86400) / 3600.0
    wave = 0.5 - 0.5 * np.cos(2 * np.pi * (hour - 3) / 24)  # 0 at 03:00, 1 at 15:00

    def metrics(cpu: np.ndarray, mem: np.ndarray, rx: np.ndarray, tx: np.ndarray) -> dict[Metric, np.ndarray]:
        return {"cpu": cpu, "mem": mem, "net_rx": rx, "net_tx": tx}

    steady_cpu = 0.03 + 0.01 * rng.random(n)
    steady_cpu[_between(_midnight(DAY1), _midnight(DAY1) + 1)] = SPIKE_AT_DAY1
    steady_cpu[_between(_midnight(DAY2), _midnight(DAY2) + 1)] = SPIKE_AT_DAY2
    shapes = {
        (STEADY, "libvirt"): metrics(steady_cpu, 0.2 + 0.001 * rng.random(n), 2e3 + 50 * rng.random(n),
                                     1e3 + 10 * rng.random(n)),
        (DIURNAL, "libvirt"): metrics(0.05 + 0.8 * wave + 0.02 * rng.random(n), 0.4 + 0.3 * wave,
                                      1e6 * wave + 1e3 * rng.random(n), 2e7 * wave ** 2 + rng.random(n)),
        (GAPPY, "libvirt"): metrics(*(rng.random(n) * scale for scale in (1.0, 1.0, 5e4, 5e4))),
        (GONE, "libvirt"): metrics(*(rng.random(n) for _ in range(4))),
        (UNASKED, "libvirt"): metrics(*(rng.random(n) for _ in range(4))),
        (CEILO, "ceilometer"): metrics(0.1 * rng.random(n), 0.5 + 0.1 * rng.random(n), 3e4 * rng.random(n),
                                       7e3 * rng.random(n)),
    }
    # gappy: the exporter was down on DAY1 from 06:00 to 14:00; gone: deleted at DAY1 00:00 (last sample DAY0 23:55).
    down = _between(_midnight(DAY1) + 6 * 3600, _midnight(DAY1) + 14 * 3600)
    for values in shapes[(GAPPY, "libvirt")].values():
        values[down] = np.nan
    for values in shapes[(GONE, "libvirt")].values():
        values[_between(_midnight(DAY1), 2**62)] = np.nan
    return shapes


SHAPES = _shapes()
ORPHAN_CPU = np.full(len(STAMPS), 0.5)  # a recorded series without the server label: never a summary
# edge's cpu has four samples only, a millisecond (the TSDB's resolution) either side of two midnights.
EDGE_SAMPLES = {_midnight(DAY1) - 0.001: 0.5, _midnight(DAY1): 0.1, _midnight(DAY2) - 0.001: 0.2, _midnight(DAY2): 0.9}


def _openmetrics() -> str:
    families = []
    for metric in METRICS:
        name = LIBVIRT.selector(metric).split("{")[0]
        keys = list(SHAPES)
        labels = [{"server": server, "source": source} for server, source in keys]
        values = np.vstack([SHAPES[key][metric] for key in keys])
        stamps = np.tile(STAMPS.astype(np.float64), (len(keys), 1))
        if metric == "cpu":
            labels.append({"source": "libvirt", "domain": "instance-000000ff"})
            values = np.vstack([values, ORPHAN_CPU])
            labels.append({"server": EDGE, "source": "libvirt"})
            edge_stamps, edge_values = STAMPS.astype(np.float64), np.full(len(STAMPS), np.nan)
            edge_stamps[:len(EDGE_SAMPLES)] = list(EDGE_SAMPLES)
            edge_values[:len(EDGE_SAMPLES)] = list(EDGE_SAMPLES.values())
            values = np.vstack([values, edge_values])
            stamps = np.vstack([stamps, STAMPS, edge_stamps])
        families.append(openmetrics_family(name, labels, stamps, values))
    return openmetrics_text(*families)


def _expected(server: str, source: str, day: date) -> dict[Metric, DailySummary]:
    inside = _between(_midnight(day), _midnight(day + timedelta(days=1)))
    expected = {}
    for metric, values in SHAPES[(server, source)].items():
        sample = values[inside & ~np.isnan(values)]
        if sample.size:
            expected[metric] = DailySummary(
                server=server, day=day, metric=metric, p95=float(np.quantile(sample, 0.95, method="linear")),
                p99=float(np.quantile(sample, 0.99, method="linear")), max=float(sample.max()),
                mean=float(sample.mean()), samples=int(sample.size))
    return expected


def _assert_same(got: DailySummary, want: DailySummary) -> None:
    assert (got.server, got.day, got.metric, got.samples) == (want.server, want.day, want.metric, want.samples)
    for field in ("p95", "p99", "max", "mean"):
        assert getattr(got, field) == pytest.approx(getattr(want, field), rel=1e-9, abs=1e-12), (got, field)


@pytest.fixture(scope="module")
def prom() -> Iterator[PrometheusServer]:
    try:
        server = PrometheusServer(openmetrics=_openmetrics())
    except RuntimeError as exc:  # not installed: a failure that says what to do, never a skip
        pytest.fail(f"{exc}", pytrace=False)
    with server:
        yield server


def _by_key(summaries: list[DailySummary]) -> dict[tuple[str, Metric], DailySummary]:
    keyed = {(s.server, s.metric): s for s in summaries}
    assert len(keyed) == len(summaries), "one summary per server and metric"
    return keyed


# -- summaries -------------------------------------------------------------------------------------------------


def test_a_day_matches_numpy_on_the_same_samples(prom: PrometheusServer) -> None:
    source = PrometheusSource(prom.url, LIBVIRT)

    got = _by_key(source.daily_summaries(DAY1, ASKED))

    want = {(server, metric): summary for server in (STEADY, DIURNAL, GAPPY)
            for metric, summary in _expected(server, "libvirt", DAY1).items()}
    assert set(got) == set(want)
    for key, summary in want.items():
        _assert_same(got[key], summary)
    assert got[(STEADY, "cpu")].samples == 288  # 24 h of 5-minute samples, not 289
    assert got[(GAPPY, "cpu")].samples == 288 - 8 * 12  # eight hours missing


def test_the_day_runs_from_its_midnight_to_the_next_one(prom: PrometheusServer) -> None:
    # A sample stamped exactly at midnight opens its day: steady's DAY2 00:00 spike is DAY2's, not DAY1's.
    source = PrometheusSource(prom.url, LIBVIRT)
    day1 = _by_key(source.daily_summaries(DAY1, [STEADY]))[(STEADY, "cpu")]
    day2 = _by_key(source.daily_summaries(DAY2, [STEADY]))[(STEADY, "cpu")]

    assert day1.max == SPIKE_AT_DAY1
    assert day2.max == SPIKE_AT_DAY2
    assert day1.samples == day2.samples == 288
    _assert_same(day2, _expected(STEADY, "libvirt", DAY2)["cpu"])

    # To the millisecond: 23:59:59.999 is the day before's, 00:00:00.000 the day's own.
    edge = {day: _by_key(source.daily_summaries(day, [EDGE])).get((EDGE, "cpu")) for day in (DAY0, DAY1, DAY2)}
    assert edge[DAY0] == DailySummary(EDGE, DAY0, "cpu", p95=0.5, p99=0.5, max=0.5, mean=0.5, samples=1)
    day1_edge = edge[DAY1]
    assert day1_edge is not None
    assert (day1_edge.samples, day1_edge.max, day1_edge.mean) == (2, 0.2, pytest.approx(0.15))
    assert edge[DAY2] == DailySummary(EDGE, DAY2, "cpu", p95=0.9, p99=0.9, max=0.9, mean=0.9, samples=1)


def test_only_the_servers_asked_for_come_back(prom: PrometheusServer) -> None:
    source = PrometheusSource(prom.url + "/", LIBVIRT, timeout=2.5)  # a fractional timeout goes to Prometheus too

    got = source.daily_summaries(DAY1, [DIURNAL])

    assert {s.server for s in got} == {DIURNAL}
    assert {s.metric for s in got} == set(METRICS)
    assert source.daily_summaries(DAY1, []) == []


def test_a_server_or_a_day_without_data_gives_nothing(prom: PrometheusServer) -> None:
    source = PrometheusSource(prom.url, LIBVIRT)

    assert source.daily_summaries(DAY0 - timedelta(days=10), ASKED) == []
    assert source.daily_summaries(DAY2 + timedelta(days=2), ASKED) == []
    assert {s.server for s in source.daily_summaries(DAY0, [GONE])} == {GONE}  # it was there the day before
    assert source.daily_summaries(DAY1, [GONE]) == []


def test_a_series_without_the_server_label_is_skipped(prom: PrometheusServer) -> None:
    orphans = prom.query('server:cloudctl_cpu_utilisation:ratio{server=""}', time=float(_midnight(DAY1)))
    assert [item["metric"].get("domain") for item in orphans] == ["instance-000000ff"]  # it is there…

    got = PrometheusSource(prom.url, LIBVIRT).daily_summaries(DAY1, [*ASKED, ""])

    assert "" not in {s.server for s in got}  # …and read as no server at all
    assert {s.server for s in got} == {STEADY, DIURNAL, GAPPY}


def test_each_profile_reads_its_own_exporter_s_series(prom: PrometheusServer) -> None:
    ceilometer = _by_key(PrometheusSource(prom.url, CEILOMETER).daily_summaries(DAY1, ASKED))
    libvirt = _by_key(PrometheusSource(prom.url, LIBVIRT).daily_summaries(DAY1, ASKED))

    assert {server for server, _ in ceilometer} == {CEILO}
    assert CEILO not in {server for server, _ in libvirt}
    for metric, summary in _expected(CEILO, "ceilometer", DAY1).items():
        _assert_same(ceilometer[(CEILO, metric)], summary)


# -- profiles and the rules that feed them ---------------------------------------------------------------------

_SELECTOR = re.compile(r'(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<matchers>.*)\})?')


def _recorded() -> dict[str, list[dict[str, str]]]:
    """record name → the `labels:` of every rule recording it."""
    recorded: dict[str, list[dict[str, str]]] = {}
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            if "record" in rule:
                assert "by (server)" in rule["expr"], f"{rule['record']} must keep exactly the server label"
                recorded.setdefault(rule["record"], []).append(rule.get("labels", {}))
    return recorded


@pytest.mark.parametrize("profile", [LIBVIRT, CEILOMETER], ids=lambda p: p.name)
def test_profiles_read_the_names_the_recording_rules_produce(profile: MetricProfile) -> None:
    recorded = _recorded()
    assert PROFILES[profile.name] is profile
    assert profile.server_label == "server"
    for metric in METRICS:
        match = _SELECTOR.fullmatch(profile.selector(metric))
        assert match, profile.selector(metric)
        matchers = dict(re.findall(r'(\w+)="([^"]*)"', match["matchers"] or ""))
        assert match["name"] in recorded, f"no rule records {match['name']}"
        assert matchers in recorded[match["name"]], f"no {match['name']} rule with labels {matchers}"


def test_promtool_checks_and_unit_tests_the_recording_rules() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found: install the Debian package `prometheus` (run ./scripts/test, which "
                    "installs the Debian packages the suite needs)", pytrace=False)
    for command in (["check", "rules", str(RULES)], ["test", "rules", str(RULE_TESTS)]):
        result = subprocess.run([promtool, *command], capture_output=True, text=True, check=False, timeout=120)
        assert result.returncode == 0, f"promtool {' '.join(command)}:\n{result.stdout}\n{result.stderr}"
        assert "SUCCESS" in result.stdout


def test_a_profile_takes_plain_selectors_only() -> None:
    with pytest.raises(InvalidInput) as err:
        MetricProfile(name="x", server_label="server", cpu="rate(cpu[5m])", mem="m", net_rx="r", net_tx="t")
    assert err.value.field == "cpu"
    with pytest.raises(InvalidInput):
        MetricProfile(name="x", server_label="server", cpu="c", mem='m{a="1"}[1d]', net_rx="r", net_tx="t")
    with pytest.raises(InvalidInput):
        MetricProfile(name="x", server_label="no-dash", cpu="c", mem="m", net_rx="r", net_tx="t")
    with pytest.raises(InvalidInput) as err:
        PrometheusSource("prometheus:9090", LIBVIRT)
    assert err.value.field == "prometheus_url"


# -- failures become ProviderError, never an httpx exception ---------------------------------------------------


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_prometheus_is_a_provider_error_naming_the_url() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"

    with pytest.raises(ProviderError) as err:
        PrometheusSource(url, LIBVIRT, timeout=5).daily_summaries(DAY1, [STEADY])

    assert err.value.field == "prometheus_url"
    assert url in err.value.detail
    assert "not reachable" in err.value.detail
    assert err.value.__cause__ is None
    assert err.value.__suppress_context__


def test_a_prometheus_that_does_not_answer_in_time_is_a_provider_error() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"

        with pytest.raises(ProviderError) as err:
            PrometheusSource(url, LIBVIRT, timeout=0.3).daily_summaries(DAY1, [STEADY])

    assert err.value.field == "prometheus_url"
    assert url in err.value.detail
    assert "did not answer within 0.3s" in err.value.detail


def test_an_error_answer_carries_prometheus_error_type_and_text(prom: PrometheusServer) -> None:
    broken = MetricProfile(name="broken", server_label="server", cpu='server:cloudctl_cpu_utilisation:ratio{a=~"("}',
                           mem="m", net_rx="r", net_tx="t")

    with pytest.raises(ProviderError) as err:
        PrometheusSource(prom.url, broken).daily_summaries(DAY1, [STEADY])

    assert "bad_data" in err.value.detail
    assert "error parsing regexp" in err.value.detail
    assert prom.url in err.value.detail


def test_something_that_is_not_prometheus_is_a_provider_error(prom: PrometheusServer) -> None:
    with pytest.raises(ProviderError) as err:
        PrometheusSource(f"{prom.url}/not-prometheus", LIBVIRT).daily_summaries(DAY1, [STEADY])

    assert "HTTP 404" in err.value.detail
    assert "other than JSON" in err.value.detail


def _answering(result: Any, result_type: str = "vector") -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"status": "success", "data": {"resultType": result_type, "result": result}}
        return httpx.Response(200, content=json.dumps(body), headers={"Content-Type": "application/json"})

    return httpx.Client(transport=httpx.MockTransport(handler))


def test_a_wrong_shape_is_a_provider_error() -> None:
    for client in (_answering([], result_type="matrix"), _answering({"not": "a list"}),
                   _answering([{"metric": {"server": STEADY}, "value": "0.5"}]),
                   _answering([{"metric": {"server": STEADY}, "value": [1, "half"]}])):
        with client, pytest.raises(ProviderError) as err:
            PrometheusSource("http://prometheus.invalid:9090", LIBVIRT, client=client).daily_summaries(DAY1, [STEADY])
        assert "wrong shape" in err.value.detail


def test_nan_and_infinite_answers_are_skipped() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        query = parse_qs(request.content.decode())["query"][0]
        counting = query.startswith("count_over_time")
        result = [{"metric": {"server": "nan"}, "value": [1, "288" if counting else "NaN"]},
                  {"metric": {"server": "inf"}, "value": [1, "288" if counting else "+Inf"]},
                  {"metric": {"server": "-inf"}, "value": [1, "288" if counting else "-Inf"]},
                  {"metric": {"server": STEADY}, "value": [1, "288" if counting else "0.5"]}]
        return httpx.Response(200, json={"status": "success", "data": {"resultType": "vector", "result": result}})

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        got = PrometheusSource("http://prometheus.invalid:9090", LIBVIRT, client=client).daily_summaries(
            DAY1, [STEADY, "nan", "inf", "-inf"])

    assert got == [DailySummary(STEADY, DAY1, metric, p95=0.5, p99=0.5, max=0.5, mean=0.5, samples=288)
                   for metric in METRICS]
