"""Usage of instances over a period (Nova's os-simple-tenant-usage), computed from their
launched_at and terminated_at: an instance counts from when it was launched (or the period's
start) to when it was terminated (or the period's end, or now). Instances never launched
count for nothing; deleted ones count for the time they lived."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from cirrus.db.models import Instance
from cirrus.errors import BadRequest


@dataclass
class ServerUsage:
    instance_id: str
    name: str
    tenant_id: str
    hours: float
    memory_mb: int
    local_gb: int
    vcpus: int
    flavor: str
    started_at: dt.datetime
    ended_at: dt.datetime | None
    state: str
    uptime: int


def in_window(s: Session, start: dt.datetime, end: dt.datetime, *,
              project_id: str | None = None, limit: int | None = None,
              marker: str | None = None) -> list[Instance]:
    """Instances that ran at some time in [start, end], by id (a page after `marker`, an
    instance uuid, when given)."""
    q = (select(Instance)
         .where(Instance.launched_at.is_not(None), Instance.launched_at < end,
                or_(Instance.terminated_at.is_(None), Instance.terminated_at > start))
         .order_by(Instance.id))
    if project_id is not None:
        q = q.where(Instance.project_id == project_id)
    if marker:
        anchor = s.scalar(select(Instance.id).where(Instance.uuid == marker))
        if anchor is None:
            raise BadRequest(f"marker [{marker}] not found")
        q = q.where(and_(Instance.id > anchor))
    if limit is not None:
        q = q.limit(limit)
    return list(s.scalars(q))


def server_usage(inst: Instance, start: dt.datetime, end: dt.datetime,
                 now: dt.datetime) -> ServerUsage:
    launched = inst.launched_at or now
    terminated = inst.terminated_at
    begin = max(launched, start)
    finish = min(terminated or now, end)
    hours = max((finish - begin).total_seconds(), 0) / 3600
    flavor = inst.flavor or {}
    uptime = ((terminated or now) - launched).total_seconds()
    return ServerUsage(
        instance_id=inst.uuid, name=inst.display_name, tenant_id=inst.project_id, hours=hours,
        memory_mb=int(flavor.get("ram", inst.memory_mb) or 0),
        local_gb=int(flavor.get("disk", inst.root_gb) or 0) + int(flavor.get("ephemeral") or 0),
        vcpus=int(flavor.get("vcpus", inst.vcpus) or 0), flavor=str(flavor.get("name") or ""),
        started_at=launched, ended_at=terminated,
        state="terminated" if terminated else inst.vm_state, uptime=int(max(uptime, 0)))
