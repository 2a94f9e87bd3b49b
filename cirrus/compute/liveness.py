"""Whether a service is up: a recent heartbeat and not forced down (Nova's service_down_time)."""

from __future__ import annotations

import datetime as dt

from cirrus.db.models import Service, utcnow

AGENT_BINARY = "cirrus-agent"


def is_up(forced_down: bool | None, last_seen_up: dt.datetime | None, down_time: float,
          now: dt.datetime | None = None) -> bool:
    if forced_down or last_seen_up is None:
        return False
    return ((now or utcnow()) - last_seen_up).total_seconds() <= down_time


def service_is_up(service: Service, down_time: float, now: dt.datetime | None = None) -> bool:
    return is_up(service.forced_down, service.last_seen_up, down_time, now)


def record_heartbeat(s, host: str, binary: str, topic: str | None = None,  # noqa: ANN001
                     availability_zone: str | None = None) -> Service:
    """Create or refresh the service row of (host, binary)."""
    import uuid as uuidlib

    from sqlalchemy import select

    svc = s.scalar(select(Service).where(Service.host == host, Service.binary == binary))
    now = utcnow()
    if svc is None:
        svc = Service(uuid=str(uuidlib.uuid4()), host=host, binary=binary, topic=topic,
                      availability_zone=availability_zone, last_seen_up=now, report_count=1)
        s.add(svc)
    else:
        svc.last_seen_up = now
        svc.report_count = (svc.report_count or 0) + 1
    s.flush()
    return svc
