"""Storage in reclaim on both databases: unattached volumes and volumes of deleted servers become recommendations,
go through the same notice, appeal and execution as a server's, and are executed snapshot-then-delete."""

from __future__ import annotations

import csv
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloudctl.compute import volumes
from cloudctl.compute.models import VolumeSnapshot
from cloudctl.compute.providers.simulator import SimSnapshot
from cloudctl.core.errors import NotFound, ProviderError
from cloudctl.core.models import utcnow
from cloudctl.notify.models import Event
from cloudctl.reclaim import report, service
from cloudctl.reclaim.models import AppealStatus, Recommendation, RecommendationKind, RecommendationStatus
from tests.factories import ADMIN, MiniCity, build_mini_city, plant_storage, simulator_of


@pytest.fixture
def city(session: Session) -> MiniCity:
    return build_mini_city(session, with_cloud=True)


def _volume_recs(session: Session) -> dict[str, Recommendation]:
    recs, _ = service.list_recommendations(session, ADMIN, limit=1000)
    return {r.server_name: r for r in recs if r.volume_id is not None}


def test_unattached_and_orphaned_volumes_become_recommendations(session: Session, city: MiniCity) -> None:
    rows = plant_storage(session, city)
    campaign = service.analyze(session, ADMIN)
    assert campaign.counts["volumes_created"] == 2
    recs = _volume_recs(session)
    assert {name: r.kind for name, r in recs.items()} == {
        "旧数据盘": RecommendationKind.VOLUME_IDLE, "社保影像": RecommendationKind.VOLUME_ORPHAN}
    old = recs["旧数据盘"]
    assert (old.server_id, old.volume_id, old.unit_code, old.cloud_name) == (
        None, rows["old"].id, "990100-D01", "test-cloud")
    assert old.reclaim_disk_gb == 1000
    assert old.saving_month > 0
    assert old.evidence["unattached_days"] >= 45
    assert old.evidence["threshold_days"] == 30
    assert recs["社保影像"].evidence["server"] == "gone-vm"
    # A re-run updates them, one per volume and kind; attaching the old one again dismisses its recommendation.
    again = service.analyze(session, ADMIN)
    assert (again.counts["volumes_created"], again.counts["volumes_updated"]) == (0, 2)
    rows["old"].server_id, rows["old"].detached_since = rows["used"].server_id, None
    session.flush()
    third = service.analyze(session, ADMIN)
    assert third.counts["volumes_dismissed"] == 1
    assert _volume_recs(session)["旧数据盘"].status is RecommendationStatus.DISMISSED
    # Filters and scope: the cloud filter finds volumes too; a department sees only its own.
    assert len(service.list_recommendations(session, ADMIN, cloud="test-cloud",
                                            kind=RecommendationKind.VOLUME_ORPHAN)[0]) == 1
    dept = city.principals["dept"]
    seen, _ = service.list_recommendations(session, dept, limit=1000)
    assert {r.unit_code for r in seen} <= {"990100-D01", "990100-M001"}
    with pytest.raises(NotFound):
        service.get_recommendation(session, dept, recs["社保影像"].id)


def test_notice_appeal_and_snapshot_then_delete(session: Session, city: MiniCity) -> None:
    rows = plant_storage(session, city)
    service.analyze(session, ADMIN)
    recs = _volume_recs(session)
    now = utcnow()
    service.notify(session, ADMIN, [r.id for r in recs.values()], grace_days=7, now=now)
    notices = session.scalars(select(Event).where(Event.kind == "reclaim.notice")).all()
    assert {(e.entity_id, e.data["server"]) for e in notices} >= {
        (str(recs["旧数据盘"].id), "旧数据盘"), (str(recs["社保影像"].id), "社保影像")}
    assert all("快照" in e.data["action"] for e in notices if e.data["server"] in recs)
    # The owning department appeals one; ops accept it: exempted, nothing executed for it.
    dept = city.principals["dept"]
    service.appeal(session, dept, recs["旧数据盘"].id, "历史案卷需保留至年底", now=now)
    service.decide_appeal(session, ADMIN, recs["旧数据盘"].id, accept=True)
    assert recs["旧数据盘"].appeal_status is AppealStatus.ACCEPTED
    # Nothing runs before the grace period ends; a dry run plans snapshot-then-delete.
    assert service.execute(session, ADMIN, now=now) == []
    later = now + timedelta(days=8)
    planned = service.execute(session, ADMIN, dry_run=True, now=later)
    assert [(s.server, s.action, s.outcome) for s in planned] == [("社保影像", "snapshot_delete", "planned")]
    assert "snapshot" in planned[0].detail
    steps = service.execute(session, ADMIN, now=later)
    assert [(s.server, s.outcome, s.target) for s in steps] == [("社保影像", "done", "deleted")]
    orphan = recs["社保影像"]
    assert orphan.status is RecommendationStatus.EXECUTED
    assert orphan.snapshot_id is not None
    assert orphan.snapshot_until is not None
    assert orphan.snapshot_until >= utcnow().date() + timedelta(days=89)
    provider = simulator_of(session)
    with provider.store.session() as s:
        snapshot = s.get(SimSnapshot, orphan.snapshot_id)
        assert snapshot is not None
        assert snapshot.volume_id == rows["orphan"].provider_id
    # Deleted at the cloud (never silently: the snapshot was taken first) and in the inventory.
    assert rows["orphan"].provider_id not in {v.provider_id for v in provider.list_volumes()}
    assert rows["orphan"].status == "deleted"
    assert rows["old"].provider_id in {v.provider_id for v in provider.list_volumes()}
    assert any(e.data.get("detail", "").startswith("snapshot") for e in session.scalars(
        select(Event).where(Event.kind == "reclaim.execution.done")))


def test_a_volume_attached_again_is_not_deleted(session: Session, city: MiniCity) -> None:
    rows = plant_storage(session, city)
    service.analyze(session, ADMIN)
    rec = _volume_recs(session)["旧数据盘"]
    now = utcnow()
    service.notify(session, ADMIN, [rec.id], grace_days=0, now=now)
    rows["old"].server_id = rows["used"].server_id
    session.flush()
    steps = service.execute(session, ADMIN, now=now + timedelta(minutes=1))
    assert [(s.outcome, s.recommendation) for s in steps] == [("failed", rec.id)]
    assert rec.status is RecommendationStatus.FAILED
    assert rec.snapshot_id is None
    assert rows["old"].provider_id in {v.provider_id for v in simulator_of(session).list_volumes()}


def test_snapshots_past_their_retention_become_recommendations(session: Session, city: MiniCity) -> None:
    rows = plant_storage(session, city)
    provider = simulator_of(session)
    # A snapshot a department took long ago, found by the sync; and the one reclaim takes before a delete.
    kept = provider.snapshot_volume(rows["used"].provider_id, "升级前备份")
    assert volumes.sync_volumes(session, ADMIN, "test-cloud")["snapshots"] == 1
    service.analyze(session, ADMIN)
    orphan = _volume_recs(session)["社保影像"]
    service.notify(session, ADMIN, [orphan.id], grace_days=0, now=utcnow())
    service.execute(session, ADMIN, rec_ids=[orphan.id], now=utcnow() + timedelta(minutes=1))
    snapshots = {s.provider_id: s for s in session.scalars(select(VolumeSnapshot))}
    assert set(snapshots) == {kept.provider_id, orphan.snapshot_id}
    assert snapshots[kept.provider_id].unit_id == rows["used"].unit_id
    assert snapshots[orphan.snapshot_id].unit_id == rows["orphan"].unit_id
    # Young snapshots are no finding; one older than the retention (90 days) is.
    assert service.analyze(session, ADMIN).counts["snapshots_created"] == 0
    snapshots[kept.provider_id].provider_created_at = utcnow() - timedelta(days=120)
    session.flush()
    assert service.analyze(session, ADMIN).counts["snapshots_created"] == 1
    recs, _ = service.list_recommendations(session, ADMIN, kind=RecommendationKind.SNAPSHOT_OLD)
    assert [(r.server_name, r.unit_code, r.reclaim_disk_gb) for r in recs] == [("升级前备份", "990100-D01", 500)]
    rec = recs[0]
    assert rec.evidence["retention_days"] == 90
    # The same workflow: notice to the department, then execution deletes the snapshot.
    service.notify(session, ADMIN, [rec.id], grace_days=0, now=utcnow())
    assert session.scalars(select(Event).where(Event.kind == "reclaim.notice",
                                               Event.entity_id == str(rec.id))).one().unit_id == rec.unit_id
    steps = service.execute(session, ADMIN, rec_ids=[rec.id], now=utcnow() + timedelta(minutes=1))
    assert [(s.action, s.outcome) for s in steps] == [("delete_snapshot", "done")]
    assert kept.provider_id not in {s.provider_id for s in provider.list_snapshots()}
    assert orphan.snapshot_id in {s.provider_id for s in provider.list_snapshots()}
    assert snapshots[kept.provider_id].status == "deleted"
    # A later sync does not bring it back, and a new analysis does not flag it again.
    volumes.sync_volumes(session, ADMIN, "test-cloud")
    assert service.analyze(session, ADMIN).counts["snapshots_created"] == 0


def test_a_failed_delete_keeps_the_volume_and_names_the_snapshot(session: Session, city: MiniCity) -> None:
    rows = plant_storage(session, city)
    service.analyze(session, ADMIN)
    rec = _volume_recs(session)["旧数据盘"]
    service.notify(session, ADMIN, [rec.id], grace_days=0, now=utcnow())
    simulator = simulator_of(session)

    class RefusingDeletes:
        def __getattr__(self, name: str) -> object:
            return getattr(simulator, name)

        def delete_volume(self, volume_id: str) -> None:
            raise ProviderError("cinder: 503 Service Unavailable")

    steps = service.execute(session, ADMIN, rec_ids=[rec.id], now=utcnow() + timedelta(minutes=1),
                            providers=lambda cloud: RefusingDeletes())
    assert [s.outcome for s in steps] == ["failed"]
    assert rec.status is RecommendationStatus.FAILED
    assert rec.error is not None
    taken = [s.provider_id for s in simulator.list_snapshots() if s.volume_id == rows["old"].provider_id]
    assert len(taken) == 1
    assert taken[0] in rec.error
    assert rows["old"].status != "deleted"
    assert rows["old"].provider_id in {v.provider_id for v in simulator.list_volumes()}


def test_storage_to_reclaim_in_the_rollups_and_the_report(session: Session, city: MiniCity, tmp_path: Path) -> None:
    rows = plant_storage(session, city)
    provider = simulator_of(session)
    kept = provider.snapshot_volume(rows["used"].provider_id, "升级前备份")
    volumes.sync_volumes(session, ADMIN, "test-cloud")
    snapshot = session.scalars(select(VolumeSnapshot).where(VolumeSnapshot.provider_id == kept.provider_id)).one()
    snapshot.provider_created_at = utcnow() - timedelta(days=120)
    session.flush()
    service.analyze(session, ADMIN)
    # Per unit: D01 holds three volumes (1000 + 100 + 500 GiB) and frees the idle one and the old snapshot;
    # D02 has no live server, only its orphaned volume, and is in the roll-up for it.
    units = {r.key: r for r in service.rollup(session, ADMIN, by="unit")}
    d01, d02 = units["990100-D01"], units["990100-D02"]
    assert (d01.volumes, d01.storage_gib, d01.reclaimable_storage_gib) == (3, 1600, 1000 + 500)
    assert (d02.volumes, d02.storage_gib, d02.reclaimable_storage_gib) == (1, 200, 200)
    assert d01.recommendations >= 2
    assert d02.recommendations == 1
    assert d02.saving_month > 0
    # Per cloud: everything is on the one cloud. Per system: the snapshot counts where its volume does.
    clouds = service.rollup(session, ADMIN, by="cloud")
    assert [(r.key, r.volumes, r.storage_gib, r.reclaimable_storage_gib) for r in clouds] == [
        ("test-cloud", 4, 1800, 1700)]
    systems = {r.name: r for r in service.rollup(session, ADMIN, by="system")}
    assert sum(r.reclaimable_storage_gib for r in systems.values()) == 1700
    # Scoped as today: a department sees its own subtree only, storage included.
    dept = service.rollup(session, city.principals["dept"], by="cloud")
    assert [(r.volumes, r.reclaimable_storage_gib) for r in dept] == [(3, 1500)]
    # Executed or dismissed recommendations no longer count as storage to reclaim.
    orphan = _volume_recs(session)["社保影像"]
    service.notify(session, ADMIN, [orphan.id], grace_days=0, now=utcnow())
    service.execute(session, ADMIN, rec_ids=[orphan.id], now=utcnow() + timedelta(minutes=1))
    after = {r.key: r for r in service.rollup(session, ADMIN, by="unit")}
    assert after["990100-D01"].reclaimable_storage_gib == 1500
    assert "990100-D02" not in after or after["990100-D02"].reclaimable_storage_gib == 0
    # The report: the figure, the per-unit CSV and the purchase-planning table carry storage.
    built = report.build_report(session, ADMIN)
    report.write_report(built, tmp_path)
    html = (tmp_path / "reclaim-report.html").read_text(encoding="utf-8")
    assert 'id="fig-storage"><b>1,500</b>' in html
    with (tmp_path / "reclaim-units.csv").open(encoding="utf-8-sig", newline="") as fh:
        by_unit = {row["key"]: row for row in csv.DictReader(fh)}
    assert by_unit["990100-D01"]["reclaimable_storage_gib"] == "1500"
