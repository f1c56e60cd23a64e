"""The IP address plan (IP地址规划) and IP applications (IP地址审批 + 安全承诺).

Rules in NetBox's spirit: every prefix sits inside an aggregate; within one zone and VRF two
prefixes may overlap only when the outer one is a pool (container) holding the inner one;
utilisation excludes the network and broadcast addresses. An application is approved at most
once (a conditional UPDATE moves it out of ``submitted``), and allocation holds a lock on the
zone's pools, so two approvals never hand out overlapping blocks, on SQLite or PostgreSQL.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloudctl.core import audit, read
from cloudctl.core.auth import Principal, authorize
from cloudctl.core.errors import Conflict, FieldError, InvalidInput, NotFound
from cloudctl.core.models import utcnow
from cloudctl.core.schemas import field_errors
from cloudctl.core.tabular import Column, numbered
from cloudctl.extranet.models import (
    AddressRole,
    Aggregate,
    ApplicationStatus,
    ArpObservation,
    IPAddress,
    IPApplication,
    Prefix,
    PrefixStatus,
    Zone,
)
from cloudctl.extranet.schemas import AddressCreate, AggregateCreate, ApplicationCreate, PrefixCreate, PrefixPublic
from cloudctl.org.service import get_unit, under

__all__ = [
    "COMMITMENT_TEXT",
    "PLAN_COLUMNS",
    "PlanImportResult",
    "Usage",
    "approve_application",
    "cancel_application",
    "create_address",
    "create_aggregate",
    "create_prefix",
    "describe_prefixes",
    "export_plan",
    "get_application",
    "import_plan",
    "list_aggregates",
    "list_applications",
    "list_prefixes",
    "reject_application",
    "release_application",
    "submit_application",
    "usable_hosts",
    "usage",
]

# The bureau's standard commitment, when the unit signs it without a text of its own.
COMMITMENT_TEXT = ("本单位承诺：所申请的电子政务外网 IP 地址仅用于申请所述业务，不私自转借、不接入互联网和其他网络，"
                   "终端落实安全防护措施，发生变更或停用时及时申请回收，并接受网络安全检查。")
PREFIX_AUDIT = ("prefix", "zone", "vrf", "status", "unit_code", "vlan", "description")


def _net(text: str, field: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(text, strict=True)
    except ValueError as exc:
        raise InvalidInput(f"{text!r} is not an IPv4 network ({exc})", field=field) from None


def usable_hosts(length: int) -> int:
    """Addresses of a prefix a host may hold: network and broadcast excluded, except /31 (RFC 3021) and /32."""
    size = 2 ** (32 - length)
    return size if length >= 31 else size - 2


# ---------------------------------------------------------------- aggregates and prefixes


def create_aggregate(session: Session, principal: Principal, data: AggregateCreate) -> Aggregate:
    authorize(principal, "extranet.plan:write")
    net = _net(data.prefix, "prefix")
    start, end = int(net.network_address), int(net.broadcast_address)
    clash = session.scalar(select(Aggregate).where(Aggregate.start <= end, Aggregate.end >= start))
    if clash is not None:
        raise Conflict(f"{net} overlaps aggregate {clash.prefix}", field="prefix")
    row = Aggregate(prefix=str(net), start=start, end=end, description=data.description)
    session.add(row)
    session.flush()
    audit.record(session, principal, action="create", entity="aggregate", entity_id=row.prefix,
                 after={"prefix": row.prefix, "description": row.description})
    return row


def list_aggregates(session: Session, principal: Principal) -> list[Aggregate]:
    authorize(principal, "extranet.plan:read")
    return list(session.scalars(select(Aggregate).order_by(Aggregate.start)))


def _check_prefix(session: Session, net: ipaddress.IPv4Network, zone: Zone, vrf: str, status: PrefixStatus,
                  *, field: str = "prefix") -> None:
    """Refuse what would break the plan: outside every aggregate, or overlapping another block."""
    start, end = int(net.network_address), int(net.broadcast_address)
    if session.scalar(select(Aggregate.id).where(Aggregate.start <= start, Aggregate.end >= end).limit(1)) is None:
        raise InvalidInput(f"{net} is not inside any aggregate of the city's plan", field=field)
    overlapping = session.scalars(select(Prefix).where(
        Prefix.zone == zone, Prefix.vrf == vrf, Prefix.start <= end, Prefix.end >= start)).all()
    for other in overlapping:
        if other.start == start and other.end == end:
            raise Conflict(f"{net} already exists in {zone.value}/{vrf} (id {other.id})", field=field)
        inside_other = other.start <= start and end <= other.end
        holds_other = start <= other.start and other.end <= end
        # Nesting is a pool holding its blocks; anything else is two units claiming the same addresses.
        if inside_other and other.status is PrefixStatus.CONTAINER:
            continue
        if holds_other and status is PrefixStatus.CONTAINER:
            continue
        raise Conflict(f"{net} overlaps {other.prefix} ({other.status.value}) in {zone.value}/{vrf}", field=field)


def create_prefix(session: Session, principal: Principal, data: PrefixCreate, *,
                  application_id: int | None = None, check: bool = True) -> Prefix:
    authorize(principal, "extranet.plan:write")
    net = _net(data.prefix, "prefix")
    unit = get_unit(session, principal, data.unit_code, field_name="unit_code") if data.unit_code else None
    if data.status is PrefixStatus.ACTIVE and unit is None:
        # Reserved space may wait for its owner; a block in use always has one.
        raise InvalidInput("a block in use belongs to a unit", field="unit_code")
    if check:
        _check_prefix(session, net, data.zone, data.vrf, data.status)
    row = Prefix(prefix=str(net), start=int(net.network_address), end=int(net.broadcast_address),
                 length=net.prefixlen, zone=data.zone, vrf=data.vrf, status=data.status,
                 unit=unit, unit_id=unit.id if unit else None, vlan=data.vlan, application_id=application_id,
                 description=data.description)
    session.add(row)
    session.flush()
    audit.record(session, principal, action="create", entity="prefix", entity_id=row.prefix,
                 after=audit.snapshot(row, PREFIX_AUDIT), unit_id=row.unit_id)
    return row


@dataclass(frozen=True, slots=True)
class Usage:
    used: int
    usable: int

    @property
    def ratio(self) -> float:
        return round(self.used / self.usable, 4) if self.usable else 0.0


def usage(session: Session, prefixes: Sequence[Prefix]) -> dict[int, Usage]:
    """Honest utilisation: a pool by the blocks inside it; a block by distinct addresses registered or seen."""
    result: dict[int, Usage] = {}
    for prefix in prefixes:
        if prefix.status is PrefixStatus.CONTAINER:
            inner = session.scalar(select(func.coalesce(func.sum(Prefix.end - Prefix.start + 1), 0)).where(
                Prefix.zone == prefix.zone, Prefix.vrf == prefix.vrf, Prefix.status != PrefixStatus.CONTAINER,
                Prefix.start >= prefix.start, Prefix.end <= prefix.end)) or 0
            result[prefix.id] = Usage(int(inner), prefix.end - prefix.start + 1)
            continue
        first, last = (prefix.start, prefix.end) if prefix.length >= 31 else (prefix.start + 1, prefix.end - 1)
        registered = set(session.scalars(select(IPAddress.value).where(IPAddress.prefix_id == prefix.id)))
        seen = set(session.scalars(select(ArpObservation.value).where(ArpObservation.value.between(first, last))))
        used = {v for v in registered | seen if first <= v <= last}
        result[prefix.id] = Usage(len(used), usable_hosts(prefix.length))
    return result


def describe_prefixes(session: Session, prefixes: Sequence[Prefix]) -> list[PrefixPublic]:
    """The prefixes as the CLI and the API show them: with their utilisation."""
    used = usage(session, prefixes)
    return [PrefixPublic.model_validate(p).model_copy(update={
        "used": used[p.id].used, "usable": used[p.id].usable, "utilisation": used[p.id].ratio}) for p in prefixes]


def _prefix_query(principal: Principal) -> Select[Prefix]:
    return read.within(select(Prefix), principal, unit=Prefix.unit_id)


def list_prefixes(
    session: Session, principal: Principal, *, zone: Zone | None = None, unit: str | None = None,
    status: PrefixStatus | None = None, contains: str | None = None, vrf: str | None = None,
    limit: int = 50, offset: int = 0,
) -> tuple[list[Prefix], int]:
    authorize(principal, "extranet.plan:read")
    query = _prefix_query(principal)
    if zone is not None:
        query = query.where(Prefix.zone == zone)
    if vrf is not None:
        query = query.where(Prefix.vrf == vrf)
    if status is not None:
        query = query.where(Prefix.status == status)
    if unit is not None:
        query = query.where(under(session, principal, unit, Prefix.unit_id))
    if contains is not None:
        try:
            value = int(ipaddress.IPv4Address(contains))
        except ValueError:
            raise InvalidInput(f"{contains!r} is not an IPv4 address", field="contains") from None
        query = query.where(Prefix.start <= value, Prefix.end >= value)
    return read.page(session, query, limit=limit, offset=offset,
                     order_by=(Prefix.zone, Prefix.vrf, Prefix.start, Prefix.length, Prefix.id))


def _covering(session: Session, value: int, zone: Zone | None, vrf: str) -> Prefix | None:
    """The most specific non-pool prefix holding the address (in the given zone, if any)."""
    query = select(Prefix).where(Prefix.start <= value, Prefix.end >= value, Prefix.vrf == vrf,
                                 Prefix.status != PrefixStatus.CONTAINER)
    if zone is not None:
        query = query.where(Prefix.zone == zone)
    return session.scalars(query.order_by(Prefix.length.desc()).limit(1)).first()


def create_address(session: Session, principal: Principal, data: AddressCreate, *,
                   application_id: int | None = None) -> IPAddress:
    authorize(principal, "extranet.plan:write")
    value = int(ipaddress.IPv4Address(data.address))
    prefix = _covering(session, value, data.zone, data.vrf)
    if prefix is None:
        raise InvalidInput(f"{data.address} is in no allocated block of the plan", field="address")
    if prefix.length < 31 and value in (prefix.start, prefix.end):
        raise InvalidInput(f"{data.address} is the network or broadcast address of {prefix.prefix}", field="address")
    unit = get_unit(session, principal, data.unit_code, field_name="unit_code") if data.unit_code else prefix.unit
    mac = _mac(data.mac) if data.mac else None
    if session.scalar(select(IPAddress.id).where(IPAddress.prefix_id == prefix.id, IPAddress.value == value)):
        raise Conflict(f"{data.address} is already registered", field="address")
    row = IPAddress(address=data.address, value=value, prefix_id=prefix.id, prefix=prefix,
                    unit_id=unit.id if unit else None, role=data.role, mac=mac, application_id=application_id,
                    description=data.description)
    session.add(row)
    session.flush()
    audit.record(session, principal, action="create", entity="ip_address", entity_id=row.address,
                 after={"address": row.address, "prefix": prefix.prefix, "role": row.role.value, "mac": mac},
                 unit_id=row.unit_id)
    return row


def _mac(text: str) -> str:
    from cloudctl.extranet.devices import normalise_mac

    return normalise_mac(text)


# ---------------------------------------------------------------- import and export


@dataclass(frozen=True, slots=True)
class PlanImportResult:
    aggregates: int
    prefixes: int
    addresses: int


# The columns (or keys) of `extranet prefix import`, with the names a Chinese spreadsheet gives them.
PLAN_COLUMNS = (
    Column("kind", ("类别", "类型"), required=True),
    Column("prefix", ("网段", "地址段")),
    Column("address", ("地址", "IP地址")),
    Column("zone", ("区域",)),
    Column("vrf", ("VPN实例",)),
    Column("status", ("状态",)),
    Column("unit_code", ("单位编码", "单位")),
    Column("vlan", ()),
    Column("role", ("角色", "用途")),
    Column("mac", ("MAC地址",)),
    Column("description", ("描述", "说明", "备注")),
)


def import_plan(session: Session, principal: Principal, rows: Sequence[Mapping[str, Any]]) -> PlanImportResult:
    """Rows of ``kind`` aggregate, prefix or address (CSV or YAML): all land, or none does.

    Aggregates first, then pools, then blocks (larger first), then addresses, whatever the
    order in the file; an error names the row as the file numbers it (``rows.12.prefix``).
    """
    authorize(principal, "extranet.plan:write")
    order = {"aggregate": 0, "prefix": 1, "address": 2}
    parsed: list[tuple[int, int, int, AggregateCreate | PrefixCreate | AddressCreate]] = []
    errors: list[FieldError] = []
    for n, raw in numbered(rows):
        row = {k: v for k, v in dict(raw).items() if v not in (None, "")}
        kind = str(row.pop("kind", "")).strip()
        if kind not in order:
            errors.append(FieldError(f"rows.{n}.kind", "one of aggregate, prefix, address"))
            continue
        try:
            data: AggregateCreate | PrefixCreate | AddressCreate = (
                AggregateCreate.model_validate(row) if kind == "aggregate"
                else PrefixCreate.model_validate(row) if kind == "prefix" else AddressCreate.model_validate(row))
        except ValidationError as exc:
            errors.extend(field_errors(exc, prefix=("rows", n)))
            continue
        rank = 0
        if isinstance(data, PrefixCreate):
            # Pools before blocks, and larger blocks before the smaller ones inside them.
            rank = (0 if data.status is PrefixStatus.CONTAINER else 1) * 100 + _net(data.prefix, f"rows.{n}").prefixlen
        parsed.append((order[kind], rank, n, data))
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise InvalidInput(f"{errors[0].reason}{more}; nothing imported", errors=errors[:200])
    counts = {"aggregate": 0, "prefix": 0, "address": 0}
    for _, _, n, data in sorted(parsed, key=lambda item: (item[0], item[1], item[2])):
        try:
            with session.begin_nested():
                if isinstance(data, AggregateCreate):
                    create_aggregate(session, principal, data)
                    counts["aggregate"] += 1
                elif isinstance(data, PrefixCreate):
                    create_prefix(session, principal, data)
                    counts["prefix"] += 1
                else:
                    create_address(session, principal, data)
                    counts["address"] += 1
        except (InvalidInput, Conflict, NotFound) as exc:
            # The caller's transaction is rolled back by the raise: nothing of the file stays.
            raise type(exc)(exc.detail, field=f"rows.{n}.{exc.field or 'row'}") from None
    return PlanImportResult(counts["aggregate"], counts["prefix"], counts["address"])


def export_plan(session: Session, principal: Principal) -> list[dict[str, Any]]:
    """The plan as rows import_plan takes back (aggregates, prefixes, addresses)."""
    authorize(principal, "extranet.plan:read")
    rows: list[dict[str, Any]] = [{"kind": "aggregate", "prefix": a.prefix, "description": a.description}
                                  for a in list_aggregates(session, principal)]
    for p in session.scalars(_prefix_query(principal).order_by(Prefix.zone, Prefix.vrf, Prefix.start, Prefix.length)):
        rows.append({"kind": "prefix", "prefix": p.prefix, "zone": p.zone.value, "vrf": p.vrf,
                     "status": p.status.value, "unit_code": p.unit_code, "vlan": p.vlan,
                     "description": p.description})
    addresses = read.within(select(IPAddress).join(IPAddress.prefix), principal, unit=IPAddress.unit_id)
    for a in session.scalars(addresses.order_by(IPAddress.value)):
        rows.append({"kind": "address", "address": a.address, "role": a.role.value, "mac": a.mac,
                     "vrf": a.prefix.vrf, "zone": a.prefix.zone.value, "description": a.description})
    return rows


# ---------------------------------------------------------------- applications


def submit_application(session: Session, principal: Principal, data: ApplicationCreate) -> IPApplication:
    """A unit applies for a block or a number of addresses; without an accepted commitment nothing moves."""
    authorize(principal, "extranet.application:submit")
    if not data.commitment.accepted:
        raise InvalidInput("the security commitment (安全承诺) must be accepted before addresses are handed out",
                           field="commitment.accepted")
    # A department applies for its own unit (or one below it); ops name the unit.
    code = (data.unit_code or principal.unit_code) if principal.is_scoped else data.unit_code
    if code is None:
        raise InvalidInput("name the unit the addresses are for", field="unit_code")
    unit = get_unit(session, principal, code, field_name="unit_code")
    row = IPApplication(unit=unit, unit_id=unit.id, zone=data.zone, vrf=data.vrf, prefix_length=data.prefix_length,
                        count=data.count, purpose=data.purpose, commitment_signer=data.commitment.signer,
                        commitment_signed_on=data.commitment.signed_on or date.today(),
                        commitment_accepted=True, commitment_text=data.commitment.text or COMMITMENT_TEXT,
                        status=ApplicationStatus.SUBMITTED, submitted_by=principal.actor, allocated=[])
    session.add(row)
    session.flush()
    audit.record(session, principal, action="submit", entity="ip_application", entity_id=row.id,
                 after={"zone": row.zone.value, "prefix_length": row.prefix_length, "count": row.count,
                        "purpose": row.purpose, "signer": row.commitment_signer}, unit_id=unit.id)
    return row


def _application_query(principal: Principal) -> Select[IPApplication]:
    return read.within(select(IPApplication), principal, unit=IPApplication.unit_id)


def get_application(session: Session, principal: Principal, app_id: int) -> IPApplication:
    authorize(principal, "extranet.application:read")
    return read.one(session, _application_query(principal).where(IPApplication.id == app_id),
                    missing=f"no IP application with id {app_id}")


def list_applications(session: Session, principal: Principal, *, status: ApplicationStatus | None = None,
                      unit: str | None = None, limit: int = 50, offset: int = 0) -> tuple[list[IPApplication], int]:
    authorize(principal, "extranet.application:read")
    query = _application_query(principal)
    if status is not None:
        query = query.where(IPApplication.status == status)
    if unit is not None:
        query = query.where(under(session, principal, unit, IPApplication.unit_id))
    return read.page(session, query, limit=limit, offset=offset, order_by=(IPApplication.id.desc(),))


def _decide(session: Session, principal: Principal, app: IPApplication, to: ApplicationStatus,
            reason: str | None) -> None:
    """Move a submitted application on, once: the conditional UPDATE is what makes a second approval fail."""
    now = utcnow()
    moved = session.execute(update(IPApplication).where(
        IPApplication.id == app.id, IPApplication.status == ApplicationStatus.SUBMITTED).values(
        status=to, decided_by=principal.actor, decided_at=now, decision_reason=reason)
        .execution_options(synchronize_session=False)).rowcount  # type: ignore[attr-defined]
    if moved != 1:
        session.refresh(app)
        raise Conflict(f"IP application {app.id} is {app.status.value}, not submitted", field="status")
    session.refresh(app)


def approve_application(session: Session, principal: Principal, app_id: int,
                        reason: str | None = None) -> IPApplication:
    """Approve and allocate: the next free aligned block of a pool, or the next free addresses of the unit's blocks."""
    authorize(principal, "extranet.application:decide")
    app = get_application(session, principal, app_id)
    _decide(session, principal, app, ApplicationStatus.APPROVED, reason)
    if app.prefix_length is not None:
        allocated = [_allocate_block(session, principal, app).prefix]
    else:
        allocated = [a.address for a in _allocate_addresses(session, principal, app)]
    app.allocated = allocated
    audit.record(session, principal, action="approve", entity="ip_application", entity_id=app.id,
                 before={"status": "submitted"}, after={"status": "approved", "allocated": allocated},
                 unit_id=app.unit_id)
    return app


def _lock(session: Session, query: Select[Prefix]) -> list[Prefix]:
    """Rows of the query, locked until commit where the database can (PostgreSQL); SQLite has one writer anyway."""
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(of=Prefix)
    return list(session.scalars(query))


def _allocate_block(session: Session, principal: Principal, app: IPApplication) -> Prefix:
    assert app.prefix_length is not None
    pools = _lock(session, select(Prefix).where(Prefix.zone == app.zone, Prefix.vrf == app.vrf,
                                                Prefix.status == PrefixStatus.CONTAINER).order_by(Prefix.start))
    if not pools:
        raise Conflict(f"no address pool in {app.zone.value}/{app.vrf} to allocate from", field="zone")
    size = 2 ** (32 - app.prefix_length)
    taken = sorted(session.execute(select(Prefix.start, Prefix.end).where(
        Prefix.zone == app.zone, Prefix.vrf == app.vrf, Prefix.status != PrefixStatus.CONTAINER)).all())
    for pool in pools:
        if pool.length >= app.prefix_length:
            continue  # a block is carved out of a larger pool, never the pool itself
        candidate = pool.start
        for start, end in taken:
            if end < candidate or start > pool.end:
                continue
            if start >= candidate + size:
                break  # the gap before this block is big enough
            candidate = -(-(end + 1) // size) * size  # the next aligned start after the block
        if candidate + size - 1 <= pool.end:
            net = ipaddress.IPv4Network((candidate, app.prefix_length))
            try:
                with session.begin_nested():
                    return create_prefix(session, principal, PrefixCreate(
                        prefix=str(net), zone=app.zone, vrf=app.vrf, status=PrefixStatus.ACTIVE,
                        unit_code=app.unit.code, description=f"IP 申请 {app.id}: {app.purpose}"[:255]),
                        application_id=app.id, check=False)
            except IntegrityError:
                raise Conflict(f"{net} was allocated by another approval at the same moment; approve again",
                               field="prefix") from None
    raise Conflict(f"no free /{app.prefix_length} left in the {app.zone.label} pools", field="prefix_length")


def _allocate_addresses(session: Session, principal: Principal, app: IPApplication) -> list[IPAddress]:
    assert app.count is not None
    blocks = _lock(session, select(Prefix).where(
        Prefix.zone == app.zone, Prefix.vrf == app.vrf, Prefix.unit_id == app.unit_id,
        Prefix.status == PrefixStatus.ACTIVE).order_by(Prefix.start))
    if not blocks:
        raise Conflict(f"{app.unit.code} holds no block in {app.zone.value}/{app.vrf}: apply for a block first",
                       field="count")
    wanted = app.count
    chosen: list[tuple[Prefix, int]] = []
    for block in blocks:
        first, last = (block.start, block.end) if block.length >= 31 else (block.start + 1, block.end - 1)
        used = set(session.scalars(select(IPAddress.value).where(IPAddress.prefix_id == block.id)))
        # An address already on the wire is not free, whatever the plan says.
        used |= set(session.scalars(select(ArpObservation.value).where(ArpObservation.value.between(first, last))))
        value = first
        while value <= last and len(chosen) < wanted:
            if value not in used:
                chosen.append((block, value))
            value += 1
        if len(chosen) == wanted:
            break
    if len(chosen) < wanted:
        raise Conflict(f"{app.unit.code}'s blocks in {app.zone.value} have {len(chosen)} free addresses, "
                       f"{wanted} asked", field="count")
    rows = []
    for block, value in chosen:
        row = IPAddress(address=str(ipaddress.IPv4Address(value)), value=value, prefix_id=block.id, prefix=block,
                        unit_id=app.unit_id, role=AddressRole.HOST, application_id=app.id,
                        description=f"IP 申请 {app.id}")
        session.add(row)
        rows.append(row)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise Conflict("another approval took some of these addresses at the same moment; approve again",
                       field="count") from None
    return rows


def reject_application(session: Session, principal: Principal, app_id: int, reason: str | None) -> IPApplication:
    authorize(principal, "extranet.application:decide")
    if not reason or len(reason.strip()) < 2:
        raise InvalidInput("say why the application is rejected", field="reason")
    app = get_application(session, principal, app_id)
    _decide(session, principal, app, ApplicationStatus.REJECTED, reason.strip())
    audit.record(session, principal, action="reject", entity="ip_application", entity_id=app.id,
                 before={"status": "submitted"}, after={"status": "rejected", "reason": reason}, unit_id=app.unit_id)
    return app


def cancel_application(session: Session, principal: Principal, app_id: int) -> IPApplication:
    authorize(principal, "extranet.application:submit")
    app = get_application(session, principal, app_id)
    _decide(session, principal, app, ApplicationStatus.CANCELLED, None)
    audit.record(session, principal, action="cancel", entity="ip_application", entity_id=app.id,
                 before={"status": "submitted"}, after={"status": "cancelled"}, unit_id=app.unit_id)
    return app


def release_application(session: Session, principal: Principal, app_id: int) -> IPApplication:
    """Give what an approved application received back to the pool (回收)."""
    authorize(principal, "extranet.application:decide")
    app = get_application(session, principal, app_id)
    moved = session.execute(update(IPApplication).where(
        IPApplication.id == app.id, IPApplication.status == ApplicationStatus.APPROVED).values(
        status=ApplicationStatus.RELEASED).execution_options(synchronize_session=False)).rowcount  # type: ignore[attr-defined]
    if moved != 1:
        raise Conflict(f"IP application {app.id} is {app.status.value}, not approved", field="status")
    session.execute(delete(IPAddress).where(IPAddress.application_id == app.id))
    blocks = list(session.scalars(select(Prefix).where(Prefix.application_id == app.id)))
    for block in blocks:
        # Addresses registered inside the block later go with it: the block is no longer the unit's.
        session.delete(block)
    session.flush()
    session.refresh(app)
    audit.record(session, principal, action="release", entity="ip_application", entity_id=app.id,
                 before={"status": "approved", "allocated": app.allocated}, after={"status": "released"},
                 unit_id=app.unit_id)
    return app
