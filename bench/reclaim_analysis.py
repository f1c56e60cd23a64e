"""Reclaim analysis over a whole city's fleet: classifying daily summaries, and summarising raw samples.

    .venv/bin/python bench/reclaim_analysis.py [--servers 10000] [--days 30] [--runs 15] [--repeats 3]
                                              [--chunk-rows N] [--sweep]

1. ``classify`` over 10,000 servers × 30 days of daily summaries: a generated mix of busy,
   office-hours, batch, oversized, idle, young and stopped servers on 3 clouds with ~20
   flavors each. Prints the median over ``--runs`` runs (target ≤ 50 ms).
2. ``summarise_samples`` over the raw five-minute series of the same fleet: 10,000 servers ×
   30 days × 288 samples = 86.4 M float32 values as a (300,000, 288) array. The baseline, in
   the same run and over the same array, is a bare ``np.partition(samples, kth, axis=1)`` with
   the same kth indices (target: ratio ≤ 1.5). The peak extra memory is measured with
   tracemalloc, which numpy reports its buffers to (target: extra ≤ 0.5 × the raw array).
   ``--sweep`` times a range of ``chunk_rows`` to show where the default comes from.
3. Daily summary collection from a real Prometheus (Debian's ``prometheus``) holding 10,000
   series of one day: seconds per metric (bench/reclaim_prometheus.py; ``--prometheus-series 0``
   skips it).

Figures are printed, never asserted: they depend on the machine.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cloudctl.reclaim.analysis import (  # noqa: E402
    DEFAULT_CHUNK_ROWS,
    FlavorTable,
    FleetWindow,
    Prices,
    ServerFacts,
    Verdict,
    classify,
    summarise_samples,
)

SAMPLES_PER_DAY = 288  # one every five minutes


def timed(function: Callable[[], object], runs: int) -> list[float]:
    """Wall-clock seconds of each of ``runs`` calls."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return times


# ---------------------------------------------------------------------------------------------------------------
# 1. classify


def flavor_tables(prices: Prices) -> list[FlavorTable]:
    """3 clouds, ~20 flavors each: general (1:2), compute (1:1), memory (1:4 / 1:8) families."""
    tables = []
    for cloud, families in enumerate([(1, 2, 4), (1, 2, 4, 8), (2, 4)]):
        rows = []
        for vcpus in (1, 2, 4, 8, 16, 32, 64):
            for gb_per_vcpu in families:
                disk = 40 if vcpus <= 2 else 100 if vcpus <= 8 else 200
                rows.append((f"cloud{cloud}.c{vcpus}m{vcpus * gb_per_vcpu}", vcpus, vcpus * gb_per_vcpu * 1024, disk))
        tables.append(FlavorTable.from_flavors(rows[:22], prices))
    return tables


def generate_fleet(servers: int, days: int, tables: list[FlavorTable],
                   rng: np.random.Generator) -> tuple[FleetWindow, ServerFacts]:
    """A realistic mix, built with whole-array operations so that generating 10,000 servers takes a moment."""
    n, d = servers, days
    window = FleetWindow.empty(n, date(2026, 11, 30), d)
    table_of = rng.integers(0, len(tables), n)
    sizes = np.array([len(t) for t in tables])
    # small flavors are far more common than large ones
    index = np.minimum((rng.exponential(0.25, n) * sizes[table_of]).astype(np.int64), sizes[table_of] - 1)
    vcpus = np.empty(n, dtype=np.int64)
    ram = np.empty(n, dtype=np.int64)
    disk = np.empty(n, dtype=np.int64)
    for t, table in enumerate(tables):
        rows = table_of == t
        vcpus[rows], ram[rows], disk[rows] = (table.vcpus[index[rows]], table.ram_mb[index[rows]],
                                              table.disk_gb[index[rows]])
    off_catalogue = rng.random(n) < 0.05
    index[off_catalogue] = -1

    # busy 20 %, office hours 25 %, batch 10 %, oversized 20 %, idle 15 %, stopped 10 %
    profile = rng.choice(6, n, p=[0.20, 0.25, 0.10, 0.20, 0.15, 0.10])
    weekday = (window.days.astype("datetime64[D]").view("int64") + 3) % 7 < 5  # 1970-01-01 was a Thursday
    level = rng.uniform(0.0, 1.0, (n, 1))
    noise = rng.uniform(0.85, 1.15, (n, d))
    p95 = np.select(
        [profile[:, None] == k for k in range(5)],
        [0.35 + 0.5 * level * noise,  # busy
         np.where(weekday, 0.15 + 0.35 * level, 0.02) * noise,  # office hours, quiet at weekends
         0.01 + 0.01 * level * noise,  # batch: quiet all day, busy at night (its max below)
         0.03 + 0.12 * level * noise,  # oversized
         0.002 + 0.02 * level * noise],  # idle
        default=np.full((n, d), 0.01),
    )
    window.cpu_p95[:] = p95
    window.cpu_p99[:] = np.minimum(p95 * rng.uniform(1.05, 1.4, (n, d)), 1.0)
    nightly = (profile == 2)[:, None] & (rng.random((n, d)) < 0.9)
    window.cpu_max[:] = np.where(nightly, rng.uniform(0.5, 1.0, (n, d)), np.minimum(p95 * 1.8, 1.0))
    window.mem_max[:] = np.minimum(rng.uniform(0.1, 0.85, (n, 1)) * rng.uniform(0.95, 1.05, (n, d)), 1.0)
    # idle servers: monitoring agents and NTP only, with now and then a day of real traffic
    quiet = (profile == 4)[:, None] & (rng.random((n, d)) >= 0.01)
    window.net_rx_p95[:] = np.where(quiet, rng.uniform(100, 1800, (n, d)), rng.lognormal(12, 1.5, (n, d)))
    window.net_tx_p95[:] = np.where(quiet, rng.uniform(50, 900, (n, d)), rng.lognormal(11, 1.5, (n, d)))

    # gaps: a few missing days for everyone, no guest agent (no memory) for some
    for name in ("cpu_p95", "cpu_p99", "cpu_max", "mem_max", "net_rx_p95", "net_tx_p95"):
        getattr(window, name)[rng.random((n, d)) < 0.03] = np.nan
    window.mem_max[rng.random(n) < 0.1] = np.nan
    # young servers: no data before their launch
    age = rng.choice([5.0, 10.0, 20.0, 90.0, 400.0, 1200.0], n, p=[0.02, 0.02, 0.04, 0.2, 0.5, 0.22])
    before_launch = np.arange(d)[None, :] < (d - age[:, None])
    # stopped servers: no data since they stopped
    stopped = np.where(profile == 5, rng.uniform(1, 120, n), np.nan)
    after_stop = np.arange(d)[None, :] >= (d - np.nan_to_num(stopped, nan=0.0)[:, None])
    dark = before_launch | (after_stop & (profile == 5)[:, None])
    for name in ("cpu_p95", "cpu_p99", "cpu_max", "mem_max", "net_rx_p95", "net_tx_p95"):
        getattr(window, name)[dark] = np.nan

    facts = ServerFacts(vcpus=vcpus, ram_mb=ram, disk_gb=disk, age_days=age, stopped_days=stopped,
                        user_facing=rng.random(n) < 0.3, flavor_table=table_of, flavor_index=index)
    return window, facts


def bench_classify(args: argparse.Namespace) -> None:
    prices = Prices()
    tables = flavor_tables(prices)
    window, facts = generate_fleet(args.servers, args.days, tables, np.random.default_rng(2026))
    result = classify(window, facts, tables, prices=prices)  # warm-up, and the mix to print
    times = timed(lambda: classify(window, facts, tables, prices=prices), args.runs)
    median_ms = statistics.median(times) * 1000
    print(f"1. classify: {args.servers} servers × {args.days} days, {len(tables)} clouds with "
          f"{'/'.join(str(len(t)) for t in tables)} flavors")
    print(f"   median {median_ms:8.1f} ms   min {min(times) * 1000:.1f} ms   over {args.runs} runs   "
          f"ratio to the 50 ms target {median_ms / 50:.2f}")
    counts = result.counts()
    print("   verdicts: " + ", ".join(f"{label} {counts[label]}" for label in (v.label for v in Verdict)))
    print(f"   reclaimable: {int(result.reclaim_vcpus.sum())} vCPU, {int(result.reclaim_ram_mb.sum()) // 1024} GB RAM, "
          f"{result.saving_month.sum():,.0f} CNY/month")


# ---------------------------------------------------------------------------------------------------------------
# 2. summarise_samples


def kth_indices(k: int) -> list[int]:
    """The same order statistics summarise_samples asks for: floor/ceil ranks of p95 and p99, and the max."""
    ranks = []
    for q in (0.95, 0.99):
        rank = q * (k - 1)
        ranks += [math.floor(rank), min(k - 1, math.floor(rank) + 1)]
    return sorted({*ranks, k - 1})


def raw_series(rows: int, k: int, rng: np.random.Generator) -> npt.NDArray[np.float32]:
    """Five-minute CPU samples: a per-row level times uniform noise, built in place (no float64 temporary)."""
    samples = rng.random((rows, k), dtype=np.float32)
    samples *= rng.uniform(0.01, 1.0, rows).astype(np.float32)[:, None]
    return samples


def peak_extra_bytes(function: Callable[[], object]) -> int:
    """Peak bytes allocated by ``function`` above what was allocated when it started."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        function()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - before


def bench_samples(args: argparse.Namespace) -> None:
    rows, k = args.servers * args.days, SAMPLES_PER_DAY
    samples = raw_series(rows, k, np.random.default_rng(7))
    kth = kth_indices(k)
    chunk_rows = args.chunk_rows
    print(f"2. summarise_samples: {args.servers} servers × {args.days} days × {k} samples = "
          f"{samples.size / 1e6:.1f} M float32 ({samples.nbytes / 2**20:.0f} MiB) as {samples.shape}, "
          f"kth {kth}, chunk_rows {chunk_rows}")

    # interleave the two so that neither profits from a quieter moment of the machine
    ours: list[float] = []
    bare: list[float] = []
    for _ in range(args.repeats):
        ours += timed(lambda: summarise_samples(samples, chunk_rows=chunk_rows), 1)
        bare += timed(lambda: np.partition(samples, kth, axis=1), 1)
    ours_s, bare_s = statistics.median(ours), statistics.median(bare)
    print(f"   np.partition(samples, kth, axis=1)  median {bare_s * 1000:8.0f} ms   (baseline)")
    print(f"   summarise_samples                   median {ours_s * 1000:8.0f} ms   "
          f"ratio {ours_s / bare_s:.2f}  (target ≤ 1.5)")

    extra = peak_extra_bytes(lambda: summarise_samples(samples, chunk_rows=chunk_rows))
    bare_extra = peak_extra_bytes(lambda: np.partition(samples, kth, axis=1))
    print(f"   peak extra memory (tracemalloc): summarise_samples {extra / 2**20:.1f} MiB = "
          f"{extra / samples.nbytes:.3f} × the raw array, total {1 + extra / samples.nbytes:.3f} × "
          f"(target ≤ 1.5); bare np.partition {bare_extra / samples.nbytes:.3f} ×")

    if args.sweep:
        print("   chunk_rows sweep (median of 3, ratio to the baseline above):")
        for rows_per_chunk in (64, 256, 512, 1024, 2048, 4096, 16384, 65536):
            took = statistics.median(timed(lambda c=rows_per_chunk: summarise_samples(samples, chunk_rows=c), 3))
            extra = peak_extra_bytes(lambda c=rows_per_chunk: summarise_samples(samples, chunk_rows=c))
            print(f"     {rows_per_chunk:6d} rows  {took * 1000:8.0f} ms  ratio {took / bare_s:.2f}  "
                  f"extra {extra / samples.nbytes:.3f} ×")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=15, help="runs of classify")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each side of the raw-series comparison")
    parser.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS)
    parser.add_argument("--sweep", action="store_true", help="also time a range of chunk_rows")
    parser.add_argument("--prometheus-series", type=int, default=10_000,
                        help="3. daily summary collection from a real Prometheus of this many series (0: skip)")
    args = parser.parse_args()
    bench_classify(args)
    bench_samples(args)
    if args.prometheus_series:
        # 3. Collection from the real Prometheus (Debian's prometheus): seconds per metric, in its own module.
        import reclaim_prometheus

        print("\n3. daily summaries from a real Prometheus (bench/reclaim_prometheus.py)")
        reclaim_prometheus.run(argparse.Namespace(series=args.prometheus_series, step=300, repeat=3,
                                                  day=date(2025, 3, 4)))


if __name__ == "__main__":
    main()
