"""routers and floatingips: Neutron's L3 API (issue 14)

Revision ID: 0013_routers
Revises: 0012_segments
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0013_routers"
down_revision = "0012_segments"
branch_labels = None
depends_on = None

_TIMESTAMP = (sa.DateTime()
              .with_variant(mysql.DATETIME(fsp=6), "mariadb")
              .with_variant(mysql.DATETIME(fsp=6), "mysql"))


def _timestamps() -> list[sa.Column]:
    return [sa.Column("created_at", _TIMESTAMP, nullable=False),
            sa.Column("updated_at", _TIMESTAMP, nullable=True)]


def upgrade() -> None:
    op.create_table(
        "routers",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("admin_state_up", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("gw_port_id", sa.String(length=36), nullable=True),
        sa.Column("gw_network_id", sa.String(length=36), nullable=True),
        sa.Column("enable_snat", sa.Boolean(), nullable=False),
        sa.Column("routes", sa.JSON(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("revision_number", sa.Integer(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routers")),
    )
    with op.batch_alter_table("routers") as batch:
        batch.create_index("ix_routers_project_id", ["project_id"], unique=False)
        batch.create_index(batch.f("ix_routers_gw_network_id"), ["gw_network_id"],
                           unique=False)
    op.create_table(
        "floatingips",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("floating_network_id", sa.String(length=36), nullable=False),
        sa.Column("floating_port_id", sa.String(length=36), nullable=False),
        sa.Column("floating_subnet_id", sa.String(length=36), nullable=False),
        sa.Column("floating_ip_address", sa.String(length=64), nullable=False),
        sa.Column("fixed_port_id", sa.String(length=36), nullable=True),
        sa.Column("fixed_ip_address", sa.String(length=64), nullable=True),
        sa.Column("router_id", sa.String(length=36), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("revision_number", sa.Integer(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_floatingips")),
        sa.UniqueConstraint("fixed_port_id", "fixed_ip_address",
                            name="uq_floatingips_fixed_port_id_fixed_ip_address"),
    )
    with op.batch_alter_table("floatingips") as batch:
        batch.create_index("ix_floatingips_project_id", ["project_id"], unique=False)
        batch.create_index(batch.f("ix_floatingips_floating_network_id"),
                           ["floating_network_id"], unique=False)
        batch.create_index(batch.f("ix_floatingips_fixed_port_id"), ["fixed_port_id"],
                           unique=False)
        batch.create_index(batch.f("ix_floatingips_router_id"), ["router_id"], unique=False)


def downgrade() -> None:
    op.drop_table("floatingips")
    op.drop_table("routers")
