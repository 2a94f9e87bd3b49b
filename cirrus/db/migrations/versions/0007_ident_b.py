"""identity: the service catalog in the database, application credentials

Revision ID: 0007_ident_b
Revises: 0006_identity_groups
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0007_ident_b"
down_revision = "0006_identity_groups"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def _timestamps() -> list[sa.Column]:
    return [sa.Column("created_at", Timestamp, nullable=False),
            sa.Column("updated_at", Timestamp, nullable=True)]


def upgrade() -> None:
    op.create_table(
        "catalog_regions",
        sa.Column("id", sa.String(255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("parent_region_id", sa.String(255), nullable=True),
        sa.Column("extra", sa.JSON(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_regions")),
    )
    op.create_table(
        "catalog_services",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("type", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("extra", sa.JSON(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_services")),
    )
    op.create_index(op.f("ix_catalog_services_type"), "catalog_services", ["type"])
    op.create_table(
        "catalog_endpoints",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("service_id", sa.String(64), nullable=False),
        sa.Column("interface", sa.String(8), nullable=False),
        sa.Column("region_id", sa.String(255), nullable=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("extra", sa.JSON(), nullable=False),
        *_timestamps(),
        sa.ForeignKeyConstraint(["service_id"], ["catalog_services.id"], ondelete="CASCADE",
                                name=op.f("fk_catalog_endpoints_service_id_catalog_services")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_endpoints")),
    )
    op.create_index(op.f("ix_catalog_endpoints_service_id"), "catalog_endpoints",
                    ["service_id"])
    op.create_table(
        "application_credentials",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("secret_hash", sa.String(255), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("unrestricted", sa.Boolean(), nullable=False),
        sa.Column("expires_at", Timestamp, nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_application_credentials")),
        sa.UniqueConstraint("user_id", "name", name="uq_application_credentials_user_name"),
    )


def downgrade() -> None:
    op.drop_table("application_credentials")
    op.drop_index(op.f("ix_catalog_endpoints_service_id"), table_name="catalog_endpoints")
    op.drop_table("catalog_endpoints")
    op.drop_index(op.f("ix_catalog_services_type"), table_name="catalog_services")
    op.drop_table("catalog_services")
    op.drop_table("catalog_regions")
