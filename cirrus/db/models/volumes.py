"""Block storage (Cinder v3, issue 15): volumes, volume types and their access, QoS specs,
snapshots and attachments. Quotas are QuotaLimit rows (resources `volumes`, `gigabytes`,
`snapshots` and their `_<type name>` variants), as compute's and networking's are."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cirrus.db.models.base import Base, Timestamp, TimestampMixin


class QosSpec(TimestampMixin, Base):
    """Named QoS limits (read/write IOPS and bytes per second), applied at attach."""

    __tablename__ = "volume_qos_specs"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    consumer: Mapped[str] = mapped_column(String(16), default="back-end")
    specs: Mapped[dict] = mapped_column(JSON, default=dict)


class VolumeType(TimestampMixin, Base):
    __tablename__ = "volume_types"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str | None] = mapped_column(String(255))
    is_public: Mapped[bool] = mapped_column(Boolean, default=True)
    extra_specs: Mapped[dict] = mapped_column(JSON, default=dict)
    qos_specs_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("volume_qos_specs.id"), index=True)


class VolumeTypeProject(Base):
    """A private type's access list (os-volume-type-access)."""

    __tablename__ = "volume_type_projects"
    volume_type_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("volume_types.id", ondelete="CASCADE"), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64), primary_key=True)


class Volume(TimestampMixin, Base):
    __tablename__ = "volumes"
    __table_args__ = (
        Index("ix_volumes_project_deleted", "project_id", "deleted"),
        Index("ix_volumes_status", "status"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(32))
    attach_status: Mapped[str] = mapped_column(String(32), default="detached")
    availability_zone: Mapped[str] = mapped_column(String(255))
    # No foreign key: a deleted volume keeps the id of a type that may be deleted since.
    volume_type_id: Mapped[str] = mapped_column(String(36), index=True)
    backend: Mapped[str | None] = mapped_column(String(255))
    source_volid: Mapped[str | None] = mapped_column(String(36))
    snapshot_id: Mapped[str | None] = mapped_column(String(36))
    image_id: Mapped[str | None] = mapped_column(String(36))
    bootable: Mapped[bool] = mapped_column(Boolean, default=False)
    multiattach: Mapped[bool] = mapped_column(Boolean, default=False)
    readonly: Mapped[bool | None] = mapped_column(Boolean)  # None: never set
    metadata_items: Mapped[dict] = mapped_column("metadata", JSON, default=dict)
    image_metadata: Mapped[dict] = mapped_column(JSON, default=dict)
    # When the status last changed: the sweeper ends transitional states past their timeout.
    status_changed_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    error: Mapped[str | None] = mapped_column(Text)  # why the last operation failed (admins)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)


class VolumeSnapshot(TimestampMixin, Base):
    __tablename__ = "volume_snapshots"
    __table_args__ = (Index("ix_volume_snapshots_project_deleted", "project_id", "deleted"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(64))
    volume_id: Mapped[str] = mapped_column(String(36), ForeignKey("volumes.id"), index=True)
    volume_type_id: Mapped[str | None] = mapped_column(String(36))
    name: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(32))
    progress: Mapped[str] = mapped_column(String(16), default="0%")
    metadata_items: Mapped[dict] = mapped_column("metadata", JSON, default=dict)
    status_changed_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    error: Mapped[str | None] = mapped_column(Text)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)


class VolumeAttachment(TimestampMixin, Base):
    """A volume attached (or being attached) to a server: the attachments API (3.27+) and
    os-attach write these (the step after issue 15's API)."""

    __tablename__ = "volume_attachments"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    volume_id: Mapped[str] = mapped_column(String(36), ForeignKey("volumes.id"), index=True)
    instance_uuid: Mapped[str | None] = mapped_column(String(36), index=True)
    attached_host: Mapped[str | None] = mapped_column(String(255))
    mountpoint: Mapped[str | None] = mapped_column(String(255))
    attach_status: Mapped[str] = mapped_column(String(32), default="reserved")
    attach_mode: Mapped[str] = mapped_column(String(8), default="rw")
    connector: Mapped[dict] = mapped_column(JSON, default=dict)
    connection_info: Mapped[dict] = mapped_column(JSON, default=dict)
    attach_time: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    detach_time: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
