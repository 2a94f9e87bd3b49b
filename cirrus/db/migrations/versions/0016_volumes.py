"""volumes, volume types (+ access), QoS specs, snapshots, attachments: Cinder v3 (issue 15)

Revision ID: 0016_volumes
Revises: 0015_subnetpools
"""

import datetime as dt

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0016_volumes"
down_revision = "0015_subnetpools"
branch_labels = None
depends_on = None

_TIMESTAMP = (sa.DateTime()
              .with_variant(mysql.DATETIME(fsp=6), "mariadb")
              .with_variant(mysql.DATETIME(fsp=6), "mysql"))

# Cinder's default volume type (cirrus.storage.volumes.types.DEFAULT_TYPE_*).
DEFAULT_TYPE_ID = "6e3b8a4e-64b3-4b2e-9a5c-0c1d2e3f4a5b"
DEFAULT_TYPE_NAME = "__DEFAULT__"


def _timestamps() -> list[sa.Column]:
    return [sa.Column("created_at", _TIMESTAMP, nullable=False),
            sa.Column("updated_at", _TIMESTAMP, nullable=True)]


def upgrade() -> None:
    op.create_table(
        "volume_qos_specs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("consumer", sa.String(length=16), nullable=False),
        sa.Column("specs", sa.JSON(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_volume_qos_specs")),
        sa.UniqueConstraint("name", name=op.f("uq_volume_qos_specs_name")),
    )
    types = op.create_table(
        "volume_types",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=True),
        sa.Column("is_public", sa.Boolean(), nullable=False),
        sa.Column("extra_specs", sa.JSON(), nullable=False),
        sa.Column("qos_specs_id", sa.String(length=36), nullable=True),
        *_timestamps(),
        sa.ForeignKeyConstraint(["qos_specs_id"], ["volume_qos_specs.id"],
                                name=op.f("fk_volume_types_qos_specs_id_volume_qos_specs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_volume_types")),
        sa.UniqueConstraint("name", name=op.f("uq_volume_types_name")),
    )
    op.create_index(op.f("ix_volume_types_qos_specs_id"), "volume_types", ["qos_specs_id"])
    op.create_table(
        "volume_type_projects",
        sa.Column("volume_type_id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["volume_type_id"], ["volume_types.id"], ondelete="CASCADE",
                                name=op.f("fk_volume_type_projects_volume_type_id_volume_types")),
        sa.PrimaryKeyConstraint("volume_type_id", "project_id",
                                name=op.f("pk_volume_type_projects")),
    )
    op.create_table(
        "volumes",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("description", sa.String(length=255), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("attach_status", sa.String(length=32), nullable=False),
        sa.Column("availability_zone", sa.String(length=255), nullable=False),
        sa.Column("volume_type_id", sa.String(length=36), nullable=False),
        sa.Column("backend", sa.String(length=255), nullable=True),
        sa.Column("source_volid", sa.String(length=36), nullable=True),
        sa.Column("snapshot_id", sa.String(length=36), nullable=True),
        sa.Column("image_id", sa.String(length=36), nullable=True),
        sa.Column("bootable", sa.Boolean(), nullable=False),
        sa.Column("multiattach", sa.Boolean(), nullable=False),
        sa.Column("readonly", sa.Boolean(), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("image_metadata", sa.JSON(), nullable=False),
        sa.Column("status_changed_at", _TIMESTAMP, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("deleted_at", _TIMESTAMP, nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_volumes")),
    )
    op.create_index("ix_volumes_project_deleted", "volumes", ["project_id", "deleted"])
    op.create_index("ix_volumes_status", "volumes", ["status"])
    op.create_index(op.f("ix_volumes_volume_type_id"), "volumes", ["volume_type_id"])
    op.create_table(
        "volume_snapshots",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("volume_id", sa.String(length=36), nullable=False),
        sa.Column("volume_type_id", sa.String(length=36), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("description", sa.String(length=255), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("progress", sa.String(length=16), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("status_changed_at", _TIMESTAMP, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("deleted_at", _TIMESTAMP, nullable=True),
        *_timestamps(),
        sa.ForeignKeyConstraint(["volume_id"], ["volumes.id"],
                                name=op.f("fk_volume_snapshots_volume_id_volumes")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_volume_snapshots")),
    )
    op.create_index("ix_volume_snapshots_project_deleted", "volume_snapshots",
                    ["project_id", "deleted"])
    op.create_index(op.f("ix_volume_snapshots_volume_id"), "volume_snapshots", ["volume_id"])
    op.create_table(
        "volume_attachments",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("volume_id", sa.String(length=36), nullable=False),
        sa.Column("instance_uuid", sa.String(length=36), nullable=True),
        sa.Column("attached_host", sa.String(length=255), nullable=True),
        sa.Column("mountpoint", sa.String(length=255), nullable=True),
        sa.Column("attach_status", sa.String(length=32), nullable=False),
        sa.Column("attach_mode", sa.String(length=8), nullable=False),
        sa.Column("connector", sa.JSON(), nullable=False),
        sa.Column("connection_info", sa.JSON(), nullable=False),
        sa.Column("attach_time", _TIMESTAMP, nullable=True),
        sa.Column("detach_time", _TIMESTAMP, nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        *_timestamps(),
        sa.ForeignKeyConstraint(["volume_id"], ["volumes.id"],
                                name=op.f("fk_volume_attachments_volume_id_volumes")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_volume_attachments")),
    )
    op.create_index(op.f("ix_volume_attachments_volume_id"), "volume_attachments",
                    ["volume_id"])
    op.create_index(op.f("ix_volume_attachments_instance_uuid"), "volume_attachments",
                    ["instance_uuid"])
    op.bulk_insert(types, [{
        "id": DEFAULT_TYPE_ID, "name": DEFAULT_TYPE_NAME, "description": "Default Volume Type",
        "is_public": True, "extra_specs": {}, "qos_specs_id": None,
        "created_at": dt.datetime.now(dt.UTC).replace(tzinfo=None), "updated_at": None}])


def downgrade() -> None:
    op.drop_table("volume_attachments")
    op.drop_table("volume_snapshots")
    op.drop_table("volumes")
    op.drop_table("volume_type_projects")
    op.drop_table("volume_types")
    op.drop_table("volume_qos_specs")
