"""Durable jobs: long work (provisioning, scans, collection, baseline runs) as rows a worker runs.

A job is a row with status, progress, a log and an optional idempotency key; a
worker *claims* it with a lease and keeps the lease fresh with heartbeats. If the
worker dies, the lease runs out and another worker takes the job over, handing the
handler the checkpoint it last saved, so work resumes instead of starting again.
Claiming is one conditional UPDATE of a row picked with ``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL
(workers pass over the rows others are claiming instead of queueing behind them; SQLite has one writer at a
time anyway), so any number of workers (threads in the API, ``cloudctl job work`` processes on several
machines) can share one database.

Every claim counts an attempt, and the attempt is the claim's *fencing token*: progress, checkpoints, the
handler's own transactions (``ctx.session()``) and the job's completion each check, in the transaction that
writes, that the row is still held by this owner at this attempt. A worker that was only slow, whose lease ran
out and whose job another worker took over, can neither finish the job nor commit its work for it: it gets
:class:`JobCancelled` and stops. Each running worker also keeps a row in ``job_workers`` fresh, so readiness
checks can tell whether anyone is there to run jobs.

Handlers should commit their own work in short transactions (``ctx.session()``)
and report progress between them: on SQLite a progress write waits for any open
write transaction.

A job may wait until a time (``run_after``). A *periodic* kind (``job_handler(kind, every=...)``) is one row
that runs again and again: when it finishes, the runner queues the same row for ``every`` later, so sweeps
(the notification sender, reminders) need no scheduler of their own and leave no trail of rows behind.
Cancelling that row pauses the sweep until ``ensure_periodic`` (every runner's start) queues it again.

Long work is split so that more workers finish it sooner: a handler returns :class:`Shards` (a kind and one
parameter set per shard) and the job becomes a *parent* waiting for its shard jobs, which any worker on any host
claims like any job. The parent holds no worker while it waits; the worker that finishes its last shard
combines their results into the parent's (the kind's ``combine``). Cancelling the parent cancels its unfinished
shards; retrying it queues again the shards that failed or were cancelled, not those that succeeded. Each shard
has its own idempotency key, so a parent that splits again (after a crash) finds its shards instead of doubling
them; shard handlers must be idempotent, as every handler must.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Engine, ForeignKey, String, Text, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from cloudctl.core import logs, read
from cloudctl.core.auth import Principal, Role, authorize
from cloudctl.core.config import get_settings
from cloudctl.core.errors import CloudctlError, InvalidInput
from cloudctl.core.models import Base, LabelledEnum, enum_column, utcnow

__all__ = [
    "Job",
    "JobCancelled",
    "JobContext",
    "JobLogLine",
    "JobOutcome",
    "JobRunner",
    "JobStatus",
    "JobWorker",
    "Shards",
    "cancel_job",
    "ensure_periodic",
    "get_job",
    "job_handler",
    "job_log",
    "job_principal",
    "list_jobs",
    "recent_workers",
    "registered_kinds",
    "retry_job",
    "submit_job",
]

log = logging.getLogger(__name__)


class JobStatus(LabelledEnum):
    QUEUED = "queued", "排队", "white"
    RUNNING = "running", "运行中", "cyan"
    SUCCEEDED = "succeeded", "成功", "green"
    # A run against several hosts that reached some and not others: what it did is kept, what it could not is
    # the job's error.
    PARTIALLY_FAILED = "partially_failed", "部分失败", "yellow"
    FAILED = "failed", "失败", "red"
    CANCELLED = "cancelled", "已取消", "yellow"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.PARTIALLY_FAILED, JobStatus.FAILED, JobStatus.CANCELLED)


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """What a handler returns when "it ran" is not the whole story: its result, and whether the work it was given
    all succeeded (``SUCCEEDED``), partly (``PARTIALLY_FAILED``) or not at all (``FAILED``), with why."""

    result: dict[str, Any]
    status: JobStatus = JobStatus.SUCCEEDED
    error: str | None = None

    @classmethod
    def of_parts(cls, result: dict[str, Any], *, done: int, failed: int, error: str | None) -> JobOutcome:
        """Succeeded when nothing failed; failed when nothing was done; partially failed in between."""
        if not failed:
            return cls(result)
        return cls(result, JobStatus.FAILED if not done else JobStatus.PARTIALLY_FAILED, error)


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[JobStatus] = mapped_column(enum_column(JobStatus, 16), default=JobStatus.QUEUED, index=True)
    # Submitting twice with one key gives back the first job: a retried request never runs work twice.
    idempotency_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    checkpoint: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    progress_done: Mapped[int] = mapped_column(default=0)
    progress_total: Mapped[int | None]
    message: Mapped[str | None] = mapped_column(String(255))
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=3)
    created_by: Mapped[str] = mapped_column(String(128))
    created_by_role: Mapped[str] = mapped_column(String(16))
    # The unit the work is for: a department sees the jobs of its own unit only.
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="SET NULL"), index=True)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    # Not claimed before this time (a periodic job's next run, a retry's backoff).
    run_after: Mapped[datetime | None] = mapped_column(index=True)
    # The API request that submitted it (its X-Request-ID): the job's log lines carry it too.
    request_id: Mapped[str | None] = mapped_column(String(64))
    # A shard's parent (see the module): the parent finishes when its last shard does.
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)

    @property
    def fraction(self) -> float | None:
        if not self.progress_total:
            return None
        return min(1.0, self.progress_done / self.progress_total)


class JobLogLine(Base):
    __tablename__ = "job_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    level: Mapped[str] = mapped_column(String(8), default="info")
    line: Mapped[str] = mapped_column(Text)


class JobWorker(Base):
    """A running worker (a ``cloudctl job work`` process, the API's job thread), kept fresh while it runs."""

    __tablename__ = "job_workers"

    owner: Mapped[str] = mapped_column(String(128), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int]
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


def recent_workers(session: Session, *, within: timedelta, now: datetime | None = None) -> list[JobWorker]:
    """The workers whose heartbeat is at most ``within`` old."""
    since = (now or utcnow()) - within
    return list(session.scalars(select(JobWorker).where(JobWorker.heartbeat_at >= since)
                                .order_by(JobWorker.owner)))


class JobCancelled(Exception):
    """Raised inside a handler by :meth:`JobContext.progress` once someone cancelled the job."""


@dataclass(frozen=True, slots=True)
class Shards:
    """What a handler returns to split its job: one shard job of ``kind`` per parameter set (see the module)."""

    kind: str
    params: list[dict[str, Any]]
    message: str | None = None


# The parent kind's combiner: its shards (finished, in order) into the parent's outcome, inside the transaction
# that finishes the parent (for an audit row of the whole).
Combiner = Callable[[Session, "Job", "list[Job]"], "JobOutcome"]
JobHandler = Callable[["JobContext"], "dict[str, Any] | JobOutcome | Shards | None"]
_handlers: dict[str, JobHandler] = {}
_periodic: dict[str, timedelta] = {}
_combiners: dict[str, Combiner] = {}


def job_handler(kind: str, *, every: timedelta | None = None,
                combine: Combiner | None = None) -> Callable[[JobHandler], JobHandler]:
    """Register the function that runs jobs of this kind; with ``every``, a periodic sweep; with ``combine``, how
    the results of the shards it splits into make its own (see the module)."""

    def register(func: JobHandler) -> JobHandler:
        _handlers[kind] = func
        if every is not None:
            _periodic[kind] = every
        if combine is not None:
            _combiners[kind] = combine
        return func

    return register


def combine_counts(session: Session, parent: Job, shards: list[Job]) -> JobOutcome:
    """The default combiner: the shards' numeric results summed; failed shards make the parent partly failed."""
    total: dict[str, Any] = {"shards": len(shards)}
    for shard in shards:
        for key, value in (shard.result or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                total[key] = total.get(key, 0) + value
    failed = [shard for shard in shards if shard.status is not JobStatus.SUCCEEDED]
    error = "; ".join(f"shard {shard.id}: {shard.error or shard.status.value}" for shard in failed[:10]) or None
    return JobOutcome.of_parts(total, done=len(shards) - len(failed), failed=len(failed), error=error)


def periodic_key(kind: str) -> str:
    return f"periodic:{kind}"


def ensure_periodic(session: Session, *, now: datetime | None = None) -> list[Job]:
    """Queue every periodic kind's row (one per kind, by its key) unless it is queued or running already.

    A row an operator cancelled is queued again here: the next runner start resumes the sweep."""
    now = now or utcnow()
    rows = []
    for kind in sorted(_periodic):
        job = session.scalar(select(Job).where(Job.idempotency_key == periodic_key(kind)))
        if job is None:
            job = submit_job(session, system_principal_for_jobs(), kind, idempotency_key=periodic_key(kind),
                             max_attempts=1)
            job.run_after = now
        elif job.status not in (JobStatus.QUEUED, JobStatus.RUNNING):
            job.status, job.run_after, job.attempts, job.error = JobStatus.QUEUED, now, 0, None
        rows.append(job)
    session.flush()
    return rows


def system_principal_for_jobs() -> Principal:
    # cloudctl's own sweeps act for the bureau (an import here would be circular at module load).
    return Principal(username="scheduler", role=Role.ADMIN, via="system")


def registered_kinds() -> list[str]:
    return sorted(_handlers)


# ---------------------------------------------------------------- service


def submit_job(
    session: Session,
    principal: Principal,
    kind: str,
    params: dict[str, Any] | None = None,
    *,
    idempotency_key: str | None = None,
    unit_id: int | None = None,
    max_attempts: int = 3,
) -> Job:
    """Queue a job. Domain services call this after their own authorisation checks."""
    if kind not in _handlers:
        raise InvalidInput(f"no handler for job kind {kind!r}", field="kind")
    if idempotency_key is not None:
        existing = session.scalar(select(Job).where(Job.idempotency_key == idempotency_key))
        if existing is not None:
            return existing
    job = Job(
        kind=kind,
        params=params or {},
        idempotency_key=idempotency_key,
        unit_id=unit_id,
        max_attempts=max_attempts,
        request_id=logs.current_request_id(),
        created_by=principal.actor,
        created_by_role=principal.role.value,
        status=JobStatus.QUEUED,
    )
    try:
        with session.begin_nested():
            session.add(job)
    except IntegrityError:
        # Another request with the same key won the race: give back its job.
        found = session.scalar(select(Job).where(Job.idempotency_key == idempotency_key))
        if found is None:
            raise
        return found
    return job


def get_job(session: Session, principal: Principal, job_id: int) -> Job:
    authorize(principal, "job:read")
    query = read.within(select(Job).where(Job.id == job_id), principal, unit=Job.unit_id)
    return read.one(session, query, missing=f"no job with id {job_id}")


def list_jobs(
    session: Session,
    principal: Principal,
    *,
    status: JobStatus | None = None,
    kind: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Job], int]:
    authorize(principal, "job:read")
    query = read.within(select(Job), principal, unit=Job.unit_id)
    if status is not None:
        query = query.where(Job.status == status)
    if kind is not None:
        if kind not in _handlers:
            raise InvalidInput(f"no job kind {kind!r}; one of: {', '.join(registered_kinds())}", field="kind")
        query = query.where(Job.kind == kind)
    return read.page(session, query, limit=limit, offset=offset, order_by=(Job.id.desc(),))


def job_log(session: Session, principal: Principal, job_id: int, *, after_id: int = 0) -> list[JobLogLine]:
    get_job(session, principal, job_id)
    query = select(JobLogLine).where(JobLogLine.job_id == job_id, JobLogLine.id > after_id)
    return list(session.scalars(query.order_by(JobLogLine.id)).all())


def cancel_job(session: Session, principal: Principal, job_id: int) -> Job:
    authorize(principal, "job:cancel")
    job = get_job(session, principal, job_id)
    if job.status.finished:
        raise InvalidInput(f"job {job_id} already {job.status.value}", field="status")
    # A queued job never starts; a running one stops at its next progress report. So do a parent's shards.
    now = utcnow()
    job.status = JobStatus.CANCELLED
    job.finished_at = now
    session.execute(update(Job).where(Job.parent_id == job.id, Job.status.in_((JobStatus.QUEUED, JobStatus.RUNNING)))
                    .values(status=JobStatus.CANCELLED, finished_at=now).execution_options(synchronize_session=False))
    session.add(JobLogLine(job_id=job.id, level="warning", line=f"cancelled by {principal.actor}"))
    return job


def retry_job(session: Session, principal: Principal, job_id: int) -> Job:
    authorize(principal, "job:retry")
    job = get_job(session, principal, job_id)
    if job.status not in (JobStatus.FAILED, JobStatus.PARTIALLY_FAILED, JobStatus.CANCELLED):
        raise InvalidInput(f"only failed, partially failed or cancelled jobs are retried; job {job_id} is "
                           f"{job.status.value}", field="status")
    job.error = None
    job.finished_at = None
    again = session.execute(
        update(Job).where(Job.parent_id == job.id, Job.status.in_((JobStatus.FAILED, JobStatus.PARTIALLY_FAILED,
                                                                    JobStatus.CANCELLED)))
        .values(status=JobStatus.QUEUED, attempts=0, error=None, finished_at=None, lease_owner=None)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if again or session.scalar(select(func.count()).select_from(Job).where(Job.parent_id == job.id)):
        # A parent: its failed and cancelled shards run again, its succeeded ones stand; it waits for them.
        job.status, job.lease_owner, job.lease_expires_at = JobStatus.RUNNING, None, None
        session.add(JobLogLine(job_id=job.id, line=f"retried by {principal.actor}: {again} shard(s) again"))
        session.flush()
        settle_parent(session, job.id)
        return job
    job.status = JobStatus.QUEUED
    job.attempts = 0
    session.add(JobLogLine(job_id=job.id, line=f"retried by {principal.actor}"))
    return job


def settle_parent(session: Session, parent_id: int) -> bool:
    """Bring a waiting parent's progress up to date and, when its last shard has finished, finish it with the
    combined outcome; True when it finished. Locks the parent's row: two last shards cannot both finish it."""
    parent = session.scalar(select(Job).where(Job.id == parent_id).with_for_update())
    if parent is None or parent.status is not JobStatus.RUNNING or parent.lease_owner is not None:
        return False
    shards = list(session.scalars(select(Job).where(Job.parent_id == parent_id).order_by(Job.id)))
    done = sum(1 for shard in shards if shard.status.finished)
    parent.progress_done, parent.progress_total = done, len(shards)
    if done < len(shards):
        return False
    combine = _combiners.get(parent.kind, combine_counts)
    outcome = combine(session, parent, shards)
    parent.status, parent.result, parent.error = outcome.status, outcome.result, outcome.error
    parent.finished_at = utcnow()
    if outcome.error:
        session.add(JobLogLine(job_id=parent.id, level="error" if outcome.status is JobStatus.FAILED else "warning",
                               line=outcome.error[:2000]))
    session.add(JobLogLine(job_id=parent.id, line=f"{len(shards)} shard(s) finished: {parent.status.value}"))
    return True


# ---------------------------------------------------------------- running


def job_principal(job: Job) -> Principal:
    """The submitter as it was recorded ("cli:ops" stays cli:ops): what the job writes is theirs, under one name."""
    via, _, username = job.created_by.rpartition(":")
    return Principal(username=username, role=Role(job.created_by_role),
                     via="api" if via == "api" else "cli" if via == "cli" else "system")


class JobContext:
    """What a handler sees: its parameters, the last checkpoint, and ways to report."""

    def __init__(self, factory: sessionmaker[Session], job: Job, owner: str, lease: timedelta) -> None:
        self._factory = factory
        self._owner = owner
        self._lease = lease
        self.job_id = job.id
        self.kind = job.kind
        self.params: dict[str, Any] = dict(job.params or {})
        self.checkpoint: dict[str, Any] | None = dict(job.checkpoint) if job.checkpoint else None
        self.attempt = job.attempts
        self.principal = job_principal(job)

    def _held(self) -> Any:
        """The condition under which this claim still holds the job: same owner, same attempt."""
        return (Job.id == self.job_id) & (Job.lease_owner == self._owner) & (Job.attempts == self.attempt)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work for the handler's own changes: committed on success, if the claim still holds.

        Just before the commit the job's row is locked and checked (see the module): a worker that lost the job
        to another one rolls its changes back and gets :class:`JobCancelled`."""
        session = self._factory()
        try:
            yield session
            if session.scalar(select(Job.id).where(self._held()).with_for_update()) is None:
                raise JobCancelled(f"job {self.job_id} was taken over by another worker: its changes are dropped")
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def _touch(self, **values: Any) -> None:
        now = utcnow()
        with self.session() as session:
            changed = session.execute(
                update(Job)
                .where(self._held(), Job.status == JobStatus.RUNNING)
                .values(heartbeat_at=now, lease_expires_at=now + self._lease, **values)
            ).rowcount  # type: ignore[attr-defined]
        if not changed:
            raise JobCancelled(f"job {self.job_id} was cancelled or taken over by another worker")

    def progress(self, done: int, total: int | None = None, message: str | None = None) -> None:
        values: dict[str, Any] = {"progress_done": done}
        if total is not None:
            values["progress_total"] = total
        if message is not None:
            values["message"] = message[:255]
        self._touch(**values)

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Remember how far the work got; a worker that takes over after a crash starts from here."""
        self.checkpoint = dict(state)
        self._touch(checkpoint=self.checkpoint)

    def log(self, line: str, *, level: str = "info") -> None:
        with self.session() as session:
            session.add(JobLogLine(job_id=self.job_id, level=level, line=line))

    def heartbeat(self) -> None:
        self._touch()


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class JobRunner:
    """Claims and runs jobs. ``run_once`` for tests and the CLI; ``start`` for a background thread."""

    def __init__(
        self,
        engine: Engine,
        *,
        owner: str | None = None,
        kinds: list[str] | None = None,
        lease_seconds: float | None = None,
        poll_seconds: float | None = None,
    ) -> None:
        settings = get_settings()
        self._factory = sessionmaker(bind=engine, expire_on_commit=False)
        self.owner = owner or default_owner()
        self.kinds = kinds
        self.lease = timedelta(seconds=lease_seconds if lease_seconds is not None else settings.job_lease_seconds)
        self.poll = poll_seconds if poll_seconds is not None else settings.job_poll_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._presence: threading.Thread | None = None

    def claim(self, job_id: int | None = None, *, parent_id: int | None = None) -> Job | None:
        """Take one runnable job (that one, or a shard of that parent): queued, or running under a lease that has
        run out."""
        now = utcnow()
        runnable = or_(
            (Job.status == JobStatus.QUEUED) & (Job.run_after.is_(None) | (Job.run_after <= now)),
            (Job.status == JobStatus.RUNNING) & (Job.lease_expires_at < now),
        )
        with self._factory() as session:
            query = select(Job.id).where(runnable)
            if job_id is not None:
                query = query.where(Job.id == job_id)
            if parent_id is not None:
                query = query.where(Job.parent_id == parent_id)
            kinds = self.kinds if self.kinds is not None else registered_kinds()
            query = query.where(Job.kind.in_(kinds)).order_by(Job.id)
            if session.get_bind().dialect.name == "postgresql":
                # Rows another worker is claiming right now are passed over, not waited for.
                query = query.limit(1).with_for_update(skip_locked=True)
            else:
                query = query.limit(5)
            candidates = list(session.scalars(query))
            for candidate in candidates:
                # The conditional UPDATE is the claim: only one worker's WHERE still matches.
                claimed = session.execute(
                    update(Job)
                    .where(Job.id == candidate, runnable)
                    .values(
                        status=JobStatus.RUNNING,
                        lease_owner=self.owner,
                        lease_expires_at=now + self.lease,
                        heartbeat_at=now,
                        attempts=Job.attempts + 1,
                        started_at=func.coalesce(Job.started_at, now),
                    )
                ).rowcount  # type: ignore[attr-defined]
                session.commit()
                if claimed:
                    job = session.get(Job, candidate, populate_existing=True)
                    assert job is not None
                    return job
        return None

    def run_once(self, job_id: int | None = None) -> Job | None:
        """Claim and run one job to its end; returns it, or None when nothing was runnable."""
        job = self.claim(job_id)
        if job is None:
            if job_id is None:
                self.settle_waiting()
            return None
        self._run(job)
        with self._factory() as session:
            return session.get(Job, job.id)

    def run_to_end(self, job_id: int) -> Job | None:
        """Run this job here and, if it splits into shards, run them here too (sharing them with any other worker)
        until the parent is finished; returns it (None when it was not runnable)."""
        job = self.run_once(job_id)
        while job is not None and job.status is JobStatus.RUNNING and job.lease_owner is None:
            shard = self.claim(parent_id=job_id)
            if shard is not None:
                self._run(shard)
            elif self._stop.wait(self.poll):
                break
            with self._factory() as session:
                job = session.get(Job, job_id)
        return job

    def _finish(self, job: Job, **values: Any) -> bool:
        """End this claim of the job; False (and nothing written) when the claim no longer holds it."""
        with self._factory() as session:
            changed = session.execute(
                update(Job)
                .where(Job.id == job.id, Job.lease_owner == self.owner, Job.attempts == job.attempts,
                       Job.status == JobStatus.RUNNING)
                .values(finished_at=utcnow(), lease_expires_at=None, **values)
            ).rowcount  # type: ignore[attr-defined]
            session.commit()
        if not changed:
            log.warning("job %s: attempt %s of %s no longer holds it; its outcome is dropped", job.id,
                        job.attempts, self.owner)
        return bool(changed)

    def _log(self, job_id: int, line: str, level: str = "info") -> None:
        with self._factory() as session:
            session.add(JobLogLine(job_id=job_id, level=level, line=line))
            session.commit()

    def _run(self, job: Job) -> None:
        handler = _handlers.get(job.kind)
        if handler is None:  # a kind this process does not know: leave it for one that does
            self._finish(job, status=JobStatus.QUEUED, lease_owner=None, finished_at=None)
            return
        if job.attempts > job.max_attempts:
            self._log(job.id, f"given up after {job.max_attempts} attempts", "error")
            self._finish(job, status=JobStatus.FAILED, error=f"abandoned after {job.max_attempts} attempts")
            if job.kind in _periodic:
                self._requeue(job.id, _periodic[job.kind])
            return
        if job.attempts > 1:
            self._log(job.id, f"attempt {job.attempts}: taken over by {self.owner}"
                      + (" from its checkpoint" if job.checkpoint else ""), "warning")
        ctx = JobContext(self._factory, job, self.owner, self.lease)
        beat_stop = threading.Event()
        beat = threading.Thread(target=self._beat, args=(ctx, beat_stop), daemon=True)
        beat.start()
        try:
            with logs.bound(request_id=job.request_id, job_id=job.id):
                result = handler(ctx)
        except JobCancelled:
            self._log(job.id, "stopped: cancelled", "warning")
            return
        except CloudctlError as exc:
            self._log(job.id, f"failed: {exc}", "error")
            self._finish(job, status=JobStatus.FAILED, error=str(exc))
        except Exception as exc:  # a handler's bug must not kill the worker; the traceback goes to the job log
            log.exception("job %s (%s) failed", job.id, job.kind)
            self._log(job.id, traceback.format_exc(), "error")
            self._finish(job, status=JobStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        else:
            if isinstance(result, Shards):
                self._split(job, result)
            elif isinstance(result, JobOutcome):
                if result.error:
                    self._log(job.id, result.error, "error" if result.status is JobStatus.FAILED else "warning")
                self._finish(job, status=result.status, result=result.result, error=result.error)
            else:
                self._finish(job, status=JobStatus.SUCCEEDED, result=result)
        finally:
            beat_stop.set()
            beat.join()
            if job.kind in _periodic:
                self._requeue(job.id, _periodic[job.kind])
            if job.parent_id is not None:
                self._settle(job.parent_id)

    def _split(self, job: Job, shards: Shards) -> None:
        """Queue the shards and leave the parent waiting for them (running, held by no worker)."""
        if shards.kind not in _handlers:
            self._finish(job, status=JobStatus.FAILED, error=f"no handler for shard kind {shards.kind!r}")
            return
        with self._factory() as session:
            held = session.scalar(select(Job).where(Job.id == job.id, Job.lease_owner == self.owner,
                                                    Job.attempts == job.attempts,
                                                    Job.status == JobStatus.RUNNING).with_for_update())
            if held is None:
                return  # taken over meanwhile: the one that holds it splits it (the keys find these shards)
            principal = Principal(username=job.created_by.rpartition(":")[2], role=Role(job.created_by_role),
                                  via="system")
            for index, params in enumerate(shards.params):
                shard = submit_job(session, principal, shards.kind, params, idempotency_key=f"shard:{job.id}:{index}",
                                   unit_id=job.unit_id, max_attempts=job.max_attempts)
                shard.parent_id, shard.request_id, shard.created_by = job.id, job.request_id, job.created_by
            held.lease_owner, held.lease_expires_at = None, None
            held.progress_done, held.progress_total = 0, len(shards.params)
            held.message = (shards.message or f"split into {len(shards.params)} shard(s)")[:255]
            session.add(JobLogLine(job_id=job.id, line=f"split into {len(shards.params)} shard(s) of {shards.kind}"))
            session.commit()
        self._settle(job.id)  # nothing to wait for when there are no shards

    def _settle(self, parent_id: int) -> None:
        try:
            with self._factory() as session:
                settle_parent(session, parent_id)
                session.commit()
        except Exception:  # the sweep in run_once settles it later
            log.warning("job %s: settling the parent failed; it is settled later", parent_id, exc_info=True)

    def settle_waiting(self) -> int:
        """Finish the parents whose shards have all finished but that were not settled (a worker died between
        finishing the last shard and settling); returns how many it finished."""
        finished = 0
        with self._factory() as session:
            shard = Job.__table__.alias("shard")
            waiting = list(session.scalars(
                select(Job.id).where(Job.status == JobStatus.RUNNING, Job.lease_owner.is_(None),
                                     select(shard.c.id).where(shard.c.parent_id == Job.id).exists())
                .order_by(Job.id).limit(20)))
        for parent_id in waiting:
            with self._factory() as session:
                finished += settle_parent(session, parent_id)
                session.commit()
        return finished

    def _requeue(self, job_id: int, every: timedelta) -> None:
        """A periodic row runs again ``every`` from now, whatever this run's outcome (but a cancel)."""
        with self._factory() as session:
            session.execute(
                update(Job).where(Job.id == job_id, Job.status.in_((JobStatus.SUCCEEDED, JobStatus.PARTIALLY_FAILED,
                                                                JobStatus.FAILED)))
                .values(status=JobStatus.QUEUED, run_after=utcnow() + every, attempts=0, lease_owner=None)
            )
            session.commit()

    def _beat(self, ctx: JobContext, stop: threading.Event) -> None:
        interval = max(self.lease.total_seconds() / 3, 0.05)
        while not stop.wait(interval):
            try:
                ctx.heartbeat()
            except JobCancelled:
                return
            except Exception:  # a missed heartbeat is retried; the lease has slack for two misses
                log.warning("heartbeat of job %s failed", ctx.job_id, exc_info=True)

    # -- presence: the row in job_workers that says this worker is there

    def beat_presence(self) -> None:
        """Write this worker's heartbeat (its row in ``job_workers``, made on the first beat)."""
        now = utcnow()
        with self._factory() as session:
            changed = session.execute(
                update(JobWorker).where(JobWorker.owner == self.owner).values(heartbeat_at=now)
            ).rowcount  # type: ignore[attr-defined]
            if not changed:
                session.add(JobWorker(owner=self.owner, host=socket.gethostname()[:255], pid=os.getpid(),
                                      started_at=now, heartbeat_at=now))
            session.commit()

    def _leave(self) -> None:
        try:
            with self._factory() as session:
                session.execute(delete(JobWorker).where(JobWorker.owner == self.owner))
                session.commit()
        except Exception:  # the database may be gone at shutdown; the row then just ages out
            log.warning("worker %s could not sign off", self.owner, exc_info=True)

    def _present(self) -> None:
        interval = max(self.lease.total_seconds() / 3, 0.05)
        while not self._stop.wait(interval):
            try:
                self.beat_presence()
            except Exception:  # the database may be away for a while (a restart): keep trying
                log.warning("worker %s: heartbeat failed", self.owner, exc_info=True)

    # -- running until stopped: a background thread (the API's embedded runner) or this thread (a worker)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._prepare()
        self._thread = threading.Thread(target=self._loop, name=f"cloudctl-jobs-{self.owner}", daemon=True)
        self._thread.start()

    def run_forever(self) -> None:
        """Claim and run jobs in this thread until :meth:`stop` is called (from a signal handler, another
        thread)."""
        self._prepare()
        try:
            self._loop()
        finally:
            self._finish_presence()

    def _prepare(self) -> None:
        with self._factory() as session:
            ensure_periodic(session)
            session.commit()
        self.beat_presence()  # present from the start, so readiness checks see it at once
        self._stop.clear()
        self._presence = threading.Thread(target=self._present, name=f"cloudctl-presence-{self.owner}",
                                          daemon=True)
        self._presence.start()

    def _finish_presence(self) -> None:
        self._stop.set()
        if self._presence is not None:
            self._presence.join(5)
            self._presence = None
            self._leave()

    def request_stop(self) -> None:
        """Ask :meth:`run_forever` to return after the job it is running (safe from a signal handler)."""
        self._stop.set()

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
            self._finish_presence()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                ran = self.run_once()
            except Exception:  # the worker loop is a process top level: log and keep serving
                log.exception("job runner loop error")
                ran = None
            if ran is None:
                self._stop.wait(self.poll)
