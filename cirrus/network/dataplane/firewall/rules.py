"""One security group rule as what it matches: an nftables match (`render_rule`) and the
`conntrack -D` filters of the connections it may have allowed (`conntrack_filters`). Pure
functions of Neutron's rule fields."""

from __future__ import annotations

import ipaddress

from cirrus.network.dataplane.firewall.sets import set_name
from cirrus.network.port_filter import PortFilter, SecurityGroupRule

PROTOCOL_NUMBERS = {
    "ah": 51, "dccp": 33, "egp": 8, "esp": 50, "gre": 47, "hopopt": 0, "icmp": 1, "igmp": 2,
    "ip": 0, "ipip": 4, "ipv6-encap": 41, "ipv6-frag": 44, "ipv6-icmp": 58, "icmpv6": 58,
    "ipv6-nonxt": 59, "ipv6-opts": 60, "ipv6-route": 43, "ospf": 89, "pgm": 113, "rsvp": 46,
    "sctp": 132, "tcp": 6, "udp": 17, "udplite": 136, "vrrp": 112,
}
PORTED = {6, 17, 33, 132, 136}  # protocols whose rules may name destination ports
CONNTRACK_PROTOCOLS = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6", 132: "sctp", 33: "dccp",
                       136: "udplite", 47: "gre"}  # the names `conntrack -p` takes


def protocol_number(rule: SecurityGroupRule) -> int | None:
    """The IP protocol a rule matches; None for any."""
    if rule.protocol is None:
        return None
    text = str(rule.protocol).lower()
    number = int(text) if text.isdigit() else PROTOCOL_NUMBERS.get(text)
    if number is None or number == 0:  # "ip"/0 is any, as iptables reads protocol 0
        return None
    if number == 1 and rule.ethertype == "IPv6":  # Neutron: icmp on IPv6 means ICMPv6
        return 58
    return number


def render_rule(rule: SecurityGroupRule) -> str | None:
    """One nftables rule (accept) for a security group rule; None if it can never match."""
    v6 = rule.ethertype == "IPv6"
    family = "ip6" if v6 else "ip"
    parts = [f"meta nfproto {'ipv6' if v6 else 'ipv4'}"]
    peer = "saddr" if rule.direction == "ingress" else "daddr"
    if rule.remote_ip_prefix:
        net = ipaddress.ip_network(rule.remote_ip_prefix, strict=False)
        if net.version != (6 if v6 else 4):
            return None
        if net.prefixlen:
            parts.append(f"{family} {peer} {net}")
    if rule.remote_group_id:
        parts.append(f"{family} {peer} @{set_name(rule.remote_group_id, 6 if v6 else 4)}")
    proto = protocol_number(rule)
    low, high = rule.port_range_min, rule.port_range_max
    if proto is not None:
        parts.append(f"meta l4proto {proto}")
        if proto in PORTED and (low is not None or high is not None):
            low, high = low or high, high or low
            parts.append(f"th dport {low}" if low == high else f"th dport {low}-{high}")
        elif proto in (1, 58) and low is not None:
            icmp = "icmpv6" if proto == 58 else "icmp"
            parts.append(f"{icmp} type {low}")
            if high is not None:
                parts.append(f"{icmp} code {high}")
    return " ".join(parts) + " accept"


def conntrack_filters(port: PortFilter, rule: SecurityGroupRule) -> list[list[str]]:
    """`conntrack -D` arguments for the connections of `port` that `rule` may have
    allowed: by the port's address (destination for ingress, source for egress), the
    protocol and a single destination port (ranges: every port of the protocol)."""
    version = 6 if rule.ethertype == "IPv6" else 4
    side = "--dst" if rule.direction == "ingress" else "--src"
    match: list[str] = []
    proto = protocol_number(rule)
    if proto is not None:
        match += ["-p", CONNTRACK_PROTOCOLS.get(proto, str(proto))]
        if proto in PORTED and rule.port_range_min is not None \
                and rule.port_range_min == rule.port_range_max:
            match += ["--dport", str(rule.port_range_min)]
    addresses = [a for a in port.addresses if ipaddress.ip_address(a).version == version]
    family = "ipv6" if version == 6 else "ipv4"
    return [["-f", family, side, a, *match] for a in addresses]
