"""7×24 duty over HTTP: periods, the roster with its handover overlaps, check-in, who is on shift, reports."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloudctl.core.auth import Role
from cloudctl.core.models import utcnow
from cloudctl.org.models import User
from cloudctl.security.service import duty
from tests.api.conftest import auth
from tests.factories import ADMIN, MiniCity, make_officers

URL = "/api/v1/security/duty"


def iso(at: datetime) -> str:
    return at.isoformat()


def field_of(response: httpx.Response) -> str:
    return str(response.json()["errors"][0]["field"])


@pytest.fixture
def period(client: TestClient, city: MiniCity) -> tuple[int, datetime]:
    """A 重大活动保障 period that began two hours ago and runs two days; its id and the creation time."""
    now = utcnow()
    created = client.post(f"{URL}/periods", headers=auth(city, "secops"), json={
        "name": "2026 重大活动保障", "kind": "event", "starts_at": iso(now - timedelta(hours=2)),
        "ends_at": iso(now + timedelta(days=2)), "report_times": ["09:00", "17:00"]})
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["kind"], body["report_times"], body["zero_reports"]) == ("event", ["09:00", "17:00"], True)
    return body["id"], now


@pytest.mark.parametrize(("role", "expected"), [("admin", 201), ("secops", 201), ("duty", 403), ("ops", 403),
                                                ("auditor", 403), ("dept", 403)])
def test_only_the_security_team_opens_periods(client: TestClient, city: MiniCity, role: str, expected: int) -> None:
    now = utcnow()
    response = client.post(f"{URL}/periods", headers=auth(city, role), json={
        "name": "国庆节假日值守", "kind": "holiday", "starts_at": iso(now), "ends_at": iso(now + timedelta(days=7)),
        "every_hours": 4})
    assert response.status_code == expected, response.text


def test_roster_overlaps_check_in_and_on_shift(client: TestClient, city: MiniCity, session: Session,
                                               period: tuple[int, datetime]) -> None:
    period_id, now = period
    secops, duty_headers = auth(city, "secops"), auth(city, "duty")
    shifts = f"{URL}/periods/{period_id}/shifts"
    # The duty user is 张伟, the day shift's officer on the roster below.
    officer = session.get(User, city.principals["duty"].user_id)
    assert officer is not None
    officer.display_name = "张伟"
    make_officers(session, "王芳", "李娜", "赵磊", "孙强")
    make_officers(session, "陈主任", role=Role.SECOPS)
    session.commit()
    assert client.get(f"{URL}/on-shift", headers=duty_headers).json() is None

    day = client.post(shifts, headers=secops, json={
        "starts_at": iso(now - timedelta(hours=1)), "ends_at": iso(now + timedelta(hours=1)), "officer": "张伟",
        "backup": "王芳", "leader": "陈主任"})
    assert day.status_code == 201, day.text
    # The next officer comes 10 minutes early to take over: a handover, allowed.
    night = client.post(shifts, headers=secops, json={
        "starts_at": iso(now + timedelta(minutes=50)), "ends_at": iso(now + timedelta(hours=3)), "officer": "李娜"})
    assert night.status_code == 201, night.text

    overlap = client.post(shifts, headers=secops, json={
        "starts_at": iso(now + timedelta(hours=2)), "ends_at": iso(now + timedelta(hours=5)), "officer": "赵磊"})
    assert overlap.status_code == 409
    assert field_of(overlap) == "starts_at"
    assert "李娜" in overlap.json()["detail"]
    # Twenty minutes inside another shift is not a handover, however short.
    inside = client.post(shifts, headers=secops, json={
        "starts_at": iso(now - timedelta(minutes=30)), "ends_at": iso(now - timedelta(minutes=10)), "officer": "赵磊"})
    assert inside.status_code == 409
    early = client.post(shifts, headers=secops, json={
        "starts_at": iso(now - timedelta(hours=3)), "ends_at": iso(now - timedelta(hours=1, minutes=30)),
        "officer": "赵磊"})
    assert early.status_code == 422
    assert field_of(early) == "starts_at"
    late = client.post(shifts, headers=secops, json={
        "starts_at": iso(now + timedelta(days=1, hours=23)), "ends_at": iso(now + timedelta(days=3)),
        "officer": "赵磊"})
    assert late.status_code == 422
    assert field_of(late) == "ends_at"
    naive = client.post(shifts, headers=secops, json={
        "starts_at": "2026-10-01T08:00", "ends_at": iso(now + timedelta(hours=5)), "officer": "赵磊"})
    assert naive.status_code == 422
    assert field_of(naive) == "starts_at"
    assert client.post(shifts, headers=duty_headers, json={
        "starts_at": iso(now + timedelta(hours=4)), "ends_at": iso(now + timedelta(hours=6)),
        "officer": "赵磊"}).status_code == 403

    roster = client.get(shifts, headers=duty_headers).json()
    assert [s["officer"] for s in roster] == ["张伟", "李娜"]
    assert (roster[0]["backup"], roster[0]["leader"], roster[0]["checked_in_at"]) == ("王芳", "陈主任", None)

    day_id, night_id = day.json()["id"], night.json()["id"]
    checked = client.post(f"{URL}/shifts/{day_id}/check-in", headers=duty_headers,
                          json={"handover_note": "态势感知平台告警已清零"})
    assert checked.status_code == 200, checked.text
    assert checked.json()["checked_in_at"] is not None
    assert checked.json()["handover_note"] == "态势感知平台告警已清零"
    # Without a body too; the first check-in time and the note stay.
    again = client.post(f"{URL}/shifts/{day_id}/check-in", headers=duty_headers)
    assert again.status_code == 200, again.text
    assert again.json()["checked_in_at"] == checked.json()["checked_in_at"]
    assert again.json()["handover_note"] == "态势感知平台告警已清零"
    # The night shift opens for check-in at +20 minutes (the security team may record it for 李娜).
    too_early = client.post(f"{URL}/shifts/{night_id}/check-in", headers=secops)
    assert too_early.status_code == 409
    assert field_of(too_early) == "shift"
    assert client.post(f"{URL}/shifts/{day_id}/check-in", headers=auth(city, "dept")).status_code == 403
    assert client.post(f"{URL}/shifts/999999/check-in", headers=duty_headers).status_code == 404

    on_shift = client.get(f"{URL}/on-shift", headers=auth(city, "dept"))
    assert on_shift.status_code == 200
    assert (on_shift.json()["id"], on_shift.json()["officer"]) == (day_id, "张伟")
    # During the handover the incoming officer is the one to call.
    assert duty.on_shift(session, ADMIN, at=now + timedelta(minutes=55)).officer == "李娜"  # type: ignore[union-attr]

    past = duty.add_shift(session, ADMIN, period_id, duty.ShiftCreate(
        starts_at=now - timedelta(hours=2), ends_at=now - timedelta(hours=1, minutes=20), officer="孙强"))
    session.commit()
    ended = client.post(f"{URL}/shifts/{past.id}/check-in", headers=secops)
    assert ended.status_code == 409
    assert "ended" in ended.json()["detail"]


def test_periods_active_and_read(client: TestClient, city: MiniCity, period: tuple[int, datetime]) -> None:
    period_id, now = period
    future = client.post(f"{URL}/periods", headers=auth(city, "admin"), json={
        "name": "2027 春节值守", "kind": "holiday", "starts_at": iso(now + timedelta(days=30)),
        "ends_at": iso(now + timedelta(days=37)), "every_hours": 6, "zero_reports": False})
    assert future.status_code == 201, future.text
    headers = auth(city, "duty")
    assert [p["id"] for p in client.get(f"{URL}/periods", headers=headers).json()] == [future.json()["id"], period_id]
    assert [p["id"] for p in client.get(f"{URL}/periods?active=true", headers=headers).json()] == [period_id]
    read = client.get(f"{URL}/periods/{period_id}", headers=headers)
    assert read.status_code == 200
    assert read.json()["name"] == "2026 重大活动保障"
    missing = client.get(f"{URL}/periods/999999", headers=headers)
    assert missing.status_code == 404
    assert field_of(missing) == "period"
    neither = client.post(f"{URL}/periods", headers=auth(city, "admin"), json={
        "name": "x 值守", "kind": "event", "starts_at": iso(now), "ends_at": iso(now + timedelta(days=1))})
    assert neither.status_code == 422


def test_a_department_sees_only_its_own_reports(client: TestClient, city: MiniCity) -> None:
    now = utcnow()
    created = client.post(f"{URL}/periods", headers=auth(city, "secops"), json={
        "name": "2026 国庆节假日值守", "kind": "holiday", "starts_at": iso(now - timedelta(hours=7)),
        "ends_at": iso(now + timedelta(days=2)), "every_hours": 2, "reporting_kinds": ["department"]})
    period_id = created.json()["id"]
    reports = f"{URL}/periods/{period_id}/reports"
    mine = client.post(reports, headers=auth(city, "dept"), json={"zero": True, "note": "本时段无安全事件"})
    assert mine.status_code == 201, mine.text
    other = client.post(reports, headers=auth(city, "admin"),
                        json={"alerts": 3, "incidents": 1, "unit_code": "990100-D02"})
    assert other.status_code == 201, other.text
    assert other.json()["unit_code"] == "990100-D02"

    seen = client.get(reports, headers=auth(city, "dept")).json()
    assert [(r["unit_code"], r["zero"], r["note"]) for r in seen] == [("990100-D01", True, "本时段无安全事件")]
    everyone = client.get(reports, headers=auth(city, "duty")).json()
    assert sorted((r["unit_code"], r["alerts"], r["incidents"]) for r in everyone) == [
        ("990100-D01", 0, 0), ("990100-D02", 3, 1)]
    assert client.get(f"{URL}/periods/999999/reports", headers=auth(city, "dept")).status_code == 404


def test_check_in_is_the_officers_own_or_recorded_for_them(client: TestClient, city: MiniCity,
                                                         session: Session) -> None:
    """Another duty officer may not check in for a shift, nor overwrite its handover note; the backup may; the
    security team records it on the officer's behalf, audited as such."""
    from cloudctl.core.audit import list_audit

    now = utcnow()
    make_officers(session, "王芳")
    session.commit()
    created = client.post(f"{URL}/periods", headers=auth(city, "secops"), json={
        "name": "护网值守", "kind": "drill", "starts_at": iso(now - timedelta(hours=1)),
        "ends_at": iso(now + timedelta(days=1)), "every_hours": 4})
    shift = client.post(f"{URL}/periods/{created.json()['id']}/shifts", headers=auth(city, "secops"), json={
        "starts_at": iso(now - timedelta(minutes=30)), "ends_at": iso(now + timedelta(hours=8)),
        "officer": "王芳", "backup": "duty-user"}).json()["id"]
    check_in = f"{URL}/shifts/{shift}/check-in"
    # duty-user is the backup: allowed.
    backup = client.post(check_in, headers=auth(city, "duty"), json={"handover_note": "x"})
    assert backup.status_code == 200, backup.text
    other = make_user_token(session, "duty-other")
    refused = client.post(check_in, headers=other, json={"handover_note": "改掉交接记录"})
    assert refused.status_code == 403
    assert "王芳" in refused.json()["detail"]
    assert client.get(f"{URL}/periods/{created.json()['id']}/shifts",
                      headers=other).json()[0]["handover_note"] == "x"
    recorded = client.post(check_in, headers=auth(city, "secops"), json={"handover_note": "电话报到"})
    assert recorded.status_code == 200
    entries, _ = list_audit(session, ADMIN, entity="duty_shift", entity_id=str(shift))
    assert {e.action for e in entries} >= {"check_in", "check_in_for"}
    behalf = next(e for e in entries if e.action == "check_in_for")
    assert behalf.after is not None
    assert behalf.after["on_behalf_of"] == "王芳"
    assert behalf.actor == "api:secops-user"


def make_user_token(session: Session, username: str) -> dict[str, str]:
    from cloudctl.org import service
    from tests.factories import make_user

    make_user(session, username, Role.DUTY)
    _, secret = service.create_token(session, ADMIN, username)
    session.commit()
    return {"Authorization": f"Bearer {secret}"}


def test_a_period_is_bounded_in_length_and_slots(client: TestClient, city: MiniCity) -> None:
    now = utcnow()
    headers = auth(city, "secops")
    centuries = client.post(f"{URL}/periods", headers=headers, json={
        "name": "永久值守", "kind": "event", "starts_at": iso(now), "ends_at": "2226-01-01T00:00:00+08:00",
        "every_hours": 1})
    assert centuries.status_code == 422
    assert "at most 366 days" in centuries.json()["detail"]
    hourly_year = client.post(f"{URL}/periods", headers=headers, json={
        "name": "全年逐时值守", "kind": "event", "starts_at": iso(now), "ends_at": iso(now + timedelta(days=360)),
        "every_hours": 1})
    assert hourly_year.status_code == 422
    assert "8640 report slots" in hourly_year.json()["detail"]
    many_times = client.post(f"{URL}/periods", headers=headers, json={
        "name": "x 值守", "kind": "event", "starts_at": iso(now), "ends_at": iso(now + timedelta(days=1)),
        "report_times": [f"{h:02d}:{m:02d}" for h in range(24) for m in (0, 30)] + ["23:59"]})
    assert many_times.status_code == 422
    assert client.post(f"{URL}/periods", headers=headers, json={
        "name": "x 值守", "kind": "event", "starts_at": iso(now), "ends_at": iso(now + timedelta(days=1)),
        "report_times": ["09:00", "09:00"]}).status_code == 422


def _naive_slots(period: duty.DutyPeriod) -> list[datetime]:
    """Every slot of a (short) period, listed the plain way: the reference for the windowed computation."""
    from datetime import UTC, time

    from cloudctl.core.models import BEIJING

    out = []
    if period.every_hours:
        at = period.starts_at + timedelta(hours=period.every_hours)
        while at <= period.ends_at:
            out.append(at)
            at += timedelta(hours=period.every_hours)
        return out
    day = period.starts_at.astimezone(BEIJING).date() - timedelta(days=1)
    while datetime.combine(day, time(0), tzinfo=BEIJING) <= period.ends_at + timedelta(days=1):
        for text in sorted(period.report_times):
            hour, minute = (int(x) for x in text.split(":"))
            at = datetime.combine(day, time(hour, minute), tzinfo=BEIJING).astimezone(UTC)
            if period.starts_at < at <= period.ends_at:
                out.append(at)
        day += timedelta(days=1)
    return out


@pytest.mark.parametrize(("report_times", "every_hours"), [([], 5), (["00:00", "08:30", "23:59"], None), ([], 24)])
def test_slots_are_computed_for_the_window_alone(report_times: list[str], every_hours: int | None) -> None:
    from datetime import UTC

    from cloudctl.security.models import DutyKind, DutyPeriod

    start = datetime(2026, 9, 30, 13, 17, tzinfo=UTC)
    period = DutyPeriod(name="p", kind=DutyKind.HOLIDAY, starts_at=start, ends_at=start + timedelta(days=9, hours=3),
                        report_times=report_times, every_hours=every_hours, zero_reports=True, grace_minutes=30,
                        reporting_kinds=["department"])
    every = _naive_slots(period)
    assert duty.slots(period) == every
    assert duty.slot_count(period.starts_at, period.ends_at, report_times, every_hours) == len(every)
    for hours in range(-30, 9 * 24 + 30, 7):
        since = start + timedelta(hours=hours, minutes=11)
        until = since + timedelta(hours=31)
        assert duty.slots(period, since=since, until=until) == [s for s in every if since <= s <= until]
        assert duty.next_slot(period, since) == next((s for s in every if s >= since), None)
    assert all(duty.is_slot(period, s) for s in every)
    assert not any(duty.is_slot(period, s + timedelta(minutes=7)) for s in every)


def test_a_period_from_before_the_bounds_answers_for_its_window(client: TestClient, city: MiniCity,
                                                                session: Session) -> None:
    """A period stored before periods were bounded (now to 2226, every hour) is never listed whole: the next
    slot and the report due are found for the window asked about."""
    from cloudctl.security.models import DutyKind, DutyPeriod

    now = utcnow()
    period = DutyPeriod(name="遗留值守", kind=DutyKind.EVENT, starts_at=now - timedelta(days=1, minutes=10),
                        ends_at=now + timedelta(days=200 * 365), report_times=[], every_hours=1,
                        zero_reports=True, grace_minutes=30, reporting_kinds=["department"])
    session.add(period)
    session.commit()
    assert duty.next_slot(period, now) is not None
    report = client.post(f"{URL}/periods/{period.id}/reports", headers=auth(city, "dept"), json={"zero": True})
    assert report.status_code == 201, report.text
    missing = client.get(f"{URL}/missing?period={period.id}", headers=auth(city, "duty")).json()
    # A day of hourly slots overdue for the two departments, less the one the department just sent, and the next.
    assert 40 <= len(missing) <= 52


def test_the_roster_names_duty_and_security_users(client: TestClient, city: MiniCity, session: Session,
                                                  period: tuple[int, datetime]) -> None:
    """Officer, backup and leader are users with the duty or secops role, by login or unique display name; an
    unknown name, another role, a disabled user or an ambiguous display name is refused naming the field."""
    period_id, now = period
    secops = auth(city, "secops")
    shifts = f"{URL}/periods/{period_id}/shifts"
    make_officers(session, "王芳", "张伟")
    make_officers(session, "张伟")  # a second 张伟: the display name alone no longer says who
    clerk = make_officers(session, "钱科员", role=Role.OPS)["钱科员"]
    gone = make_officers(session, "周离职")["周离职"]
    gone.active = False
    session.commit()

    def shift(**names: str) -> httpx.Response:
        return client.post(shifts, headers=secops, json={
            "starts_at": iso(now - timedelta(hours=1)), "ends_at": iso(now + timedelta(hours=1)), **names})

    for names, field, words in (({"officer": "查无此人"}, "officer", "no user"),
                                ({"officer": "王芳", "backup": "钱科员"}, "backup", "duty or secops"),
                                ({"officer": "王芳", "leader": clerk.username}, "leader", "duty or secops"),
                                ({"officer": "周离职"}, "officer", "disabled"),
                                ({"officer": "张伟"}, "officer", "give the login"),
                                ({"officer": "王芳", "backup": "王芳"}, "backup", "other than")):
        refused = shift(**names)
        assert refused.status_code == 422, (names, refused.text)
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert field_of(refused) == field
        assert words in refused.json()["detail"]
    assert client.get(shifts, headers=secops).json() == []

    added = shift(officer="王芳", backup="duty-user", leader="secops-user")
    assert added.status_code == 201, added.text
    body = added.json()
    assert body["officer_id"] == session.scalar(select(User.id).where(User.display_name == "王芳"))
    assert (body["backup_id"], body["leader_id"]) == (city.principals["duty"].user_id,
                                                      city.principals["secops"].user_id)
    assert body["unresolved"] is False
    # The backup checks in by who they are, whatever their display name.
    checked = client.post(f"{URL}/shifts/{body['id']}/check-in", headers=auth(city, "duty"))
    assert checked.status_code == 200, checked.text


def test_the_missing_list_shows_late_and_missing(client: TestClient, city: MiniCity, session: Session) -> None:
    """A report filed after its slot's grace is for the slot that has just passed, marked late, and listed as late
    next to the slots still missing; the internal count of what is owed leaves it out."""
    now = utcnow()
    created = client.post(f"{URL}/periods", headers=auth(city, "secops"), json={
        "name": "国庆值守", "kind": "holiday", "starts_at": iso(now - timedelta(hours=4, minutes=50)),
        "ends_at": iso(now + timedelta(days=1)), "every_hours": 2, "grace_minutes": 30,
        "reporting_kinds": ["department"]})
    period_id = created.json()["id"]
    period = duty.get_period(session, ADMIN, period_id)
    first, second = duty.slots(period, until=now)
    # D01 files its zero-report now: for the slot just passed (50 minutes ago), late.
    filed = client.post(f"{URL}/periods/{period_id}/reports", headers=auth(city, "dept"), json={"zero": True})
    assert filed.status_code == 201, filed.text
    assert (datetime.fromisoformat(filed.json()["slot_at"]), filed.json()["late"]) == (second, True)

    rows = client.get(f"{URL}/missing?period={period_id}", headers=auth(city, "duty")).json()
    state = {(r["unit_code"], datetime.fromisoformat(r["slot_at"])): (r["overdue"], r["late"]) for r in rows}
    assert state[("990100-D01", second)] == (False, True)
    assert state[("990100-D01", first)] == (True, False)
    assert state[("990100-D02", second)] == (True, False)
    assert next(r for r in rows if r["late"])["submitted_at"] is not None
    without = client.get(f"{URL}/missing?period={period_id}&late=false", headers=auth(city, "duty")).json()
    assert not any(r["late"] for r in without)
    assert len(without) == len(rows) - 1
    assert not any(m.late for m in duty.missing_reports(session, ADMIN, period_id=period_id))
