"""image_members: the projects a shared image is shared with, and their answer

Revision ID: 0003_image
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0003_image"
down_revision = "0002"
branch_labels = None
depends_on = None

_TIMESTAMP = (sa.DateTime()
              .with_variant(mysql.DATETIME(fsp=6), "mariadb")
              .with_variant(mysql.DATETIME(fsp=6), "mysql"))


def upgrade() -> None:
    op.create_table(
        "image_members",
        sa.Column("image_id", sa.String(length=36), nullable=False),
        sa.Column("member_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.Column("updated_at", _TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["image_id"], ["images.id"], name=op.f("fk_image_members_image_id_images"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("image_id", "member_id", name=op.f("pk_image_members")),
    )
    with op.batch_alter_table("image_members", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_image_members_member_id"), ["member_id"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("image_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_image_members_member_id"))
    op.drop_table("image_members")
