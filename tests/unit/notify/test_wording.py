"""What a message says as a person reads it: memory in GiB, every deadline in the display zone with the zone named,
and an outbox filter that names nothing refused (both databases)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloudctl.compute import provisioning
from cloudctl.compute.models import Quota
from cloudctl.compute.notices import remind_quotas
from cloudctl.compute.schemas import RequestCreate
from cloudctl.core.config import get_settings, reset_settings
from cloudctl.core.display import local_time
from cloudctl.core.errors import InvalidInput
from cloudctl.core.models import beijing_today, utcnow
from cloudctl.notify import emit, service
from cloudctl.notify.models import Event
from cloudctl.org.models import Unit
from cloudctl.reclaim import service as reclaim
from tests.factories import ADMIN, build_mini_city, make_server


def _text(session: Session, kind: str) -> str:
    """The subject and body of the latest event of ``kind``, as its recipients read them."""
    event = session.scalars(select(Event).where(Event.kind == kind).order_by(Event.id.desc())).first()
    assert event is not None, kind
    subject, body = service.render(*service.template_for(session, kind), event.data)
    return f"{subject}\n{body}"


def test_a_reclaim_notice_says_gib_and_its_deadline_with_the_zone(session: Session) -> None:
    city = build_mini_city(session, with_cloud=True)
    server = make_server(session, "990100-D01", city.systems["own"], "c4m8")
    server.lease_ends_on = beijing_today() - timedelta(days=1)
    (rec,) = reclaim.open_lease_recommendations(session, ADMIN)
    text = _text(session, "reclaim.notice")
    assert "4 vCPU / 8 GiB 内存" in text
    assert " GB " not in text
    assert rec.due_at is not None
    assert local_time(rec.due_at) in text
    assert local_time(rec.due_at).endswith("UTC+08:00")


def test_a_volumes_notice_names_a_volume_and_the_storage_it_frees(session: Session) -> None:
    from tests.factories import plant_storage

    city = build_mini_city(session, with_cloud=True)
    plant_storage(session, city)
    reclaim.analyze(session, ADMIN)
    recs, _ = reclaim.list_recommendations(session, ADMIN, limit=1000)
    (rec,) = [r for r in recs if r.server_name == "旧数据盘"]
    reclaim.notify(session, ADMIN, [rec.id])
    text = _text(session, "reclaim.notice")
    assert "云硬盘 旧数据盘" in text
    assert "1000 GiB 存储" in text
    assert "先快照后删除" in text
    assert "云主机" not in text


def test_a_date_deadline_ends_its_beijing_day_and_reads_in_the_display_zone(session: Session) -> None:
    build_mini_city(session)
    reset_settings(get_settings().model_copy(update={"display_timezone": "UTC"}))
    d01 = session.scalars(select(Unit.id).where(Unit.code == "990100-D01")).one()
    event = emit(session, "security.ticket.opened", unit_id=d01, entity="security_ticket", entity_id=1,
                 deadline=date(2026, 12, 18), data={"ticket": 1, "title": "弱口令", "count": 2})
    assert event is not None
    assert event.deadline == datetime(2026, 12, 18, 15, 59, tzinfo=UTC)
    assert "期限：2026-12-18 15:59 UTC+00:00" in _text(session, "security.ticket.opened")


def test_a_quota_request_and_a_quota_nearly_used_say_gib(session: Session) -> None:
    city = build_mini_city(session, with_cloud=True)
    provisioning.submit_request(session, city.principals["dept"], RequestCreate.model_validate({
        "business_system": city.systems["own"], "cloud": "test-cloud", "justification": "新增系统需要更多配额",
        "items": [{"kind": "quota", "vcpus": 16, "ram_gib": 32, "instances": 4}]}))
    assert "+16 vCPU +32 GiB 内存 +0 GiB 磁盘" in _text(session, "compute.request.submitted")
    quota = session.scalars(select(Quota).join(Unit, Unit.id == Quota.unit_id)
                            .where(Unit.code == "990100-D01")).one()
    quota.limit_ram_mb, quota.used_ram_mb, quota.reserved_ram_mb = 64 * 1024, 60 * 1024, 0
    session.flush()
    assert remind_quotas(session, utcnow()) >= 1
    assert "60 GiB / 64 GiB（94%）" in _text(session, "compute.quota.nearly_exhausted")


@pytest.mark.parametrize(("filters", "field", "named"), [
    ({"kind": "reclaim.notic"}, "kind", "reclaim.notice"),
    ({"kind": "secutiry.*"}, "kind", "security.ticket.opened"),
])
def test_an_outbox_filter_that_names_no_event_kind_is_refused(session: Session, filters: dict[str, str],
                                                              field: str, named: str) -> None:
    build_mini_city(session)
    with pytest.raises(InvalidInput) as caught:
        service.list_deliveries(session, ADMIN, **filters)
    assert caught.value.field == field
    assert named in str(caught.value)


def test_a_pattern_that_names_kinds_and_a_bureau_role_are_taken(session: Session) -> None:
    build_mini_city(session)
    assert service.list_deliveries(session, ADMIN, kind="reclaim.*") == ([], 0)
    assert service.list_subscriptions(session, ADMIN, role="ops") == []
    with pytest.raises(InvalidInput) as caught:
        service.list_subscriptions(session, ADMIN, role="opps")
    assert caught.value.field == "role"
