"""volume quotas hold what approved requests reserve, per volume type

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0022'
down_revision: str | None = '0021'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('volume_quotas') as batch_op:
        batch_op.add_column(sa.Column('reserved_gib', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('volume_quotas') as batch_op:
        batch_op.drop_column('reserved_gib')
