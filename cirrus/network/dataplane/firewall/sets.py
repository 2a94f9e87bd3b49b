"""The firewall's named sets and conntrack zones, as nftables text (pure functions):

- a remote group's member addresses, one interval set per IP version (`g4-`/`g6-<group>`),
  rendered as a block of the table or as commands that refill it in place;
- the addresses a port may send from (anti-spoofing): its MACs, fixed IPs, allowed address
  pairs and the link-local address of each MAC;
- a network's conntrack zone, a stable number from its id.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable

from cirrus.network.port_filter import PortFilter

TABLE = "cirrus"  # both tables' name (bridge cirrus, inet cirrus)


def short_id(group_id: str) -> str:
    return group_id.replace("-", "")


def set_name(group_id: str, version: int) -> str:
    return f"g{version}-{short_id(group_id)}"


def elements(items: Iterable[str]) -> str:
    return "{ " + ", ".join(items) + " }"


def set_lines(group_id: str, members: Iterable[str], op: str = "") -> list[str]:
    """The two sets of a remote group, as `set` blocks (op "") or `add set` commands."""
    lines = []
    by_version: dict[int, list[str]] = {4: [], 6: []}
    for addr in members:
        net = ipaddress.ip_network(addr, strict=False)
        by_version[net.version].append(str(net.network_address) if net.prefixlen ==
                                       net.max_prefixlen else str(net))
    for version in (4, 6):
        kind = "ipv4_addr" if version == 4 else "ipv6_addr"
        name = set_name(group_id, version)
        body = f"type {kind}; flags interval; auto-merge;"
        if op:
            lines.append(f"add set inet {TABLE} {name} {{ {body} }}")
            lines.append(f"flush set inet {TABLE} {name}")
            if by_version[version]:
                lines.append(f"add element inet {TABLE} {name} {elements(by_version[version])}")
        else:
            listed = f" elements = {elements(by_version[version])};" \
                if by_version[version] else ""
            lines.append(f"  set {name} {{ {body}{listed} }}")
    return lines


def conntrack_zone(network_id: str) -> int:
    """A network's conntrack zone, the same on every render (existing entries keep
    matching): 1-65535 from its id."""
    return int(hashlib.sha1(network_id.encode(), usedforsecurity=False).hexdigest()[:8], 16) % 65535 + 1


def link_local(mac: str) -> str:
    """The EUI-64 IPv6 link-local address of a MAC."""
    octets = [int(o, 16) for o in mac.split(":")]
    octets[0] ^= 2
    eui = octets[:3] + [0xFF, 0xFE] + octets[3:]
    return str(ipaddress.IPv6Address(bytes([0xFE, 0x80] + [0] * 6 + eui)))


def port_addresses(port: PortFilter) -> tuple[list[str], list[str], list[str]]:
    """The MACs, IPv4 and IPv6 networks a port may send from (pairs and link-local too)."""
    macs = sorted({port.mac.lower(), *(p.mac_address.lower() for p in port.allowed_address_pairs)})
    nets = [ipaddress.ip_network(a, strict=False) for a in
            (*port.addresses, *(p.ip_address for p in port.allowed_address_pairs))]
    v4 = sorted({str(n) for n in nets if n.version == 4})
    v6 = sorted({str(n) for n in nets if n.version == 6} | {link_local(m) for m in macs})
    return macs, v4, v6
