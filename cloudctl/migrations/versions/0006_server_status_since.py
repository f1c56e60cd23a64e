"""server status_since

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 14:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cloudctl.core.models

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('servers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status_since', cloudctl.core.models.UTCDateTime(timezone=True), nullable=True))
    # Servers known before this column: their status is as old as cloudctl's last look at them.
    op.execute("UPDATE servers SET status_since = COALESCE(synced_at, launched_at, created_at)")


def downgrade() -> None:
    with op.batch_alter_table('servers', schema=None) as batch_op:
        batch_op.drop_column('status_since')
