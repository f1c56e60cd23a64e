"""Duty (7×24值班) during drills, holidays and major events: periods, the roster, and the reports units owe.

A period has report slots — fixed times of day in Beijing time ("17:00"), or every N hours from
its start. Each reporting unit owes one report per slot: counts of alerts and incidents, or a
zero-report (零报告) when nothing happened, which a period may require. A slot whose due time plus
the grace has passed without a report is overdue; the metrics and the big screen show it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints, field_validator, model_validator
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloudctl.core import audit, read
from cloudctl.core.auth import Principal, Role, authorize, can
from cloudctl.core.config import get_settings
from cloudctl.core.display import local_time
from cloudctl.core.errors import Conflict, InvalidInput, PermissionDenied
from cloudctl.core.models import BEIJING, utcnow
from cloudctl.core.text import NoControl, NoControlMultiline
from cloudctl.org.models import Unit, UnitKind, User
from cloudctl.org.service import get_unit
from cloudctl.security.models import DutyKind, DutyPeriod, DutyReport, DutyShift

__all__ = [
    "CHECK_IN_EARLY",
    "HANDOVER",
    "Missing",
    "PeriodCreate",
    "ReportCreate",
    "ShiftCreate",
    "add_shift",
    "check_in",
    "create_period",
    "get_period",
    "get_shift",
    "is_slot",
    "list_periods",
    "list_reports",
    "list_shifts",
    "missing_reports",
    "next_slot",
    "on_shift",
    "slot_count",
    "slots",
    "submit_report",
]

_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
# Consecutive shifts may overlap by this much, so the outgoing officer hands over in person (交接班).
HANDOVER = timedelta(minutes=30)
# An officer may check in this long before the shift starts.
CHECK_IN_EARLY = timedelta(minutes=30)


class PeriodCreate(BaseModel):
    name: Annotated[str, StringConstraints(min_length=2, max_length=128), NoControl]
    kind: DutyKind
    starts_at: datetime
    ends_at: datetime
    report_times: list[str] = Field(default_factory=list, max_length=48,
                                    description='times of day, Beijing time: ["09:00", "17:00"]')
    every_hours: int | None = Field(default=None, ge=1, le=24)
    zero_reports: bool = True
    grace_minutes: int = Field(default=30, ge=0, le=720)
    reporting_kinds: list[UnitKind] = Field(default_factory=lambda: [UnitKind.DEPARTMENT, UnitKind.COUNTY],
                                            max_length=len(UnitKind))

    @model_validator(mode="after")
    def _schedule(self) -> PeriodCreate:
        if self.starts_at.tzinfo is None or self.ends_at.tzinfo is None:
            raise ValueError("give times with their zone (…+08:00)")
        if self.ends_at <= self.starts_at:
            raise ValueError("the period ends before it starts")
        if bool(self.report_times) == (self.every_hours is not None):
            raise ValueError("give report_times or every_hours, one of them")
        bad = [t for t in self.report_times if not _HHMM.match(t)]
        if bad:
            raise ValueError(f"report times are HH:MM: {', '.join(bad)}")
        if len(set(self.report_times)) != len(self.report_times):
            raise ValueError("each report time once")
        # A period is a schedule people keep: bounded in length and in the reports it asks for, so that no
        # view of it (the missing reports, the big screen) grows past what the server computes at once.
        limits = get_settings()
        if self.ends_at - self.starts_at > timedelta(days=limits.duty_max_days):
            raise ValueError(f"a duty period lasts at most {limits.duty_max_days} days")
        count = slot_count(self.starts_at.astimezone(UTC), self.ends_at.astimezone(UTC), self.report_times,
                           self.every_hours)
        if count > limits.duty_max_slots:
            raise ValueError(f"{count} report slots; a duty period has at most {limits.duty_max_slots} "
                             "(fewer report times, or a shorter period)")
        return self


# Who may stand on a roster: the duty officers and the security team.
ROSTER_ROLES = (Role.DUTY, Role.SECOPS)
_RosterName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64), NoControl]


class ShiftCreate(BaseModel):
    starts_at: datetime
    ends_at: datetime
    officer: _RosterName = Field(description="值班员: a user with the duty or secops role, by login or display name")
    backup: _RosterName | None = Field(default=None, description="备班: a duty or secops user")
    leader: _RosterName | None = Field(default=None, description="带班领导: a duty or secops user")

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _zoned(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("give times with their zone (…+08:00)")
        return value


class ReportCreate(BaseModel):
    zero: bool = False
    alerts: int = Field(default=0, ge=0, le=100_000)
    incidents: int = Field(default=0, ge=0, le=10_000)
    note: Annotated[str, StringConstraints(max_length=2000), NoControlMultiline] | None = None
    slot_at: datetime | None = Field(default=None, description="the slot reported for (default: the one due)")
    unit_code: Annotated[str, StringConstraints(max_length=32), NoControl] | None = Field(
        default=None, description="default: the reporter's own unit")

    @model_validator(mode="after")
    def _zero(self) -> ReportCreate:
        if self.zero and (self.alerts or self.incidents):
            raise ValueError("a zero-report counts no alerts and no incidents")
        return self


def create_period(session: Session, principal: Principal, data: PeriodCreate) -> DutyPeriod:
    authorize(principal, "security.duty:write")
    period = DutyPeriod(name=data.name, kind=data.kind, starts_at=data.starts_at.astimezone(UTC),
                        ends_at=data.ends_at.astimezone(UTC), report_times=list(data.report_times),
                        every_hours=data.every_hours, zero_reports=data.zero_reports, grace_minutes=data.grace_minutes,
                        reporting_kinds=[k.value for k in data.reporting_kinds])
    session.add(period)
    session.flush()
    audit.record(session, principal, action="create", entity="duty_period", entity_id=period.id,
                 after={"name": period.name, "kind": period.kind.value, "starts_at": period.starts_at,
                        "ends_at": period.ends_at})
    return period


def get_period(session: Session, principal: Principal, period_id: int) -> DutyPeriod:
    authorize(principal, "security.duty:read")
    return read.one(session, select(DutyPeriod).where(DutyPeriod.id == period_id),
                    missing=f"no duty period with id {period_id}", field="period")


def list_periods(session: Session, principal: Principal, *, active_at: datetime | None = None) -> list[DutyPeriod]:
    authorize(principal, "security.duty:read")
    query = select(DutyPeriod).order_by(DutyPeriod.starts_at.desc())
    if active_at is not None:
        query = query.where(DutyPeriod.starts_at <= active_at, DutyPeriod.ends_at >= active_at)
    return list(session.scalars(query))


def _times_between(starts_at: datetime, ends_at: datetime, report_times: list[str], every_hours: int | None,
                   since: datetime, until: datetime) -> Iterator[datetime]:
    """The due times (UTC) of a schedule starting at ``starts_at`` (exclusive) and ending at ``ends_at``, from
    ``since`` to ``until`` (both inclusive), in order; computed for that window alone, never the whole period."""
    end = min(ends_at, until)
    if every_hours:
        step = timedelta(hours=every_hours)
        # The first multiple of the step after the start that is not before ``since``.
        index = max(1, -((starts_at - since) // step))
        at = starts_at + index * step
        while at <= end:
            yield at
            at += step
        return
    times = sorted(report_times)
    day = max(starts_at, since).astimezone(BEIJING).date()
    while datetime.combine(day, time(0), tzinfo=BEIJING).astimezone(UTC) <= end:
        for text in times:
            hour, minute = (int(x) for x in text.split(":"))
            at = datetime.combine(day, time(hour, minute), tzinfo=BEIJING).astimezone(UTC)
            if starts_at < at <= end and at >= since:
                yield at
        day += timedelta(days=1)


def slot_count(starts_at: datetime, ends_at: datetime, report_times: list[str], every_hours: int | None) -> int:
    """How many report slots a schedule has, without listing them."""
    if every_hours:
        return (ends_at - starts_at) // timedelta(hours=every_hours)
    return sum(1 for _ in _times_between(starts_at, ends_at, report_times, None, starts_at, ends_at))


def slots(period: DutyPeriod, *, since: datetime | None = None, until: datetime | None = None) -> list[datetime]:
    """The period's due times (UTC) from ``since`` to ``until`` (default: its start and its end)."""
    return list(_times_between(period.starts_at, period.ends_at, period.report_times, period.every_hours,
                               since or period.starts_at, until or period.ends_at))


def next_slot(period: DutyPeriod, at: datetime) -> datetime | None:
    """The first due time at or after ``at``, or None when the period has none left."""
    # Within a day of ``at`` (or one step, when that is longer) there is always the next slot if any is left.
    horizon = max(at, period.starts_at) + max(timedelta(days=1, hours=1), timedelta(hours=period.every_hours or 0))
    return next(_times_between(period.starts_at, period.ends_at, period.report_times, period.every_hours, at,
                               horizon), None)


def is_slot(period: DutyPeriod, at: datetime) -> bool:
    return next_slot(period, at) == at


def _local(at: datetime) -> str:
    return local_time(at)


def _clash(a: DutyShift, starts_at: datetime, ends_at: datetime) -> bool:
    """True when a shift and [starts_at, ends_at) overlap by more than a handover: one must start and end
    before the other does (a shift inside another is never a handover), overlapping by at most HANDOVER."""
    if a.starts_at >= ends_at or starts_at >= a.ends_at:
        return False
    handover = (a.starts_at < starts_at and a.ends_at < ends_at) or (starts_at < a.starts_at and ends_at < a.ends_at)
    return not handover or min(a.ends_at, ends_at) - max(a.starts_at, starts_at) > HANDOVER


def roster_user(session: Session, name: str, *, field: str) -> User:
    """The user a roster names, by login or (when it is unique) display name: active, with the duty or secops
    role. A name nobody can log in as is refused, naming the field."""
    users = list(session.scalars(select(User).where(or_(User.username == name, User.display_name == name))
                                 .order_by(User.id)))
    user = next((u for u in users if u.username == name), None)
    if user is None:
        if len(users) > 1:
            raise InvalidInput(f"{name!r} is the display name of {len(users)} users: give the login "
                               f"({', '.join(u.username for u in users)})", field=field)
        if not users:
            raise InvalidInput(f"no user {name!r}: the roster names users with the duty or secops role",
                               field=field)
        user = users[0]
    if not user.active:
        raise InvalidInput(f"user {user.username} is disabled", field=field)
    if user.role not in ROSTER_ROLES:
        raise InvalidInput(f"user {user.username} is {user.role.value} ({user.role.label}); the roster names users "
                           "with the duty or secops role", field=field)
    return user


def _shown(user: User | None) -> str | None:
    return (user.display_name or user.username) if user is not None else None


def add_shift(session: Session, principal: Principal, period_id: int, data: ShiftCreate) -> DutyShift:
    """A shift of the roster: inside its period, overlapping another only by a handover of at most 30 minutes;
    officer, backup and leader are users with the duty or secops role."""
    authorize(principal, "security.duty:write")
    period = get_period(session, principal, period_id)
    officer = roster_user(session, data.officer, field="officer")
    backup = roster_user(session, data.backup, field="backup") if data.backup else None
    leader = roster_user(session, data.leader, field="leader") if data.leader else None
    if backup is not None and backup.id == officer.id:
        raise InvalidInput("the backup is someone other than the officer", field="backup")
    # Lock the period (PostgreSQL) so two shifts added at once cannot both pass the overlap check.
    session.refresh(period, with_for_update=True)
    starts_at, ends_at = data.starts_at.astimezone(UTC), data.ends_at.astimezone(UTC)
    if ends_at <= starts_at:
        raise InvalidInput("the shift ends before it starts", field="ends_at")
    if starts_at < period.starts_at:
        raise InvalidInput(f"the shift starts before its period ({_local(period.starts_at)})", field="starts_at")
    if ends_at > period.ends_at:
        raise InvalidInput(f"the shift ends after its period ({_local(period.ends_at)})", field="ends_at")
    for other in list_shifts(session, principal, period.id):
        if _clash(other, starts_at, ends_at):
            raise Conflict(f"overlaps shift {other.id} ({other.officer}, {_local(other.starts_at)}–"
                           f"{_local(other.ends_at)}) by more than a {HANDOVER.seconds // 60}-minute handover",
                           field="starts_at")
    shift = DutyShift(period_id=period.id, starts_at=starts_at, ends_at=ends_at, officer=_shown(officer),
                      officer_id=officer.id, backup=_shown(backup), backup_id=backup.id if backup else None,
                      leader=_shown(leader), leader_id=leader.id if leader else None)
    session.add(shift)
    session.flush()
    audit.record(session, principal, action="create", entity="duty_shift", entity_id=shift.id,
                 after={"period": period.id, "starts_at": starts_at, "ends_at": ends_at,
                        "officer": officer.username, "backup": backup.username if backup else None,
                        "leader": leader.username if leader else None})
    return shift


def list_shifts(session: Session, principal: Principal, period_id: int) -> list[DutyShift]:
    """The period's roster, earliest first."""
    authorize(principal, "security.duty:read")
    period = get_period(session, principal, period_id)
    return list(session.scalars(select(DutyShift).where(DutyShift.period_id == period.id)
                                .order_by(DutyShift.starts_at, DutyShift.id)))


def get_shift(session: Session, principal: Principal, shift_id: int) -> DutyShift:
    authorize(principal, "security.duty:read")
    return read.one(session, select(DutyShift).where(DutyShift.id == shift_id), missing=f"no shift with id {shift_id}",
                    field="shift")


def on_shift(session: Session, principal: Principal, *, at: datetime | None = None) -> DutyShift | None:
    """The shift on duty at ``at`` (default now), in a period running then; the latest-starting one if shifts
    overlap (a handover in progress: the incoming officer is the one to call)."""
    authorize(principal, "security.duty:read")
    at = at or utcnow()
    return session.scalar(select(DutyShift).join(DutyPeriod, DutyPeriod.id == DutyShift.period_id)
                          .where(DutyShift.starts_at <= at, DutyShift.ends_at > at, DutyPeriod.starts_at <= at,
                                 DutyPeriod.ends_at >= at)
                          .order_by(DutyShift.starts_at.desc(), DutyShift.id.desc()).limit(1))


def _is_on_roster(principal: Principal, shift: DutyShift) -> bool:
    """True when the principal is the shift's officer or backup, the users the roster names. A roster name that
    matched no user (kept from before rosters named users) is nobody's: the security team checks in for it."""
    return principal.user_id is not None and principal.user_id in {shift.officer_id, shift.backup_id} - {None}


def check_in(session: Session, principal: Principal, shift_id: int, *, handover_note: str | None = None,
             at: datetime | None = None) -> DutyShift:
    """The officer (or the backup) checks in (签到), from 30 minutes before the shift until its end; the note is
    what the next shift must know (交接班). Checking in again keeps the first time and may update the note.
    The security team may record a check-in for them (by phone, say): audited as made on their behalf."""
    authorize(principal, "security.duty:check-in")
    shift = get_shift(session, principal, shift_id)
    on_behalf = not _is_on_roster(principal, shift)
    if on_behalf and not can(principal, "security.duty:check-in-for"):
        raise PermissionDenied(f"only the shift's officer ({shift.officer})"
                               + (f" or backup ({shift.backup})" if shift.backup else "")
                               + " checks in; the security team may record it for them",
                               permission="security.duty:check-in-for")
    at = at or utcnow()
    if at < shift.starts_at - CHECK_IN_EARLY:
        raise Conflict(f"check-in opens at {_local(shift.starts_at - CHECK_IN_EARLY)}, "
                       f"{CHECK_IN_EARLY.seconds // 60} minutes before the shift", field="shift")
    if at >= shift.ends_at:
        raise Conflict(f"the shift ended at {_local(shift.ends_at)}", field="shift")
    before = {"checked_in_at": shift.checked_in_at, "handover_note": shift.handover_note}
    shift.checked_in_at = shift.checked_in_at or at
    if handover_note is not None:
        shift.handover_note = handover_note
    session.flush()
    after: dict[str, object] = {"checked_in_at": shift.checked_in_at, "handover_note": shift.handover_note}
    if on_behalf:
        after["on_behalf_of"] = shift.officer
    audit.record(session, principal, action="check_in_for" if on_behalf else "check_in", entity="duty_shift",
                 entity_id=shift.id, before=before, after=after)
    return shift


def _default_slot(session: Session, period: DutyPeriod, unit_id: int, now: datetime) -> datetime:
    """The slot that has just passed, unless this unit reported it already: then the coming one (filed early).

    Never silently the next one for a slot that was missed: a late report counts against the slot it is for."""
    window = max(timedelta(days=1, hours=1), timedelta(hours=period.every_hours or 0))
    passed = slots(period, since=max(period.starts_at, now - window), until=min(now, period.ends_at))
    if passed:
        last = passed[-1]
        if session.scalar(select(DutyReport.id).where(DutyReport.period_id == period.id,
                                                      DutyReport.unit_id == unit_id,
                                                      DutyReport.slot_at == last)) is None:
            return last
    upcoming = next_slot(period, now + timedelta(microseconds=1))
    if upcoming is None:
        raise Conflict("the period's last slot has passed and was reported", field="slot_at")
    return upcoming


def submit_report(session: Session, principal: Principal, period_id: int, data: ReportCreate) -> DutyReport:
    """A unit's report for a slot: by default the slot that has just passed (late if after its grace), or the coming
    one when that was reported already. A report after its slot's due time and grace is marked late (补报)."""
    authorize(principal, "security.duty:report")
    period = get_period(session, principal, period_id)
    code = data.unit_code or principal.unit_code
    if code is None:
        raise InvalidInput("name the unit the report is for", field="unit_code")
    unit = get_unit(session, principal, code, field_name="unit_code")
    if unit.kind.value not in period.reporting_kinds:
        raise InvalidInput(f"{unit.code} ({unit.kind.label}) does not report in this period", field="unit_code")
    now = utcnow()
    grace = timedelta(minutes=period.grace_minutes)
    if data.slot_at is not None:
        slot = data.slot_at.astimezone(UTC)
        if not is_slot(period, slot):
            raise InvalidInput("not a report slot of this period", field="slot_at")
    else:
        slot = _default_slot(session, period, unit.id, now)
    if period.zero_reports is False and data.zero:
        raise InvalidInput("this period takes reports of events only, not zero-reports", field="zero")
    report = DutyReport(period_id=period.id, unit_id=unit.id, unit=unit, slot_at=slot, submitted_at=now,
                        submitted_by=principal.actor, zero=data.zero, alerts=data.alerts, incidents=data.incidents,
                        note=data.note, late=now > slot + grace)
    try:
        with session.begin_nested():
            session.add(report)
    except IntegrityError:
        raise Conflict(f"{unit.code} already reported for {_local(slot)}",
                       field="slot_at") from None
    audit.record(session, principal, action="report", entity="duty_report", entity_id=report.id,
                 after={"period": period.id, "slot": slot, "zero": data.zero, "alerts": data.alerts,
                        "incidents": data.incidents, "late": report.late}, unit_id=unit.id)
    return report


def list_reports(session: Session, principal: Principal, period_id: int) -> list[DutyReport]:
    """The period's reports by slot and unit; a department sees its own unit's (subtree) only."""
    authorize(principal, "security.duty:read")
    period = get_period(session, principal, period_id)
    query = select(DutyReport).join(Unit, Unit.id == DutyReport.unit_id).where(DutyReport.period_id == period.id)
    query = read.within(query, principal, unit=DutyReport.unit_id)
    return list(session.scalars(query.order_by(DutyReport.slot_at, Unit.code)))


class Missing(BaseModel):
    period_id: int
    unit_code: str
    slot_at: datetime
    overdue: bool = Field(description="past its due time and grace and still not in; otherwise due soon")
    late: bool = Field(default=False, description="filed after its due time and grace (补报)")
    submitted_at: datetime | None = Field(default=None, description="when a late report came in")


def missing_reports(session: Session, principal: Principal, *, now: datetime | None = None,
                    period_id: int | None = None, include_late: bool = False) -> list[Missing]:
    """Reports owed and not in: overdue ones, and those due in the coming slot; with ``include_late``, the reports
    filed late (补报) for the slots past too, each slot's rows by unit."""
    authorize(principal, "security.duty:read")
    now = now or utcnow()
    periods = [get_period(session, principal, period_id)] if period_id else list_periods(session, principal,
                                                                                          active_at=now)
    out: list[Missing] = []
    for period in periods:
        query = select(Unit.id, Unit.code).where(Unit.kind.in_([UnitKind(k) for k in period.reporting_kinds]))
        query = read.within(query, principal, unit=Unit.id)
        units = list(session.execute(query.order_by(Unit.code)))
        grace = timedelta(minutes=period.grace_minutes)
        # The slots that matter now: those past their grace, and the one due next.
        relevant = [s for s in slots(period, until=now - grace) if s + grace < now]
        upcoming = next_slot(period, now - grace)
        if upcoming is not None and upcoming not in relevant:
            relevant.append(upcoming)
        done = {(u, s.astimezone(UTC)): (late, at) for u, s, late, at in session.execute(
            select(DutyReport.unit_id, DutyReport.slot_at, DutyReport.late, DutyReport.submitted_at)
            .where(DutyReport.period_id == period.id))}
        for slot in relevant:
            for unit_id, code in units:
                filed = done.get((unit_id, slot))
                if filed is None:
                    out.append(Missing(period_id=period.id, unit_code=code, slot_at=slot, overdue=slot + grace < now))
                elif include_late and filed[0]:
                    out.append(Missing(period_id=period.id, unit_code=code, slot_at=slot, overdue=False, late=True,
                                       submitted_at=filed[1]))
    return out
