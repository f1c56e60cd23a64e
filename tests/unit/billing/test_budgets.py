"""Budgets on SQLite and PostgreSQL: the committed cost of a year, a request over budget taking the leader's step or
refused by configuration, and warnings at the thresholds through the notification outbox."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloudctl.billing import budgets, service
from cloudctl.billing.pricing import month_days
from cloudctl.billing.schemas import BudgetSet, TariffSet
from cloudctl.compute import provisioning
from cloudctl.compute.models import RequestStatus, ResourceRequest
from cloudctl.compute.schemas import RequestCreate
from cloudctl.core.config import get_settings, reset_settings
from cloudctl.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from cloudctl.core.models import beijing_today, utcnow
from cloudctl.notify.models import Event
from tests.factories import ADMIN, MiniCity, build_mini_city, make_server

TODAY = beijing_today()
YEAR = TODAY.year
# c4m8 on the test cloud at these prices: 4 × 45 + 8 × 20 + 40 × 0.5 = 360 CNY a month.
MONTHLY = Decimal(360)


@pytest.fixture
def city(session: Session) -> MiniCity:
    city = build_mini_city(session, with_cloud=True)
    server = make_server(session, "990100-D01", city.systems["own"], "c4m8", name="990100-d01-app")
    server.launched_at = datetime(YEAR - 1, 6, 1, tzinfo=UTC)
    for resource, price in (("vcpu", "45"), ("ram_gib", "20"), ("disk_gib", "0.5")):
        service.set_tariff(session, ADMIN, TariffSet(cloud="test-cloud", resource=resource, price=Decimal(price),
                                                     effective_from=date(YEAR - 1, 1, 1)))
    session.flush()
    return city


def ask(city: MiniCity, count: int = 1, system: str = "own") -> RequestCreate:
    return RequestCreate.model_validate({"business_system": city.systems[system], "cloud": "test-cloud",
                                         "justification": "业务上线需要应用服务器",
                                         "items": [{"flavor": "c4m8", "count": count}]})


def committed_now() -> Decimal:
    """One c4m8 running the whole year: every month in full, at 360 a month."""
    return MONTHLY * 12


def added(count: int) -> Decimal:
    _, last, days = month_days(TODAY.replace(day=1))
    left = Decimal((last - TODAY).days + 1) / days + (12 - TODAY.month)
    return (MONTHLY * count * left).quantize(Decimal("0.01"))


def test_the_committed_cost_of_a_year(session: Session, city: MiniCity) -> None:
    status = budgets.set_budget(session, ADMIN, BudgetSet(unit="990100-D01", year=YEAR, amount=Decimal(10_000)))
    assert (status.monthly, status.committed) == (MONTHLY, committed_now())
    assert status.spent + status.this_month + status.ahead == status.committed
    assert status.ahead == MONTHLY * (12 - TODAY.month)
    assert status.percent == round(float(committed_now() / 100), 1)
    assert status.over is False
    # The other department has no servers; its budget is untouched. A department sees its own budgets only.
    budgets.set_budget(session, ADMIN, BudgetSet(unit="990100-D02", year=YEAR, amount=Decimal(5_000)))
    mine, total = budgets.list_budgets(session, city.principals["dept"], year=YEAR)
    assert (total, [b.unit_code for b in mine]) == (1, ["990100-D01"])
    with pytest.raises(NotFound):
        budgets.list_budgets(session, city.principals["dept"], unit="990100-D02")
    every, _ = budgets.list_budgets(session, ADMIN, year=YEAR)
    assert {b.unit_code: b.committed for b in every} == {"990100-D01": committed_now(), "990100-D02": 0}


def test_bad_budgets_are_refused(session: Session, city: MiniCity) -> None:
    with pytest.raises(PermissionDenied):
        budgets.set_budget(session, city.principals["dept"], BudgetSet(unit="990100-D01", year=YEAR,
                                                                        amount=Decimal(1)))
    with pytest.raises(InvalidInput) as caught:
        budgets.set_budget(session, ADMIN, BudgetSet(unit="990100-D01", year=YEAR, amount=Decimal(1),
                                                     business_system=city.systems["other"]))
    assert caught.value.field == "business_system"
    with pytest.raises(NotFound) as missing:
        budgets.set_budget(session, ADMIN, BudgetSet(unit="990100-X99", year=YEAR, amount=Decimal(1)))
    assert missing.value.field == "unit"
    first = budgets.set_budget(session, ADMIN, BudgetSet(unit="990100-D01", year=YEAR, amount=Decimal(1)))
    again = budgets.set_budget(session, ADMIN, BudgetSet(unit="990100-D01", year=YEAR, amount=Decimal("2.50")))
    assert (again.id, again.amount) == (first.id, Decimal("2.50"))  # set again: replaced, not a second budget


def test_a_request_over_budget_takes_the_leaders_step_and_is_never_automatic(session: Session,
                                                                             city: MiniCity) -> None:
    dept = city.principals["dept"]
    tight = committed_now() + added(1) - Decimal(1)  # room for less than one more c4m8 to the end of the year
    budgets.set_budget(session, ADMIN, BudgetSet(unit="990100-D01", year=YEAR, amount=tight))
    over = provisioning.submit_request(session, dept, ask(city))  # 4 vCPU: inside the automatic tier
    assert over.status is RequestStatus.AWAITING_LEADER
    assert over.over_budget is not None
    assert "超出预算" in over.over_budget
    assert f"{added(1):,.2f}" in over.over_budget
    led = provisioning.approve_request(session, city.principals["dept_leader"], over.id, "同意，追加预算")
    assert led.status is RequestStatus.SUBMITTED  # then ops decide, never the automatic tier
    assert provisioning.approve_request(session, city.principals["ops"], over.id).status is RequestStatus.APPROVED
    # The leader's own request over budget carries the leader's step, and waits for ops.
    own = provisioning.submit_request(session, city.principals["dept_leader"], ask(city))
    assert (own.status, own.auto_approved) == (RequestStatus.SUBMITTED, False)
    # Within the budget, the automatic tier applies as before.
    budgets.set_budget(session, ADMIN, BudgetSet(unit="990100-D01", year=YEAR, amount=Decimal(10**7)))
    within = provisioning.submit_request(session, dept, ask(city))
    assert (within.status, within.over_budget) == (RequestStatus.APPROVED, None)


def test_a_system_budget_holds_only_that_system(session: Session, city: MiniCity) -> None:
    from tests.factories import make_system

    second = make_system(session, "990100-D01", "移动警务平台").id
    city.systems["second"] = second
    budgets.set_budget(session, ADMIN, BudgetSet(unit="990100-D01", year=YEAR, amount=committed_now(),
                                                 business_system=city.systems["own"]))
    over = provisioning.submit_request(session, city.principals["dept"], ask(city))
    assert over.over_budget is not None
    assert "城市视频监控联网平台" in over.over_budget
    other = provisioning.submit_request(session, city.principals["dept"], ask(city, system="second"))
    assert (other.status, other.over_budget) == (RequestStatus.APPROVED, None)


def test_over_budget_is_refused_when_so_configured(session: Session, city: MiniCity) -> None:
    budgets.set_budget(session, ADMIN, BudgetSet(unit="990100-D01", year=YEAR, amount=committed_now()))
    reset_settings(get_settings().model_copy(update={"budget_over": "refuse"}))
    before = session.scalar(select(func.count()).select_from(ResourceRequest))
    with pytest.raises(Conflict) as caught, session.begin_nested():
        provisioning.submit_request(session, city.principals["dept"], ask(city))
    assert caught.value.field == "budget"
    assert "over budget" in str(caught.value)
    assert session.scalar(select(func.count()).select_from(ResourceRequest)) == before
    # A quota increase costs nothing by itself: it is not held against the budget.
    increase = provisioning.submit_request(session, city.principals["dept"], RequestCreate.model_validate({
        "business_system": city.systems["own"], "cloud": "test-cloud", "justification": "扩容配额以备后用",
        "items": [{"kind": "quota", "vcpus": 8}]}))
    assert increase.over_budget is None
    reset_settings(get_settings().model_copy(update={"budget_over": "warn"}))
    warned = provisioning.submit_request(session, city.principals["dept"], ask(city))
    assert (warned.status, warned.over_budget) == (RequestStatus.APPROVED, None)


def test_thresholds_are_told_once_each_through_the_outbox(session: Session, city: MiniCity) -> None:
    amount = (committed_now() / Decimal("0.85")).quantize(Decimal("0.01"))
    budget = budgets.set_budget(session, ADMIN, BudgetSet(unit="990100-D01", year=YEAR, amount=amount))
    assert budget.percent == 85.0
    assert budgets.remind_budgets(session, utcnow()) == 1
    assert budgets.remind_budgets(session, utcnow()) == 0  # told once
    events = list(session.scalars(select(Event).where(Event.kind == "billing.budget.threshold")))
    assert [(e.data["threshold"], e.entity_id) for e in events] == [(80, str(budget.id))]
    assert "已承诺" in service_text(session, events[0])
    # More servers: the budget is passed, and 100 % is told.
    make_server(session, "990100-D01", city.systems["own"], "c4m8", name="990100-d01-app-2").launched_at = \
        datetime(YEAR - 1, 6, 1, tzinfo=UTC)
    assert budgets.remind_budgets(session, utcnow()) == 1
    assert {e.data["threshold"] for e in session.scalars(select(Event).where(
        Event.kind == "billing.budget.threshold"))} == {80, 100}


def service_text(session: Session, event: Event) -> str:
    from cloudctl.notify import service as notify

    subject, body = notify.render(*notify.template_for(session, event.kind), event.data)
    return f"{subject}\n{body}"
