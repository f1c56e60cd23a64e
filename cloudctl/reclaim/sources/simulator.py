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

__all__ = ["SAMPLES_PER_DAY", "SimulatorTelemetry", "workload_samples"]

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
    rng = np.random.default_rng(zlib.crc32(f"{workload.server_id}:{day.isoformat()}".encode()))
    hours = (np.arange(SAMPLES_PER_DAY) * STEP_SECONDS / 3600.0 + LOCAL_OFFSET_HOURS) % 24
    weekday = (day + timedelta(hours=LOCAL_OFFSET_HOURS)).weekday() < 5
    shape = _shape(workload.profile, hours, weekday)
    # Noise of a few percent of the peak; one vCPU of an idle guest still ticks a little.
    cpu = workload.cpu * shape * rng.normal(1.0, 0.04, SAMPLES_PER_DAY)
    cpu = np.clip(cpu, 0.0, 1.0)
    samples = {
        "cpu": cpu,
        "net_rx": np.clip(workload.net * shape * rng.normal(1.0, 0.08, SAMPLES_PER_DAY), 0.0, None),
    }
    samples["net_tx"] = samples["net_rx"] * 0.5
    if workload.mem is not None:
        # Memory hardly moves with load: a cache fills and stays.
        samples["mem"] = np.clip(workload.mem * rng.normal(1.0, 0.01, SAMPLES_PER_DAY), 0.0, 1.0)
    return {metric: values.astype(np.float32) for metric, values in samples.items()}


class SimulatorTelemetry:
    """A :class:`~cloudctl.reclaim.sources.base.UtilisationSource` over a simulator cloud."""

    def __init__(self, provider: SimulatorProvider) -> None:
        self.provider = provider

    def daily_summaries(self, day: date, servers: Sequence[str]) -> list[DailySummary]:
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        end = start + timedelta(days=1)
        rows: list[tuple[str, dict[str, npt.NDArray[np.float32]]]] = []
        for server_id, (workload, status) in self.provider.workloads(servers).items():
            # Only a day the guest ran through: it reported from `since`, until it was stopped.
            if workload.since > start or (workload.until is not None and workload.until < end):
                continue
            if workload.until is None and status not in RUNNING:
                continue
            rows.append((server_id, workload_samples(workload, day)))
        summaries: list[DailySummary] = []
        for metric in METRICS:
            reporting = [(server_id, samples[metric]) for server_id, samples in rows if metric in samples]
            if not reporting:
                continue
            summary = summarise_samples(np.stack([values for _, values in reporting]))
            for i, (server_id, _) in enumerate(reporting):
                summaries.append(DailySummary(server=server_id, day=day, metric=metric,
                                              p95=float(summary.p95[i]), p99=float(summary.p99[i]),
                                              max=float(summary.max[i]), mean=float(summary.mean[i]),
                                              samples=summary.samples))
        return summaries
