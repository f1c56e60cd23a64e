"""Requests per second of the real API against a bare FastAPI endpoint, measured in one run, with wrk.

    .venv/bin/python bench/api_throughput.py [--seconds 5] [--rounds 1] [--databases sqlite,postgresql]
                                             [--connections 1,8,32] [--no-httpx]

Both servers run the same way (one uvicorn process each on loopback, no access log,
the same settings) and are driven by ``wrk`` (a C load generator: the client is
never the bottleneck) one after the other, so the ratio cancels out the machine.
wrk is installed with apt-get when it is missing, as the test script installs its
Debian packages.

Requests: ``GET /healthz`` (one ``SELECT 1``), ``GET /api/v1/me`` (token lookup),
and the authenticated, paginated ``GET /api/v1/units?limit=50&offset=…`` walking the
pages of the seeded demo city (token lookup, scoped query, count, serialisation).
The baseline is ``GET /bare``, a constant without a database. Each runs at 1, 8
and 32 connections, on SQLite and on a PostgreSQL server the bench starts itself
(as the suite does). The httpx figure (a Python client, which saturates well below
the server) is kept as a secondary line only.

Targets: /healthz and /api/v1/me ≥ 0.25 × bare; the units page ≥ 0.10 × bare;
the units page at 32 connections at least as fast as at 1, its p99 ≤ 10 × p50.
The exit status is 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from fastapi import FastAPI

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.support and this checkout's packages, when run as a script

# The baseline: FastAPI with nothing behind it.
bare_app = FastAPI()


@bare_app.get("/bare")
async def bare() -> dict[str, str]:
    return {"status": "ok"}


@bare_app.get("/healthz")
async def bare_healthz() -> dict[str, str]:
    return {"status": "ok"}


TARGETS = {"/healthz": 0.25, "/api/v1/me": 0.25, "/api/v1/units": 0.10}
PAGES = 35  # the demo city's 1,757 units, 50 a page
# wrk walks the pages of the units list, not one cached page.
WALK_PAGES = """
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, string.format("/api/v1/units?limit=50&offset=%d", 50 * (n % {pages})))
end
"""


@dataclass
class Figure:
    rps: float
    p50_ms: float
    p99_ms: float


def ensure_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk:
        return wrk
    print("installing the Debian package wrk", file=sys.stderr)
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", "wrk"], check=True, env=env,
                   stdin=subprocess.DEVNULL)
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is still not on PATH after apt-get install wrk")
    return wrk


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def server(target: list[str], env: dict[str, str]) -> Iterator[str]:
    """One uvicorn process on loopback with the same settings for every app; yields its base URL."""
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", *target, "--host", "127.0.0.1", "--port", str(port),
           "--no-access-log", "--log-level", "warning", "--no-server-header"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"server {' '.join(target)} did not come up on {base}")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def run_wrk(wrk: str, url: str, *, headers: dict[str, str], seconds: float, connections: int,
            script: Path | None = None) -> Figure:
    """wrk's req/s and latency percentiles; every answer must be 2xx and no socket may fail."""
    args = [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "10s"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    if script is not None:
        args += ["-s", str(script)]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"wrk got errors from {url}:\n{out}")
    rps = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    if not (rps and p50 and p99):
        raise SystemExit(f"cannot read wrk's output:\n{out}")
    return Figure(float(rps.group(1)), _ms(p50.group(1)), _ms(p99.group(1)))


async def httpx_rps(base: str, paths: list[str], headers: dict[str, str], seconds: float, concurrency: int) -> float:
    """Requests per second from a concurrent httpx client (the secondary figure), after a one-second warm-up."""
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


def seed(env: dict[str, str]) -> str:
    """Migrate and seed the demo city into the database of ``env``; return the ops token."""
    subprocess.run([sys.executable, "-m", "cloudctl.cli", "db", "upgrade"], env=env, check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)
    tokens = Path(env["CLOUDCTL_DATA_DIR"]) / "demo-tokens.json"
    subprocess.run([sys.executable, "-m", "cloudctl.cli", "demo", "seed", "--tokens-file", str(tokens)], env=env,
                   check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return str(json.loads(tokens.read_text())["tokens"]["ops"])


def median_figure(figures: list[Figure]) -> Figure:
    return Figure(statistics.median(f.rps for f in figures), statistics.median(f.p50_ms for f in figures),
                  statistics.median(f.p99_ms for f in figures))


def bench_database(name: str, env: dict[str, str], args: argparse.Namespace, wrk: str, tmp: Path) -> list[str]:
    """Print the figures for one database; return the targets it missed."""
    token = seed(env)
    auth = {"Authorization": f"Bearer {token}"}
    walk = tmp / "walk.lua"
    walk.write_text(WALK_PAGES.format(pages=PAGES))
    requests: list[tuple[str, str, dict[str, str], Path | None]] = [
        ("/healthz", "/healthz", {}, None),
        ("/api/v1/me", "/api/v1/me", auth, None),
        ("/api/v1/units", "/api/v1/units?limit=50", auth, walk),
    ]
    bare: dict[int, list[Figure]] = {c: [] for c in args.connections}
    real: dict[tuple[str, int], list[Figure]] = {(r[0], c): [] for r in requests for c in args.connections}
    extra = ""
    with server(["bench.api_throughput:bare_app"], env) as bare_base, \
            server(["--factory", "api.app:create_app"], env) as api_base:
        # A short run of each request first, not counted: both servers have warmed their caches (compiled
        # queries, pooled connections, verified tokens) before the figures are taken, as a server in service has.
        run_wrk(wrk, f"{bare_base}/bare", headers={}, seconds=1, connections=8)
        for _, path, headers, script in requests:
            run_wrk(wrk, f"{api_base}{path}", headers=headers, seconds=1, connections=8, script=script)
        for _ in range(args.rounds):
            for connections in args.connections:
                # The baseline right before the requests it is compared with: drift on a shared machine cancels.
                bare[connections].append(run_wrk(wrk, f"{bare_base}/bare", headers={}, seconds=args.seconds,
                                                 connections=connections))
                for label, path, headers, script in requests:
                    real[(label, connections)].append(run_wrk(wrk, f"{api_base}{path}", headers=headers,
                                                              seconds=args.seconds, connections=connections,
                                                              script=script))
        if args.httpx:
            pages = [f"/api/v1/units?limit=50&offset={50 * n}" for n in range(PAGES)]
            bare_httpx = asyncio.run(httpx_rps(bare_base, ["/bare"], {}, args.seconds, 8))
            units_httpx = asyncio.run(httpx_rps(api_base, pages, auth, args.seconds, 8))
            extra = (f"  secondary (httpx client, 8 connections; the client caps it): bare {bare_httpx:.0f} req/s, "
                     f"units {units_httpx:.0f} req/s, ratio {units_httpx / bare_httpx:.3f}")

    missed: list[str] = []
    print(f"\n{name}: {args.rounds} round(s) of {args.seconds:g} s per figure (median), wrk -t1, one uvicorn each")
    print(f"  {'request':<16}{'conns':>6}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'× bare':>9}")
    for connections in args.connections:
        figure = median_figure(bare[connections])
        print(f"  {'bare':<16}{connections:>6}{figure.rps:>10.0f}{figure.p50_ms:>9.2f}{figure.p99_ms:>9.2f}")
    for label, _, _, _ in requests:
        for connections in args.connections:
            figure = median_figure(real[(label, connections)])
            ratio = figure.rps / median_figure(bare[connections]).rps
            flag = "" if ratio >= TARGETS[label] else f"  < {TARGETS[label]}"
            if flag:
                missed.append(f"{name} {label} c={connections}: {ratio:.3f} × bare (target ≥ {TARGETS[label]})")
            print(f"  {label:<16}{connections:>6}{figure.rps:>10.0f}{figure.p50_ms:>9.2f}{figure.p99_ms:>9.2f}"
                  f"{ratio:>9.3f}{flag}")
    units = {c: median_figure(real[("/api/v1/units", c)]) for c in args.connections}
    lowest, highest = min(args.connections), max(args.connections)
    if units[highest].rps < units[lowest].rps:
        missed.append(f"{name} units: {units[highest].rps:.0f} req/s at {highest} connections < "
                      f"{units[lowest].rps:.0f} at {lowest}")
    if units[highest].p99_ms > 10 * units[highest].p50_ms:
        missed.append(f"{name} units at {highest} connections: p99 {units[highest].p99_ms:.1f} ms > 10 × p50 "
                      f"{units[highest].p50_ms:.1f} ms")
    if extra:
        print(extra)
    return missed


@contextlib.contextmanager
def database(name: str, tmp: Path) -> Iterator[str]:
    if name == "sqlite":
        yield f"sqlite:///{tmp}/bench.db"
        return
    from tests.support.pgserver import PostgresServer

    with PostgresServer() as pg:
        yield pg.create_database("cloudctl_bench")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each wrk run")
    parser.add_argument("--rounds", type=int, default=1, help="runs per figure; the median is shown")
    parser.add_argument("--databases", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    parser.add_argument("--connections", default="1,8,32", help="comma-separated connection counts")
    parser.add_argument("--no-httpx", dest="httpx", action="store_false", help="skip the secondary httpx line")
    args = parser.parse_args()
    args.connections = sorted({int(c) for c in args.connections.split(",")})
    databases = [d.strip() for d in args.databases.split(",") if d.strip()]
    unknown = set(databases) - {"sqlite", "postgresql"}
    if unknown or args.rounds < 1 or args.seconds <= 0 or min(args.connections) < 1:
        raise SystemExit(f"bad arguments: databases {sorted(unknown) or databases}, rounds {args.rounds}, "
                         f"seconds {args.seconds}, connections {args.connections}")
    wrk = ensure_wrk()

    missed: list[str] = []
    for name in databases:
        with tempfile.TemporaryDirectory(prefix="cloudctl-bench-") as tmp_name:
            tmp = Path(tmp_name)
            with database(name, tmp) as url:
                env = {**os.environ, "CLOUDCTL_DATA_DIR": str(tmp / "data"), "CLOUDCTL_DATABASE_URL": url,
                       "PYTHONPATH": str(ROOT), "HOME": str(tmp), "XDG_DATA_HOME": str(tmp / "xdg")}
                env.pop("CLOUDCTL_CONFIG", None)
                (tmp / "data").mkdir()
                missed += bench_database(name, env, args, wrk, tmp)
    print()
    if missed:
        print("targets missed:")
        for line in missed:
            print(f"  {line}")
        sys.exit(1)
    print("every target met")


if __name__ == "__main__":
    main()
