"""The host's L2 side on the agent: each VM's NICs plugged into the dataplane (bridges, taps,
cirrus.network.dataplane), the other hosts of its VXLAN networks (l2, issue 14) and its
security groups (nftables, issue 14, sg), each kept on disk so that a restarted host
rebuilds them before any VM starts (`_replug`)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from cirrus.agent import rpcapi
from cirrus.agent.base import AgentBase, Received, log
from cirrus.agent.nics import NicStore
from cirrus.context import RequestContext
from cirrus.network.model import NetworkPeer, Nic
from cirrus.network.port_filter import HostFilterState


class NetworkHandlers(AgentBase):
    # The VXLAN peers last sent (network id -> [NetworkPeer dicts]), kept for a restart.
    peers: NicStore
    _peers_lock: threading.Lock
    _peers_taken_at: dict[str, float]  # network id -> its view applied last
    filter_state: Path  # the security groups last applied, kept for a restart

    def _replug(self) -> None:
        """Make the bridges and taps of every VM this host has, and its firewall from
        scratch, before anything else: after a host restart they are gone, and a VM must
        never start without them."""
        # The firewall is applied once, at the end; if it cannot be (no nft, no
        # br_netfilter) the agent does not start: its VMs must not run unfiltered.
        with self.dataplane.batch():
            self._replug_nics()
            if self.filter_state.exists():
                try:
                    saved = HostFilterState.from_dict(json.loads(self.filter_state.read_text()))
                except (OSError, ValueError, KeyError, TypeError):
                    log.exception("the saved security groups of %s are unreadable; waiting "
                                  "for the conductor's", self.host)
                else:
                    self.dataplane.update_security_groups(saved)

    def _replug_nics(self) -> None:
        running = self.driver.list_instances()
        for network_id, peers in self.peers.all().items():  # before the VXLAN devices
            try:
                self.dataplane.set_peers(network_id, _peers(peers))
            except Exception:
                log.exception("restoring the peers of network %s on %s failed", network_id,
                              self.host)
        for uuid, nics in self.nics.all().items():
            if uuid not in running:
                self._unplug(uuid, self.nics.pop(uuid))
                continue
            for nic in nics:
                try:
                    self.dataplane.plug(Nic.from_dict(nic))
                except Exception:
                    log.exception("re-plugging port %s of %s on %s failed", nic["port_id"],
                                  uuid, self.host)

    def _plug(self, uuid: str, nics: list[dict]) -> None:
        for nic in nics:
            self.dataplane.plug(Nic.from_dict(nic))
        self.nics.set(uuid, nics)

    def _unplug(self, uuid: str, nics: list[dict]) -> None:
        for nic in nics:
            try:
                self.dataplane.unplug(nic["port_id"], nic["network_id"])
            except Exception:
                log.exception("unplugging port %s of %s on %s failed", nic["port_id"], uuid,
                              self.host)

    def update_network_peers(self, ctx: RequestContext,
                             payload: rpcapi.NetworkPeers | Received) -> None:
        """The other hosts of this host's VXLAN networks (l2, issue 14): each listed
        network's forwarding database becomes its list; with `full`, unlisted ones are
        emptied. Kept on disk first, so a restart rebuilds the same."""
        request = rpcapi.NetworkPeers.coerce(payload)
        networks = {k: list(v) for k, v in request.networks.items()}
        taken_at = request.taken_at
        with self._peers_lock:
            if request.full:
                networks = {**{k: [] for k in self.peers.all()}, **networks}
            if taken_at is not None:  # an older view than one applied: out of order, dropped
                networks = {k: v for k, v in networks.items()
                            if self._peers_taken_at.get(k, 0.0) <= taken_at}
            for network_id, peers in networks.items():
                if taken_at is not None:
                    self._peers_taken_at[network_id] = taken_at
                self.peers.set(network_id, peers)
                try:
                    self.dataplane.set_peers(network_id, _peers(peers))
                except Exception:
                    log.exception("updating the peers of network %s on %s failed", network_id,
                                  self.host)
        log.info("network peers on %s: %d networks updated%s", self.host, len(networks),
                 " (full)" if request.full else "")

    def update_security_groups(self, ctx: RequestContext,
                               payload: rpcapi.UpdateSecurityGroups | Received) -> None:
        """Apply the host's filter state (issue 14, sg), kept on disk for the next start."""
        state = rpcapi.UpdateSecurityGroups.coerce(payload).state
        self.dataplane.update_security_groups(HostFilterState.from_dict(state))
        self.filter_state.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.filter_state.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.chmod(0o600)
        tmp.replace(self.filter_state)


def _peers(peers: list[dict]) -> tuple[NetworkPeer, ...]:
    return tuple(NetworkPeer.from_dict(peer) for peer in peers)
