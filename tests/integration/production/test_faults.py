"""cloudctl run as production, with real processes on a PostgreSQL server of the test's own: two API processes
(`cloudctl serve --workers 2`) and two job workers (`cloudctl job work`), 64 clients at once, a worker SIGKILLed
mid-provisioning, and the database stopped and started under load.

The server is the test's own (never the suite's shared one, which other tests use while this one stops it), on
free loopback ports; the tests of this module run one at a time (one xdist group).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.orm import Session

from cloudctl.core.config import Settings, reset_settings
from cloudctl.core.db import dispose_engines
from cloudctl.core.jobs import Job, JobStatus
from cloudctl.core.migrate import upgrade
from tests.factories import ADMIN, MiniCity, build_mini_city
from tests.support.appserver import free_port
from tests.support.pgserver import PostgresServer

pytestmark = [pytest.mark.xdist_group("production-faults")]

CLOUDCTL = str(Path(sys.executable).parent / "cloudctl")


def _clean_environ() -> dict[str, str]:
    """This process's environment without cloudctl's settings or a metrics directory another test left set."""
    return {name: value for name, value in os.environ.items()
            if not name.startswith("CLOUDCTL_") and name != "PROMETHEUS_MULTIPROC_DIR"}
CLIENTS = 64
QUOTA_VMS = 20  # of the 64 one-VM requests, this many fit the department's quota


@dataclass
class Deployment:
    pg: PostgresServer
    url: str
    engine: Engine
    api: str
    city: MiniCity
    env: dict[str, str]
    workers: list[subprocess.Popen[bytes]]
    logs: Path
    exporter: str

    def worker(self, n: int) -> subprocess.Popen[bytes]:
        with open(self.logs / f"worker-{n}.log", "wb") as out:  # the child keeps its own descriptor
            process = subprocess.Popen([CLOUDCTL, "job", "work"], env=self.env, stdin=subprocess.DEVNULL, stdout=out,
                                       stderr=subprocess.STDOUT)
        self.workers.append(process)
        return process


def _wait(predicate: Any, timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"not within {timeout:g} s: {what}")


def _ready(api: str) -> bool:
    try:
        return httpx.get(f"{api}/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    logs = tmp_path / "logs"
    logs.mkdir()
    with PostgresServer() as pg:
        url = pg.create_database("cloudctl")
        engine = create_engine(url, pool_pre_ping=True)
        upgrade(engine)
        reset_settings(Settings(data_dir=tmp_path / "seed", database_url=url, simulator_build_seconds=1))
        try:
            with Session(engine) as session:
                from cloudctl.compute import service as compute
                from cloudctl.compute.schemas import QuotaSet

                city = build_mini_city(session, with_cloud=True)
                compute.set_quota(session, ADMIN, "990100-D01", "test-cloud",
                                  QuotaSet(vcpus=4 * QUOTA_VMS, ram_gib=8 * QUOTA_VMS, instances=QUOTA_VMS))
                session.commit()
        finally:
            reset_settings()
            dispose_engines()
        port = free_port()
        env = {**_clean_environ(), "HOME": str(tmp_path / "home"), "XDG_DATA_HOME": str(tmp_path / "xdg"),
               "CLOUDCTL_DATABASE_URL": url, "CLOUDCTL_DATA_DIR": str(tmp_path / "data"),
               "CLOUDCTL_SIMULATOR_BUILD_SECONDS": "1", "CLOUDCTL_PROVISION_POLL_SECONDS": "0.2",
               "CLOUDCTL_JOB_LEASE_SECONDS": "5", "CLOUDCTL_JOB_POLL_SECONDS": "0.2",
               "CLOUDCTL_DB_CONNECT_TIMEOUT_SECONDS": "2", "CLOUDCTL_DB_POOL_TIMEOUT_SECONDS": "5",
               # The API processes' request metrics, summed by the one exporter Prometheus scrapes.
               "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
        (tmp_path / "metrics").mkdir()
        exporter_port = free_port()
        with open(logs / "api.log", "wb") as out:
            api = subprocess.Popen([CLOUDCTL, "serve", "--workers", "2", "--port", str(port)], env=env,
                                   stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        with open(logs / "exporter.log", "wb") as out:
            exporter = subprocess.Popen([CLOUDCTL, "monitors", "serve", "--port", str(exporter_port)], env=env,
                                        stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        deployment = Deployment(pg, url, engine, f"http://127.0.0.1:{port}", city, env, [], logs,
                                f"http://127.0.0.1:{exporter_port}")
        try:
            deployment.worker(1)
            deployment.worker(2)
            _wait(lambda: _ready(deployment.api), 60, "the API ready, with workers")
            yield deployment
        finally:
            for process in deployment.workers:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            os.killpg(api.pid, signal.SIGTERM)
            exporter.terminate()
            for process in [*deployment.workers, api, exporter]:
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)
            engine.dispose()


def test_64_clients_and_a_worker_killed_mid_provisioning(deployment: Deployment) -> None:
    d = deployment
    dept, ops = d.city.tokens["dept"], d.city.tokens["ops"]
    system = d.city.systems["own"]

    def submit(n: int) -> httpx.Response:
        body = {"business_system": system, "cloud": "test-cloud", "justification": f"扩容 {n}",
                "items": [{"flavor": "c4m8", "count": 1}]}
        response = httpx.post(f"{d.api}/api/v1/requests", json=body, headers={"Authorization": f"Bearer {dept}"},
                              timeout=60)
        if response.status_code == 201 and response.json()["status"] == "submitted":
            # Not approved at once: ops approves it, as many clients at once would.
            response = httpx.post(f"{d.api}/api/v1/requests/{response.json()['id']}/approve", json={"reason": "同意"},
                                  headers={"Authorization": f"Bearer {ops}"}, timeout=60)
        return response

    with ThreadPoolExecutor(CLIENTS) as pool:
        answers = list(pool.map(submit, range(CLIENTS)))
    assert {r.status_code for r in answers} <= {200, 201, 409, 422}, [r.text for r in answers if r.status_code >= 500]

    victim = d.workers[0]

    def victim_provisioning() -> bool:
        with Session(d.engine) as session:
            return bool(session.scalar(select(func.count()).select_from(Job).where(
                Job.kind == "compute.provision", Job.status == JobStatus.RUNNING,
                Job.lease_owner.like(f"%:{victim.pid}:%"))))

    _wait(victim_provisioning, 60, "the first worker provisioning", interval=0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)

    def all_settled() -> bool:
        with Session(d.engine) as session:
            return not session.scalar(select(func.count()).select_from(Job).where(
                Job.kind == "compute.provision", Job.status.in_((JobStatus.QUEUED, JobStatus.RUNNING))))

    _wait(all_settled, 120, "every provisioning job finished", interval=0.5)
    with Session(d.engine) as session:
        jobs = list(session.scalars(select(Job).where(Job.kind == "compute.provision")))
        approved = session.execute(text(
            "SELECT r.id, i.count, i.provisioned, r.status, i.error "
            "FROM resource_requests r JOIN request_items i ON i.request_id = r.id "
            "WHERE r.status NOT IN ('submitted', 'rejected', 'withdrawn', 'awaiting_leader')")).all()
        servers = session.execute(text("SELECT request_item_id, count(*) FROM servers GROUP BY request_item_id")).all()
        sim_twice = session.execute(text("SELECT tag FROM sim_servers GROUP BY tag HAVING count(*) > 1")).all()
        sim_count = session.scalar(text("SELECT count(*) FROM sim_servers WHERE tag LIKE 'cloudctl:r%'"))
        quota = session.execute(text("SELECT q.limit_instances, q.used_instances, q.reserved_instances FROM quotas q "
                                     "JOIN units u ON u.id = q.unit_id WHERE u.code = '990100-D01'")).one()
        audit_twice = session.execute(text(
            "SELECT action, entity, entity_id, count(*) FROM audit_log WHERE entity IN ('resource_request', 'server') "
            "GROUP BY action, entity, entity_id HAVING count(*) > 1")).all()
    # The quota held: no more approved than fit (none the cloud itself had to refuse).
    assert len(approved) == QUOTA_VMS, [a for a in approved if a[3] != "fulfilled"]
    assert {job.status for job in jobs} == {JobStatus.SUCCEEDED}, [(j.id, j.status, j.error) for j in jobs]
    assert any(job.attempts > 1 for job in jobs), "no job was taken over from the killed worker"
    assert all(provisioned == count == 1 for _, count, provisioned, *_ in approved)
    assert sorted(n for _, n in servers) == [1] * QUOTA_VMS  # every approved VM recorded exactly once
    assert sim_twice == []
    assert sim_count == QUOTA_VMS  # and exists exactly once in the cloud
    assert quota[1] + quota[2] <= quota[0]
    assert quota[2] == 0
    assert audit_twice == []


def test_the_database_restarted_under_load(deployment: Deployment) -> None:
    d = deployment
    headers = {"Authorization": f"Bearer {d.city.tokens['ops']}"}
    answers: list[tuple[float, int, str]] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=d.api, headers=headers, timeout=15) as client:
            while not stop.is_set():
                started = time.monotonic()
                response = client.get("/api/v1/requests?limit=5")
                answers.append((time.monotonic() - started, response.status_code,
                                response.headers.get("content-type", "")))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1)
        down = d.pg._run(str(d.pg.bindir / "pg_ctl"), "-D", str(d.pg.data), "-m", "fast", "-w", "stop")
        assert down.returncode == 0, down.stderr
        time.sleep(3)  # the load goes on against a database that is away
        assert d.pg._pg_ctl_start().returncode == 0
        back = time.monotonic()
        _wait(lambda: httpx.get(f"{d.api}/api/v1/requests?limit=1", headers=headers, timeout=10).status_code == 200,
              30, "the API answering again")
        recovered = time.monotonic() - back
        time.sleep(1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    codes = {code for _, code, _ in answers}
    assert codes <= {200, 503}, codes
    assert 503 in codes  # it said so while the database was away
    assert {kind for _, code, kind in answers if code == 503} == {"application/problem+json"}
    assert max(took for took, _, _ in answers) < 10  # never a hang
    assert recovered < 10
    assert answers[-1][1] == 200
    # Both API processes' request counts, summed, on the one scrape target.
    scraped = httpx.get(f"{d.exporter}/metrics", timeout=10).text
    served = [line for line in scraped.splitlines()
              if line.startswith("cloudctl_api_http_requests_total{") and 'handler="/api/v1/requests"' in line]
    assert served
    assert sum(float(line.rsplit(" ", 1)[1]) for line in served) >= len(answers)

    # Jobs resume: a request approved after the restart is provisioned by the workers that lived through it.
    body = {"business_system": d.city.systems["own"], "cloud": "test-cloud", "justification": "数据库重启后扩容",
            "items": [{"flavor": "c4m8", "count": 1}]}
    created = httpx.post(f"{d.api}/api/v1/requests", json=body, headers={"Authorization": f"Bearer "
                                                                          f"{d.city.tokens['dept']}"}, timeout=30)
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]
    _wait(lambda: httpx.get(f"{d.api}/api/v1/requests/{request_id}", headers=headers, timeout=10)
          .json()["status"] == "fulfilled", 60, "the request provisioned after the restart", interval=0.3)
