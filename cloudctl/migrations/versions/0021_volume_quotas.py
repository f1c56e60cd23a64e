"""block storage quotas in GiB per volume type, per unit and cloud

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05 08:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cloudctl.core.models

revision: str = '0021'
down_revision: str | None = '0020'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('volume_quotas',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('cloud_id', sa.Integer(), nullable=False),
    sa.Column('volume_type', sa.String(length=64), nullable=False),
    sa.Column('limit_gib', sa.Integer(), nullable=True),
    sa.Column('used_gib', sa.Integer(), nullable=False),
    sa.Column('synced_at', cloudctl.core.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', cloudctl.core.models.UTCDateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'),
              nullable=False),
    sa.Column('updated_at', cloudctl.core.models.UTCDateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'),
              nullable=False),
    sa.ForeignKeyConstraint(['cloud_id'], ['clouds.id'], name=op.f('fk_volume_quotas_cloud_id_clouds'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_volume_quotas_unit_id_units'),
                            ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_volume_quotas')),
    sa.UniqueConstraint('unit_id', 'cloud_id', 'volume_type', name='uq_volume_quotas_unit_id_cloud_id_volume_type')
    )
    with op.batch_alter_table('volume_quotas', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_volume_quotas_cloud_id'), ['cloud_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_volume_quotas_unit_id'), ['unit_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('volume_quotas', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_volume_quotas_unit_id'))
        batch_op.drop_index(batch_op.f('ix_volume_quotas_cloud_id'))
    op.drop_table('volume_quotas')
