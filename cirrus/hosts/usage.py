"""What a host holds, for Nova's os-hosts detail: its capacity, what its instances use now,
and per project (the "(total)", "(used_now)", "(used_max)" rows Nova shows)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from cirrus.db.models import ComputeNode, Instance, Service
from cirrus.errors import NotFound


@dataclass(frozen=True)
class Resource:
    project: str
    cpu: int
    memory_mb: int
    disk_gb: int


def known_host(s: Session, host: str) -> bool:
    return s.scalar(select(Service.id).where(Service.host == host).limit(1)) is not None


def host_resources(s: Session, host: str) -> list[Resource]:
    """Capacity, use and use per project of a host's hypervisors; NotFound if no service runs
    on a host of that name."""
    if not known_host(s, host):
        raise NotFound(f"Compute host {host} could not be found.")
    nodes = list(s.scalars(select(ComputeNode).where(ComputeNode.host == host)))
    total = Resource("(total)", sum(n.vcpus for n in nodes), sum(n.memory_mb for n in nodes),
                     sum(n.local_gb for n in nodes))
    live = list(s.scalars(select(Instance).where(Instance.host == host,
                                                 Instance.deleted.is_(False))))
    per_project: dict[str, list[int]] = {}
    for inst in live:
        used = per_project.setdefault(inst.project_id, [0, 0, 0])
        used[0] += inst.vcpus
        used[1] += inst.memory_mb
        used[2] += inst.root_gb
    now = Resource("(used_now)", sum(u[0] for u in per_project.values()),
                   sum(u[1] for u in per_project.values()),
                   sum(u[2] for u in per_project.values()))
    # Nova's used_max is what the instances' flavors claim: the same here (no over-use).
    used_max = Resource("(used_max)", now.cpu, now.memory_mb, now.disk_gb)
    return [total, now, used_max, *(Resource(p, *u) for p, u in sorted(per_project.items()))]
