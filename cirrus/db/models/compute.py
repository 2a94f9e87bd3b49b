"""Compute: flavors, keypairs, services and compute nodes, allocations, instances with their
faults and actions, quota limits."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from cirrus.db.models.base import Base, Timestamp, TimestampMixin, utcnow


class Flavor(TimestampMixin, Base):
    __tablename__ = "flavors"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    flavorid: Mapped[str] = mapped_column(String(255), unique=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    vcpus: Mapped[int] = mapped_column(Integer)
    memory_mb: Mapped[int] = mapped_column(Integer)
    root_gb: Mapped[int] = mapped_column(Integer, default=0)
    ephemeral_gb: Mapped[int] = mapped_column(Integer, default=0)
    swap: Mapped[int] = mapped_column(Integer, default=0)
    rxtx_factor: Mapped[float] = mapped_column(Float, default=1.0)
    is_public: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str | None] = mapped_column(Text)
    extra_specs: Mapped[dict] = mapped_column(JSON, default=dict)


class FlavorProject(Base):
    __tablename__ = "flavor_projects"
    flavor_id: Mapped[int] = mapped_column(
        ForeignKey("flavors.id", ondelete="CASCADE"), primary_key=True
    )
    project_id: Mapped[str] = mapped_column(String(64), primary_key=True)


class KeyPair(Base):
    __tablename__ = "key_pairs"
    __table_args__ = (UniqueConstraint("user_id", "name", name="uq_key_pairs_user_name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[str] = mapped_column(String(64))
    fingerprint: Mapped[str] = mapped_column(String(255))
    public_key: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(16), default="ssh")
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)


class Service(TimestampMixin, Base):
    """A running Cirrus role on a host; its heartbeat decides up or down."""

    __tablename__ = "services"
    __table_args__ = (UniqueConstraint("host", "binary", name="uq_services_host_binary"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    host: Mapped[str] = mapped_column(String(255))
    binary: Mapped[str] = mapped_column(String(64))  # cirrus-api, cirrus-conductor, ...
    topic: Mapped[str | None] = mapped_column(String(255))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled_reason: Mapped[str | None] = mapped_column(String(255))
    forced_down: Mapped[bool] = mapped_column(Boolean, default=False)
    last_seen_up: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    report_count: Mapped[int] = mapped_column(Integer, default=0)
    availability_zone: Mapped[str | None] = mapped_column(String(255))


class ComputeNode(TimestampMixin, Base):
    """A hypervisor's capacity and what is claimed on it. Claims are conditional updates."""

    __tablename__ = "compute_nodes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    host: Mapped[str] = mapped_column(String(255), index=True)
    hypervisor_hostname: Mapped[str] = mapped_column(String(255), unique=True)
    hypervisor_type: Mapped[str] = mapped_column(String(64), default="fake")
    hypervisor_version: Mapped[int] = mapped_column(Integer, default=1000)
    host_ip: Mapped[str | None] = mapped_column(String(64))
    availability_zone: Mapped[str | None] = mapped_column(String(255))
    vcpus: Mapped[int] = mapped_column(Integer, default=0)
    memory_mb: Mapped[int] = mapped_column(Integer, default=0)
    local_gb: Mapped[int] = mapped_column(Integer, default=0)
    vcpus_used: Mapped[int] = mapped_column(Integer, default=0)
    memory_mb_used: Mapped[int] = mapped_column(Integer, default=0)
    local_gb_used: Mapped[int] = mapped_column(Integer, default=0)
    running_vms: Mapped[int] = mapped_column(Integer, default=0)
    cpu_allocation_ratio: Mapped[float] = mapped_column(Float, default=4.0)
    ram_allocation_ratio: Mapped[float] = mapped_column(Float, default=1.0)
    disk_allocation_ratio: Mapped[float] = mapped_column(Float, default=1.0)
    cpu_info: Mapped[dict] = mapped_column(JSON, default=dict)
    # When the host booted, as its agent last reported (HostStats.booted_at): the uptime.
    booted_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    # Pool name -> {"total_gb", "free_gb"} as the agent last reported (HostStats.storage_pools).
    storage_pools: Mapped[dict] = mapped_column(JSON, default=dict)
    # What its virt driver can do (DriverCapabilities.to_dict()) as the agent last reported;
    # None: an agent older than capabilities (taken to be able to do all it did then).
    capabilities: Mapped[dict | None] = mapped_column(JSON, nullable=True)


class Allocation(Base):
    """Resources claimed on a compute node for one instance (at most one per instance)."""

    __tablename__ = "allocations"
    instance_uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    compute_node_id: Mapped[int] = mapped_column(ForeignKey("compute_nodes.id"), index=True)
    vcpus: Mapped[int] = mapped_column(Integer)
    memory_mb: Mapped[int] = mapped_column(Integer)
    disk_gb: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)


class Instance(TimestampMixin, Base):
    __tablename__ = "instances"
    __table_args__ = (
        Index("ix_instances_project_deleted", "project_id", "deleted"),
        Index("ix_instances_host_deleted", "host", "deleted"),
        Index("ix_instances_updated_at", "updated_at"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    display_name: Mapped[str] = mapped_column(String(255))
    display_description: Mapped[str | None] = mapped_column(Text)
    hostname: Mapped[str | None] = mapped_column(String(255))
    project_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(64))
    flavor: Mapped[dict] = mapped_column(JSON)  # snapshot of the flavor at create
    vcpus: Mapped[int] = mapped_column(Integer, default=0)  # copied from the flavor for quotas
    memory_mb: Mapped[int] = mapped_column(Integer, default=0)
    root_gb: Mapped[int] = mapped_column(Integer, default=0)
    image_ref: Mapped[str | None] = mapped_column(String(255))
    key_name: Mapped[str | None] = mapped_column(String(255))
    key_data: Mapped[str | None] = mapped_column(Text)
    user_data: Mapped[str | None] = mapped_column(Text)
    host: Mapped[str | None] = mapped_column(String(255))
    node: Mapped[str | None] = mapped_column(String(255))
    availability_zone: Mapped[str | None] = mapped_column(String(255))
    vm_state: Mapped[str] = mapped_column(String(32))
    task_state: Mapped[str | None] = mapped_column(String(32))
    power_state: Mapped[int] = mapped_column(Integer, default=0)
    task_started_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    launched_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    terminated_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    reservation_id: Mapped[str | None] = mapped_column(String(255))
    launch_index: Mapped[int] = mapped_column(Integer, default=0)
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    locked_by: Mapped[str | None] = mapped_column(String(16))
    config_drive: Mapped[str] = mapped_column(String(16), default="")
    access_ip_v4: Mapped[str | None] = mapped_column(String(64))
    access_ip_v6: Mapped[str | None] = mapped_column(String(64))
    progress: Mapped[int] = mapped_column(Integer, default=0)
    build_attempts: Mapped[int] = mapped_column(Integer, default=0)
    tried_hosts: Mapped[list] = mapped_column(JSON, default=list)
    request_spec: Mapped[dict] = mapped_column(JSON, default=dict)  # scheduler hints, az, networks
    metadata_items: Mapped[dict] = mapped_column("metadata", JSON, default=dict)
    system_metadata: Mapped[dict] = mapped_column(JSON, default=dict)
    tags: Mapped[list] = mapped_column(JSON, default=list)
    security_groups: Mapped[list] = mapped_column(JSON, default=list)
    # The server's NICs in guest order, the seed's `ports_pattern`: [{"port_id", "index",
    # "name" (eth0...), "preserve" (a port the user passed: unbound, not deleted, at the end)}]
    nics: Mapped[list] = mapped_column(JSON, default=list)


class InstanceFault(Base):
    __tablename__ = "instance_faults"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    instance_uuid: Mapped[str] = mapped_column(String(36), index=True)
    code: Mapped[int] = mapped_column(Integer)
    message: Mapped[str] = mapped_column(String(255))
    details: Mapped[str] = mapped_column(Text, default="")
    host: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)


class InstanceAction(TimestampMixin, Base):
    __tablename__ = "instance_actions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    instance_uuid: Mapped[str] = mapped_column(String(36), index=True)
    request_id: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(255))
    project_id: Mapped[str | None] = mapped_column(String(64))
    user_id: Mapped[str | None] = mapped_column(String(64))
    start_time: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)
    finish_time: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    message: Mapped[str | None] = mapped_column(String(255))


class InstanceActionEvent(Base):
    __tablename__ = "instance_action_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    action_id: Mapped[int] = mapped_column(
        ForeignKey("instance_actions.id", ondelete="CASCADE"), index=True
    )
    event: Mapped[str] = mapped_column(String(255))
    start_time: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)
    finish_time: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    result: Mapped[str | None] = mapped_column(String(32))
    traceback: Mapped[str | None] = mapped_column(Text)
    host: Mapped[str | None] = mapped_column(String(255))


class QuotaLimit(Base):
    """A per-project override of a default quota (defaults come from settings)."""

    __tablename__ = "quota_limits"
    project_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    resource: Mapped[str] = mapped_column(String(64), primary_key=True)
    hard_limit: Mapped[int] = mapped_column(Integer)


class QuotaClassLimit(Base):
    """A quota class's limit (os-quota-class-sets); the `default` class's rows change the
    defaults every project without its own override gets."""

    __tablename__ = "quota_class_limits"
    class_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    resource: Mapped[str] = mapped_column(String(64), primary_key=True)
    hard_limit: Mapped[int] = mapped_column(Integer)


class UserQuotaLimit(Base):
    """A per-user override of a project's quota (Nova's per-user quotas, issue 13): at most
    the project's limit; a user without one has the project's."""

    __tablename__ = "user_quota_limits"
    project_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    resource: Mapped[str] = mapped_column(String(64), primary_key=True)
    hard_limit: Mapped[int] = mapped_column(Integer)
