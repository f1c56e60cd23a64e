"""Scaling out on PostgreSQL: 1 and 2 API processes, 1 and 2 job workers, measured in one run.

    .venv/bin/python bench/scale_out.py [--seconds 8] [--concurrency 64] [--work-seconds 15] [--devices 5000]

On the seeded demo city in a PostgreSQL server of its own (loopback, free port):

- authenticated paged reads (``GET /api/v1/units?limit=50``, ops token) from ``wrk`` (C; installed from Debian
  when missing) against ``cloudctl serve --workers 1`` and ``--workers 2``, and the bare FastAPI endpoint under
  uvicorn with 1 and 2 processes, driven by the same wrk in the same run;
- submit + approve (POST /api/v1/requests, POST …/approve) from ``--concurrency`` (64) concurrent httpx clients
  (bench/requests.py's flow) against 1 and 2 API processes; jobs are not run meanwhile, so the requests are left
  queued for:
- provisioning throughput: VMs dealt with per second (the simulator builds at once) by ``cloudctl job work``
  with 1 and 2 worker processes, each for ``--work-seconds`` on the same backlog;
- an extranet collection of 5,000 simulated devices (``--devices``: the demo city's 1,723, and more written the
  way the demo seeds its own: a switch in the inventory beside a connected unit's, its tables in the simulator's
  store, copied from that unit's), split into shards of 200, by 1 and 2 workers (the time until the parent job
  finished), after one collection not timed that makes the added devices' first observations;
- a reclaim analysis of every live server, split into 8 shards by cloud and unit subtree, by 1 and 2 workers
  (the time until the parent job finished: its campaign is the one an unsplit analysis makes).

Printed: each figure, the ratio 2 processes / 1 process, and reads' ratio to the bare endpoint. On a machine with
two cores the client, the servers and PostgreSQL share them: 2/1 ratios near 1 say the machine, not cloudctl,
is the limit; run it on more cores to see the scale-out.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.requests import drive_requests, prepare  # noqa: E402

CLOUDCTL = [sys.executable, "-m", "cloudctl.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        print("wrk is missing: installing it from Debian (apt-get install wrk)", file=sys.stderr)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, stdout=subprocess.DEVNULL)
        wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk could not be installed")
    return wrk


def wrk_rps(wrk: str, url: str, headers: dict[str, str], seconds: float, concurrency: int) -> float:
    args = [wrk, "-t2", f"-c{concurrency}", f"-d{max(1, int(seconds))}s", "--timeout", "30s"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"wrk got error answers from {url}:\n{out}")
    if "Socket errors" in out:
        print(f"wrk on {url}: {out.split('Socket errors:')[1].splitlines()[0].strip()}", file=sys.stderr)
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None:
        raise SystemExit(f"no figure from wrk:\n{out}")
    return float(found.group(1))


def start(command: list[str], env: dict[str, str], health: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(health, timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    stop(process)
    raise SystemExit(f"{' '.join(command)} did not come up")


def stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def sql(url: str, query: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            return int(connection.execute(text(query)).scalar() or 0)
    finally:
        engine.dispose()


def add_simulated_devices(total: int) -> int:
    """Bring the extranet inventory up to ``total`` devices, as the demo seeds its own; the count now.

    Run in a process whose environment names the bench's database and data directory. Each new device is one
    more switch of a unit that has one: its row in the inventory (its own name and management address) and its
    ARP and MAC tables in the simulator's store, the same as that unit's first switch shows, reachable or not
    as it is. A province's collection reads as many tables, of the same sizes, as a city's with more devices.
    """
    import ipaddress

    from sqlalchemy import func, select

    from cloudctl.compute.providers import simulator_store
    from cloudctl.core.bulk import insert_rows_with_ids
    from cloudctl.core.db import session_scope
    from cloudctl.extranet.devices import DeviceTables
    from cloudctl.extranet.models import NetworkDevice
    from cloudctl.extranet.simulated import load_tables, store_tables

    store = simulator_store()
    with session_scope() as session:
        have = int(session.scalar(select(func.count()).select_from(NetworkDevice)) or 0)
        if have >= total:
            return have
        models = list(session.execute(select(NetworkDevice.name, NetworkDevice.device_type, NetworkDevice.role,
                                             NetworkDevice.unit_id, NetworkDevice.zone)
                                      .order_by(NetworkDevice.id)))
        tables = load_tables(store)
        models = [m for m in models if m.name in tables]
        if not models:
            raise SystemExit("no simulated device to model more on: was the demo city seeded?")
        management = ipaddress.IPv4Network("100.64.0.0/10").hosts()  # apart from the demo's management pool
        rows, simulated = [], []
        for n in range(total - have):
            model = models[n % len(models)]
            name = f"{model.name}-x{n // len(models) + 2}"
            vendor, reachable, shown = tables[model.name]
            rows.append((name, str(next(management)), model.device_type, model.role, model.unit_id, model.zone))
            simulated.append((name, vendor, reachable, DeviceTables(device=name, arp=shown.arp, mac=shown.mac)))
        insert_rows_with_ids(session, NetworkDevice, ("name", "host", "device_type", "role", "unit_id", "zone"),
                             rows)
        store_tables(store, simulated, replace=False)
        return have + len(rows)


def note(figures: dict[str, dict[int, float]], name: str, n: int, value: float) -> None:
    figures.setdefault(name, {})[n] = value
    print(f"  {name} with {n}: {value:.1f}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--work-seconds", type=float, default=15.0)
    parser.add_argument("--devices", type=int, default=5000,
                        help="extranet devices the collection reads (the demo city has 1,723; more are added)")
    args = parser.parse_args()
    from tests.support.pgserver import PostgresServer

    wrk = ensure_wrk()
    figures: dict[str, dict[int, float]] = {}
    with tempfile.TemporaryDirectory(prefix="cloudctl-bench-") as tmpdir, PostgresServer() as pg:
        tmp = Path(tmpdir)
        url = pg.create_database("bench")
        env = {**os.environ, "CLOUDCTL_DATA_DIR": str(tmp / "data"), "CLOUDCTL_DATABASE_URL": url,
               "CLOUDCTL_SIMULATOR_BUILD_SECONDS": "0", "CLOUDCTL_PROVISION_POLL_SECONDS": "0.05",
               "CLOUDCTL_JOB_POLL_SECONDS": "0.1", "CLOUDCTL_EXTRANET_SHARD_DEVICES": "200",
               "CLOUDCTL_API_STATEMENT_TIMEOUT_SECONDS": "0", "HOME": str(tmp / "home"),
               # ops approve every request (bench/requests.py's flow) without the department leader's step first
               "CLOUDCTL_LEADER_APPROVAL_MIN_VCPUS": "1000000", "CLOUDCTL_LEADER_APPROVAL_MIN_RAM_GB": "1000000",
               "XDG_DATA_HOME": str(tmp / "xdg"), "PYTHONPATH": str(ROOT)}
        for name in ("CLOUDCTL_CONFIG", "CLOUDCTL_SIMULATOR_DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR"):
            env.pop(name, None)
        print("seeding the demo city into PostgreSQL…", file=sys.stderr)
        tokens, pairs = prepare(env)
        reads = {"Authorization": f"Bearer {tokens['ops']}"}
        for procs in (1, 2):
            port = free_port()
            bare = start([sys.executable, "-m", "uvicorn", "bench.api_throughput:bare_app", "--host", "127.0.0.1",
                          "--port", str(port), "--workers", str(procs), "--no-access-log", "--log-level", "warning"],
                         env, f"http://127.0.0.1:{port}/healthz")
            try:
                note(figures, "bare", procs, wrk_rps(wrk, f"http://127.0.0.1:{port}/bare", {},
                                                                args.seconds, args.concurrency))
            finally:
                stop(bare)
            port = free_port()
            api = start([*CLOUDCTL, "serve", "--workers", str(procs), "--no-jobs", "--port", str(port)], env,
                        f"http://127.0.0.1:{port}/healthz")
            try:
                base = f"http://127.0.0.1:{port}"
                note(figures, "reads", procs, wrk_rps(wrk, f"{base}/api/v1/units?limit=50", reads,
                                                      args.seconds, args.concurrency))
                rate, errors = asyncio.run(drive_requests(base, tokens, pairs, args.seconds, args.concurrency))
                if errors:
                    print(f"submit + approve with {procs} process(es): {errors} errors", file=sys.stderr)
                note(figures, "submit+approve", procs, rate)
            finally:
                stop(api)

        settled = "SELECT coalesce(sum(settled), 0) FROM request_items"
        for workers in (1, 2):
            before = sql(url, settled)
            worker = subprocess.Popen([*CLOUDCTL, "job", "work", "--concurrency", str(workers)], cwd=ROOT, env=env,
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True)
            started = time.monotonic()
            time.sleep(args.work_seconds)
            done = sql(url, settled) - before
            note(figures, "provisioning", workers, done / (time.monotonic() - started))
            stop(worker)

        # The provisioning backlog aside, so the workers run the collection only.
        sql(url, "WITH c AS (UPDATE jobs SET status = 'cancelled' WHERE status IN ('queued', 'running') "
                 "RETURNING 1) SELECT count(*) FROM c")
        subprocess.run([sys.executable, "-c", f"from bench.scale_out import add_simulated_devices as a; "
                        f"a({args.devices})"], cwd=ROOT, env=env, check=True)
        devices = sql(url, "SELECT count(*) FROM extranet_devices")
        print(f"extranet collection over {devices} simulated devices", file=sys.stderr)
        # First a collection not timed: the added devices' first observations are inserts, every later
        # collection's are updates, and the 1-worker figure must not pay for them alone.
        for timed, workers in ((False, 2), (True, 1), (True, 2)):
            out = subprocess.run([*CLOUDCTL, "extranet", "collect", "--no-wait"], cwd=ROOT, env=env, check=True,
                                 capture_output=True, text=True).stdout
            job_id = int(re.search(r"job (\d+)", out).group(1))  # type: ignore[union-attr]
            worker = subprocess.Popen([*CLOUDCTL, "job", "work", "--concurrency", str(workers)], cwd=ROOT, env=env,
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True)
            started = time.monotonic()
            while sql(url, f"SELECT count(*) FROM jobs WHERE id = {job_id} AND finished_at IS NOT NULL") == 0:
                if time.monotonic() - started > 600:
                    raise SystemExit("the collection did not finish in 10 minutes")
                time.sleep(0.2)
            if timed:
                note(figures, "collection", workers, devices / (time.monotonic() - started))
            stop(worker)

        # A reclaim analysis of every live server, split into 8 shards by cloud and unit subtree.
        servers = sql(url, "SELECT count(*) FROM servers WHERE status NOT IN ('DELETED', 'BUILD', 'ERROR') "
                           "AND unit_id IS NOT NULL")
        sharded = {**env, "CLOUDCTL_RECLAIM_SHARD_SERVERS": str(max(1, -(-servers // 8)))}
        for workers in (1, 2):
            out = subprocess.run([*CLOUDCTL, "reclaim", "analyze", "--no-wait"], cwd=ROOT, env=sharded, check=True,
                                 capture_output=True, text=True).stdout
            job_id = int(re.search(r"job (\d+)", out).group(1))  # type: ignore[union-attr]
            worker = subprocess.Popen([*CLOUDCTL, "job", "work", "--concurrency", str(workers)], cwd=ROOT,
                                      env=sharded, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      start_new_session=True)
            started = time.monotonic()
            while sql(url, f"SELECT count(*) FROM jobs WHERE id = {job_id} AND finished_at IS NOT NULL") == 0:
                if time.monotonic() - started > 600:
                    raise SystemExit("the analysis did not finish in 10 minutes")
                time.sleep(0.2)
            note(figures, "analysis", workers, servers / (time.monotonic() - started))
            stop(worker)

    def ratio(name: str) -> float:
        return figures[name][2] / figures[name][1] if figures[name][1] else float("nan")

    print(f"{'':44}{'1 process':>12}{'2 processes':>14}{'2 / 1':>8}")
    for name, label, unit in (("bare", "bare FastAPI GET (wrk)", "req/s"),
                              ("reads", "paged reads, authenticated (wrk)", "req/s"),
                              ("submit+approve", f"submit + approve (httpx, {args.concurrency} clients)", "calls/s"),
                              ("provisioning", "provisioning, job workers", "VMs/s"),
                              ("collection", f"extranet collection, {devices} devices", "devices/s"),
                              ("analysis", f"reclaim analysis, {servers} servers", "servers/s")):
        one, two = figures[name][1], figures[name][2]
        print(f"{label + ' (' + unit + ')':44}{one:12.1f}{two:14.1f}{ratio(name):8.2f}")
    print(f"paged reads / bare endpoint: {figures['reads'][1] / figures['bare'][1]:.2f} with 1 process, "
          f"{figures['reads'][2] / figures['bare'][2]:.2f} with 2")
    print(f"{os.cpu_count()} cores; client, servers and PostgreSQL on this one machine")


if __name__ == "__main__":
    main()
