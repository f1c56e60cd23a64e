"""Budgets (预算): a unit's money for its cloud resources in a year, against what it has committed.

The *committed* cost of a year is what the unit's own servers cost in the months gone by (the stored statement of
a closed month, the priced one of an open month), this month to its end, and the months left of the year at the
prices of today, as long as those servers keep running. A request adds its servers' cost from today to the end
of the year. A request that would take the committed cost over a budget takes the extra approval step (the
department leader's, and never an automatic approval), or is refused, as ``budget_over`` says; the unit and ops
are told when the committed cost reaches each of ``budget_warn_percent`` of a budget.

Budgets cover a unit's own servers, not its sub-units' (a 二级预算单位 has a budget of its own); a business
system's budget covers that system's servers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from cloudctl import notify
from cloudctl.billing.models import Budget, StatementLine, StatementMonth
from cloudctl.billing.pricing import CENT, DISK_ONLY, PriceBook, Use, charge, month_days
from cloudctl.billing.schemas import BudgetPublic, BudgetSet
from cloudctl.billing.service import price_book, server_use, volume_use
from cloudctl.compute.models import ResourceRequest, Server, Volume
from cloudctl.compute.provisioning import register_submission_check
from cloudctl.core import audit, read
from cloudctl.core.auth import Principal, authorize
from cloudctl.core.config import get_settings
from cloudctl.core.errors import Conflict, InvalidInput
from cloudctl.core.models import BEIJING, beijing_today, utcnow
from cloudctl.notify.sender import reminder
from cloudctl.org.service import get_system, get_unit, under

__all__ = ["budget_status", "budget_statuses", "check_request", "committed_cost", "committed_costs", "list_budgets",
           "remind_budgets", "set_budget"]


@dataclass(frozen=True, slots=True)
class Committed:
    spent: Decimal  # the months before this one
    this_month: Decimal  # this month to its end
    ahead: Decimal  # the months after this one, at today's prices
    monthly: Decimal  # a month of what runs now, at today's prices

    @property
    def total(self) -> Decimal:
        return self.spent + self.this_month + self.ahead


def set_budget(session: Session, principal: Principal, data: BudgetSet) -> BudgetPublic:
    """A unit's (or one of its business systems') budget for a year; set again, the amount is replaced."""
    authorize(principal, "billing.budget:write")
    unit = get_unit(session, principal, data.unit, field_name="unit")
    system_id = None
    if data.business_system is not None:
        system = get_system(session, principal, data.business_system)
        if system.unit_id != unit.id:
            raise InvalidInput(f"business system {system.id} is not {unit.code}'s", field="business_system")
        system_id = system.id
    budget = session.scalar(select(Budget).where(Budget.unit_id == unit.id, Budget.year == data.year,
                                                 Budget.system_key == (system_id or 0)))
    before = None
    if budget is None:
        budget = Budget(unit=unit, unit_id=unit.id, year=data.year, business_system_id=system_id,
                        system_key=system_id or 0, amount=data.amount)
        session.add(budget)
    else:
        before = {"amount": str(budget.amount), "note": budget.note}
        if data.amount > budget.amount:
            budget.warned_percent = 0  # more money: the thresholds are told afresh
    budget.amount, budget.note, budget.set_by, budget.set_at = data.amount, data.note, principal.actor, utcnow()
    session.flush()
    audit.record(session, principal, action="set", entity="budget",
                 entity_id=f"{unit.code}:{data.year}:{system_id or '*'}", before=before,
                 after={"amount": str(data.amount), "note": data.note}, unit_id=unit.id)
    return budget_status(session, budget)


def list_budgets(session: Session, principal: Principal, *, year: int | None = None, unit: str | None = None,
                 limit: int = 50, offset: int = 0) -> tuple[list[BudgetPublic], int]:
    """The budgets the principal sees (a department its subtree's), each with its committed cost."""
    authorize(principal, "billing.budget:read")
    query = read.within(select(Budget), principal, unit=Budget.unit_id)
    if year is not None:
        query = query.where(Budget.year == year)
    if unit is not None:
        query = query.where(under(session, principal, unit, Budget.unit_id))
    rows, total = read.page(session, query, limit=limit, offset=offset,
                            order_by=(Budget.year.desc(), Budget.unit_id, Budget.system_key, Budget.id))
    return budget_statuses(session, rows), total


def budget_status(session: Session, budget: Budget, *, book: PriceBook | None = None,
                  today: date | None = None, committed: Committed | None = None) -> BudgetPublic:
    if committed is None:
        committed = committed_cost(session, budget.unit_id, budget.business_system_id, budget.year, book=book,
                                   today=today)
    return BudgetPublic(
        id=budget.id, unit_code=budget.unit_code, unit_name=budget.unit.name, year=budget.year,
        business_system_id=budget.business_system_id, business_system=budget.business_system_name,
        amount=budget.amount, spent=committed.spent, this_month=committed.this_month, ahead=committed.ahead,
        committed=committed.total, monthly=committed.monthly,
        percent=_percent(committed.total, budget.amount), over=committed.total > budget.amount, note=budget.note,
        set_by=budget.set_by, set_at=budget.set_at)


def budget_statuses(session: Session, budgets: Sequence[Budget], *, book: PriceBook | None = None,
                    today: date | None = None) -> list[BudgetPublic]:
    """:func:`budget_status` of many budgets, each year's inventory read and priced once for all of them."""
    book = book or price_book(session)
    by_year: dict[int, list[Budget]] = defaultdict(list)
    for budget in budgets:
        by_year[budget.year].append(budget)
    committed: dict[int, Committed] = {}
    for year, group in by_year.items():
        keys = [(b.unit_id, b.business_system_id) for b in group]
        costs = committed_costs(session, keys, year, book=book, today=today)
        committed.update((b.id, costs[(b.unit_id, b.business_system_id)]) for b in group)
    return [budget_status(session, b, committed=committed[b.id]) for b in budgets]


def _percent(part: Decimal, whole: Decimal) -> float | None:
    return round(float(part / whole * 100), 1) if whole > 0 else None


Key = tuple[int, int | None]  # (unit id, business system id or None for the whole unit)


def committed_cost(session: Session, unit_id: int, system_id: int | None, year: int, *,
                   book: PriceBook | None = None, today: date | None = None) -> Committed:
    """What the unit's own servers (of one system, if given) cost in ``year``: spent, this month, months ahead."""
    return committed_costs(session, [(unit_id, system_id)], year, book=book, today=today)[(unit_id, system_id)]


def committed_costs(session: Session, keys: Sequence[Key], year: int, *, book: PriceBook | None = None,
                    today: date | None = None) -> dict[Key, Committed]:
    """:func:`committed_cost` of many units (or their systems) at once: one read of the servers and of the closed
    months' lines, and each open month priced once."""
    today = today or beijing_today()
    book = book or price_book(session)
    current = today.replace(day=1)
    units = sorted({unit for unit, _ in keys})
    began = datetime.combine(date(year, 1, 1), datetime.min.time(), tzinfo=BEIJING)
    servers: list[Use] = []
    for start in range(0, len(units), 500):
        query = select(Server).where(Server.unit_id.in_(units[start:start + 500]),
                                     or_(Server.status != "DELETED", Server.updated_at >= began))
        servers.extend(u for u in (server_use(s) for s in session.scalars(query.order_by(Server.id)))
                       if u is not None)
        held = select(Volume).where(Volume.unit_id.in_(units[start:start + 500]),
                                    or_(Volume.status != "deleted", Volume.updated_at >= began))
        servers.extend(u for u in (volume_use(v) for v in session.scalars(held.order_by(Volume.id))) if u is not None)

    def keys_of(unit_id: int, system_id: int | None) -> tuple[Key, Key]:
        return (unit_id, None), (unit_id, system_id)

    spent: dict[Key, Decimal] = defaultdict(Decimal)
    this_month: dict[Key, Decimal] = defaultdict(Decimal)
    closed = {row.month: row.id for row in session.scalars(select(StatementMonth).where(
        StatementMonth.month.like(f"{year}-%")))}
    if closed:
        for start in range(0, len(units), 500):
            for unit_id, system_id, cost in session.execute(
                    select(StatementLine.unit_id, StatementLine.business_system_id, StatementLine.cost).where(
                        StatementLine.month_id.in_(list(closed.values())),
                        StatementLine.unit_id.in_(units[start:start + 500]))):
                for key in set(keys_of(unit_id, system_id)):
                    spent[key] += cost
    months_ahead = 0
    for number in range(1, 13):
        first = date(year, number, 1)
        if first > current:
            months_ahead += 1
            continue
        if first.strftime("%Y-%m") in closed:
            continue
        target = this_month if first == current else spent
        for line in charge(servers, first, book):
            for key in set(keys_of(line.use.unit_id, line.use.business_system_id)):
                target[key] += line.cost
    monthly: dict[Key, Decimal] = defaultdict(Decimal)
    for use in servers:
        if use.last_day is None:
            cost = (book.price(use.cloud_id, use.disk_resource, use.flavor, today) * use.disk_gib
                    if use.kind == "volume" else
                    _month_of(book, use.cloud_id, use.flavor, use.vcpus, use.ram_mb, use.disk_gib, today,
                              disk_only=use.status in DISK_ONLY))
            for key in set(keys_of(use.unit_id, use.business_system_id)):
                monthly[key] += cost
    answers = {}
    for key in keys:
        rate = monthly[key].quantize(CENT, rounding=ROUND_HALF_UP)
        answers[key] = Committed(spent[key].quantize(CENT), this_month[key].quantize(CENT), rate * months_ahead,
                                 rate)
    return answers


def _month_of(book: PriceBook, cloud_id: int, flavor: str, vcpus: int, ram_mb: int, disk_gib: int, day: date,
              *, disk_only: bool = False) -> Decimal:
    disk = book.price(cloud_id, "disk_gib", flavor, day) * disk_gib
    if disk_only:
        return disk
    return (book.price(cloud_id, "vcpu", flavor, day) * vcpus
            + book.price(cloud_id, "ram_gib", flavor, day) * Decimal(ram_mb) / 1024 + disk)


def request_cost(request: ResourceRequest, book: PriceBook, today: date) -> Decimal:
    """What a request's VMs would cost from today to the end of the year, at today's prices."""
    monthly = sum(((book.price(request.cloud_id, f"volume_gib:{item.flavor}", item.flavor, today) * item.disk_gb
                    if item.kind == "volume" else
                    _month_of(book, request.cloud_id, item.flavor, item.vcpus, item.ram_mb, item.disk_gb, today))
                   * item.count for item in request.items if item.kind in ("vm", "volume")), Decimal(0))
    _, last, days = month_days(today.replace(day=1))
    months_left = Decimal((last - today).days + 1) / days + (12 - today.month)
    return (monthly * months_left).quantize(CENT, rounding=ROUND_HALF_UP)


def check_request(session: Session, principal: Principal, request: ResourceRequest) -> str | None:
    """The budgets of this year a request would go over: refused, or why it takes the extra approval step."""
    mode = get_settings().budget_over
    if mode == "warn" or not any(item.kind in ("vm", "volume") for item in request.items):
        return None
    today = beijing_today()
    budgets = list(session.scalars(select(Budget).where(
        Budget.unit_id == request.unit_id, Budget.year == today.year,
        Budget.system_key.in_((0, request.business_system_id)))))
    if not budgets:
        return None
    book = price_book(session)
    added = request_cost(request, book, today)
    over = []
    for budget in sorted(budgets, key=lambda b: b.system_key):
        committed = committed_cost(session, budget.unit_id, budget.business_system_id, budget.year, book=book,
                                   today=today).total
        if committed + added > budget.amount:
            whose = f"业务系统「{budget.business_system_name}」" if budget.business_system_id else request.unit_code
            over.append(f"{whose} {budget.year} 年预算 {budget.amount:,.2f} 元：已承诺 {committed:,.2f} 元，"
                        f"本申请至年底 {added:,.2f} 元")
    if not over:
        return None
    if mode == "refuse":
        raise Conflict("over budget (超出预算): " + "；".join(over), field="budget")
    return "超出预算：" + "；".join(over)


register_submission_check("budget", check_request)


@reminder("billing.budgets")
def remind_budgets(session: Session, now: datetime) -> int:
    """Tell the unit and ops once when a budget's committed cost reaches each threshold (this year's budgets)."""
    thresholds = sorted(set(get_settings().budget_warn_percent))
    if not thresholds:
        return 0
    today = beijing_today(now)
    book = price_book(session)
    emitted = 0
    rows = list(session.scalars(select(Budget).where(Budget.year == today.year).order_by(Budget.id)))
    for budget, status in zip(rows, budget_statuses(session, rows, book=book, today=today), strict=True):
        if status.percent is None:
            continue
        reached = [t for t in thresholds if status.percent >= t and t > budget.warned_percent]
        if not reached:
            continue
        level = max(reached)
        event = notify.emit(
            session, "billing.budget.threshold", unit_id=budget.unit_id, entity="budget", entity_id=budget.id,
            key=f"billing.budget.threshold:{budget.id}:{level}",
            data={"year": budget.year, "scope": f"业务系统「{status.business_system}」" if status.business_system
                  else "全部云资源", "amount": f"{budget.amount:,.2f}", "committed": f"{status.committed:,.2f}",
                  "percent": status.percent, "threshold": level},
            link=f"/api/v1/budgets?year={budget.year}&unit={budget.unit_code}", now=now)
        budget.warned_percent = level
        emitted += event is not None
    session.flush()
    return emitted

