"""The agent's reports and periodic work: a heartbeat every `heartbeat_interval`, with
capacity and every VM each `sync_interval` (for the conductor to reconcile what the database
says with what really runs), the DHCP servers' check, and the image cache's expiry."""

from __future__ import annotations

import dataclasses
import threading
import time

from cirrus.agent.base import AgentBase, log
from cirrus.compute.rpcapi import AgentReport
from cirrus.context import RequestContext
from cirrus.network.dhcp.server import DhcpServer
from cirrus.network.l3.agent import RouterHost


class Reporting(AgentBase):
    dhcp: DhcpServer | None
    routers: RouterHost | None
    _stop: threading.Event

    def _periodic(self) -> None:
        since_sync = since_cache = 0.0
        interval = self.settings.heartbeat_interval
        while not self._stop.wait(interval):
            since_sync += interval
            full = since_sync >= self.settings.sync_interval
            if full:
                since_sync = 0.0
            try:
                self.report(RequestContext.admin(), full=full)
            except Exception:
                log.exception("agent %s: report failed", self.host)
            if self.dhcp is not None:
                try:
                    self.dhcp.check()
                except Exception:
                    log.exception("agent %s: DHCP check failed", self.host)
            # The first pass comes one interval after start, as Nova's periodic task does; it
            # never waits for an image's lock, so the heartbeat is not held up by a download.
            since_cache += interval
            if 0 < self.settings.image_cache_interval <= since_cache:
                since_cache = 0.0
                try:
                    self.driver.expire_image_cache()
                except Exception:
                    log.exception("agent %s: image cache expiry failed", self.host)

    def report(self, ctx: RequestContext, full: bool, startup: bool = False) -> None:
        """Heartbeat; with `full`, also capacity and every VM, for the conductor to reconcile.

        `taken_at` says when the VM list was read, so the conductor can leave alone what
        changed after; `startup` says no work from before this agent started is in flight.
        """
        overlay_ip = self.settings.overlay_local_ip or None
        dhcp = self.dhcp is not None
        l3 = self.routers is not None
        report = AgentReport(host=self.host, overlay_ip=overlay_ip, dhcp=dhcp, l3=l3)
        if full:
            report = AgentReport(host=self.host,
                                 stats=dataclasses.asdict(self.driver.host_stats()),
                                 taken_at=time.time(), instances=self.driver.list_instances(),
                                 startup=startup, overlay_ip=overlay_ip, dhcp=dhcp, l3=l3)
        self.conductor.agent_report(ctx, report)
