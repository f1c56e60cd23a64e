"""The outbox delivered to real receivers on loopback: a real SMTP server (aiosmtpd) and robot endpoints that check
DingTalk's, WeCom's and Feishu's formats and signatures, on SQLite and PostgreSQL, with real commits.

Each message arrives once; a receiver that is away delays messages and none is lost or sent twice; a receiver
that refuses (a bad signature, which DingTalk answers with HTTP 200 and an error code) fails the message for good.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from cloudctl.core import jobs
from cloudctl.core.config import Settings, reset_settings
from cloudctl.core.db import dispose_engines
from cloudctl.core.display import local_time
from cloudctl.core.models import utcnow
from cloudctl.notify import emit, sender, service
from cloudctl.notify.models import ChannelKind, Delivery, DeliveryStatus
from cloudctl.org.models import Unit
from tests.factories import ADMIN, build_mini_city
from tests.support.notify_receivers import MailSink, RobotReceiver

pytestmark = pytest.mark.slow


@pytest.fixture
def world(fresh_url: str, fresh_engine: Engine, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    # No quiet hours: the messages of a test run at any hour go at once.
    reset_settings(Settings(data_dir=tmp_path / "d", database_url=fresh_url, simulator_build_seconds=0,
                            simulator_database_url=f"sqlite:///{tmp_path / 'sim.db'}", notify_quiet_hours="",
                            notify_backoff_seconds=30))
    factory = sessionmaker(bind=fresh_engine, expire_on_commit=False)
    with factory() as session:
        build_mini_city(session)
        session.commit()
    yield factory
    reset_settings()
    dispose_engines()


def _sessions(factory: sessionmaker[Session]) -> sender.Sessions:
    @contextmanager
    def scope() -> Iterator[Session]:
        with factory() as session:
            yield session
            session.commit()

    return scope


def _channels(factory: sessionmaker[Session], mail: MailSink, robots: RobotReceiver, *,
              dingtalk_secret: str | None = None) -> None:
    with factory() as session:
        service.create_channel(session, ADMIN, name="mail", kind=ChannelKind.SMTP,
                               config={"host": "127.0.0.1", "port": mail.port, "security": "none",
                                       "sender": "noc@lj.example.gov.cn", "sender_name": "临江市大数据局"})
        service.create_channel(session, ADMIN, name="ops-ding", kind=ChannelKind.DINGTALK, config={
            "url": f"{robots.base}/dingtalk/robot/send?access_token=abc123",
            "secret": dingtalk_secret or robots.dingtalk_secret})
        service.create_channel(session, ADMIN, name="sec-wecom", kind=ChannelKind.WECOM,
                               config={"url": f"{robots.base}/wecom/webhook/send?key={robots.wecom_key}"})
        service.create_channel(session, ADMIN, name="duty-feishu", kind=ChannelKind.FEISHU,
                               config={"url": f"{robots.base}/feishu/bot/v2/hook/t0k3n",
                                       "secret": robots.feishu_secret})
        service.create_channel(session, ADMIN, name="hook", kind=ChannelKind.WEBHOOK,
                               config={"url": f"{robots.base}/webhook", "secret": robots.webhook_secret})
        service.create_channel(session, ADMIN, name="sms", kind=ChannelKind.SMS, config={"url": f"{robots.base}/sms"})
        service.create_subscription(session, ADMIN, channel="mail", unit="990100-D01", address="zhang@d01.example")
        service.create_subscription(session, ADMIN, channel="sms", unit="990100-D01", address="13800000001",
                                    events="security.*")
        service.create_subscription(session, ADMIN, channel="hook", unit="990100-D01", events="reclaim.*")
        service.create_subscription(session, ADMIN, channel="ops-ding", role="ops")
        service.create_subscription(session, ADMIN, channel="sec-wecom", role="secops")
        service.create_subscription(session, ADMIN, channel="duty-feishu", role="duty")
        session.commit()


def _unit(session: Session, code: str) -> int:
    unit_id = session.scalar(select(Unit.id).where(Unit.code == code))
    assert unit_id is not None
    return unit_id


def test_every_channel_delivers_once_with_its_format_and_signature(world: sessionmaker[Session]) -> None:
    with MailSink() as mail, RobotReceiver() as robots:
        _channels(world, mail, robots)
        with world() as session:
            d01 = _unit(session, "990100-D01")
            deadline = utcnow() + timedelta(days=14)
            emit(session, "reclaim.notice", unit_id=d01, entity="reclaim_recommendation", entity_id=7,
                 deadline=deadline, link="/api/v1/reclaim/recommendations/7",
                 data={"server": "d01-app-3", "reason": "长期闲置", "action": "搁置下线", "vcpus": 4, "ram_gib": 8})
            emit(session, "security.alert.attack", unit_id=d01, entity="security_alert", entity_id=3,
                 data={"alert": 3, "title": "Webshell", "severity": "高危", "ip": "10.64.1.20"})
            emit(session, "compute.request.needs_approval", unit_id=d01, entity="resource_request", entity_id=5,
                 roles=("ops",), data={"request": 5, "summary": "5 台 c4m8", "approver": "运维"})
            session.commit()
        first = sender.drain(_sessions(world))
        again = sender.drain(_sessions(world))

        assert (first.failed, first.retried, again.sent) == (0, 0, 0)
        # Mail to the department's contact: one per event, in Chinese, with its unit, deadline and link.
        mails = mail.to("zhang@d01.example")
        assert len(mails) == 3
        notice = next(m for m in mails if "资源回收通知" in m["Subject"])
        text = notice.get_content()
        assert notice["X-Cloudctl-Unit"] == "990100-D01"
        assert "市公安局" in text
        assert "d01-app-3" in text
        assert local_time(deadline) in text
        assert "http://127.0.0.1:8000/api/v1/reclaim/recommendations/7" in text
        # The robots checked the platforms' signatures; each was sent what concerns its role, once.
        assert len(robots.accepted("dingtalk")) == 1  # ops: the request waiting for approval
        assert len(robots.accepted("wecom")) == 1  # the security team: the attack
        assert len(robots.accepted("feishu")) == 1  # the duty officer: the attack
        assert len(robots.accepted("sms")) == 1  # the department's security contact: the attack
        hooks = robots.accepted("webhook")
        assert len(hooks) == 1
        assert hooks[0].body["event"] == "reclaim.notice"
        assert hooks[0].body["unit"] == "990100-D01"
        assert hooks[0].headers["idempotency-key"]
        assert [r for r in robots.received if not r.verified] == []
        with world() as session:
            statuses = set(session.scalars(select(Delivery.status)))
        assert statuses == {DeliveryStatus.SENT}
        assert first.sent == 3 + 5


def test_a_receiver_away_delays_and_loses_nothing_and_sends_nothing_twice(world: sessionmaker[Session]) -> None:
    mail = MailSink()
    with RobotReceiver() as robots:
        _channels(world, mail, robots)  # the mail server is down
        with world() as session:
            for n in range(3):
                emit(session, "security.ticket.opened", unit_id=_unit(session, "990100-D01"),
                     entity="security_ticket", entity_id=n, deadline=utcnow().date() + timedelta(days=7),
                     data={"ticket": n, "title": f"扫描 {n}", "count": 2})
            session.commit()
        down = sender.drain(_sessions(world))
        assert down.sent == 3  # the SMS of each went; the mail server is away
        assert down.retried == 1  # one try; the other two mails were not even attempted this round
        with world() as session:
            waiting = list(session.scalars(select(Delivery).where(Delivery.status == DeliveryStatus.PENDING)))
        assert len(waiting) == 3
        assert max(w.attempts for w in waiting) == 1
        later = utcnow() + timedelta(minutes=5)
        mail.start()
        try:
            # The two never tried go at once; the one tried waits out its backoff, then goes too.
            assert sender.drain(_sessions(world)).sent == 2
            assert sender.drain(_sessions(world), now=later).sent == 1
            assert sender.drain(_sessions(world), now=later + timedelta(hours=1)).sent == 0
            assert len(mail.to("zhang@d01.example")) == 3
            assert len({m["Message-ID"] for _, m in mail.mails}) == 3
        finally:
            mail.stop()


def test_a_refusal_fails_for_good_and_an_interrupted_send_is_not_repeated(world: sessionmaker[Session]) -> None:
    with MailSink() as mail, RobotReceiver() as robots:
        _channels(world, mail, robots, dingtalk_secret="SECwrongsecret")
        with world() as session:
            emit(session, "compute.request.needs_approval", unit_id=_unit(session, "990100-D01"),
                 entity="resource_request", entity_id=9, roles=("ops",), data={"request": 9})
            session.commit()
        result = sender.drain(_sessions(world))
        assert result.failed == 1
        assert [r.error for r in robots.received if r.platform == "dingtalk"] == ["sign"]
        with world() as session:
            failed = session.scalars(select(Delivery).where(Delivery.status == DeliveryStatus.FAILED)).one()
            assert "310000" in (failed.last_error or "")
            # A sender that died while sending leaves its row "sending": it is failed, never sent a second time.
            mail_row = session.scalars(select(Delivery).where(Delivery.status == DeliveryStatus.SENT)).first()
            assert mail_row is not None
            mail_row.status, mail_row.claimed_at = DeliveryStatus.SENDING, utcnow() - timedelta(hours=1)
            session.commit()
        before = len(mail.mails)
        swept = sender.drain(_sessions(world))
        assert (swept.interrupted, swept.sent, len(mail.mails)) == (1, 0, before)
        with world() as session:
            retried = service.retry_delivery(session, ADMIN, failed.id)
            assert retried.status is DeliveryStatus.PENDING
            session.commit()


def test_the_sender_is_a_periodic_job(world: sessionmaker[Session], fresh_engine: Engine) -> None:
    with MailSink() as mail, RobotReceiver() as robots:
        _channels(world, mail, robots)
        with world() as session:
            emit(session, "security.ticket.closed", unit_id=_unit(session, "990100-D01"), entity="security_ticket",
                 entity_id=1, data={"ticket": 1, "title": "复测"})
            jobs.ensure_periodic(session)
            session.commit()
        runner = jobs.JobRunner(fresh_engine, kinds=[sender.SEND_JOB])
        done = runner.run_once()
        assert done is not None
        assert done.result == {"sent": 2, "retried": 0, "failed": 0, "interrupted": 0}
        with world() as session:
            again = session.scalars(select(jobs.Job).where(jobs.Job.kind == sender.SEND_JOB)).one()
            # The same row, queued again for its next round.
            assert (again.id, again.status) == (done.id, jobs.JobStatus.QUEUED)
            assert again.run_after is not None
            assert again.run_after > utcnow()
        assert runner.run_once() is None  # not before its time
        assert len(mail.to("zhang@d01.example")) == 1
