"""Jobs: status, progress and log of long work."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from api.deps import PrincipalDep, SessionDep, bounded_read
from api.routing import DomainRouter
from cloudctl.core import jobs
from cloudctl.core.bounds import Id, Offset
from cloudctl.core.schemas import JobDetail, JobLogLinePublic, JobPublic, Page

router = DomainRouter(prefix="/api/v1", tags=["jobs"])

LOG_LINES_SHOWN = 50


@router.get("/jobs")
@bounded_read
def list_jobs(
    session: SessionDep,
    principal: PrincipalDep,
    status: jobs.JobStatus | None = None,
    kind: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Offset = 0,
) -> Page[JobPublic]:
    rows, total = jobs.list_jobs(session, principal, status=status, kind=kind, limit=limit, offset=offset)
    return Page[JobPublic].of(rows, total=total, limit=limit, offset=offset)


@router.get("/jobs/{job_id}")
def read_job(job_id: Id, session: SessionDep, principal: PrincipalDep) -> JobDetail:
    job = jobs.get_job(session, principal, job_id)
    lines = jobs.job_log(session, principal, job_id)[-LOG_LINES_SHOWN:]
    return JobDetail.model_validate({**JobPublic.model_validate(job).model_dump(),
                                     "log": [JobLogLinePublic.model_validate(line) for line in lines]})


@router.post("/jobs/{job_id}/cancel")
def cancel_job(job_id: Id, session: SessionDep, principal: PrincipalDep) -> JobPublic:
    return JobPublic.model_validate(jobs.cancel_job(session, principal, job_id))
