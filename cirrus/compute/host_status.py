"""The `host_status` of servers (2.16): each agent host's state as the compute API names it."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from cirrus.compute.liveness import AGENT_BINARY, service_is_up
from cirrus.db.models import Service


def host_statuses(s: Session, hosts: Iterable[str], down_time: float) -> dict[str, str]:
    """host -> UP, DOWN (forced down), MAINTENANCE (disabled) or UNKNOWN (no heartbeat)."""
    wanted = set(hosts)
    if not wanted:
        return {}
    statuses = {}
    for svc in s.scalars(select(Service).where(Service.binary == AGENT_BINARY,
                                               Service.host.in_(wanted))):
        if svc.forced_down:
            statuses[svc.host] = "DOWN"
        elif svc.disabled:
            statuses[svc.host] = "MAINTENANCE"
        else:
            statuses[svc.host] = "UP" if service_is_up(svc, down_time) else "UNKNOWN"
    return statuses
