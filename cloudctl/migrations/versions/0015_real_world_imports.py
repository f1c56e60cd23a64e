"""assets named by host or URL; IP addresses in one spelling; per-command parse counts and skipped rows of devices

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-10 10:00:00
"""

import ipaddress
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0015'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _canonical(value: str) -> str | None:
    try:
        return ipaddress.ip_address(value.strip()).compressed
    except ValueError:
        return None


def upgrade() -> None:
    # SQLite rebuilds the tables (batch mode); PostgreSQL alters them in place.
    with op.batch_alter_table('security_assets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=8), server_default='ip', nullable=False))
        batch_op.add_column(sa.Column('url', sa.String(length=2048), nullable=True))
        batch_op.alter_column('ip', existing_type=sa.String(length=45), nullable=True)
        batch_op.create_index('uq_security_assets_host_name', ['hostname'], unique=True,
                              sqlite_where=sa.text("kind != 'ip'"), postgresql_where=sa.text("kind != 'ip'"))
    with op.batch_alter_table('security_findings', schema=None) as batch_op:
        batch_op.alter_column('ip', existing_type=sa.String(length=45), nullable=True)
    with op.batch_alter_table('extranet_devices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('parse_counts', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('skipped_rows', sa.JSON(), nullable=True))

    # One spelling per address (2001:DB8::1 → 2001:db8::1), as imports now write them. An asset whose canonical
    # spelling another asset already has keeps its own: merging two assets' findings is a person's decision.
    connection = op.get_bind()
    assets = sa.table('security_assets', sa.column('id', sa.Integer), sa.column('ip', sa.String))
    findings = sa.table('security_findings', sa.column('asset_id', sa.Integer), sa.column('ip', sa.String))
    rows = connection.execute(sa.select(assets.c.id, assets.c.ip).where(assets.c.ip.is_not(None))).all()
    taken = {ip for _, ip in rows}
    for asset_id, ip in rows:
        canonical = _canonical(ip)
        if canonical is None or canonical == ip or canonical in taken:
            continue
        taken.add(canonical)
        connection.execute(sa.update(assets).where(assets.c.id == asset_id).values(ip=canonical))
        connection.execute(sa.update(findings).where(findings.c.asset_id == asset_id).values(ip=canonical))


def downgrade() -> None:
    with op.batch_alter_table('extranet_devices', schema=None) as batch_op:
        batch_op.drop_column('skipped_rows')
        batch_op.drop_column('parse_counts')
    op.execute("DELETE FROM security_findings WHERE ip IS NULL")
    op.execute("DELETE FROM security_assets WHERE ip IS NULL")
    with op.batch_alter_table('security_findings', schema=None) as batch_op:
        batch_op.alter_column('ip', existing_type=sa.String(length=45), nullable=False)
    with op.batch_alter_table('security_assets', schema=None) as batch_op:
        batch_op.drop_index('uq_security_assets_host_name')
        batch_op.alter_column('ip', existing_type=sa.String(length=45), nullable=False)
        batch_op.drop_column('url')
        batch_op.drop_column('kind')
