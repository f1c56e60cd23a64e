"""How long PrometheusSource.daily_summaries takes on a real Prometheus holding a fleet's day of samples.

Backfills N series (10,000 by default) x one UTC day of 5-minute samples of one recorded gauge
(server:cloudctl_cpu_utilisation:ratio{source="libvirt"}) into a throw-away Prometheus
(tests/support/promserver.py), then times daily_summaries for all N servers: the seconds spent on
each metric's five queries, and, as the baseline, one bare ``count_over_time(SEL[1d])`` in the same
run. Prints figures, asserts nothing.

    .venv/bin/python bench/reclaim_prometheus.py [--series 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere: the repo root is importable

from cloudctl.reclaim.sources.base import METRICS
from cloudctl.reclaim.sources.prometheus import LIBVIRT, PrometheusSource
from tests.support.promserver import PrometheusServer, openmetrics_family, openmetrics_text


class TimingTransport(httpx.BaseTransport):
    """Times each query, body read included, and files it under the metric whose selector it queries."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.seconds: dict[str, list[float]] = defaultdict(list)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        started = time.perf_counter()
        response = self.inner.handle_request(request)
        response.read()
        elapsed = time.perf_counter() - started
        query = httpx.QueryParams(request.content.decode()).get("query", "")
        metric = next((m for m in METRICS if f"{LIBVIRT.selector(m)}[" in query), "other")
        self.seconds[metric].append(elapsed)
        return response

    def close(self) -> None:
        self.inner.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=10_000, help="servers (series) to backfill (default 10000)")
    parser.add_argument("--step", type=int, default=300, help="seconds between samples (default 300)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of daily_summaries (default 3)")
    parser.add_argument("--day", type=date.fromisoformat, default=date(2025, 3, 4), help="UTC day to fill")
    run(parser.parse_args())


def run(args: argparse.Namespace) -> None:
    """The benchmark itself (bench/reclaim_analysis.py runs it as its third part)."""
    start = int(datetime.combine(args.day, datetime.min.time(), tzinfo=UTC).timestamp())
    stamps = np.arange(start, start + 86400, args.step, dtype=np.int64)
    servers = [str(uuid.UUID(int=i + 1, version=4)) for i in range(args.series)]
    rng = np.random.default_rng(1)
    values = rng.beta(2, 8, size=(args.series, len(stamps)))  # CPU ratios, mostly low

    t0 = time.perf_counter()
    text = openmetrics_text(openmetrics_family(
        LIBVIRT.selector("cpu").split("{")[0], [{"server": s, "source": "libvirt"} for s in servers], stamps, values))
    render = time.perf_counter() - t0
    print(f"series {args.series:,} x {len(stamps)} samples = {values.size:,} samples of one metric "
          f"({len(text) / 1e6:.0f} MB of OpenMetrics, rendered in {render:.1f}s)")

    t0 = time.perf_counter()
    with PrometheusServer(openmetrics=text) as prom:
        print(f"backfill (promtool tsdb create-blocks-from openmetrics): {prom.backfill_seconds:.1f}s; "
              f"backfill + start + ready: {time.perf_counter() - t0:.1f}s")
        del text
        at = float(start + 86400)
        bare = f"count_over_time({LIBVIRT.selector('cpu')}[1d])"
        transport = TimingTransport()
        with httpx.Client(transport=transport, timeout=600) as client:
            source = PrometheusSource(prom.url, LIBVIRT, timeout=600, client=client)
            baselines, totals, per_metric = [], [], defaultdict(list)
            for run in range(args.repeat):
                t0 = time.perf_counter()
                answer = client.post(f"{prom.url}/api/v1/query", data={"query": bare, "time": f"{at:.3f}"})
                baselines.append(time.perf_counter() - t0)
                assert answer.json()["status"] == "success"
                transport.seconds.clear()
                t0 = time.perf_counter()
                summaries = source.daily_summaries(args.day, servers)
                totals.append(time.perf_counter() - t0)
                for metric in METRICS:
                    per_metric[metric].append(sum(transport.seconds.get(metric, [])))
                print(f"run {run + 1}: {len(summaries):,} summaries in {totals[-1]:.2f}s "
                      f"(bare count_over_time {baselines[-1]:.2f}s)")

    baseline = statistics.median(baselines)
    print(f"\nmedian of {args.repeat} runs, {args.series:,} servers:")
    print(f"  {'baseline: one bare count_over_time(SEL[1d])':48}{baseline:8.3f}s")
    for metric in METRICS:
        seconds = statistics.median(per_metric[metric])
        note = "" if metric == "cpu" else "  (no series: an empty answer)"
        label = f"{metric}: its five queries (HTTP, body read)"
        print(f"  {label:48}{seconds:8.3f}s = {seconds / baseline:5.1f} x baseline{note}")
    total = statistics.median(totals)
    print(f"  {'daily_summaries, four metrics, JSON + join':48}{total:8.3f}s = {total / baseline:5.1f} x baseline")


if __name__ == "__main__":
    main()
