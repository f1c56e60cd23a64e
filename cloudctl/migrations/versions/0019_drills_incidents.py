"""duty rosters name users; drill templates, checklist waivers and evidence files; incidents with their level, reports and steps

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05 15:00:00

Rosters used to hold free text. Each shift's officer, backup and leader now point at users with the duty or
secops role. Existing rosters are migrated by name: a name that is a login, or the display name of exactly one
user, of an active duty or secops user, becomes that user. A name that matches no such user is kept as it was
(the text column is never rewritten) and the shift is marked ``unresolved``: it stays on the roster and in every
report, nobody checks in to it as its officer, and the security team records the check-in for it (audited).
The migration never fails on such data.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cloudctl.core.models

revision: str = '0019'
down_revision: str | None = '0018'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROSTER_ROLES = ('duty', 'secops')


def upgrade() -> None:
    with op.batch_alter_table('security_duty_shifts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('officer_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('backup_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('leader_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('unresolved', sa.Boolean(), server_default=sa.false(), nullable=False))
        for column in ('officer_id', 'backup_id', 'leader_id'):
            batch_op.create_index(batch_op.f(f'ix_security_duty_shifts_{column}'), [column], unique=False)
            batch_op.create_foreign_key(batch_op.f(f'fk_security_duty_shifts_{column}_users'), 'users', [column],
                                        ['id'], ondelete='RESTRICT')
    _resolve_rosters()
    op.create_table('security_incidents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=500), nullable=False),
    sa.Column('level', sa.Enum('extraordinary', 'major', 'large', 'general', name='incidentlevel', native_enum=False, length=16), nullable=False),
    sa.Column('operator_kind', sa.Enum('cii', 'state_organ', 'other', name='operatorkind', native_enum=False, length=16), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=True),
    sa.Column('source_ip', sa.String(length=45), nullable=True),
    sa.Column('status', sa.Enum('open', 'closed', name='incidentstatus', native_enum=False, length=16), nullable=False),
    sa.Column('opened_at', cloudctl.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('opened_by', sa.String(length=128), nullable=False),
    sa.Column('report_due_at', cloudctl.core.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('closed_at', cloudctl.core.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', cloudctl.core.models.UTCDateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('updated_at', cloudctl.core.models.UTCDateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_security_incidents_unit_id_units'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_security_incidents'))
    )
    with op.batch_alter_table('security_incidents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_security_incidents_opened_at'), ['opened_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_security_incidents_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_security_incidents_unit_id'), ['unit_id'], unique=False)
    op.create_table('security_incident_steps',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('incident_id', sa.Integer(), nullable=False),
    sa.Column('step', sa.String(length=16), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('mandatory', sa.Boolean(), nullable=False),
    sa.Column('status', sa.Enum('pending', 'done', 'skipped', name='stepstatus', native_enum=False, length=16), nullable=False),
    sa.Column('owner', sa.String(length=128), nullable=True),
    sa.Column('done_at', cloudctl.core.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('log', sa.JSON(), nullable=False),
    sa.Column('block_id', sa.Integer(), nullable=True),
    sa.Column('filing_number', sa.String(length=64), nullable=True),
    sa.Column('filing_recipient', sa.String(length=128), nullable=True),
    sa.Column('reply_to', sa.String(length=128), nullable=True),
    sa.Column('reply', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['block_id'], ['security_blocklist.id'], name=op.f('fk_security_incident_steps_block_id_security_blocklist'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['incident_id'], ['security_incidents.id'], name=op.f('fk_security_incident_steps_incident_id_security_incidents'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_security_incident_steps')),
    sa.UniqueConstraint('incident_id', 'step', name='uq_security_incident_steps_incident_step')
    )
    with op.batch_alter_table('security_incident_steps', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_security_incident_steps_incident_id'), ['incident_id'], unique=False)
    op.create_table('security_incident_reports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('incident_id', sa.Integer(), nullable=False),
    sa.Column('reporter', sa.String(length=128), nullable=False),
    sa.Column('recipient', sa.String(length=128), nullable=False),
    sa.Column('reported_at', cloudctl.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('recorded_by', sa.String(length=128), nullable=False),
    sa.Column('late', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.ForeignKeyConstraint(['incident_id'], ['security_incidents.id'], name=op.f('fk_security_incident_reports_incident_id_security_incidents'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_security_incident_reports'))
    )
    with op.batch_alter_table('security_incident_reports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_security_incident_reports_incident_id'), ['incident_id'], unique=False)
    with op.batch_alter_table('security_alerts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('incident_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_security_alerts_incident_id'), ['incident_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_security_alerts_incident_id_security_incidents'),
                                    'security_incidents', ['incident_id'], ['id'], ondelete='SET NULL')
    op.create_table('security_drill_templates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=128), nullable=False),
    sa.Column('items', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('created_at', cloudctl.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_security_drill_templates')),
    sa.UniqueConstraint('name', 'version', name='uq_security_drill_templates_name_version')
    )
    with op.batch_alter_table('security_drills', schema=None) as batch_op:
        batch_op.add_column(sa.Column('template_name', sa.String(length=64), server_default='national',
                                      nullable=False))
        batch_op.add_column(sa.Column('template_version', sa.Integer(), server_default='0', nullable=False))
    with op.batch_alter_table('security_drill_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('waiver_reason', sa.String(length=1000), nullable=True))
        batch_op.add_column(sa.Column('evidence_files', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('waived_by', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('waived_at', cloudctl.core.models.UTCDateTime(timezone=True), nullable=True))


def _resolve_rosters() -> None:
    bind = op.get_bind()
    users = sa.table('users', sa.column('id', sa.Integer), sa.column('username', sa.String),
                     sa.column('display_name', sa.String), sa.column('role', sa.String),
                     sa.column('active', sa.Boolean))
    shifts = sa.table('security_duty_shifts', sa.column('id', sa.Integer), sa.column('officer', sa.String),
                      sa.column('backup', sa.String), sa.column('leader', sa.String),
                      sa.column('officer_id', sa.Integer), sa.column('backup_id', sa.Integer),
                      sa.column('leader_id', sa.Integer), sa.column('unresolved', sa.Boolean))
    by_login: dict[str, int] = {}
    by_display: dict[str, list[int]] = {}
    for user_id, username, display_name, role, active in bind.execute(
            sa.select(users.c.id, users.c.username, users.c.display_name, users.c.role, users.c.active)):
        if role not in ROSTER_ROLES or not active:
            continue
        by_login[username] = user_id
        if display_name:
            by_display.setdefault(display_name, []).append(user_id)

    def resolve(name: str | None) -> int | None:
        if not name:
            return None
        if name in by_login:
            return by_login[name]
        matches = by_display.get(name, [])
        return matches[0] if len(matches) == 1 else None

    rows = list(bind.execute(sa.select(shifts.c.id, shifts.c.officer, shifts.c.backup, shifts.c.leader)))
    for shift_id, officer, backup, leader in rows:
        ids = {'officer_id': resolve(officer), 'backup_id': resolve(backup), 'leader_id': resolve(leader)}
        unresolved = any(name and ids[f'{role}_id'] is None
                         for role, name in (('officer', officer), ('backup', backup), ('leader', leader)))
        bind.execute(shifts.update().where(shifts.c.id == shift_id).values(**ids, unresolved=unresolved))


def downgrade() -> None:
    with op.batch_alter_table('security_drills', schema=None) as batch_op:
        batch_op.drop_column('template_version')
        batch_op.drop_column('template_name')
    op.drop_table('security_drill_templates')
    with op.batch_alter_table('security_alerts', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_security_alerts_incident_id_security_incidents'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_security_alerts_incident_id'))
        batch_op.drop_column('incident_id')
    op.drop_table('security_incident_reports')
    op.drop_table('security_incident_steps')
    op.drop_table('security_incidents')
    with op.batch_alter_table('security_drill_items', schema=None) as batch_op:
        batch_op.drop_column('waived_at')
        batch_op.drop_column('waived_by')
        batch_op.drop_column('waiver_reason')
        batch_op.drop_column('evidence_files')
    with op.batch_alter_table('security_duty_shifts', schema=None) as batch_op:
        for column in ('leader_id', 'backup_id', 'officer_id'):
            batch_op.drop_constraint(batch_op.f(f'fk_security_duty_shifts_{column}_users'), type_='foreignkey')
            batch_op.drop_index(batch_op.f(f'ix_security_duty_shifts_{column}'))
        batch_op.drop_column('unresolved')
        batch_op.drop_column('leader_id')
        batch_op.drop_column('backup_id')
        batch_op.drop_column('officer_id')
