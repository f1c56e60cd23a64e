"""The capacity forecast, pure: a linear trend and Holt's smoothing, with and without what reclaim frees."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from cloudctl.reclaim.forecast import forecast, holt, linear

LAST = date(2026, 12, 1)


def by(answers: list, model: str, reclaim: bool):  # type: ignore[no-untyped-def,type-arg]
    return next(a for a in answers if a.model == model and a.reclaim is reclaim)


def test_a_straight_line_is_found_by_both_models() -> None:
    values = [1000 + 50 * i for i in range(24)]  # 2,150 in the last month, 50 a month more
    line, smoothed = linear(values), holt(values)
    assert (line.level, line.slope) == pytest.approx((2150, 50))
    assert (smoothed.level, smoothed.slope) == pytest.approx((2150, 50), abs=1e-6)
    answers = forecast(LAST, values, target=2400, reclaimable=200)
    # 250 to go at 50 a month: five months; 200 freed by reclaim buys four more.
    assert by(answers, "linear", False).months == pytest.approx(5)
    assert by(answers, "linear", True).months == pytest.approx(9)
    assert by(answers, "holt", True).months == pytest.approx(9)
    assert by(answers, "linear", False).reaches_on == date(2027, 5, 2)


def test_holt_follows_a_recent_change_of_pace_that_the_line_averages_away() -> None:
    values = [1000.0] * 18 + [1000.0 + 100 * i for i in range(1, 7)]  # flat for 18 months, then 100 a month
    line, smoothed = linear(values), holt(values)
    assert smoothed.slope > line.slope
    assert smoothed.slope == pytest.approx(100, rel=0.2)
    assert smoothed.alpha is not None
    assert smoothed.beta is not None


def test_already_there_never_and_too_little_data() -> None:
    assert by(forecast(LAST, [900, 950, 1000], target=800), "linear", False).months == 0
    falling = forecast(LAST, [1000, 900, 800, 700], target=1200)
    assert {(a.months, a.reaches_on) for a in falling} == {(None, None)}
    short = forecast(LAST, [100, 200], target=1000)
    assert all(a.insufficient_data and a.reaches_on is None for a in short)
    far = forecast(LAST, [1, 2, 3, 4], target=10_000)  # ten thousand months away: beyond the horizon
    assert by(far, "linear", False).reaches_on is None
    assert not np.isnan(by(far, "holt", False).slope)
