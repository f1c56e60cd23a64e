"""A read under a time budget on SQLite: interrupted once the budget is spent, and only the read under it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from cloudctl.core.db import make_engine, read_budget, read_connection

COUNT_TO = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {0}) SELECT count(*) FROM n"


def test_a_read_over_its_budget_is_interrupted_and_others_are_not(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'budget.db'}")
    try:
        with read_connection(engine) as connection:
            with read_budget(60) as roomy:
                assert connection.scalar(text(COUNT_TO.format(1000))) == 1000
            assert not roomy.spent

            with read_budget(0.001) as tight, pytest.raises(OperationalError, match="interrupted"):
                connection.scalar(text(COUNT_TO.format(3_000_000)))
            assert tight.spent
            # The connection is fine afterwards, and outside the block nothing is interrupted.
            assert connection.scalar(text(COUNT_TO.format(300_000))) == 300_000

            # A budget belongs to the context that set it: another thread's read, meanwhile, runs to the end.
            answers: list[int] = []

            def elsewhere() -> None:
                with read_connection(engine) as other:
                    answers.append(int(other.scalar(text(COUNT_TO.format(300_000))) or 0))

            with read_budget(0):
                thread = threading.Thread(target=elsewhere)
                thread.start()
                thread.join()
            assert answers == [300_000]
    finally:
        engine.dispose()
