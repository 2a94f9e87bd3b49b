"""The hosts as the scheduler sees them: each compute node with its agent's liveness."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from cirrus.config import Settings
from cirrus.db.models import ComputeNode, Service, utcnow
from cirrus.scheduler.hoststate import HostState

from .liveness import AGENT_BINARY, is_up


def load_hosts(s: Session, settings: Settings) -> list[HostState]:
    """Every compute node with its agent's liveness, in one query."""
    now = utcnow()
    down_time = settings.service_down_time
    default_zone = settings.default_availability_zone
    cn, svc = ComputeNode, Service
    rows = s.execute(
        select(cn.id, cn.host, cn.hypervisor_hostname, cn.availability_zone, cn.vcpus,
               cn.memory_mb, cn.local_gb, cn.vcpus_used, cn.memory_mb_used, cn.local_gb_used,
               cn.cpu_allocation_ratio, cn.ram_allocation_ratio, cn.disk_allocation_ratio,
               cn.storage_pools, svc.forced_down, svc.last_seen_up, svc.disabled,
               svc.disabled_reason)
        .outerjoin(svc, (svc.host == cn.host) & (svc.binary == AGENT_BINARY))
    ).all()
    return [
        HostState(
            node_id=r.id, host=r.host, node=r.hypervisor_hostname,
            availability_zone=r.availability_zone or default_zone,
            vcpus=r.vcpus, memory_mb=r.memory_mb, local_gb=r.local_gb,
            vcpus_used=r.vcpus_used, memory_mb_used=r.memory_mb_used,
            local_gb_used=r.local_gb_used, cpu_allocation_ratio=r.cpu_allocation_ratio,
            ram_allocation_ratio=r.ram_allocation_ratio,
            disk_allocation_ratio=r.disk_allocation_ratio,
            service_up=is_up(r.forced_down, r.last_seen_up, down_time, now),
            service_disabled=bool(r.disabled), disabled_reason=r.disabled_reason,
            storage_pools=r.storage_pools or {},
        )
        for r in rows
    ]
