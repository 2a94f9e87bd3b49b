"""endpoint_groups, project_endpoint_groups, project_endpoints: Keystone's OS-EP-FILTER

Revision ID: 0011_endpoint_groups
Revises: 0010_comp_x
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_endpoint_groups"
down_revision = "0010_comp_x"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "endpoint_groups",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("filters", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_endpoint_groups")),
    )
    op.create_table(
        "project_endpoint_groups",
        sa.Column("endpoint_group_id", sa.String(length=64), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["endpoint_group_id"], ["endpoint_groups.id"],
            name=op.f("fk_project_endpoint_groups_endpoint_group_id_endpoint_groups"),
            ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"],
                                name=op.f("fk_project_endpoint_groups_project_id_projects"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("endpoint_group_id", "project_id",
                                name=op.f("pk_project_endpoint_groups")),
    )
    with op.batch_alter_table("project_endpoint_groups", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_project_endpoint_groups_project_id"),
                              ["project_id"], unique=False)
    op.create_table(
        "project_endpoints",
        sa.Column("endpoint_id", sa.String(length=64), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["endpoint_id"], ["catalog_endpoints.id"],
                                name=op.f("fk_project_endpoints_endpoint_id_catalog_endpoints"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"],
                                name=op.f("fk_project_endpoints_project_id_projects"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("endpoint_id", "project_id", name=op.f("pk_project_endpoints")),
    )
    with op.batch_alter_table("project_endpoints", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_project_endpoints_project_id"), ["project_id"],
                              unique=False)


def downgrade() -> None:
    op.drop_table("project_endpoints")
    op.drop_table("project_endpoint_groups")
    op.drop_table("endpoint_groups")
