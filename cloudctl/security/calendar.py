"""Working days in China: weekends, public holidays and the make-up working days (调休) moved onto weekends.

Rectification deadlines (限期整改) are often given in working days; a deadline counted in calendar days
over the Spring Festival gives a unit nine days fewer than it was promised. The table is configuration data
(``security/data/holidays-cn.yml``); a year missing from it counts weekends only, which is said once in
the log rather than guessed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from importlib import resources
from typing import Any

import yaml

__all__ = ["HolidayCalendar", "add_working_days", "china", "parse"]

# Holidays are Beijing dates: count from cloudctl.core.models.beijing_today(), never from a UTC date.

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HolidayCalendar:
    off: frozenset[date]
    work: frozenset[date]
    years: frozenset[int]

    def is_working_day(self, day: date) -> bool:
        if day in self.work:
            return True
        return day.weekday() < 5 and day not in self.off


def _days(entry: Any) -> list[date]:
    """A date, or a "first..last" range (YAML reads a bare date as a date, a range as text)."""
    if isinstance(entry, date):
        return [entry]
    first, _, last = str(entry).partition("..")
    start, end = date.fromisoformat(first.strip()), date.fromisoformat((last or first).strip())
    if end < start:
        raise ValueError(f"holiday range ends before it starts: {entry}")
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


def parse(table: dict[int, dict[str, list[Any]]]) -> HolidayCalendar:
    off: set[date] = set()
    work: set[date] = set()
    for year, spec in table.items():
        for entry in spec.get("days_off") or []:
            off.update(_days(entry))
        for entry in spec.get("work") or []:
            work.update(_days(entry))
        if any(d.year != int(year) for d in _days_of(spec)):
            raise ValueError(f"a date under {year} is in another year")
    return HolidayCalendar(frozenset(off), frozenset(work), frozenset(int(y) for y in table))


def _days_of(spec: dict[str, list[Any]]) -> list[date]:
    return [d for key in ("days_off", "work") for entry in spec.get(key) or [] for d in _days(entry)]


@cache
def china() -> HolidayCalendar:
    """The table shipped with cloudctl."""
    text = resources.files("cloudctl.security").joinpath("data/holidays-cn.yml").read_text(encoding="utf-8")
    return parse(yaml.safe_load(text))


def add_working_days(start: date, days: int, calendar: HolidayCalendar) -> date:
    """The date ``days`` working days after ``start`` (``start`` itself not counted)."""
    if days < 0:
        raise ValueError("days must not be negative")
    day, left = start, days
    while left:
        day += timedelta(days=1)
        if day.year not in calendar.years and day.year not in _warned:
            _warned.add(day.year)
            log.warning("no holiday table for %d: counting weekends only (add it to holidays-cn.yml)", day.year)
        if calendar.is_working_day(day):
            left -= 1
    return day


_warned: set[int] = set()
