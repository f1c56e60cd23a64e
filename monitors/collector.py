"""The Prometheus exporter of every domain: a custom collector that reads aggregates at scrape time.

One SQL query per family (``GROUP BY``, never a query per label value), so a scrape stays bounded as
the city grows. Labels are bounded too: unit codes of municipal units and counties (towns and
villages are counted under their county: they stay in the API, not in labels), cloud, zone, rule,
kind and state; never IPs, MACs, names or free text. Ratios are not exported: counts are, and the
recording rules in ``monitors/rules`` derive the ratios.

The families mirror the ecosystem's words where they exist: openstack-exporter's
``…_limits_vcpus_max`` / ``…_used`` for quotas.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from datetime import timedelta

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, aliased

from cloudctl.compute.models import CapacitySnapshot, Cloud, Quota, RequestStatus, ResourceRequest
from cloudctl.core.auth import system_principal
from cloudctl.core.config import get_settings
from cloudctl.core.jobs import Job, JobStatus
from cloudctl.core.models import beijing_today, utcnow
from cloudctl.extranet.models import IPAddress, NetworkDevice, Prefix, PrefixStatus, Violation, ViolationStatus
from cloudctl.extranet.service.access import access_rate
from cloudctl.org.models import Unit, UnitKind
from cloudctl.reclaim.models import Recommendation, RecommendationStatus

__all__ = ["CloudctlCollector", "SessionFactory"]

SessionFactory = Callable[[], AbstractContextManager[Session]]
MIB = 1024**2
GIB = 1024**3
ACTIVE_RECOMMENDATIONS = (RecommendationStatus.OPEN, RecommendationStatus.NOTIFIED, RecommendationStatus.SCHEDULED,
                          RecommendationStatus.FAILED)
UTILISATION_BUCKETS = (0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 1.0)
# Time to an incident step: 5 and 15 minutes, the 1, 2 and 4 hours of the reporting deadlines, a day, a week.
INCIDENT_STEP_BUCKETS = (300.0, 900.0, 3600.0, 7200.0, 14400.0, 86400.0, 604800.0)
EXPORTER = system_principal("exporter")
log = logging.getLogger(__name__)


def _unit_labels(session: Session) -> dict[str, str]:
    """Unit code → its label: a town's or village's is its county's (bounded labels); others their own."""
    counties = {str(uid): code for uid, code in session.execute(
        select(Unit.id, Unit.code).where(Unit.kind == UnitKind.COUNTY))}
    labels = {}
    for code, path in session.execute(select(Unit.code, Unit.path).where(Unit.kind.in_((UnitKind.TOWN,
                                                                                          UnitKind.VILLAGE)))):
        labels[code] = next((counties[p] for p in (path or "").strip("/").split("/") if p in counties), code)
    return labels


class CloudctlCollector(Collector):
    """Every ``cloudctl_`` family, read from the database; a failed read is counted, never raised to the scraper.

    The database is read off the scrape's path. A scrape is answered from the last complete reading;
    when that reading is older than ``refresh_seconds`` the scrape starts the next one in a background
    thread and does not wait for it (stale-while-revalidate). At a province's size the reading takes a
    few hundred milliseconds (one GROUP BY over every live finding, every unit for the access rate),
    and Prometheus should never wait on it: with a 15 s scrape interval the values a scrape returns
    were read at the previous scrape. A reading older than ``max_age_seconds`` (a first scrape, or the
    first one after a long quiet) is taken synchronously, so nobody is ever served hours-old numbers,
    and several Prometheus servers or a dashboard refreshing every few seconds still cost one reading
    per ``refresh_seconds``. ``refresh_seconds=0`` reads the database on every scrape, synchronously
    (tests, ``cloudctl metrics``). ``cloudctl_exporter_last_success_timestamp_seconds`` says when the
    served values were read.
    """

    def __init__(self, sessions: SessionFactory, *, refresh_seconds: float = 10.0, max_age_seconds: float = 120.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.sessions = sessions
        self.clock = clock
        self.refresh_seconds = refresh_seconds
        self.max_age_seconds = max(max_age_seconds, refresh_seconds)
        self._lock = threading.Lock()  # guards the fields below; never held while the database is read
        self._read_lock = threading.Lock()  # one reading of the database at a time
        self._reading: tuple[float, list[Metric]] | None = None  # (monotonic time read, families)
        self._refreshing: threading.Thread | None = None
        self._last_success = 0.0
        self._last_duration = 0.0
        self._failures = 0

    def describe(self) -> Iterable[Metric]:
        return []  # collected lazily: registering the collector must not touch the database

    def collect(self) -> Iterator[Metric]:
        asked = self.clock()
        with self._lock:
            age = asked - self._reading[0] if self._reading else None
            wait = self.refresh_seconds <= 0 or age is None or age >= self.max_age_seconds
            if not wait and age is not None and age >= self.refresh_seconds and self._refreshing is None:
                # One background reading at a time, however many scrapers ask.
                self._refreshing = threading.Thread(target=self._refresh_in_background, daemon=True,
                                                    name="cloudctl-metrics-refresh")
                self._refreshing.start()
        if wait:
            self.refresh(unless_read_since=asked)
        with self._lock:
            families = self._reading[1] if self._reading else []
        yield from families
        yield from self._own()

    def refresh(self, *, unless_read_since: float | None = None) -> None:
        """Read every family from the database now, and keep the reading for the scrapes that follow.

        Readings never overlap: a scrape that waited for another's reading, finished after it asked,
        takes that one (``unless_read_since``) instead of reading again.
        """
        with self._read_lock:
            with self._lock:
                if unless_read_since is not None and self._reading and self._reading[0] >= unless_read_since:
                    return
            started = time.perf_counter()
            try:
                with self.sessions() as session:
                    families = list(self._families(session))
            except Exception:  # the scrape must answer; the failure is a metric, and logged
                log.exception("collecting cloudctl metrics failed")
                with self._lock:
                    self._failures += 1
                    self._last_duration = time.perf_counter() - started
                return
            with self._lock:
                self._reading = (self.clock(), families)
                self._last_success = time.time()
                self._last_duration = time.perf_counter() - started

    def _refresh_in_background(self) -> None:
        try:
            self.refresh()
        finally:
            with self._lock:
                self._refreshing = None

    def wait_for_refresh(self, timeout: float | None = None) -> None:
        """Block until a background reading in flight (if any) is done: for tests and benchmarks."""
        with self._lock:
            thread = self._refreshing
        if thread is not None:
            thread.join(timeout)

    def _own(self) -> Iterator[Metric]:
        with self._lock:
            duration, success, failures = self._last_duration, self._last_success, self._failures
        when = ("read on every scrape" if self.refresh_seconds <= 0 else
                f"read in the background, at most every {self.refresh_seconds:g}s; a scrape does not wait for it")
        yield GaugeMetricFamily("cloudctl_exporter_collect_duration_seconds",
                                f"Seconds the last reading of the database took ({when}).", value=duration)
        yield GaugeMetricFamily("cloudctl_exporter_last_success_timestamp_seconds",
                                "When the values served were read from the database (Unix time).", value=success)
        yield CounterMetricFamily("cloudctl_exporter_collect_failures", "Readings of the database that failed.",
                                  value=failures)

    # ------------------------------------------------------------------ the families

    def _families(self, session: Session) -> Iterator[Metric]:
        yield from self._clouds(session)
        yield from self._quotas(session)
        yield from self._requests(session)
        yield from self._money(session)
        yield from self._planning(session)
        yield from self._reclaim(session)
        yield from self._extranet(session)
        yield from self._security(session)
        yield from self._drills(session)
        yield from self._incidents(session)
        yield from self._notifications(session)
        yield from self._jobs(session)

    def _clouds(self, session: Session) -> Iterator[Metric]:
        units = {"vcpus": ("cloudctl_cloud_vcpus", "vCPUs of the cloud", 1),
                 "ram_mb": ("cloudctl_cloud_memory_bytes", "Memory of the cloud, bytes", MIB),
                 "disk_gb": ("cloudctl_cloud_disk_bytes", "Disk of the cloud, bytes", GIB)}
        families = {resource: GaugeMetricFamily(name, f"{help_}: capacity (with over-commit, as Placement counts "
                                                      "it), allocated (promised by quotas) and used.",
                                                labels=["cloud", "state"])
                    for resource, (name, help_, _) in units.items()}
        taken = GaugeMetricFamily("cloudctl_cloud_capacity_snapshot_timestamp_seconds",
                                  "When the cloud's capacity was last read from its provider (Unix time).",
                                  labels=["cloud"])
        seen: set[str] = set()
        for cloud, resource, total, reserved, ratio, used, at in session.execute(
                select(Cloud.name, CapacitySnapshot.resource, CapacitySnapshot.total, CapacitySnapshot.reserved,
                       CapacitySnapshot.allocation_ratio, CapacitySnapshot.used, CapacitySnapshot.taken_at)
                .join(Cloud, Cloud.id == CapacitySnapshot.cloud_id)):
            if resource not in units:
                continue
            scale = units[resource][2]
            families[resource].add_metric([cloud, "capacity"], int((total - reserved) * ratio) * scale)
            families[resource].add_metric([cloud, "used"], used * scale)
            if cloud not in seen:
                taken.add_metric([cloud], at.timestamp())
                seen.add(cloud)
        for cloud, vcpus, ram, disk in session.execute(
                select(Cloud.name, func.coalesce(func.sum(Quota.limit_vcpus), 0),
                       func.coalesce(func.sum(Quota.limit_ram_mb), 0), func.coalesce(func.sum(Quota.limit_disk_gb), 0))
                .join(Quota, Quota.cloud_id == Cloud.id).group_by(Cloud.name)):
            families["vcpus"].add_metric([cloud, "allocated"], int(vcpus or 0))
            families["ram_mb"].add_metric([cloud, "allocated"], int(ram or 0) * MIB)
            families["disk_gb"].add_metric([cloud, "allocated"], int(disk or 0) * GIB)
        yield from families.values()
        yield taken

    def _quotas(self, session: Session) -> Iterator[Metric]:
        labels = ["unit", "cloud"]
        spec = {"vcpus": ("vCPUs", 1), "memory_bytes": ("memory (bytes)", MIB), "instances": ("instances", 1)}
        maxes = {k: GaugeMetricFamily(f"cloudctl_quota_limits_{k}_max", f"Quota limit of {v[0]} per unit and cloud "
                                                                        "(absent: unlimited).", labels=labels)
                 for k, v in spec.items()}
        used = {k: GaugeMetricFamily(f"cloudctl_quota_limits_{k}_used", f"Quota use of {v[0]}: used plus reserved "
                                                                        "by approved requests.", labels=labels)
                for k, v in spec.items()}
        for row in session.execute(
                select(Unit.code, Cloud.name, Quota.limit_vcpus, Quota.used_vcpus + Quota.reserved_vcpus,
                       Quota.limit_ram_mb, Quota.used_ram_mb + Quota.reserved_ram_mb, Quota.limit_instances,
                       Quota.used_instances + Quota.reserved_instances)
                .join(Unit, Unit.id == Quota.unit_id).join(Cloud, Cloud.id == Quota.cloud_id)):
            code, cloud, numbers = str(row[0]), str(row[1]), row[2:]
            for i, key in enumerate(spec):
                limit, in_use = numbers[2 * i], numbers[2 * i + 1]
                scale = spec[key][1]
                if limit is not None:
                    maxes[key].add_metric([code, cloud], int(limit) * scale)
                used[key].add_metric([code, cloud], int(in_use or 0) * scale)
        yield from maxes.values()
        yield from used.values()

    def _requests(self, session: Session) -> Iterator[Metric]:
        family = GaugeMetricFamily("cloudctl_resource_requests", "Resource requests (资源申请) by status.",
                                   labels=["status"])
        counts = dict(session.execute(select(ResourceRequest.status, func.count()).group_by(ResourceRequest.status))
                      .all())
        for status in RequestStatus:
            family.add_metric([status.value], counts.get(status, 0))
        yield family

    def _money(self, session: Session) -> Iterator[Metric]:
        """This month's cost per unit and cloud at each cloud's tariffs, and this year's budgets per unit with what
        is committed against them (as ``cloudctl report showback`` and ``cloudctl budget list`` say)."""
        from cloudctl.billing import budgets, service
        from cloudctl.billing.models import Budget

        labels = _unit_labels(session)
        today = beijing_today()
        cost = GaugeMetricFamily("cloudctl_cost_month_cny",
                                 "This month's cost (费用) per unit and cloud, CNY, at each cloud's tariffs: servers "
                                 "running now are counted to the month's end; towns and villages under their county.",
                                 labels=["unit", "cloud"])
        totals: dict[tuple[str, str], float] = {}
        book = service.price_book(session)
        for line in service.statement(session, EXPORTER, today.strftime("%Y-%m"), book=book).lines:
            key = (labels.get(line.unit_code, line.unit_code), line.cloud)
            totals[key] = totals.get(key, 0.0) + float(line.cost)
        for (unit, cloud), value in sorted(totals.items()):
            cost.add_metric([unit, cloud], round(value, 2))
        yield cost
        amount = GaugeMetricFamily("cloudctl_budget_cny", "This year's budget (预算) of each unit for its cloud "
                                   "resources, CNY.", labels=["unit"])
        committed = GaugeMetricFamily("cloudctl_budget_committed_cny",
                                      "What each unit with a budget has committed this year, CNY: months gone by, "
                                      "this month, and the months left at today's prices.", labels=["unit"])
        budgeted: dict[str, tuple[float, float]] = {}
        rows = list(session.scalars(select(Budget).where(Budget.year == today.year, Budget.system_key == 0)))
        for budget, status in zip(rows, budgets.budget_statuses(session, rows, book=book, today=today), strict=True):
            unit = labels.get(budget.unit_code, budget.unit_code)
            was = budgeted.get(unit, (0.0, 0.0))
            budgeted[unit] = (was[0] + float(status.amount), was[1] + float(status.committed))
        for unit, (value, spent) in sorted(budgeted.items()):
            amount.add_metric([unit], value)
            committed.add_metric([unit], round(spent, 2))
        yield amount
        yield committed

    def _planning(self, session: Session) -> Iterator[Metric]:
        """When each cloud's allocations reach the planning threshold, by each model, with and without reclaim."""
        from cloudctl.reclaim.planning import purchase_plan

        months = GaugeMetricFamily("cloudctl_capacity_threshold_months",
                                   "Months until a cloud's allocations reach the purchase-planning threshold of its "
                                   "capacity (0: reached), by model (linear, holt) and whether reclaim is carried out "
                                   "first; absent when the trend never gets there within ten years.",
                                   labels=["cloud", "resource", "model", "reclaim"])
        for row in purchase_plan(session, EXPORTER):
            for answer in row.forecasts:
                if answer.months is not None:
                    months.add_metric([row.cloud, row.resource, answer.model, str(answer.reclaim).lower()],
                                      answer.months)
        yield months

    def _reclaim(self, session: Session) -> Iterator[Metric]:
        vcpus = GaugeMetricFamily("cloudctl_reclaim_reclaimable_vcpus",
                                  "vCPUs open recommendations would free, per unit.", labels=["unit"])
        memory = GaugeMetricFamily("cloudctl_reclaim_reclaimable_memory_bytes",
                                   "Memory open recommendations would free, per unit, bytes.", labels=["unit"])
        saving = GaugeMetricFamily("cloudctl_reclaim_monthly_saving_cny",
                                   "Monthly saving of the open recommendations at the showback prices, CNY.",
                                   labels=["unit"])
        for code, v, ram, cny in session.execute(
                select(Unit.code, func.sum(Recommendation.reclaim_vcpus), func.sum(Recommendation.reclaim_ram_mb),
                       func.sum(Recommendation.saving_month))
                .join(Unit, Unit.id == Recommendation.unit_id)
                .where(Recommendation.status.in_(ACTIVE_RECOMMENDATIONS)).group_by(Unit.code)):
            vcpus.add_metric([code], int(v or 0))
            memory.add_metric([code], int(ram or 0) * MIB)
            saving.add_metric([code], float(cny or 0))
        states = GaugeMetricFamily("cloudctl_reclaim_recommendations", "Reclaim recommendations by kind and state.",
                                   labels=["kind", "state"])
        for kind, status, n in session.execute(select(Recommendation.kind, Recommendation.status, func.count())
                                               .group_by(Recommendation.kind, Recommendation.status)):
            states.add_metric([kind.value, status.value], n)
        yield from (vcpus, memory, saving, states)

    def _extranet(self, session: Session) -> Iterator[Metric]:
        required = GaugeMetricFamily("cloudctl_extranet_units_required",
                                     "Units that must connect to the extranet, per level and county "
                                     "(county empty for horizontal access).", labels=["level", "county"])
        connected = GaugeMetricFamily("cloudctl_extranet_units_connected",
                                      "Units with an active line and a recent successful collection.",
                                      labels=["level", "county"])
        for row in access_rate(session, EXPORTER, with_missing=False):
            if row.scope in ("horizontal", "vertical"):
                level, county = row.scope, ""
            else:
                level, county = "county", row.scope
            required.add_metric([level, county], row.required)
            connected.add_metric([level, county], row.connected)
        yield from (required, connected)
        # Violations per rule and unit; a town's or village's counted under its county (bounded labels).
        counties = {str(uid): code for uid, code in session.execute(
            select(Unit.id, Unit.code).where(Unit.kind == UnitKind.COUNTY))}
        violations = GaugeMetricFamily("cloudctl_extranet_violations_open",
                                       "Open (and rectifying) compliance violations per rule and unit; towns and "
                                       "villages are counted under their county.", labels=["rule", "unit"])
        totals: dict[tuple[str, str], int] = {}
        for rule, code, kind, path, n in session.execute(
                select(Violation.rule, Unit.code, Unit.kind, Unit.path, func.count())
                .outerjoin(Unit, Unit.id == Violation.unit_id)
                .where(Violation.status.in_((ViolationStatus.OPEN, ViolationStatus.RECTIFYING)))
                .group_by(Violation.rule, Unit.code, Unit.kind, Unit.path)):
            label = str(code or "")
            if kind in (UnitKind.TOWN, UnitKind.VILLAGE):
                label = next((counties[p] for p in (path or "").strip("/").split("/") if p in counties), label)
            totals[(str(rule), label)] = totals.get((str(rule), label), 0) + n
        for (rule_label, unit_label), n in sorted(totals.items()):
            violations.add_metric([rule_label, unit_label], n)
        yield violations
        # Blocks by utilisation (registered addresses ÷ usable), per zone, as a histogram: top-N lists belong in
        # the API; a histogram keeps the series count fixed however many blocks the city has.
        usable = case((Prefix.length >= 31, Prefix.end - Prefix.start + 1), else_=Prefix.end - Prefix.start - 1)
        registered = (select(IPAddress.prefix_id, func.count().label("n")).group_by(IPAddress.prefix_id).subquery())
        by_zone: dict[str, list[float]] = {}
        for zone, n, size in session.execute(
                select(Prefix.zone, func.coalesce(registered.c.n, 0), usable)
                .outerjoin(registered, registered.c.prefix_id == Prefix.id)
                .where(Prefix.status == PrefixStatus.ACTIVE)):
            by_zone.setdefault(zone.value, []).append(n / size if size else 0.0)
        histogram = HistogramMetricFamily("cloudctl_extranet_prefix_utilisation_ratio",
                                          "Allocated blocks by utilisation (registered addresses ÷ usable), per "
                                          "zone.", labels=["zone"])
        for zone, ratios in sorted(by_zone.items()):
            buckets = [(str(b), sum(1 for r in ratios if r <= b)) for b in UTILISATION_BUCKETS]
            buckets.append(("+Inf", len(ratios)))
            histogram.add_metric([zone], buckets, sum(ratios))
        yield histogram
        fresh = utcnow() - timedelta(hours=get_settings().extranet_fresh_hours)
        devices = GaugeMetricFamily("cloudctl_extranet_devices",
                                    "Network devices by collection state: collected recently, failing (the last "
                                    "attempt failed), or stale (neither).", labels=["state"])
        state = case((NetworkDevice.last_success_at >= fresh, "collected"),
                     (NetworkDevice.last_error.is_not(None), "failing"), else_="stale")
        counts: dict[str, int] = {str(s): int(n) for s, n in session.execute(
            select(state, func.count()).group_by(state))}
        for name in ("collected", "failing", "stale"):
            devices.add_metric([name], counts.get(name, 0))
        yield devices

    def _security(self, session: Session) -> Iterator[Metric]:
        from cloudctl.security.models import (
            Alert,
            AlertStatus,
            Asset,
            BlockedAddress,
            Finding,
            StepStatus,
            Ticket,
            TicketStatus,
            TriageStep,
        )
        from cloudctl.security.models import Verdict as AlertVerdict
        from cloudctl.security.service.duty import missing_reports
        from cloudctl.security.service.findings import open_now

        today = beijing_today()  # SLA deadlines are Beijing dates
        soon = today + timedelta(days=7)
        sla = case((Finding.sla_deadline.is_(None), "none"), (Finding.sla_deadline < today, "overdue"),
                   (Finding.sla_deadline <= soon, "due_soon"), else_="within")
        findings = GaugeMetricFamily("cloudctl_security_findings_open",
                                     "Active findings (not false positives or accepted risks) by severity, SLA state "
                                     "(within, due_soon: 7 days, overdue, none) and unit.",
                                     labels=["finding_severity", "sla", "unit"])
        for severity, state, code, n in session.execute(
                select(Finding.severity, sla, func.coalesce(Unit.code, ""), func.count())
                .join(Asset, Asset.id == Finding.asset_id).outerjoin(Unit, Unit.id == Asset.unit_id)
                .where(open_now(today))
                .group_by(Finding.severity, sla, Unit.code)):
            findings.add_metric([severity.value, str(state), str(code)], n)
        tickets = GaugeMetricFamily("cloudctl_security_tickets_open", "Open rectification tickets (整改单) per unit.",
                                    labels=["unit"])
        for code, n in session.execute(select(Unit.code, func.count()).select_from(Ticket)
                                       .join(Unit, Unit.id == Ticket.unit_id)
                                       .where(Ticket.status == TicketStatus.OPEN).group_by(Unit.code)):
            tickets.add_metric([code], n)
        stages = GaugeMetricFamily("cloudctl_security_alerts_open",
                                   "Open alerts by stage: new (not yet judged), undetermined, false_positive, or the "
                                   "response step an attack has reached (block … reply).", labels=["stage"])
        # An attack's stage is its first pending step (by position); "done" once none is pending.
        first_pending = (select(TriageStep.alert_id, func.min(TriageStep.position).label("position"))
                         .where(TriageStep.status == StepStatus.PENDING).group_by(TriageStep.alert_id).subquery())
        step = aliased(TriageStep)
        counts: dict[str, int] = {}
        oldest_attack: float | None = None
        for verdict, pending, n, since in session.execute(
                select(Alert.verdict, step.step, func.count(), func.min(func.coalesce(Alert.verdict_at,
                                                                                    Alert.received_at)))
                .outerjoin(first_pending, first_pending.c.alert_id == Alert.id)
                .outerjoin(step, (step.alert_id == Alert.id) & (step.position == first_pending.c.position))
                .where(Alert.status != AlertStatus.CLOSED).group_by(Alert.verdict, step.step)):
            if verdict is None:
                stage = "new"
            elif verdict is AlertVerdict.ATTACK:
                stage = pending or "done"
                oldest_attack = since.timestamp() if oldest_attack is None else min(oldest_attack, since.timestamp())
            else:
                stage = verdict.value
            counts[stage] = counts.get(stage, 0) + n
        for stage in ("new", "undetermined", "false_positive", "block", "respond", "investigate", "kill", "record",
                      "reply", "done"):
            stages.add_metric([stage], counts.get(stage, 0))
        baseline = GaugeMetricFamily("cloudctl_security_baseline_checks",
                                     "MLPS level-3 baseline checks of each unit's hosts at their last run, by outcome "
                                     "(passed, failed: errors included; not-applicable ones left out).",
                                     labels=["unit", "outcome"])
        for code, checks, passed in session.execute(
                select(func.coalesce(Unit.code, ""), func.sum(Asset.baseline_checks), func.sum(Asset.baseline_passed))
                .select_from(Asset).outerjoin(Unit, Unit.id == Asset.unit_id)
                .where(Asset.baseline_checks.is_not(None)).group_by(Unit.code)):
            baseline.add_metric([str(code), "passed"], int(passed or 0))
            baseline.add_metric([str(code), "failed"], int(checks or 0) - int(passed or 0))
        yield from (findings, tickets, stages, baseline)
        if oldest_attack is not None:
            yield GaugeMetricFamily("cloudctl_security_attack_open_since_timestamp_seconds",
                                    "When the oldest open attack alert was judged (Unix time); absent when none.",
                                    value=oldest_attack)
        now = utcnow()
        blocked = session.scalar(select(func.count()).select_from(BlockedAddress).where(
            BlockedAddress.lifted_at.is_(None),
            (BlockedAddress.expires_at.is_(None)) | (BlockedAddress.expires_at > now))) or 0
        yield GaugeMetricFamily("cloudctl_security_blocked_addresses", "Addresses and networks on the block list now.",
                                value=blocked)
        overdue = GaugeMetricFamily("cloudctl_duty_reports_overdue",
                                    "Duty reports (零报告 included) past their slot and grace, per unit.",
                                    labels=["unit"])
        due = GaugeMetricFamily("cloudctl_duty_reports_due", "Duty reports due in the coming slot, per unit.",
                                labels=["unit"])
        late: dict[str, int] = {}
        coming: dict[str, int] = {}
        for missing in missing_reports(session, EXPORTER, now=now):
            target = late if missing.overdue else coming
            target[missing.unit_code] = target.get(missing.unit_code, 0) + 1
        for code, n in sorted(late.items()):
            overdue.add_metric([code], n)
        for code, n in sorted(coming.items()):
            due.add_metric([code], n)
        yield from (overdue, due)

    def _drills(self, session: Session) -> Iterator[Metric]:
        """Drills not yet in their summary phase: items per unit by phase and status, and what is overdue."""
        from cloudctl.security.models import Drill, DrillItem, DrillPhase
        from cloudctl.security.service.drills import late_items

        items = GaugeMetricFamily("cloudctl_drill_checklist_items",
                                  "Checklist items of running drills (护网) by drill, unit (departments and counties "
                                  "in the drill's scope), phase and status.",
                                  labels=["drill_id", "drill", "unit", "phase", "status"])
        overdue = GaugeMetricFamily("cloudctl_drill_checklist_items_overdue",
                                    "Checklist items past their due time and neither done, cancelled nor waived, "
                                    "per drill and unit.", labels=["drill_id", "drill", "unit"])
        running = select(Drill.id).where(Drill.phase != DrillPhase.SUMMARY)
        for drill_id, name, code, phase, status, n in session.execute(
                select(Drill.id, Drill.name, Unit.code, DrillItem.phase, DrillItem.status, func.count())
                .select_from(DrillItem).join(Drill, Drill.id == DrillItem.drill_id)
                .join(Unit, Unit.id == DrillItem.unit_id).where(DrillItem.drill_id.in_(running))
                .group_by(Drill.id, Drill.name, Unit.code, DrillItem.phase, DrillItem.status)):
            items.add_metric([str(drill_id), name, code, phase.value, status.value], n)
        for drill_id, name, code, n in session.execute(
                select(Drill.id, Drill.name, Unit.code, func.count()).select_from(DrillItem)
                .join(Drill, Drill.id == DrillItem.drill_id).join(Unit, Unit.id == DrillItem.unit_id)
                .where(DrillItem.drill_id.in_(running), late_items(utcnow()))
                .group_by(Drill.id, Drill.name, Unit.code)):
            overdue.add_metric([str(drill_id), name, code], n)
        # Its phase by the timeline: preparation and self-inspection end at the start, the watch at the end.
        behind = GaugeMetricFamily("cloudctl_drill_phase_behind_seconds",
                                   "Seconds a drill not yet in its summary phase has stayed in its phase past the "
                                   "time the timeline moves on (准备/自查: the start; 值守: the end); 0 when on time.",
                                   labels=["drill_id", "drill", "phase"])
        now = utcnow()
        for drill_id, name, phase, starts_at, ends_at in session.execute(
                select(Drill.id, Drill.name, Drill.phase, Drill.starts_at, Drill.ends_at)
                .where(Drill.phase != DrillPhase.SUMMARY)):
            leave = ends_at if phase is DrillPhase.ON_DUTY else starts_at
            behind.add_metric([str(drill_id), name, phase.value], max(0.0, (now - leave).total_seconds()))
        yield from (items, overdue, behind)

    def _incidents(self, session: Session) -> Iterator[Metric]:
        """Incidents by level and status, those whose report is overdue or was late, and the time to each step."""
        from cloudctl.security.models import (
            Incident,
            IncidentLevel,
            IncidentReport,
            IncidentStatus,
            IncidentStep,
            StepStatus,
        )
        from cloudctl.security.service.alerts import STEPS

        counts = GaugeMetricFamily("cloudctl_security_incidents", "Cybersecurity incidents (网络安全事件) by level "
                                   "(特别重大, 重大, 较大, 一般) and status.", labels=["level", "status"])
        # Every level and status, zero included: a city without incidents shows zeros, not "no data".
        by_key = {(level, status): 0 for level in IncidentLevel for status in IncidentStatus}
        for level, status, n in session.execute(select(Incident.level, Incident.status, func.count())
                                                .group_by(Incident.level, Incident.status)):
            by_key[(level, status)] = int(n)
        for (level, status), n in by_key.items():
            counts.add_metric([level.value, status.value], n)
        now = utcnow()
        first = (select(IncidentReport.incident_id, func.min(IncidentReport.reported_at).label("at"))
                 .group_by(IncidentReport.incident_id).subquery())
        overdue = late = 0
        for due, reported in session.execute(select(Incident.report_due_at, first.c.at)
                                             .outerjoin(first, first.c.incident_id == Incident.id)
                                             .where(Incident.report_due_at.is_not(None))):
            if reported is None and due is not None and now > due:
                overdue += 1
            elif reported is not None and due is not None and reported > due:
                late += 1
        reports = GaugeMetricFamily("cloudctl_security_incident_reports",
                                    "Incidents owing a report within hours (较大 and above) whose report is overdue "
                                    "(none made, deadline passed) or was made late (迟报).", labels=["state"])
        reports.add_metric(["overdue"], overdue)
        reports.add_metric(["late"], late)
        histogram = HistogramMetricFamily("cloudctl_security_incident_step_seconds",
                                          "Time from an incident to the end of each response step (阻断, 响应, "
                                          "排查, 查杀, 备案, 回复), seconds.", labels=["stage"])
        by_step: dict[str, list[float]] = {key: [] for key, _, _ in STEPS}
        for step, opened, done in session.execute(
                select(IncidentStep.step, Incident.opened_at, IncidentStep.done_at)
                .join(Incident, Incident.id == IncidentStep.incident_id)
                .where(IncidentStep.status == StepStatus.DONE, IncidentStep.done_at.is_not(None))):
            if done is not None:
                by_step.setdefault(step, []).append((done - opened).total_seconds())
        for step, values in by_step.items():
            buckets = [(str(b), sum(1 for v in values if v <= b)) for b in INCIDENT_STEP_BUCKETS]
            buckets.append(("+Inf", len(values)))
            histogram.add_metric([step], buckets, sum(values))
        yield from (counts, reports, histogram)

    def _notifications(self, session: Session) -> Iterator[Metric]:
        """The outbox: messages per channel and status, and how long the oldest one due has waited."""
        from cloudctl.notify.models import Channel, Delivery, DeliveryStatus

        messages = GaugeMetricFamily("cloudctl_notifications", "Messages in the outbox by channel and status "
                                     "(pending includes those waiting out quiet hours or a retry's backoff).",
                                     labels=["channel", "status"])
        for channel, status, n in session.execute(
                select(Channel.name, Delivery.status, func.count()).join(Channel, Channel.id == Delivery.channel_id)
                .group_by(Channel.name, Delivery.status)):
            messages.add_metric([channel, status.value], n)
        now = utcnow()
        oldest = session.scalar(select(func.min(Delivery.created_at)).where(
            Delivery.status.in_((DeliveryStatus.PENDING, DeliveryStatus.SENDING)), Delivery.send_after <= now))
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=now.tzinfo)  # an aggregate comes back without the column's type
        age = GaugeMetricFamily("cloudctl_notifications_oldest_pending_age_seconds",
                                "Seconds the oldest message that is due and not yet sent has waited (0: none).")
        age.add_metric([], max((now - oldest).total_seconds(), 0.0) if oldest is not None else 0.0)
        yield from (messages, age)

    def _jobs(self, session: Session) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("cloudctl_jobs", "Jobs by kind and status.", labels=["kind", "status"])
        failed = CounterMetricFamily("cloudctl_job_failures", "Jobs that ended failed, per kind.", labels=["kind"])
        failures: dict[str, int] = {}
        for kind, status, n in session.execute(select(Job.kind, Job.status, func.count())
                                               .group_by(Job.kind, Job.status)):
            jobs.add_metric([kind, status.value], n)
            if status is JobStatus.FAILED:
                failures[kind] = failures.get(kind, 0) + n
        for kind, n in sorted(failures.items()):
            failed.add_metric([kind], n)
        yield from (jobs, failed)
