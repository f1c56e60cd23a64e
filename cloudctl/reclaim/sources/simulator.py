"""The simulator cloud's telemetry: what its guests would report, reduced to daily summaries.

The demo plants a workload on each simulated server (busy, office hours, a nightly batch, a
flat light load, idle); this source renders a day of 5-minute samples from that shape with
seeded noise and reduces them with :func:`~cloudctl.reclaim.analysis.summarise_samples`, the
same p95 / p99 / max / mean a Prometheus ``quantile_over_time`` gives. The same server and day
always give the same numbers, so a campaign over the demo city is reproducible.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import numpy as np
import numpy.typing as npt

from cloudctl.compute.providers.simulator import SimulatorProvider, SimWorkload
from cloudctl.reclaim.analysis import summarise_samples
from cloudctl.reclaim.sources.base import METRICS, DailySummary

__all__ = ["SAMPLES_PER_DAY", "SimulatorTelemetry", "fleet_samples", "workload_samples"]

STEP_SECONDS = 300
SAMPLES_PER_DAY = 86400 // STEP_SECONDS
# Office hours are Beijing time; samples are UTC.
LOCAL_OFFSET_HOURS = 8
# A guest reports only while it runs.
RUNNING = ("ACTIVE", "VERIFY_RESIZE")


def _shape(profile: str, local_hours: npt.NDArray[np.float64], weekday: bool) -> npt.NDArray[np.float64]:
    """The day's load as a fraction of the workload's peak, per sample (before noise)."""
    if profile == "busy":
        # Loaded around the clock, heaviest in the afternoon.
        return 0.75 + 0.25 * np.cos((local_hours - 15.0) / 24.0 * 2 * np.pi)
    if profile == "office":
        working = (local_hours >= 9) & (local_hours < 18) if weekday else np.zeros_like(local_hours, dtype=bool)
        return np.where(working, 1.0, 0.06)
    if profile == "batch":
        # The nightly job, 02:00–03:30, and next to nothing the rest of the day.
        return np.where((local_hours >= 2) & (local_hours < 3.5), 1.0, 0.02)
    if profile == "steady":
        return np.ones_like(local_hours)
    return np.full_like(local_hours, 0.3)  # idle: the peak itself is tiny


def workload_samples(workload: SimWorkload, day: date) -> dict[str, npt.NDArray[np.float32]]:
    """One day of 5-minute samples of each metric for one workload (seeded by server and day)."""
    return {metric: values[0] for metric, (_, values) in fleet_samples([workload], day).items()}


def fleet_samples(workloads: Sequence[SimWorkload], day: date
                  ) -> dict[str, tuple[list[int], npt.NDArray[np.float32]]]:
    """A day of samples of many workloads at once: metric → (the rows' positions in ``workloads``, a
    (rows, samples) array). A metric a workload does not report (memory without an agent) has no row.

    Each workload's noise still comes from its own generator, seeded by server and day, drawn in
    the same order as for one workload alone, so a server's numbers never depend on the others.
    """
    hours = (np.arange(SAMPLES_PER_DAY) * STEP_SECONDS / 3600.0 + LOCAL_OFFSET_HOURS) % 24
    weekday = (day + timedelta(hours=LOCAL_OFFSET_HOURS)).weekday() < 5
    shapes = {profile: _shape(profile, hours, weekday) for profile in {w.profile for w in workloads}}
    n = len(workloads)
    noise = np.empty((n, 3, SAMPLES_PER_DAY), dtype=np.float64)
    suffix = f":{day.isoformat()}"
    for i, workload in enumerate(workloads):
        # default_rng(seed), without its dispatch on the seed's type.
        rng = np.random.Generator(np.random.PCG64(zlib.crc32(f"{workload.server_id}{suffix}".encode())))
        # normal(1, σ, k) is 1 + σ·z of the generator's next k standard normals: cpu, net, then memory.
        rng.standard_normal(out=noise[i, :3 if workload.mem is not None else 2])
    shape = np.stack([shapes[w.profile] for w in workloads]) if n else np.empty((0, SAMPLES_PER_DAY))
    cpu_peak = np.array([w.cpu for w in workloads], dtype=np.float64)[:, None]
    net_peak = np.array([w.net for w in workloads], dtype=np.float64)[:, None]
    # Noise of a few percent of the peak; one vCPU of an idle guest still ticks a little.
    cpu = np.clip(cpu_peak * shape * (1.0 + 0.04 * noise[:, 0]), 0.0, 1.0)
    net_rx = np.clip(net_peak * shape * (1.0 + 0.08 * noise[:, 1]), 0.0, None)
    everyone = list(range(n))
    samples = {"cpu": (everyone, cpu.astype(np.float32)), "net_rx": (everyone, net_rx.astype(np.float32)),
               "net_tx": (everyone, (net_rx * 0.5).astype(np.float32))}
    reporting = [i for i, w in enumerate(workloads) if w.mem is not None]
    if reporting:
        # Memory hardly moves with load: a cache fills and stays.
        mem_peak = np.array([workloads[i].mem for i in reporting], dtype=np.float64)[:, None]
        mem = np.clip(mem_peak * (1.0 + 0.01 * noise[reporting, 2]), 0.0, 1.0)
        samples["mem"] = (reporting, mem.astype(np.float32))
    return samples


class SimulatorTelemetry:
    """A :class:`~cloudctl.reclaim.sources.base.UtilisationSource` over a simulator cloud.

    The planted workloads are read once per instance (a collection of many days reads them once).
    """

    def __init__(self, provider: SimulatorProvider) -> None:
        self.provider = provider
        self._asked: set[str] = set()
        self._read: dict[str, tuple[SimWorkload, str]] = {}

    def daily_summaries(self, day: date, servers: Sequence[str]) -> list[DailySummary]:
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        end = start + timedelta(days=1)
        unread = [s for s in servers if s not in self._asked]
        if unread:
            self._read.update(self.provider.workloads(unread))
            self._asked.update(unread)
        wanted = set(servers)
        running: list[SimWorkload] = []
        for server_id, (workload, status) in self._read.items():
            if server_id not in wanted:
                continue
            # Only a day the guest ran through: it reported from `since`, until it was stopped.
            if workload.since > start or (workload.until is not None and workload.until < end):
                continue
            if workload.until is None and status not in RUNNING:
                continue
            running.append(workload)
        summaries: list[DailySummary] = []
        samples = fleet_samples(running, day)
        for metric in METRICS:
            if metric not in samples or not samples[metric][0]:
                continue
            rows, values = samples[metric]
            summary = summarise_samples(values)
            p95, p99, peak, mean = (summary.p95.tolist(), summary.p99.tolist(), summary.max.tolist(),
                                    summary.mean.tolist())
            # Positional arguments: tens of thousands of these in the demo city's first month.
            summaries += [DailySummary(running[i].server_id, day, metric, p95[k], p99[k], peak[k], mean[k],
                                       summary.samples) for k, i in enumerate(rows)]
        return summaries
