"""Identity's service catalog (regions, services, endpoints, OS-EP-FILTER's endpoint groups and
project associations) and application credentials."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cirrus.db.models.base import Base, Timestamp, TimestampMixin


class CatalogRegion(TimestampMixin, Base):
    __tablename__ = "catalog_regions"
    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    parent_region_id: Mapped[str | None] = mapped_column(String(255))
    extra: Mapped[dict] = mapped_column(JSON, default=dict)


class CatalogService(TimestampMixin, Base):
    __tablename__ = "catalog_services"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(255), index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    extra: Mapped[dict] = mapped_column(JSON, default=dict)


class CatalogEndpoint(TimestampMixin, Base):
    __tablename__ = "catalog_endpoints"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    service_id: Mapped[str] = mapped_column(
        ForeignKey("catalog_services.id", ondelete="CASCADE"), index=True)
    interface: Mapped[str] = mapped_column(String(8))
    region_id: Mapped[str | None] = mapped_column(String(255))
    url: Mapped[str] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # {"cirrus_default": true} on the rows bootstrap made and no administrator has changed:
    # bootstrap keeps their URL equal to the configured public URL.
    extra: Mapped[dict] = mapped_column(JSON, default=dict)


class EndpointGroup(Base):
    """OS-EP-FILTER: the endpoints whose attributes match `filters` (interface, service_id,
    region_id), for the projects associated with the group."""

    __tablename__ = "endpoint_groups"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    filters: Mapped[dict] = mapped_column(JSON, default=dict)


class ProjectEndpointGroup(Base):
    """A project associated with an endpoint group (gone with either)."""

    __tablename__ = "project_endpoint_groups"
    endpoint_group_id: Mapped[str] = mapped_column(
        ForeignKey("endpoint_groups.id", ondelete="CASCADE"), primary_key=True)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True, index=True)


class ProjectEndpoint(Base):
    """OS-EP-FILTER's older form: one endpoint associated with a project (gone with either)."""

    __tablename__ = "project_endpoints"
    endpoint_id: Mapped[str] = mapped_column(
        ForeignKey("catalog_endpoints.id", ondelete="CASCADE"), primary_key=True)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True, index=True)


class ApplicationCredential(Base):
    """A user's credential for one project; only a hash of its secret is stored."""

    __tablename__ = "application_credentials"
    __table_args__ = (UniqueConstraint("user_id", "name",
                                       name="uq_application_credentials_user_name"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[str] = mapped_column(String(64))
    project_id: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    secret_hash: Mapped[str] = mapped_column(String(255))
    roles: Mapped[list] = mapped_column(JSON, default=list)  # [{"id", "name"}], as assigned
    unrestricted: Mapped[bool] = mapped_column(Boolean, default=False)
    expires_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp)
