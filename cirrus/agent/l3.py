"""The agent's router messages (issue 14, l3): the routers this host runs, each a namespace
with its NAT (cirrus.network.l3.agent), as the control side (cirrus.network.l3.control)
says; messages older than the last one applied are dropped (cirrus.agent.stamps). What
became of each router is reported back (`router_status`), for its status."""

from __future__ import annotations

import threading

from cirrus.agent import rpcapi, stamps
from cirrus.agent.base import AgentBase, Received, log
from cirrus.compute.rpcapi import RouterStatus
from cirrus.context import RequestContext
from cirrus.network.l3.agent import RouterHost
from cirrus.network.l3.agent import failure as l3_failure
from cirrus.network.l3.model import RouterConfig


class RouterHandlers(AgentBase):
    routers: RouterHost | None  # None: this host runs no routers (l3_agent off)
    _l3_stamps: dict[str, float]  # router id -> the stamp of its last message applied
    _l3_lock: threading.Lock

    def sync_router(self, ctx: RequestContext, payload: rpcapi.SyncRouter | Received) -> None:
        request = rpcapi.SyncRouter.coerce(payload)
        if self.routers is None:
            log.warning("l3: %s runs no routers (l3_agent off): router %s ignored",
                        self.host, request.router_id)
            if request.router is not None:
                self._report_router(ctx, request.router_id, request.stamp,
                                    f"l3_agent is off on {self.host}")
            return
        with self._l3_lock:
            if not stamps.fresh(self._l3_stamps, request.router_id, request.stamp,
                                "l3", "router"):
                return
            if request.router is None:
                self.routers.remove(request.router_id)
                return
            try:
                self.routers.sync(RouterConfig.from_dict(request.router))
            except Exception as exc:  # the control side marks it ERROR, saying why
                log.exception("l3: router %s could not be made on %s", request.router_id,
                              self.host)
                self._report_router(ctx, request.router_id, request.stamp, l3_failure(exc))
                return
            self._report_router(ctx, request.router_id, request.stamp, None)

    def _report_router(self, ctx: RequestContext, router_id: str, stamp: float,
                       error: str | None) -> None:
        """Tell the control side what became of a router (its status follows)."""
        try:
            self.conductor.router_status(ctx, RouterStatus(
                host=self.host, router_id=router_id, built=error is None, error=error,
                stamp=stamp))
        except Exception:  # the next full report tells it again
            log.exception("l3: the status of router %s could not be reported", router_id)

    def sync_routers_all(self, ctx: RequestContext,
                         payload: rpcapi.SyncRoutersAll | Received) -> None:
        request = rpcapi.SyncRoutersAll.coerce(payload)
        if self.routers is None:
            return
        with self._l3_lock:
            listed = ((router.router_id, router)
                      for router in (RouterConfig.from_dict(r) for r in request.routers))
            outcome = self.routers.sync_all(stamps.merge_full(
                self._l3_stamps, listed, self.routers.served(), request.stamp))
            for router_id, error in sorted(outcome.items()):
                self._report_router(ctx, router_id, request.stamp, error)
