"""Reclaim analysis: which servers are zombies, idle or oversized, and what reclaiming them would save.

Pure functions over numpy arrays: no database, no I/O, no clock. The service loads a window of
daily summaries (see ``sources.base`` for the units) into a :class:`FleetWindow`, the servers'
sizes and states into :class:`ServerFacts`, each cloud's flavors into a :class:`FlavorTable`, and
:func:`classify` returns one verdict per server with the numbers behind it. Every rule is
evaluated for all servers at once; the only Python loops run over flavor tables (one per cloud).

"Cannot decide" is a verdict (``insufficient_data``), never an exception: a server with too
little data is not called idle or oversized.

:func:`summarise_samples` is the simulator's counterpart of a Prometheus query: it reduces raw
samples to the p95 / p99 / max / mean that a source stores per server, day and metric.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from enum import IntEnum
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "Classification",
    "FlavorTable",
    "FleetWindow",
    "Prices",
    "SampleSummary",
    "ServerFacts",
    "Thresholds",
    "Verdict",
    "classify",
    "days_needed",
    "evidence",
    "summarise_samples",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

# Sizes are compared with a little slack so that 0.5 × 8 × 1.2 computed as 4.800000000000001 still fits
# a flavor of 4.8 (never happens with whole vCPUs, but does with RAM in MB) and a 25 % saving computed as
# 0.24999999999999997 still counts as 25 %.
_EPS = 1e-9

METRIC_FIELDS = ("cpu_p95", "cpu_p99", "cpu_max", "mem_max", "net_rx_p95", "net_tx_p95")


class Verdict(IntEnum):
    """One server's verdict; stored as int8 codes in :attr:`Classification.verdict`."""

    OK = 0
    INSUFFICIENT_DATA = 1
    IDLE = 2
    OVERSIZED = 3
    ZOMBIE = 4
    STOPPED = 5

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Every number the rules use; the service fills it from configuration."""

    min_days_with_data: int = 7
    min_coverage: float = 0.8
    min_age_days: float = 14
    zombie_days: float = 30
    zombie_flag_days: float = 14
    idle_window_days: int = 14
    idle_cpu_p95: float = 0.03
    idle_cpu_max: float = 0.10
    idle_net_rx_p95: float = 2000.0  # bytes/s
    idle_net_tx_p95: float = 1000.0  # bytes/s
    oversized_window_days: int = 30
    headroom: float = 1.2
    user_facing_cpu_target: float = 0.40
    user_facing_mem_target: float = 0.60
    min_saving_ratio: float = 0.25

    def __post_init__(self) -> None:
        for name in ("idle_window_days", "oversized_window_days"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: a window needs at least one day")
        if not 0.0 <= self.min_coverage <= 1.0:
            raise ValueError("min_coverage: must be a fraction between 0 and 1")
        for name in ("user_facing_cpu_target", "user_facing_mem_target", "headroom"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: must be positive")
        if self.zombie_flag_days > self.zombie_days:
            raise ValueError("zombie_flag_days: must not exceed zombie_days")

    @property
    def idle_days_needed(self) -> int:
        return days_needed(self.min_days_with_data, self.min_coverage, self.idle_window_days)

    @property
    def oversized_days_needed(self) -> int:
        return days_needed(self.min_days_with_data, self.min_coverage, self.oversized_window_days)


@dataclass(frozen=True, slots=True)
class Prices:
    """Unit prices in CNY per month (the bureau's showback prices)."""

    vcpu_month: float = 50.0
    ram_gb_month: float = 25.0
    disk_gb_month: float = 0.6

    def month(self, vcpus: Any, ram_mb: Any, disk_gb: Any = 0) -> Any:
        """Monthly price of these sizes (scalars or arrays alike)."""
        return vcpus * self.vcpu_month + ram_mb / 1024 * self.ram_gb_month + disk_gb * self.disk_gb_month


def days_needed(min_days: int, coverage: float, window_days: int) -> int:
    """Days with data a window needs: at least ``min_days`` and at least ``coverage`` of the window."""
    # 0.8 × 30 is 24.000000000000004 on some inputs: take the slack off before rounding up.
    return max(min_days, math.ceil(coverage * window_days - _EPS))


def _float2d(value: Any, name: str) -> FloatArray:
    array = np.asarray(value, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{name}: expected an (n servers, d days) array, got shape {array.shape}")
    return array


@dataclass(frozen=True, slots=True)
class FleetWindow:
    """Daily summaries of n servers over d days, oldest first; NaN where a day has no summary.

    The arrays are kept as given when they already are float64, so a caller may build the
    window with :meth:`empty` and fill the arrays in place.
    """

    days: npt.NDArray[np.datetime64]  # (d,) datetime64[D]
    cpu_p95: FloatArray  # (n, d) fractions of the server's vCPUs
    cpu_p99: FloatArray
    cpu_max: FloatArray
    mem_max: FloatArray  # fraction of the server's RAM
    net_rx_p95: FloatArray  # bytes per second
    net_tx_p95: FloatArray

    def __post_init__(self) -> None:
        days = np.asarray(self.days, dtype="datetime64[D]")
        if days.ndim != 1:
            raise ValueError(f"days: expected a (d,) array, got shape {days.shape}")
        object.__setattr__(self, "days", days)
        servers: int | None = None
        for name in METRIC_FIELDS:
            array = _float2d(getattr(self, name), name)
            if array.shape[1] != days.shape[0]:
                raise ValueError(f"{name}: has {array.shape[1]} days, days has {days.shape[0]}")
            if servers is not None and array.shape[0] != servers:
                raise ValueError(f"{name}: has {array.shape[0]} servers, cpu_p95 has {servers}")
            servers = array.shape[0]
            object.__setattr__(self, name, array)

    @property
    def servers(self) -> int:
        return int(self.cpu_p95.shape[0])

    @classmethod
    def empty(cls, servers: int, last_day: date | np.datetime64 | str, days: int = 30) -> FleetWindow:
        """An all-NaN window of ``servers`` rows over the ``days`` days ending with ``last_day``."""
        last = np.asarray(last_day, dtype="datetime64[D]")
        day_axis = last - np.arange(days - 1, -1, -1).astype("timedelta64[D]")
        return cls(day_axis, *(np.full((servers, days), np.nan) for _ in METRIC_FIELDS))


@dataclass(frozen=True, slots=True)
class ServerFacts:
    """What the inventory knows about n servers, as (n,) arrays."""

    vcpus: IntArray
    ram_mb: IntArray
    disk_gb: IntArray
    age_days: FloatArray  # since launch; NaN when never launched (then its data is not trusted)
    stopped_days: FloatArray  # how long SHUTOFF / SUSPENDED / PAUSED; NaN while running
    user_facing: BoolArray
    flavor_table: IntArray  # index into the list of FlavorTables (one per cloud)
    flavor_index: IntArray  # the current flavor's index in its table, -1 when not in the catalogue

    def __post_init__(self) -> None:
        dtypes: dict[str, Any] = {"vcpus": np.int64, "ram_mb": np.int64, "disk_gb": np.int64,
                                  "age_days": np.float64, "stopped_days": np.float64, "user_facing": np.bool_,
                                  "flavor_table": np.int64, "flavor_index": np.int64}
        servers = np.asarray(self.vcpus).shape
        for name, dtype in dtypes.items():
            array = np.asarray(getattr(self, name), dtype=dtype)
            if array.ndim != 1 or array.shape != servers:
                raise ValueError(f"{name}: expected shape {servers}, got {array.shape}")
            object.__setattr__(self, name, array)

    @property
    def servers(self) -> int:
        return int(self.vcpus.shape[0])


@dataclass(frozen=True, slots=True)
class FlavorTable:
    """One cloud's flavor catalogue, cheapest first (see :meth:`from_flavors`)."""

    names: npt.NDArray[np.object_]
    vcpus: IntArray
    ram_mb: IntArray
    disk_gb: IntArray

    def __post_init__(self) -> None:
        names = np.empty(len(self.names), dtype=object)
        names[:] = list(self.names)
        object.__setattr__(self, "names", names)
        for name in ("vcpus", "ram_mb", "disk_gb"):
            array = np.asarray(getattr(self, name), dtype=np.int64)
            if array.shape != names.shape:
                raise ValueError(f"{name}: expected {names.shape[0]} flavors, got shape {array.shape}")
            object.__setattr__(self, name, array)

    def __len__(self) -> int:
        return int(self.names.shape[0])

    @classmethod
    def from_flavors(cls, flavors: Iterable[tuple[str, int, int, int]], prices: Prices = Prices()) -> FlavorTable:
        """Sort ``(name, vcpus, ram_mb, disk_gb)`` rows by monthly price, then vCPUs, then RAM.

        The order is what "one flavor step smaller" means, so the service must build every table here.
        Disk is not priced in the order: a resize keeps the root disk, so it never saves disk.
        """
        rows = sorted(flavors, key=lambda f: (prices.month(f[1], f[2]), f[1], f[2], f[3], f[0]))
        return cls(np.array([r[0] for r in rows], dtype=object), np.array([r[1] for r in rows], dtype=np.int64),
                   np.array([r[2] for r in rows], dtype=np.int64), np.array([r[3] for r in rows], dtype=np.int64))


@dataclass(frozen=True, slots=True)
class Classification:
    """One verdict per server and the evidence the rules used, as (n,) arrays."""

    verdict: npt.NDArray[np.int8]  # Verdict codes
    recommended: IntArray  # index into the server's flavor table; -1 unless oversized
    reclaim_vcpus: IntArray
    reclaim_ram_mb: IntArray
    reclaim_disk_gb: IntArray
    saving_month: FloatArray  # CNY per month
    # evidence: over the idle window (the last idle_window_days days)
    days_with_data: IntArray  # days with CPU data
    net_days_with_data: IntArray  # days with both received and sent network data
    cpu_p95_peak: FloatArray  # NaN without data
    cpu_max_peak: FloatArray
    net_rx_p95_peak: FloatArray
    net_tx_p95_peak: FloatArray
    # evidence: over the oversized window (the last oversized_window_days days)
    oversized_days_with_data: IntArray
    mem_days_with_data: IntArray
    cpu_p99_peak: FloatArray
    mem_max_peak: FloatArray
    needed_vcpus: FloatArray  # NaN without CPU data
    needed_ram_mb: FloatArray  # the current RAM when memory data is too thin to downsize
    thresholds: Thresholds
    prices: Prices

    def __len__(self) -> int:
        return int(self.verdict.shape[0])

    def verdict_of(self, i: int) -> Verdict:
        return Verdict(int(self.verdict[i]))

    def counts(self) -> dict[str, int]:
        """Servers per verdict label, every verdict present (zero when none)."""
        found = np.bincount(self.verdict.astype(np.intp), minlength=len(Verdict))
        return {v.label: int(found[v]) for v in Verdict}


def _peak(values: FloatArray) -> FloatArray:
    """Row-wise max ignoring NaN; NaN for a row without data, and no RuntimeWarning (unlike np.nanmax)."""
    if values.shape[1] == 0:
        return np.full(values.shape[0], np.nan)
    # fmax propagates a number over NaN, so an all-NaN row reduces to NaN silently.
    peak: FloatArray = np.fmax.reduce(values, axis=1)
    return peak


def _present(values: FloatArray) -> BoolArray:
    return ~np.isnan(values)


def _recommend(candidates: BoolArray, facts: ServerFacts, flavors: Sequence[FlavorTable], needed_vcpus: FloatArray,
               needed_ram_mb: FloatArray, thresholds: Thresholds, prices: Prices) -> IntArray:
    """The cheapest flavor each candidate fits into, where it is a real step down; -1 otherwise."""
    recommended = np.full(facts.servers, -1, dtype=np.int64)
    ratio = thresholds.min_saving_ratio
    for table_index, table in enumerate(flavors):
        if len(table) == 0:
            continue
        rows = np.flatnonzero(candidates & (facts.flavor_table == table_index))
        if rows.size == 0:
            continue
        cur_v = facts.vcpus[rows, None]
        cur_r = facts.ram_mb[rows, None]
        # (servers of this cloud, flavors of this cloud): a few thousand × ~20 booleans
        fits = ((table.vcpus >= needed_vcpus[rows, None] - _EPS) & (table.ram_mb >= needed_ram_mb[rows, None] - _EPS)
                & (table.disk_gb >= facts.disk_gb[rows, None])  # Nova cannot shrink a root disk
                & (table.vcpus <= cur_v) & (table.ram_mb <= cur_r))
        found = fits.any(axis=1)
        cheapest = fits.argmax(axis=1)  # the table is sorted by price: the first fit is the cheapest
        current = facts.flavor_index[rows]
        rec_v = table.vcpus[cheapest]
        rec_r = table.ram_mb[cheapest]
        cur_v1, cur_r1 = cur_v[:, 0], cur_r[:, 0]
        cheaper = prices.month(rec_v, rec_r) < prices.month(cur_v1, cur_r1) - _EPS
        step_down = np.where(current >= 0, cheapest < current, cheaper)
        saves = ((cur_v1 - rec_v >= ratio * cur_v1 - _EPS) | (cur_r1 - rec_r >= ratio * cur_r1 - _EPS))
        chosen = found & step_down & saves
        recommended[rows[chosen]] = cheapest[chosen]
    return recommended


def classify(window: FleetWindow, facts: ServerFacts, flavors: Sequence[FlavorTable],
             thresholds: Thresholds = Thresholds(), prices: Prices = Prices()) -> Classification:
    """Classify every server; the first rule that matches wins (zombie, stopped, insufficient data, idle, oversized).

    ``flavors[facts.flavor_table[i]]`` is server i's cloud's catalogue, built with
    :meth:`FlavorTable.from_flavors` with the same ``prices``.
    """
    t = thresholds
    n = facts.servers
    if window.servers != n:
        raise ValueError(f"window: has {window.servers} servers, facts has {n}")
    idle_need = t.idle_days_needed
    over_need = t.oversized_days_needed

    # The idle window: every day with data must be quiet, and the busiest minute of it too.
    idle = slice(-t.idle_window_days, None)
    cpu_p95 = window.cpu_p95[:, idle]
    days_with_data = np.count_nonzero(_present(cpu_p95), axis=1).astype(np.int64)
    net_days = np.count_nonzero(_present(window.net_rx_p95[:, idle]) & _present(window.net_tx_p95[:, idle]),
                                axis=1).astype(np.int64)
    cpu_p95_peak = _peak(cpu_p95)
    cpu_max_peak = _peak(window.cpu_max[:, idle])
    net_rx_peak = _peak(window.net_rx_p95[:, idle])
    net_tx_peak = _peak(window.net_tx_p95[:, idle])

    # The oversized window: size for the worst day of the month, not the typical one.
    over = slice(-t.oversized_window_days, None)
    over_days = np.count_nonzero(_present(window.cpu_p95[:, over]), axis=1).astype(np.int64)
    mem = window.mem_max[:, over]
    mem_days = np.count_nonzero(_present(mem), axis=1).astype(np.int64)
    cpu_p99_peak = _peak(window.cpu_p99[:, over])
    mem_max_peak = _peak(mem)

    vcpus = facts.vcpus.astype(np.float64)
    ram_mb = facts.ram_mb.astype(np.float64)
    user_facing = facts.user_facing
    cores_used = cpu_p99_peak * vcpus
    # A user-facing system must absorb a surge at the counter, so it targets 40 % busy rather than 1/1.2.
    needed_vcpus = np.where(user_facing, cores_used / t.user_facing_cpu_target, cores_used * t.headroom)
    ram_used = mem_max_peak * ram_mb
    needed_ram_mb = np.where(user_facing, ram_used / t.user_facing_mem_target, ram_used * t.headroom)
    # Too little memory data: keep the RAM it has (guessing low would be an outage, guessing high costs nothing).
    needed_ram_mb = np.where(mem_days >= over_need, needed_ram_mb, ram_mb)

    stopped = facts.stopped_days  # NaN (running) compares False everywhere below
    is_zombie = stopped >= t.zombie_days
    is_stopped = stopped >= t.zombie_flag_days
    # NaN age (never launched) is not old enough: its data cannot be trusted.
    undecided = ~(facts.age_days >= t.min_age_days) | (days_with_data < idle_need)
    is_idle = ((net_days >= idle_need) & (cpu_p95_peak < t.idle_cpu_p95) & (cpu_max_peak < t.idle_cpu_max)
               & (net_rx_peak < t.idle_net_rx_p95) & (net_tx_peak < t.idle_net_tx_p95))
    over_undecided = over_days < over_need
    earlier = is_zombie | is_stopped | undecided | is_idle | over_undecided
    recommended = _recommend(~earlier, facts, flavors, needed_vcpus, needed_ram_mb, t, prices)
    is_oversized = recommended >= 0  # only candidates (nothing earlier matched) get a recommendation

    # np.select takes the first true condition: the rules' order is this list's order.
    verdict = np.select(
        [is_zombie, is_stopped, undecided, is_idle, over_undecided, is_oversized],
        [Verdict.ZOMBIE, Verdict.STOPPED, Verdict.INSUFFICIENT_DATA, Verdict.IDLE, Verdict.INSUFFICIENT_DATA,
         Verdict.OVERSIZED],
        default=Verdict.OK,
    ).astype(np.int8)

    # A stopped server still holds its vCPU and RAM on its host and an idle one wastes them: shelve-offload
    # frees both. It keeps the disk (as an image), so no rule reclaims disk.
    whole = (verdict == Verdict.ZOMBIE) | (verdict == Verdict.IDLE)
    reclaim_vcpus = np.where(whole, facts.vcpus, 0).astype(np.int64)
    reclaim_ram_mb = np.where(whole, facts.ram_mb, 0).astype(np.int64)
    for table_index, table in enumerate(flavors):
        rows = np.flatnonzero(is_oversized & (facts.flavor_table == table_index))
        if rows.size:
            reclaim_vcpus[rows] = facts.vcpus[rows] - table.vcpus[recommended[rows]]
            reclaim_ram_mb[rows] = facts.ram_mb[rows] - table.ram_mb[recommended[rows]]
    reclaim_disk_gb = np.zeros(n, dtype=np.int64)
    saving_month = np.asarray(prices.month(reclaim_vcpus, reclaim_ram_mb, reclaim_disk_gb), dtype=np.float64)

    return Classification(
        verdict=verdict, recommended=recommended, reclaim_vcpus=reclaim_vcpus, reclaim_ram_mb=reclaim_ram_mb,
        reclaim_disk_gb=reclaim_disk_gb, saving_month=saving_month, days_with_data=days_with_data,
        net_days_with_data=net_days, cpu_p95_peak=cpu_p95_peak, cpu_max_peak=cpu_max_peak,
        net_rx_p95_peak=net_rx_peak, net_tx_p95_peak=net_tx_peak, oversized_days_with_data=over_days,
        mem_days_with_data=mem_days, cpu_p99_peak=cpu_p99_peak, mem_max_peak=mem_max_peak,
        needed_vcpus=needed_vcpus, needed_ram_mb=needed_ram_mb, thresholds=t, prices=prices,
    )


def _num(value: Any, digits: int) -> float | None:
    number = float(value)
    return None if math.isnan(number) else round(number, digits)


def evidence(classification: Classification, facts: ServerFacts, flavors: Sequence[FlavorTable],
             i: int) -> dict[str, float | int | str | None]:
    """The numbers that decided server ``i``'s verdict, JSON-ready (NaN as None), for the recommendation record."""
    c = classification
    t = c.thresholds
    verdict = c.verdict_of(i)
    out: dict[str, float | int | str | None] = {"verdict": verdict.label}
    if verdict in (Verdict.ZOMBIE, Verdict.STOPPED):
        out["stopped_days"] = _num(facts.stopped_days[i], 1)
        out["stopped_days_needed"] = _num(t.zombie_days if verdict is Verdict.ZOMBIE else t.zombie_flag_days, 1)
    elif verdict is Verdict.INSUFFICIENT_DATA:
        age_ok = bool(facts.age_days[i] >= t.min_age_days)
        idle_ok = int(c.days_with_data[i]) >= t.idle_days_needed
        out["reason"] = "too_young" if not age_ok else "too_few_days" if not idle_ok else "too_few_days_oversized"
        out["age_days"] = _num(facts.age_days[i], 1)
        out["min_age_days"] = _num(t.min_age_days, 1)
        out["days_with_data"] = int(c.days_with_data[i])
        out["days_needed"] = t.idle_days_needed
        out["window_days"] = t.idle_window_days
        if age_ok and idle_ok:
            out["oversized_days_with_data"] = int(c.oversized_days_with_data[i])
            out["oversized_days_needed"] = t.oversized_days_needed
            out["oversized_window_days"] = t.oversized_window_days
    elif verdict is Verdict.IDLE:
        out["days_with_data"] = int(c.days_with_data[i])
        out["net_days_with_data"] = int(c.net_days_with_data[i])
        out["window_days"] = t.idle_window_days
        out["cpu_p95_peak"] = _num(c.cpu_p95_peak[i], 4)
        out["cpu_max_peak"] = _num(c.cpu_max_peak[i], 4)
        out["net_rx_p95_peak"] = _num(c.net_rx_p95_peak[i], 1)
        out["net_tx_p95_peak"] = _num(c.net_tx_p95_peak[i], 1)
    else:  # OVERSIZED and OK: the sizing numbers (for OK, why it was not downsized)
        out["oversized_days_with_data"] = int(c.oversized_days_with_data[i])
        out["mem_days_with_data"] = int(c.mem_days_with_data[i])
        out["window_days"] = t.oversized_window_days
        out["cpu_p99_peak"] = _num(c.cpu_p99_peak[i], 4)
        out["mem_max_peak"] = _num(c.mem_max_peak[i], 4)
        out["user_facing"] = bool(facts.user_facing[i])
        out["needed_vcpus"] = _num(c.needed_vcpus[i], 2)
        out["needed_ram_mb"] = _num(c.needed_ram_mb[i], 0)
    if verdict in (Verdict.ZOMBIE, Verdict.IDLE, Verdict.OVERSIZED, Verdict.OK):
        out["vcpus"] = int(facts.vcpus[i])
        out["ram_mb"] = int(facts.ram_mb[i])
    if verdict is Verdict.OVERSIZED:
        table = flavors[int(facts.flavor_table[i])]
        chosen = int(c.recommended[i])
        out["flavor"] = str(table.names[chosen])
        out["flavor_vcpus"] = int(table.vcpus[chosen])
        out["flavor_ram_mb"] = int(table.ram_mb[chosen])
        out["flavor_disk_gb"] = int(table.disk_gb[chosen])
    if verdict in (Verdict.ZOMBIE, Verdict.IDLE, Verdict.OVERSIZED):
        out["reclaim_vcpus"] = int(c.reclaim_vcpus[i])
        out["reclaim_ram_mb"] = int(c.reclaim_ram_mb[i])
        out["reclaim_disk_gb"] = int(c.reclaim_disk_gb[i])
        out["saving_month"] = _num(c.saving_month[i], 2)
    return out


# ----------------------------------------------------------------------------------------------------------------
# Raw samples → daily summaries (the simulator's source)

# 1024 rows of 288 float32 samples is 1.2 MB: the chunk stays in this machine's 2 MB L2 from the copy
# through the partition and the gathers; see bench/reclaim_analysis.py for the measurement.
DEFAULT_CHUNK_ROWS = 1024


@dataclass(frozen=True, slots=True)
class SampleSummary:
    """Per-row summaries of raw samples, as a source stores them."""

    p95: FloatArray
    p99: FloatArray
    max: npt.NDArray[np.floating[Any]]  # the input's dtype: exact
    mean: FloatArray
    samples: int  # k, the samples behind every row


def _rank(q: float, k: int) -> tuple[int, int, float]:
    """Prometheus' quantile_over_time: rank q × (k − 1), interpolated between its floor and the next sample."""
    rank = q * (k - 1)
    lower = max(0, math.floor(rank))
    upper = min(k - 1, lower + 1)
    return lower, upper, rank - math.floor(rank)


def summarise_samples(samples: npt.NDArray[np.floating[Any]], *, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> SampleSummary:
    """p95, p99, max and mean of each row of a complete (rows, k) sample array; the input is not modified.

    One ``np.partition`` per chunk puts all five order statistics in place at once (the floor and
    ceiling ranks of both quantiles and k − 1 for the max), in a scratch buffer of ``chunk_rows``
    rows reused for every chunk, so the extra memory is the buffer plus the (rows,) results.
    """
    if samples.ndim != 2:
        raise ValueError(f"samples: expected a (rows, k) array, got shape {samples.shape}")
    rows, k = samples.shape
    if k == 0:
        raise ValueError("samples: a row needs at least one sample")
    if chunk_rows < 1:
        raise ValueError("chunk_rows: must be at least 1")
    lo95, hi95, w95 = _rank(0.95, k)
    lo99, hi99, w99 = _rank(0.99, k)
    kth = sorted({lo95, hi95, lo99, hi99, k - 1})

    p95 = np.empty(rows, dtype=np.float64)
    p99 = np.empty(rows, dtype=np.float64)
    peak = np.empty(rows, dtype=samples.dtype)
    mean = np.empty(rows, dtype=np.float64)
    scratch = np.empty((min(chunk_rows, rows), k), dtype=samples.dtype)
    for start in range(0, rows, chunk_rows):
        stop = min(start + chunk_rows, rows)
        chunk = scratch[: stop - start]
        np.copyto(chunk, samples[start:stop])
        # float64 accumulator: 288 float32 values summed in float32 lose the low digits of the mean.
        np.mean(chunk, axis=1, dtype=np.float64, out=mean[start:stop])
        chunk.partition(kth, axis=1)
        # Prometheus' formula, lower × (1 − w) + upper × w, in float64 as Prometheus computes it.
        # (A float32 column times a Python float stays float32 under NEP 50: widen first.)
        p95[start:stop] = chunk[:, lo95].astype(np.float64) * (1.0 - w95) + chunk[:, hi95].astype(np.float64) * w95
        p99[start:stop] = chunk[:, lo99].astype(np.float64) * (1.0 - w99) + chunk[:, hi99].astype(np.float64) * w99
        peak[start:stop] = chunk[:, k - 1]
    return SampleSummary(p95=p95, p99=p99, max=peak, mean=mean, samples=k)
