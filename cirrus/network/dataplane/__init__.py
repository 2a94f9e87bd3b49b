"""The host side of networking, one driver per host (setting `network_dataplane`):

- `linuxbridge`: a Linux bridge per network and a tap per port (pyroute2), MTU set, made
  before the VM starts, and made again by the agent on start for every port it hosts, so
  a host restart cannot leave a VM without its network;
- `noop`: nothing on the host (the fake virt driver), but it remembers what is plugged.

Bridges and taps have no uplink and no address on the host: nothing a guest sends leaves
the machine until a later issue connects networks to the outside.
"""

from __future__ import annotations

import abc

from cirrus.network.model import Nic, bridge_name


class Dataplane(abc.ABC):
    name: str = ""

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

    # ---- DHCP (cirrus.network.dhcp.server): a network's bridge without a VM port on it
    def ensure_network(self, network_id: str, mtu: int) -> str:
        """Make the network's bridge if missing (at its MTU); its name."""
        return bridge_name(network_id)

    def release_network(self, network_id: str) -> None:
        """Remove the network's bridge if nothing is left on it."""
        return None


def load_dataplane(name: str, state_dir: str | None = None, netns: str | None = None) -> Dataplane:
    """The dataplane called `name`; `netns` runs linuxbridge inside a network namespace
    (tests)."""
    if name == "noop":
        from cirrus.network.dataplane.noop import NoopDataplane

        return NoopDataplane()
    if name == "linuxbridge":
        from cirrus.network.dataplane.linuxbridge import LinuxBridgeDataplane

        return LinuxBridgeDataplane(netns=netns)
    raise ValueError(f"unknown network dataplane {name!r} (known: noop, linuxbridge)")
