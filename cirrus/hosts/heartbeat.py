"""Heartbeats: the service row of (host, binary), refreshed by every heartbeat.

Each role refreshes its own row every heartbeat_interval (ServiceHeartbeat, or the
conductor's periodic task); an agent's heartbeats arrive as reports (cirrus.hosts.reports).
os-services shows a role up while its last heartbeat is younger than service_down_time
(cirrus.hosts.liveness); a process that dies simply stops refreshing its row.
"""

from __future__ import annotations

import logging
import threading
import uuid as uuidlib

from sqlalchemy import select
from sqlalchemy.orm import Session

from cirrus.db.engine import Database
from cirrus.db.models import Service, utcnow

log = logging.getLogger(__name__)


def record_heartbeat(s: Session, host: str, binary: str, topic: str | None = None,
                     availability_zone: str | None = None) -> Service:
    """Create or refresh the service row of (host, binary)."""
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


class ServiceHeartbeat:
    """A role's own heartbeat thread (the scheduler's; the conductor beats from its loop)."""

    def __init__(self, db: Database, host: str, binary: str, topic: str | None,
                 interval: float) -> None:
        self.db = db
        self.host = host
        self.binary = binary
        self.topic = topic
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        self.db.run(lambda s: record_heartbeat(s, self.host, self.binary, self.topic))

    def start(self) -> None:
        self.beat()  # up as soon as the role is, not one interval later
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{self.binary}",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
            except Exception:  # the database may be restarting: try again next interval
                log.exception("%s heartbeat of %s failed", self.binary, self.host)

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
