"""When a cloud's resource reaches a threshold: two simple, explainable models over a monthly series (pure, numpy).

- **Linear trend**: a straight line through the months (least squares, ``numpy.polyfit``); the line's value today
  and its slope per month.
- **Holt's exponential smoothing** (double exponential smoothing, additive trend): a level and a trend updated
  month by month, recent months weighing more; α and β are the pair on a 0.1 grid with the smallest one-month-ahead
  squared error over the history.

Either says in how many months ``level + trend × h`` reaches the target; a flat or falling trend never does
(``None``). "With reclaim" starts from the level less what the open recommendations would free, with the same
trend: the months the bureau gains by reclaiming before it buys. Fewer than three months is too little to trend:
the answer says so rather than guess.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

import numpy as np

__all__ = ["MIN_MONTHS", "MODELS", "Forecast", "Trend", "forecast", "holt", "linear"]

MIN_MONTHS = 3
MODELS: tuple[Literal["linear", "holt"], ...] = ("linear", "holt")
DAYS_PER_MONTH = 365.2425 / 12
_GRID = np.round(np.arange(0.1, 1.0, 0.1), 1)


@dataclass(frozen=True, slots=True)
class Trend:
    level: float  # the model's value at the last month
    slope: float  # per month
    alpha: float | None = None
    beta: float | None = None


@dataclass(frozen=True, slots=True)
class Forecast:
    model: Literal["linear", "holt"]
    reclaim: bool  # starting from the level less the reclaimable amount
    level: float
    slope: float
    months: float | None  # from the last month to the threshold; 0 when already there; None: never (or no data)
    reaches_on: date | None
    insufficient_data: bool = False


def linear(values: Sequence[float]) -> Trend:
    y = np.asarray(values, dtype=float)
    x = np.arange(len(y), dtype=float)
    slope, intercept = np.polyfit(x, y, 1)
    return Trend(level=float(intercept + slope * x[-1]), slope=float(slope))


def holt(values: Sequence[float]) -> Trend:
    """Holt's linear method with α, β chosen on a grid by the smallest one-month-ahead squared error."""
    y = np.asarray(values, dtype=float)
    best: tuple[float, Trend] | None = None
    for alpha in _GRID:
        for beta in _GRID:
            level, trend, error = y[0], y[1] - y[0], 0.0
            for value in y[1:]:
                predicted = level + trend
                error += (value - predicted) ** 2
                new_level = alpha * value + (1 - alpha) * predicted
                trend = beta * (new_level - level) + (1 - beta) * trend
                level = new_level
            if best is None or error < best[0] - 1e-9:
                best = (error, Trend(float(level), float(trend), float(alpha), float(beta)))
    assert best is not None
    return best[1]


def _months_to(level: float, slope: float, target: float) -> float | None:
    if level >= target:
        return 0.0
    if slope <= 0:
        return None
    return (target - level) / slope


def forecast(last_month: date, values: Sequence[float], target: float, *, reclaimable: float = 0.0,
             horizon_months: int = 120) -> list[Forecast]:
    """Linear and Holt, each without and with the reclaimable amount taken off the level: four answers.

    ``values`` are one per month, oldest first, the last one for ``last_month``; a date beyond the horizon is None.
    """
    answers: list[Forecast] = []
    enough = len(values) >= MIN_MONTHS and all(math.isfinite(v) for v in values)
    for model in MODELS:
        trend = (linear(values) if model == "linear" else holt(values)) if enough else None
        for with_reclaim in (False, True):
            if trend is None:
                answers.append(Forecast(model, with_reclaim, float(values[-1]) if values else 0.0, 0.0, None, None,
                                        insufficient_data=True))
                continue
            level = trend.level - (reclaimable if with_reclaim else 0.0)
            months = _months_to(level, trend.slope, target)
            if months is not None and months > horizon_months:
                months = None
            reaches = (last_month + timedelta(days=round(months * DAYS_PER_MONTH))) if months is not None else None
            answers.append(Forecast(model, with_reclaim, round(level, 3), round(trend.slope, 3),
                                    None if months is None else round(months, 2), reaches))
    return answers
