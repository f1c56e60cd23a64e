"""Alembic environment: the connection comes from cloudctl (``cloudctl db upgrade``), not an ini file."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from cloudctl.core.db import make_engine
from cloudctl.core.metadata import include_name, load_metadata

target_metadata = load_metadata()
config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place: batch mode rebuilds the table.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()
