"""Durable jobs: idempotency, progress and log, failure, cancellation and take-over after a crash.

These tests commit for real (workers use their own sessions), so each gets a fresh
migrated SQLite or PostgreSQL database of its own.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session

from cloudctl.core import jobs
from cloudctl.core.auth import Principal, Role
from cloudctl.core.errors import InvalidInput, NotFound, ProviderError
from cloudctl.core.jobs import Job, JobContext, JobRunner, JobStatus
from cloudctl.core.models import utcnow
from tests.factories import ADMIN

calls: list[str] = []


@jobs.job_handler("test.count")
def _count(ctx: JobContext) -> dict[str, Any]:
    total = int(ctx.params.get("n", 3))
    start = int((ctx.checkpoint or {}).get("done", 0))
    for i in range(start, total):
        calls.append(f"{ctx.job_id}:{i}")
        ctx.progress(i + 1, total, message=f"item {i + 1}")
        ctx.save_checkpoint({"done": i + 1})
        if ctx.params.get("crash_at") == i + 1 and ctx.attempt == 1:
            raise SystemExit("simulated crash")  # a dying process, not a handled failure
    ctx.log(f"counted to {total}")
    return {"counted": total}


@jobs.job_handler("test.fail")
def _fail(ctx: JobContext) -> None:
    raise ProviderError("the cloud said no", field="flavor")


@jobs.job_handler("test.block")
def _block(ctx: JobContext) -> None:
    gate: threading.Event = _gates[ctx.job_id]
    while not gate.wait(0.02):
        ctx.progress(0)


_gates: dict[int, threading.Event] = {}


@jobs.job_handler("test.hosts")
def _hosts(ctx: JobContext) -> jobs.JobOutcome:
    reached, missed = ctx.params["reached"], ctx.params["missed"]
    return jobs.JobOutcome.of_parts({"reached": reached, "actor": ctx.principal.actor}, done=len(reached),
                                    failed=len(missed), error=f"not reached: {', '.join(missed)}" if missed else None)


@pytest.fixture
def job_engine(fresh_engine: Engine) -> Engine:
    return fresh_engine


def _submit(engine: Engine, kind: str, params: dict[str, Any] | None = None, **kw: Any) -> int:
    with Session(engine) as session:
        job = jobs.submit_job(session, ADMIN, kind, params, **kw)
        session.commit()
        return job.id


def _job(engine: Engine, job_id: int) -> Job:
    with Session(engine) as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def test_a_job_runs_with_progress_log_and_result(job_engine: Engine) -> None:
    job_id = _submit(job_engine, "test.count", {"n": 4})
    done = JobRunner(job_engine).run_once()
    assert done is not None
    assert done.id == job_id
    assert done.status is JobStatus.SUCCEEDED
    assert (done.progress_done, done.progress_total, done.fraction) == (4, 4, 1.0)
    assert done.result == {"counted": 4}
    with Session(job_engine) as session:
        lines = jobs.job_log(session, ADMIN, job_id)
    assert [line.line for line in lines] == ["counted to 4"]


def test_same_idempotency_key_gives_back_the_same_job(job_engine: Engine) -> None:
    first = _submit(job_engine, "test.count", idempotency_key="req-7/item-1")
    second = _submit(job_engine, "test.count", idempotency_key="req-7/item-1")
    assert first == second
    runner = JobRunner(job_engine)
    assert runner.run_once() is not None
    assert runner.run_once() is None  # nothing left: the work ran once


def test_unknown_kind_is_refused(job_engine: Engine) -> None:
    with Session(job_engine) as session, pytest.raises(InvalidInput) as caught:
        jobs.submit_job(session, ADMIN, "no.such.kind")
    assert caught.value.field == "kind"


def test_a_failing_handler_fails_the_job_and_logs_why(job_engine: Engine) -> None:
    job_id = _submit(job_engine, "test.fail")
    job = JobRunner(job_engine).run_once()
    assert job is not None
    assert job.status is JobStatus.FAILED
    assert job.error == "flavor: the cloud said no"
    with Session(job_engine) as session:
        assert "failed" in jobs.job_log(session, ADMIN, job_id)[-1].line
        retried = jobs.retry_job(session, ADMIN, job_id)
        assert retried.status is JobStatus.QUEUED
        session.commit()


def test_a_crashed_worker_is_taken_over_from_its_checkpoint(job_engine: Engine) -> None:
    calls.clear()
    job_id = _submit(job_engine, "test.count", {"n": 5, "crash_at": 2})
    dying = JobRunner(job_engine, owner="worker-a", lease_seconds=30)
    with pytest.raises(SystemExit):
        dying.run_once()
    # The dead worker's lease is still good: nobody else may take the job yet.
    survivor = JobRunner(job_engine, owner="worker-b", lease_seconds=30)
    assert survivor.run_once() is None
    with Session(job_engine) as session:  # time passes: the lease runs out
        session.execute(update(Job).where(Job.id == job_id)
                        .values(lease_expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()
    job = survivor.run_once()
    assert job is not None
    assert job.status is JobStatus.SUCCEEDED
    assert job.attempts == 2
    # Items 0 and 1 were done before the crash and are not done again.
    assert calls == [f"{job_id}:{i}" for i in range(5)]
    assert job.lease_owner == "worker-b"


def test_cancelling_a_running_job_stops_it(job_engine: Engine) -> None:
    job_id = _submit(job_engine, "test.block")
    _gates[job_id] = threading.Event()
    runner = JobRunner(job_engine, poll_seconds=0.02)
    runner.start()
    try:
        for _ in range(200):
            if _job(job_engine, job_id).status is JobStatus.RUNNING:
                break
            threading.Event().wait(0.02)
        with Session(job_engine) as session:
            jobs.cancel_job(session, ADMIN, job_id)
            session.commit()
        for _ in range(200):  # the handler notices at its next progress report
            with Session(job_engine) as session:
                if any(line.line == "stopped: cancelled" for line in jobs.job_log(session, ADMIN, job_id)):
                    break
            threading.Event().wait(0.02)
        else:
            pytest.fail("the running job did not stop after it was cancelled")
    finally:
        _gates[job_id].set()
        runner.stop()
    assert _job(job_engine, job_id).status is JobStatus.CANCELLED


def test_dept_sees_only_jobs_of_its_unit(job_engine: Engine) -> None:
    mine = _submit(job_engine, "test.count", unit_id=None)
    dept = Principal(username="d", role=Role.DEPT, unit_id=12345, unit_path="/1/12345/")
    with Session(job_engine) as session:
        with pytest.raises(NotFound):
            jobs.get_job(session, dept, mine)
        assert jobs.list_jobs(session, dept) == ([], 0)


@pytest.mark.parametrize(("reached", "missed", "status"), [
    (["a", "b"], [], JobStatus.SUCCEEDED),
    (["a"], ["b"], JobStatus.PARTIALLY_FAILED),
    ([], ["a", "b"], JobStatus.FAILED),
])
def test_a_run_that_reached_nothing_fails_and_one_that_reached_some_is_partial(
        job_engine: Engine, reached: list[str], missed: list[str], status: JobStatus) -> None:
    job_id = _submit(job_engine, "test.hosts", {"reached": reached, "missed": missed})
    JobRunner(job_engine).run_once()
    job = _job(job_engine, job_id)
    assert job.status is status
    assert job.status.finished
    assert job.result == {"reached": reached, "actor": ADMIN.actor}  # what it did is kept either way
    assert job.error == (f"not reached: {', '.join(missed)}" if missed else None)
    if missed:
        with Session(job_engine) as session:
            assert jobs.retry_job(session, ADMIN, job_id).status is JobStatus.QUEUED


def test_a_job_acts_under_the_name_it_was_submitted_by(job_engine: Engine) -> None:
    job_id = _submit(job_engine, "test.hosts", {"reached": ["a"], "missed": []})
    JobRunner(job_engine).run_once()
    job = _job(job_engine, job_id)
    assert job.created_by == ADMIN.actor == "cli:test-admin"
    assert job.result is not None
    assert job.result["actor"] == job.created_by
