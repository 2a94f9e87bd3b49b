"""The host's two tables as one `nft -f` script (pure functions of a `FirewallState`):
`render_ruleset` replaces both whole (a port change, an agent starting),
`render_group_update` rewrites only the chains of groups whose rules changed and the sets
of groups whose membership changed. The layout is described in the package's docstring."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from cirrus.network.dataplane.firewall.rules import render_rule
from cirrus.network.dataplane.firewall.sets import (
    TABLE,
    conntrack_zone,
    elements,
    port_addresses,
    set_lines,
    short_id,
)
from cirrus.network.model import bridge_name
from cirrus.network.port_filter import PortFilter, SecurityGroupRule

CLASS_MAJOR = 0xC1  # the destination port's index is the minor of this classid
BRIDGE_PREFIX = "brq"  # as cirrus.network.model.bridge_name
MAX_PORTS = 0xFFFF
# ICMPv6 a port always needs (Neutron's list): MLD and neighbour discovery; RAs only inbound.
ND_EGRESS = "{ mld-listener-report, mld2-listener-report, nd-router-solicit, " \
            "nd-neighbor-solicit, nd-neighbor-advert }"
ND_INGRESS = "{ mld-listener-query, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert }"


@dataclass
class FirewallState:
    """What the host filters: ports by id, group rules and remote-group members."""

    ports: dict[str, PortFilter] = field(default_factory=dict)
    rules: dict[str, tuple[SecurityGroupRule, ...]] = field(default_factory=dict)
    members: dict[str, tuple[str, ...]] = field(default_factory=dict)
    generation: float = 0.0
    stateless: frozenset[str] = frozenset()  # groups with `stateful: false`

    def filtered_ports(self) -> list[PortFilter]:
        return sorted((p for p in self.ports.values() if p.port_security_enabled),
                      key=lambda p: p.tap)

    def is_stateless(self, groups: Iterable[str]) -> bool:
        """Ports whose groups are all stateless are not tracked (the API refuses a mix; a
        port with no group, or a mix sent anyway, is stateful)."""
        wanted = set(groups)
        return bool(wanted) and wanted <= self.stateless


def group_chain(group_id: str, direction: str) -> str:
    return f"{'ge' if direction == 'egress' else 'gi'}-{short_id(group_id)}"


def combo_chain(groups: tuple[str, ...], direction: str) -> str:
    """The chain of a set of groups: ports with the same groups share it."""
    digest = hashlib.sha1("/".join(sorted(groups)).encode(), usedforsecurity=False).hexdigest()[:16]
    return f"{'ce' if direction == 'egress' else 'ci'}-{digest}"


def _remote_groups(rules: Mapping[str, tuple[SecurityGroupRule, ...]]) -> set[str]:
    return {r.remote_group_id for rs in rules.values() for r in rs if r.remote_group_id}


def _used_groups(state: FirewallState) -> set[str]:
    return {g for p in state.filtered_ports() for g in p.security_groups}


def _group_rules(group_id: str, direction: str,
                 rules: Mapping[str, tuple[SecurityGroupRule, ...]]) -> list[str]:
    rendered = (render_rule(r) for r in rules.get(group_id, ()) if r.direction == direction)
    return [r for r in rendered if r]


# Fixed parts every filtered port has, before its groups' rules (Neutron's): stateful accept,
# DHCP client traffic and ICMPv6 neighbour discovery; no DHCP server, no router adverts.
PORT_EGRESS = ["ct state established,related accept",
               "udp sport 68 udp dport 67 accept",
               "udp sport 546 udp dport 547 accept",
               "udp sport 67 drop",
               "udp sport 547 drop",
               "icmpv6 type nd-router-advert drop",
               f"icmpv6 type {ND_EGRESS} accept",
               "ct state invalid drop"]
PORT_INGRESS = ["ct state established,related accept",
                "udp sport 67 udp dport 68 accept",
                "udp sport 547 udp dport 546 accept",
                f"icmpv6 type {ND_INGRESS} accept",
                "ct state invalid drop"]
# Stateless ports (groups with `stateful: false`, Neutron's semantics): their traffic is not
# tracked, so no shortcut for replies: every packet must match a rule of its direction.
PORT_EGRESS_STATELESS = [r for r in PORT_EGRESS if not r.startswith("ct ")]
PORT_INGRESS_STATELESS = [r for r in PORT_INGRESS if not r.startswith("ct ")]
# Stateless anti-spoofing in the bridge family: only a port's MACs and addresses leave it.
# Each packet meets only the rules of its own protocol (a verdict map by ether type).
# A VLAN-tagged frame (802.1Q, 802.1ad) from a port is dropped: the address checks below
# cannot see inside the tag, and br_netfilter does not pass tagged frames to the security
# groups (bridge-nf-filter-vlan-tagged is off), so a tag would carry anything past both.
SPOOF_RULES = ["iifname != @filtered accept",
               "iifname . ether saddr != @macs drop",
               "ether type { 0x8100, 0x88a8 } drop",
               "ether type vmap { arp : jump spoof_arp, ip : jump spoof_ip, "
               "ip6 : jump spoof_ip6 }"]
SPOOF_ARP = ["iifname . arp saddr ether != @macs drop",
             "arp saddr ip 0.0.0.0 accept",
             "iifname . arp saddr ip != @addr4 drop"]
SPOOF_IP = ["ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept",
            "iifname . ip saddr != @addr4 drop"]
SPOOF_IP6 = ["ip6 saddr :: icmpv6 type { nd-neighbor-solicit, mld2-listener-report, "
             "mld-listener-report, nd-router-solicit } accept",
             "iifname . ip6 saddr != @addr6 drop"]
# The inet base chains: a packet of a connection already allowed (established, or related
# to one) is accepted by the first rule, before any lookup of its port (a stateless port's
# packets are untracked: never established). Then only traffic bridged by Cirrus's bridges
# (other marks on the host are not ours) goes to the chain of its port's groups.
BRIDGED = f'iifname != "{BRIDGE_PREFIX}*" accept'
EGRESS_HOOK = ["ct state established,related accept", BRIDGED, "meta mark vmap @egress"]
INGRESS_HOOK = ["ct state established,related accept", BRIDGED, "meta priority vmap @ingress"]


def _combo_rules(groups: tuple[str, ...], direction: str, stateless: bool) -> list[str]:
    fixed = f"port_{direction}{'_stateless' if stateless else ''}"
    return [f"jump {fixed}", *(f"jump {group_chain(g, direction)}" for g in sorted(groups)),
            "drop"]


def render_ruleset(state: FirewallState) -> str:
    """Both tables, replacing whatever was there, as one `nft -f` transaction. Chains do
    not grow with the ports (nft slows down with thousands of chains): ports are elements
    of maps and sets, and share the chain of their set of groups."""
    ports = state.filtered_ports()
    if len(ports) > MAX_PORTS:  # never leave the ones beyond unfiltered
        raise ValueError(f"{len(ports)} filtered ports on one host: at most {MAX_PORTS}")
    out = [f"add table bridge {TABLE}", f"delete table bridge {TABLE}",
           f"add table inet {TABLE}", f"delete table inet {TABLE}",
           f"table bridge {TABLE} {{"]
    macs, ip4, ip6 = [], [], []
    for port in ports:
        mine = port_addresses(port)
        macs += [f'"{port.tap}" . {m}' for m in mine[0]]
        ip4 += [f'"{port.tap}" . {n}' for n in mine[1]]
        ip6 += [f'"{port.tap}" . {n}' for n in mine[2]]
    out += _set("filtered", "ifname", [f'"{p.tap}"' for p in ports])
    out += _set("macs", "ifname . ether_addr", macs)
    out += _set("addr4", "ifname . ipv4_addr; flags interval", ip4)
    out += _set("addr6", "ifname . ipv6_addr; flags interval", ip6)
    out += _map("src_mark", "ifname : mark",
                [f'"{p.tap}" : 0x{i << 16:08x}' for i, p in enumerate(ports, 1)])
    out += _map("dst_class", "ifname : classid",
                [f'"{p.tap}" : {CLASS_MAJOR:x}:{i:x}' for i, p in enumerate(ports, 1)])
    out += _chain("prerouting", SPOOF_RULES,
                  "type filter hook prerouting priority -200; policy accept;")
    out += _chain("spoof_arp", SPOOF_ARP)
    out += _chain("spoof_ip", SPOOF_IP)
    out += _chain("spoof_ip6", SPOOF_IP6)
    # The source port in the mark, the destination port in the priority (classid): the
    # inet hooks br_netfilter runs only see the bridge. Only packets from or to a tap.
    out += _chain("forward", ['iifname != "tap*" oifname != "tap*" accept', "meta mark set 0",
                              "meta mark set iifname map @src_mark",
                              "meta priority set oifname map @dst_class"],
                  "type filter hook forward priority -200; policy accept;")
    out += _chain("forward_done", ["oifname @filtered meta priority set 0"],
                  "type filter hook forward priority 100; policy accept;")
    out += ["}", f"table inet {TABLE} {{"]
    # One conntrack zone per network, so two networks' equal addresses never share state.
    # In prerouting br_netfilter shows the bridge, which is the network's.
    networks = sorted({p.network_id for p in ports if p.network_id})
    out += _map("zones", "typeof iifname : ct zone",
                [f'"{bridge_name(n)}" : {conntrack_zone(n)}' for n in networks], typeof=True)
    # Stateless ports' traffic, from them or to them, is not tracked: by MAC (a port's
    # source MAC is checked against the port by the bridge table before this runs). A MAC a
    # stateful port also has (an address pair's) stays tracked: never untrack a stateful port.
    tracked = {m for p in ports if not state.is_stateless(p.security_groups)
               for m in port_addresses(p)[0]}
    untracked = sorted({m for p in ports if state.is_stateless(p.security_groups)
                        for m in port_addresses(p)[0]} - tracked)
    notrack = []
    if untracked:
        out += _set("stateless", "ether_addr", untracked)
        notrack = ["ether saddr @stateless notrack accept", "ether daddr @stateless notrack accept"]
    out += _chain("zone", [*notrack, "ct zone set iifname map @zones"],
                  "type filter hook prerouting priority -300; policy accept;")
    for group in sorted(_remote_groups(state.rules) | set(state.members)):
        out += set_lines(group, state.members.get(group, ()))
    out += _map("egress", "mark : verdict",
                [f"0x{i << 16:08x} : jump {combo_chain(p.security_groups, 'egress')}"
                 for i, p in enumerate(ports, 1)])
    out += _map("ingress", "classid : verdict",
                [f"{CLASS_MAJOR:x}:{i:x} : jump {combo_chain(p.security_groups, 'ingress')}"
                 for i, p in enumerate(ports, 1)])
    out += _chain("egress_hook", EGRESS_HOOK,
                  "type filter hook forward priority 0; policy accept;")
    out += _chain("ingress_hook", INGRESS_HOOK,
                  "type filter hook forward priority 10; policy accept;")
    out += _chain("port_egress", PORT_EGRESS)
    out += _chain("port_ingress", PORT_INGRESS)
    if any(state.is_stateless(p.security_groups) for p in ports):
        out += _chain("port_egress_stateless", PORT_EGRESS_STATELESS)
        out += _chain("port_ingress_stateless", PORT_INGRESS_STATELESS)
    for group in sorted(_used_groups(state)):
        for direction in ("egress", "ingress"):
            out += _chain(group_chain(group, direction),
                          _group_rules(group, direction, state.rules))
    for combo in sorted({tuple(sorted(p.security_groups)) for p in ports}):
        for direction in ("egress", "ingress"):
            out += _chain(combo_chain(combo, direction),
                          _combo_rules(combo, direction, state.is_stateless(combo)))
    out.append("}")
    return "\n".join(out) + "\n"


def render_group_update(state: FirewallState, groups: Iterable[str],
                        member_groups: Iterable[str]) -> str:
    """Rewrite only the chains of `groups` (their rules changed) and the sets of
    `member_groups` (their membership changed), leaving ports and conntrack alone."""
    out: list[str] = []
    used = _used_groups(state)
    changed = set(member_groups)
    for group in sorted(changed | _remote_groups(state.rules)):
        # Sets whose members changed are refilled; the others are only made sure of (a rule
        # may name a group no rule named before): adding present elements changes nothing.
        lines = set_lines(group, state.members.get(group, ()), op="add")
        out += lines if group in changed else [x for x in lines if not x.startswith("flush")]
    for group in sorted(set(groups) & used):
        for direction in ("egress", "ingress"):
            chain = group_chain(group, direction)
            out += [f"add chain inet {TABLE} {chain}", f"flush chain inet {TABLE} {chain}"]
            out += [f"add rule inet {TABLE} {chain} {r}"
                    for r in _group_rules(group, direction, state.rules)]
    return "\n".join(out) + "\n"


def _chain(name: str, rules: list[str], head: str = "") -> list[str]:
    return [f"  chain {name} {{", *([f"    {head}"] if head else []),
            *(f"    {r}" for r in rules), "  }"]


def _size(kind: str, items: list[str]) -> list[str]:
    """A size for an exact-match set: the kernel then picks its fixed-size hash, cheaper per
    lookup than the resizable one it picks otherwise (these sets are only ever replaced
    whole, so they never grow past it). Interval sets keep their own backend."""
    if "interval" in kind:
        return []
    return [f"    size {max(64, 1 << (2 * len(items) - 1).bit_length())}"]


def _set(name: str, kind: str, items: list[str]) -> list[str]:
    body = f"    elements = {elements(items)}" if items else ""
    return [f"  set {name} {{", f"    type {kind}", *_size(kind, items),
            *([body] if body else []), "  }"]


def _map(name: str, kind: str, items: list[str], typeof: bool = False) -> list[str]:
    body = f"    elements = {elements(items)}" if items else ""
    return [f"  map {name} {{", f"    {kind if typeof else f'type {kind}'}",
            *_size(kind, items), *([body] if body else []), "  }"]
