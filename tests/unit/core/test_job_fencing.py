"""Several workers on one queue: each job is claimed by one worker at a time, and a worker that lost its job
(its lease ran out while it was only slow) can neither commit its work for it nor finish it.

Fresh database per test (workers commit for real), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker

from cloudctl.core import jobs
from cloudctl.core.jobs import Job, JobContext, JobLogLine, JobRunner, JobStatus, JobWorker
from cloudctl.core.models import utcnow
from tests.factories import ADMIN

_gates: dict[int, threading.Event] = {}
_entered: dict[int, threading.Event] = {}
_ran: list[tuple[int, str]] = []
_ran_lock = threading.Lock()


@jobs.job_handler("test.slow")
def _slow(ctx: JobContext) -> dict[str, Any]:
    """Waits at its gate on its first attempt only (a worker stalled), then writes its work and finishes."""
    if ctx.attempt == 1:
        _entered[ctx.job_id].set()
        assert _gates[ctx.job_id].wait(30)
    with ctx.session() as session:
        session.add(JobLogLine(job_id=ctx.job_id, line=f"work of attempt {ctx.attempt}"))
    return {"attempt": ctx.attempt}


@jobs.job_handler("test.record")
def _record(ctx: JobContext) -> dict[str, Any]:
    with _ran_lock:
        _ran.append((ctx.job_id, ctx.kind))
    return {}


def _submit(engine: Engine, kind: str, count: int = 1) -> list[int]:
    with Session(engine) as session:
        created = [jobs.submit_job(session, ADMIN, kind) for _ in range(count)]
        session.commit()
        return [job.id for job in created]


def _expire(engine: Engine, job_id: int) -> None:
    """The lease runs out, as when a worker's heartbeats stall (a long GC pause, a network partition)."""
    with Session(engine) as session:
        session.execute(update(Job).where(Job.id == job_id).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()


def test_a_slow_worker_whose_job_was_taken_over_can_neither_commit_nor_finish_it(fresh_engine: Engine) -> None:
    (job_id,) = _submit(fresh_engine, "test.slow")
    _gates[job_id], _entered[job_id] = threading.Event(), threading.Event()
    slow, fast = JobRunner(fresh_engine, owner="slow", lease_seconds=60), JobRunner(fresh_engine, owner="fast")
    slow_thread = threading.Thread(target=slow.run_once, args=(job_id,))
    slow_thread.start()
    assert _entered[job_id].wait(10)
    _expire(fresh_engine, job_id)

    taken = fast.run_once(job_id)
    assert taken is not None
    assert taken.status is JobStatus.SUCCEEDED
    assert taken.result == {"attempt": 2}
    _gates[job_id].set()  # the slow one wakes up and tries to write and finish
    slow_thread.join(10)
    assert not slow_thread.is_alive()

    with Session(fresh_engine) as session:
        job = session.get(Job, job_id)
        assert job is not None
        assert (job.status, job.result, job.attempts, job.lease_owner) == (JobStatus.SUCCEEDED, {"attempt": 2}, 2,
                                                                           "fast")
        lines = list(session.scalars(select(JobLogLine.line).where(JobLogLine.job_id == job_id)))
    assert lines.count("work of attempt 2") == 1
    assert "work of attempt 1" not in lines  # rolled back: the slow worker had lost the job before its commit


def test_a_stale_claim_cannot_report_progress_or_finish(fresh_engine: Engine) -> None:
    (job_id,) = _submit(fresh_engine, "test.record")
    first = JobRunner(fresh_engine, owner="same-owner", lease_seconds=60)
    stale = first.claim(job_id)
    assert stale is not None
    assert stale.attempts == 1
    _expire(fresh_engine, job_id)
    # Even the same owner, claiming again, is a new claim: the attempt is the fencing token.
    again = JobRunner(fresh_engine, owner="same-owner", lease_seconds=60).claim(job_id)
    assert again is not None
    assert again.attempts == 2

    ctx = JobContext(sessionmaker_of(fresh_engine), stale, "same-owner", timedelta(seconds=60))
    try:
        ctx.progress(1, 2)
    except jobs.JobCancelled:
        pass
    else:
        raise AssertionError("a stale claim reported progress")
    assert first._finish(stale, status=JobStatus.FAILED, error="stale") is False
    assert first._finish(again, status=JobStatus.SUCCEEDED, result={"ok": True}) is True
    with Session(fresh_engine) as session:
        job = session.get(Job, job_id)
        assert job is not None
        assert (job.status, job.error, job.progress_done) == (JobStatus.SUCCEEDED, None, 0)


def sessionmaker_of(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


def test_workers_racing_for_the_queue_take_every_job_exactly_once(fresh_engine: Engine) -> None:
    _ran.clear()  # job ids start again at 1 in each test's fresh database
    ids = _submit(fresh_engine, "test.record", 24)
    runners = [JobRunner(fresh_engine, owner=f"w{n}", kinds=["test.record"]) for n in range(4)]
    claimed_by: dict[int, str] = {}
    lock = threading.Lock()

    def drain(runner: JobRunner) -> None:
        while (job := runner.run_once()) is not None:
            with lock:
                assert job.id not in claimed_by, f"job {job.id} ran twice"
                claimed_by[job.id] = runner.owner

    threads = [threading.Thread(target=drain, args=(runner,)) for runner in runners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(claimed_by) == ids
    assert Counter(job_id for job_id, _ in _ran if job_id in ids) == dict.fromkeys(ids, 1)
    with Session(fresh_engine) as session:
        rows = list(session.scalars(select(Job).where(Job.id.in_(ids))))
    assert {(job.status, job.attempts) for job in rows} == {(JobStatus.SUCCEEDED, 1)}


def test_a_running_worker_keeps_its_presence_and_signs_off(fresh_engine: Engine) -> None:
    runner = JobRunner(fresh_engine, owner="present", lease_seconds=0.3, poll_seconds=0.05)
    runner.start()
    try:
        with Session(fresh_engine) as session:
            first = session.get(JobWorker, "present")
            assert first is not None
            seen = first.heartbeat_at
        deadline = utcnow() + timedelta(seconds=5)
        while utcnow() < deadline:
            with Session(fresh_engine) as session:
                row = session.get(JobWorker, "present")
                assert row is not None
                if row.heartbeat_at > seen:
                    break
            threading.Event().wait(0.05)
        else:
            raise AssertionError("the worker's heartbeat did not move")
        with Session(fresh_engine) as session:
            assert [w.owner for w in jobs.recent_workers(session, within=timedelta(seconds=5))] == ["present"]
    finally:
        runner.stop()
    with Session(fresh_engine) as session:
        assert session.get(JobWorker, "present") is None
