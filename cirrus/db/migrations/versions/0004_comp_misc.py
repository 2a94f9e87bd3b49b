"""compute_nodes.booted_at (the hypervisor's uptime) and quota_class_limits (quota classes)

Revision ID: 0004_comp_misc
Revises: 0003_image
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0004_comp_misc"
down_revision = "0003_image"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("compute_nodes", schema=None) as batch_op:
        batch_op.add_column(sa.Column(
            "booted_at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=True))
    op.create_table(
        "quota_class_limits",
        sa.Column("class_name", sa.String(length=255), nullable=False),
        sa.Column("resource", sa.String(length=64), nullable=False),
        sa.Column("hard_limit", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("class_name", "resource"),
    )


def downgrade() -> None:
    op.drop_table("quota_class_limits")
    with op.batch_alter_table("compute_nodes", schema=None) as batch_op:
        batch_op.drop_column("booted_at")
