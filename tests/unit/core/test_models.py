"""Shared column types and status enums."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import literal, literal_column, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

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


def test_times_read_back_from_the_database_are_aware_utc_however_they_were_written(session: Session) -> None:
    # SQLite keeps text without a zone: the form SQLAlchemy writes takes a fast way, any other (a default of
    # CURRENT_TIMESTAMP without microseconds, a time written by hand) the general one; every one comes back the same.
    shanghai = timezone(timedelta(hours=8))
    written = datetime(2026, 11, 22, 8, 30, 15, 123456, tzinfo=shanghai)
    back = session.scalar(select(literal(written, UTCDateTime())))
    assert back == written
    assert back.tzinfo is UTC
    assert session.scalar(select(literal(None, UTCDateTime()))) is None
    if session.get_bind().dialect.name != "sqlite":
        return
    column = literal_column("t", UTCDateTime())
    for text_form, expected in [
        ("2026-11-22 00:30:15.123456", datetime(2026, 11, 22, 0, 30, 15, 123456, tzinfo=UTC)),
        ("2026-11-22 00:30:15", datetime(2026, 11, 22, 0, 30, 15, tzinfo=UTC)),
        ("2026-11-22 00:30:15.5", datetime(2026, 11, 22, 0, 30, 15, 500000, tzinfo=UTC)),
    ]:
        read = session.scalar(select(column).select_from(text(f"(SELECT '{text_form}' AS t)")))
        assert read == expected, text_form
        assert read.tzinfo is UTC
