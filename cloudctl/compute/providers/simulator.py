"""The simulator cloud: the embedded default, a persistent stand-in for Nova and Placement.

It keeps its own store, as a real cloud keeps its own database: a change made in the
simulator survives a rollback of cloudctl's transaction, which is what makes
idempotency tags and reconciliation testable. Its rules follow Nova's:

- placement refuses a server that fits no host, with over-commit applied as
  Placement does: usable = (total − reserved) × allocation_ratio;
- project quota (cores, ram, instances) counts every server that is not deleted,
  stopped and shelved ones included, and refuses a limit below usage;
- a stopped server still holds its host's vCPU and RAM; only shelve-offload frees them;
- servers pass through BUILD before ACTIVE; resize waits in VERIFY_RESIZE for confirmation;
- a placed server gets the next fixed address of its cloud's tenant network (a /16 of 10.192.0.0/11 per
  cloud, taken in order of first use: deterministic for a fresh store), never handed out twice;
  a floating IP is attached by the cloud's admin;
- faults can be injected: the next N creates fail, a host disappears.

Work in bulk (the demo city's 510 servers) goes through :meth:`SimulatorStore.batch`, which puts every
call inside it in one transaction, and the batch methods (:meth:`SimulatorProvider.create_servers`,
:meth:`SimulatorProvider.set_workloads`), which the one-at-a-time methods are made of: the same rules
whether a server comes alone or among hundreds.
"""

from __future__ import annotations

import ipaddress
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, ForeignKey, String, UniqueConstraint, delete, func, insert, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, object_session

from cloudctl.compute.providers.base import (
    Flavor,
    QuotaLimits,
    QuotaUsage,
    ResourceCapacity,
    ServerAction,
    ServerInfo,
    ServerSpec,
    SnapshotInfo,
    VolumeInfo,
    VolumeTypeQuota,
)
from cloudctl.core.errors import Conflict, InvalidInput, NotFound
from cloudctl.core.models import UTCDateTime, utcnow

__all__ = ["NETWORK_POOL", "WORKLOAD_PROFILES", "SimAddress", "SimHost", "SimNetwork", "SimWorkload",
           "SimulatorProvider", "SimulatorStore", "WorkloadPlan"]


class SimBase(DeclarativeBase):
    """The simulator's own schema: not cloudctl's, so not in cloudctl's migrations."""


class SimHost(SimBase):
    __tablename__ = "sim_hosts"
    __table_args__ = (UniqueConstraint("cloud", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    cloud: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(64))
    vcpus: Mapped[int]
    ram_mb: Mapped[int]
    disk_gb: Mapped[int]
    # Memory the hypervisor keeps for itself (Nova's reserved_host_memory_mb).
    reserved_ram_mb: Mapped[int] = mapped_column(default=4096)
    alive: Mapped[bool] = mapped_column(default=True)


class SimFlavor(SimBase):
    __tablename__ = "sim_flavors"
    __table_args__ = (UniqueConstraint("cloud", "name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    cloud: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(64))
    vcpus: Mapped[int]
    ram_mb: Mapped[int]
    disk_gb: Mapped[int]


class SimProject(SimBase):
    __tablename__ = "sim_projects"
    __table_args__ = (UniqueConstraint("cloud", "name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    cloud: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(128), default="")
    # None is Nova's -1: unlimited.
    cores: Mapped[int | None]
    ram_mb: Mapped[int | None]
    instances: Mapped[int | None]
    disk_gb: Mapped[int | None]


class SimServer(SimBase):
    __tablename__ = "sim_servers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    cloud: Mapped[str] = mapped_column(String(64), index=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("sim_projects.id"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    tag: Mapped[str | None] = mapped_column(String(128), index=True)
    flavor: Mapped[str] = mapped_column(String(64))
    vcpus: Mapped[int]
    ram_mb: Mapped[int]
    disk_gb: Mapped[int]
    # The flavor before a resize, kept until the resize is confirmed (VERIFY_RESIZE).
    old_flavor: Mapped[str | None] = mapped_column(String(64))
    host: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    fault: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ready_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deleted: Mapped[bool] = mapped_column(default=False)


class SimVolume(SimBase):
    """A block volume (Cinder's), attached to at most one server."""

    __tablename__ = "sim_volumes"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    cloud: Mapped[str] = mapped_column(String(64), index=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("sim_projects.id"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    volume_type: Mapped[str] = mapped_column(String(64))
    size_gib: Mapped[int]
    status: Mapped[str] = mapped_column(String(32))
    server_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deleted: Mapped[bool] = mapped_column(default=False)


class SimSnapshot(SimBase):
    __tablename__ = "sim_snapshots"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    cloud: Mapped[str] = mapped_column(String(64), index=True)
    volume_id: Mapped[str] = mapped_column(String(36), index=True)
    name: Mapped[str] = mapped_column(String(128))
    size_gib: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SimVolumeQuota(SimBase):
    """A project's GiB limit for one volume type (Cinder's gigabytes_<type>); no row: no limit."""

    __tablename__ = "sim_volume_quotas"

    cloud: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    volume_type: Mapped[str] = mapped_column(String(64), primary_key=True)
    limit_gib: Mapped[int | None]


class SimNetwork(SimBase):
    """A cloud's tenant network: the range its servers' fixed addresses come from."""

    __tablename__ = "sim_networks"

    cloud: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Which /16 of NETWORK_POOL: the lowest one no other cloud holds.
    slot: Mapped[int] = mapped_column(unique=True)
    cidr: Mapped[str] = mapped_column(String(49))


class SimAddress(SimBase):
    """An address of a server (a Neutron port's fixed IP, or a floating IP associated with it)."""

    __tablename__ = "sim_addresses"
    __table_args__ = (UniqueConstraint("cloud", "ip"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    server_id: Mapped[str] = mapped_column(ForeignKey("sim_servers.id"), index=True)
    cloud: Mapped[str] = mapped_column(String(64), index=True)
    ip: Mapped[str] = mapped_column(String(45))
    kind: Mapped[str] = mapped_column(String(16))  # fixed | floating


class SimWorkload(SimBase):
    """What a simulated server's guest does, which its telemetry follows (the demo plants these).

    ``profile`` is the shape of a day: busy (loaded around the clock), office (working hours on
    weekdays), batch (a nightly job, quiet otherwise), steady (a flat, light load) or idle.
    ``cpu`` and ``mem`` are fractions of the server's vCPUs and RAM at the shape's peak, ``net``
    bytes per second received at peak (it sends half that). The guest reports from ``since``
    until ``until`` (when it was stopped), and nothing while it is not running.
    """

    __tablename__ = "sim_workloads"

    server_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    cloud: Mapped[str] = mapped_column(String(64), index=True)
    profile: Mapped[str] = mapped_column(String(16))
    cpu: Mapped[float]
    mem: Mapped[float | None]  # None: the guest reports no memory (no balloon driver / agent)
    net: Mapped[float]
    since: Mapped[datetime] = mapped_column(UTCDateTime())
    until: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SimFault(SimBase):
    __tablename__ = "sim_faults"

    id: Mapped[int] = mapped_column(primary_key=True)
    cloud: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    remaining: Mapped[int]
    message: Mapped[str] = mapped_column(String(255))


class SimulatorStore:
    """The simulator's database; its tables are created on first use."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # The open batch of each thread (the API serves requests from a thread pool).
        self._local = threading.local()
        SimBase.metadata.create_all(engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction, committed at the end; inside :meth:`batch`, a savepoint of the batch's."""
        batch: Session | None = getattr(self._local, "batch", None)
        if batch is not None:
            # A call that fails inside a batch takes back only its own changes, as its own transaction would.
            with batch.begin_nested():
                yield batch
            return
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Every call on this store in the block (in this thread) shares one transaction, committed at its end.

        For work in bulk: one commit instead of one per call. Nothing of the block is stored if it fails;
        a batch inside a batch joins the outer one.
        """
        if getattr(self._local, "batch", None) is not None:
            yield
            return
        with self.session() as session:
            self._local.batch = session
            try:
                yield
            finally:
                self._local.batch = None


WORKLOAD_PROFILES = ("busy", "office", "batch", "steady", "idle")

# The private range the clouds' tenant networks are cut from, one /16 each; clear of the extranet plan's 10.64/12.
NETWORK_POOL = ipaddress.IPv4Network("10.192.0.0/11")
NETWORK_PREFIX = 16
# Fixed addresses start here in each network (.1 is the gateway, the rest of the first ten the DHCP agents').
FIRST_HOST = 10

# Servers in these states hold a place on their host.
ON_HOST = ("BUILD", "ACTIVE", "SHUTOFF", "SUSPENDED", "PAUSED", "SHELVED", "VERIFY_RESIZE", "ERROR")


@dataclass
class _Usage:
    vcpus: int = 0
    ram_mb: int = 0
    disk_gb: int = 0
    instances: int = 0

    def add(self, vcpus: int, ram_mb: int, disk_gb: int, instances: int = 0) -> None:
        self.vcpus, self.ram_mb = self.vcpus + vcpus, self.ram_mb + ram_mb
        self.disk_gb, self.instances = self.disk_gb + disk_gb, self.instances + instances


@dataclass(frozen=True, slots=True)
class WorkloadPlan:
    """What one server's guest does (see :class:`SimWorkload`); ``since`` None means from its creation."""

    provider_id: str
    profile: str
    cpu: float
    mem: float | None
    net: float
    since: datetime | None = None
    until: datetime | None = None


@dataclass
class _Placement:
    """What a batch of creates reads once and keeps up to date as it places each server."""

    flavors: dict[str, SimFlavor]
    faults: list[SimFault]
    # Filled on first need: the projects' limits and usage (locked), the hosts (locked) and their usage,
    # the tenant network and how many fixed addresses it has handed out.
    projects: dict[str, tuple[SimProject, _Usage]] = field(default_factory=dict)
    hosts: list[SimHost] | None = None
    host_usage: dict[str, _Usage] = field(default_factory=dict)
    network: ipaddress.IPv4Network | None = None
    given: int = 0


class SimulatorProvider:
    kind = "simulator"

    def __init__(
        self,
        store: SimulatorStore,
        cloud: str,
        *,
        cpu_allocation_ratio: float = 4.0,
        ram_allocation_ratio: float = 1.0,
        build_seconds: float = 2.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.cloud = cloud
        self.cpu_ratio = cpu_allocation_ratio
        self.ram_ratio = ram_allocation_ratio
        self.build = timedelta(seconds=build_seconds)
        self.clock = clock

    # -------------------------------------------------------------- set-up (the cloud's own admin)

    def reset(self) -> None:
        """Forget everything of this cloud (a fresh demo over an old simulator store)."""
        with self.store.session() as s:
            for table in (SimVolumeQuota, SimSnapshot, SimVolume, SimAddress, SimNetwork, SimWorkload, SimServer,
                          SimProject, SimFlavor, SimHost, SimFault):
                s.execute(delete(table).where(table.cloud == self.cloud))

    def add_host(self, name: str, *, vcpus: int, ram_mb: int, disk_gb: int, reserved_ram_mb: int = 4096) -> None:
        with self.store.session() as s:
            s.add(SimHost(cloud=self.cloud, name=name, vcpus=vcpus, ram_mb=ram_mb, disk_gb=disk_gb,
                          reserved_ram_mb=reserved_ram_mb))

    def add_flavor(self, name: str, *, vcpus: int, ram_mb: int, disk_gb: int) -> None:
        with self.store.session() as s:
            s.add(SimFlavor(id=str(uuid.uuid4()), cloud=self.cloud, name=name, vcpus=vcpus, ram_mb=ram_mb,
                            disk_gb=disk_gb))

    def set_workload(self, provider_id: str, profile: str, *, cpu: float, mem: float | None, net: float,
                     since: datetime | None = None, until: datetime | None = None) -> None:
        """Say what the server's guest does from now on (its telemetry); replaces an earlier one."""
        self.set_workloads([WorkloadPlan(provider_id, profile, cpu, mem, net, since, until)])

    def set_workloads(self, plans: Sequence[WorkloadPlan]) -> None:
        """:meth:`set_workload` for many servers in one transaction: all are set, or (one refused) none."""
        for plan in plans:
            if plan.profile not in WORKLOAD_PROFILES:
                raise InvalidInput(f"unknown workload profile {plan.profile!r}; one of {', '.join(WORKLOAD_PROFILES)}",
                                   field="profile")
        with self.store.session() as s:
            wanted = list(dict.fromkeys(p.provider_id for p in plans))
            servers: dict[str, SimServer] = {}
            for start in range(0, len(wanted), 500):
                servers.update((server.id, server) for server in s.scalars(select(SimServer).where(
                    SimServer.id.in_(wanted[start:start + 500]), SimServer.cloud == self.cloud,
                    SimServer.deleted.is_(False))))
            missing = next((pid for pid in wanted if pid not in servers), None)
            if missing is not None:
                raise NotFound(f"no server {missing} on {self.cloud}", field="server")
            # Replaced whole: the last plan of a server is the one that holds.
            rows = {p.provider_id: {"server_id": p.provider_id, "cloud": self.cloud, "profile": p.profile, "cpu": p.cpu,
                                    "mem": p.mem, "net": p.net, "since": p.since or servers[p.provider_id].created_at,
                                    "until": p.until} for p in plans}
            for start in range(0, len(wanted), 500):
                # The session forgets the replaced rows too (synchronised), so a later read sees the new ones.
                s.execute(delete(SimWorkload).where(SimWorkload.server_id.in_(wanted[start:start + 500])))
            if rows:
                s.execute(insert(SimWorkload), list(rows.values()))

    def workloads(self, provider_ids: Iterable[str]) -> dict[str, tuple[SimWorkload, str]]:
        """The workload and current status of each of these servers that has one."""
        wanted = list(provider_ids)
        found: dict[str, tuple[SimWorkload, str]] = {}
        with self.store.session() as s:
            for start in range(0, len(wanted), 500):
                rows = s.execute(select(SimWorkload, SimServer.status)
                                 .join(SimServer, SimServer.id == SimWorkload.server_id)
                                 .where(SimWorkload.cloud == self.cloud, SimServer.deleted.is_(False),
                                        SimWorkload.server_id.in_(wanted[start:start + 500])))
                for workload, status in rows:
                    found[workload.server_id] = (workload, status)
        return found

    def add_floating_ip(self, provider_id: str, ip: str) -> None:
        """Associate a floating IP with a server (the cloud admin's ``openstack server add floating ip``)."""
        try:
            address = str(ipaddress.ip_address(ip))
        except ValueError:
            raise InvalidInput(f"{ip!r} is not an IP address", field="ip") from None
        with self.store.session() as s:
            self._server(s, provider_id)
            if s.scalar(select(SimAddress.id).where(SimAddress.cloud == self.cloud, SimAddress.ip == address)):
                raise Conflict(f"{address} is already in use on {self.cloud}", field="ip")
            s.add(SimAddress(server_id=provider_id, cloud=self.cloud, ip=address, kind="floating"))

    def inject_fault(self, kind: str, *, times: int = 1, message: str = "simulated fault") -> None:
        """``create_fails``: the next ``times`` creates go to ERROR with ``message``."""
        if kind != "create_fails":
            raise InvalidInput(f"unknown fault {kind!r}; known: create_fails", field="fault")
        with self.store.session() as s:
            s.add(SimFault(cloud=self.cloud, kind=kind, remaining=times, message=message))

    def lose_host(self, name: str) -> None:
        """A host disappears: its servers go to ERROR and it takes no new ones."""
        with self.store.session() as s:
            host = self._host(s, name)
            host.alive = False
            for server in s.scalars(select(SimServer).where(SimServer.cloud == self.cloud, SimServer.host == name,
                                                            SimServer.deleted.is_(False))):
                server.status = "ERROR"
                server.fault = f"host {name} is down"

    # -------------------------------------------------------------- CloudProvider

    def ensure_project(self, unit_code: str, unit_name: str) -> str:
        with self.store.session() as s:
            project = s.scalar(select(SimProject).where(SimProject.cloud == self.cloud, SimProject.name == unit_code))
            if project is None:
                project = SimProject(id=uuid.uuid4().hex, cloud=self.cloud, name=unit_code,
                                     description=unit_name[:128], cores=None, ram_mb=None, instances=None,
                                     disk_gb=None)
                s.add(project)
            return project.id

    def list_flavors(self) -> list[Flavor]:
        with self.store.session() as s:
            rows = s.scalars(select(SimFlavor).where(SimFlavor.cloud == self.cloud).order_by(SimFlavor.vcpus,
                                                                                             SimFlavor.ram_mb))
            return [Flavor(f.name, f.vcpus, f.ram_mb, f.disk_gb, f.id) for f in rows]

    def get_quota(self, project: str) -> tuple[QuotaLimits, QuotaUsage]:
        with self.store.session() as s:
            p = self._project(s, project)
            usage = self._project_usage(s, project)
            return QuotaLimits(p.cores, p.ram_mb, p.disk_gb, p.instances), usage

    def set_quota(self, project: str, limits: QuotaLimits) -> None:
        with self.store.session() as s:
            p = self._project(s, project)
            usage = self._project_usage(s, project)
            for name, limit, used in (("vcpus", limits.vcpus, usage.vcpus), ("ram_mb", limits.ram_mb, usage.ram_mb),
                                      ("disk_gb", limits.disk_gb, usage.disk_gb),
                                      ("instances", limits.instances, usage.instances)):
                if limit is not None and limit < used:
                    # Nova answers 400 "Quota limit … must be greater than or equal to already used".
                    raise Conflict(f"quota limit {limit} is below what the project already uses ({used})",
                                   field=name)
            p.cores, p.ram_mb, p.disk_gb, p.instances = limits.vcpus, limits.ram_mb, limits.disk_gb, limits.instances

    def create_server(self, project: str, spec: ServerSpec) -> ServerInfo:
        return self.create_servers([(project, spec)])[0]

    def create_servers(self, wanted: Sequence[tuple[str, ServerSpec]]) -> list[ServerInfo]:
        """Create servers (project, spec) in the order given, in one transaction, each as a create of its own.

        A tag the project already holds answers with that server; otherwise quota, injected faults,
        placement and the next fixed address apply to each server in turn, counting those before it,
        so a batch ends exactly as the same creates one by one would. An unknown project or flavor,
        or a quota refused, refuses the whole batch.
        """
        with self.store.session() as s:
            known = self._tagged(s, wanted)
            state = _Placement(
                flavors={f.name: f for f in s.scalars(select(SimFlavor).where(SimFlavor.cloud == self.cloud))},
                faults=list(s.scalars(select(SimFault).where(SimFault.cloud == self.cloud,
                                                             SimFault.kind == "create_fails", SimFault.remaining > 0)
                                      .order_by(SimFault.id))))
            infos: list[ServerInfo] = []
            # Servers of this batch, not flushed yet, with their addresses.
            placed: dict[str, tuple[SimServer, list[SimAddress]]] = {}
            for project, spec in wanted:
                existing = known.get((project, spec.tag))
                if existing is not None:
                    infos.append(self._info(existing, placed[existing.id][1] if existing.id in placed else None))
                    continue
                server, addresses = self._create(s, state, project, spec)
                known[(project, spec.tag)] = server
                placed[server.id] = (server, addresses)
                infos.append(self._info(server, addresses))
            s.add_all(server for server, _ in placed.values())
            s.flush()
            s.add_all(address for _, addresses in placed.values() for address in addresses)
            return infos

    def _tagged(self, s: Session, wanted: Sequence[tuple[str, ServerSpec]]) -> dict[tuple[str, str], SimServer]:
        """The live servers already holding one of these (project, tag) pairs."""
        projects = sorted({project for project, _ in wanted})
        tags = sorted({spec.tag for _, spec in wanted})
        known: dict[tuple[str, str], SimServer] = {}
        for start in range(0, len(tags), 500):
            for server in s.scalars(select(SimServer).where(
                    SimServer.cloud == self.cloud, SimServer.project_id.in_(projects),
                    SimServer.tag.in_(tags[start:start + 500]), SimServer.deleted.is_(False))
                    .order_by(SimServer.created_at, SimServer.id)):
                if server.tag is not None:
                    known.setdefault((server.project_id, server.tag), server)
        return known

    def _create(self, s: Session, state: _Placement, project: str, spec: ServerSpec
                ) -> tuple[SimServer, list[SimAddress]]:
        """One create of a batch: checks, fault, placement and address, as Nova takes them."""
        limits, used = self._project_state(s, state, project)
        flavor = state.flavors.get(spec.flavor)
        if flavor is None:
            raise InvalidInput(f"flavor {spec.flavor!r} does not exist on {self.cloud}", field="flavor")
        self._check_limits(limits, used, flavor.vcpus, flavor.ram_mb, flavor.disk_gb, 1)
        # Every server that is not deleted counts against the quota, one in ERROR included.
        used.add(flavor.vcpus, flavor.ram_mb, flavor.disk_gb, 1)
        now = self.clock()
        server = SimServer(id=str(uuid.uuid4()), cloud=self.cloud, project_id=project, name=spec.name,
                           tag=spec.tag, flavor=flavor.name, vcpus=flavor.vcpus, ram_mb=flavor.ram_mb,
                           disk_gb=flavor.disk_gb, status="BUILD", created_at=now, ready_at=now + self.build,
                           deleted=False)
        fault = next((f for f in state.faults if f.remaining > 0), None)
        if fault is not None:
            fault.remaining -= 1
            server.status, server.fault = "ERROR", fault.message
            return server, []
        host = self._place_in(s, state, flavor.vcpus, flavor.ram_mb, flavor.disk_gb)
        if host is None:
            # Nova's "No valid host was found": the server exists, in ERROR, holding nothing.
            server.status = "ERROR"
            server.fault = "No valid host was found. There are not enough hosts available."
            return server, []
        address = self._next_address_in(s, state)
        if address is None:
            # Neutron's IpAddressGenerationFailure: Nova gives up on the server.
            server.status = "ERROR"
            server.fault = "No more IP addresses available on network"
            return server, []
        server.host = host.name
        state.host_usage.setdefault(host.name, _Usage()).add(flavor.vcpus, flavor.ram_mb, flavor.disk_gb)
        return server, [SimAddress(server_id=server.id, cloud=self.cloud, ip=address, kind="fixed")]

    def _project_state(self, s: Session, state: _Placement, project: str) -> tuple[SimProject, _Usage]:
        found = state.projects.get(project)
        if found is None:
            # Locking the project row serialises two creates in one project, as Nova's quota recheck does.
            row = self._project(s, project, lock=True)
            usage = self._project_usage(s, project)
            found = state.projects[project] = (row, _Usage(usage.vcpus, usage.ram_mb, usage.disk_gb, usage.instances))
        return found

    def _place_in(self, s: Session, state: _Placement, vcpus: int, ram_mb: int, disk_gb: int) -> SimHost | None:
        if state.hosts is None:
            state.hosts, state.host_usage = self._locked_hosts(s), self._host_usage(s)
        return self._best_host(state.hosts, state.host_usage, vcpus, ram_mb, disk_gb)

    def _next_address_in(self, s: Session, state: _Placement) -> str | None:
        """The next fixed address of the cloud's network: in order, and never one a server had before."""
        if state.network is None:
            state.network = self._network(s)
            state.given = s.scalar(select(func.count(SimAddress.id)).where(SimAddress.cloud == self.cloud,
                                                                           SimAddress.kind == "fixed")) or 0
        address = state.network.network_address + FIRST_HOST + state.given
        if address >= state.network.broadcast_address:
            return None
        state.given += 1
        return str(address)

    def find_server_by_tag(self, project: str, tag: str) -> ServerInfo | None:
        with self.store.session() as s:
            server = self._by_tag(s, project, tag)
            return self._info(server) if server is not None else None

    def get_server(self, provider_id: str) -> ServerInfo:
        with self.store.session() as s:
            return self._info(self._server(s, provider_id))

    def list_servers(self, project: str | None = None) -> list[ServerInfo]:
        with self.store.session() as s:
            query = select(SimServer).where(SimServer.cloud == self.cloud, SimServer.deleted.is_(False))
            if project is not None:
                query = query.where(SimServer.project_id == project)
            # One query for the addresses of the whole listing, not one per server.
            addresses: dict[str, list[SimAddress]] = {}
            for address in s.scalars(select(SimAddress).where(SimAddress.cloud == self.cloud)
                                     .order_by(SimAddress.id)):
                addresses.setdefault(address.server_id, []).append(address)
            return [self._info(server, addresses.get(server.id, []))
                    for server in s.scalars(query.order_by(SimServer.created_at, SimServer.id))]

    def server_action(self, provider_id: str, action: ServerAction) -> ServerInfo:
        with self.store.session() as s:
            server = self._server(s, provider_id)
            self._advance(server)
            allowed: dict[str, tuple[tuple[str, ...], str]] = {
                "stop": (("ACTIVE", "ERROR"), "SHUTOFF"),
                "start": (("SHUTOFF",), "ACTIVE"),
                "shelve": (("ACTIVE", "SHUTOFF"), "SHELVED"),
                "shelve_offload": (("SHELVED",), "SHELVED_OFFLOADED"),
                "unshelve": (("SHELVED", "SHELVED_OFFLOADED"), "ACTIVE"),
                "confirm_resize": (("VERIFY_RESIZE",), "ACTIVE"),
            }
            if action not in allowed:
                raise InvalidInput(f"unknown server action {action!r}", field="action")
            states, target = allowed[action]
            if server.status not in states:
                # Nova's 409 "Cannot 'stop' instance … while it is in vm_state stopped".
                raise Conflict(f"cannot {action} server {server.name} while it is {server.status}", field="status")
            if action == "shelve_offload":
                server.host = None
            elif action == "unshelve" and server.host is None:
                host = self._place(s, server.vcpus, server.ram_mb, server.disk_gb)
                if host is None:
                    raise Conflict("No valid host was found to unshelve onto", field="host")
                server.host = host.name
            elif action == "confirm_resize":
                server.old_flavor = None
            server.status = target
            return self._info(server)

    def resize_server(self, provider_id: str, flavor: str) -> ServerInfo:
        with self.store.session() as s:
            server = self._server(s, provider_id)
            self._advance(server)
            if server.status not in ("ACTIVE", "SHUTOFF"):
                raise Conflict(f"cannot resize server {server.name} while it is {server.status}", field="status")
            new = s.scalar(select(SimFlavor).where(SimFlavor.cloud == self.cloud, SimFlavor.name == flavor))
            if new is None:
                raise InvalidInput(f"flavor {flavor!r} does not exist on {self.cloud}", field="flavor")
            if new.name == server.flavor:
                raise InvalidInput("the server already has this flavor", field="flavor")
            self._check_quota(s, server.project_id, new.vcpus - server.vcpus, new.ram_mb - server.ram_mb,
                              max(0, new.disk_gb - server.disk_gb), 0)
            host = s.scalar(select(SimHost).where(SimHost.cloud == self.cloud, SimHost.name == server.host))
            if host is None or not self._fits(host, new.vcpus - server.vcpus, new.ram_mb - server.ram_mb,
                                              new.disk_gb - server.disk_gb, self._host_usage(s)):
                raise Conflict("No valid host was found for the new flavor", field="flavor")
            server.old_flavor, server.flavor = server.flavor, new.name
            server.vcpus, server.ram_mb, server.disk_gb = new.vcpus, new.ram_mb, new.disk_gb
            server.status = "VERIFY_RESIZE"
            return self._info(server)

    def delete_server(self, provider_id: str) -> None:
        with self.store.session() as s:
            server = self._server(s, provider_id)
            server.deleted, server.status, server.host = True, "DELETED", None

    # -------------------------------------------------------------- block volumes (Cinder's shapes)

    volume_types: tuple[str, ...] = ("ssd", "hdd")

    def list_volume_types(self) -> list[str]:
        return list(self.volume_types)

    def list_volumes(self, project: str | None = None) -> list[VolumeInfo]:
        with self.store.session() as s:
            query = select(SimVolume).where(SimVolume.cloud == self.cloud, SimVolume.deleted.is_(False))
            if project is not None:
                query = query.where(SimVolume.project_id == project)
            return [self._volume_info(v) for v in s.scalars(query.order_by(SimVolume.created_at, SimVolume.id))]

    def create_volume(self, project: str, name: str, volume_type: str, size_gib: int) -> VolumeInfo:
        if volume_type not in self.volume_types:
            raise InvalidInput(f"volume type {volume_type!r} is not offered on {self.cloud}", field="volume_type")
        if not 1 <= size_gib <= 65536:
            raise InvalidInput("a volume is 1 to 65,536 GiB", field="size_gib")
        with self.store.session() as s:
            self._project(s, project)
            limit = s.get(SimVolumeQuota, (self.cloud, project, volume_type))
            if limit is not None and limit.limit_gib is not None:
                used = self._type_usage(s, project).get(volume_type, 0)
                if used + size_gib > limit.limit_gib:
                    # Cinder answers 413 VolumeSizeExceedsAvailableQuota.
                    raise Conflict(f"{volume_type} quota of {limit.limit_gib} GiB exceeded ({used} GiB used)",
                                   field="size_gib")
            volume = SimVolume(id=str(uuid.uuid4()), cloud=self.cloud, project_id=project, name=name,
                               volume_type=volume_type, size_gib=size_gib, status="available", server_id=None,
                               created_at=self.clock())
            s.add(volume)
            s.flush()
            return self._volume_info(volume)

    def attach_volume(self, volume_id: str, server_id: str) -> VolumeInfo:
        with self.store.session() as s:
            volume = self._volume(s, volume_id)
            server = self._server(s, server_id)
            if volume.status != "available":
                raise Conflict(f"volume {volume.name} is {volume.status}, not available", field="status")
            if server.project_id != volume.project_id:
                raise Conflict("a volume attaches to a server of its own project", field="server")
            volume.status, volume.server_id = "in-use", server.id
            return self._volume_info(volume)

    def detach_volume(self, volume_id: str) -> VolumeInfo:
        with self.store.session() as s:
            volume = self._volume(s, volume_id)
            if volume.status != "in-use":
                raise Conflict(f"volume {volume.name} is {volume.status}, not in-use", field="status")
            volume.status, volume.server_id = "available", None
            return self._volume_info(volume)

    def snapshot_volume(self, volume_id: str, name: str) -> SnapshotInfo:
        with self.store.session() as s:
            volume = self._volume(s, volume_id)
            snapshot = SimSnapshot(id=str(uuid.uuid4()), cloud=self.cloud, volume_id=volume.id, name=name,
                                   size_gib=volume.size_gib, created_at=self.clock())
            s.add(snapshot)
            s.flush()
            return SnapshotInfo(snapshot.id, volume.id, name, snapshot.size_gib, "available", snapshot.created_at)

    def _type_usage(self, s: Session, project: str) -> dict[str, int]:
        return {t: int(n) for t, n in s.execute(
            select(SimVolume.volume_type, func.sum(SimVolume.size_gib)).where(
                SimVolume.cloud == self.cloud, SimVolume.project_id == project, SimVolume.deleted.is_(False))
            .group_by(SimVolume.volume_type))}

    def get_volume_quotas(self, project: str) -> list[VolumeTypeQuota]:
        with self.store.session() as s:
            self._project(s, project)
            used = self._type_usage(s, project)
            limits = {q.volume_type: q.limit_gib for q in s.scalars(select(SimVolumeQuota).where(
                SimVolumeQuota.cloud == self.cloud, SimVolumeQuota.project_id == project))}
            return [VolumeTypeQuota(t, limits.get(t), used.get(t, 0)) for t in self.volume_types]

    def set_volume_quota(self, project: str, volume_type: str, limit_gib: int | None) -> None:
        if volume_type not in self.volume_types:
            raise InvalidInput(f"volume type {volume_type!r} is not offered on {self.cloud}", field="volume_type")
        with self.store.session() as s:
            self._project(s, project)
            used = self._type_usage(s, project).get(volume_type, 0)
            if limit_gib is not None and limit_gib < used:
                raise Conflict(f"quota limit {limit_gib} GiB is below what the project already uses ({used} GiB)",
                               field="limit_gib")
            row = s.get(SimVolumeQuota, (self.cloud, project, volume_type))
            if row is None:
                s.add(SimVolumeQuota(cloud=self.cloud, project_id=project, volume_type=volume_type,
                                     limit_gib=limit_gib))
            else:
                row.limit_gib = limit_gib

    def list_snapshots(self) -> list[SnapshotInfo]:
        with self.store.session() as s:
            return [SnapshotInfo(n.id, n.volume_id, n.name, n.size_gib, "available", n.created_at)
                    for n in s.scalars(select(SimSnapshot).where(SimSnapshot.cloud == self.cloud)
                                       .order_by(SimSnapshot.created_at, SimSnapshot.id))]

    def delete_snapshot(self, snapshot_id: str) -> None:
        with self.store.session() as s:
            snapshot = s.get(SimSnapshot, snapshot_id)
            if snapshot is None or snapshot.cloud != self.cloud:
                raise NotFound(f"no snapshot {snapshot_id} on {self.cloud}")
            s.delete(snapshot)

    def delete_volume(self, volume_id: str) -> None:
        with self.store.session() as s:
            volume = self._volume(s, volume_id)
            if volume.status == "in-use":
                raise Conflict(f"volume {volume.name} is attached; detach it first", field="status")
            volume.deleted, volume.status = True, "deleted"

    def _volume(self, s: Session, volume_id: str) -> SimVolume:
        volume = s.get(SimVolume, volume_id)
        if volume is None or volume.cloud != self.cloud or volume.deleted:
            raise NotFound(f"no volume {volume_id} on {self.cloud}", field="volume")
        return volume

    @staticmethod
    def _volume_info(volume: SimVolume) -> VolumeInfo:
        return VolumeInfo(provider_id=volume.id, name=volume.name, project=volume.project_id,
                          volume_type=volume.volume_type, size_gib=volume.size_gib, status=volume.status,
                          attached_to=volume.server_id, created_at=volume.created_at)

    def capacity(self) -> list[ResourceCapacity]:
        with self.store.session() as s:
            hosts = list(s.scalars(select(SimHost).where(SimHost.cloud == self.cloud, SimHost.alive.is_(True))))
            used = self._host_usage(s)
            total = _Usage(sum(h.vcpus for h in hosts), sum(h.ram_mb for h in hosts), sum(h.disk_gb for h in hosts))
            in_use = _Usage(sum(used.get(h.name, _Usage()).vcpus for h in hosts),
                            sum(used.get(h.name, _Usage()).ram_mb for h in hosts),
                            sum(used.get(h.name, _Usage()).disk_gb for h in hosts))
            return [
                ResourceCapacity("vcpus", total.vcpus, 0, self.cpu_ratio, in_use.vcpus),
                ResourceCapacity("ram_mb", total.ram_mb, sum(h.reserved_ram_mb for h in hosts), self.ram_ratio,
                                 in_use.ram_mb),
                ResourceCapacity("disk_gb", total.disk_gb, 0, 1.0, in_use.disk_gb),
            ]

    # -------------------------------------------------------------- inside

    def _advance(self, server: SimServer) -> None:
        """A build finishes in its own time: BUILD turns ACTIVE once its moment has come."""
        if server.status == "BUILD" and self.clock() >= server.ready_at:
            server.status = "ACTIVE"

    def _info(self, server: SimServer, addresses: list[SimAddress] | None = None) -> ServerInfo:
        self._advance(server)
        if addresses is None:
            s = object_session(server)
            assert s is not None
            addresses = list(s.scalars(select(SimAddress).where(SimAddress.server_id == server.id)
                                       .order_by(SimAddress.id)))
        return ServerInfo(provider_id=server.id, name=server.name, project=server.project_id, status=server.status,
                          flavor=server.flavor, vcpus=server.vcpus, ram_mb=server.ram_mb, disk_gb=server.disk_gb,
                          tag=server.tag, host=server.host, created_at=server.created_at, fault=server.fault,
                          addresses=tuple(a.ip for a in addresses),
                          floating=tuple(a.ip for a in addresses if a.kind == "floating"))

    def _network(self, s: Session) -> ipaddress.IPv4Network:
        """The cloud's tenant network, taken from the pool on the first server (the lowest free /16)."""
        network = s.get(SimNetwork, self.cloud)
        if network is None:
            taken = set(s.scalars(select(SimNetwork.slot)))
            subnets = list(NETWORK_POOL.subnets(new_prefix=NETWORK_PREFIX))
            slot = next((n for n in range(len(subnets)) if n not in taken), None)
            if slot is None:
                raise Conflict(f"the simulator has no tenant network left for {self.cloud}", field="cloud")
            network = SimNetwork(cloud=self.cloud, slot=slot, cidr=str(subnets[slot]))
            s.add(network)
            s.flush()
        return ipaddress.IPv4Network(network.cidr)

    def _project(self, s: Session, project: str, *, lock: bool = False) -> SimProject:
        # Locking the project row serialises two creates in one project, as Nova's quota recheck does.
        found = s.get(SimProject, project, with_for_update=lock)
        if found is None or found.cloud != self.cloud:
            raise NotFound(f"no project {project} on {self.cloud}", field="project")
        return found

    def _host(self, s: Session, name: str) -> SimHost:
        host = s.scalar(select(SimHost).where(SimHost.cloud == self.cloud, SimHost.name == name))
        if host is None:
            raise NotFound(f"no host {name} on {self.cloud}", field="host")
        return host

    def _server(self, s: Session, provider_id: str) -> SimServer:
        server = s.get(SimServer, provider_id)
        if server is None or server.cloud != self.cloud or server.deleted:
            raise NotFound(f"no server {provider_id} on {self.cloud}", field="server")
        return server

    def _by_tag(self, s: Session, project: str, tag: str) -> SimServer | None:
        return s.scalar(select(SimServer).where(SimServer.cloud == self.cloud, SimServer.project_id == project,
                                                SimServer.tag == tag, SimServer.deleted.is_(False)).limit(1))

    def _project_usage(self, s: Session, project: str) -> QuotaUsage:
        row = s.execute(
            select(func.coalesce(func.sum(SimServer.vcpus), 0), func.coalesce(func.sum(SimServer.ram_mb), 0),
                   func.coalesce(func.sum(SimServer.disk_gb), 0), func.count(SimServer.id))
            .where(SimServer.project_id == project, SimServer.deleted.is_(False))
        ).one()
        # Volumes take disk too, as Cinder's gigabytes count them.
        volumes = s.scalar(select(func.coalesce(func.sum(SimVolume.size_gib), 0)).where(
            SimVolume.project_id == project, SimVolume.deleted.is_(False))) or 0
        return QuotaUsage(int(row[0]), int(row[1]), int(row[2]) + int(volumes), int(row[3]))

    def _check_quota(self, s: Session, project: str, vcpus: int, ram_mb: int, disk_gb: int, instances: int) -> None:
        p = self._project(s, project, lock=True)
        usage = self._project_usage(s, project)
        self._check_limits(p, _Usage(usage.vcpus, usage.ram_mb, usage.disk_gb, usage.instances),
                           vcpus, ram_mb, disk_gb, instances)

    @staticmethod
    def _check_limits(p: SimProject, usage: _Usage, vcpus: int, ram_mb: int, disk_gb: int, instances: int) -> None:
        for name, limit, used, asked in (("vcpus", p.cores, usage.vcpus, vcpus),
                                         ("ram_mb", p.ram_mb, usage.ram_mb, ram_mb),
                                         ("disk_gb", p.disk_gb, usage.disk_gb, disk_gb),
                                         ("instances", p.instances, usage.instances, instances)):
            if limit is not None and asked > 0 and used + asked > limit:
                # Nova's 403 "Quota exceeded for cores: Requested 4, but already used 14 of 16 cores".
                raise Conflict(f"Quota exceeded for {name}: requested {asked}, but already used {used} of {limit}",
                               field="quota")

    def _host_usage(self, s: Session) -> dict[str, _Usage]:
        rows = s.execute(
            select(SimServer.host, func.sum(SimServer.vcpus), func.sum(SimServer.ram_mb), func.sum(SimServer.disk_gb))
            .where(SimServer.cloud == self.cloud, SimServer.deleted.is_(False), SimServer.host.is_not(None),
                   SimServer.status.in_(ON_HOST))
            .group_by(SimServer.host)
        ).all()
        return {str(host): _Usage(int(v), int(r), int(d)) for host, v, r, d in rows}

    def _fits(self, host: SimHost, vcpus: int, ram_mb: int, disk_gb: int, usage: dict[str, _Usage]) -> bool:
        used = usage.get(host.name, _Usage())
        return (used.vcpus + vcpus <= host.vcpus * self.cpu_ratio
                and used.ram_mb + ram_mb <= (host.ram_mb - host.reserved_ram_mb) * self.ram_ratio
                and used.disk_gb + disk_gb <= host.disk_gb)

    def _place(self, s: Session, vcpus: int, ram_mb: int, disk_gb: int) -> SimHost | None:
        return self._best_host(self._locked_hosts(s), self._host_usage(s), vcpus, ram_mb, disk_gb)

    def _locked_hosts(self, s: Session) -> list[SimHost]:
        # Lock the hosts first so two placements cannot both take a host's last room (PostgreSQL).
        return list(s.scalars(select(SimHost).where(SimHost.cloud == self.cloud, SimHost.alive.is_(True))
                              .order_by(SimHost.id).with_for_update()))

    def _best_host(self, alive: list[SimHost], usage: dict[str, _Usage], vcpus: int, ram_mb: int,
                   disk_gb: int) -> SimHost | None:
        """Nova's filter-then-weigh: hosts that fit, the one with the most free RAM first (spreading)."""
        hosts = [h for h in alive if self._fits(h, vcpus, ram_mb, disk_gb, usage)]
        if not hosts:
            return None
        return max(hosts, key=lambda h: ((h.ram_mb - h.reserved_ram_mb) * self.ram_ratio
                                         - usage.get(h.name, _Usage()).ram_mb, h.name))
