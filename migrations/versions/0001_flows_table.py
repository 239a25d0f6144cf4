"""flows table

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 09:42:50.849587
"""

from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('flows',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('uid', sa.String(length=32), nullable=False),
    sa.Column('first_seen', sa.Float(precision=53), nullable=False),
    sa.Column('last_seen', sa.Float(precision=53), nullable=False),
    sa.Column('interface', sa.String(length=64), nullable=False),
    sa.Column('direction', sa.String(length=8), nullable=False),
    sa.Column('ip_proto', sa.Integer(), nullable=False),
    sa.Column('protocol', sa.String(length=8), nullable=False),
    sa.Column('src_ip', sa.String(length=45), nullable=False),
    sa.Column('src_port', sa.Integer(), nullable=False),
    sa.Column('dst_ip', sa.String(length=45), nullable=False),
    sa.Column('dst_port', sa.Integer(), nullable=False),
    sa.Column('dst_addr', sa.LargeBinary(length=16), nullable=False),
    sa.Column('packets_out', sa.BigInteger(), nullable=False),
    sa.Column('bytes_out', sa.BigInteger(), nullable=False),
    sa.Column('packets_in', sa.BigInteger(), nullable=False),
    sa.Column('bytes_in', sa.BigInteger(), nullable=False),
    sa.Column('state', sa.String(length=8), nullable=False),
    sa.Column('history', sa.String(length=64), nullable=False),
    sa.Column('closed', sa.Boolean(), nullable=False),
    sa.Column('server_name', sa.String(length=255), nullable=True),
    sa.Column('name_source', sa.String(length=8), nullable=True),
    sa.Column('country', sa.String(length=2), nullable=True),
    sa.Column('city', sa.String(length=128), nullable=True),
    sa.Column('asn', sa.BigInteger(), nullable=True),
    sa.Column('as_org', sa.String(length=255), nullable=True),
    sa.Column('container_id', sa.String(length=64), nullable=True),
    sa.Column('container_name', sa.String(length=255), nullable=True),
    sa.Column('image', sa.String(length=255), nullable=True),
    sa.Column('pid', sa.Integer(), nullable=True),
    sa.Column('process', sa.String(length=64), nullable=True),
    sa.Column('exe', sa.Text(), nullable=True),
    sa.Column('cmdline', sa.Text(), nullable=True),
    sa.Column('user', sa.String(length=64), nullable=True),
    sa.Column('user_id', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('uid')
    )
    with op.batch_alter_table('flows', schema=None) as batch_op:
        batch_op.create_index('ix_flows_direction_last_seen', ['direction', 'last_seen'], unique=False)
        batch_op.create_index('ix_flows_dst_addr', ['dst_addr'], unique=False)
        batch_op.create_index('ix_flows_dst_port', ['dst_port'], unique=False)
        batch_op.create_index('ix_flows_first_seen', ['first_seen'], unique=False)
        batch_op.create_index('ix_flows_last_seen', ['last_seen'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('flows', schema=None) as batch_op:
        batch_op.drop_index('ix_flows_last_seen')
        batch_op.drop_index('ix_flows_first_seen')
        batch_op.drop_index('ix_flows_dst_port')
        batch_op.drop_index('ix_flows_dst_addr')
        batch_op.drop_index('ix_flows_direction_last_seen')

    op.drop_table('flows')
