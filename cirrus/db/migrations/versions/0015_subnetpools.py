"""subnetpools and subnets.subnetpool_id: Neutron subnet pools (subnet_allocation)

Revision ID: 0015_subnetpools
Revises: 0014_port_security
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0015_subnetpools"
down_revision = "0014_port_security"
branch_labels = None
depends_on = None

_TIMESTAMP = (sa.DateTime()
              .with_variant(mysql.DATETIME(fsp=6), "mariadb")
              .with_variant(mysql.DATETIME(fsp=6), "mysql"))


def upgrade() -> None:
    op.create_table(
        "subnetpools",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("ip_version", sa.Integer(), nullable=False),
        sa.Column("prefixes", sa.JSON(), nullable=False),
        sa.Column("default_prefixlen", sa.Integer(), nullable=False),
        sa.Column("min_prefixlen", sa.Integer(), nullable=False),
        sa.Column("max_prefixlen", sa.Integer(), nullable=False),
        sa.Column("default_quota", sa.Integer(), nullable=True),
        sa.Column("shared", sa.Boolean(), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("revision_number", sa.Integer(), nullable=False),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.Column("updated_at", _TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subnetpools")),
    )
    op.create_index(op.f("ix_subnetpools_project_id"), "subnetpools", ["project_id"])
    with op.batch_alter_table("subnets") as batch:
        batch.add_column(sa.Column("subnetpool_id", sa.String(length=36), nullable=True))
        batch.create_index(batch.f("ix_subnets_subnetpool_id"), ["subnetpool_id"])
        batch.create_foreign_key(batch.f("fk_subnets_subnetpool_id_subnetpools"),
                                 "subnetpools", ["subnetpool_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("subnets") as batch:
        batch.drop_constraint(batch.f("fk_subnets_subnetpool_id_subnetpools"),
                              type_="foreignkey")
        batch.drop_index(batch.f("ix_subnets_subnetpool_id"))
        batch.drop_column("subnetpool_id")
    op.drop_index(op.f("ix_subnetpools_project_id"), table_name="subnetpools")
    op.drop_table("subnetpools")
