"""serving endpoints

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 05:25:50.570833
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('endpoints',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('public', sa.Boolean(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=True),
    sa.Column('token_rotated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('owner', 'name', name='uq_endpoints_owner_name')
    )
    with op.batch_alter_table('endpoints', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_endpoints_owner'), ['owner'], unique=False)

    op.create_table('endpoint_revisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner', sa.String(length=255), nullable=False),
    sa.Column('endpoint_id', sa.Integer(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('routes', sa.JSON(), nullable=False),
    sa.Column('shadow', sa.JSON(), nullable=True),
    sa.Column('sticky_header', sa.String(length=255), nullable=True),
    sa.Column('public', sa.Boolean(), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('forced', sa.Boolean(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('actor', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['endpoint_id'], ['endpoints.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('endpoint_id', 'revision', name='uq_endpoint_revisions')
    )
    with op.batch_alter_table('endpoint_revisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_endpoint_revisions_owner'), ['owner'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('endpoint_revisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_endpoint_revisions_owner'))

    op.drop_table('endpoint_revisions')
    with op.batch_alter_table('endpoints', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_endpoints_owner'))

    op.drop_table('endpoints')
