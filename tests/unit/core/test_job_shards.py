"""Shard jobs: a parent split into shards that any worker runs, progress, combine, cancel and retry on the
parent, idempotent splitting. Fresh database per test, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from cloudctl.core import jobs
from cloudctl.core.errors import ProviderError
from cloudctl.core.jobs import Job, JobContext, JobRunner, JobStatus, Shards
from tests.factories import ADMIN

_failing: set[int] = set()


@jobs.job_handler("test.split")
def _split(ctx: JobContext) -> Shards:
    return Shards("test.part", [{"n": n} for n in range(int(ctx.params["parts"]))])


@jobs.job_handler("test.part")
def _part(ctx: JobContext) -> dict[str, Any]:
    n = int(ctx.params["n"])
    if n in _failing:
        raise ProviderError(f"part {n} unreachable")
    ctx.progress(1, 1)
    return {"items": n + 1, "label": "ignored"}


def _submit(engine: Engine, parts: int) -> int:
    with Session(engine) as session:
        job = jobs.submit_job(session, ADMIN, "test.split", {"parts": parts})
        session.commit()
        return job.id


def _drain(engine: Engine, workers: int = 2) -> None:
    runners = [JobRunner(engine, owner=f"w{n}", kinds=["test.split", "test.part"]) for n in range(workers)]
    threads = [threading.Thread(target=lambda r=runner: [None for _ in iter(r.run_once, None)]) for runner in runners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)


def _jobs(engine: Engine, parent_id: int) -> tuple[Job, list[Job]]:
    with Session(engine) as session:
        parent = session.get(Job, parent_id)
        assert parent is not None
        shards = list(session.scalars(select(Job).where(Job.parent_id == parent_id).order_by(Job.id)))
        return parent, shards


def test_workers_share_the_shards_and_the_last_one_finishes_the_parent(fresh_engine: Engine) -> None:
    _failing.clear()
    parent_id = _submit(fresh_engine, 6)
    _drain(fresh_engine)
    parent, shards = _jobs(fresh_engine, parent_id)
    assert parent.status is JobStatus.SUCCEEDED, parent.error
    assert parent.result == {"shards": 6, "items": 21}
    assert (parent.progress_done, parent.progress_total) == (6, 6)
    assert [(s.status, s.attempts, s.params) for s in shards] == [(JobStatus.SUCCEEDED, 1, {"n": n})
                                                                   for n in range(6)]
    assert {s.idempotency_key for s in shards} == {f"shard:{parent_id}:{n}" for n in range(6)}


def test_retrying_the_parent_runs_only_the_shards_that_failed(fresh_engine: Engine) -> None:
    _failing.clear()
    _failing.add(2)
    parent_id = _submit(fresh_engine, 4)
    _drain(fresh_engine)
    parent, shards = _jobs(fresh_engine, parent_id)
    assert parent.status is JobStatus.PARTIALLY_FAILED
    assert "part 2 unreachable" in (parent.error or "")
    _failing.clear()
    with Session(fresh_engine) as session:
        jobs.retry_job(session, ADMIN, parent_id)
        session.commit()
    parent, shards = _jobs(fresh_engine, parent_id)
    assert parent.status is JobStatus.RUNNING
    assert [s.status for s in shards].count(JobStatus.QUEUED) == 1
    _drain(fresh_engine)
    parent, shards = _jobs(fresh_engine, parent_id)
    assert parent.status is JobStatus.SUCCEEDED
    assert parent.result == {"shards": 4, "items": 10}
    assert [s.attempts for s in shards] == [1, 1, 1, 1]  # the retried one counted afresh; the others never re-ran


def test_cancelling_the_parent_cancels_its_waiting_shards(fresh_engine: Engine) -> None:
    parent_id = _submit(fresh_engine, 3)
    splitter = JobRunner(fresh_engine, kinds=["test.split"])
    assert splitter.run_once(parent_id) is not None
    with Session(fresh_engine) as session:
        jobs.cancel_job(session, ADMIN, parent_id)
        session.commit()
    parent, shards = _jobs(fresh_engine, parent_id)
    assert parent.status is JobStatus.CANCELLED
    assert {s.status for s in shards} == {JobStatus.CANCELLED}
    assert JobRunner(fresh_engine, kinds=["test.part"]).run_once() is None


def test_a_parent_left_unsettled_is_finished_by_the_next_idle_worker(fresh_engine: Engine) -> None:
    parent_id = _submit(fresh_engine, 2)
    assert JobRunner(fresh_engine, kinds=["test.split"]).run_once(parent_id) is not None
    with Session(fresh_engine) as session:  # both shards finished by a worker that died before settling
        session.execute(update(Job).where(Job.parent_id == parent_id)
                        .values(status=JobStatus.SUCCEEDED, result={"items": 5}))
        session.commit()
    assert JobRunner(fresh_engine, kinds=["test.part"]).run_once() is None
    parent, _ = _jobs(fresh_engine, parent_id)
    assert parent.status is JobStatus.SUCCEEDED
    assert parent.result == {"shards": 2, "items": 10}


def test_splitting_again_finds_the_shards_instead_of_doubling_them(fresh_engine: Engine) -> None:
    parent_id = _submit(fresh_engine, 3)
    runner = JobRunner(fresh_engine, kinds=["test.split"])
    job = runner.claim(parent_id)
    assert job is not None
    runner._split(job, Shards("test.part", [{"n": n} for n in range(3)]))
    with Session(fresh_engine) as session:  # as if the worker died after splitting and another re-ran the parent
        session.execute(update(Job).where(Job.id == parent_id).values(status=JobStatus.QUEUED))
        session.commit()
    _drain(fresh_engine)
    parent, shards = _jobs(fresh_engine, parent_id)
    assert len(shards) == 3
    assert parent.status is JobStatus.SUCCEEDED
