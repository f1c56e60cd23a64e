"""`cloudctl job …`: list, show with the log, watch to the end, cancel and retry."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from cloudctl.cli import app
from cloudctl.core import jobs
from cloudctl.core.cli_support import cli_state
from cloudctl.core.config import Settings, reset_settings
from cloudctl.core.db import dispose_engines
from cloudctl.core.jobs import JobRunner
from tests.factories import ADMIN


@jobs.job_handler("test.cli-steps")
def _steps(ctx: jobs.JobContext) -> dict[str, int]:
    for i in range(3):
        ctx.progress(i + 1, 3, message=f"第{i + 1}步")
        ctx.log(f"step {i + 1} [done]")
    return {"steps": 3}


@jobs.job_handler("test.cli-fails")
def _fails(ctx: jobs.JobContext) -> None:
    raise RuntimeError("boom")


@pytest.fixture
def cli(fresh_url: str, tmp_path: Path) -> Iterator[CliRunner]:
    reset_settings(Settings(data_dir=tmp_path / "data", database_url=fresh_url))
    cli_state.schema_checked = False
    yield CliRunner()
    reset_settings()
    dispose_engines()


def _submit(engine: Engine, kind: str) -> int:
    with Session(engine) as session:
        job = jobs.submit_job(session, ADMIN, kind)
        session.commit()
        return job.id


def test_list_show_and_watch_a_finished_job(cli: CliRunner, fresh_engine: Engine) -> None:
    job_id = _submit(fresh_engine, "test.cli-steps")
    queued = json.loads(cli.invoke(app, ["job", "list", "-o", "json"]).output)
    assert [(j["id"], j["status"]) for j in queued] == [(job_id, "queued")]
    JobRunner(fresh_engine).run_once()
    shown = json.loads(cli.invoke(app, ["job", "show", str(job_id), "-o", "json"]).output)
    assert shown["status"] == "succeeded"
    assert shown["result"] == {"steps": 3}
    assert [line["line"] for line in shown["log"]] == ["step 1 [done]", "step 2 [done]", "step 3 [done]"]
    watched = cli.invoke(app, ["job", "watch", str(job_id)])
    assert watched.exit_code == 0, watched.output
    assert "step 3 [done]" in watched.output  # log lines are printed as text, not Rich markup
    assert "succeeded" in watched.output


def test_watch_exits_non_zero_for_a_failed_job_and_retry_requeues(cli: CliRunner, fresh_engine: Engine) -> None:
    job_id = _submit(fresh_engine, "test.cli-fails")
    JobRunner(fresh_engine).run_once()
    watched = cli.invoke(app, ["job", "watch", str(job_id)])
    assert watched.exit_code == 1
    assert "RuntimeError: boom" in watched.output
    assert cli.invoke(app, ["job", "retry", str(job_id)]).exit_code == 0
    assert json.loads(cli.invoke(app, ["job", "show", str(job_id), "-o", "json"]).output)["status"] == "queued"
    cancelled = cli.invoke(app, ["job", "cancel", str(job_id)])
    assert "cancelled" in cancelled.output
    missing = cli.invoke(app, ["job", "show", "999999"])
    assert missing.exit_code == 1
    assert "no job with id 999999" in missing.output


def test_work_once_runs_what_is_queued(cli: CliRunner, fresh_engine: Engine) -> None:
    _submit(fresh_engine, "test.cli-steps")
    _submit(fresh_engine, "test.cli-steps")
    result = cli.invoke(app, ["job", "work", "--once"])
    assert result.exit_code == 0, result.output
    assert "ran 2 job(s)" in result.output
