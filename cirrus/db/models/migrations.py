"""Migrations (resize and cold migrate): one row per move of an instance, as Nova's
`migrations` table and its os-migrations API show them (comp-b)."""

from __future__ import annotations

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from cirrus.db.models.base import Base, TimestampMixin


class Migration(TimestampMixin, Base):
    __tablename__ = "migrations"
    __table_args__ = (Index("ix_migrations_instance_uuid", "instance_uuid"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    instance_uuid: Mapped[str] = mapped_column(String(36))
    project_id: Mapped[str | None] = mapped_column(String(64))
    user_id: Mapped[str | None] = mapped_column(String(64))
    migration_type: Mapped[str] = mapped_column(String(32))  # "resize" or "migration"
    status: Mapped[str] = mapped_column(String(32))
    source_compute: Mapped[str | None] = mapped_column(String(255))
    source_node: Mapped[str | None] = mapped_column(String(255))
    dest_compute: Mapped[str | None] = mapped_column(String(255))
    dest_node: Mapped[str | None] = mapped_column(String(255))
    dest_host: Mapped[str | None] = mapped_column(String(255))
    old_instance_type_id: Mapped[int | None] = mapped_column(Integer)  # flavors.id
    new_instance_type_id: Mapped[int | None] = mapped_column(Integer)
