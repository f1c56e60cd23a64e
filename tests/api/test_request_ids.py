"""A request id on every answer, in every log line of the request, and on the jobs the request submits, whose
log lines (as JSON, when so configured) carry it too."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from cloudctl.core import jobs, logs
from cloudctl.core.jobs import Job, JobContext, JobRunner
from tests.api.conftest import auth
from tests.factories import ADMIN, MiniCity

log = logging.getLogger("tests.request_ids")


@jobs.job_handler("test.says")
def _says(ctx: JobContext) -> dict[str, Any]:
    log.warning("working on %s", ctx.params["what"])
    return {}


def test_the_request_id_is_answered_and_given_to_the_job_it_submits(client: TestClient, city: MiniCity,
                                                                    session: Session) -> None:
    body = {"business_system": city.systems["own"], "cloud": "test-cloud", "justification": "扩容一台",
            "items": [{"flavor": "c2m4", "count": 1}]}
    response = client.post("/api/v1/requests", json=body, headers={**auth(city, "dept"), "X-Request-ID": "req-7f3a"})
    assert response.status_code == 201, response.text
    assert response.headers["x-request-id"] == "req-7f3a"
    job = session.scalar(select(Job).where(Job.id == response.json()["job_id"]))
    assert job is not None
    assert job.request_id == "req-7f3a"


def test_an_odd_request_id_is_replaced_by_a_new_one(client: TestClient) -> None:
    for given in ("x" * 65, "a b", "new\nline-forged"):
        answered = client.get("/healthz", headers={"X-Request-ID": given}).headers["x-request-id"]
        assert answered != given
        assert len(answered) == 32
    first, second = (client.get("/healthz").headers["x-request-id"] for _ in range(2))
    assert first != second


def test_a_jobs_log_lines_carry_its_request_id_as_json(fresh_engine: Engine) -> None:
    with logs.bound(request_id="req-from-api"), Session(fresh_engine) as session:
        job = jobs.submit_job(session, ADMIN, "test.says", {"what": "机房"})
        session.commit()
        job_id = job.id
    out = io.StringIO()
    handler = logs.configure_logging(logging.INFO, fmt="json", stream=out)
    assert handler is not None
    try:
        JobRunner(fresh_engine).run_once(job_id)
    finally:
        logging.getLogger().removeHandler(handler)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    said = [line for line in lines if line["logger"] == "tests.request_ids"]
    assert said == [{"time": said[0]["time"], "level": "WARNING", "logger": "tests.request_ids",
                     "message": "working on 机房", "request_id": "req-from-api", "job_id": job_id}]
