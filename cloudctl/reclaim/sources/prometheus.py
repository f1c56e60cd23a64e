"""Daily utilisation summaries read from Prometheus: five instant queries per metric for the whole fleet.

Exporters publish counters and absolute values (libvirt: CPU seconds and the vCPU count; Ceilometer:
nanoseconds of CPU time and the flavor's vCPUs), so a profile does not read them directly: it reads
the four gauges that the recording rules in ``monitors/rules/reclaim-recording.yml`` make of them, one
series per server, the server's Nova UUID in one label. For one UTC day the source then asks, at the
end of that day, for ``quantile_over_time(0.95 | 0.99)``, ``max_over_time``, ``avg_over_time`` and
``count_over_time`` of each gauge over the day, and joins the five answers by that label.

The range functions take the selector directly (``SEL[…]``): Prometheus reads each series' raw samples
once, one series at a time. A subquery (``SEL[30d:5m]``) would re-evaluate the selector at every step
and is refused past a few thousand series.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx

from cloudctl.core.errors import InvalidInput, ProviderError
from cloudctl.reclaim.sources.base import METRICS, DailySummary, Metric

__all__ = ["CEILOMETER", "LIBVIRT", "PROFILES", "MetricProfile", "PrometheusSource"]

# The day is [D 00:00, D+1 00:00), as DailySummary says. Prometheus 2.x range selectors are closed at both ends
# ([t - range, t], checked against 2.42: `count_over_time(x[1d])` at midnight counts 289 five-minute samples), so
# `SEL[1d]` evaluated at D+1 00:00 would also take the sample stamped exactly D+1 00:00, which belongs to the next
# day. TSDB timestamps are whole milliseconds, so ending the window 1 ms earlier and shortening it by 1 ms makes it
# [D 00:00:00.000, D+1 00:00:00 - 1ms] = exactly [D, D+1): the queries are still evaluated at D+1 00:00:00Z.
# (Prometheus 3 made ranges left-open, (t - range, t]; with it this window would lose the D 00:00 sample, and the
# right form becomes `SEL[1d] offset 1ms`.)
_WINDOW = "86399999ms"  # 1d - 1ms
_OFFSET = "1ms"

# One name per function; the key is how the answers are joined.
_FUNCTIONS: dict[str, str] = {
    "p95": "quantile_over_time(0.95, {selector})",
    "p99": "quantile_over_time(0.99, {selector})",
    "max": "max_over_time({selector})",
    "mean": "avg_over_time({selector})",
    "samples": "count_over_time({selector})",
}

# A plain instant-vector selector: a metric name, optionally with label matchers. No range, offset, @ or function.
_SELECTOR = re.compile(r"""[a-zA-Z_:][a-zA-Z0-9_:]*(\{(?:[^{}"]|"(?:[^"\\]|\\.)*")*\})?""")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


@dataclass(frozen=True, slots=True)
class MetricProfile:
    """Where one kind of exporter's (recorded) gauges live: a selector per metric, and the label naming the server.

    Each selector is a plain series selector (``name{label="value"}``) for a gauge in DailySummary's units:
    ``cpu`` and ``mem`` fractions 0..1, ``net_rx`` / ``net_tx`` bytes per second.
    """

    name: str
    server_label: str
    cpu: str
    mem: str
    net_rx: str
    net_tx: str

    def __post_init__(self) -> None:
        if not _LABEL.fullmatch(self.server_label):
            raise InvalidInput(f"{self.server_label!r} is not a Prometheus label name", field="server_label")
        for metric in METRICS:
            selector = self.selector(metric)
            if not _SELECTOR.fullmatch(selector):
                raise InvalidInput(f"{selector!r} is not a plain series selector such as name{{label=\"value\"}}",
                                   field=metric)

    def selector(self, metric: Metric) -> str:
        selector: str = getattr(self, metric)
        return selector


# Names made by monitors/rules/reclaim-recording.yml (level:metric:operations). Both rule groups write the same four
# names, told apart by their `source` label, so both profiles can read one Prometheus that has both exporters.
def _recorded(source: str) -> MetricProfile:
    matcher = f'{{source="{source}"}}'
    return MetricProfile(
        name=source,
        server_label="server",
        cpu=f"server:cloudctl_cpu_utilisation:ratio{matcher}",
        mem=f"server:cloudctl_memory_utilisation:ratio{matcher}",
        net_rx=f"server:cloudctl_network_receive_bytes:rate5m{matcher}",
        net_tx=f"server:cloudctl_network_transmit_bytes:rate5m{matcher}",
    )


LIBVIRT = _recorded("libvirt")  # prometheus-libvirt-exporter on each hypervisor, joined to Nova's instance_id
CEILOMETER = _recorded("ceilometer")  # Ceilometer's prometheus:// publisher through a Pushgateway, by resource_id
PROFILES: dict[str, MetricProfile] = {profile.name: profile for profile in (LIBVIRT, CEILOMETER)}


class PrometheusSource:
    """A UtilisationSource reading the recorded gauges of ``profile`` from the Prometheus at ``url``."""

    def __init__(self, url: str, profile: MetricProfile, *, timeout: float = 30.0,
                 client: httpx.Client | None = None) -> None:
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
            raise InvalidInput(f"{url!r} is not an http(s) URL of a Prometheus server", field="prometheus_url")
        if not timeout > 0:
            raise InvalidInput(f"the timeout must be positive, not {timeout}", field="timeout")
        self.url = url.rstrip("/")
        self.profile = profile
        self.timeout = timeout
        self._client = client

    def __repr__(self) -> str:
        return f"PrometheusSource({self.url!r}, profile={self.profile.name!r})"

    def daily_summaries(self, day: date, servers: Sequence[str]) -> list[DailySummary]:
        """Summaries of the UTC ``day`` [00:00, 24:00) for these servers (provider ids); the absent have no data."""
        if isinstance(day, datetime) or not isinstance(day, date):
            raise InvalidInput(f"day must be a date, not {day!r}", field="day")
        wanted = set(servers)
        if not wanted:
            return []
        at = datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC).timestamp()
        if self._client is not None:
            return self._summaries(self._client, day, at, wanted)
        with httpx.Client(timeout=self.timeout) as client:
            return self._summaries(client, day, at, wanted)

    # -- one metric: five queries, joined by the server label ---------------------------------------------------

    def _summaries(self, client: httpx.Client, day: date, at: float, wanted: set[str]) -> list[DailySummary]:
        summaries: list[DailySummary] = []
        for metric in METRICS:
            summaries.extend(self._metric(client, day, at, metric, wanted))
        return summaries

    def _metric(self, client: httpx.Client, day: date, at: float, metric: Metric,
                wanted: set[str]) -> list[DailySummary]:
        ranged = f"{self.profile.selector(metric)}[{_WINDOW}] offset {_OFFSET}"
        answers: dict[str, dict[str, float]] = {}
        for key, template in _FUNCTIONS.items():
            answers[key] = self._by_server(self._query(client, template.format(selector=ranged), at), wanted)
        summaries = []
        for server in sorted(answers["samples"]):
            if any(server not in answer for answer in answers.values()):
                continue  # a non-finite value, or the series appeared between two of the five queries
            samples = answers["samples"][server]
            if samples < 1:
                continue
            summaries.append(DailySummary(
                server=server, day=day, metric=metric, p95=answers["p95"][server], p99=answers["p99"][server],
                max=answers["max"][server], mean=answers["mean"][server], samples=int(samples)))
        return summaries

    def _by_server(self, result: list[dict[str, Any]], wanted: set[str]) -> dict[str, float]:
        """Vector result → {server: value} for the servers asked for; NaN / ±Inf and unlabelled series are skipped."""
        label = self.profile.server_label
        values: dict[str, float] = {}
        for item in result:
            metric, value = item.get("metric"), item.get("value")
            if not isinstance(metric, Mapping) or not isinstance(value, list) or len(value) != 2:
                raise self._shape_error(f"a vector element is {_snippet(item)}")
            server = metric.get(label)
            if server is None or server not in wanted:
                continue
            try:
                number = float(value[1])
            except (TypeError, ValueError):
                raise self._shape_error(f"the value of {server} is {value[1]!r}, not a number") from None
            if not math.isfinite(number):
                continue
            if server in values:
                raise ProviderError(
                    f"{self.profile.name} selectors match more than one series for server {server} at {self.url}: "
                    f"make each selector pick one series per {label!r} (e.g. with a source=\"…\" matcher)",
                    field="profile")
            values[server] = number
        return values

    # -- HTTP ------------------------------------------------------------------------------------------------------

    def _query(self, client: httpx.Client, promql: str, at: float) -> list[dict[str, Any]]:
        # POST, form-encoded: long selectors stay out of URLs and their length limits.
        # `timeout` lets Prometheus give up on its side too (plain seconds: Prometheus reads "0.5", not "0.5s").
        form = {"query": promql, "time": f"{at:.3f}", "timeout": f"{self.timeout:g}"}
        try:
            response = client.post(f"{self.url}/api/v1/query", data=form, timeout=self.timeout)
        except httpx.TimeoutException as exc:
            raise ProviderError(f"Prometheus at {self.url} did not answer within {self.timeout:g}s "
                                f"({type(exc).__name__})", field="prometheus_url") from None
        except httpx.HTTPError as exc:  # refused, reset, DNS, TLS, …
            raise ProviderError(f"Prometheus at {self.url} is not reachable: {str(exc) or type(exc).__name__}",
                                field="prometheus_url") from None
        try:
            body = response.json()
        except ValueError:
            raise ProviderError(f"{self.url}/api/v1/query answered HTTP {response.status_code} with something other "
                                f"than JSON ({_snippet(response.text)}): is this the URL of a Prometheus server?",
                                field="prometheus_url") from None
        if not isinstance(body, Mapping):
            raise self._shape_error(f"the answer is {_snippet(body)}")
        if body.get("status") == "error":
            raise ProviderError(f"Prometheus at {self.url} refused the query ({body.get('errorType', 'unknown')}): "
                                f"{body.get('error', '')}", query=promql)
        data = body.get("data")
        if body.get("status") != "success" or not isinstance(data, Mapping):
            raise self._shape_error(f"HTTP {response.status_code}, {_snippet(body)}")
        if data.get("resultType") != "vector" or not isinstance(data.get("result"), list):
            raise self._shape_error(f"expected a vector, got resultType {data.get('resultType')!r}")
        result: list[dict[str, Any]] = data["result"]
        return result

    def _shape_error(self, what: str) -> ProviderError:
        return ProviderError(f"Prometheus at {self.url} gave an answer of the wrong shape: {what}",
                             field="prometheus_url")


def _snippet(value: object, limit: int = 200) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"
