"""outbox

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 15:10:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('alert_uid', sa.String(length=32), nullable=False),
    sa.Column('webhook', sa.Integer(), nullable=False),
    sa.Column('created', sa.Float(precision=53), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt', sa.Float(precision=53), nullable=False),
    sa.Column('delivered', sa.Float(precision=53), nullable=True),
    sa.Column('last_error', sa.String(length=255), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_alert_uid_webhook', ['alert_uid', 'webhook'], unique=True)
        batch_op.create_index('ix_outbox_pending', ['delivered', 'next_attempt'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_pending')
        batch_op.drop_index('ix_outbox_alert_uid_webhook')
    op.drop_table('outbox')
