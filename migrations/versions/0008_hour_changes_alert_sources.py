"""flow hour changes (the API caches totals of closed hours); a covering address index;
the source and destination of alerts raised by no single flow

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 19:30:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('flow_hour_changes',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('hour', sa.Float(precision=53), nullable=False),
    sa.Column('changes', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('hour')
    )
    # Every hour already totalled counts as written once.
    op.execute(
        "INSERT INTO flow_hour_changes (hour, changes) SELECT DISTINCT hour, 1 FROM flow_hours"
    )
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('destination', sa.String(length=255), nullable=True))
    with op.batch_alter_table('flows', schema=None) as batch_op:
        batch_op.drop_index('ix_flows_dst_addr')
        batch_op.create_index(
            'ix_flows_dst_addr_last_seen', ['dst_addr', 'last_seen', 'uid', 'dst_ip'], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_column('destination')
        batch_op.drop_column('source')
    with op.batch_alter_table('flows', schema=None) as batch_op:
        batch_op.drop_index('ix_flows_dst_addr_last_seen')
        batch_op.create_index('ix_flows_dst_addr', ['dst_addr'], unique=False)
    op.drop_table('flow_hour_changes')
