"""CLI of the core: ``cloudctl db``, ``cloudctl audit`` and ``cloudctl job``."""

from __future__ import annotations

import time
from datetime import datetime
from functools import partial
from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from cloudctl.core import jobs
from cloudctl.core.audit import list_audit
from cloudctl.core.cli_support import OffsetOption, OutputOption, cli_state, limit_option, print_list, unit_of_work
from cloudctl.core.config import get_settings
from cloudctl.core.db import dispose_engines, get_engine
from cloudctl.core.display import local_time, zone_label
from cloudctl.core.migrate import current_revision, head_revision, upgrade
from cloudctl.core.output import OutputFormat, console, print_one
from cloudctl.core.schemas import AuditEntryPublic, JobLogLinePublic, JobPublic

db_app = typer.Typer(help="The database: schema migrations (Alembic).", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log (审计日志): who changed what, before and after.", no_args_is_help=True)
job_app = typer.Typer(help="Jobs (作业): long work with progress and a log, resumable after a crash.",
                      no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head", help="target revision")) -> None:
    """Bring the database to the newest schema (creates a SQLite file on first use)."""
    engine = get_engine()
    before = current_revision(engine)
    upgrade(engine, revision)
    cli_state.schema_checked = False
    console.print(f"database {engine.url.render_as_string(hide_password=True)}: "
                  f"{before or 'empty'} → {current_revision(engine)}")


@db_app.command("current")
def db_current() -> None:
    """Show the schema revision of the database and the one this cloudctl needs."""
    engine = get_engine()
    current, head = current_revision(engine), head_revision()
    state = "[green]up to date[/]" if current == head else "[yellow]needs `cloudctl db upgrade`[/]"
    console.print(f"{engine.url.render_as_string(hide_password=True)}: {current or 'empty'} (head {head}) {state}")


@db_app.command("backup")
def db_backup(file: Path = typer.Argument(..., help="the backup file to write (a .tar.gz)")) -> None:
    """Back up the database (SQLite: online, while the API runs; PostgreSQL: pg_dump) and the simulator's store."""
    from cloudctl.core.backup import backup

    info = backup(file)
    console.print(f"backed up {', '.join(info.stores)} ({info.database}, schema {info.revision or 'empty'}) "
                  f"to {escape(str(info.path))}: {info.size:,} bytes")


@db_app.command("restore")
def db_restore(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="a `cloudctl db backup` file"),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask: the database's contents are replaced"),
) -> None:
    """Replace the database's contents with a backup's, then migrate it to the newest schema.

    Stop the API and the workers first: what they write during the restore is lost."""
    from cloudctl.core.backup import read_manifest, restore

    manifest = read_manifest(file)
    engine = get_engine()
    target = engine.url.render_as_string(hide_password=True)
    if not yes and not typer.confirm(f"replace everything in {target} with the backup of {manifest['created_at']} "
                                     f"(schema {manifest['revision']})?"):
        raise typer.Exit(1)
    dispose_engines()  # no pooled connection of ours may hold the old contents (or a lock) during the restore
    info = restore(file)
    cli_state.schema_checked = False
    console.print(f"restored {', '.join(info.stores)} into {target}: schema {info.revision}")


@audit_app.command("list")
def audit_list(
    entity: str | None = typer.Option(None, help="unit, business_system, user, api_token, …"),
    entity_id: str | None = typer.Option(None, "--id", help="the record's code or id"),
    actor: str | None = typer.Option(None, help="part of the actor, e.g. a username"),
    since: datetime | None = typer.Option(None, help="only changes at or after this time (display zone unless "
                                                     "it names one, e.g. 2026-12-01T08:00+08:00)"),
    limit: int | None = limit_option(),
    offset: int = OffsetOption,
    output: OutputFormat = OutputOption,
) -> None:
    """The audit trail, newest first (admin, auditor)."""
    with unit_of_work() as (session, principal):
        print_list(partial(list_audit, session, principal, entity=entity, entity_id=entity_id, actor=actor,
                           since=_zoned(since)), AuditEntryPublic, [
            ("id", lambda r: r.id), ("at", lambda r: r.at), ("actor", lambda r: r.actor),
            ("action", lambda r: r.action), ("entity", lambda r: f"{r.entity} {r.entity_id}"),
            ("before", lambda r: _compact(r.before)), ("after", lambda r: _compact(r.after)),
        ], output, limit=limit, offset=offset, title="审计日志 audit log")


def _zoned(at: datetime | None) -> datetime | None:
    """A time typed without a zone is in the display zone, as every time the CLI shows."""
    return at.replace(tzinfo=get_settings().tz) if at is not None and at.tzinfo is None else at


def _compact(data: dict[str, object] | None) -> str | None:
    if data is None:
        return None
    return ", ".join(f"{k}={v}" for k, v in data.items())


@job_app.command("list")
def job_list(
    status: jobs.JobStatus | None = typer.Option(None, case_sensitive=False),
    kind: str | None = typer.Option(None),
    limit: int | None = limit_option(),
    offset: int = OffsetOption,
    output: OutputFormat = OutputOption,
) -> None:
    """Jobs, newest first."""
    with unit_of_work() as (session, principal):
        print_list(partial(jobs.list_jobs, session, principal, status=status, kind=kind), JobPublic, [
            ("id", lambda j: j.id), ("kind", lambda j: j.kind), ("status", lambda j: j.status),
            ("progress", _progress_text), ("message", lambda j: j.error or j.message),
            ("created", lambda j: j.created_at), ("by", lambda j: j.created_by),
        ], output, limit=limit, offset=offset, title="作业 jobs")


def _progress_text(job: JobPublic) -> str:
    if job.progress_total:
        return f"{job.progress_done}/{job.progress_total}"
    return str(job.progress_done) if job.progress_done else ""


@job_app.command("show")
def job_show(job_id: int = typer.Argument(..., help="job id"), output: OutputFormat = OutputOption) -> None:
    """One job with its log."""
    with unit_of_work() as (session, principal):
        job = JobPublic.model_validate(jobs.get_job(session, principal, job_id))
        lines = [JobLogLinePublic.model_validate(line) for line in jobs.job_log(session, principal, job_id)]
    if output is OutputFormat.JSON:
        print_one(job, output, extra={"log": [line.model_dump(mode="json") for line in lines]})
        return
    print_one(job, output, title=f"作业 job {job_id}")
    if lines:
        console.print(f"[bold]log 日志[/] [dim](times {zone_label()})[/]", markup=True)
    for line in lines:
        console.print(f"[dim]{local_time(line.at, zone=False, seconds=True)}[/] {line.level:7} {escape(line.line)}",
                      markup=True)


@job_app.command("watch")
def job_watch(
    job_id: int = typer.Argument(..., help="job id"),
    interval: float = typer.Option(0.5, min=0.05, help="seconds between looks"),
    timeout: float | None = typer.Option(None, help="give up after this many seconds"),
) -> None:
    """Follow a job until it ends: a progress bar and its log as it grows. Exits 1 if the job failed."""
    started = time.monotonic()
    last_line = 0
    console.print(f"[dim]job {job_id}, log times {zone_label()}[/]", markup=True)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
                  TextColumn("{task.fields[message]}", markup=False), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task(f"job {job_id}", total=None, message="")
        while True:
            with unit_of_work() as (session, principal):
                job = jobs.get_job(session, principal, job_id)
                for line in jobs.job_log(session, principal, job_id, after_id=last_line):
                    bar.console.print(f"[dim]{local_time(line.at, zone=False, seconds=True)}[/] {escape(line.line)}",
                                      markup=True)
                    last_line = line.id
                bar.update(task, completed=job.progress_done, total=job.progress_total,
                           message=job.message or job.status.value, description=f"job {job_id} {job.kind}")
                status, error = job.status, job.error
            if status.finished:
                break
            if timeout is not None and time.monotonic() - started > timeout:
                console.print(f"job {job_id} still {status.value} after {timeout:g}s")
                raise typer.Exit(2)
            time.sleep(interval)
    colour = {jobs.JobStatus.SUCCEEDED: "green", jobs.JobStatus.PARTIALLY_FAILED: "yellow"}.get(status, "red")
    ending = f": {escape(error)}" if error else ""
    console.print(f"[{colour}]job {job_id} {status.value} ({status.label})[/]{ending}", markup=True)
    if status is not jobs.JobStatus.SUCCEEDED:
        raise typer.Exit(1)


@job_app.command("cancel")
def job_cancel(job_id: int = typer.Argument(...)) -> None:
    """Cancel a queued job, or stop a running one at its next progress report."""
    with unit_of_work() as (session, principal):
        job = jobs.cancel_job(session, principal, job_id)
        console.print(f"job {job.id} {job.status.value}")


@job_app.command("retry")
def job_retry(job_id: int = typer.Argument(...)) -> None:
    """Queue a failed or cancelled job again."""
    with unit_of_work() as (session, principal):
        job = jobs.retry_job(session, principal, job_id)
        console.print(f"job {job.id} {job.status.value}")


@job_app.command("work")
def job_work(
    once: bool = typer.Option(False, "--once", help="run what is queued now, then exit"),
    concurrency: int = typer.Option(1, "--concurrency", "-c", min=1, max=64,
                                    help="worker processes to run (each its own OS process and database pool)"),
) -> None:
    """Run workers that claim and run queued jobs (for deployments that keep jobs out of the API).

    Any number of workers, on any machines that reach the database, share its queue; SIGTERM stops them after
    the job each is running."""
    from cloudctl.core.cli_support import _check_schema
    from cloudctl.core.db import set_process_kind
    from cloudctl.core.worker import run_workers

    set_process_kind("worker")  # before the first connection: the server lists it as cloudctl-worker
    _check_schema()
    console.print(f"{concurrency} worker process(es): kinds {', '.join(jobs.registered_kinds()) or 'none'}")
    ran = run_workers(concurrency, once=once)
    if once:
        console.print(f"ran {ran} job(s)")
