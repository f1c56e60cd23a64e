"""The rules of the government cloud: the cloud registry, flavor catalogue, quotas and capacity.

Quotas live in two places on purpose: the provider enforces them at create time, and
cloudctl keeps limits, synced usage and *reservations*, so an approved request holds
its share before the provider has built anything.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.orm import Session

from cloudctl.compute.models import CapacityMonth, CapacitySnapshot, Cloud, Flavor, Quota, UnitProject
from cloudctl.compute.providers import provider_for
from cloudctl.compute.providers.base import CloudProvider, QuotaLimits, ResourceCapacity
from cloudctl.compute.schemas import CapacityRow, CloudCreate, CloudUpdate, QuotaSet
from cloudctl.core import audit, read
from cloudctl.core.auth import Principal, authorize
from cloudctl.core.errors import Conflict, InvalidInput, NotFound
from cloudctl.core.models import beijing_today, utcnow
from cloudctl.org.models import Unit
from cloudctl.org.service import get_unit, under

__all__ = [
    "Ask",
    "capacity",
    "capacity_history",
    "create_cloud",
    "ensure_project",
    "ensure_projects",
    "get_cloud",
    "get_quota",
    "list_clouds",
    "list_flavors",
    "list_quotas",
    "release",
    "reserve",
    "set_quota",
    "set_quotas",
    "sync_flavors",
    "sync_quota",
    "sync_quotas",
    "update_cloud",
]

CLOUD_AUDIT_FIELDS = ("name", "display_name", "kind", "connection", "region", "cpu_allocation_ratio",
                      "ram_allocation_ratio", "default_image", "default_network", "enabled")
QUOTA_AUDIT_FIELDS = ("limit_vcpus", "limit_ram_mb", "limit_disk_gb", "limit_instances")

# Tests swap the provider lookup; everything else goes through provider_for.
ProviderLookup = Callable[[Cloud], CloudProvider]


# ---------------------------------------------------------------- clouds


def get_cloud(session: Session, principal: Principal, name: str, *, field_name: str = "cloud") -> Cloud:
    authorize(principal, "compute.cloud:read")
    return read.one(session, select(Cloud).where(Cloud.name == name), missing=f"no cloud named {name!r}",
                    field=field_name)


def cloud_filter(session: Session, principal: Principal, name: str) -> Cloud:
    """The cloud a ``cloud`` filter names; an unknown name is refused with the names there are (a filter that
    matches nothing because it was misspelt must not read as "none of these")."""
    found = session.scalar(select(Cloud).where(Cloud.name == name))
    if found is None:
        names = ", ".join(session.scalars(select(Cloud.name).order_by(Cloud.name)))
        raise InvalidInput(f"no cloud named {name!r}; one of: {names or 'none registered'}", field="cloud")
    return found


def list_clouds(session: Session, principal: Principal, *, enabled: bool | None = None) -> list[Cloud]:
    authorize(principal, "compute.cloud:read")
    query = select(Cloud).order_by(Cloud.name)
    if enabled is not None:
        query = query.where(Cloud.enabled.is_(enabled))
    return list(session.scalars(query))


def create_cloud(session: Session, principal: Principal, data: CloudCreate) -> Cloud:
    authorize(principal, "compute.cloud:write")
    if session.scalar(select(Cloud.id).where(Cloud.name == data.name)) is not None:
        raise Conflict(f"a cloud named {data.name!r} already exists", field="name")
    cloud = Cloud(**data.model_dump())
    session.add(cloud)
    session.flush()
    audit.record(session, principal, action="create", entity="cloud", entity_id=cloud.name,
                 after=audit.snapshot(cloud, CLOUD_AUDIT_FIELDS))
    return cloud


def update_cloud(session: Session, principal: Principal, name: str, data: CloudUpdate) -> Cloud:
    authorize(principal, "compute.cloud:write")
    cloud = get_cloud(session, principal, name)
    before = audit.snapshot(cloud, CLOUD_AUDIT_FIELDS)
    for key, value in data.model_dump(exclude_unset=True).items():
        if value is None and key in ("display_name", "cpu_allocation_ratio", "ram_allocation_ratio", "enabled"):
            raise InvalidInput("must not be null", field=key)
        setattr(cloud, key, value)
    session.flush()
    audit.record(session, principal, action="update", entity="cloud", entity_id=cloud.name, before=before,
                 after=audit.snapshot(cloud, CLOUD_AUDIT_FIELDS))
    return cloud


# ---------------------------------------------------------------- flavors


def sync_flavors(session: Session, principal: Principal, name: str,
                 *, providers: ProviderLookup = provider_for) -> tuple[int, int, int]:
    """Bring the catalogue in line with the provider: (added, changed, removed)."""
    authorize(principal, "compute.cloud:write")
    cloud = get_cloud(session, principal, name)
    offered = {f.name: f for f in providers(cloud).list_flavors()}
    known = {f.name: f for f in session.scalars(select(Flavor).where(Flavor.cloud_id == cloud.id))}
    added = changed = 0
    for flavor_name, spec in offered.items():
        row = known.get(flavor_name)
        if row is None:
            session.add(Flavor(cloud_id=cloud.id, name=spec.name, vcpus=spec.vcpus, ram_mb=spec.ram_mb,
                               disk_gb=spec.disk_gb, provider_id=spec.provider_id))
            added += 1
        elif (row.vcpus, row.ram_mb, row.disk_gb, row.provider_id) != (spec.vcpus, spec.ram_mb, spec.disk_gb,
                                                                        spec.provider_id):
            row.vcpus, row.ram_mb, row.disk_gb = spec.vcpus, spec.ram_mb, spec.disk_gb
            row.provider_id = spec.provider_id
            changed += 1
    gone = [n for n in known if n not in offered]
    if gone:
        session.execute(delete(Flavor).where(Flavor.cloud_id == cloud.id, Flavor.name.in_(gone)))
    session.flush()
    return added, changed, len(gone)


def list_flavors(session: Session, principal: Principal, name: str) -> list[Flavor]:
    cloud = get_cloud(session, principal, name)
    return list(session.scalars(select(Flavor).where(Flavor.cloud_id == cloud.id)
                                .order_by(Flavor.vcpus, Flavor.ram_mb, Flavor.name)))


# ---------------------------------------------------------------- quotas


def ensure_project(session: Session, unit: Unit, cloud: Cloud, provider: CloudProvider) -> str:
    """The unit's project on the cloud, created at the provider on first use and remembered."""
    return ensure_projects(session, [(unit, cloud)], lambda _: provider)[(unit.id, cloud.id)]


def ensure_projects(session: Session, pairs: Sequence[tuple[Unit, Cloud]],
                    provider_of: Callable[[Cloud], CloudProvider]) -> dict[tuple[int, int], str]:
    """:func:`ensure_project` for many (unit, cloud) pairs, in order: (unit id, cloud id) → project id."""
    unit_ids = sorted({unit.id for unit, _ in pairs})
    cloud_ids = sorted({cloud.id for _, cloud in pairs})
    projects: dict[tuple[int, int], str] = {}
    for start in range(0, len(unit_ids), 500):
        projects.update(((unit_id, cloud_id), project_id) for unit_id, cloud_id, project_id in session.execute(
            select(UnitProject.unit_id, UnitProject.cloud_id, UnitProject.project_id)
            .where(UnitProject.cloud_id.in_(cloud_ids), UnitProject.unit_id.in_(unit_ids[start:start + 500]))))
    added = False
    for unit, cloud in pairs:
        if (unit.id, cloud.id) not in projects:
            project_id = projects[(unit.id, cloud.id)] = provider_of(cloud).ensure_project(unit.code, unit.name)
            session.add(UnitProject(unit_id=unit.id, cloud_id=cloud.id, project_id=project_id))
            added = True
    if added:
        session.flush()
    return projects


def _quota_rows(session: Session, pairs: Sequence[tuple[Unit, Cloud]]) -> dict[tuple[int, int], Quota]:
    """The quota rows of these (unit, cloud) pairs, created (no limits) where there is none yet."""
    unit_ids = sorted({unit.id for unit, _ in pairs})
    cloud_ids = sorted({cloud.id for _, cloud in pairs})
    rows: dict[tuple[int, int], Quota] = {}
    for start in range(0, len(unit_ids), 500):
        rows.update(((q.unit_id, q.cloud_id), q) for q in session.scalars(select(Quota).where(
            Quota.cloud_id.in_(cloud_ids), Quota.unit_id.in_(unit_ids[start:start + 500]))))
    added = False
    for unit, cloud in pairs:
        if (unit.id, cloud.id) not in rows:
            rows[(unit.id, cloud.id)] = quota = Quota(unit=unit, unit_id=unit.id, cloud=cloud, cloud_id=cloud.id,
                                                      limit_vcpus=None, limit_ram_mb=None, limit_disk_gb=None,
                                                      limit_instances=None)
            session.add(quota)
            added = True
    if added:
        session.flush()
    return rows


def _units_and_clouds(session: Session, principal: Principal, pairs: Sequence[tuple[str, str]]
                      ) -> list[tuple[Unit, Cloud]]:
    """(unit code, cloud name) pairs as rows, each unit looked up as :func:`get_unit` would (scoped)."""
    authorize(principal, "org.unit:read")
    codes = sorted({code for code, _ in pairs})
    units: dict[str, Unit] = {}
    for start in range(0, len(codes), 500):
        units.update((u.code, u) for u in session.scalars(read.within(
            select(Unit).where(Unit.code.in_(codes[start:start + 500])), principal, unit=Unit.id)))
    clouds: dict[str, Cloud] = {}
    found: list[tuple[Unit, Cloud]] = []
    for code, cloud_name in pairs:
        unit = units.get(code)
        if unit is None:
            raise NotFound(f"no unit with code {code!r}", field="unit")
        if cloud_name not in clouds:
            clouds[cloud_name] = get_cloud(session, principal, cloud_name)
        found.append((unit, clouds[cloud_name]))
    return found


def get_quota(session: Session, principal: Principal, unit_code: str, cloud_name: str) -> Quota:
    authorize(principal, "compute.quota:read")
    unit = get_unit(session, principal, unit_code, field_name="unit")
    cloud = get_cloud(session, principal, cloud_name)
    quota = session.scalar(select(Quota).where(Quota.unit_id == unit.id, Quota.cloud_id == cloud.id))
    if quota is None:
        raise NotFound(f"{unit_code} has no quota on {cloud_name}", field="unit")
    return quota


def list_quotas(
    session: Session, principal: Principal, *, unit: str | None = None, cloud: str | None = None,
    limit: int = 50, offset: int = 0,
) -> tuple[list[Quota], int]:
    authorize(principal, "compute.quota:read")
    query = read.within(select(Quota).join(Quota.unit).join(Quota.cloud), principal, unit=Quota.unit_id)
    if unit is not None:
        query = query.where(under(session, principal, unit, Quota.unit_id))
    if cloud is not None:
        query = query.where(Quota.cloud_id == cloud_filter(session, principal, cloud).id)
    return read.page(session, query, limit=limit, offset=offset, order_by=(Unit.code, Cloud.name))


def set_quota(session: Session, principal: Principal, unit_code: str, cloud_name: str, data: QuotaSet,
              *, providers: ProviderLookup = provider_for) -> Quota:
    """Set limits and push them to the provider. A limit below what is used or reserved is refused."""
    return set_quotas(session, principal, [(unit_code, cloud_name, data)], providers=providers)[0]


def set_quotas(session: Session, principal: Principal, items: Sequence[tuple[str, str, QuotaSet]],
               *, providers: ProviderLookup = provider_for) -> list[Quota]:
    """:func:`set_quota` for many (unit code, cloud name, limits), each audited.

    Every item is checked before any limit is pushed to a provider; then they are pushed in order.
    """
    authorize(principal, "compute.quota:write")
    given_of = [data.model_dump(exclude_unset=True, exclude_none=True) for _, _, data in items]
    if any(not given for given in given_of):
        raise InvalidInput("give at least one of vcpus, ram_gib, disk_gib, instances", field="limits")
    pairs = _units_and_clouds(session, principal, [(code, cloud) for code, cloud, _ in items])
    quotas = _quota_rows(session, pairs)
    wanted_of: list[dict[str, int | None]] = []
    # A quota named twice: the second item starts from the limits the first one sets, as two calls would.
    planned: dict[tuple[int, int], dict[str, int | None]] = {}
    for (unit, cloud), given in zip(pairs, given_of, strict=True):
        quota = quotas[(unit.id, cloud.id)]
        now = planned.get((unit.id, cloud.id)) or {"vcpus": quota.limit_vcpus, "ram_mb": quota.limit_ram_mb,
                                                   "disk_gb": quota.limit_disk_gb,
                                                   "instances": quota.limit_instances}
        wanted = planned[(unit.id, cloud.id)] = {
            "vcpus": given.get("vcpus", now["vcpus"]),
            "ram_mb": given["ram_gib"] * 1024 if "ram_gib" in given else now["ram_mb"],
            "disk_gb": given.get("disk_gib", now["disk_gb"]),
            "instances": given.get("instances", now["instances"]),
        }
        for resource, limit in wanted.items():
            held = getattr(quota, f"used_{resource}") + getattr(quota, f"reserved_{resource}")
            if limit is not None and limit < held:
                field, amount = _edge(resource, held)
                raise Conflict(f"{unit.code} already uses or has reserved {amount} on {cloud.name}; the limit "
                               f"cannot go below it", field=field)
        wanted_of.append(wanted)
    provider_of = _provider_cache(providers)
    projects = ensure_projects(session, pairs, provider_of)
    done: list[Quota] = []
    for (unit, cloud), wanted in zip(pairs, wanted_of, strict=True):
        quota = quotas[(unit.id, cloud.id)]
        before = audit.snapshot(quota, QUOTA_AUDIT_FIELDS)
        # The provider refuses a limit under its own usage (never forced, unlike set_compute_quotas).
        provider_of(cloud).set_quota(projects[(unit.id, cloud.id)], QuotaLimits(
            wanted["vcpus"], wanted["ram_mb"], wanted["disk_gb"], wanted["instances"]))
        quota.limit_vcpus, quota.limit_ram_mb = wanted["vcpus"], wanted["ram_mb"]
        quota.limit_disk_gb, quota.limit_instances = wanted["disk_gb"], wanted["instances"]
        audit.record(session, principal, action="update", entity="quota", entity_id=f"{unit.code}@{cloud.name}",
                     before=before, after=audit.snapshot(quota, QUOTA_AUDIT_FIELDS), unit_id=unit.id)
        done.append(quota)
    session.flush()
    return done


def sync_quota(session: Session, principal: Principal, unit_code: str, cloud_name: str,
               *, providers: ProviderLookup = provider_for) -> Quota:
    """Read limits and usage back from the provider (someone may have changed them there)."""
    authorize(principal, "compute.quota:write")
    return _sync(session, principal, _units_and_clouds(session, principal, [(unit_code, cloud_name)]), providers)[0]


def sync_quotas(session: Session, principal: Principal, *, unit: str | None = None, cloud: str | None = None,
                providers: ProviderLookup = provider_for) -> list[Quota]:
    """Sync every quota cloudctl knows (optionally of one unit or one cloud)."""
    authorize(principal, "compute.quota:write")
    query = select(Quota).join(Quota.unit).join(Quota.cloud).where(Cloud.enabled.is_(True))
    if unit is not None:
        query = query.where(under(session, principal, unit, Quota.unit_id))
    if cloud is not None:
        query = query.where(Cloud.name == cloud)
    return _sync(session, principal, [(q.unit, q.cloud) for q in session.scalars(query.order_by(Unit.code,
                                                                                                Cloud.name))],
                 providers)


def _sync(session: Session, principal: Principal, pairs: Sequence[tuple[Unit, Cloud]],
          providers: ProviderLookup) -> list[Quota]:
    provider_of = _provider_cache(providers)
    projects = ensure_projects(session, pairs, provider_of)
    quotas = _quota_rows(session, pairs)
    done: list[Quota] = []
    for unit, cloud in pairs:
        limits, usage = provider_of(cloud).get_quota(projects[(unit.id, cloud.id)])
        quota = quotas[(unit.id, cloud.id)]
        before = audit.snapshot(quota, QUOTA_AUDIT_FIELDS)
        quota.limit_vcpus, quota.limit_ram_mb = limits.vcpus, limits.ram_mb
        quota.limit_disk_gb, quota.limit_instances = limits.disk_gb, limits.instances
        quota.used_vcpus, quota.used_ram_mb = usage.vcpus, usage.ram_mb
        quota.used_disk_gb, quota.used_instances = usage.disk_gb, usage.instances
        quota.synced_at = utcnow()
        audit.record(session, principal, action="sync", entity="quota", entity_id=f"{unit.code}@{cloud.name}",
                     before=before, after=audit.snapshot(quota, QUOTA_AUDIT_FIELDS), unit_id=unit.id)
        done.append(quota)
    session.flush()
    return done


def _provider_cache(providers: ProviderLookup) -> Callable[[Cloud], CloudProvider]:
    """One provider adapter per cloud for the length of a call (an adapter may hold a connection)."""
    made: dict[int, CloudProvider] = {}

    def provider_of(cloud: Cloud) -> CloudProvider:
        if cloud.id not in made:
            made[cloud.id] = providers(cloud)
        return made[cloud.id]

    return provider_of


@dataclass(frozen=True, slots=True)
class Ask:
    """What a request holds against a quota."""

    vcpus: int = 0
    ram_mb: int = 0
    disk_gb: int = 0
    instances: int = 0


def reserve(session: Session, quota_id: int, ask: Ask) -> None:
    """Hold ``ask`` against the quota, or raise Conflict. One conditional UPDATE: safe under concurrency.

    The WHERE clause re-reads used and reserved at write time, so two approvals racing for
    the last vCPUs cannot both succeed, on SQLite (one writer) or PostgreSQL (row lock).
    """
    fits = []
    for resource in ("vcpus", "ram_mb", "disk_gb", "instances"):
        limit = getattr(Quota, f"limit_{resource}")
        used = getattr(Quota, f"used_{resource}")
        reserved = getattr(Quota, f"reserved_{resource}")
        fits.append(limit.is_(None) | (used + reserved + getattr(ask, resource) <= limit))
    result = session.execute(
        update(Quota).where(Quota.id == quota_id, *fits).values(
            reserved_vcpus=Quota.reserved_vcpus + ask.vcpus,
            reserved_ram_mb=Quota.reserved_ram_mb + ask.ram_mb,
            reserved_disk_gb=Quota.reserved_disk_gb + ask.disk_gb,
            reserved_instances=Quota.reserved_instances + ask.instances,
        ).execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        quota = session.get(Quota, quota_id, populate_existing=True)
        if quota is None:
            raise NotFound(f"no quota {quota_id}", field="quota")
        short = [r for r in ("vcpus", "ram_mb", "disk_gb", "instances")
                 if getattr(quota, f"limit_{r}") is not None and getattr(quota, f"used_{r}")
                 + getattr(quota, f"reserved_{r}") + getattr(ask, r) > getattr(quota, f"limit_{r}")]
        detail = ", ".join(
            f"{_edge(r, 0)[0]} asks {_edge(r, getattr(ask, r))[1]} with {_edge(r, getattr(quota, f'used_{r}'))[1]} "
            f"used and {_edge(r, getattr(quota, f'reserved_{r}'))[1]} reserved of "
            f"{_edge(r, getattr(quota, f'limit_{r}'))[1]}" for r in short)
        raise Conflict(f"does not fit {quota.unit_code}'s quota on {quota.cloud_name}: {detail}",
                       field=_edge(short[0], 0)[0] if short else "quota")
    session.expire_all()


def _edge(resource: str, amount: int) -> tuple[str, str]:
    """A quota column's resource and amount as people (and every option and field) name them: ``ram_gib``, "640 GiB"
    (the column counts MiB), ``vcpus``, "12 vCPU"."""
    if resource == "ram_mb":
        return "ram_gib", f"{amount / 1024:g} GiB"
    if resource == "disk_gb":
        return "disk_gib", f"{amount} GiB"
    return resource, f"{amount} {'vCPU' if resource == 'vcpus' else 'instances'}"


def release(session: Session, quota_id: int, ask: Ask) -> None:
    """Give back a reservation (provisioned, failed or cancelled). Never goes below zero."""
    session.execute(
        update(Quota).where(Quota.id == quota_id).values(
            reserved_vcpus=floor0(session, Quota.reserved_vcpus - ask.vcpus),
            reserved_ram_mb=floor0(session, Quota.reserved_ram_mb - ask.ram_mb),
            reserved_disk_gb=floor0(session, Quota.reserved_disk_gb - ask.disk_gb),
            reserved_instances=floor0(session, Quota.reserved_instances - ask.instances),
        ).execution_options(synchronize_session=False)
    )
    session.expire_all()


def consume(session: Session, quota_id: int, ask: Ask) -> None:
    """A reservation became a running VM: move it from reserved to used in one statement, so there is no moment
    (until the next sync reads the cloud's own count) in which the quota looks free and a concurrent request is
    approved into room already taken. A sync then sets used from the cloud; counting high meanwhile errs on the
    safe side."""
    session.execute(
        update(Quota).where(Quota.id == quota_id).values(
            reserved_vcpus=floor0(session, Quota.reserved_vcpus - ask.vcpus),
            reserved_ram_mb=floor0(session, Quota.reserved_ram_mb - ask.ram_mb),
            reserved_disk_gb=floor0(session, Quota.reserved_disk_gb - ask.disk_gb),
            reserved_instances=floor0(session, Quota.reserved_instances - ask.instances),
            used_vcpus=Quota.used_vcpus + ask.vcpus,
            used_ram_mb=Quota.used_ram_mb + ask.ram_mb,
            used_disk_gb=Quota.used_disk_gb + ask.disk_gb,
            used_instances=Quota.used_instances + ask.instances,
        ).execution_options(synchronize_session=False)
    )
    session.expire_all()


def floor0(session: Session, expr: ColumnElement[int]) -> ColumnElement[int]:
    # SQLite's two-argument max() is PostgreSQL's greatest().
    name = session.get_bind().dialect.name
    return func.max(expr, 0) if name == "sqlite" else func.greatest(expr, 0)


# ---------------------------------------------------------------- capacity


def capacity(session: Session, principal: Principal, name: str,
             *, providers: ProviderLookup = provider_for) -> list[CapacityRow]:
    """Per resource: hardware capacity with over-commit, what quotas promise (allocated), what runs (used)."""
    authorize(principal, "compute.capacity:read")
    cloud = get_cloud(session, principal, name)
    promised = session.execute(
        select(func.coalesce(func.sum(Quota.limit_vcpus), 0), func.coalesce(func.sum(Quota.limit_ram_mb), 0),
               func.coalesce(func.sum(Quota.limit_disk_gb), 0)).where(Quota.cloud_id == cloud.id)
    ).one()
    allocated = {"vcpus": int(promised[0] or 0), "ram_mb": int(promised[1] or 0), "disk_gb": int(promised[2] or 0)}
    rows = []
    snapshots = {s.resource: s for s in session.scalars(select(CapacitySnapshot).where(
        CapacitySnapshot.cloud_id == cloud.id))}
    for res in providers(cloud).capacity():
        usable = res.usable
        # Kept for the exporter, which must not call a provider at scrape time.
        snapshot = snapshots.get(res.resource) or CapacitySnapshot(cloud_id=cloud.id, resource=res.resource)
        snapshot.total, snapshot.reserved, snapshot.allocation_ratio = res.total, res.reserved, res.allocation_ratio
        snapshot.used, snapshot.taken_at = res.used, utcnow()
        session.add(snapshot)
        _record_month(session, cloud.id, res, allocated.get(res.resource, 0), snapshot.taken_at)
        # The clouds count RAM in MiB; people (and every edge of cloudctl) in GiB.
        resource, unit, scale = _EDGE_RESOURCES[res.resource]
        rows.append(CapacityRow(
            cloud=cloud.name, resource=resource, unit=unit, total=res.total * scale, reserved=res.reserved * scale,
            allocation_ratio=res.allocation_ratio, capacity=usable * scale,
            allocated=allocated.get(res.resource, 0) * scale, used=res.used * scale, headroom=res.headroom * scale,
            allocated_ratio=round(allocated.get(res.resource, 0) / usable, 4) if usable else None,
            used_ratio=round(res.used / usable, 4) if usable else None,
        ))
    return rows


def _record_month(session: Session, cloud_id: int, res: ResourceCapacity, promised: int, at: datetime) -> None:
    """Keep the month's history row (one per cloud, resource and Beijing month) at the latest snapshot."""
    month = beijing_today(at).strftime("%Y-%m")
    row = session.scalar(select(CapacityMonth).where(CapacityMonth.cloud_id == cloud_id,
                                                     CapacityMonth.resource == res.resource,
                                                     CapacityMonth.month == month))
    if row is None:
        row = CapacityMonth(cloud_id=cloud_id, resource=res.resource, month=month)
        session.add(row)
    row.total, row.reserved, row.allocation_ratio = res.total, res.reserved, res.allocation_ratio
    row.allocated, row.promised, row.taken_at = res.used, promised, at


def capacity_history(session: Session, principal: Principal, name: str) -> list[CapacityMonth]:
    """The cloud's monthly capacity history, oldest first, every resource."""
    authorize(principal, "compute.capacity:read")
    cloud = get_cloud(session, principal, name)
    return list(session.scalars(select(CapacityMonth).where(CapacityMonth.cloud_id == cloud.id)
                                .order_by(CapacityMonth.month, CapacityMonth.resource)))


_EDGE_RESOURCES: dict[str, tuple[Literal["vcpus", "ram", "disk"], Literal["vCPU", "GiB"], float]] = {
    "vcpus": ("vcpus", "vCPU", 1), "ram_mb": ("ram", "GiB", 1 / 1024), "disk_gb": ("disk", "GiB", 1)}
