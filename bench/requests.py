"""Resource requests per second over HTTP, on SQLite and on PostgreSQL, against a bare endpoint.

    .venv/bin/python bench/requests.py [--seconds 8] [--concurrency 64]

64 concurrent clients (httpx, asyncio) drive one uvicorn process on loopback. Each
round is the real approval flow for one of the 35 departments: the department submits
a request above the auto-approval tier (POST /api/v1/requests), ops approve it
(POST /api/v1/requests/{id}/approve), which reserves the quota in one conditional
UPDATE and queues a provisioning job. Jobs are not run (``--no-jobs``): this measures
the API and the database. The baseline is a bare FastAPI POST in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.api_throughput import free_port  # noqa: E402


def start_server(target: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """uvicorn serving ``target`` on a free loopback port, once its /healthz answers; the process and base URL."""
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", *target, "--host", "127.0.0.1", "--port", str(port),
           "--no-access-log", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"server {' '.join(target)} did not come up on {base}")


def cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "cloudctl.cli", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"cloudctl {' '.join(args)}: {done.stdout}{done.stderr}")
    return done.stdout


def prepare(env: dict[str, str]) -> tuple[dict[str, str], list[tuple[str, int]]]:
    """Seed the demo city and lift every department's quota so the run measures throughput, not refusals."""
    cli(env, "db", "upgrade")
    tokens_file = Path(env["CLOUDCTL_DATA_DIR"]) / "tokens.json"
    cli(env, "demo", "seed", "--tokens-file", str(tokens_file))
    tokens: dict[str, str] = json.loads(tokens_file.read_text())["tokens"]
    systems = json.loads(cli(env, "system", "list", "--limit", "1000", "-o", "json"))
    departments = sorted({s["unit_code"] for s in systems})
    for code in departments:
        cli(env, "quota", "set", code, "city-cloud", "--vcpus", "1000000", "--ram-gib", "1000000",
            "--disk-gib", "1000000", "--instances", "1000000")
    pairs = [(f"dept-{s['unit_code'].rsplit('-', 1)[-1].lower()}", s["id"]) for s in systems]
    return tokens, pairs


async def drive_requests(base: str, tokens: dict[str, str], pairs: list[tuple[str, int]], seconds: float,
                         concurrency: int) -> tuple[float, int]:
    """HTTP calls per second (each submit and each approval counts one); returns (rate, errors)."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    ops = {"Authorization": f"Bearer {tokens['ops']}"}
    calls = errors = 0
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        stop_at = time.monotonic() + seconds

        async def worker(seed: int) -> None:
            nonlocal calls, errors
            rng = random.Random(seed)
            while time.monotonic() < stop_at:
                user, system = rng.choice(pairs)
                body = {"business_system": system, "cloud": "city-cloud", "justification": "压测：业务扩容",
                        "items": [{"flavor": "c8m16", "count": 3}]}
                submitted = await client.post("/api/v1/requests", json=body,
                                              headers={"Authorization": f"Bearer {tokens[user]}"})
                calls += 1
                if submitted.status_code != 201:
                    errors += 1
                    continue
                approved = await client.post(f"/api/v1/requests/{submitted.json()['id']}/approve", headers=ops)
                calls += 1
                errors += approved.status_code != 200

        started = time.monotonic()
        await asyncio.gather(*(worker(n) for n in range(concurrency)))
        return calls / (time.monotonic() - started), errors


async def drive_bare(base: str, seconds: float, concurrency: int) -> float:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    count = 0
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        stop_at = time.monotonic() + seconds

        async def worker() -> None:
            nonlocal count
            while time.monotonic() < stop_at:
                response = await client.post("/bare", json={"business_system": 1, "items": [{"flavor": "c8m16"}]})
                count += response.status_code == 200

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return count / (time.monotonic() - started)


def run_backend(name: str, url: str, tmp: Path, args: argparse.Namespace) -> tuple[float, int]:
    data = tmp / name
    data.mkdir()
    env = {**os.environ, "CLOUDCTL_DATA_DIR": str(data), "CLOUDCTL_DATABASE_URL": url,
           "CLOUDCTL_SIMULATOR_DATABASE_URL": f"sqlite:///{data / 'sim.db'}", "PYTHONPATH": str(ROOT)}
    env.pop("CLOUDCTL_CONFIG", None)
    tokens, pairs = prepare(env)
    proc, base = start_server(["--factory", "api.app:create_app"], env)
    try:
        return asyncio.run(drive_requests(base, tokens, pairs, args.seconds, args.concurrency))
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    from tests.support.pgserver import PostgresServer

    with tempfile.TemporaryDirectory(prefix="cloudctl-bench-") as tmpdir:
        tmp = Path(tmpdir)
        proc, base = start_server(["bench.requests_bare:app"], {**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            bare = asyncio.run(drive_bare(base, args.seconds, args.concurrency))
        finally:
            proc.terminate()
            proc.wait()
        sqlite_rate, sqlite_errors = run_backend("sqlite", f"sqlite:///{tmp / 'bench.db'}", tmp, args)
        with PostgresServer() as pg:
            pg_rate, pg_errors = run_backend("postgresql", pg.create_database("bench"), tmp, args)

    print(f"bare FastAPI POST (no database)                 {bare:8.0f} req/s")
    print(f"submit + approve, SQLite                        {sqlite_rate:8.0f} req/s  "
          f"ratio {sqlite_rate / bare:.2f}  errors {sqlite_errors}")
    print(f"submit + approve, PostgreSQL                    {pg_rate:8.0f} req/s  "
          f"ratio {pg_rate / bare:.2f}  errors {pg_errors}")
    print(f"concurrency {args.concurrency}, {args.seconds:g} s each, one uvicorn process, loopback; "
          "the httpx client, not the bare server, limits the baseline (see bench/api_throughput.py's wrk check)")


if __name__ == "__main__":
    main()
