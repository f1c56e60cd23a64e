"""The demo city's money: each provider cloud at its own prices, as carriers price theirs, one price change, a
closed month, and each department's budget for the year.

The city cloud centre renewed its contract in the middle of last month: from the 16th its vCPU is cheaper, so last
month's statement shows each city-cloud server in two runs of days at two prices. The month before is closed.
Most departments' budgets leave room (about 30 %); a few are nearly spent, one is over, so the warnings and the
extra approval step have something to show.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import ROUND_CEILING, Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloudctl.billing import budgets, service
from cloudctl.billing.schemas import BudgetSet, TariffSet
from cloudctl.core.auth import Principal
from cloudctl.core.models import beijing_today
from cloudctl.demo.city import DemoCity
from cloudctl.demo.seed import demo_step
from cloudctl.org.models import Unit

# CNY per month: vCPU, GiB of RAM, GiB of disk.
PRICES = {
    "city-cloud": ("45", "20", "0.50"),
    "unicom-cloud": ("58", "24", "0.65"),
    "mobile-cloud": ("55", "22", "0.60"),
    "container-cloud": ("40", "18", "0.45"),
}
RENEWED_VCPU = "42"


@demo_step("billing")
def seed_billing(session: Session, principal: Principal, city: DemoCity, seed: int) -> dict[str, int]:
    this_month = beijing_today().replace(day=1)
    last_month = (this_month - timedelta(days=1)).replace(day=1)
    before_last = (last_month - timedelta(days=1)).replace(day=1)
    since = date(before_last.year - 1, 1, 1)
    tariffs = 0
    for cloud, prices in PRICES.items():
        for resource, price in zip(("vcpu", "ram_gib", "disk_gib"), prices, strict=True):
            service.set_tariff(session, principal, TariffSet(cloud=cloud, resource=resource, price=Decimal(price),
                                                             effective_from=since, note="年度服务合同"))
            tariffs += 1
    service.close_month(session, principal, before_last.strftime("%Y-%m"))
    service.set_tariff(session, principal, TariffSet(
        cloud="city-cloud", resource="vcpu", price=Decimal(RENEWED_VCPU), effective_from=last_month.replace(day=16),
        note="续签合同，vCPU 降价"))
    # Budgets: what each department has committed this year, with room to grow; a few tight, one over.
    book = service.price_book(session)
    codes = list(city.departments)
    margins = {code: Decimal("1.30") for code in codes}
    for code, margin in zip(codes[3:9:2], (Decimal("1.03"), Decimal("0.97"), Decimal("1.08")), strict=False):
        margins[code] = margin
    units = {u.code: u.id for u in session.scalars(select(Unit).where(Unit.code.in_(codes)))}
    set_ = 0
    for code in codes:
        committed = budgets.committed_cost(session, units[code], None, this_month.year, book=book).total
        if committed <= 0:
            continue
        amount = (committed * margins[code] / 1000).quantize(Decimal(1), rounding=ROUND_CEILING) * 1000
        budgets.set_budget(session, principal, BudgetSet(unit=code, year=this_month.year, amount=amount,
                                                         note="年度云资源预算"))
        set_ += 1
    return {"tariffs": tariffs + 1, "closed_months": 1, "budgets": set_}
