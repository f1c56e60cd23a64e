"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine

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
