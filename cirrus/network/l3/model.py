"""What an L3 host is told about one router: plain data, sent on the bus as `to_dict()`.

Every field comes from the router, its ports, their networks and subnets, and its floating
IPs, read by the control side (cirrus.network.l3.control).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

INTERFACE_OWNER = "network:router_interface"
GATEWAY_OWNER = "network:router_gateway"


@dataclass(frozen=True)
class RouterPort:
    """One leg of the router on a network: an interface or the gateway."""

    port_id: str
    mac: str
    addresses: tuple[str, ...]  # with their prefix ("10.0.0.1/24")
    network_id: str
    mtu: int = 1500
    network_type: str | None = None
    physical_network: str | None = None
    segmentation_id: int | None = None
    gateway_ips: tuple[str, ...] = ()  # the gateway: its subnets' gateways (default route)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RouterPort:
        return cls(port_id=data["port_id"], mac=data["mac"],
                   addresses=tuple(data.get("addresses") or ()),
                   network_id=data["network_id"], mtu=int(data.get("mtu") or 1500),
                   network_type=data.get("network_type"),
                   physical_network=data.get("physical_network"),
                   segmentation_id=data.get("segmentation_id"),
                   gateway_ips=tuple(data.get("gateway_ips") or ()))


@dataclass(frozen=True)
class RouterConfig:
    router_id: str
    interfaces: tuple[RouterPort, ...] = ()
    gateway: RouterPort | None = None
    enable_snat: bool = True
    routes: tuple[tuple[str, str], ...] = ()  # (destination, nexthop)
    floating_ips: tuple[tuple[str, str], ...] = ()  # (floating address, fixed address)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RouterConfig:
        gateway = data.get("gateway")
        return cls(router_id=data["router_id"],
                   interfaces=tuple(RouterPort.from_dict(i)
                                    for i in data.get("interfaces") or ()),
                   gateway=RouterPort.from_dict(gateway) if gateway else None,
                   enable_snat=bool(data.get("enable_snat", True)),
                   routes=tuple((str(d), str(n)) for d, n in data.get("routes") or ()),
                   floating_ips=tuple((str(f), str(x))
                                      for f, x in data.get("floating_ips") or ()))

    def networks(self) -> set[str]:
        """The networks the router has a leg on."""
        legs = [*self.interfaces, *([self.gateway] if self.gateway else [])]
        return {leg.network_id for leg in legs}
