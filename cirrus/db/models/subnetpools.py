"""Neutron subnet pools (subnet_allocation, default-subnetpools): the prefixes subnets are
carved out of. A subnet made from a pool names it (subnets.subnetpool_id)."""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from cirrus.db.models.base import Base, TimestampMixin


class SubnetPool(TimestampMixin, Base):
    __tablename__ = "subnetpools"
    __table_args__ = (Index("ix_subnetpools_project_id", "project_id"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(String(255), default="")
    ip_version: Mapped[int] = mapped_column(Integer)
    prefixes: Mapped[list] = mapped_column(JSON, default=list)  # normalised, merged CIDRs
    default_prefixlen: Mapped[int] = mapped_column(Integer)
    min_prefixlen: Mapped[int] = mapped_column(Integer)
    max_prefixlen: Mapped[int] = mapped_column(Integer)
    default_quota: Mapped[int | None] = mapped_column(Integer)
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    tags: Mapped[list] = mapped_column(JSON, default=list)
    revision_number: Mapped[int] = mapped_column(Integer, default=0)
