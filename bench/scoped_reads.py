"""What scoping a list to a unit's subtree costs, on SQLite and PostgreSQL, against the same list unscoped.

    .venv/bin/python bench/scoped_reads.py [--rounds 200]

On the seeded demo city, one page (50 rows and the count) of units, assets, findings and violations is read
as an administrator (the baseline: no scope) and as a user bound to the largest county, in two ways: through
the read kit (``unit_id IN (SELECT id FROM units WHERE path LIKE '/1/9/%')``) and as the lists read before it
(joining ``units`` and matching its path). Figures are medians of ``--rounds`` reads in one process, as ratios
to the unscoped read of the same list in the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def seed(url: str, data: Path) -> None:
    env = {**os.environ, "CLOUDCTL_DATA_DIR": str(data), "CLOUDCTL_DATABASE_URL": url,
           "CLOUDCTL_SIMULATOR_DATABASE_URL": f"sqlite:///{data / 'sim.db'}", "PYTHONPATH": str(ROOT)}
    env.pop("CLOUDCTL_CONFIG", None)
    for args in (("db", "upgrade"), ("demo", "seed", "--tokens-file", str(data / "tokens.json"))):
        subprocess.run([sys.executable, "-m", "cloudctl.cli", *args], env=env, cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)


def median_ms(fn: Callable[[], Any], rounds: int) -> float:
    fn()  # warm the caches and the statement cache
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def measure(url: str, rounds: int) -> list[tuple[str, float, float, float, int, int]]:
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from cloudctl.core import read
    from cloudctl.core.auth import Principal, Role, system_principal
    from cloudctl.core.db import make_engine
    from cloudctl.extranet.models import Violation
    from cloudctl.org.models import Unit, UnitKind
    from cloudctl.security.models import Asset, Finding

    engine = make_engine(url)
    rows = []
    with Session(engine) as session:
        # The county with the most units under it: the largest subtree a scoped user reads.
        counties = session.scalars(select(Unit).where(Unit.kind == UnitKind.COUNTY)).all()
        county = max(counties, key=lambda c: session.scalar(
            select(func.count()).where(Unit.path.startswith(c.path))) or 0)
        scoped = Principal(username="bench", role=Role.DEPT, unit_id=county.id, unit_code=county.code,
                           unit_path=county.path)
        admin = system_principal("bench")
        lists: dict[str, tuple[Any, Any, Any]] = {
            # name: (query, the record's unit id column, the order)
            "units": (select(Unit), Unit.id, (Unit.code,)),
            "assets": (select(Asset), Asset.unit_id, (Asset.id,)),
            "findings": (select(Finding).join(Finding.asset), Asset.unit_id, (Finding.id,)),
            "violations": (select(Violation), Violation.unit_id, (Violation.id,)),
        }
        for name, (query, unit, order) in lists.items():
            joined = query if name == "units" else query.join(Unit, Unit.id == unit)
            by_join = joined.where(Unit.path.startswith(county.path))
            kit = read.within(query, scoped, unit=unit)

            def page(q: Any, order: Any = order) -> tuple[list[Any], int]:
                return read.page(session, q, limit=50, offset=0, order_by=order)

            base = median_ms(lambda q=read.within(query, admin, unit=unit): page(q), rounds)
            kit_ms = median_ms(lambda q=kit: page(q), rounds)
            join_ms = median_ms(lambda q=by_join: page(q), rounds)
            kit_total, join_total = page(kit)[1], page(by_join)[1]
            assert kit_total == join_total, (name, kit_total, join_total)
            rows.append((name, base, kit_ms, join_ms, kit_total, page(query)[1]))
    engine.dispose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    from tests.support.pgserver import PostgresServer

    results = {}
    with tempfile.TemporaryDirectory(prefix="cloudctl-bench-") as tmpdir:
        tmp = Path(tmpdir)
        (tmp / "sqlite").mkdir()
        url = f"sqlite:///{tmp / 'sqlite' / 'bench.db'}"
        seed(url, tmp / "sqlite")
        results["SQLite"] = measure(url, args.rounds)
        with PostgresServer() as pg:
            (tmp / "pg").mkdir()
            url = str(pg.create_database("bench"))
            seed(url, tmp / "pg")
            results["PostgreSQL"] = measure(url, args.rounds)

    print(f"one page of 50 and its count, median of {args.rounds} reads; ratios to the same list unscoped")
    print(f"{'':<12}{'list':<12}{'rows':>14}{'unscoped':>11}{'read kit':>17}{'join (before)':>20}")
    for backend, rows in results.items():
        for name, base, kit, join, scoped_total, total in rows:
            print(f"{backend:<12}{name:<12}{scoped_total:>6} of {total:<6}{base:>9.2f}ms"
                  f"{kit:>9.2f}ms ×{kit / base:4.2f}{join:>12.2f}ms ×{join / base:4.2f}")


if __name__ == "__main__":
    main()
