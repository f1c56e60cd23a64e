"""The demo city's tariffs: each provider cloud at its own prices, as carriers price theirs, and one price change.

The city cloud centre renewed its contract in the middle of last month: from the 16th its vCPU is cheaper, so last
month's statement shows each city-cloud server in two runs of days at two prices. The month before is closed.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy.orm import Session

from cloudctl.billing import service
from cloudctl.billing.schemas import TariffSet
from cloudctl.core.auth import Principal
from cloudctl.core.models import beijing_today
from cloudctl.demo.city import DemoCity
from cloudctl.demo.seed import demo_step

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
    return {"tariffs": tariffs + 1, "closed_months": 1}
