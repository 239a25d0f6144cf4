"""alerts

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 15:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('alerts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('uid', sa.String(length=32), nullable=False),
    sa.Column('time', sa.Float(precision=53), nullable=False),
    sa.Column('last_time', sa.Float(precision=53), nullable=False),
    sa.Column('rule', sa.String(length=255), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('dedup_key', sa.String(length=1024), nullable=False),
    sa.Column('count', sa.BigInteger(), nullable=False),
    sa.Column('flow_uid', sa.String(length=32), nullable=False),
    sa.Column('flow', sa.Text(), nullable=False),
    sa.Column('acknowledged', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('uid')
    )
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.create_index('ix_alerts_dedup_key_last_time', ['dedup_key', 'last_time'], unique=False)
        batch_op.create_index('ix_alerts_time', ['time'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index('ix_alerts_time')
        batch_op.drop_index('ix_alerts_dedup_key_last_time')
    op.drop_table('alerts')
