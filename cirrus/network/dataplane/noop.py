"""The `noop` dataplane: nothing on the host, for the fake virt driver.

It still remembers what is plugged, so the agent's plug-on-start and unplug-on-delete paths
are exercised (and can be asserted on) without root or a Linux bridge.
"""

from __future__ import annotations

import threading

from cirrus.network.dataplane import Dataplane
from cirrus.network.dataplane.firewall import Firewall
from cirrus.network.model import NetworkPeer, Nic, tap_name
from cirrus.network.port_filter import PortFilter


class NoopDataplane(Dataplane):
    name = "noop"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._plugged: dict[str, str] = {}  # tap -> bridge
        self.peers: dict[str, tuple[NetworkPeer, ...]] = {}  # network id -> its peers
        self.firewall = Firewall()  # records the filter state, applies nothing

    def plug(self, nic: Nic) -> None:
        self.firewall.set_port(PortFilter.from_nic(nic))
        with self._lock:
            self._plugged[nic.tap] = nic.bridge

    def unplug(self, port_id: str, network_id: str) -> None:
        with self._lock:
            self._plugged.pop(tap_name(port_id), None)
        self.firewall.remove_port(port_id)

    def plugged(self) -> dict[str, str]:
        with self._lock:
            return dict(self._plugged)

    def set_peers(self, network_id: str, peers: tuple[NetworkPeer, ...]) -> None:
        with self._lock:
            self.peers[network_id] = tuple(peers)
