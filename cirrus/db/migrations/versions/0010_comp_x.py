"""user_quota_limits: Nova's per-user compute quotas

Revision ID: 0010_comp_x
Revises: 0009_ks_x
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_comp_x"
down_revision = "0009_ks_x"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_quota_limits",
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("resource", sa.String(length=64), nullable=False),
        sa.Column("hard_limit", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "user_id", "resource",
                                name=op.f("pk_user_quota_limits")),
    )


def downgrade() -> None:
    op.drop_table("user_quota_limits")
