"""The demo city reaches its departments: once its channels point at a real SMTP server and robot endpoints on
loopback, a department's VM request, a reclaim notice, a finding ticket and an overdue duty report each arrive,
once, with the right unit and deadline; a leader approves before ops; a leased VM past its date becomes a
reclaim recommendation and its notice."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

import cloudctl.cli  # noqa: F401  (every domain's reminders and jobs, as a worker process has them)
from cloudctl.compute import provisioning
from cloudctl.compute import service as compute
from cloudctl.compute.models import RequestStatus, Server
from cloudctl.compute.schemas import QuotaSet, RequestCreate
from cloudctl.core.config import Settings, reset_settings
from cloudctl.core.db import dispose_engines, make_engine
from cloudctl.core.display import local_time
from cloudctl.core.jobs import JobRunner, JobStatus
from cloudctl.core.models import beijing_today, utcnow
from cloudctl.notify import sender, service
from cloudctl.org.models import BusinessSystem, Unit, User
from cloudctl.org.service import principal_for_user
from cloudctl.reclaim import service as reclaim
from cloudctl.reclaim.models import Recommendation, RecommendationKind, RecommendationStatus
from cloudctl.security.models import Asset, DutyKind
from cloudctl.security.scanners.base import ScanFinding, ScanReport
from cloudctl.security.service import duty, findings
from tests.factories import ADMIN
from tests.support.democity import DemoCityFiles
from tests.support.notify_receivers import MailSink, RobotReceiver

pytestmark = pytest.mark.slow


@pytest.fixture
def demo(demo_city: DemoCityFiles, tmp_path: Path) -> Iterator[Engine]:
    city = demo_city.copy_to(tmp_path / "city")
    reset_settings(Settings(data_dir=city.directory, database_url=f"sqlite:///{city.database}",
                            simulator_database_url=f"sqlite:///{city.simulator}", simulator_build_seconds=0,
                            provision_poll_seconds=0.01, notify_quiet_hours=""))
    engine = make_engine(f"sqlite:///{city.database}")
    yield engine
    engine.dispose()
    reset_settings()
    dispose_engines()


def _sessions(factory: sessionmaker[Session]) -> sender.Sessions:
    @contextmanager
    def scope() -> Iterator[Session]:
        with factory() as session:
            yield session
            session.commit()

    return scope


def _as(session: Session, username: str):  # type: ignore[no-untyped-def]
    return principal_for_user(session.scalars(select(User).where(User.username == username)).one())


def test_the_demo_city_tells_its_departments(demo: Engine) -> None:
    factory = sessionmaker(bind=demo, expire_on_commit=False)
    with MailSink() as mail, RobotReceiver() as robots, factory() as session:
        # The operator points the demo's channels at real receivers (here on loopback) and switches them on.
        service.update_channel(session, ADMIN, "bureau-mail", enabled=True,
                               config={"host": "127.0.0.1", "port": mail.port, "security": "none"})
        service.update_channel(session, ADMIN, "ops-dingtalk", enabled=True, config={
            "url": f"{robots.base}/dingtalk/robot/send?access_token=demo", "secret": robots.dingtalk_secret})
        service.update_channel(session, ADMIN, "duty-sms", enabled=True, config={"url": f"{robots.base}/sms"})
        d05 = session.scalars(select(Unit).where(Unit.code == "990100-D05")).one()
        contact, domain = d05.contact_email, (d05.contact_email or "").split("@")[1]
        assert contact

        # 1. A department asks for VMs: past the auto tier, its leader approves first, then ops.
        quota = compute.get_quota(session, ADMIN, "990100-D05", "city-cloud")
        compute.set_quota(session, ADMIN, "990100-D05", "city-cloud",
                          QuotaSet(vcpus=quota.used_vcpus + quota.reserved_vcpus + 64,
                                   ram_gib=(quota.used_ram_mb + quota.reserved_ram_mb) // 1024 + 128,
                                   instances=quota.used_instances + quota.reserved_instances + 10))
        system = session.scalars(select(BusinessSystem).where(BusinessSystem.unit_id == d05.id)).first()
        assert system is not None
        request = provisioning.submit_request(session, _as(session, "dept-d05"), RequestCreate.model_validate({
            "business_system": system.id, "cloud": "city-cloud", "justification": "专项活动临时扩容",
            "items": [{"flavor": "c8m16", "count": 3}], "ends_on": (beijing_today() + timedelta(days=30))}))
        assert request.status is RequestStatus.AWAITING_LEADER
        session.commit()
        sender.drain(_sessions(factory))
        (waiting,) = [m for m in mail.to(f"leader@{domain}") if "待部门负责人审批" in m["Subject"]]
        assert d05.name in waiting.get_content()
        assert not [r for r in robots.accepted("dingtalk") if f"#{request.id}" in r.body["markdown"]["text"]]
        provisioning.approve_request(session, _as(session, "leader-d05"), request.id, "同意")
        session.commit()
        sender.drain(_sessions(factory))
        (ops_told,) = [r for r in robots.accepted("dingtalk") if f"#{request.id}" in r.body["markdown"]["text"]]
        assert "待运维审批" in ops_told.body["markdown"]["title"]

        # 2. A reclaim notice, with the appeal deadline.
        rec = session.scalars(select(Recommendation).join(Unit, Unit.id == Recommendation.unit_id).where(
            Recommendation.status == RecommendationStatus.OPEN, Unit.code == "990100-D05")).first()
        assert rec is not None
        (notified,) = reclaim.notify(session, ADMIN, [rec.id])
        session.commit()

        # 3. A finding ticket on one of its hosts.
        asset = session.scalars(select(Asset).where(Asset.unit_id == d05.id)).first()
        assert asset is not None
        findings.store_report(session, ADMIN, ScanReport(
            scanner="nessus", started_at=None, finished_at=None, hosts=(asset.ip,), file_sha256="d" * 64,
            findings=(ScanFinding(scanner="nessus", plugin_id="156032", title="Apache Log4j RCE",
                                  severity="critical", ip=asset.ip, port=8080, protocol="tcp", service="http"),)),
            scope="demo-loop", source="test")
        (ticket,) = findings.open_tickets(session, ADMIN, scope="demo-loop")
        session.commit()

        # 4. A duty period whose slot has passed unreported: the reminder tells each county's duty contact.
        now = utcnow()
        period = duty.create_period(session, ADMIN, duty.PeriodCreate(
            name="元旦值守", kind=DutyKind.HOLIDAY, starts_at=now - timedelta(hours=3), ends_at=now + timedelta(days=1),
            every_hours=2))
        session.commit()
        slot = duty.slots(period)[0]
        assert sender.remind(_sessions(factory))["security.duty"] > 0
        sent = sender.drain(_sessions(factory))
        assert (sent.failed, sent.retried) == (0, 0)

        mails = mail.to(contact)
        (notice,) = [m for m in mails if "资源回收通知" in m["Subject"]]
        assert notice["X-Cloudctl-Unit"] == "990100-D05"
        assert local_time(notified.due_at) in notice.get_content()
        (rectify,) = [m for m in mails if f"整改单 #{ticket.id}" in m["Subject"] and "漏洞整改通知" in m["Subject"]]
        assert ticket.deadline.isoformat() in rectify.get_content()
        county = session.scalars(select(Unit).where(Unit.code == "990102")).one()
        # The slot passed unreported (and a reminder of the one coming within the hour).
        duty_sms = [r for r in robots.accepted("sms") if r.body["mobile"] == county.contact_phone
                    and "逾期" in r.body["content"]]
        assert len(duty_sms) == 1
        assert county.name in duty_sms[0].body["content"]
        assert local_time(slot) in duty_sms[0].body["content"]

        session.commit()  # SQLite: an open transaction holds the write lock the sender's sessions need

        # Once each: running the sender and the reminders again sends nothing more.
        before = (len(mail.mails), len(robots.received))
        assert sender.remind(_sessions(factory))["security.duty"] == 0
        assert sender.drain(_sessions(factory)).sent == 0
        assert (len(mail.mails), len(robots.received)) == before
        assert len({m["Message-ID"] for _, m in mail.mails}) == len({id(m) for _, m in mail.mails})

        # 5. The request's VMs carry its lease; past it, they become recommendations of their own kind, notified.
        provisioning.approve_request(session, ADMIN, request.id)
        session.commit()
        job = JobRunner(demo, kinds=[provisioning.PROVISION_JOB]).run_once()
        assert job is not None
        assert job.status is JobStatus.SUCCEEDED, job.error
        leased = list(session.scalars(select(Server).where(Server.lease_ends_on == request.ends_on)))
        assert len(leased) == 3
        session.commit()
        for server in leased:  # a month later: the lease ended yesterday
            server.lease_ends_on = beijing_today() - timedelta(days=1)
        session.commit()
        assert sender.remind(_sessions(factory))["reclaim"] >= 3
        recs = list(session.scalars(select(Recommendation).where(Recommendation.kind == RecommendationKind.LEASE)))
        assert {(r.server_id, r.status) for r in recs} == {(s.id, RecommendationStatus.NOTIFIED) for s in leased}
        session.commit()
        sender.drain(_sessions(factory))
        ended = [m for m in mail.to(contact) if "资源回收通知" in m["Subject"] and "租期已满" in m.get_content()]
        assert len(ended) == 3
