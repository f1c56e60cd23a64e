"""The rules of reclaiming idle CPU and memory (资源回收整合).

Utilisation comes in as daily summaries (collected from each cloud's source, or imported);
an analysis classifies every server over a window and keeps one recommendation per server
and kind; the workflow, modelled on an audit → action plan, runs

    open → notified → (exempted | scheduled) → executed | failed, or dismissed by ops.

A notified department sees its recommendations and may appeal until the grace period ends;
ops accept (exempt until a date) or reject the appeal. Execution acts through the compute
service, so every resize and shelve is checked against the quota and audited like any other.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
from pydantic import ValidationError
from sqlalchemy import ColumnElement, Select, and_, delete, func, or_, select
from sqlalchemy.orm import Session

from cloudctl.compute import provisioning, volumes
from cloudctl.compute import service as compute
from cloudctl.compute.models import Cloud, CloudKind, Flavor, Server, Volume, VolumeSnapshot
from cloudctl.compute.providers import provider_for
from cloudctl.compute.providers.simulator import SimulatorProvider
from cloudctl.core import audit, jobs, read
from cloudctl.core.auth import Principal, authorize, system_principal
from cloudctl.core.bulk import insert_rows
from cloudctl.core.config import get_settings
from cloudctl.core.display import local_time
from cloudctl.core.errors import CloudctlError, Conflict, FieldError, InvalidInput, NotFound
from cloudctl.core.models import beijing_today, utcnow
from cloudctl.core.schemas import field_errors, gib
from cloudctl.core.tabular import Column, numbered
from cloudctl.notify.sender import reminder
from cloudctl.notify.service import emit
from cloudctl.org.models import BusinessSystem, Unit
from cloudctl.org.service import under
from cloudctl.reclaim import analysis
from cloudctl.reclaim.models import (
    AppealStatus,
    ReclaimCampaign,
    Recommendation,
    RecommendationKind,
    RecommendationStatus,
    UtilisationDay,
)
from cloudctl.reclaim.schemas import CampaignPublic, ExecutionStep, RollupRow, SummaryRow
from cloudctl.reclaim.sources.base import DailySummary, UtilisationSource

__all__ = [
    "ANALYZE_JOB",
    "ANALYZE_SHARD_JOB",
    "COLLECT_JOB",
    "SUMMARY_COLUMNS",
    "ImportResult",
    "analysis_shards",
    "analyze",
    "analyze_part",
    "appeal",
    "collect",
    "collect_days",
    "decide_appeal",
    "dismiss",
    "execute",
    "get_campaign",
    "get_recommendation",
    "import_summaries",
    "latest_campaign",
    "list_recommendations",
    "notify",
    "prices",
    "rollup",
    "source_for",
    "store_summaries",
    "submit_analysis",
    "submit_collection",
    "thresholds",
]

COLLECT_JOB = "reclaim.collect"
ANALYZE_JOB = "reclaim.analyze"
ANALYZE_SHARD_JOB = "reclaim.analyze.shard"
# Statuses in which a recommendation is still being worked: a new analysis updates or closes them.
ACTIVE = (RecommendationStatus.OPEN, RecommendationStatus.NOTIFIED, RecommendationStatus.SCHEDULED)
STOPPED_STATES = ("SHUTOFF", "SUSPENDED", "PAUSED")
# What execution does to each kind: shelve-offload is the only thing that frees a host's vCPU and RAM.
ACTIONS = {RecommendationKind.IDLE: "shelve_offload", RecommendationKind.ZOMBIE: "shelve_offload",
           RecommendationKind.OVERSIZED: "resize", RecommendationKind.LEASE: "shelve_offload",
           RecommendationKind.VOLUME_IDLE: "snapshot_delete", RecommendationKind.VOLUME_ORPHAN: "snapshot_delete",
           RecommendationKind.SNAPSHOT_OLD: "delete_snapshot"}
VOLUME_KINDS = (RecommendationKind.VOLUME_IDLE, RecommendationKind.VOLUME_ORPHAN)
KINDS = {analysis.Verdict.IDLE: RecommendationKind.IDLE, analysis.Verdict.OVERSIZED: RecommendationKind.OVERSIZED,
         analysis.Verdict.ZOMBIE: RecommendationKind.ZOMBIE}
# Numbers that bound bad input: a CPU or memory fraction past 1 is a unit mistake (percent, or cores).
FRACTION_SLACK = 1.05

ProviderLookup = Callable[[Cloud], Any]
SourceLookup = Callable[[Cloud], UtilisationSource | None]


# ---------------------------------------------------------------- configuration


def thresholds() -> analysis.Thresholds:
    """The analysis thresholds: the defaults, with the overrides of ``reclaim_thresholds`` in the settings."""
    overrides = get_settings().reclaim_thresholds
    known = {f.name for f in fields(analysis.Thresholds)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise InvalidInput(f"unknown threshold(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}",
                           field="reclaim_thresholds")
    values: dict[str, Any] = dict(overrides)
    try:
        return analysis.Thresholds(**values)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(str(exc), field="reclaim_thresholds") from None


def prices() -> analysis.Prices:
    settings = get_settings()
    return analysis.Prices(settings.price_vcpu_month, settings.price_ram_gb_month, settings.price_disk_gb_month)


def source_for(cloud: Cloud) -> UtilisationSource | None:
    """Where a cloud's utilisation comes from: its Prometheus, or the simulator's telemetry; None if nowhere."""
    settings = get_settings()
    if cloud.kind == CloudKind.SIMULATOR:
        from cloudctl.reclaim.sources.simulator import SimulatorTelemetry

        provider = provider_for(cloud)
        assert isinstance(provider, SimulatorProvider)
        return SimulatorTelemetry(provider)
    if cloud.kind == CloudKind.OPENSTACK and settings.prometheus_url:
        from cloudctl.reclaim.sources.prometheus import PROFILES, MetricProfile, PrometheusSource

        chosen = settings.reclaim_metric_profiles.get(cloud.name, "libvirt")
        if isinstance(chosen, dict):
            try:
                return PrometheusSource(settings.prometheus_url, MetricProfile(name=cloud.name, **chosen))
            except TypeError as exc:
                raise InvalidInput(f"cloud {cloud.name}: a metric profile names server_label, cpu, mem, net_rx and "
                                   f"net_tx ({exc})", field="reclaim_metric_profiles") from None
        if chosen not in PROFILES:
            raise InvalidInput(f"cloud {cloud.name}: unknown metric profile {chosen!r}; one of "
                               f"{', '.join(sorted(PROFILES))}", field="reclaim_metric_profiles")
        return PrometheusSource(settings.prometheus_url, PROFILES[chosen])
    return None  # a container cloud has no VMs; an OpenStack cloud without a Prometheus has no telemetry


# ---------------------------------------------------------------- utilisation


def store_summaries(session: Session, summaries: Iterable[tuple[int, DailySummary]], *, source: str) -> int:
    """Write (server id, summary) rows, replacing what was stored for the same server, day and metric."""
    return _store(session, [(server_id, s.day, s.metric, s.p95, s.p99, s.max, s.mean, s.samples, source)
                            for server_id, s in summaries])


_SUMMARY_COLUMNS = ("server_id", "day", "metric", "p95", "p99", "max", "mean", "samples", "source")


def _store(session: Session, rows: list[tuple[int, date, str, float, float, float, float, int, str]]) -> int:
    """Rows of utilisation_daily (the columns of _SUMMARY_COLUMNS), replacing those of their server, day and metric."""
    if not rows:
        return 0
    # Delete-then-insert by (day, metric): one statement per pair instead of an upsert per row, on both databases,
    # and only the (server, day, metric) triples given, so a CPU-only file leaves the day's network rows alone.
    by_key: dict[tuple[date, str], set[int]] = {}
    for row in rows:
        by_key.setdefault((row[1], row[2]), set()).add(row[0])
    for (day, metric), server_ids in by_key.items():
        ids = sorted(server_ids)
        for start in range(0, len(ids), 500):
            session.execute(delete(UtilisationDay).where(UtilisationDay.day == day, UtilisationDay.metric == metric,
                                                         UtilisationDay.server_id.in_(ids[start:start + 500])))
    return insert_rows(session, UtilisationDay, _SUMMARY_COLUMNS, rows)


def collect(session: Session, principal: Principal, day: date, *, cloud: str | None = None,
            sources: SourceLookup = source_for) -> dict[str, int]:
    """Read one UTC day's summaries of every server (of one cloud) from its source and store them."""
    return collect_days(session, principal, [day], cloud=cloud, sources=sources)


def collect_days(session: Session, principal: Principal, days: Sequence[date], *, cloud: str | None = None,
                 sources: SourceLookup = source_for) -> dict[str, int]:
    """:func:`collect` for several UTC days: each cloud's source and servers are read once for all of them."""
    authorize(principal, "reclaim.utilisation:write")
    today = utcnow().date()
    late = [d for d in days if d >= today]
    if late:
        raise InvalidInput(f"{late[0]} is not over yet (UTC): collect a finished day", field="day")
    query = select(Cloud).where(Cloud.enabled.is_(True)).order_by(Cloud.name)
    if cloud is not None:
        query = query.where(Cloud.name == cloud)
    counts = {"servers": 0, "summaries": 0, "clouds_without_source": 0}
    for row in session.scalars(query):
        source = sources(row)
        if source is None:
            counts["clouds_without_source"] += 1
            continue
        servers = dict(session.execute(select(Server.provider_id, Server.id).where(
            Server.cloud_id == row.id, Server.status != "DELETED")).all())
        asked = sorted(servers)
        counts["servers"] += len(servers)
        kind = "simulator" if row.kind == CloudKind.SIMULATOR else "prometheus"
        counts["summaries"] += _store(session, [
            (servers[s.server], s.day, s.metric, s.p95, s.p99, s.max, s.mean, s.samples, kind)
            for day in days for s in source.daily_summaries(day, asked) if s.server in servers])
    return counts


@jobs.job_handler(COLLECT_JOB)
def collect_job(ctx: jobs.JobContext) -> dict[str, Any]:
    """Collect the days in ``params['days']`` (ISO dates), one transaction and checkpoint per day."""
    days = [date.fromisoformat(d) for d in ctx.params["days"]]
    done = set((ctx.checkpoint or {}).get("done", []))
    totals: dict[str, int] = {}
    for n, day in enumerate(days, 1):
        if day.isoformat() not in done:
            with ctx.session() as session:
                counts = collect(session, ctx.principal, day, cloud=ctx.params.get("cloud"))
            for key, value in counts.items():
                totals[key] = totals.get(key, 0) + value
            ctx.log(f"{day}: {counts['summaries']} summaries of {counts['servers']} servers")
            done.add(day.isoformat())
            ctx.save_checkpoint({"done": sorted(done)})
        ctx.progress(n, len(days), message=f"{n} of {len(days)} days collected")
    return totals


def submit_collection(session: Session, principal: Principal, days: Sequence[date], *,
                      cloud: str | None = None) -> jobs.Job:
    """Queue the collection of these days (one job; each day is its own checkpoint)."""
    authorize(principal, "reclaim.utilisation:write")
    if not days:
        raise InvalidInput("give at least one day", field="days")
    today = utcnow().date()
    late = [d for d in days if d >= today]
    if late:
        raise InvalidInput(f"{late[0]} is not over yet (UTC): collect finished days", field="days")
    return jobs.submit_job(session, principal, COLLECT_JOB,
                           {"days": sorted({d.isoformat() for d in days}), "cloud": cloud})


@dataclass(frozen=True, slots=True)
class ImportResult:
    rows: int
    servers: int
    days: int


# The columns of `reclaim import`, with the names a Chinese spreadsheet gives them.
SUMMARY_COLUMNS = (
    Column("server", ("云主机", "服务器", "主机"), required=True),
    Column("day", ("日期",), required=True),
    Column("metric", ("指标",), required=True),
    Column("p95", ("P95",), required=True),
    Column("p99", ("P99",), required=True),
    Column("max", ("最大值",), required=True),
    Column("mean", ("平均值", "均值"), required=True),
    Column("samples", ("样本数", "采样数"), required=True),
)


def import_summaries(session: Session, principal: Principal, rows: Sequence[Mapping[str, Any]]) -> ImportResult:
    """Import daily summaries from another tool: every row valid, or nothing written.

    ``server`` may be cloudctl's server id, the provider's id or the server's name (when unique).
    Errors name the row: ``rows.12.p95``.
    """
    authorize(principal, "reclaim.utilisation:write")
    if not rows:
        raise InvalidInput("the file holds no rows", field="rows")
    errors: list[FieldError] = []
    parsed: list[tuple[int, SummaryRow]] = []
    for n, raw in numbered(rows):
        try:
            row = SummaryRow.model_validate(dict(raw))
        except ValidationError as exc:
            errors.extend(field_errors(exc, prefix=("rows", n)))
            continue
        if not row.p95 <= row.p99 <= row.max:
            errors.append(FieldError(f"rows.{n}.p99", "p95 ≤ p99 ≤ max must hold"))
        elif row.mean > row.max:
            errors.append(FieldError(f"rows.{n}.mean", "the mean cannot exceed the max"))
        elif row.metric in ("cpu", "mem") and row.max > FRACTION_SLACK:
            errors.append(FieldError(f"rows.{n}.max", f"{row.metric} is a fraction of the server's size (0–1), "
                                                      f"not a percentage: got {row.max:g}"))
        elif row.day >= utcnow().date():
            errors.append(FieldError(f"rows.{n}.day", "the day is not over yet (UTC)"))
        parsed.append((n, row))
    resolved = _resolve_servers(session, [row.server for _, row in parsed])
    for n, row in parsed:
        if resolved.get(row.server) is None:
            errors.append(FieldError(f"rows.{n}.server", f"no server {row.server!r} (id, provider id or unique name)"))
    if errors:
        errors.sort(key=lambda e: _row_of(e.field))
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise InvalidInput(f"{errors[0].reason}{more}; nothing imported", errors=errors[:200])
    seen: dict[tuple[int, date, str], int] = {}
    for n, row in parsed:
        key = (resolved[row.server], row.day, row.metric)
        if key in seen:
            raise InvalidInput(f"row {n} repeats row {seen[key]} (same server, day and metric); nothing imported",
                               field=f"rows.{n}")
        seen[key] = n
    summaries = [(resolved[row.server], DailySummary(server=row.server, day=row.day, metric=row.metric, p95=row.p95,
                                                     p99=row.p99, max=row.max, mean=row.mean, samples=row.samples))
                 for _, row in parsed]
    count = store_summaries(session, summaries, source="import")
    audit.record(session, principal, action="import", entity="utilisation", entity_id=f"{count} rows",
                 after={"rows": count, "servers": len({s for s, _ in summaries}),
                        "days": len({s.day for _, s in summaries})})
    return ImportResult(rows=count, servers=len({s for s, _ in summaries}), days=len({s.day for _, s in summaries}))


def _row_of(field: str) -> int:
    """The row number in ``rows.12.p95``, to report a file's errors in its own order."""
    parts = field.split(".")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def _resolve_servers(session: Session, names: Iterable[str]) -> dict[str, int]:
    wanted = set(names)
    found: dict[str, int] = {}
    # ASCII digits that fit a 64-bit id: "²" is a digit to str.isdigit, and a longer number no server's id.
    ids = [int(n) for n in wanted if n.isascii() and n.isdigit() and len(n) <= 18]
    for start in range(0, len(ids), 500):
        for server_id in session.scalars(select(Server.id).where(Server.id.in_(ids[start:start + 500]))):
            found[str(server_id)] = server_id
    rest = sorted(wanted - set(found))
    for start in range(0, len(rest), 500):
        chunk = rest[start:start + 500]
        for provider_id, server_id in session.execute(select(Server.provider_id, Server.id).where(
                Server.provider_id.in_(chunk), Server.status != "DELETED")):
            found[provider_id] = server_id
        names_left = [n for n in chunk if n not in found]
        counts: dict[str, list[int]] = {}
        for name, server_id in session.execute(select(Server.name, Server.id).where(
                Server.name.in_(names_left), Server.status != "DELETED")):
            counts.setdefault(name, []).append(server_id)
        found.update({name: ids_[0] for name, ids_ in counts.items() if len(ids_) == 1})
    return found


# ---------------------------------------------------------------- analysis

# The servers an analysis classifies.
_LIVE = and_(Server.status.not_in(("DELETED", "BUILD", "ERROR")), Server.unit_id.is_not(None))


def analyze(session: Session, principal: Principal, *, as_of: date | None = None,
            job_id: int | None = None) -> ReclaimCampaign:
    """Classify every live server over the window ending ``as_of`` (yesterday) and update the recommendations.

    A recommendation is one per server and kind: a re-run updates its evidence instead of
    adding another; one the new analysis no longer supports is dismissed with the reason; one
    exempted until a day that has passed, or dismissed or executed before, opens again.
    """
    campaign = start_campaign(session, principal, as_of=as_of, job_id=job_id)
    return finish_campaign(session, principal, campaign, analyze_part(session, principal, campaign))


def start_campaign(session: Session, principal: Principal, *, as_of: date | None = None,
                   job_id: int | None = None) -> ReclaimCampaign:
    """The campaign an analysis fills in (its window and the thresholds in force); a job's own campaign when that
    job started one already (a parent that splits again after a crash)."""
    authorize(principal, "reclaim.recommendation:write")
    if job_id is not None and (found := session.scalar(
            select(ReclaimCampaign).where(ReclaimCampaign.job_id == job_id))) is not None:
        return found
    as_of = as_of or utcnow().date() - timedelta(days=1)
    limits = thresholds()
    window_days = max(limits.idle_window_days, limits.oversized_window_days)
    campaign = ReclaimCampaign(as_of=as_of, window_days=window_days, started_at=utcnow(),
                               started_by=principal.actor, job_id=job_id,
                               thresholds={f.name: getattr(limits, f.name) for f in fields(limits)}, counts={})
    session.add(campaign)
    session.flush()
    return campaign


def analysis_shards(session: Session, size: int) -> list[dict[str, Any]]:
    """The live servers in parts of about ``size``, by cloud and then by unit subtree (units in tree order, whole
    units, a subtree kept together as far as the size allows): ``{"cloud": id, "units": [ids]}`` each."""
    rows = session.execute(
        select(Server.cloud_id, Server.unit_id, func.count()).join(Unit, Unit.id == Server.unit_id)
        .where(_LIVE).group_by(Server.cloud_id, Server.unit_id, Unit.path)
        .order_by(Server.cloud_id, Unit.path)).all()
    parts: list[dict[str, Any]] = []
    held = 0
    for cloud_id, unit_id, count in rows:
        if not parts or parts[-1]["cloud"] != cloud_id or held + count > size:
            parts.append({"cloud": cloud_id, "units": []})
            held = 0
        parts[-1]["units"].append(unit_id)
        held += count
    return parts


def analyze_part(session: Session, principal: Principal, campaign: ReclaimCampaign, *,
                 cloud_id: int | None = None, unit_ids: Sequence[int] | None = None) -> dict[str, int]:
    """Classify the live servers (all, or those of one cloud in these units) into the campaign's recommendations;
    the counts of this part. Parts of one campaign touch different servers, so any worker may run any of them."""
    authorize(principal, "reclaim.recommendation:write")
    as_of = campaign.as_of
    limits, price = thresholds(), prices()
    window_days = campaign.window_days
    query = (select(Server, BusinessSystem.user_facing)
             .outerjoin(BusinessSystem, Server.business_system_id == BusinessSystem.id).where(_LIVE))
    part: list[ColumnElement[bool]] = []
    if cloud_id is not None:
        part.append(Server.cloud_id == cloud_id)
    if unit_ids is not None:
        part.append(Server.unit_id.in_(list(unit_ids)))
    query = query.where(*part)
    servers = list(session.execute(query.order_by(Server.id)))
    tables, facts = _facts(session, [s for s, _ in servers], [bool(uf) for _, uf in servers], as_of, price)
    # A part reads only its own servers' days (the database picks them out, not this process).
    window = _window(session, [s.id for s, _ in servers], as_of, window_days,
                     only=UtilisationDay.server_id.in_(select(Server.id).where(_LIVE, *part)) if part else None)
    result = analysis.classify(window, facts, tables, limits, price)

    counts: dict[str, int] = {**result.counts(), "created": 0, "updated": 0, "reopened": 0, "dismissed": 0}
    # A lease's recommendation is not the analysis's to update or dismiss (see open_lease_recommendations).
    existing = {(r.server_id, r.kind): r for r in session.scalars(
        select(Recommendation).where(Recommendation.server_id.in_([s.id for s, _ in servers]),
                                     Recommendation.kind != RecommendationKind.LEASE))} if servers else {}
    flagged: set[tuple[int, RecommendationKind]] = set()
    for i, (server, _) in enumerate(servers):
        kind = KINDS.get(result.verdict_of(i))
        if kind is None:
            continue
        flagged.add((server.id, kind))
        table = tables[int(facts.flavor_table[i])]
        recommended = int(result.recommended[i])
        values = {
            "campaign_id": campaign.id, "unit_id": server.unit_id, "current_flavor": server.flavor,
            "evidence": analysis.evidence(result, facts, tables, i),
            "recommended_flavor": str(table.names[recommended]) if recommended >= 0 else None,
            "reclaim_vcpus": int(result.reclaim_vcpus[i]), "reclaim_ram_mb": int(result.reclaim_ram_mb[i]),
            "reclaim_disk_gb": int(result.reclaim_disk_gb[i]),
            "saving_month": round(float(result.saving_month[i]), 2),
        }
        rec = existing.get((server.id, kind))
        if rec is None:
            rec = Recommendation(server_id=server.id, kind=kind, status=RecommendationStatus.OPEN, **values)
            session.add(rec)
            counts["created"] += 1
            continue
        for key, value in values.items():
            setattr(rec, key, value)
        expired = rec.status is RecommendationStatus.EXEMPTED and (rec.exempt_until is None
                                                                   or rec.exempt_until < as_of)
        if rec.status in (RecommendationStatus.DISMISSED, RecommendationStatus.EXECUTED) or expired:
            before = rec.status.value
            _reopen(rec)
            audit.record(session, principal, action="reopen", entity="reclaim_recommendation", entity_id=rec.id,
                         before={"status": before}, after={"status": rec.status.value}, unit_id=rec.unit_id)
            counts["reopened"] += 1
        else:
            counts["updated"] += 1
    for (server_id, kind), rec in existing.items():
        if rec.status in ACTIVE and (server_id, kind) not in flagged:
            rec.status = RecommendationStatus.DISMISSED
            rec.closed_reason = f"campaign {campaign.id} no longer finds it {kind.value}"
            audit.record(session, principal, action="dismiss", entity="reclaim_recommendation", entity_id=rec.id,
                         before={"status": "active"}, after={"status": "dismissed", "reason": rec.closed_reason},
                         unit_id=rec.unit_id)
            counts["dismissed"] += 1
    return counts


def finish_campaign(session: Session, principal: Principal, campaign: ReclaimCampaign,
                    counts: Mapping[str, int]) -> ReclaimCampaign:
    """The campaign's counts (its parts' summed) and end, with one audit row for the whole analysis. Volumes and
    snapshots are judged here, once per campaign, whether the servers were classified in one part or in shards."""
    price = prices()
    counts = {**counts, **_analyze_volumes(session, principal, campaign, campaign.as_of, price),
              **_analyze_snapshots(session, principal, campaign, campaign.as_of, price)}
    campaign.counts = counts
    campaign.finished_at = utcnow()
    session.flush()
    audit.record(session, principal, action="analyze", entity="reclaim_campaign", entity_id=campaign.id,
                 after={"as_of": campaign.as_of, **counts})
    return campaign


def _analyze_volumes(session: Session, principal: Principal, campaign: ReclaimCampaign, as_of: date,
                     price: analysis.Prices) -> dict[str, int]:
    """Storage: a volume unattached ``reclaim_volume_unattached_days`` or more, or attached to a deleted server,
    becomes a recommendation (one per volume and kind), updated, reopened and dismissed as a server's is."""
    days = get_settings().reclaim_volume_unattached_days
    cutoff = datetime.combine(as_of, datetime.min.time(), tzinfo=UTC) - timedelta(days=days - 1)
    found: dict[tuple[int, RecommendationKind], tuple[Volume, dict[str, Any]]] = {}
    # A Kubernetes cloud's claims are inventory only: nothing there could be snapshotted and deleted.
    live = (select(Volume).outerjoin(Server, Volume.server_id == Server.id).join(Cloud, Volume.cloud_id == Cloud.id)
            .where(Volume.status != "deleted", Volume.unit_id.is_not(None), Cloud.kind != CloudKind.KUBERNETES)
            .order_by(Volume.id))
    for volume in session.scalars(live.where(Volume.server_id.is_(None), Volume.detached_since < cutoff)):
        since = volume.detached_since
        found[(volume.id, RecommendationKind.VOLUME_IDLE)] = (volume, {
            "unattached_since": since.date().isoformat() if since else None,
            "unattached_days": (as_of - since.date()).days + 1 if since else None, "threshold_days": days})
    for volume in session.scalars(live.where(Server.status == "DELETED")):
        found[(volume.id, RecommendationKind.VOLUME_ORPHAN)] = (volume, {"server": volume.server_name})
    counts = {"volumes_created": 0, "volumes_updated": 0, "volumes_reopened": 0, "volumes_dismissed": 0}
    existing = {(r.volume_id, r.kind): r for r in session.scalars(
        select(Recommendation).where(Recommendation.volume_id.is_not(None)))}
    for key, (volume, evidence) in found.items():
        assert volume.unit_id is not None
        values = {"campaign_id": campaign.id, "unit_id": volume.unit_id,
                  "evidence": {**evidence, "volume_type": volume.volume_type, "size_gib": volume.size_gib},
                  "current_flavor": f"{volume.volume_type} {volume.size_gib} GiB", "recommended_flavor": None,
                  "reclaim_vcpus": 0, "reclaim_ram_mb": 0, "reclaim_disk_gb": volume.size_gib,
                  "saving_month": round(float(price.month(0, 0, volume.size_gib)), 2)}
        rec = existing.get(key)
        if rec is None:
            session.add(Recommendation(volume_id=volume.id, kind=key[1], status=RecommendationStatus.OPEN,
                                       **values))
            counts["volumes_created"] += 1
            continue
        for name, value in values.items():
            setattr(rec, name, value)
        expired = rec.status is RecommendationStatus.EXEMPTED and (rec.exempt_until is None
                                                                   or rec.exempt_until < as_of)
        if rec.status is RecommendationStatus.DISMISSED or expired:
            before = rec.status.value
            _reopen(rec)
            audit.record(session, principal, action="reopen", entity="reclaim_recommendation", entity_id=rec.id,
                         before={"status": before}, after={"status": rec.status.value}, unit_id=rec.unit_id)
            counts["volumes_reopened"] += 1
        else:
            counts["volumes_updated"] += 1
    for (volume_id, kind), rec in existing.items():
        if rec.status in ACTIVE and (volume_id or 0, kind) not in found:
            rec.status = RecommendationStatus.DISMISSED
            rec.closed_reason = f"campaign {campaign.id} no longer finds it {kind.value}"
            audit.record(session, principal, action="dismiss", entity="reclaim_recommendation", entity_id=rec.id,
                         before={"status": "active"}, after={"status": "dismissed", "reason": rec.closed_reason},
                         unit_id=rec.unit_id)
            counts["volumes_dismissed"] += 1
    return counts


def _analyze_snapshots(session: Session, principal: Principal, campaign: ReclaimCampaign, as_of: date,
                       price: analysis.Prices) -> dict[str, int]:
    """A snapshot older than ``reclaim_snapshot_retention_days`` becomes a recommendation of its own."""
    days = get_settings().reclaim_snapshot_retention_days
    cutoff = datetime.combine(as_of, datetime.min.time(), tzinfo=UTC) - timedelta(days=days - 1)
    old = {s.id: s for s in session.scalars(select(VolumeSnapshot).where(
        VolumeSnapshot.status != "deleted", VolumeSnapshot.unit_id.is_not(None),
        VolumeSnapshot.provider_created_at < cutoff).order_by(VolumeSnapshot.id))}
    existing = {r.volume_snapshot_id: r for r in session.scalars(
        select(Recommendation).where(Recommendation.volume_snapshot_id.is_not(None)))}
    counts = {"snapshots_created": 0, "snapshots_updated": 0, "snapshots_dismissed": 0}
    for snapshot_id, snapshot in old.items():
        assert snapshot.unit_id is not None
        taken = snapshot.provider_created_at
        values = {"campaign_id": campaign.id, "unit_id": snapshot.unit_id,
                  "evidence": {"taken_at": taken.isoformat() if taken else None, "retention_days": days,
                               "volume": snapshot.volume_provider_id, "size_gib": snapshot.size_gib},
                  "current_flavor": f"snapshot {snapshot.size_gib} GiB", "recommended_flavor": None,
                  "reclaim_vcpus": 0, "reclaim_ram_mb": 0, "reclaim_disk_gb": snapshot.size_gib,
                  "saving_month": round(float(price.month(0, 0, snapshot.size_gib)), 2)}
        rec = existing.get(snapshot_id)
        if rec is None:
            session.add(Recommendation(volume_snapshot_id=snapshot_id, kind=RecommendationKind.SNAPSHOT_OLD,
                                       status=RecommendationStatus.OPEN, **values))
            counts["snapshots_created"] += 1
            continue
        for name, value in values.items():
            setattr(rec, name, value)
        if rec.status is RecommendationStatus.EXEMPTED and rec.exempt_until is not None \
                and rec.exempt_until < as_of:
            _reopen(rec)
        counts["snapshots_updated"] += 1
    for known, rec in existing.items():
        if rec.status in ACTIVE and known not in old:
            rec.status = RecommendationStatus.DISMISSED
            rec.closed_reason = f"campaign {campaign.id} no longer finds it snapshot_old"
            audit.record(session, principal, action="dismiss", entity="reclaim_recommendation", entity_id=rec.id,
                         before={"status": "active"}, after={"status": "dismissed", "reason": rec.closed_reason},
                         unit_id=rec.unit_id)
            counts["snapshots_dismissed"] += 1
    return counts


def _reopen(rec: Recommendation) -> None:
    rec.status = RecommendationStatus.OPEN
    rec.notified_at = rec.due_at = rec.executed_at = None
    rec.appeal_status = rec.appeal_reason = rec.appeal_by = rec.appeal_at = None
    rec.appeal_decided_by = rec.appeal_decided_at = rec.appeal_note = None
    rec.exempt_until = None
    rec.action = rec.error = rec.closed_reason = None


def submit_analysis(session: Session, principal: Principal, *, as_of: date | None = None) -> jobs.Job:
    authorize(principal, "reclaim.recommendation:write")
    if as_of is not None and as_of >= utcnow().date():
        raise InvalidInput(f"{as_of} is not over yet (UTC): the window ends with a finished day", field="as_of")
    return jobs.submit_job(session, principal, ANALYZE_JOB, {"as_of": as_of.isoformat() if as_of else None})


def _combine_analysis(session: Session, parent: jobs.Job, shards: list[jobs.Job]) -> jobs.JobOutcome:
    """The parts' counts summed into the campaign's, which ends here (one audit row, as an unsplit analysis)."""
    outcome = jobs.combine_counts(session, parent, shards)
    campaign = session.scalar(select(ReclaimCampaign).where(ReclaimCampaign.job_id == parent.id))
    if campaign is None:
        return jobs.JobOutcome(outcome.result, jobs.JobStatus.FAILED, "the analysis' campaign is gone")
    counts = {key: int(value) for key, value in outcome.result.items()
              if key not in ("campaign", "shards") and isinstance(value, int)}
    finish_campaign(session, jobs.job_principal(parent), campaign, counts)
    return jobs.JobOutcome({"campaign": campaign.id, **campaign.counts, "shards": len(shards)}, outcome.status,
                           outcome.error)


@jobs.job_handler(ANALYZE_JOB, combine=_combine_analysis)
def analyze_job(ctx: jobs.JobContext) -> dict[str, Any] | jobs.Shards:
    as_of = date.fromisoformat(ctx.params["as_of"]) if ctx.params.get("as_of") else None
    size = get_settings().reclaim_shard_servers
    if size:
        with ctx.session() as session:
            live = session.scalar(select(func.count()).select_from(Server).where(_LIVE)) or 0
            if live > size:
                # Several workers (on several hosts) classify a cloud's unit subtrees each into one campaign.
                campaign_id = start_campaign(session, ctx.principal, as_of=as_of, job_id=ctx.job_id).id
                parts = analysis_shards(session, size)
        if live > size:
            return jobs.Shards(ANALYZE_SHARD_JOB, [{"campaign": campaign_id, **part} for part in parts],
                               message=f"{live} servers in {len(parts)} shard(s)")
    with ctx.session() as session:
        campaign = analyze(session, ctx.principal, as_of=as_of, job_id=ctx.job_id)
        campaign_id, counts = campaign.id, dict(campaign.counts)
    # Logged once the campaign is committed: on SQLite a second session would wait for this one's lock.
    ctx.log(f"campaign {campaign_id}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    ctx.progress(1, 1, message=f"campaign {campaign_id} done")
    return {"campaign": campaign_id, **counts}


@jobs.job_handler(ANALYZE_SHARD_JOB)
def analyze_shard_job(ctx: jobs.JobContext) -> dict[str, Any]:
    """One cloud's unit subtrees of an analysis: their servers' recommendations (run again, it finds them and
    writes the same)."""
    with ctx.session() as session:
        campaign = session.get(ReclaimCampaign, ctx.params["campaign"])
        if campaign is None:
            raise NotFound(f"no reclaim campaign {ctx.params['campaign']}", field="campaign")
        counts = analyze_part(session, ctx.principal, campaign, cloud_id=ctx.params["cloud"],
                              unit_ids=ctx.params["units"])
    ctx.log(", ".join(f"{k} {v}" for k, v in counts.items()))
    return counts


def _facts(session: Session, servers: Sequence[Server], user_facing: Sequence[bool], as_of: date,
           price: analysis.Prices) -> tuple[list[analysis.FlavorTable], analysis.ServerFacts]:
    """Sizes, ages and states of the servers, and one flavor table per cloud, as analysis arrays."""
    cloud_ids = sorted({s.cloud_id for s in servers})
    tables: list[analysis.FlavorTable] = []
    table_of: dict[int, int] = {}
    position: dict[tuple[int, str], int] = {}
    for cloud_id in cloud_ids:
        rows = session.execute(select(Flavor.name, Flavor.vcpus, Flavor.ram_mb, Flavor.disk_gb)
                               .where(Flavor.cloud_id == cloud_id)).all()
        table = analysis.FlavorTable.from_flavors(rows, price)
        table_of[cloud_id] = len(tables)
        tables.append(table)
        position.update({(cloud_id, str(name)): j for j, name in enumerate(table.names)})
    # The end of the window: the age and stop time are measured to the end of the last day analysed.
    end = datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC) + timedelta(days=1)

    def days_since(moment: datetime | None) -> float:
        return (end - moment).total_seconds() / 86400 if moment is not None else float("nan")

    facts = analysis.ServerFacts(
        vcpus=np.array([s.vcpus for s in servers], dtype=np.int64),
        ram_mb=np.array([s.ram_mb for s in servers], dtype=np.int64),
        disk_gb=np.array([s.disk_gb for s in servers], dtype=np.int64),
        age_days=np.array([days_since(s.launched_at or s.created_at) for s in servers], dtype=np.float64),
        stopped_days=np.array([days_since(s.status_since) if s.status in STOPPED_STATES else float("nan")
                               for s in servers], dtype=np.float64),
        user_facing=np.array(user_facing, dtype=np.bool_),
        flavor_table=np.array([table_of[s.cloud_id] for s in servers], dtype=np.int64),
        flavor_index=np.array([position.get((s.cloud_id, s.flavor), -1) for s in servers], dtype=np.int64),
    )
    return tables, facts


def _window(session: Session, server_ids: Sequence[int], as_of: date, days: int, *,
            only: ColumnElement[bool] | None = None) -> analysis.FleetWindow:
    """The daily summaries of the window as (servers × days) arrays, NaN where a day has none; ``only``: the
    summaries of some servers (an analysis' part)."""
    window = analysis.FleetWindow.empty(len(server_ids), as_of, days)
    if not server_ids:
        return window
    row_of = {server_id: i for i, server_id in enumerate(server_ids)}
    first = as_of - timedelta(days=days - 1)
    columns = {("cpu", "p95"): window.cpu_p95, ("cpu", "p99"): window.cpu_p99, ("cpu", "max"): window.cpu_max,
               ("mem", "max"): window.mem_max, ("net_rx", "p95"): window.net_rx_p95,
               ("net_tx", "p95"): window.net_tx_p95}
    query = (select(UtilisationDay.server_id, UtilisationDay.day, UtilisationDay.metric, UtilisationDay.p95,
                    UtilisationDay.p99, UtilisationDay.max)
             .where(UtilisationDay.day >= first, UtilisationDay.day <= as_of))
    if only is not None:
        query = query.where(only)
    rows = session.execute(query).all()
    if not rows:
        return window
    keep = [r for r in rows if r[0] in row_of]
    if not keep:
        return window
    server_index = np.array([row_of[r[0]] for r in keep], dtype=np.int64)
    day_index = np.array([(r[1] - first).days for r in keep], dtype=np.int64)
    metric = np.array([r[2] for r in keep], dtype=object)
    stats = {"p95": np.array([r[3] for r in keep]), "p99": np.array([r[4] for r in keep]),
             "max": np.array([r[5] for r in keep])}
    for (name, stat), target in columns.items():
        mask = metric == name
        target[server_index[mask], day_index[mask]] = stats[stat][mask]
    return window


# ---------------------------------------------------------------- reading


def _query(principal: Principal) -> Select[Recommendation]:
    return read.within(select(Recommendation).join(Recommendation.unit), principal, unit=Recommendation.unit_id)


def list_recommendations(
    session: Session, principal: Principal, *, unit: str | None = None, kind: RecommendationKind | None = None,
    status: RecommendationStatus | None = None, cloud: str | None = None, limit: int = 50, offset: int = 0,
) -> tuple[list[Recommendation], int]:
    authorize(principal, "reclaim.recommendation:read")
    query = _query(principal)
    if unit is not None:
        query = query.where(under(session, principal, unit, Recommendation.unit_id))
    if kind is not None:
        query = query.where(Recommendation.kind == kind)
    if status is not None:
        query = query.where(Recommendation.status == status)
    if cloud is not None:
        cloud_id = compute.cloud_filter(session, principal, cloud).id
        query = query.where(or_(
            Recommendation.server_id.in_(select(Server.id).where(Server.cloud_id == cloud_id)),
            Recommendation.volume_id.in_(select(Volume.id).where(Volume.cloud_id == cloud_id))))
    return read.page(session, query, limit=limit, offset=offset,
                     order_by=(Recommendation.saving_month.desc(), Recommendation.id))


def get_recommendation(session: Session, principal: Principal, rec_id: int) -> Recommendation:
    authorize(principal, "reclaim.recommendation:read")
    return read.one(session, _query(principal).where(Recommendation.id == rec_id),
                    missing=f"no recommendation with id {rec_id}")


def _campaign(principal: Principal, campaign: ReclaimCampaign) -> CampaignPublic:
    # A campaign's counts are the whole city's servers by verdict: figures for the roles that see the city.
    public = CampaignPublic.model_validate(campaign)
    return public.model_copy(update={"counts": {}}) if principal.is_scoped else public


def get_campaign(session: Session, principal: Principal, campaign_id: int) -> CampaignPublic:
    authorize(principal, "reclaim.recommendation:read")
    campaign = read.one(session, select(ReclaimCampaign).where(ReclaimCampaign.id == campaign_id),
                        missing=f"no campaign with id {campaign_id}", field="campaign")
    return _campaign(principal, campaign)


def latest_campaign(session: Session, principal: Principal) -> CampaignPublic | None:
    authorize(principal, "reclaim.recommendation:read")
    campaign = session.scalar(select(ReclaimCampaign).order_by(ReclaimCampaign.id.desc()).limit(1))
    return None if campaign is None else _campaign(principal, campaign)


# ---------------------------------------------------------------- workflow


def _snapshot(rec: Recommendation) -> dict[str, Any]:
    return audit.snapshot(rec, ("status", "due_at", "appeal_status", "exempt_until", "closed_reason", "error"))


def notify(session: Session, principal: Principal, rec_ids: Sequence[int] | None = None, *,
           grace_days: int | None = None, now: datetime | None = None) -> list[Recommendation]:
    """Tell the owning departments (open → notified) and start their grace period; all open ones by default."""
    authorize(principal, "reclaim.recommendation:write")
    grace = get_settings().reclaim_grace_days if grace_days is None else grace_days
    if not 0 <= grace <= 90:
        raise InvalidInput("must be between 0 and 90 days", field="grace_days")
    now = now or utcnow()
    if rec_ids is None:
        recs = list(session.scalars(_query(principal).where(Recommendation.status == RecommendationStatus.OPEN)
                                    .order_by(Recommendation.id)))
    else:
        recs = [get_recommendation(session, principal, rec_id) for rec_id in rec_ids]
        for rec in recs:
            if rec.status is not RecommendationStatus.OPEN:
                raise Conflict(f"recommendation {rec.id} is {rec.status.value}; only an open one is notified",
                               field="status")
    for rec in recs:
        before = _snapshot(rec)
        rec.status, rec.notified_at, rec.due_at = RecommendationStatus.NOTIFIED, now, now + timedelta(days=grace)
        audit.record(session, principal, action="notify", entity="reclaim_recommendation", entity_id=rec.id,
                     before=before, after=_snapshot(rec), unit_id=rec.unit_id)
        _tell(session, rec, "reclaim.notice", f"{rec.id}:{now.isoformat()}", deadline=rec.due_at)
    session.flush()
    return recs


_REASONS = {RecommendationKind.IDLE: "长期闲置", RecommendationKind.OVERSIZED: "配置过高",
            RecommendationKind.ZOMBIE: "长期关机", RecommendationKind.LEASE: "租期已满",
            RecommendationKind.VOLUME_IDLE: "云硬盘长期未挂载", RecommendationKind.VOLUME_ORPHAN: "所挂主机已删除",
            RecommendationKind.SNAPSHOT_OLD: "快照超过保留期"}
_ACTION_TEXT = {"shelve_offload": "搁置下线（shelve-offload）", "snapshot_delete": "先快照后删除（快照保留）",
                "delete_snapshot": "删除过期快照"}


def _tell(session: Session, rec: Recommendation, kind: str, occurrence: str, **extra: Any) -> None:
    """Tell the owning department (and, for what the kind names, the bureau) about a recommendation."""
    action = f"缩容至 {rec.recommended_flavor}" if ACTIONS[rec.kind] == "resize" else _ACTION_TEXT[ACTIONS[rec.kind]]
    deadline = extra.pop("deadline", None)
    if rec.server_id is not None:
        what, frees = "云主机", f"{rec.reclaim_vcpus} vCPU / {gib(rec.reclaim_ram_mb):g} GiB 内存"
    else:
        what, frees = "云硬盘" if rec.volume_id is not None else "快照", f"{rec.reclaim_disk_gb} GiB 存储"
    emit(session, kind, unit_id=rec.unit_id, entity="reclaim_recommendation", entity_id=rec.id,
                key=f"{kind}:{occurrence}", deadline=deadline, link=f"/api/v1/reclaim/recommendations/{rec.id}",
                data={"server": rec.server_name, "reason": _REASONS[rec.kind], "action": action, "what": what,
                      "frees": frees, "vcpus": rec.reclaim_vcpus, "ram_gib": f"{gib(rec.reclaim_ram_mb):g}",
                      "note": "", "detail": "", **extra})


def appeal(session: Session, principal: Principal, rec_id: int, reason: str, *,
           now: datetime | None = None) -> Recommendation:
    """The department says why the server must keep its resources; allowed until the grace period ends."""
    authorize(principal, "reclaim.recommendation:appeal")
    rec = get_recommendation(session, principal, rec_id)
    now = now or utcnow()
    if rec.status is not RecommendationStatus.NOTIFIED:
        raise Conflict(f"recommendation {rec.id} is {rec.status.value}; only a notified one can be appealed",
                       field="status")
    if rec.appeal_status is not None:
        raise Conflict(f"recommendation {rec.id} was already appealed ({rec.appeal_status.value})",
                       field="appeal_status")
    if rec.due_at is not None and now > rec.due_at:
        raise Conflict(f"the grace period ended at {local_time(rec.due_at)}", field="due_at")
    if len(reason.strip()) < 4:
        raise InvalidInput("give the reason in a few words", field="reason")
    before = _snapshot(rec)
    rec.appeal_status, rec.appeal_reason = AppealStatus.PENDING, reason.strip()
    rec.appeal_by, rec.appeal_at = principal.actor, now
    audit.record(session, principal, action="appeal", entity="reclaim_recommendation", entity_id=rec.id,
                 before=before, after={**_snapshot(rec), "reason": rec.appeal_reason}, unit_id=rec.unit_id)
    return rec


def decide_appeal(session: Session, principal: Principal, rec_id: int, *, accept: bool,
                  exempt_until: date | None = None, note: str | None = None) -> Recommendation:
    """Ops accept an appeal (exempt until a day, 90 days by default) or reject it (the grace period runs on)."""
    authorize(principal, "reclaim.recommendation:write")
    rec = get_recommendation(session, principal, rec_id)
    if rec.appeal_status is not AppealStatus.PENDING:
        raise Conflict(f"recommendation {rec.id} has no appeal waiting", field="appeal_status")
    today = utcnow().date()
    if accept:
        exempt_until = exempt_until or today + timedelta(days=90)
        if exempt_until <= today:
            raise InvalidInput("must be a day after today", field="exempt_until")
    elif exempt_until is not None:
        raise InvalidInput("only an accepted appeal exempts", field="exempt_until")
    elif not note:
        raise InvalidInput("say why the appeal is rejected", field="note")
    before = _snapshot(rec)
    rec.appeal_status = AppealStatus.ACCEPTED if accept else AppealStatus.REJECTED
    rec.appeal_decided_by, rec.appeal_decided_at, rec.appeal_note = principal.actor, utcnow(), note
    if accept:
        rec.status, rec.exempt_until = RecommendationStatus.EXEMPTED, exempt_until
    audit.record(session, principal, action="accept-appeal" if accept else "reject-appeal",
                 entity="reclaim_recommendation", entity_id=rec.id, before=before,
                 after={**_snapshot(rec), "note": note}, unit_id=rec.unit_id)
    decision = f"已通过，豁免至 {exempt_until}" if accept else "未通过，回收将按期执行"
    _tell(session, rec, "reclaim.appeal.decided", f"{rec.id}:{rec.appeal_at.isoformat() if rec.appeal_at else ''}",
          decision=decision, note=f"说明：{note}" if note else "")
    return rec


def dismiss(session: Session, principal: Principal, rec_id: int, reason: str) -> Recommendation:
    """Ops close a recommendation that will not be acted on (a planned migration, a wrong reading…)."""
    authorize(principal, "reclaim.recommendation:write")
    rec = get_recommendation(session, principal, rec_id)
    if rec.status not in (*ACTIVE, RecommendationStatus.EXEMPTED, RecommendationStatus.FAILED):
        raise Conflict(f"recommendation {rec.id} is {rec.status.value}", field="status")
    if len(reason.strip()) < 4:
        raise InvalidInput("give the reason in a few words", field="reason")
    before = _snapshot(rec)
    rec.status, rec.closed_reason = RecommendationStatus.DISMISSED, reason.strip()
    audit.record(session, principal, action="dismiss", entity="reclaim_recommendation", entity_id=rec.id,
                 before=before, after=_snapshot(rec), unit_id=rec.unit_id)
    return rec


def _due(principal: Principal, now: datetime) -> Select[Recommendation]:
    """Notified, the grace period over, no appeal waiting or accepted; or scheduled before (a resumed run)."""
    return _query(principal).where(or_(
        Recommendation.status == RecommendationStatus.SCHEDULED,
        and_(Recommendation.status == RecommendationStatus.NOTIFIED, Recommendation.due_at <= now,
             or_(Recommendation.appeal_status.is_(None), Recommendation.appeal_status == AppealStatus.REJECTED)),
    )).order_by(Recommendation.id)


def execute(session: Session, principal: Principal, *, dry_run: bool = False, now: datetime | None = None,
            rec_ids: Sequence[int] | None = None, providers: ProviderLookup = provider_for) -> list[ExecutionStep]:
    """Act on every recommendation whose grace period is over: resize oversized servers, shelve-offload the rest.

    An action that finds the server already where it should be skips itself; a failure is
    recorded on its recommendation and nothing else is touched (each acts in its own savepoint).
    """
    authorize(principal, "reclaim.recommendation:execute")
    now = now or utcnow()
    query = _due(principal, now)
    if rec_ids is not None:
        query = query.where(Recommendation.id.in_(rec_ids))
    steps: list[ExecutionStep] = []
    for rec in list(session.scalars(query)):
        action = ACTIONS[rec.kind]
        target = {"resize": rec.recommended_flavor, "snapshot_delete": "deleted",
                  "delete_snapshot": "deleted"}.get(action, "SHELVED_OFFLOADED")

        def step(outcome: str, detail: str = "", rec: Recommendation = rec, action: str = action,
                 target: str | None = target) -> ExecutionStep:
            return ExecutionStep(recommendation=rec.id, server=rec.server_name, unit_code=rec.unit_code,
                                 kind=rec.kind.value, action=action, target=target, outcome=outcome, detail=detail)

        if dry_run:
            steps.append(step("planned", _plan(rec)))
            continue
        before = _snapshot(rec)
        rec.status, rec.action = RecommendationStatus.SCHEDULED, action
        session.flush()
        try:
            with session.begin_nested():
                detail = _act(session, principal, rec, providers)
        except CloudctlError as exc:
            rec.status, rec.error = RecommendationStatus.FAILED, str(exc)[:500]
            audit.record(session, principal, action="execute", entity="reclaim_recommendation", entity_id=rec.id,
                         before=before, after=_snapshot(rec), unit_id=rec.unit_id)
            steps.append(step("failed", str(exc)))
            continue
        rec.status, rec.executed_at, rec.error = RecommendationStatus.EXECUTED, utcnow(), None
        audit.record(session, principal, action="execute", entity="reclaim_recommendation", entity_id=rec.id,
                     before=before, after={**_snapshot(rec), "action": action, "detail": detail},
                     unit_id=rec.unit_id)
        _tell(session, rec, "reclaim.execution.done", f"{rec.id}:{rec.executed_at.isoformat()}", detail=detail)
        steps.append(step("skipped" if detail.startswith("already") else "done", detail))
    session.flush()
    return steps


def _plan(rec: Recommendation) -> str:
    if rec.volume_snapshot is not None:
        return f"delete snapshot {rec.volume_snapshot.name} ({rec.volume_snapshot.size_gib} GiB), past its retention"
    if rec.volume is not None:
        return f"snapshot, then delete {rec.volume.volume_type} {rec.volume.size_gib} GiB " \
               f"(snapshot kept {get_settings().reclaim_snapshot_retention_days} days)"
    server = rec.server
    assert server is not None
    if rec.kind is RecommendationKind.OVERSIZED:
        return f"resize {server.flavor} → {rec.recommended_flavor} (frees {rec.reclaim_vcpus} vCPU, " \
               f"{rec.reclaim_ram_mb / 1024:g} GiB)"
    return f"shelve-offload ({server.status}; frees {rec.reclaim_vcpus} vCPU, {rec.reclaim_ram_mb / 1024:g} GiB)"


def _act(session: Session, principal: Principal, rec: Recommendation, providers: ProviderLookup) -> str:
    if rec.volume is not None:
        return _reclaim_volume(session, principal, rec, rec.volume, providers)
    if rec.volume_snapshot is not None:
        snapshot = rec.volume_snapshot
        if snapshot.status == "deleted":
            return f"snapshot {snapshot.name} already deleted"
        with contextlib.suppress(NotFound):  # gone at the cloud already: nothing left to delete
            volumes.volume_provider(snapshot.cloud, providers).delete_snapshot(snapshot.provider_id)
        snapshot.status = "deleted"
        return f"snapshot {snapshot.name} deleted"
    server = rec.server
    assert server is not None
    if server.status == "DELETED":
        raise Conflict(f"server {server.name} is deleted", field="server")
    if rec.kind is RecommendationKind.OVERSIZED:
        if rec.recommended_flavor is None:
            raise Conflict("no flavor was recommended", field="recommended_flavor")
        if server.flavor == rec.recommended_flavor:
            return f"already {server.flavor}"
        provisioning.resize_server(session, principal, server.id, rec.recommended_flavor, providers=providers)
        return f"resized to {server.flavor}"
    if server.status == "SHELVED_OFFLOADED":
        return "already shelved and offloaded"
    host = server.host
    if server.status != "SHELVED":
        provisioning.operate_server(session, principal, server.id, "shelve", providers=providers)
        provisioning.wait_for_status(session, server, ("SHELVED", "SHELVED_OFFLOADED"), providers=providers)
    # Nova offloads on its own when shelved_offload_time is 0; clouds that keep shelved servers wait to be told.
    if server.status == "SHELVED":
        provisioning.operate_server(session, principal, server.id, "shelve_offload", providers=providers)
        provisioning.wait_for_status(session, server, ("SHELVED_OFFLOADED",), providers=providers)
    return f"shelved and offloaded from {host or 'its host'}"


def _reclaim_volume(session: Session, principal: Principal, rec: Recommendation, volume: Volume,
                    providers: ProviderLookup) -> str:
    """Snapshot, then delete: never a silent delete. A run resumed after the snapshot does not take another."""
    if volume.status == "deleted" and rec.snapshot_id is not None:
        return f"already deleted; snapshot {rec.snapshot_id} kept until {rec.snapshot_until}"
    if volume.status == "deleted":
        raise Conflict(f"volume {volume.name} is gone from its cloud with no snapshot taken", field="volume")
    if volume.server_id is not None and rec.kind is RecommendationKind.VOLUME_IDLE:
        raise Conflict(f"volume {volume.name} is attached again", field="volume")
    adapter = volumes.volume_provider(volume.cloud, providers)
    if volume.server_id is not None:
        # Its server is deleted: the cloud may still hold the attachment, which a delete would be refused for.
        with contextlib.suppress(Conflict):  # already detached at the cloud
            adapter.detach_volume(volume.provider_id)
    if rec.snapshot_id is None:
        snapshot = adapter.snapshot_volume(volume.provider_id, f"reclaim-{rec.id}-{volume.name}"[:64])
        rec.snapshot_id = snapshot.provider_id
        rec.snapshot_until = utcnow().date() + timedelta(days=get_settings().reclaim_snapshot_retention_days)
        # In the inventory at once: past its retention, the snapshot becomes a recommendation of its own.
        volumes.record_snapshot(session, volume.cloud, snapshot, utcnow())
        session.flush()
    try:
        adapter.delete_volume(volume.provider_id)
    except CloudctlError as exc:
        # The savepoint forgets the snapshot: the error keeps its id, so nobody takes it for lost.
        raise Conflict(f"snapshot {rec.snapshot_id} taken, but the delete failed: {exc}", field="volume") from exc
    volume.status, volume.server_id = "deleted", None
    return f"snapshot {rec.snapshot_id} taken (kept until {rec.snapshot_until}), volume deleted"


# ---------------------------------------------------------------- roll-ups


def rollup(session: Session, principal: Principal, *, by: str = "unit") -> list[RollupRow]:
    """Allocated vs used vs reclaimable per unit, business system or cloud (for purchase planning)."""
    authorize(principal, "reclaim.recommendation:read")
    if by not in ("unit", "system", "cloud"):
        raise InvalidInput("one of unit, system, cloud", field="by")
    key, name = {
        "unit": (Unit.code, Unit.name),
        "system": (func.coalesce(BusinessSystem.id, 0), func.coalesce(BusinessSystem.name, "(none)")),
        "cloud": (Cloud.name, Cloud.display_name),
    }[by]
    live = Server.status.not_in(("DELETED",))
    base = (select(Server).join(Unit, Server.unit_id == Unit.id).join(Cloud, Server.cloud_id == Cloud.id)
            .outerjoin(BusinessSystem, Server.business_system_id == BusinessSystem.id).where(live))
    base = read.within(base, principal, unit=Server.unit_id)
    allocated = session.execute(
        base.with_only_columns(key, name, func.count(Server.id), func.sum(Server.vcpus), func.sum(Server.ram_mb))
        .group_by(key, name)).all()
    # Used: the last 30 days' p95 of CPU and max of memory, scaled by each server's size.
    since = utcnow().date() - timedelta(days=30)
    cpu = (select(UtilisationDay.server_id, func.max(UtilisationDay.p95).label("cpu"))
           .where(UtilisationDay.metric == "cpu", UtilisationDay.day >= since)
           .group_by(UtilisationDay.server_id).subquery())
    mem = (select(UtilisationDay.server_id, func.max(UtilisationDay.max).label("mem"))
           .where(UtilisationDay.metric == "mem", UtilisationDay.day >= since)
           .group_by(UtilisationDay.server_id).subquery())
    used = dict(((k, n), (float(c or 0), float(m or 0))) for k, n, c, m in session.execute(
        base.outerjoin(cpu, cpu.c.server_id == Server.id).outerjoin(mem, mem.c.server_id == Server.id)
        .with_only_columns(key, name, func.sum(cpu.c.cpu * Server.vcpus), func.sum(mem.c.mem * Server.ram_mb))
        .group_by(key, name)))
    open_recs = Recommendation.status.in_((*ACTIVE, RecommendationStatus.FAILED))
    reclaim = {(k, n): (int(v or 0), int(r or 0), float(s or 0), int(c)) for k, n, v, r, s, c in session.execute(
        base.join(Recommendation, Recommendation.server_id == Server.id).where(open_recs)
        .with_only_columns(key, name, func.sum(Recommendation.reclaim_vcpus), func.sum(Recommendation.reclaim_ram_mb),
                           func.sum(Recommendation.saving_month), func.count(Recommendation.id))
        .group_by(key, name))}
    storage, storage_reclaim = _storage_rollup(session, principal, by, open_recs)
    rows = []
    servers = {(k, n): (int(count), int(vcpus or 0), int(ram or 0)) for k, n, count, vcpus, ram in allocated}
    for k, n in sorted({*servers, *storage, *storage_reclaim}, key=lambda kn: (str(kn[0]), str(kn[1]))):
        count, vcpus, ram = servers.get((k, n), (0, 0, 0))
        used_cpu, used_ram = used.get((k, n), (0.0, 0.0))
        rv, rr, saving, recs = reclaim.get((k, n), (0, 0, 0.0, 0))
        held_volumes, held_gib = storage.get((k, n), (0, 0))
        freed_gib, storage_saving, storage_recs = storage_reclaim.get((k, n), (0, 0.0, 0))
        rows.append(RollupRow(key=str(k), name=str(n), servers=count, vcpus=vcpus,
                              ram_gib=round(ram / 1024, 1), used_vcpus=round(used_cpu, 1),
                              used_ram_gib=round(used_ram / 1024, 1), reclaimable_vcpus=rv,
                              reclaimable_ram_gib=round(rr / 1024, 1), volumes=held_volumes, storage_gib=held_gib,
                              reclaimable_storage_gib=freed_gib, saving_month=round(saving + storage_saving, 2),
                              recommendations=recs + storage_recs))
    rows.sort(key=lambda r: (-r.reclaimable_vcpus, -r.saving_month, r.key))
    return rows


def _storage_rollup(session: Session, principal: Principal, by: str, open_recs: ColumnElement[bool]) -> tuple[
        dict[tuple[Any, Any], tuple[int, int]], dict[tuple[Any, Any], tuple[int, float, int]]]:
    """Volumes held (count, GiB) and storage to reclaim (GiB, CNY a month, recommendations) per key: unattached
    volumes, volumes of deleted servers and snapshots past their retention, scoped by their owning unit."""
    key, name = {
        "unit": (Unit.code, Unit.name),
        "system": (func.coalesce(BusinessSystem.id, 0), func.coalesce(BusinessSystem.name, "(none)")),
        "cloud": (Cloud.name, Cloud.display_name),
    }[by]
    held_query = (select(key, name, func.count(Volume.id), func.sum(Volume.size_gib))
                  .select_from(Volume).join(Unit, Volume.unit_id == Unit.id).join(Cloud, Volume.cloud_id == Cloud.id)
                  .outerjoin(BusinessSystem, Volume.business_system_id == BusinessSystem.id)
                  .where(Volume.status != "deleted").group_by(key, name))
    held = {(k, n): (int(c), int(g or 0)) for k, n, c, g in session.execute(
        read.within(held_query, principal, unit=Volume.unit_id))}
    # A snapshot counts where its volume does (its business system); its cloud is its own.
    reclaim_query = (
        select(key, name, func.sum(Recommendation.reclaim_disk_gb), func.sum(Recommendation.saving_month),
               func.count(Recommendation.id))
        .select_from(Recommendation).join(Unit, Recommendation.unit_id == Unit.id)
        .outerjoin(VolumeSnapshot, Recommendation.volume_snapshot_id == VolumeSnapshot.id)
        .outerjoin(Volume, Volume.id == func.coalesce(Recommendation.volume_id, VolumeSnapshot.volume_id))
        .join(Cloud, Cloud.id == func.coalesce(Volume.cloud_id, VolumeSnapshot.cloud_id))
        .outerjoin(BusinessSystem, Volume.business_system_id == BusinessSystem.id)
        .where(Recommendation.server_id.is_(None), open_recs).group_by(key, name))
    freed = {(k, n): (int(g or 0), float(s or 0), int(c)) for k, n, g, s, c in session.execute(
        read.within(reclaim_query, principal, unit=Recommendation.unit_id))}
    return held, freed


# ---------------------------------------------------------------- leases (租期) and reminders


def open_lease_recommendations(session: Session, principal: Principal, *, today: date | None = None,
                               grace_days: int | None = None) -> list[Recommendation]:
    """Every live server whose lease ended before ``today`` (Beijing) gets a recommendation of its own kind, at
    once notified: the department appeals as for any other (a project extended), else it is shelved."""
    authorize(principal, "reclaim.recommendation:write")
    today = today or beijing_today()
    ended = list(session.scalars(select(Server).where(
        Server.lease_ends_on < today, Server.status.not_in(("DELETED", "SHELVED_OFFLOADED")),
        Server.unit_id.is_not(None)).order_by(Server.id)))
    if not ended:
        return []
    have = {r.server_id: r for r in session.scalars(select(Recommendation).where(
        Recommendation.kind == RecommendationKind.LEASE, Recommendation.server_id.in_([s.id for s in ended])))}
    opened = []
    for server in ended:
        rec = have.get(server.id)
        if rec is not None and rec.status is not RecommendationStatus.EXECUTED:
            continue  # still being worked, exempted (the lease prolonged by appeal) or dismissed
        assert server.unit_id is not None
        price = prices()
        values = {"unit_id": server.unit_id, "current_flavor": server.flavor, "recommended_flavor": None,
                  "evidence": {"lease_ends_on": server.lease_ends_on.isoformat() if server.lease_ends_on else None},
                  "reclaim_vcpus": server.vcpus, "reclaim_ram_mb": server.ram_mb, "reclaim_disk_gb": 0,
                  "saving_month": round(server.vcpus * price.vcpu_month + server.ram_mb / 1024
                                        * price.ram_gb_month, 2)}
        if rec is None:
            rec = Recommendation(server_id=server.id, server=server, kind=RecommendationKind.LEASE,
                                 status=RecommendationStatus.OPEN, campaign_id=None, **values)
            session.add(rec)
        else:  # executed before, and the server is live again past its lease
            for key, value in values.items():
                setattr(rec, key, value)
            _reopen(rec)
        session.flush()
        audit.record(session, principal, action="lease-ended", entity="reclaim_recommendation", entity_id=rec.id,
                     after={"server": server.name, "lease_ends_on": server.lease_ends_on}, unit_id=rec.unit_id)
        opened.append(rec)
    notify(session, principal, [r.id for r in opened], grace_days=grace_days)
    return opened


@reminder("reclaim")
def remind_reclaim(session: Session, now: datetime) -> int:
    """Leases that ended become recommendations; an execution due within a day is told to the department."""
    opened = open_lease_recommendations(session, system_principal("reclaim-reminder"), today=beijing_today(now))
    soon = session.scalars(select(Recommendation).where(
        Recommendation.status == RecommendationStatus.NOTIFIED, Recommendation.due_at > now,
        Recommendation.due_at <= now + timedelta(days=1),
        or_(Recommendation.appeal_status.is_(None), Recommendation.appeal_status == AppealStatus.REJECTED)))
    told = 0
    for rec in soon:
        due = rec.due_at.isoformat() if rec.due_at else ""
        _tell(session, rec, "reclaim.execution.scheduled", f"{rec.id}:{due}", deadline=rec.due_at)
        told += 1
    return len(opened) + told
