"""A role's own heartbeat: its row in the services table, refreshed every heartbeat_interval.

os-services shows a role up while its last heartbeat is younger than service_down_time
(cirrus.compute.liveness); a process that dies simply stops refreshing its row.
"""

from __future__ import annotations

import logging
import threading

from cirrus.compute.liveness import record_heartbeat
from cirrus.db.engine import Database

log = logging.getLogger(__name__)


class ServiceHeartbeat:
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
