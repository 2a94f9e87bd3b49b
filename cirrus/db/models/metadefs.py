"""Glance metadata definitions (metadefs) and image tasks."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cirrus.db.models.base import Base, Timestamp, TimestampMixin


class MetadefNamespace(TimestampMixin, Base):
    """A namespace of metadata definitions (public or private to its owner project)."""

    __tablename__ = "metadef_namespaces"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    namespace: Mapped[str] = mapped_column(String(80), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(80))
    description: Mapped[str | None] = mapped_column(Text)
    visibility: Mapped[str] = mapped_column(String(32), default="private")
    protected: Mapped[bool] = mapped_column(Boolean, default=False)
    owner: Mapped[str] = mapped_column(String(255), index=True)


def _namespace_id() -> Mapped[str]:
    return mapped_column(String(36), ForeignKey("metadef_namespaces.id", ondelete="CASCADE"),
                         index=True)


class MetadefObject(TimestampMixin, Base):
    __tablename__ = "metadef_objects"
    __table_args__ = (UniqueConstraint("namespace_id", "name"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    namespace_id: Mapped[str] = _namespace_id()
    name: Mapped[str] = mapped_column(String(80))
    description: Mapped[str | None] = mapped_column(Text)
    required: Mapped[list] = mapped_column(JSON, default=list)
    properties: Mapped[dict] = mapped_column(JSON, default=dict)


class MetadefProperty(TimestampMixin, Base):
    """A property definition: its name and the JSON schema (title, type, enum...) of it."""

    __tablename__ = "metadef_properties"
    __table_args__ = (UniqueConstraint("namespace_id", "name"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    namespace_id: Mapped[str] = _namespace_id()
    name: Mapped[str] = mapped_column(String(255))
    json_schema: Mapped[dict] = mapped_column(JSON, default=dict)


class MetadefTag(TimestampMixin, Base):
    __tablename__ = "metadef_tags"
    __table_args__ = (UniqueConstraint("namespace_id", "name"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    namespace_id: Mapped[str] = _namespace_id()
    name: Mapped[str] = mapped_column(String(255))


class MetadefResourceTypeAssociation(TimestampMixin, Base):
    """A namespace applied to a resource type (OS::Glance::Image, OS::Nova::Flavor...)."""

    __tablename__ = "metadef_namespace_resource_types"
    namespace_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("metadef_namespaces.id", ondelete="CASCADE"), primary_key=True)
    resource_type: Mapped[str] = mapped_column(String(80), primary_key=True)
    prefix: Mapped[str | None] = mapped_column(String(80))
    properties_target: Mapped[str | None] = mapped_column(String(80))


class ImageTask(TimestampMixin, Base):
    """A Glance task (type `import`), always written in a final state (success or failure)."""

    __tablename__ = "image_tasks"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    type: Mapped[str] = mapped_column(String(30))
    status: Mapped[str] = mapped_column(String(30))
    owner: Mapped[str] = mapped_column(String(255), index=True)
    input: Mapped[dict] = mapped_column(JSON, default=dict)
    result: Mapped[dict | None] = mapped_column(JSON)
    message: Mapped[str] = mapped_column(Text, default="")
    expires_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
