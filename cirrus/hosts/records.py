"""Host records: the services table (one row per role per host) and compute nodes.

Rows are written by heartbeats and agent reports (cirrus.hosts.heartbeat, .reports); the
operator may change only what Nova lets them (enable, disable, force down, delete).
"""

from __future__ import annotations

import datetime as dt
import uuid as uuidlib
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cirrus.config import Settings
from cirrus.db.models import Allocation, ComputeNode, Instance, Service, utcnow
from cirrus.errors import BadRequest, Conflict, NotFound

from .liveness import AGENT_BINARY, DHCP_BINARY, L3_BINARY

# The names Nova's tools filter services by, for Cirrus's roles: the API shows these, and
# accepts either name wherever a binary is named.
NOVA_BINARIES = {AGENT_BINARY: "nova-compute", "cirrus-conductor": "nova-conductor",
                 "cirrus-scheduler": "nova-scheduler"}
BINARY_ALIASES = {nova: cirrus for cirrus, nova in NOVA_BINARIES.items()}


def canonical_binary(binary: str) -> str:
    return BINARY_ALIASES.get(binary, binary)


def nova_binary(binary: str) -> str:
    """The name Nova's tools know a Cirrus role's service by (`nova-compute` for the agent)."""
    return NOVA_BINARIES.get(binary, binary)


def db_id(text: object) -> int | None:
    """An integer primary key given as text, or None if it cannot be one: not ASCII digits, or
    more than the column holds (a bigger number would overflow the database driver)."""
    raw = str(text)
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 10):
        return None
    number = int(raw)
    return number if number <= 0x7FFFFFFF else None


def last_update(svc: Service) -> dt.datetime | None:
    return svc.updated_at or svc.last_seen_up


# ---------------------------------------------------------------- services


def list_services(s: Session, host: str | None = None, binary: str | None = None) -> list[Service]:
    query = select(Service).order_by(Service.id)
    if host:
        query = query.where(Service.host == host)
    if binary:
        query = query.where(Service.binary == canonical_binary(binary))
    return list(s.scalars(query))


_Row = TypeVar("_Row", Service, ComputeNode)


def _by_id(s: Session, model: type[_Row], ident: str, by_uuid: bool) -> _Row | None:
    """A row by its uuid (2.53+) or its integer id; None when there is none."""
    if by_uuid:
        return s.scalar(select(model).where(model.uuid == ident))
    number = db_id(ident)
    return s.get(model, number) if number is not None else None

def get_service(s: Session, service_id: str, *, by_uuid: bool) -> Service:
    """A service by uuid (2.53+) or integer id; NotFound otherwise."""
    svc = _by_id(s, Service, service_id, by_uuid)
    if svc is None:
        raise NotFound(f"Service {service_id} could not be found.")
    return svc


def find_service(s: Session, host: str, binary: str) -> Service:
    svc = s.scalar(select(Service).where(Service.host == host,
                                         Service.binary == canonical_binary(binary)))
    if svc is None:
        raise NotFound(f"Compute host {host} with binary {binary} could not be found.")
    return svc


def ensure_updatable(svc: Service) -> None:
    """Only hypervisor agents can be enabled, disabled or forced down."""
    if svc.binary != AGENT_BINARY:
        raise BadRequest(f"Updating a {nova_binary(svc.binary)} service is not supported. "
                         "Only nova-compute services can be updated.")


def set_status(s: Session, svc: Service, *, disabled: bool, reason: str | None = None) -> None:
    ensure_updatable(svc)
    svc.disabled = disabled
    svc.disabled_reason = reason if disabled else None
    svc.updated_at = utcnow()
    s.flush()


def set_forced_down(s: Session, svc: Service, forced_down: bool) -> None:
    ensure_updatable(svc)
    svc.forced_down = forced_down
    svc.updated_at = utcnow()
    s.flush()


def delete_service(s: Session, svc: Service) -> None:
    """Delete a service record; an agent's also takes its compute nodes.

    Conflict while the agent's host still has servers or claims on it.
    """
    if svc.binary == AGENT_BINARY:
        if instances_on_host(s, svc.host):
            raise Conflict("Unable to delete compute service that is hosting instances. "
                           "Migrate or delete the instances first.")
        nodes = list(s.scalars(select(ComputeNode).where(ComputeNode.host == svc.host)))
        node_ids = [n.id for n in nodes]
        if node_ids and s.scalar(select(func.count()).select_from(Allocation)
                                 .where(Allocation.compute_node_id.in_(node_ids))):
            raise Conflict("Unable to delete compute service that still has resources "
                           "claimed on it. Delete the instances first.")
        for node in nodes:
            s.delete(node)
        # dhcp: the host's DHCP service goes with its agent (its networks move to others).
        dhcp = s.scalar(select(Service).where(Service.host == svc.host,
                                              Service.binary == DHCP_BINARY))
        if dhcp is not None:
            s.delete(dhcp)
        # l3: so does its L3 service (its routers move to others).
        l3 = s.scalar(select(Service).where(Service.host == svc.host,
                                            Service.binary == L3_BINARY))
        if l3 is not None:
            s.delete(l3)
    s.delete(svc)
    s.flush()


# ---------------------------------------------------------------- compute nodes


def agent_services(s: Session) -> dict[str, Service]:
    """The agent service of each host, by host name."""
    return {svc.host: svc for svc in s.scalars(select(Service)
                                               .where(Service.binary == AGENT_BINARY))}


def record_node(s: Session, settings: Settings, host: str,
                stats: dict[str, Any]) -> ComputeNode:
    """Create or refresh the compute node of `host` from an agent's full report; a new node
    takes the configured allocation ratios and default zone."""
    node = s.scalar(select(ComputeNode).where(ComputeNode.hypervisor_hostname == host))
    if node is None:
        node = ComputeNode(
            uuid=str(uuidlib.uuid4()), host=host, hypervisor_hostname=host,
            availability_zone=settings.default_availability_zone,
            cpu_allocation_ratio=settings.cpu_allocation_ratio,
            ram_allocation_ratio=settings.ram_allocation_ratio,
            disk_allocation_ratio=settings.disk_allocation_ratio,
            vcpus_used=0, memory_mb_used=0, local_gb_used=0, running_vms=0)
        s.add(node)
    node.vcpus = stats["vcpus"]
    node.memory_mb = stats["memory_mb"]
    node.local_gb = stats["local_gb"]
    node.hypervisor_type = stats["hypervisor_type"]
    node.hypervisor_version = stats["hypervisor_version"]
    node.host_ip = stats.get("host_ip")
    node.cpu_info = stats.get("cpu_info") or {}
    node.storage_pools = stats.get("storage_pools") or {}  # absent: an older agent
    node.capabilities = stats.get("capabilities") or None  # None: an older agent, not refused
    booted = stats.get("booted_at")  # absent or 0: an agent older than the field
    node.booted_at = (dt.datetime.fromtimestamp(booted, dt.UTC).replace(tzinfo=None)
                      if booted else None)
    return node


def list_compute_nodes(s: Session, *, limit: int | None = None, marker: str | None = None,
                       marker_is_uuid: bool = False,
                       hostname_pattern: str | None = None) -> list[ComputeNode]:
    """Compute nodes by id; a page after `marker`, or those whose hostname contains a pattern."""
    query = select(ComputeNode).order_by(ComputeNode.id)
    if hostname_pattern is not None:
        query = query.where(ComputeNode.hypervisor_hostname.contains(hostname_pattern,
                                                                     autoescape=True))
    if marker is not None:
        if marker_is_uuid:
            anchor = s.scalar(select(ComputeNode.id).where(ComputeNode.uuid == marker))
        else:
            number = db_id(marker)
            found = number is not None and s.get(ComputeNode, number) is not None
            anchor = number if found else None
        if anchor is None:
            raise BadRequest(f"marker [{marker}] not found")
        query = query.where(ComputeNode.id > anchor)
    if limit is not None:
        query = query.limit(limit)
    return list(s.scalars(query))


def has_compute_node(s: Session, *, host: str | None = None, node: str | None = None) -> bool:
    """Whether a compute node matches `host` and `node` (each, when given)."""
    query = select(ComputeNode.id)
    if host:
        query = query.where(ComputeNode.host == host)
    if node:
        query = query.where(ComputeNode.hypervisor_hostname == node)
    return s.scalar(query.limit(1)) is not None


def get_compute_node(s: Session, node_id: str, *, by_uuid: bool) -> ComputeNode:
    node = _by_id(s, ComputeNode, node_id, by_uuid)
    if node is None:
        raise NotFound(f"Hypervisor with ID '{node_id}' could not be found.")
    return node


def instances_on_host(s: Session, host: str) -> list[tuple[str, str]]:
    """(uuid, name) of the live servers on a host."""
    rows = s.execute(select(Instance.uuid, Instance.display_name)
                     .where(Instance.host == host, Instance.deleted.is_(False))
                     .order_by(Instance.id)).all()
    return [(row.uuid, row.display_name) for row in rows]


def statistics(s: Session) -> dict[str, int]:
    """Totals over the compute nodes of enabled agents, as Nova's hypervisor statistics."""
    services = agent_services(s)
    nodes = [n for n in s.scalars(select(ComputeNode))
             if n.host in services and not services[n.host].disabled]
    total: dict[str, int] = {key: 0 for key in (
        "count", "vcpus", "memory_mb", "local_gb", "vcpus_used", "memory_mb_used",
        "local_gb_used", "free_ram_mb", "free_disk_gb", "current_workload", "running_vms",
        "disk_available_least")}
    for n in nodes:
        total["count"] += 1
        total["vcpus"] += n.vcpus
        total["memory_mb"] += n.memory_mb
        total["local_gb"] += n.local_gb
        total["vcpus_used"] += n.vcpus_used
        total["memory_mb_used"] += n.memory_mb_used
        total["local_gb_used"] += n.local_gb_used
        total["free_ram_mb"] += n.memory_mb - n.memory_mb_used
        total["free_disk_gb"] += n.local_gb - n.local_gb_used
        total["running_vms"] += n.running_vms
        total["disk_available_least"] += n.local_gb - n.local_gb_used
    return total
