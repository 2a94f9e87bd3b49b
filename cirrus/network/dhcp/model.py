"""What a DHCP host is told about one network: plain data, sent on the bus as `to_dict()`.

Nothing is invented: every field comes from the network, its DHCP-enabled subnets and its
ports, read by the control side (cirrus.network.dhcp.control).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

DHCP_OWNER = "network:dhcp"


@dataclass(frozen=True)
class DhcpSubnet:
    id: str
    cidr: str
    ip_version: int
    gateway_ip: str | None = None
    dns_nameservers: tuple[str, ...] = ()
    host_routes: tuple[tuple[str, str], ...] = ()  # (destination, nexthop)
    ipv6_address_mode: str | None = None  # None, slaac, dhcpv6-stateful, dhcpv6-stateless


@dataclass(frozen=True)
class DhcpEntry:
    """One address a port is to be given: a line of the hosts file."""

    mac: str
    ip: str
    hostname: str  # without the domain


@dataclass(frozen=True)
class DhcpNetwork:
    network_id: str
    mtu: int
    port_id: str  # this host's DHCP port
    mac: str  # its MAC: the namespace's interface
    addresses: tuple[str, ...]  # its addresses with their prefix ("10.0.0.2/24")
    subnets: tuple[DhcpSubnet, ...]
    entries: tuple[DhcpEntry, ...] = field(default_factory=tuple)
    lease: int = 86400  # seconds; -1: infinite
    domain: str = "openstacklocal"
    # The network's segment (issue 14, l2), so the DHCP host's bridge gets its uplink; None
    # from senders older than network types.
    network_type: str | None = None
    physical_network: str | None = None
    segmentation_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DhcpNetwork:
        subnets = tuple(DhcpSubnet(**{
            **sn, "dns_nameservers": tuple(sn.get("dns_nameservers") or ()),
            "host_routes": tuple(tuple(r) for r in sn.get("host_routes") or ())})
            for sn in data.get("subnets") or ())
        entries = tuple(DhcpEntry(**e) for e in data.get("entries") or ())
        return cls(network_id=data["network_id"], mtu=int(data["mtu"]),
                   port_id=data["port_id"], mac=data["mac"],
                   addresses=tuple(data.get("addresses") or ()), subnets=subnets,
                   entries=entries, lease=int(data.get("lease", 86400)),
                   domain=str(data.get("domain", "openstacklocal")),
                   network_type=data.get("network_type"),
                   physical_network=data.get("physical_network"),
                   segmentation_id=data.get("segmentation_id"))


def hostname_for(ip: str) -> str:
    """Neutron's name for a port's address: host-10-0-0-5, host-2001-db8--5."""
    return "host-" + ip.replace(".", "-").replace(":", "-")
