"""Access to the extranet: each unit's lines, and the access rate (接入率) per level and per county.

A unit counts as connected when it has at least one active line *and* the network shows it:
one of its devices answered a collection within ``extranet_fresh_hours``. A line that exists on
paper but carries nothing is the gap the bureau's annual report must not paper over.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Select, case, func, literal, select
from sqlalchemy.orm import Session, aliased

from cloudctl.core import audit, read
from cloudctl.core.auth import Principal, authorize
from cloudctl.core.config import get_settings
from cloudctl.core.errors import InvalidInput
from cloudctl.core.models import utcnow
from cloudctl.extranet.models import AccessLink, LinkStatus, NetworkDevice
from cloudctl.extranet.schemas import AccessRateRow, LinkCreate, LinkUpdate
from cloudctl.org.models import Unit, UnitKind
from cloudctl.org.service import get_unit, under

__all__ = ["NOT_APPLICABLE", "REQUIRED_KINDS", "access_rate", "connected_units", "create_link", "get_link",
           "list_links", "update_link"]

LINK_AUDIT = ("unit_code", "carrier", "line_type", "bandwidth_mbps", "role", "status", "uses_shared_exit")
# Every unit of these kinds must connect: municipal units horizontally, counties and below vertically.
REQUIRED_KINDS = (UnitKind.DEPARTMENT, UnitKind.MUNICIPAL_UNIT, UnitKind.COUNTY, UnitKind.TOWN, UnitKind.VILLAGE)
HORIZONTAL_KINDS = (UnitKind.DEPARTMENT, UnitKind.MUNICIPAL_UNIT)
HORIZONTAL_GROUP = 0  # no unit has id 0
NOT_APPLICABLE = "不适用 not applicable: no unit in this scope must connect"


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
    query = read.within(select(AccessLink).where(AccessLink.id == link_id), principal, unit=AccessLink.unit_id)
    return read.one(session, query, missing=f"no access link with id {link_id}")


def list_links(session: Session, principal: Principal, *, unit: str | None = None,
               status: LinkStatus | None = None, limit: int = 50, offset: int = 0) -> tuple[list[AccessLink], int]:
    authorize(principal, "extranet.link:read")
    query = read.within(select(AccessLink).join(AccessLink.unit), principal, unit=AccessLink.unit_id)
    if unit is not None:
        query = query.where(under(session, principal, unit, AccessLink.unit_id))
    if status is not None:
        query = query.where(AccessLink.status == status)
    return read.page(session, query, limit=limit, offset=offset, order_by=(Unit.code, AccessLink.id))


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


def _connected(fresh_hours: float | None) -> Select[tuple[int]]:
    hours = get_settings().extranet_fresh_hours if fresh_hours is None else fresh_hours
    since = utcnow() - timedelta(hours=hours)
    with_line = select(AccessLink.unit_id).where(AccessLink.status == LinkStatus.ACTIVE)
    answered = select(NetworkDevice.unit_id).where(NetworkDevice.last_success_at >= since)
    return select(with_line.intersect(answered).subquery().c[0])


def connected_units(session: Session, *, fresh_hours: float | None = None) -> set[int]:
    """Ids of the units with an active line and a device that answered a collection recently."""
    return set(session.connection().scalars(_connected(fresh_hours)))


def access_rate(session: Session, principal: Principal, *, fresh_hours: float | None = None,
                with_missing: bool = True) -> list[AccessRateRow]:
    """Rows for horizontal and vertical access, then one per county (its towns and villages with it).

    Counted in SQL, one GROUP BY over the units (17,000 in a province's ten cities, which the exporter
    reads on every refresh): municipal units form one group, every other unit is grouped under its
    county: itself, its parent or its grandparent, as ALLOWED_PARENTS has it (town under county,
    village under town). Only the units still missing are read row by row, and only when
    ``with_missing`` (the exporter needs counts only).
    """
    authorize(principal, "extranet.link:read")
    parent = aliased(Unit)
    county = case((Unit.kind == UnitKind.COUNTY, Unit.id), (Unit.kind == UnitKind.TOWN, Unit.parent_id),
                  else_=parent.parent_id)
    group = case((Unit.kind.in_(HORIZONTAL_KINDS), literal(HORIZONTAL_GROUP)), else_=county).label("group_key")
    is_connected = Unit.id.in_(_connected(fresh_hours))
    required = (select(group, func.count(), func.sum(case((is_connected, 1), else_=0))).select_from(Unit)
                .outerjoin(parent, parent.id == Unit.parent_id).where(Unit.kind.in_(REQUIRED_KINDS)))
    counts = {key: (int(n), int(up or 0)) for key, n, up in
              session.execute(read.within(required, principal, unit=Unit.id).group_by(group))}
    missing: dict[int, list[tuple[str, str]]] = {}
    if with_missing:
        absent = (select(group, Unit.code, Unit.name).select_from(Unit).outerjoin(parent, parent.id == Unit.parent_id)
                  .where(Unit.kind.in_(REQUIRED_KINDS), ~is_connected))
        for key, code, unit_name in session.execute(read.within(absent, principal, unit=Unit.id)
                                                    .order_by(Unit.code)):
            missing.setdefault(key, []).append((code, unit_name))
    counties = {uid: (code, name) for uid, code, name in session.execute(
        select(Unit.id, Unit.code, Unit.name).where(Unit.kind == UnitKind.COUNTY))}

    def row(scope: str, name: str, keys: list[int]) -> AccessRateRow:
        total = sum(counts[k][0] for k in keys)
        up = sum(counts[k][1] for k in keys)
        absent = sorted(unit for k in keys for unit in missing.get(k, ()))
        # No unit here must connect (a department's vertical access, a county's horizontal): the rate is not
        # applicable, never 100 %.
        return AccessRateRow(scope=scope, name=name, required=total, connected=up,
                             rate=round(up / total, 4) if total else None,
                             rate_reason=None if total else NOT_APPLICABLE,
                             missing=[code for code, _ in absent], missing_names=[n for _, n in absent])

    vertical = sorted((counties[k], k) for k in counts if k != HORIZONTAL_GROUP)
    rows = [row("horizontal", "横向接入 (市直单位)", [HORIZONTAL_GROUP] if HORIZONTAL_GROUP in counts else []),
            row("vertical", "纵向接入 (县、乡镇、村)", [k for _, k in vertical])]
    rows += [row(code, name, [k]) for (code, name), k in vertical]
    return rows
