"""Reclaim analysis: each rule and its boundaries, a mixed fleet against a per-server reference, and the sampler."""

from __future__ import annotations

import json
import math
import tracemalloc
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from cloudctl.reclaim.analysis import (
    Classification,
    FlavorTable,
    FleetWindow,
    Prices,
    ServerFacts,
    Thresholds,
    Verdict,
    classify,
    days_needed,
    evidence,
    summarise_samples,
)

# An all-NaN row must not make numpy warn: turn every warning into a failure here.
pytestmark = pytest.mark.filterwarnings("error")

NAN = math.nan
DAYS = 30

# (name, vcpus, ram_mb, disk_gb); given out of order on purpose, from_flavors sorts them by price.
FLAVORS = [
    ("c16m64", 16, 65536, 200),  # 2400 CNY/month
    ("c8m16", 8, 16384, 100),  # 800
    ("c1m2", 1, 2048, 20),  # 100
    ("c6m12", 6, 12288, 100),  # 600, after c4m16 at the same price: fewer vCPUs first
    ("c4m16", 4, 16384, 100),  # 600
    ("c2m8", 2, 8192, 40),  # 300
    ("c16m32", 16, 32768, 100),  # 1600
    ("c4m8", 4, 8192, 50),  # 400
    ("c8m32", 8, 32768, 100),  # 1200
    ("c2m4", 2, 4096, 40),  # 200
]
TABLE = FlavorTable.from_flavors(FLAVORS, Prices())
INDEX = {str(name): i for i, name in enumerate(TABLE.names)}
SIZES = {name: (v, r) for name, v, r, _ in FLAVORS}


@dataclass(frozen=True)
class S:
    """One server's scenario: metric values are a constant or an array of DAYS values (oldest first)."""

    cpu_p95: Any = 0.5
    cpu_p99: Any = 0.6
    cpu_max: Any = 0.8
    mem_max: Any = 0.7
    net_rx: Any = 1e5
    net_tx: Any = 1e5
    missing: tuple[int, ...] = ()  # days (indices) without any summary
    flavor: str | None = "c8m16"  # None: not in the catalogue, give vcpus and ram_mb
    vcpus: int | None = None
    ram_mb: int | None = None
    disk_gb: int = 40
    age_days: float = 200.0
    stopped_days: float = NAN
    user_facing: bool = False


BUSY = S()
IDLE = S(cpu_p95=0.01, cpu_p99=0.02, cpu_max=0.05, mem_max=0.3, net_rx=500.0, net_tx=300.0)
# p99 0.2 × 8 vCPUs = 1.6 cores × 1.2 = 1.92 → 2 vCPUs; mem 0.3 × 16384 × 1.2 = 5898 MB → c2m8
SMALL = S(cpu_p95=0.15, cpu_p99=0.2, cpu_max=0.4, mem_max=0.3)
NO_DATA = S(cpu_p95=NAN, cpu_p99=NAN, cpu_max=NAN, mem_max=NAN, net_rx=NAN, net_tx=NAN)


def daily(value: float, **days: float) -> npt.NDArray[np.float64]:
    """DAYS copies of value, with some days overridden: daily(0.01, d29=0.03) sets the most recent day."""
    out = np.full(DAYS, value)
    for key, v in days.items():
        out[int(key[1:])] = v
    return out


def only_last(value: float, count: int) -> npt.NDArray[np.float64]:
    """Data on the most recent ``count`` days only."""
    out = np.full(DAYS, NAN)
    if count:
        out[-count:] = value
    return out


def build(*servers: S) -> tuple[FleetWindow, ServerFacts]:
    n = len(servers)
    window = FleetWindow.empty(n, date(2026, 11, 30), DAYS)
    columns = {"cpu_p95": "cpu_p95", "cpu_p99": "cpu_p99", "cpu_max": "cpu_max", "mem_max": "mem_max",
               "net_rx": "net_rx_p95", "net_tx": "net_tx_p95"}
    for i, s in enumerate(servers):
        for attr, name in columns.items():
            row = getattr(window, name)[i]
            row[:] = np.broadcast_to(np.asarray(getattr(s, attr), dtype=np.float64), (DAYS,))
            row[list(s.missing)] = NAN
    sizes = [SIZES[s.flavor] if s.flavor else (s.vcpus, s.ram_mb) for s in servers]
    facts = ServerFacts(
        vcpus=np.array([v for v, _ in sizes]), ram_mb=np.array([r for _, r in sizes]),
        disk_gb=np.array([s.disk_gb for s in servers]), age_days=np.array([s.age_days for s in servers]),
        stopped_days=np.array([s.stopped_days for s in servers]),
        user_facing=np.array([s.user_facing for s in servers]), flavor_table=np.zeros(n, dtype=np.int64),
        flavor_index=np.array([INDEX[s.flavor] if s.flavor else -1 for s in servers]),
    )
    return window, facts


def run(*servers: S, thresholds: Thresholds | None = None, prices: Prices | None = None) -> Classification:
    window, facts = build(*servers)
    return classify(window, facts, [TABLE], thresholds or Thresholds(), prices or Prices())


def verdicts(*servers: S, thresholds: Thresholds | None = None) -> list[Verdict]:
    c = run(*servers, thresholds=thresholds)
    return [Verdict(int(v)) for v in c.verdict]


def one(server: S, thresholds: Thresholds | None = None) -> Verdict:
    [verdict] = verdicts(server, thresholds=thresholds)
    return verdict


# ---------------------------------------------------------------------------------------------------------------
# The catalogue, the enum, the windows


def test_flavors_are_sorted_by_monthly_price_then_vcpus_then_ram() -> None:
    assert list(TABLE.names) == ["c1m2", "c2m4", "c2m8", "c4m8", "c4m16", "c6m12", "c8m16", "c8m32", "c16m32",
                                 "c16m64"]
    assert TABLE.vcpus.dtype == np.int64
    assert list(TABLE.disk_gb[:4]) == [20, 40, 40, 50]


def test_verdict_codes_and_labels() -> None:
    assert [(int(v), v.label) for v in Verdict] == [(0, "ok"), (1, "insufficient_data"), (2, "idle"),
                                                   (3, "oversized"), (4, "zombie"), (5, "stopped")]


@pytest.mark.parametrize(("min_days", "coverage", "window", "needed"),
                         [(7, 0.8, 14, 12), (7, 0.8, 30, 24), (7, 0.5, 10, 7), (1, 0.8, 5, 4), (3, 1.0, 14, 14)])
def test_days_needed(min_days: int, coverage: float, window: int, needed: int) -> None:
    assert days_needed(min_days, coverage, window) == needed


def test_empty_window_is_all_nan_over_the_days_ending_with_the_last() -> None:
    window = FleetWindow.empty(3, date(2026, 11, 30), 30)
    assert window.days.dtype == np.dtype("datetime64[D]")
    assert (str(window.days[0]), str(window.days[-1])) == ("2026-11-01", "2026-11-30")
    assert window.cpu_p95.shape == (3, 30)
    assert np.isnan(window.net_tx_p95).all()


def test_window_shapes_must_agree() -> None:
    good = np.full((2, 3), NAN)
    with pytest.raises(ValueError, match="mem_max"):
        FleetWindow(np.arange(3).astype("datetime64[D]"), good, good, good, np.full((2, 4), NAN), good, good)
    window, facts = build(BUSY, BUSY)
    with pytest.raises(ValueError, match="window"):
        classify(window, replace(facts, **{k: getattr(facts, k)[:1] for k in ServerFacts.__dataclass_fields__}),
                 [TABLE])


# ---------------------------------------------------------------------------------------------------------------
# 1–2. zombie, stopped


@pytest.mark.parametrize(("stopped_days", "verdict"), [
    (30.0, Verdict.ZOMBIE), (400.0, Verdict.ZOMBIE), (29.9, Verdict.STOPPED), (14.0, Verdict.STOPPED),
    (13.9, Verdict.INSUFFICIENT_DATA),  # not flagged yet; its last 14 days have no data
    (NAN, Verdict.INSUFFICIENT_DATA),  # running, with no data
])
def test_zombie_and_stopped_boundaries(stopped_days: float, verdict: Verdict) -> None:
    assert one(replace(NO_DATA, stopped_days=stopped_days)) == verdict


def test_running_busy_server_is_ok() -> None:
    assert one(BUSY) == Verdict.OK


def test_a_zombie_reclaims_all_its_vcpu_and_ram_but_no_disk() -> None:
    c = run(replace(NO_DATA, stopped_days=45.0, disk_gb=100))
    assert (c.reclaim_vcpus[0], c.reclaim_ram_mb[0], c.reclaim_disk_gb[0], c.recommended[0]) == (8, 16384, 0, -1)
    assert c.saving_month[0] == 8 * 50 + 16 * 25


def test_a_stopped_server_is_flagged_without_reclaiming_anything() -> None:
    c = run(replace(IDLE, stopped_days=20.0))
    assert c.verdict[0] == Verdict.STOPPED
    assert (c.reclaim_vcpus[0], c.reclaim_ram_mb[0], c.saving_month[0]) == (0, 0, 0.0)


@pytest.mark.parametrize("server", [
    replace(NO_DATA, stopped_days=31.0),  # no data at all: still a zombie
    replace(NO_DATA, stopped_days=31.0, age_days=3.0),  # young (cannot be, but the order decides)
    replace(BUSY, stopped_days=31.0),  # busy data from before it stopped
])
def test_zombie_wins_over_every_later_rule(server: S) -> None:
    assert one(server) == Verdict.ZOMBIE


def test_stopped_wins_over_insufficient_data() -> None:
    assert one(replace(NO_DATA, stopped_days=14.0)) == Verdict.STOPPED


# ---------------------------------------------------------------------------------------------------------------
# 3. insufficient data


@pytest.mark.parametrize(("age_days", "verdict"), [
    (13.9, Verdict.INSUFFICIENT_DATA), (0.0, Verdict.INSUFFICIENT_DATA),
    (NAN, Verdict.INSUFFICIENT_DATA),  # never launched: its data cannot be trusted
    (14.0, Verdict.IDLE),
])
def test_a_young_server_has_insufficient_data(age_days: float, verdict: Verdict) -> None:
    assert one(replace(IDLE, age_days=age_days)) == verdict


@pytest.mark.parametrize(("missing_days", "verdict"), [
    (0, Verdict.IDLE), (2, Verdict.IDLE),
    (3, Verdict.INSUFFICIENT_DATA),  # 11 of 14 days: below 80 %
    (14, Verdict.INSUFFICIENT_DATA),
])
def test_coverage_of_the_idle_window(missing_days: int, verdict: Verdict) -> None:
    missing = tuple(range(DAYS - missing_days, DAYS))
    assert one(replace(IDLE, missing=missing)) == verdict


def test_missing_days_before_the_idle_window_do_not_count_against_it() -> None:
    # 12 of the last 14 days and 24 of 30 overall: enough for both windows
    assert one(replace(IDLE, missing=(0, 1, 2, 3, 28, 29))) == Verdict.IDLE


@pytest.mark.parametrize(("thresholds", "days_of_data", "verdict"), [
    (Thresholds(), 11, Verdict.INSUFFICIENT_DATA),
    (Thresholds(), 12, Verdict.IDLE),
    # a low floor does not lower the coverage requirement
    (Thresholds(min_days_with_data=3), 11, Verdict.INSUFFICIENT_DATA),
    # in a 7-day window, 80 % would be 6 days, but the floor of 7 days wins
    (Thresholds(idle_window_days=7), 6, Verdict.INSUFFICIENT_DATA),
    (Thresholds(idle_window_days=7), 7, Verdict.IDLE),
    (Thresholds(min_coverage=0.5), 7, Verdict.IDLE),
])
def test_days_with_data_rule(thresholds: Thresholds, days_of_data: int, verdict: Verdict) -> None:
    cpu = only_last(0.01, days_of_data)
    assert one(replace(IDLE, cpu_p95=cpu), thresholds) == verdict


@pytest.mark.parametrize(("days_of_data", "verdict"), [
    (23, Verdict.INSUFFICIENT_DATA), (24, Verdict.OK), (30, Verdict.OK),
])
def test_the_oversized_window_needs_80_percent_coverage_too(days_of_data: int, verdict: Verdict) -> None:
    assert one(replace(BUSY, cpu_p95=only_last(0.5, days_of_data))) == verdict


# ---------------------------------------------------------------------------------------------------------------
# 4. idle


def test_an_idle_server_reclaims_all_its_vcpu_and_ram() -> None:
    c = run(replace(IDLE, disk_gb=100))
    assert c.verdict[0] == Verdict.IDLE
    assert (c.reclaim_vcpus[0], c.reclaim_ram_mb[0], c.reclaim_disk_gb[0], c.recommended[0]) == (8, 16384, 0, -1)
    assert c.saving_month[0] == 800.0


@pytest.mark.parametrize(("change", "idle"), [
    ({"cpu_p95": daily(0.01, d29=0.0299)}, True),
    ({"cpu_p95": daily(0.01, d29=0.03)}, False),  # one day's p95 at 3 %
    ({"cpu_p95": daily(0.01, d16=0.2)}, False),  # a busy day inside the 14-day window
    ({"cpu_p95": daily(0.01, d15=0.2)}, True),  # … and just outside it
    ({"cpu_max": daily(0.05, d29=0.0999)}, True),
    ({"cpu_max": daily(0.05, d20=0.10)}, False),  # a nightly batch: low p95, high max
    ({"cpu_max": daily(0.05, d18=0.95)}, False),
    ({"net_rx": daily(500.0, d29=1999.0)}, True),
    ({"net_rx": daily(500.0, d29=2000.0)}, False),  # network: received
    ({"net_tx": daily(300.0, d29=1000.0)}, False),  # network: sent
    ({"net_rx": NAN, "net_tx": NAN}, False),  # no network data: cannot be called idle
    ({"net_tx": NAN}, False),
    ({"net_rx": only_last(500.0, 11)}, False),  # network on too few days
    ({"net_rx": only_last(500.0, 12)}, True),
    ({"cpu_p95": daily(0.01, d29=NAN), "cpu_max": daily(0.05, d29=NAN)}, True),  # a missing day is not busy
])
def test_idle_rule(change: dict[str, Any], idle: bool) -> None:
    verdict = one(replace(IDLE, **change))
    assert (verdict == Verdict.IDLE) is idle
    if not idle:
        # a quiet server that is not idle is still a candidate for downsizing
        assert verdict in (Verdict.OVERSIZED, Verdict.OK)


def test_a_quiet_server_without_network_data_is_downsized_not_shelved() -> None:
    c = run(replace(IDLE, net_rx=NAN, net_tx=NAN))
    assert c.verdict[0] == Verdict.OVERSIZED
    # p99 0.02 × 8 × 1.2 = 0.19 vCPU, mem 0.3 × 16384 × 1.2 = 5898 MB: c2m8 (disk 40)
    assert TABLE.names[c.recommended[0]] == "c2m8"


# ---------------------------------------------------------------------------------------------------------------
# 5. oversized


def test_oversized_recommends_the_cheapest_flavor_that_fits() -> None:
    c = run(SMALL)
    assert c.verdict[0] == Verdict.OVERSIZED
    assert TABLE.names[c.recommended[0]] == "c2m8"
    assert c.needed_vcpus[0] == pytest.approx(0.2 * 8 * 1.2)
    assert c.needed_ram_mb[0] == pytest.approx(0.3 * 16384 * 1.2)
    assert (c.reclaim_vcpus[0], c.reclaim_ram_mb[0], c.reclaim_disk_gb[0]) == (6, 8192, 0)
    assert c.saving_month[0] == 6 * 50 + 8 * 25


def test_oversized_sizes_for_the_worst_day_of_the_window() -> None:
    # one day at p99 0.45: 3.6 cores × 1.2 = 4.32 → 6 vCPUs: c6m12 (25 % of vCPU and of RAM)
    c = run(replace(SMALL, cpu_p99=daily(0.2, d3=0.45)))
    assert TABLE.names[c.recommended[0]] == "c6m12"
    assert c.cpu_p99_peak[0] == 0.45


@pytest.mark.parametrize(("cpu_p99", "user_facing", "flavor"), [
    (0.2, False, "c2m8"),
    (0.2, True, "c4m8"),  # 1.6 cores / 0.4 = 4 vCPUs; 4915 MB / 0.6 = 8192 MB exactly
    (0.35, False, "c4m8"),  # 2.8 cores × 1.2 = 3.36
    (0.35, True, None),  # 2.8 / 0.4 = 7 vCPUs: only its own c8m16 fits
])
def test_user_facing_servers_keep_more_headroom(cpu_p99: float, user_facing: bool, flavor: str | None) -> None:
    c = run(replace(SMALL, cpu_p99=cpu_p99, user_facing=user_facing))
    if flavor is None:
        assert (c.verdict[0], c.recommended[0]) == (Verdict.OK, -1)
    else:
        assert c.verdict[0] == Verdict.OVERSIZED
        assert TABLE.names[c.recommended[0]] == flavor


@pytest.mark.parametrize("mem_max", [NAN, only_last(0.3, 23)])
def test_without_enough_memory_data_ram_is_not_downsized(mem_max: Any) -> None:
    c = run(replace(SMALL, mem_max=mem_max))
    assert c.needed_ram_mb[0] == 16384
    assert c.verdict[0] == Verdict.OVERSIZED
    assert TABLE.names[c.recommended[0]] == "c4m16"  # 2 vCPUs would do, 16 GB must stay
    assert (c.reclaim_vcpus[0], c.reclaim_ram_mb[0]) == (4, 0)


def test_memory_on_enough_days_is_downsized() -> None:
    c = run(replace(SMALL, mem_max=only_last(0.3, 24)))
    assert TABLE.names[c.recommended[0]] == "c2m8"


@pytest.mark.parametrize(("disk_gb", "flavor"), [(20, "c2m8"), (40, "c2m8"), (41, "c4m8"), (50, "c4m8"),
                                                 (100, "c4m16"), (101, None)])
def test_a_root_disk_cannot_shrink(disk_gb: int, flavor: str | None) -> None:
    c = run(replace(SMALL, disk_gb=disk_gb))
    assert (TABLE.names[c.recommended[0]] if c.recommended[0] >= 0 else None) == flavor


@pytest.mark.parametrize(("ratio", "verdict"), [(0.25, Verdict.OVERSIZED), (0.26, Verdict.OK)])
def test_a_saving_below_the_ratio_is_not_worth_a_resize(ratio: float, verdict: Verdict) -> None:
    # p99 0.55: 4.4 cores × 1.2 = 5.28 → c6m12 saves exactly 25 % of vCPU and of RAM
    server = replace(SMALL, cpu_p99=0.55, mem_max=0.5)
    c = run(server, thresholds=Thresholds(min_saving_ratio=ratio))
    assert c.verdict[0] == verdict
    if verdict == Verdict.OK:
        assert (c.recommended[0], c.reclaim_vcpus[0], c.saving_month[0]) == (-1, 0, 0.0)


def test_no_flavor_smaller_than_the_current_one_is_ok() -> None:
    # 0.6 × 8 × 1.2 = 5.76 → 6 vCPUs, but 0.7 × 16 GB × 1.2 = 13.4 GB does not fit c6m12
    assert one(BUSY) == Verdict.OK


def test_a_server_is_never_upsized() -> None:
    # a c2m4 server at 90 %: needs 2.16 vCPUs, more than it has; nothing to recommend
    assert one(replace(BUSY, flavor="c2m4", cpu_p99=0.9)) == Verdict.OK


@pytest.mark.parametrize(("vcpus", "ram_mb", "cpu_p99", "flavor"), [
    (3, 8192, 0.5, "c2m8"),  # 1.8 vCPUs, 6881 MB: c2m8 costs 300 < 350 and saves a third of the vCPU
    (2, 8192, 0.5, None),  # same sizes as c2m8: not cheaper
    (3, 8192, 0.9, None),  # 3.24 vCPUs: more than it has
])
def test_servers_off_the_catalogue_step_down_only_to_a_cheaper_flavor(vcpus: int, ram_mb: int, cpu_p99: float,
                                                                       flavor: str | None) -> None:
    c = run(replace(SMALL, flavor=None, vcpus=vcpus, ram_mb=ram_mb, cpu_p99=cpu_p99, mem_max=0.7))
    assert (TABLE.names[c.recommended[0]] if c.recommended[0] >= 0 else None) == flavor
    assert c.verdict[0] == (Verdict.OVERSIZED if flavor else Verdict.OK)


def test_each_server_is_sized_against_its_own_clouds_catalogue() -> None:
    other = FlavorTable.from_flavors([("s.large", 8, 16384, 100), ("s.small", 4, 8192, 40)], Prices())
    window, facts = build(SMALL, SMALL)
    facts = replace(facts, flavor_table=np.array([0, 1]), flavor_index=np.array([INDEX["c8m16"], 1]))
    c = classify(window, facts, [TABLE, other])
    assert [TABLE.names[c.recommended[0]], other.names[c.recommended[1]]] == ["c2m8", "s.small"]
    assert list(c.reclaim_vcpus) == [6, 4]


# ---------------------------------------------------------------------------------------------------------------
# savings, evidence, warnings


def test_saving_month_arithmetic_uses_the_given_prices() -> None:
    prices = Prices(vcpu_month=40.0, ram_gb_month=10.0, disk_gb_month=1.0)
    c = run(replace(NO_DATA, stopped_days=40.0), IDLE, SMALL, BUSY, prices=prices)
    expected = [8 * 40 + 16 * 10, 8 * 40 + 16 * 10, 6 * 40 + 8 * 10, 0]
    assert c.saving_month.tolist() == pytest.approx(expected)
    assert c.saving_month.dtype == np.float64
    assert c.reclaim_vcpus.dtype == c.reclaim_ram_mb.dtype == c.reclaim_disk_gb.dtype == np.int64
    assert c.verdict.dtype == np.int8


def test_all_nan_rows_give_nan_evidence_without_warnings() -> None:
    c = run(NO_DATA, BUSY)
    assert np.isnan([c.cpu_p95_peak[0], c.cpu_max_peak[0], c.cpu_p99_peak[0], c.mem_max_peak[0],
                     c.needed_vcpus[0]]).all()
    assert c.days_with_data.tolist() == [0, 14]
    assert c.counts() == {"ok": 1, "insufficient_data": 1, "idle": 0, "oversized": 0, "zombie": 0, "stopped": 0}


def test_evidence_of_each_verdict() -> None:
    servers = [replace(NO_DATA, stopped_days=45.25), replace(NO_DATA, stopped_days=20.0),
               replace(IDLE, age_days=5.0), replace(IDLE, missing=(27, 28, 29)),
               replace(BUSY, cpu_p95=only_last(0.5, 20)), IDLE, replace(SMALL, mem_max=NAN), BUSY]
    window, facts = build(*servers)
    c = classify(window, facts, [TABLE])
    found = [evidence(c, facts, [TABLE], i) for i in range(len(servers))]
    for record in found:
        json.dumps(record, allow_nan=False)  # stored as JSON: no NaN, only plain types
    zombie, stopped, young, few, few_month, idle, oversized, ok = found
    assert zombie == {"verdict": "zombie", "stopped_days": 45.2, "stopped_days_needed": 30.0, "vcpus": 8,
                      "ram_mb": 16384, "reclaim_vcpus": 8, "reclaim_ram_mb": 16384, "reclaim_disk_gb": 0,
                      "saving_month": 800.0}
    assert stopped == {"verdict": "stopped", "stopped_days": 20.0, "stopped_days_needed": 14.0}
    assert young["reason"] == "too_young"
    assert (young["age_days"], young["min_age_days"]) == (5.0, 14.0)
    assert (few["reason"], few["days_with_data"], few["days_needed"]) == ("too_few_days", 11, 12)
    assert (few_month["reason"], few_month["oversized_days_with_data"], few_month["oversized_days_needed"]) == (
        "too_few_days_oversized", 20, 24)
    assert idle == {"verdict": "idle", "days_with_data": 14, "net_days_with_data": 14, "window_days": 14,
                    "cpu_p95_peak": 0.01, "cpu_max_peak": 0.05, "net_rx_p95_peak": 500.0,
                    "net_tx_p95_peak": 300.0, "vcpus": 8, "ram_mb": 16384, "reclaim_vcpus": 8,
                    "reclaim_ram_mb": 16384, "reclaim_disk_gb": 0, "saving_month": 800.0}
    assert oversized["verdict"] == "oversized"
    assert (oversized["flavor"], oversized["flavor_vcpus"], oversized["flavor_ram_mb"]) == ("c4m16", 4, 16384)
    assert (oversized["cpu_p99_peak"], oversized["mem_max_peak"], oversized["mem_days_with_data"]) == (0.2, None, 0)
    assert (oversized["needed_vcpus"], oversized["needed_ram_mb"]) == (1.92, 16384.0)
    assert (oversized["reclaim_vcpus"], oversized["reclaim_ram_mb"], oversized["saving_month"]) == (4, 0, 200.0)
    assert ok["verdict"] == "ok"
    assert (ok["needed_vcpus"], ok["cpu_p99_peak"], ok["mem_max_peak"]) == (5.76, 0.6, 0.7)
    assert "flavor" not in ok
    assert "reclaim_vcpus" not in ok


# ---------------------------------------------------------------------------------------------------------------
# A mixed fleet against a slow per-server reference


def reference(window: FleetWindow, facts: ServerFacts, tables: list[FlavorTable], t: Thresholds,
              p: Prices) -> list[tuple[Verdict, int, int, int]]:
    """The rules as written in the brief, one server at a time, with plain Python lists and math."""
    eps = 1e-9
    d = window.days.shape[0]
    idle_days = range(max(0, d - t.idle_window_days), d)
    over_days = range(max(0, d - t.oversized_window_days), d)
    need_idle = max(t.min_days_with_data, math.ceil(round(t.min_coverage * t.idle_window_days, 6)))
    need_over = max(t.min_days_with_data, math.ceil(round(t.min_coverage * t.oversized_window_days, 6)))
    out: list[tuple[Verdict, int, int, int]] = []
    for i in range(facts.servers):
        v, r, disk = int(facts.vcpus[i]), int(facts.ram_mb[i]), int(facts.disk_gb[i])
        stopped = float(facts.stopped_days[i])
        age = float(facts.age_days[i])

        def values(name: str, days: range, i: int = i) -> list[float]:
            row = getattr(window, name)[i]
            return [float(row[j]) for j in days if not math.isnan(row[j])]

        if not math.isnan(stopped) and stopped >= t.zombie_days:
            out.append((Verdict.ZOMBIE, -1, v, r))
            continue
        if not math.isnan(stopped) and stopped >= t.zombie_flag_days:
            out.append((Verdict.STOPPED, -1, 0, 0))
            continue
        cpu95 = values("cpu_p95", idle_days)
        if math.isnan(age) or age < t.min_age_days or len(cpu95) < need_idle:
            out.append((Verdict.INSUFFICIENT_DATA, -1, 0, 0))
            continue
        net_days = [j for j in idle_days if not math.isnan(window.net_rx_p95[i, j])
                    and not math.isnan(window.net_tx_p95[i, j])]
        cpu_max = values("cpu_max", idle_days)
        if (len(net_days) >= need_idle and all(x < t.idle_cpu_p95 for x in cpu95)
                and cpu_max and max(cpu_max) < t.idle_cpu_max
                and all(x < t.idle_net_rx_p95 for x in values("net_rx_p95", idle_days))
                and all(x < t.idle_net_tx_p95 for x in values("net_tx_p95", idle_days))):
            out.append((Verdict.IDLE, -1, v, r))
            continue
        if len(values("cpu_p95", over_days)) < need_over:
            out.append((Verdict.INSUFFICIENT_DATA, -1, 0, 0))
            continue
        cores = max(values("cpu_p99", over_days)) * v
        uf = bool(facts.user_facing[i])
        needed_v = cores / t.user_facing_cpu_target if uf else cores * t.headroom
        mem = values("mem_max", over_days)
        if len(mem) >= need_over:
            needed_r = max(mem) * r / t.user_facing_mem_target if uf else max(mem) * r * t.headroom
        else:
            needed_r = float(r)
        table = tables[int(facts.flavor_table[i])]
        current = int(facts.flavor_index[i])
        verdict = (Verdict.OK, -1, 0, 0)
        for k in range(len(table)):
            fv, fr, fd = int(table.vcpus[k]), int(table.ram_mb[k]), int(table.disk_gb[k])
            if fv >= needed_v - eps and fr >= needed_r - eps and fd >= disk and fv <= v and fr <= r:
                if current >= 0:
                    smaller = k < current
                else:
                    smaller = fv * p.vcpu_month + fr / 1024 * p.ram_gb_month < (
                        v * p.vcpu_month + r / 1024 * p.ram_gb_month - eps)
                saves = (v - fv) >= t.min_saving_ratio * v - eps or (r - fr) >= t.min_saving_ratio * r - eps
                if smaller and saves:
                    verdict = (Verdict.OVERSIZED, k, v - fv, r - fr)
                break
        out.append(verdict)
    return out


def random_fleet(rng: np.random.Generator, n: int, tables: list[FlavorTable]) -> tuple[FleetWindow, ServerFacts]:
    window = FleetWindow.empty(n, date(2026, 11, 30), DAYS)
    table_of = rng.integers(0, len(tables), n)
    index = np.array([rng.integers(0, len(tables[t])) for t in table_of])
    vcpus = np.array([tables[t].vcpus[k] for t, k in zip(table_of, index, strict=True)])
    ram = np.array([tables[t].ram_mb[k] for t, k in zip(table_of, index, strict=True)])
    disk = np.array([tables[t].disk_gb[k] for t, k in zip(table_of, index, strict=True)])
    off = rng.random(n) < 0.1  # a tenth off the catalogue, with a flavor that was since deleted
    index[off] = -1
    profile = rng.integers(0, 5, n)  # busy, small, idle, near the idle thresholds, batch
    near = [0.01, 0.029, 0.03, 0.031, 0.05]
    for i in range(n):
        if profile[i] == 0:
            base = rng.uniform(0.3, 0.9, DAYS)
        elif profile[i] == 1:
            base = rng.uniform(0.02, 0.3, DAYS)
        else:
            base = rng.choice(near, DAYS, p=[0.9, 0.04, 0.02, 0.02, 0.02]) if profile[i] == 3 else np.full(
                DAYS, 0.01)
        window.cpu_p95[i] = base
        window.cpu_p99[i] = base * rng.uniform(1.0, 1.3, DAYS)
        batch = rng.random(DAYS) < (0.3 if profile[i] == 4 else 0.02)
        window.cpu_max[i] = np.where(batch, rng.uniform(0.08, 0.9, DAYS), base * 1.5)
        window.mem_max[i] = rng.uniform(0.1, 0.9) * rng.uniform(0.9, 1.0, DAYS)
        quiet = profile[i] >= 2
        window.net_rx_p95[i] = rng.choice([500.0, 1999.0, 2000.0], DAYS, p=[0.95, 0.03, 0.02]) if quiet else 1e5
        window.net_tx_p95[i] = rng.choice([300.0, 999.0, 1000.0], DAYS, p=[0.95, 0.03, 0.02]) if quiet else 1e5
        for name, chance in (("cpu_p95", 0.08), ("mem_max", 0.15), ("net_rx_p95", 0.1), ("net_tx_p95", 0.05)):
            if rng.random() < 0.5:  # half the servers have gaps
                getattr(window, name)[i, rng.random(DAYS) < chance] = NAN
        if rng.random() < 0.05:
            window.mem_max[i] = NAN  # no guest agent
    age = rng.choice([3.0, 13.9, 14.0, 60.0, 400.0, NAN], n, p=[0.03, 0.02, 0.02, 0.3, 0.62, 0.01])
    stopped = rng.choice([NAN, 5.0, 13.9, 14.0, 29.9, 30.0, 90.0], n, p=[0.8, 0.03, 0.02, 0.04, 0.03, 0.04, 0.04])
    facts = ServerFacts(vcpus=vcpus, ram_mb=ram, disk_gb=np.where(rng.random(n) < 0.2, disk + 10, disk),
                        age_days=age, stopped_days=stopped, user_facing=rng.random(n) < 0.3,
                        flavor_table=table_of, flavor_index=index)
    return window, facts


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_mixed_fleet_matches_the_per_server_reference(seed: int) -> None:
    other = FlavorTable.from_flavors([(f"g{v}m{r}", v, r * 1024, d) for v, r, d in
                                      [(1, 1, 20), (1, 2, 20), (2, 2, 40), (2, 4, 40), (4, 4, 40), (4, 8, 80),
                                       (8, 8, 80), (8, 16, 80), (16, 16, 160), (16, 32, 160), (32, 64, 160)]])
    tables = [TABLE, other]
    window, facts = random_fleet(np.random.default_rng(seed), 400, tables)
    thresholds = Thresholds()
    c = classify(window, facts, tables, thresholds)
    expected = reference(window, facts, tables, thresholds, Prices())
    got = list(zip(c.verdict.tolist(), c.recommended.tolist(), c.reclaim_vcpus.tolist(), c.reclaim_ram_mb.tolist(),
                   strict=True))
    mismatches = [(i, g, e) for i, (g, e) in enumerate(zip(got, expected, strict=True)) if g != tuple(map(int, e))]
    assert mismatches == []
    # the fleet exercises every verdict, so the comparison means something
    assert all(count > 0 for count in c.counts().values()), c.counts()
    assert c.saving_month == pytest.approx(c.reclaim_vcpus * 50 + c.reclaim_ram_mb / 1024 * 25)
    assert (c.reclaim_disk_gb == 0).all()


# ---------------------------------------------------------------------------------------------------------------
# summarise_samples


@pytest.mark.parametrize(("rows", "k", "chunk_rows"), [
    (1000, 288, 1), (1000, 288, 7), (1000, 288, 64), (1000, 288, 1000), (1000, 288, 4096),
    (333, 60, 100),  # a last partial chunk of 33 rows
    (50, 1, 8), (50, 2, 8), (20, 5, 3),
])
def test_summarise_samples_matches_numpy(rows: int, k: int, chunk_rows: int) -> None:
    rng = np.random.default_rng(rows * k + chunk_rows)
    samples = (rng.gamma(2.0, 0.1, (rows, k))).astype(np.float32)
    samples[rng.random((rows, k)) < 0.05] = 0.25  # ties
    before = samples.copy()
    summary = summarise_samples(samples, chunk_rows=chunk_rows)
    assert np.array_equal(samples, before)  # the input is not modified
    wide = samples.astype(np.float64)
    np.testing.assert_allclose(summary.p95, np.quantile(wide, 0.95, axis=1, method="linear"), rtol=1e-12)
    np.testing.assert_allclose(summary.p99, np.quantile(wide, 0.99, axis=1, method="linear"), rtol=1e-12)
    assert np.array_equal(summary.max, samples.max(axis=1))
    np.testing.assert_allclose(summary.mean, np.mean(samples, axis=1, dtype=np.float64), rtol=1e-12)
    assert summary.samples == k
    assert summary.p95.shape == summary.p99.shape == summary.max.shape == summary.mean.shape == (rows,)


def test_summarise_samples_interpolates_as_prometheus_does() -> None:
    # quantile_over_time(0.95) of 1..5: rank 0.95 × 4 = 3.8, between 4 and 5 → 4.8
    summary = summarise_samples(np.array([[5, 1, 4, 2, 3]], dtype=np.float32))
    assert summary.p95[0] == pytest.approx(4.8)
    assert summary.p99[0] == pytest.approx(4.96)
    assert (summary.max[0], summary.mean[0]) == (5.0, 3.0)


def test_summarise_samples_extra_memory_is_a_small_fraction_of_the_input() -> None:
    samples = np.random.default_rng(0).random((20_000, 288), dtype=np.float32)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        start, _ = tracemalloc.get_traced_memory()
        summarise_samples(samples)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - start < 0.25 * samples.nbytes


def test_summarise_samples_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="samples"):
        summarise_samples(np.zeros(5, dtype=np.float32))
    with pytest.raises(ValueError, match="samples"):
        summarise_samples(np.zeros((5, 0), dtype=np.float32))
    with pytest.raises(ValueError, match="chunk_rows"):
        summarise_samples(np.zeros((5, 3), dtype=np.float32), chunk_rows=0)
