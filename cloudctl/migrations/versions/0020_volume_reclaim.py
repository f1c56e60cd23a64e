"""reclaim covers storage: a recommendation names a server or a volume, and keeps the snapshot taken before a delete

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05 08:30:00

Existing recommendations all name a server and keep it; server_id only becomes nullable. A volume's
recommendation is one per volume and kind, as a server's is one per server and kind.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cloudctl.core.models

revision: str = '0020'
down_revision: str | None = '0019'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('volume_snapshots',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('cloud_id', sa.Integer(), nullable=False),
    sa.Column('provider_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('volume_id', sa.Integer(), nullable=True),
    sa.Column('volume_provider_id', sa.String(length=64), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=True),
    sa.Column('size_gib', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('provider_created_at', cloudctl.core.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('synced_at', cloudctl.core.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['cloud_id'], ['clouds.id'], name=op.f('fk_volume_snapshots_cloud_id_clouds'),
                            ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_volume_snapshots_unit_id_units'),
                            ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['volume_id'], ['volumes.id'], name=op.f('fk_volume_snapshots_volume_id_volumes'),
                            ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_volume_snapshots')),
    sa.UniqueConstraint('cloud_id', 'provider_id', name='uq_volume_snapshots_cloud_id_provider_id')
    )
    with op.batch_alter_table('volume_snapshots', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_volume_snapshots_cloud_id'), ['cloud_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_volume_snapshots_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_volume_snapshots_unit_id'), ['unit_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_volume_snapshots_volume_id'), ['volume_id'], unique=False)

    with op.batch_alter_table('reclaim_recommendations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('volume_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('volume_snapshot_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('snapshot_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('snapshot_until', sa.Date(), nullable=True))
        batch_op.alter_column('server_id', existing_type=sa.Integer(), nullable=True)
        batch_op.create_index(batch_op.f('ix_reclaim_recommendations_volume_id'), ['volume_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_reclaim_recommendations_volume_snapshot_id'), ['volume_snapshot_id'],
                              unique=False)
        batch_op.create_unique_constraint('uq_reclaim_recommendations_volume_kind', ['volume_id', 'kind'])
        batch_op.create_unique_constraint('uq_reclaim_recommendations_volume_snapshot_kind',
                                          ['volume_snapshot_id', 'kind'])
        batch_op.create_foreign_key(batch_op.f('fk_reclaim_recommendations_volume_id_volumes'), 'volumes',
                                    ['volume_id'], ['id'], ondelete='CASCADE')
        batch_op.create_foreign_key(batch_op.f('fk_reclaim_recommendations_volume_snapshot_id_volume_snapshots'),
                                    'volume_snapshots', ['volume_snapshot_id'], ['id'], ondelete='CASCADE')


def downgrade() -> None:
    op.execute("DELETE FROM reclaim_recommendations WHERE server_id IS NULL")
    with op.batch_alter_table('reclaim_recommendations', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_reclaim_recommendations_volume_snapshot_id_volume_snapshots'),
                                 type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_reclaim_recommendations_volume_id_volumes'), type_='foreignkey')
        batch_op.drop_constraint('uq_reclaim_recommendations_volume_snapshot_kind', type_='unique')
        batch_op.drop_constraint('uq_reclaim_recommendations_volume_kind', type_='unique')
        batch_op.drop_index(batch_op.f('ix_reclaim_recommendations_volume_snapshot_id'))
        batch_op.drop_index(batch_op.f('ix_reclaim_recommendations_volume_id'))
        batch_op.alter_column('server_id', existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column('snapshot_until')
        batch_op.drop_column('snapshot_id')
        batch_op.drop_column('volume_snapshot_id')
        batch_op.drop_column('volume_id')
    with op.batch_alter_table('volume_snapshots', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_volume_snapshots_volume_id'))
        batch_op.drop_index(batch_op.f('ix_volume_snapshots_unit_id'))
        batch_op.drop_index(batch_op.f('ix_volume_snapshots_status'))
        batch_op.drop_index(batch_op.f('ix_volume_snapshots_cloud_id'))
    op.drop_table('volume_snapshots')
