"""Whether a service is up: a recent heartbeat and not forced down (Nova's service_down_time).

A service is up while its last heartbeat (`last_seen_up`) is at most `service_down_time`
seconds old and no operator forced it down; a host whose agent is down is not scheduled to,
and its servers show host_status UNKNOWN to admins.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from cirrus.db.models import Service, utcnow

AGENT_BINARY = "cirrus-agent"
DHCP_BINARY = "cirrus-dhcp-agent"  # an agent that serves DHCP (cirrus.network.dhcp.control)
L3_BINARY = "cirrus-l3-agent"  # an agent that runs routers (cirrus.network.l3.control); l3


def is_up(forced_down: bool | None, last_seen_up: dt.datetime | None, down_time: float,
          now: dt.datetime | None = None) -> bool:
    if forced_down or last_seen_up is None:
        return False
    return ((now or utcnow()) - last_seen_up).total_seconds() <= down_time


def service_is_up(service: Service, down_time: float, now: dt.datetime | None = None) -> bool:
    return is_up(service.forced_down, service.last_seen_up, down_time, now)


def host_statuses(s: Session, hosts: set[str], down_time: float) -> dict[str, str]:
    """Nova's host_status of each host's agent: DOWN when forced down, MAINTENANCE when
    disabled, else UP or UNKNOWN by liveness. Hosts without an agent service are left out."""
    statuses = {}
    for svc in s.scalars(select(Service).where(Service.binary == AGENT_BINARY,
                                               Service.host.in_(hosts))):
        if svc.forced_down:
            statuses[svc.host] = "DOWN"
        elif svc.disabled:
            statuses[svc.host] = "MAINTENANCE"
        else:
            statuses[svc.host] = "UP" if service_is_up(svc, down_time) else "UNKNOWN"
    return statuses
