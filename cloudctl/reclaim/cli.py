"""`cloudctl reclaim …`: utilisation, analysis campaigns, the recommendation workflow and the report."""

from __future__ import annotations

import sys
from datetime import date, timedelta
from functools import partial
from pathlib import Path

import typer

from cloudctl.core import jobs, tabular
from cloudctl.core.cli_support import OffsetOption, OutputOption, UnitFilter, limit_option, print_list, unit_of_work
from cloudctl.core.db import get_engine
from cloudctl.core.display import local_time
from cloudctl.core.errors import InvalidInput
from cloudctl.core.models import utcnow
from cloudctl.core.output import OutputFormat, console, print_json, print_one, print_rows
from cloudctl.reclaim import planning, report, service
from cloudctl.reclaim.models import RecommendationKind, RecommendationStatus
from cloudctl.reclaim.schemas import CampaignPublic, PlanResourcePublic, RecommendationPublic

__all__ = ["reclaim_app"]

reclaim_app = typer.Typer(help="Reclaim idle CPU and memory (资源回收): analysis, recommendations, appeals, execution.",
                          no_args_is_help=True)

REC_COLUMNS = [
    ("id", lambda r: r.id), ("server", lambda r: r.server), ("unit", lambda r: r.unit_code),
    ("kind", lambda r: r.kind), ("status", lambda r: r.status),
    ("flavor", lambda r: f"{r.current_flavor} → {r.recommended_flavor}" if r.recommended_flavor else r.current_flavor),
    ("vCPU", lambda r: r.reclaim_vcpus), ("RAM GiB", lambda r: f"{r.reclaim_ram_gib:g}"),
    ("元/月", lambda r: f"{r.saving_month:,.0f}"), ("due", lambda r: r.due_at),
    ("appeal", lambda r: r.appeal_status),
]


def _run_now(job_id: int) -> jobs.Job:
    """Run a just-queued job in this process, as `cloudctl job work` would, and read back how it ended."""
    jobs.JobRunner(get_engine()).run_to_end(job_id)  # with its shards, when it splits
    with unit_of_work() as (session, principal):
        job = jobs.get_job(session, principal, job_id)
        session.expunge(job)
    if job.status is not jobs.JobStatus.SUCCEEDED:
        raise InvalidInput(f"job {job.id} {job.status.value}: {job.error or 'see cloudctl job show'}", field="job")
    return job


@reclaim_app.command("collect")
def reclaim_collect(
    day: str | None = typer.Option(None, help="one UTC day, YYYY-MM-DD (default: yesterday)"),
    days: int = typer.Option(1, min=1, max=90, help="this many days ending with --day"),
    cloud: str | None = typer.Option(None, help="one cloud; default every enabled cloud"),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="run the job here, or leave it to a worker"),
) -> None:
    """Collect daily utilisation summaries from each cloud's source (Prometheus, simulator telemetry)."""
    last = _day(day, "--day") if day else utcnow().date() - timedelta(days=1)
    wanted = [last - timedelta(days=n) for n in range(days)]
    with unit_of_work() as (session, principal):
        job = service.submit_collection(session, principal, wanted, cloud=cloud)
        session.flush()
        job_id = job.id
    if not wait:
        console.print(f"job {job_id} queued: {len(wanted)} day(s)")
        return
    done = _run_now(job_id)
    result = done.result or {}
    console.print(f"job {job_id}: {result.get('summaries', 0)} summaries of {len(wanted)} day(s) stored")


@reclaim_app.command("import")
def reclaim_import(
    file: Path = typer.Argument(..., help="CSV or .xlsx with the columns server,day,metric,p95,p99,max,mean,samples"),
    encoding: str | None = typer.Option(None, help="the CSV's encoding (default: UTF-8, else GB18030 detected)"),
    output: OutputFormat = OutputOption,
) -> None:
    """Import daily summaries from another tool; every row valid or nothing imported.

    Each (server, day, metric) in the file replaces the one stored; the others stay as they are.
    """
    with tabular.in_file(file):
        rows = tabular.read_table(file, service.SUMMARY_COLUMNS, encoding=encoding).rows
        with unit_of_work() as (session, principal):
            result = service.import_summaries(session, principal, rows)
    if output is OutputFormat.JSON:
        import json

        sys.stdout.write(json.dumps({"rows": result.rows, "servers": result.servers, "days": result.days}) + "\n")
        return
    console.print(f"imported {result.rows} summaries of {result.servers} server(s) over {result.days} day(s)")


@reclaim_app.command("analyze")
def reclaim_analyze(
    as_of: str | None = typer.Option(None, "--as-of", help="last day of the window (default: yesterday, UTC)"),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="run the job here, or leave it to a worker"),
    output: OutputFormat = OutputOption,
) -> None:
    """Classify every server (idle, oversized, zombie…) and update the campaign's recommendations."""
    with unit_of_work() as (session, principal):
        job = service.submit_analysis(session, principal, as_of=_day(as_of, "--as-of") if as_of else None)
        session.flush()
        job_id = job.id
    if not wait:
        console.print(f"job {job_id} queued")
        return
    done = _run_now(job_id)
    with unit_of_work() as (session, principal):
        campaign = CampaignPublic.model_validate(
            service.get_campaign(session, principal, int((done.result or {})["campaign"])))
    print_one(campaign, output, title=f"回收分析 campaign {campaign.id}")


@reclaim_app.command("list")
def reclaim_list(
    unit: str | None = UnitFilter,
    kind: RecommendationKind | None = typer.Option(None, case_sensitive=False),
    status: RecommendationStatus | None = typer.Option(None, case_sensitive=False),
    cloud: str | None = typer.Option(None),
    limit: int | None = limit_option(),
    offset: int = OffsetOption,
    output: OutputFormat = OutputOption,
) -> None:
    """Recommendations, largest saving first."""
    with unit_of_work() as (session, principal):
        print_list(partial(service.list_recommendations, session, principal, unit=unit, kind=kind, status=status,
                           cloud=cloud), RecommendationPublic, REC_COLUMNS, output, limit=limit, offset=offset,
                   title="回收建议 recommendations")


@reclaim_app.command("show")
def reclaim_show(rec_id: int = typer.Argument(...), output: OutputFormat = OutputOption) -> None:
    """One recommendation with its evidence."""
    with unit_of_work() as (session, principal):
        rec = RecommendationPublic.model_validate(service.get_recommendation(session, principal, rec_id))
    print_one(rec, output, title=f"回收建议 {rec.id} · {rec.server}")


@reclaim_app.command("notify")
def reclaim_notify(
    rec_ids: list[int] = typer.Argument(None, help="recommendation ids; none: every open one"),
    grace_days: int | None = typer.Option(None, "--grace-days", help="days to appeal (default: configured, 14)"),
) -> None:
    """Tell the owning departments and start their grace period (open → notified)."""
    with unit_of_work() as (session, principal):
        recs = service.notify(session, principal, rec_ids or None, grace_days=grace_days)
        due = recs[0].due_at if recs else None
        console.print(f"{len(recs)} recommendation(s) notified" + (f"; appeals until {local_time(due)}" if due else ""))


@reclaim_app.command("appeal")
def reclaim_appeal(rec_id: int = typer.Argument(...),
                   reason: str = typer.Option(..., help="why the server must keep its resources")) -> None:
    """Appeal a notified recommendation (a department user, with --as)."""
    with unit_of_work() as (session, principal):
        rec = service.appeal(session, principal, rec_id, reason)
        console.print(f"recommendation {rec.id}: appeal {rec.appeal_status.value if rec.appeal_status else ''}")


@reclaim_app.command("decide")
def reclaim_decide(
    rec_id: int = typer.Argument(...),
    accept: bool = typer.Option(..., "--accept/--reject", help="accept the appeal (exempt) or reject it"),
    until: str | None = typer.Option(None, help="with --accept: exempt until YYYY-MM-DD (default 90 days)"),
    note: str | None = typer.Option(None, help="the answer to the department (required to reject)"),
) -> None:
    """Decide a department's appeal."""
    with unit_of_work() as (session, principal):
        rec = service.decide_appeal(session, principal, rec_id, accept=accept,
                                    exempt_until=_day(until, "--until") if until else None, note=note)
        console.print(f"recommendation {rec.id}: {rec.status.value}"
                      + (f" until {rec.exempt_until}" if rec.exempt_until else ""))


@reclaim_app.command("dismiss")
def reclaim_dismiss(rec_id: int = typer.Argument(...), reason: str = typer.Option(...)) -> None:
    """Close a recommendation that will not be acted on."""
    with unit_of_work() as (session, principal):
        rec = service.dismiss(session, principal, rec_id, reason)
        console.print(f"recommendation {rec.id}: dismissed")


@reclaim_app.command("execute")
def reclaim_execute(
    rec_ids: list[int] = typer.Argument(None, help="only these recommendations (default: every one due)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the plan and change nothing"),
    output: OutputFormat = OutputOption,
) -> None:
    """Act on recommendations whose grace period is over: resize, or shelve-offload."""
    with unit_of_work() as (session, principal):
        steps = service.execute(session, principal, dry_run=dry_run, rec_ids=rec_ids or None)
    print_rows(steps, [
        ("rec", lambda s: s.recommendation), ("server", lambda s: s.server), ("unit", lambda s: s.unit_code),
        ("kind", lambda s: s.kind), ("action", lambda s: s.action), ("target", lambda s: s.target),
        ("outcome", lambda s: s.outcome), ("detail", lambda s: s.detail),
    ], output, title="回收执行计划 plan (dry run)" if dry_run else "回收执行 execution")
    if any(s.outcome == "failed" for s in steps):
        raise typer.Exit(1)


@reclaim_app.command("summary")
def reclaim_summary(by: str = typer.Option("unit", help="unit, system or cloud"),
                    output: OutputFormat = OutputOption) -> None:
    """Allocated vs used vs reclaimable, per unit, business system or cloud."""
    with unit_of_work() as (session, principal):
        rows = service.rollup(session, principal, by=by)
    print_rows(rows, [
        ("key", lambda r: r.key), ("name", lambda r: r.name), ("servers", lambda r: r.servers),
        ("vCPU", lambda r: r.vcpus), ("used", lambda r: r.used_vcpus), ("reclaimable", lambda r: r.reclaimable_vcpus),
        ("RAM GiB", lambda r: r.ram_gib), ("used GiB", lambda r: r.used_ram_gib),
        ("reclaimable GiB", lambda r: r.reclaimable_ram_gib), ("volumes", lambda r: r.volumes),
        ("storage GiB", lambda r: r.storage_gib), ("reclaimable storage GiB", lambda r: r.reclaimable_storage_gib),
        ("元/月", lambda r: f"{r.saving_month:,.0f}"),
    ], output, title=f"资源回收汇总 by {by}")


@reclaim_app.command("plan")
def reclaim_plan(
    threshold: float | None = typer.Option(None, help="share of capacity the forecast looks for (default 0.8)"),
    cloud: str | None = typer.Option(None, help="one cloud"),
    output: OutputFormat = OutputOption,
) -> None:
    """Purchase planning (采购规划): capacity against allocations, headroom with and without reclaim, and the month
    each resource reaches the threshold by a linear trend and by Holt's smoothing."""
    with unit_of_work() as (session, principal):
        plan = planning.purchase_plan(session, principal, threshold=threshold, cloud=cloud)
    if output is OutputFormat.JSON:
        print_json([row.model_dump(mode="json") for row in plan])
        return

    def when(row: PlanResourcePublic, model: str, reclaim: bool) -> str:
        found = next(f for f in row.forecasts if f.model == model and f.reclaim is reclaim)
        if found.insufficient_data:
            return "数据不足"
        return found.reaches_on.isoformat() if found.reaches_on else "—"

    print_rows(plan, [("cloud", lambda r: r.cloud), ("resource", lambda r: f"{r.resource} ({r.unit})"),
                      ("capacity", lambda r: f"{r.capacity:,.0f}"), ("allocated", lambda r: f"{r.allocated:,.0f}"),
                      ("used", lambda r: "" if r.used is None else f"{r.used:,.0f}"),
                      ("reclaimable", lambda r: f"{r.reclaimable:,.0f}"), ("headroom", lambda r: f"{r.headroom:,.0f}"),
                      ("linear", lambda r: when(r, "linear", False)), ("holt", lambda r: when(r, "holt", False)),
                      ("linear+reclaim", lambda r: when(r, "linear", True)),
                      ("holt+reclaim", lambda r: when(r, "holt", True))],
               output, title=f"采购规划 purchase plan (threshold {plan[0].threshold:.0%})" if plan else "采购规划")


@reclaim_app.command("report")
def reclaim_report(out: Path = typer.Option(Path("reclaim-report"), "--out", help="directory to write into")) -> None:
    """Write the HTML report and its CSV files (per unit, per system, purchase planning)."""
    with unit_of_work() as (session, principal):
        built = report.build_report(session, principal)
    for path in report.write_report(built, out):
        console.print(str(path))


def _day(value: str, field: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{value!r} is not a day (YYYY-MM-DD)", field=field) from None
