"""Neutron's L3 records: routers and floating IPs (the API side; the dataplane that makes
them carry packets reads them through cirrus.network.routers.router_layout).

A router's interfaces and its gateway are ports (device_id = the router's id, device_owner
network:router_interface or network:router_gateway), as in Neutron; a floating IP holds
its address through a port on the external network (device_owner network:floatingip).
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cirrus.db.models.base import Base, TimestampMixin


class Router(TimestampMixin, Base):
    __tablename__ = "routers"
    __table_args__ = (Index("ix_routers_project_id", "project_id"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(String(255), default="")
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="ACTIVE")
    # The external gateway: its port on a router:external network (None: no gateway).
    gw_port_id: Mapped[str | None] = mapped_column(String(36))
    gw_network_id: Mapped[str | None] = mapped_column(String(36), index=True)
    enable_snat: Mapped[bool] = mapped_column(Boolean, default=True)
    routes: Mapped[list] = mapped_column(JSON, default=list)  # [{"destination", "nexthop"}]
    tags: Mapped[list] = mapped_column(JSON, default=list)
    revision_number: Mapped[int] = mapped_column(Integer, default=0)


class FloatingIP(TimestampMixin, Base):
    """A floating IP: an address of an external network, and the fixed address (of a port
    behind a router with a gateway on that network) it is translated to, if associated.
    The unique (fixed_port_id, fixed_ip_address) makes the association 1:1."""

    __tablename__ = "floatingips"
    __table_args__ = (
        UniqueConstraint("fixed_port_id", "fixed_ip_address",
                         name="uq_floatingips_fixed_port_id_fixed_ip_address"),
        Index("ix_floatingips_project_id", "project_id"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(255), default="")
    floating_network_id: Mapped[str] = mapped_column(String(36), index=True)
    floating_port_id: Mapped[str] = mapped_column(String(36))
    floating_subnet_id: Mapped[str] = mapped_column(String(36))
    floating_ip_address: Mapped[str] = mapped_column(String(64))
    fixed_port_id: Mapped[str | None] = mapped_column(String(36), index=True)
    fixed_ip_address: Mapped[str | None] = mapped_column(String(64))
    router_id: Mapped[str | None] = mapped_column(String(36), index=True)
    status: Mapped[str] = mapped_column(String(16), default="DOWN")
    tags: Mapped[list] = mapped_column(JSON, default=list)
    revision_number: Mapped[int] = mapped_column(Integer, default=0)
