"""The host side of networking, one driver per host (setting `network_dataplane`):

- `linuxbridge`: a Linux bridge per network and a tap per port (pyroute2), MTU set, made
  before the VM starts, and made again by the agent on start for every port it hosts, so
  a host restart cannot leave a VM without its network;
- `noop`: nothing on the host (the fake virt driver), but it remembers what is plugged.

A network's bridge gets the uplink its type asks for (issue 14, l2): a `flat` network the
interface `physical_interface_mappings` names for its physical network, a `vlan` network a
802.1Q device on that interface, a `vxlan` network a VXLAN device from `overlay_local_ip`
whose forwarding database Cirrus fills (`set_peers`). A `local` network, one made before
network types, or one whose physnet this host does not map, has none: its traffic stays on
the host. Bridges and taps never get an address on the host.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from contextlib import contextmanager

from cirrus.network.dataplane.firewall import Firewall
from cirrus.network.model import NetworkPeer, Nic, bridge_name
from cirrus.network.port_filter import HostFilterState


class Dataplane(abc.ABC):
    name: str = ""
    # Security groups and anti-spoofing (issue 14, sg): linuxbridge's nftables firewall;
    # the base only records (the noop dataplane, `firewall_driver = "noop"`).
    firewall: Firewall

    def update_security_groups(self, state: HostFilterState) -> None:
        """Take the network service's filter state for this host (rules, members, ports)."""
        self.firewall.update(state)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Plug many ports, then apply the firewall once (the agent starting)."""
        with self.firewall.batch():
            yield

    @abc.abstractmethod
    def plug(self, nic: Nic) -> None:
        """Make the network's bridge (if missing) and the port's tap on it, both with the
        network's MTU. Idempotent: plugging a plugged port changes nothing."""

    @abc.abstractmethod
    def unplug(self, port_id: str, network_id: str) -> None:
        """Remove the port's tap; remove the bridge too once no tap is left on it.
        Unplugging what is not plugged is not an error."""

    @abc.abstractmethod
    def plugged(self) -> dict[str, str]:
        """tap name -> bridge name of every port this dataplane has plugged on the host."""

    @abc.abstractmethod
    def set_peers(self, network_id: str, peers: tuple[NetworkPeer, ...]) -> None:
        """The other hosts of a VXLAN network and their ports' MACs: the forwarding database
        of the network's VXLAN device becomes exactly that (a broadcast entry per peer VTEP,
        a unicast entry per MAC). Remembered for a device made later by `plug`."""

    # ---- DHCP (cirrus.network.dhcp.server): a network's bridge without a VM port on it
    def ensure_network(self, network_id: str, mtu: int, network_type: str | None = None,
                       physical_network: str | None = None,
                       segmentation_id: int | None = None) -> str:
        """Make the network's bridge if missing (at its MTU), with the uplink its segment
        needs on this host (a DHCP host with no VM port on the network still joins its
        overlay or provider network); its name."""
        return bridge_name(network_id)

    def release_network(self, network_id: str) -> None:
        """Remove the network's bridge if nothing is left on it."""
        return None


def load_dataplane(name: str, state_dir: str | None = None, netns: str | None = None,
                   firewall: str = "nftables", *,
                   physical_interface_mappings: dict[str, str] | None = None,
                   overlay_local_ip: str = "") -> Dataplane:
    """The dataplane called `name`; `netns` runs linuxbridge inside a network namespace
    (tests); `firewall` is linuxbridge's firewall driver (nftables or noop); the mappings
    and the VTEP address are the agent's settings of the same names."""
    if name == "noop":
        from cirrus.network.dataplane.noop import NoopDataplane

        return NoopDataplane()
    if name == "linuxbridge":
        from cirrus.network.dataplane.firewall import load_firewall
        from cirrus.network.dataplane.linuxbridge import LinuxBridgeDataplane

        return LinuxBridgeDataplane(netns=netns, firewall=load_firewall(firewall, netns),
                                    mappings=physical_interface_mappings,
                                    local_ip=overlay_local_ip)
    raise ValueError(f"unknown network dataplane {name!r} (known: noop, linuxbridge)")
