"""The outbox in the change's own transaction: who hears what, once per key, quiet hours and digests, and a
department's view of it (both databases)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloudctl.core.config import get_settings, reset_settings
from cloudctl.notify import emit, service
from cloudctl.notify.models import ChannelKind, Delivery, Event
from cloudctl.org.models import Unit
from tests.factories import ADMIN, build_mini_city


def _ids(session: Session) -> dict[str, int]:
    return {code: id_ for code, id_ in session.execute(select(Unit.code, Unit.id))}


def _setup(session: Session) -> dict[str, int]:
    build_mini_city(session)
    service.create_channel(session, ADMIN, name="mail", kind=ChannelKind.SMTP,
                           config={"host": "127.0.0.1", "port": 25, "security": "none", "sender": "noc@x.example"})
    service.create_channel(session, ADMIN, name="ops-robot", kind=ChannelKind.WECOM,
                           config={"url": "http://127.0.0.1:9/hook"})
    service.create_subscription(session, ADMIN, channel="ops-robot", role="ops")
    return _ids(session)


def test_routing_defaults_keys_and_rollback(session: Session) -> None:
    units = _setup(session)
    # 市公安局 has no subscription: its contact e-mail, through the bureau's mail channel, is the default.
    session.get(Unit, units["990100-D01"]).contact_email = "zhang@d01.example"  # type: ignore[union-attr]
    event = emit(session, "compute.request.needs_approval", unit_id=units["990100-D01"], entity="resource_request",
                 entity_id=1, roles=("ops",), data={"request": 1, "summary": "5 台 c4m8", "approver": "运维"})
    assert event is not None
    rows = list(session.scalars(select(Delivery).where(Delivery.event_id == event.id)))
    assert sorted((r.channel_name, r.address, r.unit_id) for r in rows) == [
        ("mail", "zhang@d01.example", units["990100-D01"]), ("ops-robot", "", None)]
    mail = next(r for r in rows if r.channel_name == "mail")
    assert "市公安局" in mail.body
    assert "#1" in mail.subject
    # The same occurrence twice is one event.
    assert emit(session, "compute.request.needs_approval", unit_id=units["990100-D01"], entity="resource_request",
                entity_id=1, roles=("ops",)) is None
    # An event written in a change that rolls back leaves nothing behind.
    with session.begin_nested() as savepoint:
        emit(session, "security.ticket.closed", unit_id=units["990100-D01"], entity="security_ticket", entity_id=4)
        savepoint.rollback()
    assert session.scalar(select(func.count()).select_from(Event)) == 1
    assert session.scalar(select(func.count()).select_from(Delivery)) == 2


def test_quiet_hours_digest_and_urgency(session: Session) -> None:
    reset_settings(get_settings().model_copy(update={"notify_quiet_hours": "22:00-07:00",
                                                     "notify_digest_time": "08:30"}))
    night = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)  # 23:00 Beijing time
    day = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)  # 11:00
    assert service.send_after(night, urgent=True, digest=False) == night
    assert service.send_after(night, urgent=False, digest=False) == datetime(2026, 12, 4, 23, 0, tzinfo=UTC)
    assert service.send_after(day, urgent=False, digest=False) == day
    assert service.send_after(day, urgent=False, digest=True) == datetime(2026, 12, 5, 0, 30, tzinfo=UTC)


def test_a_department_sees_its_own_messages(session: Session) -> None:
    units = _setup(session)
    for code in ("990100-D01", "990100-D02"):
        service.create_subscription(session, ADMIN, channel="mail", unit=code, address=f"{code}@x.example")
        emit(session, "security.ticket.closed", unit_id=units[code], entity="security_ticket", entity_id=code,
             data={"ticket": 1, "title": "复测"})
    from cloudctl.org.models import User
    from cloudctl.org.service import principal_for_user

    dept = principal_for_user(session.scalars(select(User).where(User.username == "dept-user")).one())
    rows, total = service.list_deliveries(session, dept)
    assert total == 1
    assert rows[0].address == "990100-D01@x.example"
    everything, _ = service.list_deliveries(session, ADMIN)
    assert len(everything) == 2
