"""The rules of money (资费 / 计费 / 账单): tariffs per provider cloud and monthly statements.

The one cloud (一朵云) has unified funding: the bureau pays each provider cloud at that cloud's prices and shows
each department what its systems cost. A tariff is a price from a day on; the tariff history is never edited,
only added to, so an old month priced again gives the same bill. A month is *closed* (结账) once it is over and
the bureau has checked it: its lines are stored, and no later price, rename or inventory change rewrites them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from cloudctl.billing.models import StatementLine, StatementMonth, Tariff
from cloudctl.billing.pricing import Charge, PriceBook, TariffRow, Use, charge, month_days, parse_month
from cloudctl.billing.schemas import StatementLinePublic, StatementPublic, StatementTotal, TariffPublic, TariffSet
from cloudctl.compute import service as compute
from cloudctl.compute.models import Server, Volume
from cloudctl.core import audit, read
from cloudctl.core.auth import Principal, authorize
from cloudctl.core.config import get_settings
from cloudctl.core.errors import Conflict, InvalidInput
from cloudctl.core.models import BEIJING, beijing_today, utcnow
from cloudctl.org.service import under

__all__ = [
    "Statement",
    "close_month",
    "default_prices",
    "list_tariffs",
    "price_book",
    "server_use",
    "set_tariff",
    "statement",
    "statement_rows",
    "volume_use",
]


# ---------------------------------------------------------------- tariffs


def default_prices() -> dict[str, Decimal]:
    """The bureau's prices where a cloud has no tariff of its own for a resource (the settings' price_*)."""
    settings = get_settings()
    return {"vcpu": Decimal(str(settings.price_vcpu_month)), "ram_gib": Decimal(str(settings.price_ram_gb_month)),
            "disk_gib": Decimal(str(settings.price_disk_gb_month)),
            "volume_gib": Decimal(str(settings.price_disk_gb_month))}


def list_tariffs(session: Session, principal: Principal, *, cloud: str | None = None, resource: str | None = None,
                 at: date | None = None, limit: int = 50, offset: int = 0) -> tuple[list[TariffPublic], int]:
    """The tariff history, newest first per cloud and resource; with ``at``, only the prices in force that day."""
    authorize(principal, "billing.tariff:read")
    query = select(Tariff).join(Tariff.cloud)
    if cloud is not None:
        query = query.where(Tariff.cloud_id == compute.cloud_filter(session, principal, cloud).id)
    if resource is not None:
        query = query.where(Tariff.resource == resource)
    everything = list(session.scalars(query))
    # When each price stopped: the next row of the same cloud, resource and family took over the day before.
    ends: dict[int, date | None] = {}
    history: dict[tuple[int, str, str], list[Tariff]] = defaultdict(list)
    for row in everything:
        history[(row.cloud_id, row.resource, row.flavor_family)].append(row)
    for rows in history.values():
        rows.sort(key=lambda r: r.effective_from)
        for row, following in zip(rows, [*rows[1:], None], strict=True):
            ends[row.id] = following.effective_from - timedelta(days=1) if following is not None else None
    if at is not None:
        everything = [r for r in everything if r.effective_from <= at and _until(ends[r.id]) >= at]
    everything.sort(key=lambda r: (r.cloud.name, r.resource, r.flavor_family, -r.effective_from.toordinal(), r.id))
    read.bounds(limit, offset)
    shown = everything[offset:offset + limit]
    return [TariffPublic.model_validate(r).model_copy(update={"effective_to": ends[r.id]}) for r in shown], \
        len(everything)


def _until(end: date | None) -> date:
    return date.max if end is None else end


def set_tariff(session: Session, principal: Principal, data: TariffSet) -> TariffPublic:
    """A price from a day on. A day of a closed month is refused: that month's bill is settled."""
    authorize(principal, "billing.tariff:write")
    cloud = compute.get_cloud(session, principal, data.cloud)
    closed = session.scalar(select(StatementMonth.month).where(
        StatementMonth.month >= data.effective_from.strftime("%Y-%m")).order_by(StatementMonth.month).limit(1))
    if closed is not None:
        raise Conflict(f"{closed} is closed (已结账); a new price can start after it, not on "
                       f"{data.effective_from.isoformat()}", field="effective_from")
    row = session.scalar(select(Tariff).where(
        Tariff.cloud_id == cloud.id, Tariff.resource == data.resource, Tariff.flavor_family == data.flavor_family,
        Tariff.effective_from == data.effective_from))
    before = None
    if row is None:
        row = Tariff(cloud=cloud, cloud_id=cloud.id, resource=data.resource, flavor_family=data.flavor_family,
                     effective_from=data.effective_from, price=data.price)
        session.add(row)
    else:
        before = {"price": str(row.price), "note": row.note}
    row.price, row.note, row.set_by, row.set_at = data.price, data.note, principal.actor, utcnow()
    session.flush()
    audit.record(session, principal, action="set", entity="tariff",
                 entity_id=f"{cloud.name}:{data.resource}:{data.flavor_family or '*'}@{data.effective_from}",
                 before=before, after={"price": str(data.price), "note": data.note})
    return _tariff_public(session, principal, row.id)


def _tariff_public(session: Session, principal: Principal, tariff_id: int) -> TariffPublic:
    row = session.get(Tariff, tariff_id)
    assert row is not None
    rows, _ = list_tariffs(session, principal, cloud=row.cloud.name, resource=row.resource,
                           limit=get_settings().api_page_limit_max)
    return next(r for r in rows if r.id == tariff_id)


def price_book(session: Session) -> PriceBook:
    rows = [TariffRow(t.cloud_id, t.resource, t.flavor_family, t.effective_from, t.price)
            for t in session.scalars(select(Tariff))]
    return PriceBook(rows, default_prices())


# ---------------------------------------------------------------- statements


@dataclass(frozen=True, slots=True)
class Statement:
    month: str
    closed: StatementMonth | None
    lines: list[StatementLinePublic]

    @property
    def total(self) -> Decimal:
        return sum((line.cost for line in self.lines), Decimal("0.00"))

    def totals(self) -> list[StatementTotal]:
        """Per unit and business system: how many servers ran and what they cost."""
        groups: dict[tuple[str, str], tuple[str, set[str], Decimal]] = {}
        for line in self.lines:
            name, servers, cost = groups.get((line.unit_code, line.business_system), (line.unit_name, set(),
                                                                                       Decimal("0.00")))
            if not line.flavor.startswith("volume:"):
                servers.add(f"{line.cloud}/{line.server}")
            groups[(line.unit_code, line.business_system)] = (name, servers, cost + line.cost)
        return [StatementTotal(unit_code=code, unit_name=name, business_system=system, servers=len(servers),
                               cost=cost) for (code, system), (name, servers, cost) in sorted(groups.items())]

    def public(self) -> StatementPublic:
        return StatementPublic(month=self.month, closed=self.closed is not None,
                               closed_at=self.closed.closed_at if self.closed else None, total=self.total,
                               totals=self.totals(), lines=self.lines)


def statement(session: Session, principal: Principal, month: str, *, unit: str | None = None,
              book: PriceBook | None = None) -> Statement:
    """The month's statement of the units the principal sees (of ``unit`` and those under it, if given): the
    stored lines of a closed month, else the month priced now from the inventory and the tariff history."""
    authorize(principal, "billing.statement:read")
    first = parse_month(month)
    closed = session.scalar(select(StatementMonth).where(StatementMonth.month == month))
    if closed is not None:
        query = read.within(select(StatementLine).where(StatementLine.month_id == closed.id), principal,
                            unit=StatementLine.unit_id)
        if unit is not None:
            query = query.where(under(session, principal, unit, StatementLine.unit_id))
        stored = session.scalars(query.order_by(StatementLine.unit_code, StatementLine.business_system,
                                                StatementLine.cloud_name, StatementLine.server_name,
                                                StatementLine.first_day, StatementLine.id))
        return Statement(month, closed, [StatementLinePublic.model_validate(line) for line in stored])
    charges = _price(session, principal, first, unit=unit, book=book)
    return Statement(month, None, [StatementLinePublic.model_validate(_as_line(c, 0)) for c in charges])


def close_month(session: Session, principal: Principal, month: str) -> Statement:
    """Freeze a month that is over: its lines (every unit's) are stored as priced now and read from then on."""
    authorize(principal, "billing.statement:close")
    first = parse_month(month)
    _, last, _ = month_days(first)
    if last >= beijing_today():
        raise InvalidInput(f"{month} is not over yet; a month is closed after its last day", field="month")
    if session.scalar(select(StatementMonth.id).where(StatementMonth.month == month)) is not None:
        raise Conflict(f"{month} is already closed (已结账)", field="month")
    closed = StatementMonth(month=month, closed_by=principal.actor, closed_at=utcnow())
    session.add(closed)
    session.flush()
    charges = _price(session, principal, first, unit=None, scoped=False)
    session.add_all(_as_line(c, closed.id) for c in charges)
    session.flush()
    total = sum((c.cost for c in charges), Decimal("0.00"))
    audit.record(session, principal, action="close", entity="statement_month", entity_id=month,
                 after={"lines": len(charges), "total_cny": str(total)})
    return statement(session, principal, month)


def _price(session: Session, principal: Principal, first: date, *, unit: str | None,
           scoped: bool = True, book: PriceBook | None = None) -> list[Charge]:
    start, _, _ = month_days(first)
    # Servers deleted before the month began are not on its bill.
    began = datetime.combine(start, time(0), tzinfo=BEIJING)
    query = select(Server).join(Server.cloud).where(Server.unit_id.is_not(None),
                                                    or_(Server.status != "DELETED", Server.updated_at >= began))
    if scoped:
        query = read.within(query, principal, unit=Server.unit_id)
    if unit is not None:
        query = query.where(under(session, principal, unit, Server.unit_id))
    uses = [server_use(server) for server in session.scalars(query.order_by(Server.id))]
    volumes = select(Volume).where(Volume.unit_id.is_not(None), or_(Volume.status != "deleted",
                                                                     Volume.updated_at >= began))
    if scoped:
        volumes = read.within(volumes, principal, unit=Volume.unit_id)
    if unit is not None:
        volumes = volumes.where(under(session, principal, unit, Volume.unit_id))
    uses += [volume_use(volume) for volume in session.scalars(volumes.order_by(Volume.id))]
    return charge([u for u in uses if u is not None], first, book or price_book(session))


def volume_use(volume: Volume) -> Use | None:
    """A block volume as pricing sees it: its GiB at its type's price, from its creation to its deletion."""
    created = volume.provider_created_at or volume.created_at
    if volume.unit is None or created is None:
        return None
    gone = beijing_today(volume.updated_at) if volume.status == "deleted" else None
    return Use(server_id=volume.id, server_name=volume.name, unit_id=volume.unit.id, unit_code=volume.unit.code,
               unit_name=volume.unit.name, business_system_id=volume.business_system_id,
               business_system=volume.business_system_name or "—", cloud_id=volume.cloud_id,
               cloud_name=volume.cloud.name, flavor=f"volume:{volume.volume_type}", vcpus=0, ram_mb=0,
               disk_gib=volume.size_gib, status=volume.status, first_day=beijing_today(created), last_day=gone,
               kind="volume", disk_resource=f"volume_gib:{volume.volume_type}")


def server_use(server: Server) -> Use | None:
    launched = server.launched_at or server.created_at
    if server.unit is None or launched is None:
        return None
    # A deleted server's row was last changed when it was found deleted.
    gone = beijing_today(server.updated_at) if server.status == "DELETED" else None
    return Use(server_id=server.id, server_name=server.name, unit_id=server.unit.id, unit_code=server.unit.code,
               unit_name=server.unit.name, business_system_id=server.business_system_id,
               business_system=server.business_system_name or "—", cloud_id=server.cloud_id,
               cloud_name=server.cloud.name, flavor=server.flavor, vcpus=server.vcpus, ram_mb=server.ram_mb,
               disk_gib=server.disk_gb, status=server.status, first_day=beijing_today(launched), last_day=gone)


def _as_line(item: Charge, month_id: int) -> StatementLine:
    use = item.use
    return StatementLine(month_id=month_id, unit_id=use.unit_id, business_system_id=use.business_system_id,
                         cloud_id=use.cloud_id, server_id=use.server_id if use.kind == "server" else None,
                         unit_code=use.unit_code,
                         unit_name=use.unit_name, business_system=use.business_system, cloud_name=use.cloud_name,
                         server_name=use.server_name, flavor=use.flavor, vcpus=use.vcpus, ram_mb=use.ram_mb,
                         disk_gib=use.disk_gib, first_day=item.first_day, last_day=item.last_day, days=item.days,
                         vcpu_price=item.vcpu_price, ram_gib_price=item.ram_gib_price,
                         disk_gib_price=item.disk_gib_price, cost=item.cost)


def statement_rows(lines: Sequence[StatementLinePublic]) -> tuple[list[str], list[list[object]]]:
    """A statement's lines as a header and rows for CSV and .xlsx (amounts as numbers, names as text)."""
    header = ["unit_code", "unit_name", "business_system", "cloud", "server", "flavor", "vcpus", "ram_gib",
              "disk_gib", "first_day", "last_day", "days", "vcpu_price", "ram_gib_price", "disk_gib_price",
              "cost_cny"]
    rows: list[list[object]] = [[
        line.unit_code, line.unit_name, line.business_system, line.cloud, line.server, line.flavor, line.vcpus,
        line.ram_gib, line.disk_gib, line.first_day.isoformat(), line.last_day.isoformat(), line.days,
        line.vcpu_price, line.ram_gib_price, line.disk_gib_price, line.cost] for line in lines]
    return header, rows
