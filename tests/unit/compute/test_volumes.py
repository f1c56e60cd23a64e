"""Block volumes on both databases: the simulator's Cinder shapes, the inventory sync, and who sees which."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloudctl.compute import service as compute
from cloudctl.compute import volumes
from cloudctl.compute.models import Cloud, Volume
from cloudctl.compute.providers.base import CloudProvider
from cloudctl.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from cloudctl.core.models import utcnow
from tests.factories import ADMIN, MiniCity, build_mini_city, make_server, simulator_of


@pytest.fixture
def city(session: Session) -> MiniCity:
    return build_mini_city(session, with_cloud=True)


def _project(session: Session, code: str) -> str:
    from cloudctl.org.models import Unit

    cloud = session.scalars(select(Cloud).where(Cloud.name == "test-cloud")).one()
    unit = session.scalars(select(Unit).where(Unit.code == code)).one()
    return compute.ensure_project(session, unit, cloud, simulator_of(session))


def test_the_simulator_speaks_cinders_shapes(session: Session, city: MiniCity) -> None:
    provider = simulator_of(session)
    server = make_server(session, "990100-D01", city.systems["own"], "c4m8")
    project = _project(session, "990100-D01")
    volume = provider.create_volume(project, "视频存储", "ssd", 500)
    assert (volume.status, volume.attached_to, volume.size_gib) == ("available", None, 500)
    attached = provider.attach_volume(volume.provider_id, server.provider_id)
    assert (attached.status, attached.attached_to) == ("in-use", server.provider_id)
    with pytest.raises(Conflict):
        provider.delete_volume(volume.provider_id)  # attached: detach first
    with pytest.raises(InvalidInput) as caught:
        provider.create_volume(project, "x", "nvme-gold", 10)
    assert caught.value.field == "volume_type"
    assert provider.detach_volume(volume.provider_id).status == "available"
    snapshot = provider.snapshot_volume(volume.provider_id, "before-delete")
    assert (snapshot.volume_id, snapshot.size_gib) == (volume.provider_id, 500)
    provider.delete_volume(volume.provider_id)
    assert provider.list_volumes(project) == []


def test_sync_records_owners_attachments_and_unattached_time(session: Session, city: MiniCity) -> None:
    provider = simulator_of(session)
    server = make_server(session, "990100-D01", city.systems["own"], "c4m8")
    mine = provider.create_volume(_project(session, "990100-D01"), "视频存储", "ssd", 500)
    provider.attach_volume(mine.provider_id, server.provider_id)
    spare = provider.create_volume(_project(session, "990100-D01"), "旧数据盘", "hdd", 1000)
    theirs = provider.create_volume(_project(session, "990100-D02"), "社保影像", "ssd", 200)
    stray = provider.create_volume(provider.ensure_project("990199-X01", "已撤并单位"), "无主数据盘", "hdd", 50)
    counts = volumes.sync_volumes(session, ADMIN, "test-cloud")
    assert counts == {"volumes": 4, "orphans": 1, "unattached": 3, "gone": 0, "snapshots": 0}
    rows = {v.provider_id: v for v in session.scalars(select(Volume))}
    assert (rows[mine.provider_id].server_id, rows[mine.provider_id].business_system_name) == (
        server.id, "城市视频监控联网平台")
    assert rows[mine.provider_id].detached_since is None
    assert rows[spare.provider_id].detached_since is not None
    assert rows[stray.provider_id].unit_id is None
    # Left unattached for 40 days: a reclaim candidate at 30 days, not at 60.
    rows[spare.provider_id].detached_since = utcnow() - timedelta(days=40)
    session.flush()
    old, total = volumes.list_volumes(session, ADMIN, unattached_days=30)
    assert (total, [v.name for v in old]) == (1, ["旧数据盘"])
    assert volumes.list_volumes(session, ADMIN, unattached_days=60)[1] == 0
    # A department sees its own volumes only; another unit's is not found.
    dept = city.principals["dept"]
    seen, _ = volumes.list_volumes(session, dept)
    assert {v.unit_code for v in seen} == {"990100-D01"}
    with pytest.raises(NotFound):
        volumes.get_volume(session, dept, rows[theirs.provider_id].id)
    with pytest.raises(NotFound):
        volumes.list_volumes(session, dept, unit="990100-D02")
    # Detached at the cloud: the next sync starts its unattached time; deleted there: marked deleted here.
    provider.detach_volume(mine.provider_id)
    provider.delete_volume(theirs.provider_id)
    assert volumes.sync_volumes(session, ADMIN, "test-cloud")["gone"] == 1
    session.refresh(rows[mine.provider_id])
    assert (rows[mine.provider_id].server_id, rows[mine.provider_id].status) == (None, "available")
    assert rows[mine.provider_id].detached_since is not None
    assert volumes.list_volumes(session, ADMIN, cloud="test-cloud")[1] == 3


def test_a_cloud_without_block_storage_and_bad_filters_are_refused(session: Session, city: MiniCity) -> None:
    class NoVolumes:
        kind = "test"

    with pytest.raises(InvalidInput) as caught:
        volumes.sync_volumes(session, ADMIN, "test-cloud", providers=lambda cloud: NoVolumes())  # type: ignore[arg-type,return-value]
    assert caught.value.field == "cloud"
    assert not isinstance(NoVolumes(), CloudProvider)
    with pytest.raises(InvalidInput) as caught:
        volumes.list_volumes(session, ADMIN, unattached_days=-1)
    assert caught.value.field == "unattached_days"
    with pytest.raises(InvalidInput) as caught:
        volumes.list_volumes(session, ADMIN, cloud="nowhere")
    assert caught.value.field == "cloud"


def test_quotas_in_gib_per_volume_type_are_pushed_synced_and_held(session: Session, city: MiniCity) -> None:
    provider = simulator_of(session)
    project = _project(session, "990100-D01")
    provider.create_volume(project, "视频存储", "ssd", 500)
    quota = volumes.set_volume_quota(session, ADMIN, "990100-D01", "test-cloud", "ssd", 800)
    assert (quota.unit_code, quota.cloud_name, quota.volume_type, quota.limit_gib, quota.used_gib) == (
        "990100-D01", "test-cloud", "ssd", 800, 500)
    # Held at the cloud: a volume past the type's quota is refused; another type is not limited.
    with pytest.raises(Conflict) as caught:
        provider.create_volume(project, "超额", "ssd", 400)
    assert caught.value.field == "size_gib"
    provider.create_volume(project, "冷数据", "hdd", 400)
    # A limit below what the unit uses is refused, never forced; a bad type or size names its field.
    with pytest.raises(Conflict) as caught:
        volumes.set_volume_quota(session, ADMIN, "990100-D01", "test-cloud", "ssd", 100)
    assert caught.value.field == "limit_gib"
    with pytest.raises(InvalidInput) as caught:
        volumes.set_volume_quota(session, ADMIN, "990100-D01", "test-cloud", "nvme-gold", 100)
    assert caught.value.field == "volume_type"
    with pytest.raises(InvalidInput) as caught:
        volumes.set_volume_quota(session, ADMIN, "990100-D01", "test-cloud", "ssd", -1)
    assert caught.value.field == "limit_gib"
    # Changed at the cloud behind cloudctl's back: the sync reads it back, with the use of every type.
    provider.set_volume_quota(project, "hdd", 2000)
    synced = {(q.unit_code, q.volume_type): (q.limit_gib, q.used_gib)
              for q in volumes.sync_volume_quotas(session, ADMIN, "test-cloud")}
    assert synced[("990100-D01", "ssd")] == (800, 500)
    assert synced[("990100-D01", "hdd")] == (2000, 400)
    assert synced[("990100-D02", "ssd")] == (None, 0)
    # A department sees its own; it may not set them.
    dept = city.principals["dept"]
    seen, _ = volumes.list_volume_quotas(session, dept)
    assert {q.unit_code for q in seen} == {"990100-D01"}
    with pytest.raises(PermissionDenied):
        volumes.set_volume_quota(session, dept, "990100-D01", "test-cloud", "ssd", 900)
    lifted = volumes.set_volume_quota(session, ADMIN, "990100-D01", "test-cloud", "ssd", None)
    assert lifted.limit_gib is None
    provider.create_volume(project, "不再受限", "ssd", 400)


def test_a_request_for_volumes_is_checked_against_the_types_quota(session: Session, city: MiniCity) -> None:
    from cloudctl.compute import provisioning
    from cloudctl.compute.models import RequestStatus
    from cloudctl.compute.schemas import QuotaSet, RequestCreate

    compute.set_quota(session, ADMIN, "990100-D01", "test-cloud", QuotaSet(disk_gib=5000))
    volumes.set_volume_quota(session, ADMIN, "990100-D01", "test-cloud", "ssd", 500)

    def ask(*items: dict[str, object]) -> RequestCreate:
        return RequestCreate.model_validate({"business_system": city.systems["own"], "cloud": "test-cloud",
                                             "justification": "存储扩容", "items": list(items)})

    with pytest.raises(Conflict) as caught:
        provisioning.submit_request(session, city.principals["dept"], ask(
            {"kind": "volume", "volume_type": "hdd", "size_gib": 100},
            {"kind": "volume", "volume_type": "ssd", "size_gib": 300, "count": 2}))
    assert caught.value.field == "items.1.size_gib"
    fits = provisioning.submit_request(session, city.principals["dept"], ask(
        {"kind": "volume", "volume_type": "ssd", "size_gib": 500}, {"kind": "volume", "volume_type": "hdd",
                                                                      "size_gib": 2000}))
    assert fits.status in (RequestStatus.APPROVED, RequestStatus.SUBMITTED, RequestStatus.AWAITING_LEADER)
    assert [(i.flavor, i.disk_gb) for i in fits.items] == [("ssd", 500), ("hdd", 2000)]
