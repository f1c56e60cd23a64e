"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text

from cloudctl.core.db import make_engine
from cloudctl.core.metadata import include_name, load_metadata
from cloudctl.core.migrate import current_revision, head_revision, upgrade


def test_migrated_schema_matches_the_models(engine: Engine) -> None:
    assert current_revision(engine) == head_revision()
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "include_name": include_name})
        diff = compare_metadata(context, load_metadata())
    assert diff == []


def test_upgrade_is_idempotent(engine: Engine) -> None:
    upgrade(engine)
    assert current_revision(engine) == head_revision()


def test_free_text_rosters_are_resolved_or_kept_and_marked(request: pytest.FixtureRequest, db_url: str,
                                                           tmp_path: Path) -> None:
    """0019: a roster name that is a duty or secops user's login, or the one such user's display name, becomes
    that user; any other name is kept as it was and its shift marked unresolved; the migration does not fail."""
    if db_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'rosters.db'}"
    else:
        url = request.getfixturevalue("pg_server").create_database(f"r_{uuid.uuid4().hex[:16]}")
    engine = make_engine(url)
    try:
        upgrade(engine, "0016")
        now = datetime.now(UTC)
        with engine.begin() as connection:
            def user(username: str, display: str | None, role: str, *, active: bool = True) -> int:
                return int(connection.execute(text(
                    "INSERT INTO users (username, display_name, role, active, created_at, updated_at) "
                    "VALUES (:u, :d, :r, :a, :t, :t) RETURNING id"),
                    {"u": username, "d": display, "r": role, "a": active, "t": now}).scalar_one())
            zhang = user("zhangwei", "张伟", "duty")
            wang = user("wangfang", "王芳", "secops")
            user("clerk", "钱科员", "ops")
            user("gone", "周离职", "duty", active=False)
            user("li1", "李娜", "duty")
            user("li2", "李娜", "duty")
            period = connection.execute(text(
                "INSERT INTO security_duty_periods (name, kind, starts_at, ends_at, report_times, every_hours, "
                "zero_reports, grace_minutes, reporting_kinds, created_at, updated_at) VALUES ('护网值守', 'drill', "
                ":s, :e, '[]', 4, true, 30, '[\"department\"]', :s, :s) RETURNING id"),
                {"s": now, "e": now + timedelta(days=1)}).scalar_one()
            for officer, backup, leader in (("张伟", "wangfang", None), ("zhangwei", "钱科员", "王芳"),
                                            ("周离职", None, None), ("李娜", None, None), ("无名氏", None, None)):
                connection.execute(text(
                    "INSERT INTO security_duty_shifts (period_id, starts_at, ends_at, officer, backup, leader) "
                    "VALUES (:p, :s, :e, :o, :b, :l)"),
                    {"p": period, "s": now, "e": now + timedelta(hours=1), "o": officer, "b": backup, "l": leader})
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        with engine.connect() as connection:
            rows = [tuple(r) for r in connection.execute(text(
                "SELECT officer, backup, leader, officer_id, backup_id, leader_id, unresolved "
                "FROM security_duty_shifts ORDER BY id"))]
        assert rows == [
            ("张伟", "wangfang", None, zhang, wang, None, False),
            ("zhangwei", "钱科员", "王芳", zhang, None, wang, True),  # an ops clerk is no duty officer
            ("周离职", None, None, None, None, None, True),  # disabled
            ("李娜", None, None, None, None, None, True),  # two users go by that name
            ("无名氏", None, None, None, None, None, True),
        ]
    finally:
        engine.dispose()
