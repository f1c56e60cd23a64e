"""server addresses; security assets linked to servers, business systems and MLPS levels

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('server_addresses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('server_id', sa.Integer(), nullable=False),
    sa.Column('ip', sa.String(length=45), nullable=False),
    sa.Column('kind', sa.Enum('fixed', 'floating', name='addresskind', native_enum=False, create_constraint=False,
                              length=16), nullable=False),
    sa.ForeignKeyConstraint(['server_id'], ['servers.id'], name=op.f('fk_server_addresses_server_id_servers'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_server_addresses')),
    sa.UniqueConstraint('server_id', 'ip', name='uq_server_addresses_server_id_ip')
    )
    with op.batch_alter_table('server_addresses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_server_addresses_ip'), ['ip'], unique=False)
        batch_op.create_index(batch_op.f('ix_server_addresses_server_id'), ['server_id'], unique=False)

    # SQLite rebuilds the table (batch mode); PostgreSQL alters it in place.
    with op.batch_alter_table('security_assets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('server_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('business_system_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('mlps_level', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('mlps_level_source', sa.Enum('system', 'manual', name='levelsource',
                                                                   native_enum=False, create_constraint=False,
                                                                   length=16), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_security_assets_server_id_servers'), 'servers', ['server_id'],
                                    ['id'], ondelete='SET NULL')
        batch_op.create_foreign_key(batch_op.f('fk_security_assets_business_system_id_business_systems'),
                                    'business_systems', ['business_system_id'], ['id'], ondelete='SET NULL')
        batch_op.create_check_constraint(batch_op.f('ck_security_assets_mlps_level_range'),
                                         'mlps_level BETWEEN 1 AND 4')
        batch_op.create_index(batch_op.f('ix_security_assets_server_id'), ['server_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_security_assets_business_system_id'), ['business_system_id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('security_assets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_security_assets_business_system_id'))
        batch_op.drop_index(batch_op.f('ix_security_assets_server_id'))
        batch_op.drop_constraint(batch_op.f('ck_security_assets_mlps_level_range'), type_='check')
        batch_op.drop_constraint(batch_op.f('fk_security_assets_business_system_id_business_systems'),
                                 type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_security_assets_server_id_servers'), type_='foreignkey')
        batch_op.drop_column('mlps_level_source')
        batch_op.drop_column('mlps_level')
        batch_op.drop_column('business_system_id')
        batch_op.drop_column('server_id')

    with op.batch_alter_table('server_addresses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_server_addresses_server_id'))
        batch_op.drop_index(batch_op.f('ix_server_addresses_ip'))

    op.drop_table('server_addresses')
