"""metadefs: Glance metadata definitions (namespaces, objects, properties, tags, resource
type associations) and image tasks

Revision ID: 0008_metadefs
Revises: 0007_ident_b
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0008_metadefs"
down_revision = "0007_ident_b"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "image_tasks",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("type", sa.String(length=30), nullable=False),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("input", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column(
            "expires_at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=True,
        ),
        sa.Column(
            "created_at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=True,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_image_tasks")),
    )
    with op.batch_alter_table("image_tasks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_image_tasks_owner"), ["owner"], unique=False)

    op.create_table(
        "metadef_namespaces",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("namespace", sa.String(length=80), nullable=False),
        sa.Column("display_name", sa.String(length=80), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("visibility", sa.String(length=32), nullable=False),
        sa.Column("protected", sa.Boolean(), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=True,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metadef_namespaces")),
        sa.UniqueConstraint("namespace", name=op.f("uq_metadef_namespaces_namespace")),
    )
    with op.batch_alter_table("metadef_namespaces", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_metadef_namespaces_owner"), ["owner"], unique=False)

    op.create_table(
        "metadef_namespace_resource_types",
        sa.Column("namespace_id", sa.String(length=36), nullable=False),
        sa.Column("resource_type", sa.String(length=80), nullable=False),
        sa.Column("prefix", sa.String(length=80), nullable=True),
        sa.Column("properties_target", sa.String(length=80), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["namespace_id"],
            ["metadef_namespaces.id"],
            name=op.f("fk_metadef_namespace_resource_types_namespace_id_metadef_namespaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "namespace_id", "resource_type", name=op.f("pk_metadef_namespace_resource_types")
        ),
    )
    op.create_table(
        "metadef_objects",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("namespace_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("required", sa.JSON(), nullable=False),
        sa.Column("properties", sa.JSON(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["namespace_id"],
            ["metadef_namespaces.id"],
            name=op.f("fk_metadef_objects_namespace_id_metadef_namespaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metadef_objects")),
        sa.UniqueConstraint("namespace_id", "name", name=op.f("uq_metadef_objects_namespace_id")),
    )
    with op.batch_alter_table("metadef_objects", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_metadef_objects_namespace_id"), ["namespace_id"], unique=False
        )

    op.create_table(
        "metadef_properties",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("namespace_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("json_schema", sa.JSON(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["namespace_id"],
            ["metadef_namespaces.id"],
            name=op.f("fk_metadef_properties_namespace_id_metadef_namespaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metadef_properties")),
        sa.UniqueConstraint(
            "namespace_id", "name", name=op.f("uq_metadef_properties_namespace_id")
        ),
    )
    with op.batch_alter_table("metadef_properties", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_metadef_properties_namespace_id"), ["namespace_id"], unique=False
        )

    op.create_table(
        "metadef_tags",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("namespace_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["namespace_id"],
            ["metadef_namespaces.id"],
            name=op.f("fk_metadef_tags_namespace_id_metadef_namespaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metadef_tags")),
        sa.UniqueConstraint("namespace_id", "name", name=op.f("uq_metadef_tags_namespace_id")),
    )
    with op.batch_alter_table("metadef_tags", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_metadef_tags_namespace_id"), ["namespace_id"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("metadef_tags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_metadef_tags_namespace_id"))

    op.drop_table("metadef_tags")
    with op.batch_alter_table("metadef_properties", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_metadef_properties_namespace_id"))

    op.drop_table("metadef_properties")
    with op.batch_alter_table("metadef_objects", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_metadef_objects_namespace_id"))

    op.drop_table("metadef_objects")
    op.drop_table("metadef_namespace_resource_types")
    with op.batch_alter_table("metadef_namespaces", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_metadef_namespaces_owner"))

    op.drop_table("metadef_namespaces")
    with op.batch_alter_table("image_tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_image_tasks_owner"))

    op.drop_table("image_tasks")
