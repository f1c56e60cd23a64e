"""The demo city's government cloud: four provider clouds managed as one, with department quotas.

Sized on the real city: the city cloud centre has 32 compute nodes offering about
6,045 vCPU (with 1.5× CPU over-commit) and 20,000 GB of RAM; two carrier clouds and a
container cloud stand beside it (simulator-backed in the demo).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloudctl.compute import service
from cloudctl.compute.models import CloudKind, UnitProject
from cloudctl.compute.providers import provider_for, simulator_store
from cloudctl.compute.providers.base import ServerInfo, ServerSpec
from cloudctl.compute.providers.simulator import SimulatorProvider
from cloudctl.compute.provisioning import record_servers, submit_request
from cloudctl.compute.schemas import CloudCreate, QuotaSet, RequestCreate
from cloudctl.core.auth import Principal
from cloudctl.core.models import utcnow
from cloudctl.demo.city import DemoCity
from cloudctl.demo.seed import demo_step
from cloudctl.org.models import BusinessSystem

GB = 1024

# name, display name, hosts: (count, threads, RAM GB), CPU over-commit
CLOUDS: tuple[tuple[str, str, tuple[tuple[int, int, int], ...], float], ...] = (
    # 30 × 126 + 2 × 125 = 4,030 threads × 1.5 = 6,045 vCPU; (629 − 4 reserved) × 32 = 20,000 GB.
    ("city-cloud", "市政务云中心", ((30, 126, 629), (2, 125, 629)), 1.5),
    ("unicom-cloud", "联通政务云", ((8, 64, 516),), 2.0),
    ("mobile-cloud", "移动政务云", ((6, 64, 516),), 2.0),
    ("container-cloud", "政务容器云", ((4, 96, 388),), 1.0),
)

FLAVORS = (("c1m2", 1, 2), ("c2m4", 2, 4), ("c2m8", 2, 8), ("c4m8", 4, 8), ("c4m16", 4, 16), ("c8m16", 8, 16),
           ("c8m32", 8, 32), ("c16m32", 16, 32), ("c16m64", 16, 64), ("c32m64", 32, 64))


@demo_step("compute")
def seed_compute(session: Session, principal: Principal, city: DemoCity, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    hosts = 0
    # The simulator's side of the whole step in one transaction of its store.
    with simulator_store().batch():
        for name, display_name, groups, cpu_ratio in CLOUDS:
            cloud = service.create_cloud(session, principal, CloudCreate(
                name=name, display_name=display_name, kind=CloudKind.SIMULATOR, region="RegionOne",
                cpu_allocation_ratio=cpu_ratio, ram_allocation_ratio=1.0, default_image="kylin-v10-sp3",
                default_network="gov-public"))
            provider = provider_for(cloud)
            assert isinstance(provider, SimulatorProvider)
            provider.reset()
            for group, (count, threads, ram_gb) in enumerate(groups):
                for i in range(count):
                    provider.add_host(f"{name}-cn{group}{i + 1:02d}", vcpus=threads, ram_mb=ram_gb * GB,
                                      disk_gb=7680)
                    hosts += 1
            for flavor, vcpus, ram_gb in FLAVORS:
                provider.add_flavor(flavor, vcpus=vcpus, ram_mb=ram_gb * GB, disk_gb=40 if vcpus < 8 else 100)
            service.sync_flavors(session, principal, name)

        plan = _plan_servers(session, rng)
        # Every department's quota on the city cloud covers its VMs with room to grow; a few also hold
        # a quota on a carrier cloud.
        flavors = {name: (vcpus, ram_gb) for name, vcpus, ram_gb in FLAVORS}
        quotas: list[tuple[str, str, QuotaSet]] = []
        for code in city.departments:
            mine = [flavors[f] for system, planned in plan if system.unit.code == code for f in planned]
            vcpus, ram_gb = sum(v for v, _ in mine), sum(r for _, r in mine)
            quotas.append((code, "city-cloud", QuotaSet(
                vcpus=_round_up(vcpus * 1.3 + 16, 16), ram_gib=_round_up(ram_gb * 1.3 + 32, 32),
                disk_gib=_round_up(len(mine) * 100 * 1.3 + 500, 500), instances=len(mine) + 8)))
            if rng.random() < 0.2:
                carrier = rng.choice(("unicom-cloud", "mobile-cloud"))
                quotas.append((code, carrier, QuotaSet(vcpus=32, ram_gib=64, disk_gib=1000, instances=8)))
        service.set_quotas(session, principal, quotas)
        servers = _seed_servers(session, principal, plan, rng)
        pending = _seed_pending_requests(session, city, rng)
        for name, *_ in CLOUDS:
            service.capacity(session, principal, name)  # the snapshot the exporter reads
        history = _seed_capacity_history(session, rng)
        volumes = _seed_volumes(session, principal, rng)
    return {"clouds": len(CLOUDS), "hosts": hosts, "quotas": len(quotas), "servers": servers,
            "pending_requests": pending, "capacity_months": history, "volumes": volumes}


HISTORY_MONTHS = 24


def _seed_capacity_history(session: Session, rng: random.Random) -> int:
    """Two years of monthly capacity before this month, as the snapshots would have kept them: the same hardware,
    allocations growing towards today's as systems moved onto the cloud (存量系统逐步上云), with some noise."""
    from cloudctl.compute.models import CapacityMonth

    rows = 0
    current = list(session.scalars(select(CapacityMonth)))
    for now in current:
        year, month = (int(part) for part in now.month.split("-"))
        # Where the cloud stood two years ago: a little over half of today's allocations.
        start = 0.55 + 0.1 * rng.random()
        for back in range(HISTORY_MONTHS, 0, -1):
            y, m = divmod(year * 12 + month - 1 - back, 12)
            share = start + (1 - start) * (HISTORY_MONTHS - back) / HISTORY_MONTHS
            share *= 1 + rng.uniform(-0.02, 0.02)
            session.add(CapacityMonth(
                cloud_id=now.cloud_id, resource=now.resource, month=f"{y:04d}-{m + 1:02d}", total=now.total,
                reserved=now.reserved, allocation_ratio=now.allocation_ratio, allocated=int(now.allocated * share),
                promised=int(now.promised * min(1.0, share * 1.05)),
                taken_at=datetime(y, m + 1, 28, tzinfo=UTC)))
            rows += 1
    session.flush()
    return rows


# Flavors VMs of a government system usually get, weighted: mostly small application servers.
VM_FLAVORS = (("c2m4", 30), ("c4m8", 30), ("c4m16", 15), ("c8m16", 12), ("c8m32", 8), ("c16m32", 4),
              ("c16m64", 1))
N_SERVERS = 510


def _round_up(value: float, step: int) -> int:
    return int(-(-value // step) * step)


def _plan_servers(session: Session, rng: random.Random) -> list[tuple[BusinessSystem, list[str]]]:
    """510 VMs over the 70 systems: at least three each, more where the MLPS level is higher."""
    systems = session.scalars(select(BusinessSystem).order_by(BusinessSystem.id)).all()
    names, weights = zip(*VM_FLAVORS, strict=True)
    per_system = [3] * len(systems)
    extra = rng.choices(range(len(systems)), weights=[s.mlps_level for s in systems], k=N_SERVERS - 3 * len(systems))
    for index in extra:
        per_system[index] += 1
    return [(system, rng.choices(names, weights=weights, k=count))
            for system, count in zip(systems, per_system, strict=True)]


def _seed_servers(session: Session, principal: Principal, plan: list[tuple[BusinessSystem, list[str]]],
                  rng: random.Random) -> int:
    """Build the planned VMs on the city cloud, as if provisioned over the years.

    Some are stopped (SHUTOFF) and forgotten: the zombies the reclaim work will find.
    """
    cloud = service.get_cloud(session, principal, "city-cloud")
    # These servers were built long ago: no BUILD phase to wait through.
    provider = SimulatorProvider(simulator_store(), cloud.name, cpu_allocation_ratio=cloud.cpu_allocation_ratio,
                                 ram_allocation_ratio=cloud.ram_allocation_ratio, build_seconds=0)
    projects = service.ensure_projects(session, [(unit, cloud) for unit in dict.fromkeys(s.unit for s, _ in plan)],
                                       lambda _: provider)
    wanted: list[tuple[str, ServerSpec]] = []
    owners: list[tuple[int, int]] = []
    for system, flavors in plan:
        unit = system.unit
        for n, flavor in enumerate(flavors):
            wanted.append((projects[(unit.id, cloud.id)], ServerSpec(
                name=f"{unit.code.lower()}-s{system.id}-{n + 1:02d}", flavor=flavor, tag=f"demo:s{system.id}:{n}")))
            owners.append((unit.id, system.id))
    found: list[tuple[int | None, int | None, int | None, ServerInfo]] = []
    launched: list[datetime] = []
    for (unit_id, system_id), info in zip(owners, provider.create_servers(wanted), strict=True):
        if info.status == "ERROR":
            continue
        if rng.random() < 0.06 and info.status == "ACTIVE":
            info = provider.server_action(info.provider_id, "stop")
        found.append((unit_id, system_id, None, info))
        # Built over the years the city has run its cloud.
        launched.append(utcnow() - timedelta(days=rng.randint(20, 1500)))
    for server, at in zip(record_servers(session, cloud.id, found), launched, strict=True):
        server.launched_at = at
    service.sync_quotas(session, principal, cloud=cloud.name)
    return len(found)


def _seed_pending_requests(session: Session, city: DemoCity, rng: random.Random) -> int:
    """A few requests waiting in the ops queue, submitted by department leaders (so past the leader's step), and
    one of a department user still waiting for its leader (部门负责人审批)."""
    from cloudctl.core.auth import Role
    from cloudctl.org.models import User
    from cloudctl.org.service import principal_for_user

    pending = 0
    # Three that fit their quota but exceed the auto-approval tier, and one larger than what is left; then one
    # that waits for the department's leader.
    sizes = [("c4m16", 3), ("c4m16", 3), ("c8m16", 3), ("c16m64", 6), ("c8m16", 3)]
    chosen = rng.sample(list(city.departments), 4)
    chosen.append(next(code for code in city.departments if code not in chosen))
    for n, (code, (flavor, count)) in enumerate(zip(chosen, sizes, strict=True)):
        role = Role.DEPT_LEADER if n < 4 else Role.DEPT
        user = session.scalar(select(User).where(User.unit.has(code=code), User.role == role))
        system = session.scalar(select(BusinessSystem).where(BusinessSystem.unit.has(code=code)))
        if user is None or system is None:
            continue
        request = submit_request(session, principal_for_user(user), RequestCreate.model_validate({
            "business_system": system.id, "cloud": "city-cloud",
            "justification": f"{system.name}业务量增长，申请扩容应用服务器",
            "items": [{"flavor": flavor, "count": count}]}))
        pending += request.status.value == "submitted"
    return pending


def _seed_volumes(session: Session, principal: Principal, rng: random.Random) -> int:
    """Data volumes (云硬盘) on the city cloud: about a third of the servers have one, and some volumes were left
    behind unattached (the server moved on, a test that ended), for days or months: storage for reclaim to find."""
    from cloudctl.compute import volumes as inventory
    from cloudctl.compute.models import Server, Volume

    cloud = service.get_cloud(session, principal, "city-cloud")
    provider = provider_for(cloud)
    assert isinstance(provider, SimulatorProvider)
    servers = list(session.scalars(select(Server).where(Server.cloud_id == cloud.id, Server.status != "DELETED")
                                   .order_by(Server.id)))
    projects = dict(session.execute(select(UnitProject.unit_id, UnitProject.project_id)
                                    .where(UnitProject.cloud_id == cloud.id)).all())
    made = 0
    left: list[str] = []
    for server in servers:
        if server.unit_id is None or rng.random() > 0.35:
            continue
        kind = rng.choice(("ssd", "ssd", "hdd"))
        volume = provider.create_volume(projects[server.unit_id], f"{server.name}-data", kind,
                                        rng.choice((100, 200, 500, 1000)))
        made += 1
        if rng.random() < 0.1:
            left.append(volume.provider_id)  # never attached, or its server has moved on
            continue
        provider.attach_volume(volume.provider_id, server.provider_id)
    inventory.sync_volumes(session, principal, cloud.name)
    # Volumes take disk quota: a unit whose disk quota they outgrew is given room again, as ops would.
    short = [(q.unit_code, cloud.name, QuotaSet(disk_gib=_round_up(q.used_disk_gb * 1.3, 500)))
             for q in service.sync_quotas(session, principal, cloud=cloud.name)
             if q.limit_disk_gb is not None and q.used_disk_gb > q.limit_disk_gb * 0.8]
    if short:
        service.set_quotas(session, principal, short)
    now = utcnow()
    for row in session.scalars(select(Volume).where(Volume.provider_id.in_(left)).order_by(Volume.id)):
        row.detached_since = now - timedelta(days=rng.randint(3, 240))
    session.flush()
    return made
