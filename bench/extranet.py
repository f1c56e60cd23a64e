"""Extranet compliance rules over a whole city's wire (part 1: the rules themselves).

    .venv/bin/python bench/extranet.py [--observations 1000000] [--prefixes 50000] [--outside 0.01]
                                       [--runs 7] [--city-observations 200000] [--city-prefixes 20000]
                                       [--city-mac-rows 30000] [--seed 1]

1. ``outside_plan``: 1,000,000 observed ARP entries against 50,000 allocated leaf prefixes spread over
   the five zones (/22 to /30, 5 % reserved and 5 % deprecated), ``--outside`` of the entries outside
   their zone's plan. The baseline, in the same run over the same addresses, is the bare vectorised
   lookup: one ``np.searchsorted`` over the plan's sorted starts and a comparison with the ends, zones
   ignored. Prints both medians (target ≤ 1 s) and the ratio (target ≤ 2).
2. ``ips_to_ints`` of 1,000,000 dotted strings.
3. ``check_all`` on a city-sized input: 200,000 observations, 20,000 prefixes, 30,000 MAC-table rows,
   with the registered addresses, links and the faults of every rule mixed in.

Figures are printed, never asserted: they depend on the machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cloudctl.extranet.rules import (  # noqa: E402
    ZONES,
    Addresses,
    Aggregates,
    Limits,
    Links,
    MacPorts,
    Observations,
    PlanPrefixes,
    PrefixStatus,
    check_all,
    ips_to_ints,
    outside_plan,
)

NOW = 1_750_000_000.0
DAY = 86400.0
# Each zone's plan lives in its own /8 (10, 11, … 14), so the bare lookup that ignores zones is still exact.
ZONE_BASE = [(10 + z) << 24 for z in range(len(ZONES))]
LENGTHS = np.array([22, 23, 24, 25, 26, 27, 28, 29, 30])
LENGTH_WEIGHTS = np.array([0.02, 0.03, 0.45, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05])


def timed(function: Callable[[], object], runs: int) -> list[float]:
    """Wall-clock seconds of each of ``runs`` calls."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return times


def generate_plan(prefixes: int, rng: np.random.Generator) -> PlanPrefixes:
    """Non-overlapping leaf prefixes, aligned, one run per zone with random gaps between them."""
    zone = np.sort(rng.integers(0, len(ZONES), prefixes)).astype(np.int8)
    lengths = rng.choice(LENGTHS, prefixes, p=LENGTH_WEIGHTS)
    sizes = (1 << (32 - lengths)).astype(np.int64)
    start = np.empty(prefixes, dtype=np.int64)
    for z in range(len(ZONES)):
        rows = np.flatnonzero(zone == z)
        cursor = ZONE_BASE[z]
        gaps = rng.integers(0, 4, rows.shape[0]) * 256  # a free /24 here and there
        for row, gap in zip(rows.tolist(), gaps.tolist(), strict=True):
            size = int(sizes[row])
            cursor = -(-(cursor + gap) // size) * size  # align up to the prefix size
            start[row] = cursor
            cursor += size
    status = rng.choice(np.array([PrefixStatus.ACTIVE, PrefixStatus.RESERVED, PrefixStatus.DEPRECATED]), prefixes,
                        p=[0.9, 0.05, 0.05]).astype(np.int8)
    unit = rng.integers(1, 2000, prefixes)
    unit[rng.random(prefixes) < 0.01] = -1
    return PlanPrefixes(np.arange(1, prefixes + 1, dtype=np.int64), start, start + sizes - 1, zone,
                        rng.integers(1, 40, prefixes).astype(np.int32), unit, status)


HOST_MAC = 0x5C0000000000  # a host's MAC is this plus its address: one MAC per address unless a fault says otherwise


def generate_observations(plan: PlanPrefixes, count: int, outside: float,
                          rng: np.random.Generator) -> Observations:
    """``count`` ARP/MAC entries: hosts of allocated prefixes, each seen twice (on its gateway and its access
    switch), in their zone and at their unit; ``outside`` of the entries are seen in another zone."""
    allocated = np.flatnonzero(plan.status != PrefixStatus.DEPRECATED)
    hosts = (count + 1) // 2
    rows = allocated[rng.integers(0, allocated.shape[0], hosts)]
    size = plan.end[rows] - plan.start[rows] + 1
    ip = np.repeat(plan.start[rows] + rng.integers(0, 1 << 30, hosts) % size, 2)[:count]
    zone = np.repeat(plan.zone[rows], 2)[:count]
    unit = np.repeat(plan.unit[rows], 2)[:count]
    stray = rng.random(count) < outside
    zone[stray] = (zone[stray] + rng.integers(1, len(ZONES), int(stray.sum()))) % len(ZONES)
    last = NOW - rng.random(count) * 3 * DAY
    return Observations(ip, HOST_MAC + ip, rng.integers(0, 3000, count).astype(np.int32), unit, zone,
                        rng.integers(1, 4000, count).astype(np.int32), last - rng.random(count) * 30 * DAY, last)


def with_faults(obs: Observations, rng: np.random.Generator) -> Observations:
    """A city's share of trouble: borrowed addresses, IP conflicts, NAT boxes, quiet hosts."""
    n = len(obs)
    unit, mac, last = obs.unit.copy(), obs.mac.copy(), obs.last_seen.copy()
    borrowed = rng.random(n) < 0.002
    unit[borrowed] = rng.integers(1, 2000, int(borrowed.sum()))
    conflict = rng.random(n) < 0.001
    mac[conflict] = HOST_MAC + rng.integers(0, 2**32, int(conflict.sum()))
    nat = rng.integers(0, n, 200)  # 20 MACs, 10 addresses each
    mac[nat] = HOST_MAC + 2**33 + np.repeat(np.arange(20), 10)
    old = rng.random(n) < 0.02
    last[old] = NOW - 60 * DAY
    return Observations(obs.ip, mac, obs.device, unit, obs.zone, obs.vlan, np.minimum(obs.first_seen, last), last)


City = tuple[PlanPrefixes, Aggregates, Observations, MacPorts, Addresses, Links, float]


def generate_city(observations: int, prefixes: int, mac_rows: int, rng: np.random.Generator) -> City:
    """Every input of ``check_all`` at a city's scale, with faults of every rule mixed in."""
    plan = generate_plan(prefixes, rng)
    obs = with_faults(generate_observations(plan, observations, 0.005, rng), rng)
    # One /8 block a zone, but the management zone's plan has outgrown its block by about 1 %.
    ends = np.array(ZONE_BASE, dtype=np.int64) + (1 << 24) - 1
    ends[-1] = int(np.quantile(plan.end[plan.zone == len(ZONES) - 1], 0.99))
    aggregates = Aggregates(np.arange(1, len(ZONES) + 1, dtype=np.int64), np.array(ZONE_BASE, dtype=np.int64), ends)
    # Registered: 97 % of the addresses on the wire, and 5 % more that are approved and never seen.
    seen = np.unique(obs.ip)
    unseen = generate_observations(plan, seen.shape[0] // 20, 0.0, rng).ip
    ips = np.unique(np.concatenate((rng.choice(seen, int(seen.shape[0] * 0.97), replace=False), unseen)))
    n = ips.shape[0]
    found = np.searchsorted(obs.ip[np.argsort(obs.ip)], ips)
    found = np.minimum(found, len(obs) - 1)
    unit = np.where(rng.random(n) < 0.99, obs.unit[np.argsort(obs.ip)][found], rng.integers(1, 2000, n))
    role = rng.choice(np.arange(5), n, p=[0.9, 0.04, 0.02, 0.02, 0.02]).astype(np.int8)
    mac = np.where(rng.random(n) < 0.3, HOST_MAC + ips, -1)  # 30 % have an IP-MAC binding
    addresses = Addresses(ips, unit, role, mac, rng.random(n) < 0.99, rng.random(n) < 0.98,
                          NOW - rng.random(n) * 400 * DAY)
    # MAC table: hosts on access ports, one to three a port, and some hubs; trunks carry anything.
    macs = obs.mac[rng.integers(0, len(obs), mac_rows)]
    port = np.arange(mac_rows) // 2
    hubs = rng.integers(0, mac_rows // 2, mac_rows // 200)
    port[rng.integers(0, mac_rows, mac_rows // 50)] = rng.choice(hubs, mac_rows // 50)
    ports = MacPorts(macs, (port // 48).astype(np.int32), (port % 48).astype(np.int32),
                     rng.integers(1, 4000, mac_rows).astype(np.int32), rng.random(mac_rows) < 0.9)
    units = np.arange(1, 2000, dtype=np.int64)
    links = Links(units, rng.random(units.shape[0]) < 0.9,
                  np.where(rng.random(units.shape[0]) < 0.02, np.nan, NOW - rng.random(units.shape[0]) * 26 * 3600))
    return plan, aggregates, obs, ports, addresses, links, NOW


def bench_outside_plan(args: argparse.Namespace, rng: np.random.Generator) -> None:
    plan = generate_plan(args.prefixes, rng)
    obs = generate_observations(plan, args.observations, args.outside, rng)
    allocated = plan.status != PrefixStatus.DEPRECATED
    order = np.argsort(plan.start[allocated])
    starts, ends = plan.start[allocated][order], plan.end[allocated][order]
    ips = obs.ip

    def bare() -> object:
        index = np.searchsorted(starts, ips, side="right") - 1
        return ends[index] >= ips

    found = outside_plan(obs, plan)
    # alternate the two so that a slower stretch of the machine hits both alike
    bare_times, ours_times = [], []
    for _ in range(args.runs):
        bare_times += timed(bare, 1)
        ours_times += timed(lambda: outside_plan(obs, plan), 1)
    bare_s, ours_s = statistics.median(bare_times), statistics.median(ours_times)
    print(f"1. outside_plan: {args.observations:,} ARP entries × {args.prefixes:,} leaf prefixes over "
          f"{len(ZONES)} zones, {args.outside:.1%} of entries outside their zone's plan")
    print(f"   bare searchsorted + end compare   median {bare_s * 1000:8.1f} ms   (baseline)")
    print(f"   outside_plan                      median {ours_s * 1000:8.1f} ms   "
          f"ratio {ours_s / bare_s:.2f} (target ≤ 2; ≤ 1 s)   min {min(ours_times) * 1000:.1f} ms, {args.runs} runs")
    print(f"   violations: {len(found):,} (one per address and unit), from "
          f"{sum(e['rows'] for e in found.evidence):,} entries")


def bench_ips_to_ints(args: argparse.Namespace, rng: np.random.Generator) -> None:
    values = rng.integers(0, 2**32, args.observations)
    texts = [f"{v >> 24}.{v >> 16 & 255}.{v >> 8 & 255}.{v & 255}" for v in values.tolist()]
    result = ips_to_ints(texts)
    assert_same = bool(np.array_equal(result, values))
    took = statistics.median(timed(lambda: ips_to_ints(texts), 3))
    print(f"\n2. ips_to_ints: {len(texts):,} dotted strings   median {took * 1000:8.1f} ms   "
          f"({took / len(texts) * 1e9:.0f} ns a string; round trip exact: {assert_same})")


def bench_check_all(args: argparse.Namespace, rng: np.random.Generator) -> None:
    city = generate_city(args.city_observations, args.city_prefixes, args.city_mac_rows, rng)
    found = check_all(*city, Limits())
    took = statistics.median(timed(lambda: check_all(*city, Limits()), 3))
    print(f"\n3. check_all: {args.city_observations:,} observations, {args.city_prefixes:,} prefixes, "
          f"{args.city_mac_rows:,} MAC-table rows, {len(city[4]):,} registered addresses, {len(city[5]):,} units")
    print(f"   median {took * 1000:8.1f} ms over 3 runs   {len(found):,} violations")
    print("   " + ", ".join(f"{name} {count:,}" for name, count in found.counts().items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--observations", type=int, default=1_000_000)
    parser.add_argument("--prefixes", type=int, default=50_000)
    parser.add_argument("--outside", type=float, default=0.01, help="fraction of entries outside their zone's plan")
    parser.add_argument("--runs", type=int, default=7, help="runs of each side of the outside_plan comparison")
    parser.add_argument("--city-observations", type=int, default=200_000)
    parser.add_argument("--city-prefixes", type=int, default=20_000)
    parser.add_argument("--city-mac-rows", type=int, default=30_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    bench_outside_plan(args, rng)
    bench_ips_to_ints(args, rng)
    bench_check_all(args, rng)


if __name__ == "__main__":
    main()
