"""Networking (Neutron v2.0): networks, subnets, ports, IP allocations, security groups,
auto-allocated networks."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cirrus.db.models.base import Base, Timestamp, TimestampMixin, utcnow


class Network(TimestampMixin, Base):
    """An L2 network. On a host it is one Linux bridge; its ports are the taps on it."""

    __tablename__ = "networks"
    __table_args__ = (Index("ix_networks_project_id", "project_id"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(String(255), default="")
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="ACTIVE")
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    external: Mapped[bool] = mapped_column(Boolean, default=False)  # router:external
    # The network `networks: auto` uses for every project (admin-marked, shared), as
    # Neutron's `is_default`.
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    mtu: Mapped[int] = mapped_column(Integer, default=1500)
    port_security_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    provider_network_type: Mapped[str | None] = mapped_column(String(32))
    provider_physical_network: Mapped[str | None] = mapped_column(String(64))
    provider_segmentation_id: Mapped[int | None] = mapped_column(Integer)
    availability_zone_hints: Mapped[list] = mapped_column(JSON, default=list)
    tags: Mapped[list] = mapped_column(JSON, default=list)
    revision_number: Mapped[int] = mapped_column(Integer, default=0)


class Subnet(TimestampMixin, Base):
    __tablename__ = "subnets"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    network_id: Mapped[str] = mapped_column(ForeignKey("networks.id"), index=True)
    project_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(String(255), default="")
    ip_version: Mapped[int] = mapped_column(Integer)
    cidr: Mapped[str] = mapped_column(String(64))  # normalised (network address / prefix)
    gateway_ip: Mapped[str | None] = mapped_column(String(64))
    allocation_pools: Mapped[list] = mapped_column(JSON, default=list)  # [{"start", "end"}]
    dns_nameservers: Mapped[list] = mapped_column(JSON, default=list)  # in order
    host_routes: Mapped[list] = mapped_column(JSON, default=list)  # [{"destination", "nexthop"}]
    enable_dhcp: Mapped[bool] = mapped_column(Boolean, default=True)
    ipv6_ra_mode: Mapped[str | None] = mapped_column(String(32))
    ipv6_address_mode: Mapped[str | None] = mapped_column(String(32))
    # The subnet pool its cidr was allocated from (None: none).
    subnetpool_id: Mapped[str | None] = mapped_column(ForeignKey("subnetpools.id"), index=True)
    tags: Mapped[list] = mapped_column(JSON, default=list)
    revision_number: Mapped[int] = mapped_column(Integer, default=0)


class Port(TimestampMixin, Base):
    __tablename__ = "ports"
    __table_args__ = (
        UniqueConstraint("network_id", "mac_address", name="uq_ports_network_id_mac_address"),
        Index("ix_ports_device_id", "device_id"),
        Index("ix_ports_project_id", "project_id"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    network_id: Mapped[str] = mapped_column(ForeignKey("networks.id"), index=True)
    project_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(String(255), default="")
    mac_address: Mapped[str] = mapped_column(String(32))
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="DOWN")
    device_id: Mapped[str] = mapped_column(String(255), default="")
    device_owner: Mapped[str] = mapped_column(String(255), default="")
    binding_host_id: Mapped[str | None] = mapped_column(String(255))
    binding_vif_type: Mapped[str] = mapped_column(String(32), default="unbound")
    binding_vnic_type: Mapped[str] = mapped_column(String(32), default="normal")
    security_groups: Mapped[list] = mapped_column(JSON, default=list)
    port_security_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # [{"ip_address": address or cidr, "mac_address": mac}] (issue 14, sg); NULL: none
    allowed_address_pairs: Mapped[list | None] = mapped_column(JSON, default=list)
    tags: Mapped[list] = mapped_column(JSON, default=list)
    revision_number: Mapped[int] = mapped_column(Integer, default=0)


class IPAllocation(Base):
    """One fixed IP of a port. The primary key (subnet, address) is what makes handing out an
    address twice impossible, whatever the number of API workers racing for it."""

    __tablename__ = "ip_allocations"
    subnet_id: Mapped[str] = mapped_column(ForeignKey("subnets.id"), primary_key=True)
    ip_address: Mapped[str] = mapped_column(String(64), primary_key=True)  # canonical text
    port_id: Mapped[str] = mapped_column(ForeignKey("ports.id", ondelete="CASCADE"), index=True)
    network_id: Mapped[str] = mapped_column(String(36), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)


class SecurityGroup(TimestampMixin, Base):
    """Security groups are recorded and listed; rules are not enforced yet (docs say so)."""

    __tablename__ = "security_groups"
    __table_args__ = (Index("ix_security_groups_project_id", "project_id"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(String(255), default="")
    stateful: Mapped[bool] = mapped_column(Boolean, default=True)
    rules: Mapped[list] = mapped_column(JSON, default=list)  # Neutron rule bodies
    revision_number: Mapped[int] = mapped_column(Integer, default=0)


class AutoAllocatedNetwork(Base):
    """The network `networks: auto` made for a project (one per project, made on first use)."""

    __tablename__ = "auto_allocated_networks"
    project_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    network_id: Mapped[str] = mapped_column(ForeignKey("networks.id", ondelete="CASCADE"))
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)
