"""hourly rollups, containers, daemon status, alert container

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 18:00:00
"""

import json

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('flow_hours',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('hour', sa.Float(precision=53), nullable=False),
    sa.Column('direction', sa.String(length=8), nullable=False),
    sa.Column('server_name', sa.String(length=255), nullable=False),
    sa.Column('dst_ip', sa.String(length=45), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=False),
    sa.Column('asn', sa.BigInteger(), nullable=False),
    sa.Column('as_org', sa.String(length=255), nullable=False),
    sa.Column('container', sa.String(length=255), nullable=False),
    sa.Column('process', sa.String(length=64), nullable=False),
    sa.Column('flows', sa.BigInteger(), nullable=False),
    sa.Column('packets_out', sa.BigInteger(), nullable=False),
    sa.Column('bytes_out', sa.BigInteger(), nullable=False),
    sa.Column('packets_in', sa.BigInteger(), nullable=False),
    sa.Column('bytes_in', sa.BigInteger(), nullable=False),
    sa.Column('first_seen', sa.Float(precision=53), nullable=False),
    sa.Column('last_seen', sa.Float(precision=53), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('flow_hours', schema=None) as batch_op:
        batch_op.create_index('ix_flow_hours_key', ['hour', 'direction', 'server_name', 'dst_ip', 'country', 'asn', 'container', 'process'], unique=True)
    # The flows already stored, rolled up the way the writer will from now on.
    op.execute(
        "INSERT INTO flow_hours (hour, direction, server_name, dst_ip, country, asn, as_org,"
        " container, process, flows, packets_out, bytes_out, packets_in, bytes_in, first_seen,"
        " last_seen) SELECT h, direction, sn, ip, c, a, MAX(o), ct, p, COUNT(*), SUM(packets_out),"
        " SUM(bytes_out), SUM(packets_in), SUM(bytes_in), MIN(first_seen), MAX(last_seen) FROM ("
        "SELECT CAST(FLOOR(last_seen / 3600) AS BIGINT) * 3600 AS h, direction,"
        " COALESCE(server_name, '') AS sn,"
        " CASE WHEN server_name IS NULL THEN dst_ip ELSE '' END AS ip,"
        " COALESCE(country, '') AS c, COALESCE(asn, 0) AS a, COALESCE(as_org, '') AS o,"
        " COALESCE(container_name, container_id, '') AS ct, COALESCE(process, '') AS p,"
        " packets_out, bytes_out, packets_in, bytes_in, first_seen, last_seen FROM flows) AS f"
        " GROUP BY h, direction, sn, ip, c, a, ct, p"
    )
    op.create_table('containers',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('container_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('image', sa.String(length=255), nullable=False),
    sa.Column('first_seen', sa.Float(precision=53), nullable=False),
    sa.Column('last_seen', sa.Float(precision=53), nullable=False),
    sa.Column('network_mode', sa.String(length=255), nullable=False),
    sa.Column('privileged', sa.Boolean(), nullable=False),
    sa.Column('host_pid', sa.Boolean(), nullable=False),
    sa.Column('docker_socket', sa.Boolean(), nullable=False),
    sa.Column('cap_add', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('container_id')
    )
    op.create_table('daemon_status',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('updated', sa.Float(precision=53), nullable=False),
    sa.Column('status', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('host')
    )
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('container', sa.String(length=255), nullable=True))
        batch_op.create_index('ix_alerts_last_time', ['last_time'], unique=False)
    # Alerts already stored: their container, from the flow each one carries.
    conn = op.get_bind()
    alerts = sa.table('alerts', sa.column('id'), sa.column('flow'), sa.column('container'))
    for row_id, flow in conn.execute(sa.select(alerts.c.id, alerts.c.flow)).all():
        fields = json.loads(flow or "{}")
        container = fields.get("container_name") or fields.get("container_id")
        if container:
            conn.execute(alerts.update().where(alerts.c.id == row_id).values(container=container))


def downgrade() -> None:
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index('ix_alerts_last_time')
        batch_op.drop_column('container')
    op.drop_table('daemon_status')
    op.drop_table('containers')
    with op.batch_alter_table('flow_hours', schema=None) as batch_op:
        batch_op.drop_index('ix_flow_hours_key')
    op.drop_table('flow_hours')
