"""Block volumes (云硬盘) in the inventory: synced from each cloud that has block storage, read through the read kit.

A volume belongs to the unit whose project holds it; one whose project maps to no unit is an orphan, as a server
is. A volume that is not attached keeps the moment cloudctl first saw it so (``detached_since``): reclaim looks for
volumes unattached for days, and for volumes whose server is gone.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cloudctl.compute import service as compute
from cloudctl.compute.models import Cloud, Server, UnitProject, Volume, VolumeQuota, VolumeSnapshot
from cloudctl.compute.providers import provider_for
from cloudctl.compute.providers.base import CloudProvider, SnapshotInfo, VolumeInfo, VolumeInventory, VolumeProvider
from cloudctl.core import audit, read
from cloudctl.core.auth import Principal, authorize
from cloudctl.core.errors import Conflict, InvalidInput
from cloudctl.core.models import utcnow
from cloudctl.org import service as org
from cloudctl.org.service import under

__all__ = ["get_volume", "list_volume_quotas", "list_volumes", "record_snapshot", "release_volume_gib",
           "reserve_volume_gib", "set_volume_quota",
           "sync_volume_quotas", "sync_volumes", "volume_inventory", "volume_provider", "volume_types"]

ProviderLookup = Callable[[Cloud], CloudProvider]


def volume_provider(cloud: Cloud, providers: ProviderLookup = provider_for) -> VolumeProvider:
    provider = providers(cloud)
    if not isinstance(provider, VolumeProvider):
        if isinstance(provider, VolumeInventory):
            raise InvalidInput(f"{cloud.name}'s volumes are listed only (inventory); cloudctl does not manage them",
                               field="cloud")
        raise InvalidInput(f"{cloud.name} has no block storage cloudctl can reach", field="cloud")
    return provider


def volume_inventory(cloud: Cloud, providers: ProviderLookup = provider_for) -> VolumeInventory:
    """What a sync reads: any cloud that lists volumes, managed by cloudctl or not."""
    provider = providers(cloud)
    if not isinstance(provider, VolumeInventory):
        raise InvalidInput(f"{cloud.name} has no block storage cloudctl can reach", field="cloud")
    return provider


def volume_types(session: Session, principal: Principal, cloud: Cloud,
                 *, providers: ProviderLookup = provider_for) -> list[str]:
    """The volume types the cloud offers (Cinder's types; the simulator's ssd and hdd)."""
    authorize(principal, "compute.cloud:read")
    return volume_provider(cloud, providers).list_volume_types()


def get_volume(session: Session, principal: Principal, volume_id: int) -> Volume:
    authorize(principal, "compute.server:read")
    query = read.within(select(Volume).where(Volume.id == volume_id), principal, unit=Volume.unit_id)
    return read.one(session, query, missing=f"no volume with id {volume_id}")


def list_volumes(
    session: Session, principal: Principal, *, unit: str | None = None, cloud: str | None = None,
    status: str | None = None, unattached_days: int | None = None, limit: int = 50, offset: int = 0,
) -> tuple[list[Volume], int]:
    """Volumes the principal sees; ``unattached_days``: only those unattached at least that long."""
    authorize(principal, "compute.server:read")
    query = read.within(select(Volume).where(Volume.status != "deleted"), principal, unit=Volume.unit_id)
    if unit is not None:
        query = query.where(under(session, principal, unit, Volume.unit_id))
    if cloud is not None:
        query = query.where(Volume.cloud_id == compute.cloud_filter(session, principal, cloud).id)
    if status is not None:
        query = query.where(Volume.status == status)
    if unattached_days is not None:
        if not 0 <= unattached_days <= 3650:
            raise InvalidInput("between 0 and 3650 days", field="unattached_days")
        query = query.where(Volume.server_id.is_(None),
                            Volume.detached_since <= utcnow() - timedelta(days=unattached_days))
    return read.page(session, query, limit=limit, offset=offset, order_by=(Volume.cloud_id, Volume.name, Volume.id))


def sync_volumes(session: Session, principal: Principal, cloud_name: str,
                 *, providers: ProviderLookup = provider_for) -> dict[str, int]:
    """Read every volume of the cloud into the inventory: owners from their projects, attachments from the
    servers cloudctl knows; volumes gone from the cloud are marked deleted."""
    authorize(principal, "compute.server:sync")
    cloud = compute.get_cloud(session, principal, cloud_name)
    adapter = volume_inventory(cloud, providers)
    projects = dict(session.execute(select(UnitProject.project_id, UnitProject.unit_id)
                                    .where(UnitProject.cloud_id == cloud.id)).all())
    known = {v.provider_id: v for v in session.scalars(select(Volume).where(Volume.cloud_id == cloud.id))}
    found = adapter.list_volumes()
    attached = sorted({v.attached_to for v in found if v.attached_to})
    servers: dict[str, tuple[int, int | None]] = {}
    for start in range(0, len(attached), 500):
        servers.update((p, (i, b)) for p, i, b in session.execute(
            select(Server.provider_id, Server.id, Server.business_system_id).where(
                Server.cloud_id == cloud.id, Server.provider_id.in_(attached[start:start + 500]))))
    now = utcnow()
    counts = {"volumes": 0, "orphans": 0, "unattached": 0, "gone": 0, "snapshots": 0}
    for info in found:
        row = known.get(info.provider_id)
        if row is None:
            row = Volume(cloud_id=cloud.id, provider_id=info.provider_id)
            session.add(row)
        _record(row, info, projects.get(info.project), servers.get(info.attached_to or ""), now)
        counts["volumes"] += 1
        counts["orphans"] += row.unit_id is None
        counts["unattached"] += row.server_id is None
    seen = {v.provider_id for v in found}
    for provider_id, row in known.items():
        if provider_id not in seen and row.status != "deleted":
            row.status, row.server_id = "deleted", None
            counts["gone"] += 1
    session.flush()
    counts["snapshots"] = _sync_snapshots(session, cloud, adapter.list_snapshots(), now)
    return counts


def record_snapshot(session: Session, cloud: Cloud, info: SnapshotInfo, now: datetime) -> VolumeSnapshot:
    """The snapshot in the inventory (added, or brought up to date), owned by the unit of its volume."""
    row = session.scalar(select(VolumeSnapshot).where(VolumeSnapshot.cloud_id == cloud.id,
                                                      VolumeSnapshot.provider_id == info.provider_id))
    volume = session.scalar(select(Volume).where(Volume.cloud_id == cloud.id,
                                                 Volume.provider_id == info.volume_id))
    if row is None:
        row = VolumeSnapshot(cloud_id=cloud.id, provider_id=info.provider_id)
    row.name, row.volume_provider_id, row.size_gib = info.name, info.volume_id, info.size_gib
    row.status, row.provider_created_at, row.synced_at = info.status or "available", info.created_at or now, now
    if volume is not None:
        row.volume_id, row.unit_id = volume.id, volume.unit_id
    session.add(row)
    return row


def _sync_snapshots(session: Session, cloud: Cloud, found: list[SnapshotInfo], now: datetime) -> int:
    for info in found:
        record_snapshot(session, cloud, info, now)
    seen = {s.provider_id for s in found}
    for row in session.scalars(select(VolumeSnapshot).where(VolumeSnapshot.cloud_id == cloud.id,
                                                            VolumeSnapshot.status != "deleted")):
        if row.provider_id not in seen:
            row.status = "deleted"
    session.flush()
    return len(found)


def _record(row: Volume, info: VolumeInfo, unit_id: int | None, server: tuple[int, int | None] | None,
            now: datetime) -> None:
    row.name, row.volume_type, row.size_gib, row.status = info.name, info.volume_type, info.size_gib, info.status
    row.unit_id = unit_id
    if info.attached_to is not None:
        row.detached_since = None
    elif row.detached_since is None:
        # Unattached from its creation, or since the last sync that saw it attached.
        row.detached_since = info.created_at or now
    row.server_id = server[0] if server else None
    if server is not None and server[1] is not None:
        row.business_system_id = server[1]  # a volume serves the system of the server it is attached to
    row.provider_created_at = info.created_at
    row.synced_at = now


# ---------------------------------------------------------------- quotas in GiB per volume type

MAX_VOLUME_QUOTA_GIB = 10_000_000


def list_volume_quotas(session: Session, principal: Principal, *, unit: str | None = None, cloud: str | None = None,
                       limit: int = 50, offset: int = 0) -> tuple[list[VolumeQuota], int]:
    """Block storage quotas per volume type the principal sees (a department: its own subtree)."""
    authorize(principal, "compute.quota:read")
    query = read.within(select(VolumeQuota), principal, unit=VolumeQuota.unit_id)
    if unit is not None:
        query = query.where(under(session, principal, unit, VolumeQuota.unit_id))
    if cloud is not None:
        query = query.where(VolumeQuota.cloud_id == compute.cloud_filter(session, principal, cloud).id)
    return read.page(session, query, limit=limit, offset=offset,
                     order_by=(VolumeQuota.cloud_id, VolumeQuota.unit_id, VolumeQuota.volume_type))


# ---------------------------------------------------------------- reservations, as compute holds VM quota


def reserve_volume_gib(session: Session, unit_id: int, cloud_id: int, asked: dict[str, int]) -> None:
    """Hold ``asked`` (GiB per volume type) against the unit's type quotas on the cloud, or raise Conflict.

    One conditional UPDATE per type: its WHERE re-reads used and reserved at write time, so two approvals racing for
    the last GiB of a type cannot both pass (SQLite has one writer, PostgreSQL locks the row). A type with no quota
    row has no limit and holds nothing. The caller's transaction (or savepoint) undoes the types already held."""
    for volume_type, gib in sorted(asked.items()):
        held = session.execute(
            update(VolumeQuota).where(
                VolumeQuota.unit_id == unit_id, VolumeQuota.cloud_id == cloud_id,
                VolumeQuota.volume_type == volume_type,
                VolumeQuota.limit_gib.is_(None)
                | (VolumeQuota.used_gib + VolumeQuota.reserved_gib + gib <= VolumeQuota.limit_gib))
            .values(reserved_gib=VolumeQuota.reserved_gib + gib).execution_options(synchronize_session=False))
        if held.rowcount == 1:  # type: ignore[attr-defined]
            continue
        quota = session.scalar(select(VolumeQuota).where(
            VolumeQuota.unit_id == unit_id, VolumeQuota.cloud_id == cloud_id, VolumeQuota.volume_type == volume_type)
            .execution_options(populate_existing=True))
        if quota is None:
            continue
        raise Conflict(f"{gib} GiB of {volume_type} does not fit {quota.unit_code}'s quota on {quota.cloud_name}: "
                       f"{quota.used_gib} GiB used and {quota.reserved_gib} GiB reserved of {quota.limit_gib} GiB",
                       field="size_gib")
    session.expire_all()


def release_volume_gib(session: Session, unit_id: int, cloud_id: int, asked: dict[str, int], *,
                       consumed: bool = False) -> None:
    """Give back a reservation (cancelled, failed) or, ``consumed``, move it to used in the same statement (the
    volume is made; the next sync sets used from the cloud's own count). Never below zero."""
    for volume_type, gib in asked.items():
        values = {"reserved_gib": compute.floor0(session, VolumeQuota.reserved_gib - gib)}
        if consumed:
            values["used_gib"] = VolumeQuota.used_gib + gib
        session.execute(update(VolumeQuota).where(
            VolumeQuota.unit_id == unit_id, VolumeQuota.cloud_id == cloud_id, VolumeQuota.volume_type == volume_type)
            .values(**values).execution_options(synchronize_session=False))
    session.expire_all()


def _upsert(session: Session, unit_id: int, cloud_id: int, volume_type: str, limit_gib: int | None, used_gib: int,
            now: datetime) -> VolumeQuota:
    row = session.scalar(select(VolumeQuota).where(VolumeQuota.unit_id == unit_id, VolumeQuota.cloud_id == cloud_id,
                                                   VolumeQuota.volume_type == volume_type))
    if row is None:
        row = VolumeQuota(unit_id=unit_id, cloud_id=cloud_id, volume_type=volume_type)
    row.limit_gib, row.used_gib, row.synced_at = limit_gib, used_gib, now
    session.add(row)
    return row


def set_volume_quota(session: Session, principal: Principal, unit_code: str, cloud_name: str, volume_type: str,
                     limit_gib: int | None, *, providers: ProviderLookup = provider_for) -> VolumeQuota:
    """Set a unit's GiB limit for one volume type on a cloud and push it; None lifts the limit. A limit below what
    the unit's volumes of that type already take is refused, at the provider's word."""
    authorize(principal, "compute.quota:write")
    if limit_gib is not None and not 0 <= limit_gib <= MAX_VOLUME_QUOTA_GIB:
        raise InvalidInput(f"between 0 and {MAX_VOLUME_QUOTA_GIB:,} GiB", field="limit_gib")
    unit = org.get_unit(session, principal, unit_code, field_name="unit")
    cloud = compute.get_cloud(session, principal, cloud_name)
    provider = providers(cloud)
    adapter = volume_provider(cloud, lambda _: provider)
    if volume_type not in adapter.list_volume_types():
        raise InvalidInput(f"{cloud.name} offers no volume type {volume_type!r}", field="volume_type")
    project = compute.ensure_project(session, unit, cloud, provider)
    held = session.scalar(select(VolumeQuota).where(
        VolumeQuota.unit_id == unit.id, VolumeQuota.cloud_id == cloud.id, VolumeQuota.volume_type == volume_type))
    before = held.limit_gib if held is not None else None
    # What approved requests hold is not at the cloud yet: a limit under it would strand them.
    if held is not None and limit_gib is not None and held.used_gib + held.reserved_gib > limit_gib:
        raise Conflict(f"{unit.code} uses {held.used_gib} GiB and has reserved {held.reserved_gib} GiB of "
                       f"{volume_type} on {cloud.name}; the limit cannot go below that", field="limit_gib")
    adapter.set_volume_quota(project, volume_type, limit_gib)
    used = {q.volume_type: q.used_gib for q in adapter.get_volume_quotas(project)}.get(volume_type, 0)
    row = _upsert(session, unit.id, cloud.id, volume_type, limit_gib, used, utcnow())
    session.flush()
    audit.record(session, principal, action="set", entity="volume_quota", entity_id=row.id,
                 before={"limit_gib": before}, after={"volume_type": volume_type, "limit_gib": limit_gib},
                 unit_id=unit.id)
    return row


def sync_volume_quotas(session: Session, principal: Principal, cloud_name: str,
                       *, providers: ProviderLookup = provider_for) -> list[VolumeQuota]:
    """Read every unit's per-type limits and use back from the cloud (someone may have changed them there)."""
    authorize(principal, "compute.quota:write")
    cloud = compute.get_cloud(session, principal, cloud_name)
    adapter = volume_provider(cloud, providers)
    now = utcnow()
    rows = []
    for unit_id, project in session.execute(select(UnitProject.unit_id, UnitProject.project_id)
                                            .where(UnitProject.cloud_id == cloud.id).order_by(UnitProject.unit_id)):
        for quota in adapter.get_volume_quotas(project):
            rows.append(_upsert(session, unit_id, cloud.id, quota.volume_type, quota.limit_gib, quota.used_gib, now))
    session.flush()
    return rows
