"""What a host needs to filter its ports' traffic (security groups, anti-spoofing), as plain
data that travels on the bus: the agent never reads the database.

- `PortFilter`: one port as the firewall sees it: its tap, MAC, fixed IPs, allowed address
  pairs, security groups, and whether port security is on (off: no filter, no
  anti-spoofing). Made from a `Nic` when a port is plugged, or by the network service.
- `SecurityGroupRule`: one rule as the firewall renders it (Neutron's fields).
- `HostFilterState`: everything one host needs, sent whole by the network service when a
  rule, a port's groups or a group's membership changes (`generation` orders them): its
  bound ports, the rules of their groups, the member addresses of every group their
  rules name as a remote group, and which of the groups are stateless.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from cirrus.network.model import Nic, tap_name


@dataclass(frozen=True)
class SecurityGroupRule:
    direction: str  # "ingress" (to the VM) or "egress" (from the VM)
    ethertype: str = "IPv4"  # or "IPv6"
    protocol: str | None = None  # None: any; a name (tcp, icmp, ...) or a number as text
    port_range_min: int | None = None  # for ICMP: the type
    port_range_max: int | None = None  # for ICMP: the code
    remote_ip_prefix: str | None = None
    remote_group_id: str | None = None

    @classmethod
    def from_dict(cls, data: dict) -> SecurityGroupRule:
        return cls(direction=data["direction"], ethertype=data.get("ethertype") or "IPv4",
                   protocol=data.get("protocol"), port_range_min=data.get("port_range_min"),
                   port_range_max=data.get("port_range_max"),
                   remote_ip_prefix=data.get("remote_ip_prefix"),
                   remote_group_id=data.get("remote_group_id"))


@dataclass(frozen=True)
class AddressPair:
    ip_address: str  # an address or a CIDR
    mac_address: str


@dataclass(frozen=True)
class PortFilter:
    port_id: str
    mac: str
    addresses: tuple[str, ...] = ()  # fixed IPs
    security_groups: tuple[str, ...] = ()
    port_security_enabled: bool = True
    allowed_address_pairs: tuple[AddressPair, ...] = ()
    network_id: str = ""  # its conntrack zone is its network's ("": the shared zone 0)

    @property
    def tap(self) -> str:
        return tap_name(self.port_id)

    @classmethod
    def from_nic(cls, nic: Nic) -> PortFilter:
        return cls(port_id=nic.port_id, mac=nic.mac,
                   addresses=tuple(ip.address for ip in nic.fixed_ips),
                   security_groups=tuple(nic.security_groups),
                   port_security_enabled=nic.port_security_enabled,
                   allowed_address_pairs=tuple(AddressPair(p[0], p[1])
                                               for p in nic.allowed_address_pairs),
                   network_id=nic.network_id)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PortFilter:
        return cls(port_id=data["port_id"], mac=data["mac"],
                   addresses=tuple(data.get("addresses") or ()),
                   security_groups=tuple(data.get("security_groups") or ()),
                   port_security_enabled=bool(data.get("port_security_enabled", True)),
                   allowed_address_pairs=tuple(AddressPair(**p) for p in
                                               data.get("allowed_address_pairs") or ()),
                   network_id=data.get("network_id") or "")


@dataclass(frozen=True)
class HostFilterState:
    generation: float = 0.0  # when the network service read it; older ones are ignored
    ports: tuple[PortFilter, ...] = ()
    rules: dict[str, tuple[SecurityGroupRule, ...]] = field(default_factory=dict)
    members: dict[str, tuple[str, ...]] = field(default_factory=dict)  # group -> addresses
    # Groups (of `rules`) with `stateful: false`: their ports' traffic is not tracked. Absent
    # from a state sent before stateless groups were enforced: every group stateful.
    stateless: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"generation": self.generation,
                "ports": [p.to_dict() for p in self.ports],
                "rules": {g: [dataclasses.asdict(r) for r in rules]
                          for g, rules in self.rules.items()},
                "members": {g: list(addrs) for g, addrs in self.members.items()},
                "stateless": list(self.stateless)}

    @classmethod
    def from_dict(cls, data: dict) -> HostFilterState:
        return cls(generation=float(data.get("generation") or 0.0),
                   ports=tuple(PortFilter.from_dict(p) for p in data.get("ports") or ()),
                   rules={g: tuple(SecurityGroupRule.from_dict(r) for r in rules)
                          for g, rules in (data.get("rules") or {}).items()},
                   members={g: tuple(addrs) for g, addrs in (data.get("members") or {}).items()},
                   stateless=tuple(data.get("stateless") or ()))
