"""Small, explicit builders of records for tests, and a miniature city to test scoping on."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloudctl.core.auth import Principal, Role, system_principal
from cloudctl.org import service
from cloudctl.org.models import BusinessSystem, Unit, UnitKind, User
from cloudctl.org.schemas import BusinessSystemCreate, UnitCreate, UserCreate

if TYPE_CHECKING:
    from cloudctl.compute.models import Server
    from cloudctl.compute.providers.simulator import SimulatorProvider

ADMIN = system_principal("test-admin", via="cli")


def make_unit(session: Session, code: str, name: str, kind: UnitKind, parent: str | None = None,
              **contacts: str) -> Unit:
    return service.create_unit(session, ADMIN, UnitCreate(code=code, name=name, kind=kind, parent=parent,
                                                           **contacts))


def make_system(session: Session, unit_code: str, name: str, mlps_level: int = 2) -> BusinessSystem:
    return service.create_system(session, ADMIN, BusinessSystemCreate(unit_code=unit_code, name=name,
                                                                       mlps_level=mlps_level))


def make_user(session: Session, username: str, role: Role, unit: str | None = None) -> User:
    return service.create_user(session, ADMIN, UserCreate(username=username, role=role, unit=unit))


def make_officers(session: Session, *names: str, role: Role = Role.DUTY) -> dict[str, User]:
    """Duty officers a roster may name, by display name (logins officer-1, officer-2, … unless taken)."""
    taken = {u for (u,) in session.execute(select(User.username))}
    out: dict[str, User] = {}
    for name in names:
        login = next(f"officer-{n}" for n in range(1, 1000) if f"officer-{n}" not in taken)
        taken.add(login)
        out[name] = service.create_user(session, ADMIN, UserCreate(username=login, role=role, display_name=name))
    return out


@dataclass
class MiniCity:
    """A city with two departments, a county with a town and a village, a user and a token per role.

    ``dept`` is bound to 市公安局 (D01); ``other`` names records of 市人社局 (D02),
    which the dept user must never see.
    """

    principals: dict[str, Principal] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    systems: dict[str, int] = field(default_factory=dict)


def make_cloud(session: Session, name: str = "test-cloud") -> None:
    """A small simulator cloud with one host and two flavors, its catalogue synced."""
    from cloudctl.compute import service as compute
    from cloudctl.compute.models import CloudKind
    from cloudctl.compute.providers import provider_for
    from cloudctl.compute.providers.simulator import SimulatorProvider
    from cloudctl.compute.schemas import CloudCreate

    cloud = compute.create_cloud(session, ADMIN, CloudCreate(name=name, display_name="测试政务云",
                                                             kind=CloudKind.SIMULATOR, cpu_allocation_ratio=2.0))
    provider = provider_for(cloud)
    assert isinstance(provider, SimulatorProvider)
    provider.add_host("cn01", vcpus=64, ram_mb=524288, disk_gb=8000)
    provider.add_flavor("c2m4", vcpus=2, ram_mb=4096, disk_gb=40)
    provider.add_flavor("c4m8", vcpus=4, ram_mb=8192, disk_gb=40)
    compute.sync_flavors(session, ADMIN, name)


def make_server(session: Session, unit_code: str, system_id: int | None, flavor: str = "c4m8",
                cloud_name: str = "test-cloud", name: str | None = None) -> Server:
    """A running VM of the unit, built on the (simulator) cloud and recorded, and counted in the quota."""
    from sqlalchemy import select

    from cloudctl.compute import provisioning
    from cloudctl.compute import service as compute
    from cloudctl.compute.models import Cloud
    from cloudctl.compute.providers import provider_for
    from cloudctl.compute.providers.base import ServerSpec
    from cloudctl.core.errors import NotFound

    cloud = session.scalar(select(Cloud).where(Cloud.name == cloud_name))
    unit = session.scalar(select(Unit).where(Unit.code == unit_code))
    assert cloud is not None
    assert unit is not None
    provider = provider_for(cloud)
    project = compute.ensure_project(session, unit, cloud, provider)
    name = name or f"{unit_code.lower()}-{flavor}-{uuid.uuid4().hex[:6]}"
    info = provider.create_server(project, ServerSpec(name=name, flavor=flavor, tag=f"test:{name}"))
    server = provisioning.record_server(session, cloud.id, unit.id, system_id, None,
                                        provider.get_server(info.provider_id))
    try:
        compute.get_quota(session, ADMIN, unit_code, cloud_name)
    except NotFound:
        return server
    compute.sync_quota(session, ADMIN, unit_code, cloud_name)
    return server


def build_mini_city(session: Session, *, with_cloud: bool = False) -> MiniCity:
    city = MiniCity()
    make_unit(session, "990100", "临江市", UnitKind.CITY)
    make_unit(session, "990100-D01", "市公安局", UnitKind.DEPARTMENT, "990100", contact_name="张伟",
              contact_phone="13800000001")
    make_unit(session, "990100-D02", "市人力资源和社会保障局", UnitKind.DEPARTMENT, "990100")
    make_unit(session, "990100-M001", "市公安局交通警察支队", UnitKind.MUNICIPAL_UNIT, "990100-D01")
    make_unit(session, "990102", "东湖区", UnitKind.COUNTY, "990100")
    make_unit(session, "990102001", "青山镇", UnitKind.TOWN, "990102")
    make_unit(session, "990102001001", "柳树村", UnitKind.VILLAGE, "990102001")
    city.systems["own"] = make_system(session, "990100-D01", "城市视频监控联网平台", 3).id
    city.systems["other"] = make_system(session, "990100-D02", "社会保障卡管理系统", 3).id
    for role in Role:
        unit = "990100-D01" if role in (Role.DEPT, Role.DEPT_LEADER) else None
        user = make_user(session, f"{role.value}-user", role, unit)
        _, secret = service.create_token(session, ADMIN, user.username)
        city.tokens[role.value] = secret
        city.principals[role.value] = service.principal_for_user(user)
    make_user(session, "dept-other", Role.DEPT, "990100-D02")
    if with_cloud:
        from cloudctl.compute import service as compute
        from cloudctl.compute.schemas import QuotaSet

        make_cloud(session)
        for code in ("990100-D01", "990100-D02"):
            compute.set_quota(session, ADMIN, code, "test-cloud", QuotaSet(vcpus=32, ram_gib=64, instances=8))
    session.flush()
    return city


def watched_plan(session: Session, unit_code: str = "990100-D01", terminal: str = "10.65.1.20",
                 days: int = 60) -> None:
    """An extranet plan (an aggregate and a public pool) and the unit's switch, read ``days`` ago and today, each
    time showing one terminal: collection has watched the wire for that long."""
    from datetime import timedelta

    from sqlalchemy import select

    from cloudctl.core.models import utcnow
    from cloudctl.extranet.devices import ArpEntry, DeviceTables
    from cloudctl.extranet.models import NetworkDevice, PrefixStatus, Zone
    from cloudctl.extranet.schemas import AggregateCreate, PrefixCreate
    from cloudctl.extranet.service import collection, ipam

    ipam.create_aggregate(session, ADMIN, AggregateCreate(prefix="10.64.0.0/12"))
    ipam.create_prefix(session, ADMIN, PrefixCreate(prefix="10.64.0.0/14", zone=Zone.PUBLIC,
                                                    status=PrefixStatus.CONTAINER))
    unit = session.scalars(select(Unit).where(Unit.code == unit_code)).one()
    device = NetworkDevice(name=f"{unit_code.lower()}-sw1", host="127.0.0.1", device_type="huawei_vrp",
                           role="access", unit_id=unit.id, zone=Zone.PUBLIC)
    session.add(device)
    session.flush()
    tables = DeviceTables(device.name, arp=[ArpEntry(terminal, "02:00:00:00:01:20", "Vlanif10", 10)], mac=[])
    for days_ago in (days, 0):
        collection.store_tables(session, device, tables, utcnow() - timedelta(days=days_ago))


@dataclass
class ReclaimFleet:
    city: MiniCity
    servers: dict[str, Server]


def simulator_of(session: Session, cloud_name: str = "test-cloud") -> SimulatorProvider:
    from sqlalchemy import select

    from cloudctl.compute.models import Cloud
    from cloudctl.compute.providers import provider_for
    from cloudctl.compute.providers.simulator import SimulatorProvider

    cloud = session.scalar(select(Cloud).where(Cloud.name == cloud_name))
    assert cloud is not None
    provider = provider_for(cloud)
    assert isinstance(provider, SimulatorProvider)
    return provider


def collect_days(session: Session, days: int = 30) -> None:
    """Collect the simulator's telemetry of the last ``days`` finished days."""
    from datetime import timedelta

    from cloudctl.core.models import utcnow
    from cloudctl.reclaim import service as reclaim

    for back in range(days, 0, -1):
        reclaim.collect(session, ADMIN, utcnow().date() - timedelta(days=back))


def build_reclaim_fleet(session: Session) -> ReclaimFleet:
    """The mini city with VMs a reclaim campaign must sort: 市公安局 has one idle, one oversized, one busy,
    one nightly batch and one stopped 40 days ago; 市人社局 has an idle one. 30 days of telemetry collected."""
    from datetime import timedelta

    from cloudctl.compute import provisioning
    from cloudctl.compute import service as compute
    from cloudctl.core.models import utcnow

    city = build_mini_city(session, with_cloud=True)
    provider = simulator_of(session)
    provider.add_flavor("c1m2", vcpus=1, ram_mb=2048, disk_gb=40)
    provider.add_flavor("c8m16", vcpus=8, ram_mb=16384, disk_gb=40)
    compute.sync_flavors(session, ADMIN, "test-cloud")
    long_ago = utcnow() - timedelta(days=60)
    plan = {  # name: (unit, flavor, profile, cpu, mem)
        "idle": ("990100-D01", "c4m8", "idle", 0.02, 0.2),
        "oversized": ("990100-D01", "c8m16", "steady", 0.06, 0.15),
        "busy": ("990100-D01", "c4m8", "busy", 0.7, 0.7),
        "batch": ("990100-D01", "c4m8", "batch", 0.8, 0.7),
        "zombie": ("990100-D01", "c2m4", "office", 0.6, 0.7),
        "other-idle": ("990100-D02", "c2m4", "idle", 0.02, 0.2),
    }
    servers = {}
    for name, (unit, flavor, profile, cpu, mem) in plan.items():
        system = city.systems["own" if unit == "990100-D01" else "other"]
        server = make_server(session, unit, system, flavor, name=f"{unit.lower()}-{name}")
        server.launched_at = long_ago
        provider.set_workload(server.provider_id, profile, cpu=cpu, mem=mem, net=300 if profile == "idle" else 5e5,
                              since=long_ago)
        servers[name] = server
    # Stopped, as if 40 days ago: the zombie.
    provisioning.operate_server(session, ADMIN, servers["zombie"].id, "stop")
    servers["zombie"].status_since = utcnow() - timedelta(days=40)
    collect_days(session)
    return ReclaimFleet(city, servers)


def _storage_project(session: Session, code: str) -> str:
    from cloudctl.compute import service as compute
    from cloudctl.compute.models import Cloud
    from cloudctl.org.models import Unit

    cloud = session.scalars(select(Cloud).where(Cloud.name == "test-cloud")).one()
    unit = session.scalars(select(Unit).where(Unit.code == code)).one()
    return compute.ensure_project(session, unit, cloud, simulator_of(session))


def plant_storage(session: Session, city: MiniCity) -> dict[str, Any]:
    """An old unattached volume, a fresh one, one attached to a live server and one to a deleted server."""
    from cloudctl.compute import volumes
    from cloudctl.compute.models import Volume
    from cloudctl.core.models import utcnow

    provider = simulator_of(session)
    live = make_server(session, "990100-D01", city.systems["own"], "c4m8", name="live-vm")
    gone = make_server(session, "990100-D02", None, "c4m8", name="gone-vm")
    made = {
        "old": provider.create_volume(_storage_project(session, "990100-D01"), "旧数据盘", "hdd", 1000),
        "fresh": provider.create_volume(_storage_project(session, "990100-D01"), "新数据盘", "ssd", 100),
        "used": provider.create_volume(_storage_project(session, "990100-D01"), "视频存储", "ssd", 500),
        "orphan": provider.create_volume(_storage_project(session, "990100-D02"), "社保影像", "ssd", 200),
    }
    provider.attach_volume(made["used"].provider_id, live.provider_id)
    provider.attach_volume(made["orphan"].provider_id, gone.provider_id)
    volumes.sync_volumes(session, ADMIN, "test-cloud")
    rows = {key: session.scalars(select(Volume).where(Volume.provider_id == info.provider_id)).one()
            for key, info in made.items()}
    rows["old"].detached_since = utcnow() - timedelta(days=45)
    gone.status = "DELETED"
    session.flush()
    return rows
