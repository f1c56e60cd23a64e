"""`cloudctl job work --concurrency N`: N worker processes of their own share the queue and run each job once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from cloudctl.core import jobs
from cloudctl.core.jobs import Job, JobStatus
from cloudctl.core.models import utcnow
from cloudctl.notify.sender import SEND_JOB
from tests.factories import ADMIN

CLOUDCTL = str(Path(sys.executable).parent / "cloudctl")


def _clean_environ() -> dict[str, str]:
    """This process's environment without cloudctl's settings or a metrics directory another test left set."""
    return {name: value for name, value in os.environ.items()
            if not name.startswith("CLOUDCTL_") and name != "PROMETHEUS_MULTIPROC_DIR"}


def test_worker_processes_drain_the_queue_between_them(fresh_url: str, fresh_engine: Engine, tmp_path: Path) -> None:
    with Session(fresh_engine) as session:
        ids = [jobs.submit_job(session, ADMIN, SEND_JOB).id for _ in range(6)]
        session.commit()
    env = {**_clean_environ(), "HOME": str(tmp_path / "home"), "XDG_DATA_HOME": str(tmp_path / "xdg"),
           "CLOUDCTL_DATABASE_URL": fresh_url, "CLOUDCTL_DATA_DIR": str(tmp_path / "data")}
    result = subprocess.run([CLOUDCTL, "job", "work", "--once", "--concurrency", "2"], env=env, capture_output=True,
                            text=True, timeout=120, stdin=subprocess.DEVNULL, check=False)
    assert result.returncode == 0, result.stderr
    assert "2 worker process(es)" in result.stdout
    assert "ran 6 job(s)" in result.stdout, result.stderr[-3000:]
    with Session(fresh_engine) as session:
        rows = list(session.scalars(select(Job).where(Job.id.in_(ids))))
    # Each ran once and, being a periodic sweep, waits for its next turn.
    assert {job.status for job in rows} == {JobStatus.QUEUED}
    assert all(job.run_after is not None and job.run_after > utcnow() for job in rows)


def test_concurrency_is_bounded(tmp_path: Path) -> None:
    env = {**_clean_environ(), "HOME": str(tmp_path / "home"), "XDG_DATA_HOME": str(tmp_path / "xdg")}
    result = subprocess.run([CLOUDCTL, "job", "work", "--concurrency", "0"], env=env, capture_output=True, text=True,
                            timeout=60, stdin=subprocess.DEVNULL, check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "--concurrency" in result.stderr
