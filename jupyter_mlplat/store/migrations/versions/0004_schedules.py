"""schedules and their firings

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('schedules',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('owner', sa.String(length=255), nullable=False),
    sa.Column('project', sa.String(length=255), nullable=True),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('target', sa.String(length=16), nullable=False),
    sa.Column('notebook_path', sa.String(length=4096), nullable=False),
    sa.Column('cron', sa.String(length=255), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('parameters', sa.JSON(), nullable=False),
    sa.Column('on_success', sa.JSON(), nullable=False),
    sa.Column('notify', sa.JSON(), nullable=False),
    sa.Column('missed', sa.String(length=16), nullable=False),
    sa.Column('kernel_name', sa.String(length=255), nullable=True),
    sa.Column('timeout', sa.Float(), nullable=True),
    sa.Column('paused', sa.Boolean(), nullable=False),
    sa.Column('next_fire_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_slot_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lease_holder', sa.String(length=64), nullable=True),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lease_token', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('schedules', schema=None) as batch_op:
        batch_op.create_index('ix_schedules_due', ['next_fire_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_schedules_owner'), ['owner'], unique=False)
        batch_op.create_index('ix_schedules_owner_name', ['owner', 'name'], unique=False)

    op.create_table('schedule_firings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner', sa.String(length=255), nullable=False),
    sa.Column('schedule_id', sa.String(length=32), nullable=False),
    sa.Column('slot_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('missed_slots', sa.Integer(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('fence', sa.Integer(), nullable=False),
    sa.Column('scheduler_id', sa.String(length=64), nullable=True),
    sa.Column('host', sa.String(length=255), nullable=True),
    sa.Column('pid', sa.Integer(), nullable=True),
    sa.Column('pid_started', sa.Float(), nullable=True),
    sa.Column('boot_id', sa.String(length=64), nullable=True),
    sa.Column('pid_ns', sa.String(length=64), nullable=True),
    sa.Column('stale_after', sa.Float(), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('run_id', sa.String(length=32), nullable=True),
    sa.Column('parameters', sa.JSON(), nullable=False),
    sa.Column('executed_notebook', sa.String(length=4096), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('actions', sa.JSON(), nullable=False),
    sa.Column('notifications', sa.JSON(), nullable=False),
    sa.Column('requested_by', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ),
    sa.ForeignKeyConstraint(['schedule_id'], ['schedules.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('schedule_id', 'slot_at', 'kind', 'attempt',
                        name='uq_schedule_firings_slot')
    )
    with op.batch_alter_table('schedule_firings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_schedule_firings_owner'), ['owner'], unique=False)
        batch_op.create_index(batch_op.f('ix_schedule_firings_schedule_id'), ['schedule_id'],
                              unique=False)
        batch_op.create_index('ix_schedule_firings_status', ['status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('schedule_firings', schema=None) as batch_op:
        batch_op.drop_index('ix_schedule_firings_status')
        batch_op.drop_index(batch_op.f('ix_schedule_firings_schedule_id'))
        batch_op.drop_index(batch_op.f('ix_schedule_firings_owner'))

    op.drop_table('schedule_firings')
    with op.batch_alter_table('schedules', schema=None) as batch_op:
        batch_op.drop_index('ix_schedules_owner_name')
        batch_op.drop_index(batch_op.f('ix_schedules_owner'))
        batch_op.drop_index('ix_schedules_due')

    op.drop_table('schedules')
