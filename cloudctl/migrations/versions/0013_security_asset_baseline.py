"""security assets: the last baseline run's counts

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-25 16:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cloudctl.core.models

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('security_assets') as batch:
        batch.add_column(sa.Column('baseline_checks', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('baseline_passed', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('baseline_checked_at', cloudctl.core.models.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('security_assets') as batch:
        batch.drop_column('baseline_checked_at')
        batch.drop_column('baseline_passed')
        batch.drop_column('baseline_checks')
