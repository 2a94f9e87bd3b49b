"""Plain data about a server's NICs, shared by the conductor, the agent, the dataplane and
the renderers. Everything here travels on the bus, so it is JSON-able (`to_dict`/`from_dict`).

A `Nic` is one port as the guest sees it: its index and name (eth0, eth1, ... in the order
the user asked for, the seed's `ports_pattern`), MAC, MTU, and fixed IPs with everything
about their subnets that a guest needs. Nothing is invented: every field comes from the
port, its subnets and its network.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


def bridge_name(network_id: str) -> str:
    """The Linux bridge of a network on every host (15 characters at most, as IFNAMSIZ)."""
    return f"brq{network_id[:11]}"


def tap_name(port_id: str) -> str:
    """The tap device of a port on its host."""
    return f"tap{port_id[:11]}"


def vxlan_name(network_id: str) -> str:
    """The VXLAN device of a network on every host that has a port of it (issue 14, l2)."""
    return f"vxl{network_id[:12]}"


@dataclass(frozen=True)
class SubnetInfo:
    id: str
    cidr: str  # "10.0.0.0/24", "2001:db8::/64"
    ip_version: int  # 4 or 6
    gateway_ip: str | None
    dns_nameservers: tuple[str, ...] = ()
    host_routes: tuple[tuple[str, str], ...] = ()  # (destination cidr, nexthop)
    enable_dhcp: bool = True
    ipv6_address_mode: str | None = None  # None, "slaac", "dhcpv6-stateful", ...


@dataclass(frozen=True)
class FixedIp:
    address: str
    subnet: SubnetInfo


@dataclass(frozen=True)
class Nic:
    index: int  # position in the guest: 0 -> eth0
    name: str  # the guest interface name the injected files use ("eth0")
    port_id: str
    mac: str
    network_id: str
    mtu: int
    fixed_ips: tuple[FixedIp, ...] = field(default_factory=tuple)
    # The network's segment (issue 14, l2; cirrus.network.segments): None for a network
    # made before network types, and in payloads from senders older than them.
    network_type: str | None = None
    physical_network: str | None = None
    segmentation_id: int | None = None
    # ---- port security (issue 14, sg): what the host's firewall needs of the port itself
    port_security_enabled: bool = True
    security_groups: tuple[str, ...] = ()
    allowed_address_pairs: tuple[tuple[str, str], ...] = ()  # (ip or cidr, mac)

    @property
    def bridge(self) -> str:
        return bridge_name(self.network_id)

    @property
    def tap(self) -> str:
        return tap_name(self.port_id)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Nic:
        ips = tuple(
            FixedIp(ip["address"], SubnetInfo(**{
                **ip["subnet"],
                "dns_nameservers": tuple(ip["subnet"].get("dns_nameservers") or ()),
                "host_routes": tuple(tuple(r) for r in ip["subnet"].get("host_routes") or ()),
            }))
            for ip in data.get("fixed_ips") or ())
        return cls(index=data["index"], name=data["name"], port_id=data["port_id"],
                   mac=data["mac"], network_id=data["network_id"], mtu=data["mtu"],
                   fixed_ips=ips, network_type=data.get("network_type"),
                   physical_network=data.get("physical_network"),
                   segmentation_id=data.get("segmentation_id"),
                   port_security_enabled=bool(data.get("port_security_enabled", True)),
                   security_groups=tuple(data.get("security_groups") or ()),
                   allowed_address_pairs=tuple((str(p[0]), str(p[1])) for p in
                                               data.get("allowed_address_pairs") or ()))


@dataclass(frozen=True)
class NetworkPeer:
    """Another host with ports on a VXLAN network (issue 14, l2): where its VTEP is, and the
    MACs of its ports there, for the forwarding database of the hosts it shares it with."""

    host: str
    vtep: str
    macs: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"host": self.host, "vtep": self.vtep, "macs": list(self.macs)}

    @classmethod
    def from_dict(cls, data: dict) -> NetworkPeer:
        return cls(host=data["host"], vtep=data["vtep"], macs=tuple(data.get("macs") or ()))
