"""names and passive dns

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 11:46:28.386160
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('dns',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('uid', sa.String(length=32), nullable=False),
    sa.Column('time', sa.Float(precision=53), nullable=False),
    sa.Column('client', sa.String(length=45), nullable=False),
    sa.Column('resolver', sa.String(length=45), nullable=False),
    sa.Column('query', sa.String(length=255), nullable=False),
    sa.Column('qtype', sa.String(length=16), nullable=False),
    sa.Column('rcode', sa.String(length=16), nullable=False),
    sa.Column('answers', sa.Text(), nullable=False),
    sa.Column('ttl', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('uid')
    )
    with op.batch_alter_table('dns', schema=None) as batch_op:
        batch_op.create_index('ix_dns_query', ['query'], unique=False)
        batch_op.create_index('ix_dns_time', ['time'], unique=False)

    op.create_table('dns_addresses',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('dns_uid', sa.String(length=32), nullable=False),
    sa.Column('address', sa.String(length=45), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('dns_addresses', schema=None) as batch_op:
        batch_op.create_index('ix_dns_addresses_address', ['address'], unique=False)
        batch_op.create_index('ix_dns_addresses_dns_uid_address', ['dns_uid', 'address'], unique=True)

    with op.batch_alter_table('flows', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dns_name', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('ja4', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('alpn', sa.String(length=255), nullable=True))
        batch_op.create_index('ix_flows_server_name', ['server_name'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('flows', schema=None) as batch_op:
        batch_op.drop_index('ix_flows_server_name')
        batch_op.drop_column('alpn')
        batch_op.drop_column('ja4')
        batch_op.drop_column('dns_name')

    with op.batch_alter_table('dns_addresses', schema=None) as batch_op:
        batch_op.drop_index('ix_dns_addresses_dns_uid_address')
        batch_op.drop_index('ix_dns_addresses_address')

    op.drop_table('dns_addresses')
    with op.batch_alter_table('dns', schema=None) as batch_op:
        batch_op.drop_index('ix_dns_time')
        batch_op.drop_index('ix_dns_query')

    op.drop_table('dns')
