"""The reclaim service on both databases: utilisation in, campaigns, the workflow, execution on the simulator."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloudctl.compute import provisioning
from cloudctl.compute import service as compute
from cloudctl.compute.models import Cloud
from cloudctl.compute.providers import provider_for
from cloudctl.compute.providers.base import CloudProvider, ServerAction, ServerInfo
from cloudctl.core.audit import AuditEntry
from cloudctl.core.config import Settings, reset_settings
from cloudctl.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied, ProviderError
from cloudctl.core.models import utcnow
from cloudctl.reclaim import service
from cloudctl.reclaim.models import (
    AppealStatus,
    Recommendation,
    RecommendationStatus,
    UtilisationDay,
)
from cloudctl.reclaim.sources.base import DailySummary
from tests.factories import ADMIN, ReclaimFleet, build_reclaim_fleet, collect_days, simulator_of

YESTERDAY = utcnow().date() - timedelta(days=1)


@pytest.fixture
def fleet(session: Session) -> ReclaimFleet:
    return build_reclaim_fleet(session)


def _recs(session: Session) -> dict[tuple[str, str], Recommendation]:
    recs, _ = service.list_recommendations(session, ADMIN, limit=1000)
    return {(r.server.name.split("-", 2)[-1], r.kind.value): r for r in recs}


# ---------------------------------------------------------------- utilisation


def test_collect_stores_one_row_per_server_day_and_metric(session: Session, fleet: ReclaimFleet) -> None:
    rows = session.scalar(select(func.count()).select_from(UtilisationDay))
    # 5 running servers × 30 days × 4 metrics; the stopped one reported until it stopped (40 days ago).
    assert rows == 5 * 30 * 4
    again = service.collect(session, ADMIN, YESTERDAY)
    assert again["summaries"] == 5 * 4
    assert session.scalar(select(func.count()).select_from(UtilisationDay)) == rows  # replaced, not added
    idle = session.scalar(select(UtilisationDay).where(UtilisationDay.server_id == fleet.servers["idle"].id,
                                                       UtilisationDay.metric == "cpu", UtilisationDay.day == YESTERDAY))
    assert idle is not None
    assert idle.samples == 288
    assert idle.p95 <= idle.p99 <= idle.max < 0.02
    assert idle.source == "simulator"


def test_a_day_that_is_not_over_is_refused(session: Session, fleet: ReclaimFleet) -> None:
    with pytest.raises(InvalidInput) as caught:
        service.collect(session, ADMIN, utcnow().date())
    assert caught.value.field == "day"


def _row(server: str, **changes: object) -> dict[str, object]:
    row: dict[str, object] = {"server": server, "day": str(YESTERDAY - timedelta(days=40)), "metric": "cpu",
                              "p95": "0.2", "p99": "0.3", "max": "0.5", "mean": "0.1", "samples": "288"}
    row.update(changes)
    return row


def test_import_takes_ids_provider_ids_and_names(session: Session, fleet: ReclaimFleet) -> None:
    busy = fleet.servers["busy"]
    result = service.import_summaries(session, ADMIN, [
        _row(str(busy.id)), _row(busy.provider_id, metric="mem"), _row(busy.name, metric="net_rx", p95="900",
                                                                         p99="1000", max="4000", mean="300")])
    assert (result.rows, result.servers, result.days) == (3, 1, 1)
    stored = session.scalars(select(UtilisationDay).where(UtilisationDay.source == "import")).all()
    assert sorted(s.metric for s in stored) == ["cpu", "mem", "net_rx"]


@pytest.mark.parametrize(("changes", "field"), [
    ({"metric": "disk"}, "rows.2.metric"),
    ({"p95": "0.9"}, "rows.2.p99"),  # p95 above p99
    ({"p95": "20", "p99": "40", "max": "80", "mean": "10"}, "rows.2.max"),  # percent, not a fraction
    ({"day": "2026-13-01"}, "rows.2.day"),
    ({"samples": "0"}, "rows.2.samples"),
    ({"server": "no-such-vm"}, "rows.2.server"),
    ({"day": str(utcnow().date())}, "rows.2.day"),
])
def test_a_bad_row_names_its_row_and_field_and_nothing_is_imported(session: Session, fleet: ReclaimFleet,
                                                                   changes: dict[str, object], field: str) -> None:
    before = session.scalar(select(func.count()).select_from(UtilisationDay))
    name = fleet.servers["busy"].name
    with pytest.raises(InvalidInput) as caught:
        service.import_summaries(session, ADMIN, [_row(name), {**_row(name, metric="mem"), **changes}])
    assert field in [e.field for e in caught.value.errors]
    assert session.scalar(select(func.count()).select_from(UtilisationDay)) == before


def test_an_import_replaces_only_the_server_day_metric_triples_it_has(session: Session, fleet: ReclaimFleet) -> None:
    busy = fleet.servers["busy"]
    day = YESTERDAY - timedelta(days=3)
    collected = {r.metric: r.p95 for r in session.scalars(select(UtilisationDay).where(
        UtilisationDay.server_id == busy.id, UtilisationDay.day == day))}
    assert set(collected) == {"cpu", "mem", "net_rx", "net_tx"}
    # CPU and memory from another tool: the day's network rows from the cloud stay.
    service.import_summaries(session, ADMIN, [_row(busy.name, day=str(day)), _row(busy.name, day=str(day),
                                                                                   metric="mem")])
    after = {r.metric: (r.p95, r.source) for r in session.scalars(select(UtilisationDay).where(
        UtilisationDay.server_id == busy.id, UtilisationDay.day == day))}
    assert after["cpu"] == (0.2, "import")
    assert after["mem"] == (0.2, "import")
    assert after["net_rx"] == (collected["net_rx"], "simulator")
    assert after["net_tx"] == (collected["net_tx"], "simulator")
    # A later network-only file leaves CPU and memory as imported.
    service.import_summaries(session, ADMIN, [_row(busy.name, day=str(day), metric="net_tx", p95="5", p99="6",
                                                   max="7", mean="1")])
    final = {r.metric: (r.p95, r.source) for r in session.scalars(select(UtilisationDay).where(
        UtilisationDay.server_id == busy.id, UtilisationDay.day == day))}
    assert final == {"cpu": (0.2, "import"), "mem": (0.2, "import"), "net_rx": (collected["net_rx"], "simulator"),
                     "net_tx": (5.0, "import")}


@pytest.mark.parametrize("value", ["inf", "nan", "-inf", "1e999"])
def test_a_number_that_is_not_finite_is_refused(session: Session, fleet: ReclaimFleet, value: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        service.import_summaries(session, ADMIN, [_row(fleet.servers["busy"].name, metric="net_rx", max=value)])
    assert caught.value.field == "rows.1.max"


def test_a_server_named_by_a_long_number_is_not_found_rather_than_overflowing(session: Session,
                                                                              fleet: ReclaimFleet) -> None:
    with pytest.raises(InvalidInput) as caught:
        service.import_summaries(session, ADMIN, [_row("9" * 40), _row("²")])
    assert {e.field for e in caught.value.errors} == {"rows.1.server", "rows.2.server"}


def test_a_department_cannot_import(session: Session, fleet: ReclaimFleet) -> None:
    with pytest.raises(PermissionDenied):
        service.import_summaries(session, fleet.city.principals["dept"], [_row(fleet.servers["busy"].name)])


# ---------------------------------------------------------------- analysis


def test_a_campaign_finds_what_was_planted(session: Session, fleet: ReclaimFleet) -> None:
    campaign = service.analyze(session, ADMIN)
    assert campaign.as_of == YESTERDAY
    assert set(_recs(session)) == {("idle", "idle"), ("oversized", "oversized"), ("zombie", "zombie"),
                                   ("other-idle", "idle")}
    assert campaign.counts["ok"] == 2  # busy and batch
    assert campaign.counts["created"] == 4
    oversized = _recs(session)[("oversized", "oversized")]
    # p99 CPU ≈ 0.066 × 8 × 1.2 ≈ 0.6 vCPU, but peak memory ≈ 0.155 × 16 GB × 1.2 ≈ 3 GB: c1m2 is too small.
    assert oversized.recommended_flavor == "c2m4"
    assert (oversized.reclaim_vcpus, oversized.reclaim_ram_mb) == (6, 12288)
    assert oversized.saving_month == 6 * 50 + 12 * 25
    assert oversized.evidence["verdict"] == "oversized"
    zombie = _recs(session)[("zombie", "zombie")]
    assert zombie.evidence["stopped_days"] > 39  # measured to the end of the window (yesterday)


def test_rerunning_updates_instead_of_duplicating(session: Session, fleet: ReclaimFleet) -> None:
    first = service.analyze(session, ADMIN)
    ids = {key: rec.id for key, rec in _recs(session).items()}
    second = service.analyze(session, ADMIN)
    assert second.id != first.id
    assert {key: rec.id for key, rec in _recs(session).items()} == ids
    assert second.counts["updated"] == 4
    assert second.counts["created"] == 0


def test_a_server_that_got_busy_is_dismissed_and_reopens_if_idle_again(session: Session, fleet: ReclaimFleet) -> None:
    service.analyze(session, ADMIN)
    provider = simulator_of(session)
    idle = fleet.servers["idle"]
    provider.set_workload(idle.provider_id, "busy", cpu=0.7, mem=0.7, net=5e5, since=utcnow() - timedelta(days=60))
    collect_days(session, days=14)
    campaign = service.analyze(session, ADMIN)
    rec = _recs(session)[("idle", "idle")]
    assert rec.status is RecommendationStatus.DISMISSED
    assert f"campaign {campaign.id}" in (rec.closed_reason or "")
    provider.set_workload(idle.provider_id, "idle", cpu=0.02, mem=0.2, net=300, since=utcnow() - timedelta(days=60))
    collect_days(session, days=14)
    reopened = service.analyze(session, ADMIN)
    assert reopened.counts["reopened"] == 1
    assert _recs(session)[("idle", "idle")].status is RecommendationStatus.OPEN


def test_thresholds_come_from_the_settings(session: Session, fleet: ReclaimFleet, settings: Settings) -> None:
    # A bureau that calls 80% busy "idle" (absurd, but configurable): busy and batch stay out only by their max.
    reset_settings(settings.model_copy(update={"reclaim_thresholds": {"idle_cpu_p95": 0.9, "idle_cpu_max": 0.5}}))
    campaign = service.analyze(session, ADMIN)
    assert campaign.thresholds["idle_cpu_p95"] == 0.9
    reset_settings(settings.model_copy(update={"reclaim_thresholds": {"idle_cpu_p59": 0.9}}))
    with pytest.raises(InvalidInput) as caught:
        service.analyze(session, ADMIN)
    assert caught.value.field == "reclaim_thresholds"
    assert "idle_cpu_p59" in str(caught.value)


# ---------------------------------------------------------------- workflow


def test_a_department_sees_and_appeals_only_its_own(session: Session, fleet: ReclaimFleet) -> None:
    service.analyze(session, ADMIN)
    dept = fleet.city.principals["dept"]
    mine, total = service.list_recommendations(session, dept)
    assert total == 3
    assert {r.unit_code for r in mine} == {"990100-D01"}
    other = _recs(session)[("other-idle", "idle")]
    with pytest.raises(NotFound):
        service.get_recommendation(session, dept, other.id)
    with pytest.raises(NotFound):
        service.appeal(session, dept, other.id, "我们的系统下月上线")
    with pytest.raises(NotFound):
        service.list_recommendations(session, dept, unit="990100-D02")


def test_appeal_flow(session: Session, fleet: ReclaimFleet) -> None:
    service.analyze(session, ADMIN)
    ops, dept = fleet.city.principals["ops"], fleet.city.principals["dept"]
    idle = _recs(session)[("idle", "idle")]
    rec_id = idle.id
    with pytest.raises(Conflict):
        service.appeal(session, dept, rec_id, "系统是灾备节点，平时空闲")  # not notified yet
    notified = service.notify(session, ops)
    assert len(notified) == 4
    assert idle.due_at is not None
    assert idle.notified_at is not None
    assert idle.due_at - idle.notified_at == timedelta(days=14)
    with pytest.raises(PermissionDenied):
        service.notify(session, dept, [rec_id])
    with pytest.raises(InvalidInput) as caught:
        service.appeal(session, dept, rec_id, "  ")
    assert caught.value.field == "reason"
    rec = service.appeal(session, dept, rec_id, "系统是同城灾备节点，平时空闲，演练时满载")
    assert rec.appeal_status is AppealStatus.PENDING
    with pytest.raises(Conflict):
        service.appeal(session, dept, rec_id, "再次申诉")
    with pytest.raises(PermissionDenied):
        service.decide_appeal(session, dept, rec_id, accept=True)
    with pytest.raises(InvalidInput) as caught:
        service.decide_appeal(session, ops, rec_id, accept=False)
    assert caught.value.field == "note"
    rec = service.decide_appeal(session, ops, rec_id, accept=True, exempt_until=date.today() + timedelta(days=180))
    assert (rec.status, rec.appeal_status) == (RecommendationStatus.EXEMPTED, AppealStatus.ACCEPTED)
    actions = set(session.scalars(select(AuditEntry.action).where(AuditEntry.entity == "reclaim_recommendation",
                                                                  AuditEntry.entity_id == str(rec_id))))
    assert {"notify", "appeal", "accept-appeal"} <= actions
    # An exemption holds across campaigns until its day has passed.
    service.analyze(session, ADMIN)
    assert _recs(session)[("idle", "idle")].status is RecommendationStatus.EXEMPTED


def test_an_appeal_after_the_grace_period_is_refused(session: Session, fleet: ReclaimFleet) -> None:
    service.analyze(session, ADMIN)
    rec_id = _recs(session)[("idle", "idle")].id
    service.notify(session, ADMIN, [rec_id], grace_days=14, now=utcnow() - timedelta(days=15))
    with pytest.raises(Conflict) as caught:
        service.appeal(session, fleet.city.principals["dept"], rec_id, "来不及了吗？")
    assert caught.value.field == "due_at"


# ---------------------------------------------------------------- execution


def _notified_and_due(session: Session) -> dict[tuple[str, str], Recommendation]:
    service.analyze(session, ADMIN)
    service.notify(session, ADMIN, grace_days=14, now=utcnow() - timedelta(days=15))
    return _recs(session)


def test_nothing_is_executed_before_the_grace_period_ends(session: Session, fleet: ReclaimFleet) -> None:
    service.analyze(session, ADMIN)
    service.notify(session, ADMIN)
    assert service.execute(session, ADMIN) == []


def test_dry_run_prints_the_plan_and_changes_nothing(session: Session, fleet: ReclaimFleet) -> None:
    recs = _notified_and_due(session)
    steps = service.execute(session, ADMIN, dry_run=True)
    assert {(s.server.split("-", 2)[-1], s.action, s.outcome) for s in steps} == {
        ("idle", "shelve_offload", "planned"), ("oversized", "resize", "planned"),
        ("zombie", "shelve_offload", "planned"), ("other-idle", "shelve_offload", "planned")}
    assert all(r.status is RecommendationStatus.NOTIFIED for r in recs.values())
    assert fleet.servers["idle"].status == "ACTIVE"


def test_execution_acts_through_the_provider_and_frees_the_quota(session: Session, fleet: ReclaimFleet) -> None:
    _notified_and_due(session)
    used_before = compute.get_quota(session, ADMIN, "990100-D01", "test-cloud").used_vcpus
    steps = service.execute(session, fleet.city.principals["ops"])
    assert {s.outcome for s in steps} == {"done"}
    assert fleet.servers["idle"].status == "SHELVED_OFFLOADED"
    assert fleet.servers["zombie"].status == "SHELVED_OFFLOADED"
    assert (fleet.servers["oversized"].flavor, fleet.servers["oversized"].status) == ("c2m4", "ACTIVE")
    assert fleet.servers["busy"].status == "ACTIVE"
    # The resize gave 6 vCPU back to 市公安局's quota (a shelved VM still counts until it is deleted).
    assert compute.get_quota(session, ADMIN, "990100-D01", "test-cloud").used_vcpus == used_before - 6
    recs = _recs(session)
    assert all(r.status is RecommendationStatus.EXECUTED for r in recs.values())
    resize = session.scalar(select(AuditEntry).where(AuditEntry.entity == "server", AuditEntry.action == "resize"))
    assert resize is not None
    assert resize.actor == "api:ops-user"
    # Run again: nothing is due any more.
    assert service.execute(session, ADMIN) == []


def test_a_server_already_in_the_target_state_is_skipped(session: Session, fleet: ReclaimFleet) -> None:
    _notified_and_due(session)
    provisioning.operate_server(session, ADMIN, fleet.servers["idle"].id, "shelve")
    provisioning.operate_server(session, ADMIN, fleet.servers["idle"].id, "shelve_offload")
    provisioning.resize_server(session, ADMIN, fleet.servers["oversized"].id, "c2m4")
    steps = {s.server.split("-", 2)[-1]: s for s in service.execute(session, ADMIN)}
    assert steps["idle"].outcome == "skipped"
    assert steps["oversized"].outcome == "skipped"
    assert steps["zombie"].outcome == "done"


def test_a_failure_is_recorded_and_nothing_else_is_touched(session: Session, fleet: ReclaimFleet) -> None:
    _notified_and_due(session)
    broken = fleet.servers["zombie"].provider_id

    def flaky(cloud: Cloud) -> CloudProvider:
        """The cloud, except that the zombie's host refuses to act on it (Nova's 409 for a locked VM)."""
        provider = provider_for(cloud)
        original = provider.server_action

        def server_action(provider_id: str, action: ServerAction) -> ServerInfo:
            if provider_id == broken:
                raise ProviderError("Nova: Instance is locked", field="server")
            return original(provider_id, action)

        provider.server_action = server_action  # type: ignore[method-assign]
        return provider

    steps = {s.server.split("-", 2)[-1]: s for s in service.execute(session, ADMIN, providers=flaky)}
    assert steps["zombie"].outcome == "failed"
    assert "Instance is locked" in steps["zombie"].detail
    assert steps["idle"].outcome == "done"
    recs = _recs(session)
    assert recs[("zombie", "zombie")].status is RecommendationStatus.FAILED
    assert "locked" in (recs[("zombie", "zombie")].error or "")
    assert fleet.servers["zombie"].status == "SHUTOFF"


def test_a_pending_appeal_holds_execution_and_a_rejected_one_does_not(session: Session, fleet: ReclaimFleet) -> None:
    service.analyze(session, ADMIN)
    rec_id = _recs(session)[("idle", "idle")].id
    service.notify(session, ADMIN, [rec_id], grace_days=1, now=utcnow() - timedelta(hours=1))
    service.appeal(session, fleet.city.principals["dept"], rec_id, "月底结算时才用，请保留")
    rec = session.get(Recommendation, rec_id)
    assert rec is not None
    rec.due_at = utcnow() - timedelta(days=1)  # the grace period ended while the appeal waited
    assert service.execute(session, ADMIN, dry_run=True) == []
    service.decide_appeal(session, ADMIN, rec_id, accept=False, note="30 天内 CPU 从未超过 1%，月底也没有")
    assert [s.recommendation for s in service.execute(session, ADMIN, dry_run=True)] == [rec_id]


def test_rollup_by_unit(session: Session, fleet: ReclaimFleet) -> None:
    service.analyze(session, ADMIN)
    rows = {r.key: r for r in service.rollup(session, ADMIN, by="unit")}
    own = rows["990100-D01"]
    assert own.servers == 5
    assert own.vcpus == 4 + 8 + 4 + 4 + 2
    assert own.reclaimable_vcpus == 4 + 6 + 2  # idle, oversized, zombie
    assert own.recommendations == 3
    assert 0 < own.used_vcpus < own.vcpus
    dept_rows = service.rollup(session, fleet.city.principals["dept"], by="unit")
    assert [r.key for r in dept_rows] == ["990100-D01"]
    with pytest.raises(InvalidInput):
        service.rollup(session, ADMIN, by="county")


def test_store_summaries_replaces_the_same_day(session: Session, fleet: ReclaimFleet) -> None:
    server = fleet.servers["busy"]
    day = YESTERDAY - timedelta(days=50)
    summary = DailySummary(server=server.provider_id, day=day, metric="cpu", p95=0.1, p99=0.2, max=0.3, mean=0.05,
                           samples=288)
    service.store_summaries(session, [(server.id, summary)], source="import")
    service.store_summaries(session, [(server.id, summary)], source="import")
    assert session.scalar(select(func.count()).select_from(UtilisationDay).where(UtilisationDay.day == day)) == 1
