"""The one surface the reclaim service uses to read utilisation: daily summaries per server and metric.

Raw samples never reach SQL. A source reduces one UTC day of one server's metric to
p95 / p99 / max / mean and the number of samples behind them, and cloudctl stores those
five numbers, one row per server, day and metric.

Units are the same for every source:
- ``cpu``: CPU used as a fraction of the server's vCPUs (0.25 = a quarter of its cores busy);
- ``mem``: guest memory used as a fraction of the server's RAM;
- ``net_rx`` / ``net_tx``: bytes per second received / sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal, Protocol, runtime_checkable

__all__ = ["METRICS", "DailySummary", "Metric", "UtilisationSource"]

Metric = Literal["cpu", "mem", "net_rx", "net_tx"]
METRICS: tuple[Metric, ...] = ("cpu", "mem", "net_rx", "net_tx")


@dataclass(frozen=True, slots=True)
class DailySummary:
    """One server's metric over one UTC day [00:00, 24:00)."""

    server: str  # the server's provider id on its cloud (Nova's UUID): what the source labels it with
    day: date
    metric: Metric
    p95: float
    p99: float
    max: float
    mean: float
    samples: int


@runtime_checkable
class UtilisationSource(Protocol):
    def daily_summaries(self, day: date, servers: Sequence[str]) -> list[DailySummary]:
        """Summaries of ``day`` for these servers (provider ids); a server or metric without data is absent."""
        ...
