"""Shared column types and status enums."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.dialects import sqlite

from cloudctl.core.jobs import JobStatus
from cloudctl.core.models import UTCDateTime


def test_naive_times_are_refused_and_aware_times_stored_as_utc() -> None:
    column = UTCDateTime()
    dialect = sqlite.dialect()
    with pytest.raises(ValueError, match="naive"):
        column.process_bind_param(datetime(2026, 11, 22, 8, 0), dialect)
    shanghai = timezone(timedelta(hours=8))
    stored = column.process_bind_param(datetime(2026, 11, 22, 8, 0, tzinfo=shanghai), dialect)
    assert stored == datetime(2026, 11, 22, 0, 0, tzinfo=UTC)
    assert column.process_result_value(datetime(2026, 11, 22, 0, 0), dialect) == stored


def test_status_enums_carry_label_and_colour_and_stay_plain_strings() -> None:
    assert JobStatus("failed") is JobStatus.FAILED
    assert JobStatus.FAILED == "failed"
    assert JobStatus.FAILED.label == "失败"
    assert JobStatus.FAILED.colour == "red"
    assert str(JobStatus.FAILED) == "failed"
    assert JobStatus.FAILED.rich == "[red]failed (失败)[/]"
