"""Seeding the demo city: seconds per step on SQLite and on PostgreSQL, against a bare executemany of as many rows.

    .venv/bin/python bench/demo_seed.py [--runs 3] [--no-postgresql]

Each run is ``cloudctl demo seed -o json`` in a child process on a fresh, unmigrated database (so it migrates
first, as a newcomer's first run does): a SQLite file with the simulator's store beside it, or a new database
in a throw-away PostgreSQL server (tests/support/pgserver.py) holding the simulator's tables too. The command
prints the seconds of each step (organisation, compute, billing, reclaim, extranet, security, notify: every step it
reports, in its order); the whole is the child's wall time, interpreter start and migration included.

The baseline, in the same run and on the same database server: one bare ``executemany`` (sqlite3 / psycopg,
no SQLAlchemy) of as many rows as the seed leaves in all tables, into an empty table of a key and four
columns, in one transaction. The ratio says how many bare inserts of the city the seed costs. Medians over
``--runs``; figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from sqlalchemy import MetaData, create_engine, func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))



def seed_once(database_url: str | None, home: Path) -> tuple[float, dict[str, float]]:
    """Wall seconds of ``cloudctl demo seed -o json`` and the seconds per step it printed."""
    env = {**os.environ, "HOME": str(home), "XDG_DATA_HOME": str(home / "data"),
           "CLOUDCTL_DATA_DIR": str(home / "cloudctl")}
    env.pop("CLOUDCTL_DATABASE_URL", None)
    env.pop("CLOUDCTL_SIMULATOR_DATABASE_URL", None)
    if database_url is not None:
        env["CLOUDCTL_DATABASE_URL"] = database_url
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "cloudctl.cli", "demo", "seed", "-o", "json"], env=env, cwd=ROOT,
                          capture_output=True, text=True, check=False)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"cloudctl demo seed failed: {done.stdout}{done.stderr}")
    seconds: dict[str, float] = json.loads(done.stdout)["seconds"]
    return took, seconds


def rows_left(*urls: str) -> int:
    """Rows in every table of these databases (the seed's whole output)."""
    total = 0
    for url in dict.fromkeys(urls):
        engine = create_engine(url)
        metadata = MetaData()
        metadata.reflect(engine)
        with engine.connect() as connection:
            total += sum(connection.scalar(select(func.count()).select_from(table)) or 0
                         for table in metadata.sorted_tables)
        engine.dispose()
    return total


def bare_sqlite(path: Path, rows: int) -> float:
    import sqlite3

    data = [(i, f"row {i}", i * 0.5, i % 7) for i in range(rows)]
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("CREATE TABLE bare (id INTEGER PRIMARY KEY, a INTEGER, b TEXT, c REAL, d INTEGER)")
        started = time.perf_counter()
        with connection:
            connection.executemany("INSERT INTO bare (a, b, c, d) VALUES (?, ?, ?, ?)", data)
        return time.perf_counter() - started
    finally:
        connection.close()


def bare_postgresql(conninfo: str, rows: int) -> float:
    data = [(i, f"row {i}", i * 0.5, i % 7) for i in range(rows)]
    with psycopg.connect(conninfo) as connection:
        connection.execute("CREATE TABLE bare (id BIGSERIAL PRIMARY KEY, a BIGINT, b TEXT, c DOUBLE PRECISION, "
                           "d INTEGER)")
        connection.commit()
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.executemany("INSERT INTO bare (a, b, c, d) VALUES (%s, %s, %s, %s)", data)
        connection.commit()
        return time.perf_counter() - started


def measure(name: str, runs: int, fresh: Callable[[int], tuple[str | None, list[str]]],
            bare: Callable[[int, int], float], tmp: Path) -> None:
    """``fresh(run)`` → (database URL or None for the default SQLite file, URLs to count rows in afterwards)."""
    wholes: list[float] = []
    steps: dict[str, list[float]] = {}  # every step the command reports, in its order
    baselines: list[float] = []
    rows = 0
    for run in range(runs):
        url, count_in = fresh(run)
        home = tmp / f"{name}-{run}"
        whole, seconds = seed_once(url, home)
        wholes.append(whole)
        for step, took in seconds.items():
            steps.setdefault(step, []).append(took)
        if not rows:
            rows = rows_left(*[u.replace("{home}", str(home)) for u in count_in])
        baselines.append(bare(run, rows))
    base = statistics.median(baselines)
    print(f"\n{name}: median of {runs} runs; bare executemany of {rows:,} rows {base:.3f} s")
    print(f"  {'step':14} {'seconds':>8} {'× bare':>8}")
    for step in steps:
        took = statistics.median(steps[step])
        print(f"  {step:14} {took:8.2f} {took / base:8.1f}")
    seeded = statistics.median([sum(values) for values in zip(*steps.values(), strict=True)])
    whole = statistics.median(wholes)
    print(f"  {'all steps':14} {seeded:8.2f} {seeded / base:8.1f}")
    print(f"  {'the command':14} {whole:8.2f} {whole / base:8.1f}   (interpreter, imports, migration and tokens too)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-postgresql", action="store_true", help="SQLite only")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="cloudctl-bench-") as tmpdir:
        tmp = Path(tmpdir)

        def sqlite_fresh(run: int) -> tuple[str | None, list[str]]:
            return None, ["sqlite:///{home}/cloudctl/cloudctl.db", "sqlite:///{home}/cloudctl/simulator.db"]

        measure("SQLite", args.runs, sqlite_fresh, lambda run, rows: bare_sqlite(tmp / f"bare-{run}.db", rows), tmp)
        if args.no_postgresql:
            return
        from tests.support.pgserver import PostgresServer

        with PostgresServer() as pg:
            def pg_fresh(run: int) -> tuple[str | None, list[str]]:
                url = pg.create_database(f"seed_{run}")
                return url, [url]

            def pg_bare(run: int, rows: int) -> float:
                pg.create_database(f"bare_{run}")
                return bare_postgresql(f"host={pg.host} port={pg.port} user=cloudctl dbname=bare_{run}", rows)

            measure("PostgreSQL", args.runs, pg_fresh, pg_bare, tmp)


if __name__ == "__main__":
    main()
