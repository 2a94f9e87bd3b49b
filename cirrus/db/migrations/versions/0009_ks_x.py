"""credentials, oauth_consumers, policies, domain_config_options: the rest of Keystone v3

Revision ID: 0009_ks_x
Revises: 0008_metadefs
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0009_ks_x"
down_revision = "0008_metadefs"
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
        "credentials",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=True),
        sa.Column("type", sa.String(length=255), nullable=False),
        sa.Column("sealed_blob", sa.Text(), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("extra", sa.JSON(), nullable=False),
        *_timestamps(),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_credentials_user_id_users"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"],
                                name=op.f("fk_credentials_project_id_projects"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credentials")),
    )
    with op.batch_alter_table("credentials", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_credentials_user_id"), ["user_id"], unique=False)
    op.create_table(
        "oauth_consumers",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("secret_hash", sa.String(length=255), nullable=False),
        sa.Column("extra", sa.JSON(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_consumers")),
    )
    op.create_table(
        "policies",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=255), nullable=False),
        sa.Column("blob", sa.Text(), nullable=False),
        sa.Column("extra", sa.JSON(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policies")),
    )
    op.create_table(
        "domain_config_options",
        sa.Column("domain_id", sa.String(length=64), nullable=False),
        sa.Column("group_name", sa.String(length=64), nullable=False),
        sa.Column("option_name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("sensitive", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["domain_id"], ["domains.id"],
                                name=op.f("fk_domain_config_options_domain_id_domains"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("domain_id", "group_name", "option_name",
                                name=op.f("pk_domain_config_options")),
    )


def downgrade() -> None:
    op.drop_table("domain_config_options")
    op.drop_table("policies")
    op.drop_table("oauth_consumers")
    with op.batch_alter_table("credentials", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_credentials_user_id"))
    op.drop_table("credentials")
