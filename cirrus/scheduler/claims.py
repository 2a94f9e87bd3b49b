"""Claims: resources taken on a compute node for one instance, atomically.

A claim is a conditional UPDATE that only succeeds while the node still has room, plus an
Allocation row, in one transaction; so two schedulers can never overfill a host, on SQLite,
PostgreSQL or MariaDB alike. Releasing is idempotent: it gives back exactly what the
Allocation row says, once.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from cirrus.compute import lifecycle, states
from cirrus.db.models import Allocation, ComputeNode, Instance, utcnow

_nodes = ComputeNode.__table__
_allocations = Allocation.__table__
# Built once: the scheduler runs these for every server, and building the expression costs
# more than running it.
_CLAIM = (
    update(_nodes)
    .where(
        _nodes.c.id == bindparam("b_node_id"),
        _nodes.c.vcpus_used + bindparam("b_vcpus") <= _nodes.c.vcpus * _nodes.c.cpu_allocation_ratio,
        _nodes.c.memory_mb_used + bindparam("b_memory_mb")
        <= _nodes.c.memory_mb * _nodes.c.ram_allocation_ratio,
        _nodes.c.local_gb_used + bindparam("b_disk_gb")
        <= _nodes.c.local_gb * _nodes.c.disk_allocation_ratio,
    )
    .values(vcpus_used=_nodes.c.vcpus_used + bindparam("b_vcpus"),
            memory_mb_used=_nodes.c.memory_mb_used + bindparam("b_memory_mb"),
            local_gb_used=_nodes.c.local_gb_used + bindparam("b_disk_gb"),
            running_vms=_nodes.c.running_vms + 1)
)
_ALLOCATE = insert(_allocations)


def claim(s: Session, node_id: int, instance_uuid: str, vcpus: int, memory_mb: int,
          disk_gb: int) -> bool:
    claimed = s.execute(_CLAIM, {"b_node_id": node_id, "b_vcpus": vcpus,
                                 "b_memory_mb": memory_mb, "b_disk_gb": disk_gb})
    if cast("CursorResult[Any]", claimed).rowcount != 1:
        return False
    s.execute(_ALLOCATE, {"instance_uuid": instance_uuid, "compute_node_id": node_id,
                          "vcpus": vcpus, "memory_mb": memory_mb, "disk_gb": disk_gb,
                          "created_at": utcnow()})
    return True


def release(s: Session, instance_uuid: str) -> bool:
    """Give back what the instance holds. Returns False if it held nothing."""
    alloc = s.execute(select(Allocation).where(Allocation.instance_uuid == instance_uuid)
                      .with_for_update()).scalar_one_or_none()
    if alloc is None:
        return False
    deleted = s.execute(delete(Allocation).where(Allocation.instance_uuid == instance_uuid)
                        .execution_options(synchronize_session=False))
    if cast("CursorResult[Any]", deleted).rowcount != 1:
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


def place(s: Session, instance_uuid: str, host: str, node: str,
          task: str | None = None) -> bool:
    """Record where a claimed instance goes; False if it is no longer waiting to be scheduled.
    `task` "unshelving": an offloaded server being unshelved (it stays in its task)."""
    if task == states.RESIZE_PREP:  # resize (comp-b): the host is recorded when it is done
        return lifecycle.transition(s, instance_uuid, "resize_scheduled",
                                    task_state=states.RESIZE_PREP,
                                    where=(Instance.deleted.is_(False),)) == 1
    if task == states.UNSHELVING:
        return lifecycle.transition(s, instance_uuid, "unshelve_scheduled",
                                    vm_state=states.SHELVED_OFFLOADED,
                                    task_state=states.UNSHELVING,
                                    where=(Instance.deleted.is_(False), Instance.host.is_(None)),
                                    host=host, node=node) == 1
    return lifecycle.transition(s, instance_uuid, "scheduled", task_state=states.SCHEDULING,
                                where=(Instance.deleted.is_(False),), host=host, node=node,
                                task_started_at=utcnow()) == 1
