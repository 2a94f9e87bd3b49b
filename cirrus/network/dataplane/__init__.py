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
from collections.abc import Iterator
from contextlib import contextmanager

from cirrus.network.dataplane.firewall import Firewall
from cirrus.network.model import Nic
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


def load_dataplane(name: str, state_dir: str | None = None, netns: str | None = None,
                   firewall: str = "nftables") -> Dataplane:
    """The dataplane called `name`; `netns` runs linuxbridge inside a network namespace
    (tests); `firewall` is linuxbridge's firewall driver (nftables or noop)."""
    if name == "noop":
        from cirrus.network.dataplane.noop import NoopDataplane

        return NoopDataplane()
    if name == "linuxbridge":
        from cirrus.network.dataplane.firewall import load_firewall
        from cirrus.network.dataplane.linuxbridge import LinuxBridgeDataplane

        return LinuxBridgeDataplane(netns=netns, firewall=load_firewall(firewall, netns))
    raise ValueError(f"unknown network dataplane {name!r} (known: noop, linuxbridge)")
