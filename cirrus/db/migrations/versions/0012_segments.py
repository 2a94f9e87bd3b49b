"""segment_allocations and compute_nodes.overlay_ip: network types and VXLAN peers (issue 14)

Revision ID: 0012_segments
Revises: 0011_endpoint_groups
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0012_segments"
down_revision = "0011_endpoint_groups"
branch_labels = None
depends_on = None

_TIMESTAMP = (sa.DateTime()
              .with_variant(mysql.DATETIME(fsp=6), "mariadb")
              .with_variant(mysql.DATETIME(fsp=6), "mysql"))


def upgrade() -> None:
    op.create_table(
        "segment_allocations",
        sa.Column("network_type", sa.String(length=32), nullable=False),
        sa.Column("physical_network", sa.String(length=64), nullable=False),
        sa.Column("segmentation_id", sa.Integer(), nullable=False),
        sa.Column("network_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(["network_id"], ["networks.id"],
                                name=op.f("fk_segment_allocations_network_id_networks"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("network_type", "physical_network", "segmentation_id",
                                name=op.f("pk_segment_allocations")),
        sa.UniqueConstraint("network_id", name=op.f("uq_segment_allocations_network_id")),
    )
    with op.batch_alter_table("compute_nodes") as batch:
        batch.add_column(sa.Column("overlay_ip", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("compute_nodes") as batch:
        batch.drop_column("overlay_ip")
    op.drop_table("segment_allocations")
