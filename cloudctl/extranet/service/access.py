"""Access to the extranet: each unit's lines, and the access rate (接入率) per level and per county.

A unit counts as connected when it has at least one active line *and* the network shows it:
one of its devices answered a collection within ``extranet_fresh_hours``. A line that exists on
paper but carries nothing is the gap the bureau's annual report must not paper over.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import String, func, select, type_coerce
from sqlalchemy.orm import Session

from cloudctl.core import audit
from cloudctl.core.auth import Principal, authorize
from cloudctl.core.config import get_settings
from cloudctl.core.errors import InvalidInput, NotFound
from cloudctl.core.models import utcnow
from cloudctl.extranet.models import AccessLink, LinkStatus, NetworkDevice
from cloudctl.extranet.schemas import AccessRateRow, LinkCreate, LinkUpdate
from cloudctl.org.models import Unit, UnitKind
from cloudctl.org.service import get_unit, scoped

__all__ = ["REQUIRED_KINDS", "access_rate", "connected_units", "create_link", "get_link", "list_links",
           "update_link"]

LINK_AUDIT = ("unit_code", "carrier", "line_type", "bandwidth_mbps", "role", "status", "uses_shared_exit")
# Every unit of these kinds must connect: municipal units horizontally, counties and below vertically.
REQUIRED_KINDS = (UnitKind.DEPARTMENT, UnitKind.MUNICIPAL_UNIT, UnitKind.COUNTY, UnitKind.TOWN, UnitKind.VILLAGE)
HORIZONTAL_KINDS = frozenset((UnitKind.DEPARTMENT.value, UnitKind.MUNICIPAL_UNIT.value))


def create_link(session: Session, principal: Principal, data: LinkCreate) -> AccessLink:
    authorize(principal, "extranet.link:write")
    unit = get_unit(session, principal, data.unit_code, field_name="unit_code")
    if unit.kind is UnitKind.CITY:
        raise InvalidInput("the city itself is the extranet's centre, not a unit that connects to it",
                           field="unit_code")
    link = AccessLink(unit=unit, unit_id=unit.id, **data.model_dump(exclude={"unit_code"}))
    session.add(link)
    session.flush()
    audit.record(session, principal, action="create", entity="access_link", entity_id=link.id,
                 after=audit.snapshot(link, LINK_AUDIT), unit_id=unit.id)
    return link


def get_link(session: Session, principal: Principal, link_id: int) -> AccessLink:
    authorize(principal, "extranet.link:read")
    query = scoped(select(AccessLink).join(AccessLink.unit).where(AccessLink.id == link_id), principal)
    link = session.scalar(query)
    if link is None:
        raise NotFound(f"no access link with id {link_id}", field="id")
    return link


def list_links(session: Session, principal: Principal, *, unit: str | None = None,
               status: LinkStatus | None = None, limit: int = 50, offset: int = 0) -> tuple[list[AccessLink], int]:
    authorize(principal, "extranet.link:read")
    query = scoped(select(AccessLink).join(AccessLink.unit), principal)
    if unit is not None:
        owner = get_unit(session, principal, unit, field_name="unit")
        query = query.where(Unit.path.startswith(owner.path))
    if status is not None:
        query = query.where(AccessLink.status == status)
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    return list(session.scalars(query.order_by(Unit.code, AccessLink.id).limit(limit).offset(offset))), total


def update_link(session: Session, principal: Principal, link_id: int, data: LinkUpdate) -> AccessLink:
    authorize(principal, "extranet.link:write")
    link = get_link(session, principal, link_id)
    before = audit.snapshot(link, LINK_AUDIT)
    for key, value in data.model_dump(exclude_unset=True).items():
        if value is None and key != "description":
            raise InvalidInput("must not be null", field=key)
        setattr(link, key, value)
    session.flush()
    audit.record(session, principal, action="update", entity="access_link", entity_id=link.id, before=before,
                 after=audit.snapshot(link, LINK_AUDIT), unit_id=link.unit_id)
    return link


def connected_units(session: Session, *, fresh_hours: float | None = None) -> set[int]:
    """Ids of the units with an active line and a device that answered a collection recently."""
    hours = get_settings().extranet_fresh_hours if fresh_hours is None else fresh_hours
    since = utcnow() - timedelta(hours=hours)
    with_line = select(AccessLink.unit_id).where(AccessLink.status == LinkStatus.ACTIVE)
    answered = select(NetworkDevice.unit_id).where(NetworkDevice.last_success_at >= since)
    return set(session.connection().scalars(with_line.intersect(answered)))


def access_rate(session: Session, principal: Principal, *, fresh_hours: float | None = None) -> list[AccessRateRow]:
    """Rows for horizontal and vertical access, then one per county (its towns and villages with it)."""
    authorize(principal, "extranet.link:read")
    connected = connected_units(session, fresh_hours=fresh_hours)
    # Every unit of the city passes through here (17,000 in a province's ten cities): the kind is read as its
    # stored text and the rows through Core, not the ORM, which halves the time of the exporter's scrape.
    query = select(Unit.id, Unit.code, type_coerce(Unit.kind, String), Unit.path).where(Unit.kind.in_(REQUIRED_KINDS))
    query = scoped(query, principal)
    units = session.connection().execute(query.order_by(Unit.code)).all()
    counties = {uid: (code, name) for uid, code, name in session.execute(
        select(Unit.id, Unit.code, Unit.name).where(Unit.kind == UnitKind.COUNTY))}
    groups: dict[str, tuple[str, list[tuple[int, str]]]] = {
        "horizontal": ("横向接入 (市直单位)", []), "vertical": ("纵向接入 (县、乡镇、村)", [])}
    horizontal, vertical = groups["horizontal"][1], groups["vertical"][1]
    for uid, code, kind, path in units:
        if kind in HORIZONTAL_KINDS:
            horizontal.append((uid, code))
            continue
        vertical.append((uid, code))
        # A county hangs under the city ("/city/county/…"): the path's second id is the unit's county.
        parts = path.split("/", 3)
        county_id = int(parts[2]) if len(parts) > 2 and parts[2] else uid
        county_code, county_name = counties.get(county_id, (code, code))
        groups.setdefault(county_code, (county_name, []))[1].append((uid, code))
    rows = []
    for scope_key, (name, members) in groups.items():
        if not members and scope_key not in ("horizontal", "vertical"):
            continue
        missing = [code for uid, code in members if uid not in connected]
        required = len(members)
        rows.append(AccessRateRow(scope=scope_key, name=name, required=required, connected=required - len(missing),
                                  rate=round((required - len(missing)) / required, 4) if required else 1.0,
                                  missing=missing))
    return rows
