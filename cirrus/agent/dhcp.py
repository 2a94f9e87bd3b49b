"""The agent's DHCP messages (issue 14, dhcp): the networks this host serves DHCP for, each
a dnsmasq (cirrus.network.dhcp.server), as the control side (cirrus.network.dhcp.control)
says; messages older than the last one applied are dropped (cirrus.agent.stamps)."""

from __future__ import annotations

import threading

from cirrus.agent import rpcapi, stamps
from cirrus.agent.base import AgentBase, Received, log
from cirrus.context import RequestContext
from cirrus.network.dhcp.model import DhcpNetwork
from cirrus.network.dhcp.server import DhcpServer


class DhcpHandlers(AgentBase):
    dhcp: DhcpServer | None  # None: this host serves no DHCP (dhcp_agent off)
    _dhcp_stamps: dict[str, float]  # network id -> the stamp of its last message applied
    _dhcp_lock: threading.Lock

    def sync_dhcp(self, ctx: RequestContext, payload: rpcapi.SyncDhcp | Received) -> None:
        request = rpcapi.SyncDhcp.coerce(payload)
        if self.dhcp is None:
            log.warning("dhcp: %s serves no DHCP (dhcp_agent off): network %s ignored",
                        self.host, request.network_id)
            return
        with self._dhcp_lock:
            if not stamps.fresh(self._dhcp_stamps, request.network_id, request.stamp,
                                "dhcp", "network"):
                return
            if request.network is None:
                self.dhcp.remove(request.network_id)
            else:
                self.dhcp.sync(DhcpNetwork.from_dict(request.network))

    def sync_dhcp_all(self, ctx: RequestContext,
                      payload: rpcapi.SyncDhcpAll | Received) -> None:
        request = rpcapi.SyncDhcpAll.coerce(payload)
        if self.dhcp is None:
            return
        with self._dhcp_lock:
            listed = ((net.network_id, net)
                      for net in (DhcpNetwork.from_dict(n) for n in request.networks))
            self.dhcp.sync_all(stamps.merge_full(self._dhcp_stamps, listed,
                                                 self.dhcp.served(), request.stamp))
