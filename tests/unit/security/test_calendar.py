"""Working days with China's holidays and make-up working days (调休)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from cloudctl.core.config import Settings, reset_settings
from cloudctl.security.calendar import add_working_days, china, parse
from cloudctl.security.service.findings import sla_deadline


def test_spring_festival_and_its_make_up_saturdays() -> None:
    # Thursday 12 Feb 2026: Fri 13, Sat 14 (调休, worked), 15–23 off, 24–27, Sat 28 (调休, worked).
    assert add_working_days(date(2026, 2, 12), 7, china()) == date(2026, 2, 28)
    assert not china().is_working_day(date(2026, 2, 16))  # a Monday in the holiday
    assert china().is_working_day(date(2026, 2, 14))  # a Saturday that is worked


def test_national_day_week() -> None:
    # Monday 28 Sep 2026: 29, 30, then 1–7 Oct off, Thu 8, Fri 9, Sat 10 (调休).
    assert add_working_days(date(2026, 9, 28), 5, china()) == date(2026, 10, 10)


def test_an_ordinary_week_counts_weekdays_and_zero_days_is_the_start() -> None:
    assert add_working_days(date(2026, 3, 6), 1, china()) == date(2026, 3, 9)  # Friday → Monday
    assert add_working_days(date(2026, 3, 6), 0, china()) == date(2026, 3, 6)


def test_a_year_without_a_table_counts_weekends_only(caplog: pytest.LogCaptureFixture) -> None:
    assert add_working_days(date(2030, 1, 31), 1, china()) == date(2030, 2, 1)
    assert "no holiday table for 2030" in caplog.text


def test_a_table_with_a_date_filed_under_the_wrong_year_is_refused() -> None:
    with pytest.raises(ValueError, match="another year"):
        parse({2026: {"days_off": ["2027-01-01"], "work": []}})
    with pytest.raises(ValueError, match="ends before"):
        parse({2026: {"days_off": ["2026-02-23..2026-02-15"]}})


def test_sla_deadlines_in_working_days_from_the_beijing_date(tmp_path: Path) -> None:
    reset_settings(Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'c.db'}",
                            security_sla_working_days=True, security_sla_days={"high": 5}))
    try:
        found = datetime(2026, 2, 11, 20, 0, tzinfo=UTC)  # 04:00 on the 12th in Beijing
        assert sla_deadline("critical", found) == date(2026, 2, 28)  # seven working days over the Spring Festival
        assert sla_deadline("high", found) == date(2026, 2, 26)  # the configured five
        assert sla_deadline("info", found) is None
    finally:
        reset_settings()
    assert sla_deadline("critical", found) == date(2026, 2, 19)  # calendar days (the default), from the 12th
