"""Requests per second of the real API against a bare FastAPI endpoint, measured in one run.

    .venv/bin/python bench/api_throughput.py [--seconds 8] [--concurrency 32]

Both servers run the same way (one uvicorn process on loopback, no access log) and
are driven by the same concurrent httpx client, one after the other, so the ratio
cancels out the machine. The real request is an authenticated, paginated
``GET /api/v1/units?limit=50&offset=…`` on the seeded demo city in SQLite (token
lookup, scoped query, count, serialisation); the baseline is ``GET /bare`` that
returns a constant without touching a database. Target: ratio ≥ 0.35.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from fastapi import FastAPI

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 0.35

# The baseline: FastAPI with nothing behind it.
bare_app = FastAPI()


@bare_app.get("/bare")
async def bare() -> dict[str, str]:
    return {"status": "ok"}


@bare_app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(target: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
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


async def drive(base: str, paths: list[str], headers: dict[str, str], seconds: float, concurrency: int) -> float:
    """Requests per second over ``seconds``, after a one-second warm-up; every answer must be 200."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=30) as client:
        count = 0
        stop_at = 0.0
        counting = False

        async def worker(offset: int) -> None:
            nonlocal count
            i = offset
            while time.monotonic() < stop_at:
                response = await client.get(paths[i % len(paths)])
                if response.status_code != 200:
                    raise SystemExit(f"{paths[i % len(paths)]}: HTTP {response.status_code} {response.text[:200]}")
                if counting:
                    count += 1
                i += 1

        stop_at = time.monotonic() + 1.0
        await asyncio.gather(*(worker(n) for n in range(concurrency)))
        counting = True
        started = time.monotonic()
        stop_at = started + seconds
        await asyncio.gather(*(worker(n) for n in range(concurrency)))
        return count / (time.monotonic() - started)


def wrk_rps(url: str, headers: dict[str, str], seconds: float, concurrency: int) -> float | None:
    """The same load from wrk (C, no client-side Python), when it is installed: shows how much of the
    httpx figure is the client's own limit rather than the server's."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    args = [wrk, "-t1", f"-c{concurrency}", f"-d{max(1, int(seconds))}s"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"wrk got errors from {url}:\n{out}")
    match = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    return float(match.group(1)) if match else None


def seed(env: dict[str, str]) -> str:
    """Seed the demo city into a fresh SQLite file; return the ops token."""
    import json

    subprocess.run([sys.executable, "-m", "cloudctl.cli", "db", "upgrade"], env=env, check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)
    tokens = Path(env["CLOUDCTL_DATA_DIR"]) / "demo-tokens.json"
    subprocess.run([sys.executable, "-m", "cloudctl.cli", "demo", "seed", "--tokens-file", str(tokens)], env=env,
                   check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return str(json.loads(tokens.read_text())["tokens"]["ops"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="cloudctl-bench-") as tmp:
        env = {**os.environ, "CLOUDCTL_DATA_DIR": tmp, "CLOUDCTL_DATABASE_URL": f"sqlite:///{tmp}/bench.db",
               "PYTHONPATH": str(ROOT)}
        env.pop("CLOUDCTL_CONFIG", None)
        token = seed(env)
        # Walk the pages of the 1,757-unit city, not one cached page.
        pages = [f"/api/v1/units?limit=50&offset={50 * n}" for n in range(35)]

        proc, base = start_server(["bench.api_throughput:bare_app"], env)
        try:
            bare_rps = asyncio.run(drive(base, ["/bare"], {}, args.seconds, args.concurrency))
            bare_wrk = wrk_rps(f"{base}/bare", {}, args.seconds, args.concurrency)
        finally:
            proc.terminate()
            proc.wait()

        proc, base = start_server(["--factory", "api.app:create_app"], env)
        try:
            api_rps = asyncio.run(drive(base, pages, {"Authorization": f"Bearer {token}"}, args.seconds,
                                        args.concurrency))
            api_wrk = wrk_rps(f"{base}{pages[2]}", {"Authorization": f"Bearer {token}"}, args.seconds,
                              args.concurrency)
        finally:
            proc.terminate()
            proc.wait()

    ratio = api_rps / bare_rps
    print(f"bare FastAPI endpoint (no database)          {bare_rps:8.0f} req/s")
    print(f"GET /api/v1/units, authenticated, paginated  {api_rps:8.0f} req/s  (SQLite, 1,757 units, limit 50)")
    print(f"ratio                                        {ratio:8.2f}   (target ≥ {TARGET_RATIO})")
    if bare_wrk and api_wrk:
        print(f"cross-check with wrk: bare {bare_wrk:.0f} req/s, units {api_wrk:.0f} req/s, "
              f"ratio {api_wrk / bare_wrk:.3f} (the httpx client, not the server, caps the bare figure)")
    print(f"concurrency {args.concurrency}, {args.seconds:g} s each, one uvicorn process, loopback")
    sys.exit(0 if ratio >= TARGET_RATIO else 1)


if __name__ == "__main__":
    main()
