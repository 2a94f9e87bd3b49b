"""Claims: resources taken on a compute node for one instance, atomically.

A claim is a conditional UPDATE that only succeeds while the node still has room, plus an
Allocation row, in one transaction; so two schedulers can never overfill a host, on SQLite,
PostgreSQL or MariaDB alike. Releasing is idempotent: it gives back exactly what the
Allocation row says, once.
"""

from __future__ import annotations

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from cirrus.db.models import Allocation, ComputeNode, utcnow


def claim(s: Session, node_id: int, instance_uuid: str, vcpus: int, memory_mb: int,
          disk_gb: int) -> bool:
    cn = ComputeNode
    result = s.execute(
        update(cn)
        .where(
            cn.id == node_id,
            cn.vcpus_used + vcpus <= cn.vcpus * cn.cpu_allocation_ratio,
            cn.memory_mb_used + memory_mb <= cn.memory_mb * cn.ram_allocation_ratio,
            cn.local_gb_used + disk_gb <= cn.local_gb * cn.disk_allocation_ratio,
        )
        .values(vcpus_used=cn.vcpus_used + vcpus, memory_mb_used=cn.memory_mb_used + memory_mb,
                local_gb_used=cn.local_gb_used + disk_gb, running_vms=cn.running_vms + 1)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return False
    s.execute(insert(Allocation).values(instance_uuid=instance_uuid, compute_node_id=node_id,
                                        vcpus=vcpus, memory_mb=memory_mb, disk_gb=disk_gb,
                                        created_at=utcnow()))
    return True


def release(s: Session, instance_uuid: str) -> bool:
    """Give back what the instance holds. Returns False if it held nothing."""
    alloc = s.execute(select(Allocation).where(Allocation.instance_uuid == instance_uuid)
                      .with_for_update()).scalar_one_or_none()
    if alloc is None:
        return False
    deleted = s.execute(delete(Allocation).where(Allocation.instance_uuid == instance_uuid)
                        .execution_options(synchronize_session=False))
    if deleted.rowcount != 1:
        return False
    cn = ComputeNode
    s.execute(
        update(cn).where(cn.id == alloc.compute_node_id)
        .values(vcpus_used=cn.vcpus_used - alloc.vcpus,
                memory_mb_used=cn.memory_mb_used - alloc.memory_mb,
                local_gb_used=cn.local_gb_used - alloc.disk_gb,
                running_vms=cn.running_vms - 1)
        .execution_options(synchronize_session=False)
    )
    return True


def place(s: Session, instance_uuid: str, host: str, node: str) -> bool:
    """Record where a claimed instance goes; False if it is no longer waiting to be scheduled."""
    from cirrus.compute import states
    from cirrus.db.models import Instance

    return s.execute(
        update(Instance)
        .where(Instance.uuid == instance_uuid, Instance.task_state == states.SCHEDULING,
               Instance.deleted.is_(False))
        .values(host=host, node=node, task_state=states.SPAWNING, task_started_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount == 1
