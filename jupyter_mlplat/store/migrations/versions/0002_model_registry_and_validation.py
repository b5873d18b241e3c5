"""model registry and validation

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 04:12:46.572949
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('models',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner', sa.String(length=255), nullable=False),
    sa.Column('project', sa.String(length=255), nullable=True),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('owner', 'name', name='uq_models_owner_name')
    )
    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_models_owner'), ['owner'], unique=False)

    op.create_table('alias_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner', sa.String(length=255), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('alias', sa.String(length=255), nullable=False),
    sa.Column('version', sa.Integer(), nullable=True),
    sa.Column('previous', sa.Integer(), nullable=True),
    sa.Column('actor', sa.String(length=255), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('alias_events', schema=None) as batch_op:
        batch_op.create_index('ix_alias_events_model', ['model_id', 'alias'], unique=False)
        batch_op.create_index(batch_op.f('ix_alias_events_owner'), ['owner'], unique=False)

    op.create_table('validation_policies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner', sa.String(length=255), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('policy', sa.JSON(), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('actor', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('validation_policies', schema=None) as batch_op:
        batch_op.create_index('ix_validation_policies_model', ['model_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_validation_policies_owner'), ['owner'], unique=False)

    op.create_table('eval_sets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner', sa.String(length=255), nullable=False),
    sa.Column('run_id', sa.String(length=32), nullable=False),
    sa.Column('step_run_id', sa.Integer(), nullable=True),
    sa.Column('x', sa.JSON(), nullable=False),
    sa.Column('y', sa.JSON(), nullable=False),
    sa.Column('slices', sa.JSON(), nullable=True),
    sa.Column('slices_name', sa.String(length=255), nullable=True),
    sa.Column('model', sa.String(length=255), nullable=True),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ),
    sa.ForeignKeyConstraint(['step_run_id'], ['step_runs.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('eval_sets', schema=None) as batch_op:
        batch_op.create_index('ix_eval_sets_run', ['run_id'], unique=False)

    op.create_table('model_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner', sa.String(length=255), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('flavor', sa.String(length=32), nullable=False),
    sa.Column('artifact_id', sa.Integer(), nullable=False),
    sa.Column('signature', sa.JSON(), nullable=False),
    sa.Column('sample_input', sa.JSON(), nullable=True),
    sa.Column('sample_output', sa.JSON(), nullable=True),
    sa.Column('run_id', sa.String(length=32), nullable=True),
    sa.Column('step_run_id', sa.Integer(), nullable=True),
    sa.Column('step_name', sa.String(length=255), nullable=True),
    sa.Column('step_version', sa.String(length=64), nullable=True),
    sa.Column('notebook_path', sa.String(length=4096), nullable=True),
    sa.Column('cell_ids', sa.JSON(), nullable=False),
    sa.Column('input_artifacts', sa.JSON(), nullable=False),
    sa.Column('meta', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['artifact_id'], ['artifacts.id'], ),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], ),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ),
    sa.ForeignKeyConstraint(['step_run_id'], ['step_runs.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('model_id', 'version', name='uq_model_versions')
    )
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_model_versions_owner'), ['owner'], unique=False)
        batch_op.create_index(batch_op.f('ix_model_versions_run_id'), ['run_id'], unique=False)

    op.create_table('slice_metrics',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner', sa.String(length=255), nullable=False),
    sa.Column('run_id', sa.String(length=32), nullable=False),
    sa.Column('step_run_id', sa.Integer(), nullable=True),
    sa.Column('metric', sa.String(length=255), nullable=False),
    sa.Column('by', sa.String(length=255), nullable=False),
    sa.Column('slice', sa.String(length=1024), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ),
    sa.ForeignKeyConstraint(['step_run_id'], ['step_runs.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('slice_metrics', schema=None) as batch_op:
        batch_op.create_index('ix_slice_metrics_run', ['run_id'], unique=False)

    op.create_table('deploy_overrides',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner', sa.String(length=255), nullable=False),
    sa.Column('model_version_id', sa.Integer(), nullable=False),
    sa.Column('actor', sa.String(length=255), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_versions.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('deploy_overrides', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deploy_overrides_owner'), ['owner'], unique=False)

    op.create_table('validations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner', sa.String(length=255), nullable=False),
    sa.Column('model_version_id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.String(length=32), nullable=True),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('policy', sa.JSON(), nullable=False),
    sa.Column('report', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_versions.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('validations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_validations_owner'), ['owner'], unique=False)
        batch_op.create_index('ix_validations_version', ['model_version_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('validations', schema=None) as batch_op:
        batch_op.drop_index('ix_validations_version')
        batch_op.drop_index(batch_op.f('ix_validations_owner'))

    op.drop_table('validations')
    with op.batch_alter_table('deploy_overrides', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deploy_overrides_owner'))

    op.drop_table('deploy_overrides')
    with op.batch_alter_table('slice_metrics', schema=None) as batch_op:
        batch_op.drop_index('ix_slice_metrics_run')

    op.drop_table('slice_metrics')
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_model_versions_run_id'))
        batch_op.drop_index(batch_op.f('ix_model_versions_owner'))

    op.drop_table('model_versions')
    with op.batch_alter_table('eval_sets', schema=None) as batch_op:
        batch_op.drop_index('ix_eval_sets_run')

    op.drop_table('eval_sets')
    with op.batch_alter_table('validation_policies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_validation_policies_owner'))
        batch_op.drop_index('ix_validation_policies_model')

    op.drop_table('validation_policies')
    with op.batch_alter_table('alias_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alias_events_owner'))
        batch_op.drop_index('ix_alias_events_model')

    op.drop_table('alias_events')
    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_models_owner'))

    op.drop_table('models')
