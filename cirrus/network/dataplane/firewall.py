"""Security groups and anti-spoofing on a host, with nftables (issue 14).

Two tables, both owned by Cirrus and always replaced whole or changed in one `nft -f`
transaction (atomic; conntrack entries are kept, so established connections the new rules
still allow go on). Chains do not grow with the ports (nft slows down badly with
thousands of chains): ports are elements of sets and maps keyed by their tap.

- `bridge cirrus` sees each tap: stateless anti-spoofing in `prerouting` (sets `macs`,
  `addr4`, `addr6` of tap . address: only the port's MACs, fixed IPs, allowed address pairs
  and link-local addresses, ARP included); in `forward` it writes the source port's index
  into the packet mark (map `src_mark`) and the destination port's into the packet's
  priority as a classid (map `dst_class`, reset after the inet hooks in `forward_done`):
  the `inet` hooks that `br_netfilter` runs for bridged traffic only see the bridge as
  in/out device.
- `inet cirrus` is stateful (conntrack works here, not in the bridge family): one base
  chain on `forward` per direction dispatches (maps `egress` by mark, `ingress` by class)
  to the chain of the port's set of groups (`ce-`/`ci-<hash>`, shared by every port with
  the same groups), which jumps to the fixed part (`port_egress`/`port_ingress`:
  established/related accepted, DHCP client traffic and ICMPv6 neighbour discovery let
  through, the VM acting as a DHCP server or router refused, invalid dropped), then to
  each group's chain (`ge-`/`gi-<group>`, whose rules `accept`), and drops the rest.
  Accepting in the egress hook still leaves the packet to the ingress hook of its
  destination port.
- Remote groups are named sets of member addresses, `g4-<group>`/`g6-<group>`.
- Each network has its own conntrack zone (`zone`, raw priority, from the bridge), so equal
  addresses on two networks never share connection state.

A rule or membership change rewrites only the groups' chains and sets; a port change
replaces both tables. Ports with port security off get nothing: no element anywhere.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from cirrus.network.model import bridge_name
from cirrus.network.port_filter import HostFilterState, PortFilter, SecurityGroupRule

log = logging.getLogger(__name__)

TABLE = "cirrus"
CLASS_MAJOR = 0xC1  # the destination port's index is the minor of this classid
BRIDGE_PREFIX = "brq"  # as cirrus.network.model.bridge_name
MAX_PORTS = 0xFFFF
PROTOCOL_NUMBERS = {
    "ah": 51, "dccp": 33, "egp": 8, "esp": 50, "gre": 47, "hopopt": 0, "icmp": 1, "igmp": 2,
    "ip": 0, "ipip": 4, "ipv6-encap": 41, "ipv6-frag": 44, "ipv6-icmp": 58, "icmpv6": 58,
    "ipv6-nonxt": 59, "ipv6-opts": 60, "ipv6-route": 43, "ospf": 89, "pgm": 113, "rsvp": 46,
    "sctp": 132, "tcp": 6, "udp": 17, "udplite": 136, "vrrp": 112,
}
PORTED = {6, 17, 33, 132, 136}  # protocols whose rules may name destination ports
CONNTRACK_PROTOCOLS = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6", 132: "sctp", 33: "dccp",
                       136: "udplite", 47: "gre"}  # the names `conntrack -p` takes
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

    def filtered_ports(self) -> list[PortFilter]:
        return sorted((p for p in self.ports.values() if p.port_security_enabled),
                      key=lambda p: p.tap)


# ---------------------------------------------------------------- rendering (pure)


def _short(group_id: str) -> str:
    return group_id.replace("-", "")


def set_name(group_id: str, version: int) -> str:
    return f"g{version}-{_short(group_id)}"


def group_chain(group_id: str, direction: str) -> str:
    return f"{'ge' if direction == 'egress' else 'gi'}-{_short(group_id)}"


def _elements(items: Iterable[str]) -> str:
    return "{ " + ", ".join(items) + " }"


def _protocol(rule: SecurityGroupRule) -> int | None:
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
    proto = _protocol(rule)
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


def _remote_groups(rules: Mapping[str, tuple[SecurityGroupRule, ...]]) -> set[str]:
    return {r.remote_group_id for rs in rules.values() for r in rs if r.remote_group_id}


def _used_groups(state: FirewallState) -> set[str]:
    return {g for p in state.filtered_ports() for g in p.security_groups}


def _set_lines(group_id: str, members: Iterable[str], op: str = "") -> list[str]:
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
                lines.append(f"add element inet {TABLE} {name} {_elements(by_version[version])}")
        else:
            elements = f" elements = {_elements(by_version[version])};" \
                if by_version[version] else ""
            lines.append(f"  set {name} {{ {body}{elements} }}")
    return lines


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
# Stateless anti-spoofing in the bridge family: only a port's MACs and addresses leave it.
SPOOF_RULES = ["iifname != @filtered accept",
               "iifname . ether saddr != @macs drop",
               "ether type arp iifname . arp saddr ether != @macs drop",
               "ether type arp arp saddr ip 0.0.0.0 accept",
               "ether type arp iifname . arp saddr ip != @addr4 drop",
               "ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept",
               "iifname . ip saddr != @addr4 drop",
               "ip6 saddr :: icmpv6 type { nd-neighbor-solicit, mld2-listener-report, "
               "mld-listener-report, nd-router-solicit } accept",
               "iifname . ip6 saddr != @addr6 drop"]


def conntrack_zone(network_id: str) -> int:
    """A network's conntrack zone, the same on every render (existing entries keep
    matching): 1-65535 from its id."""
    return int(hashlib.sha1(network_id.encode(), usedforsecurity=False).hexdigest()[:8], 16) % 65535 + 1


def combo_chain(groups: tuple[str, ...], direction: str) -> str:
    """The chain of a set of groups: ports with the same groups share it."""
    digest = hashlib.sha1("/".join(sorted(groups)).encode(), usedforsecurity=False).hexdigest()[:16]
    return f"{'ce' if direction == 'egress' else 'ci'}-{digest}"


def _combo_rules(groups: tuple[str, ...], direction: str) -> list[str]:
    return [f"jump {'port_egress' if direction == 'egress' else 'port_ingress'}",
            *(f"jump {group_chain(g, direction)}" for g in sorted(groups)), "drop"]


def _link_local(mac: str) -> str:
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
    v6 = sorted({str(n) for n in nets if n.version == 6} | {_link_local(m) for m in macs})
    return macs, v4, v6


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
    out += _chain("zone", ["ct zone set iifname map @zones"],
                  "type filter hook prerouting priority -300; policy accept;")
    for group in sorted(_remote_groups(state.rules) | set(state.members)):
        out += _set_lines(group, state.members.get(group, ()))
    out += _map("egress", "mark : verdict",
                [f"0x{i << 16:08x} : jump {combo_chain(p.security_groups, 'egress')}"
                 for i, p in enumerate(ports, 1)])
    out += _map("ingress", "classid : verdict",
                [f"{CLASS_MAJOR:x}:{i:x} : jump {combo_chain(p.security_groups, 'ingress')}"
                 for i, p in enumerate(ports, 1)])
    # Only traffic bridged by Cirrus's bridges: other marks on the host are not ours.
    ours = f'iifname != "{BRIDGE_PREFIX}*" accept'
    out += _chain("egress_hook", [ours, "meta mark vmap @egress"],
                  "type filter hook forward priority 0; policy accept;")
    out += _chain("ingress_hook", [ours, "meta priority vmap @ingress"],
                  "type filter hook forward priority 10; policy accept;")
    out += _chain("port_egress", PORT_EGRESS)
    out += _chain("port_ingress", PORT_INGRESS)
    for group in sorted(_used_groups(state)):
        for direction in ("egress", "ingress"):
            out += _chain(group_chain(group, direction),
                          _group_rules(group, direction, state.rules))
    for combo in sorted({tuple(sorted(p.security_groups)) for p in ports}):
        for direction in ("egress", "ingress"):
            out += _chain(combo_chain(combo, direction), _combo_rules(combo, direction))
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
        lines = _set_lines(group, state.members.get(group, ()), op="add")
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


def _set(name: str, kind: str, elements: list[str]) -> list[str]:
    body = f"    elements = {_elements(elements)}" if elements else ""
    return [f"  set {name} {{", f"    type {kind}", *([body] if body else []), "  }"]


def _map(name: str, kind: str, elements: list[str], typeof: bool = False) -> list[str]:
    body = f"    elements = {_elements(elements)}" if elements else ""
    return [f"  map {name} {{", f"    {kind if typeof else f'type {kind}'}",
            *([body] if body else []), "  }"]


def conntrack_filters(port: PortFilter, rule: SecurityGroupRule) -> list[list[str]]:
    """`conntrack -D` arguments for the connections of `port` that `rule` may have
    allowed: by the port's address (destination for ingress, source for egress), the
    protocol and a single destination port (ranges: every port of the protocol)."""
    version = 6 if rule.ethertype == "IPv6" else 4
    side = "--dst" if rule.direction == "ingress" else "--src"
    match: list[str] = []
    proto = _protocol(rule)
    if proto is not None:
        match += ["-p", CONNTRACK_PROTOCOLS.get(proto, str(proto))]
        if proto in PORTED and rule.port_range_min is not None \
                and rule.port_range_min == rule.port_range_max:
            match += ["--dport", str(rule.port_range_min)]
    addresses = [a for a in port.addresses if ipaddress.ip_address(a).version == version]
    family = "ipv6" if version == 6 else "ipv4"
    return [["-f", family, side, a, *match] for a in addresses]


# ---------------------------------------------------------------- applying


class Firewall:
    """The host's filter state; `apply` is where a driver puts it on the host. This base
    only records it (the `noop` dataplane and the `noop` firewall driver)."""

    name = "noop"

    def __init__(self) -> None:
        self.state = FirewallState()
        self._lock = threading.RLock()
        self._deferred = 0
        self._dirty = True  # nothing applied yet: the first application is whole
        self._plugged: set[str] = set()  # ports plugged from a NIC on this host

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Apply once at the end, not per change (the agent re-plugging every port)."""
        with self._lock:
            self._deferred += 1
            try:
                yield
            finally:
                self._deferred -= 1
                if not self._deferred and self._dirty:
                    self._full()

    def set_port(self, port: PortFilter) -> None:
        with self._lock:
            self._plugged.add(port.port_id)
            if self.state.ports.get(port.port_id) == port:
                return
            self.state.ports[port.port_id] = port
            self._full()

    def remove_port(self, port_id: str) -> None:
        with self._lock:
            self._plugged.discard(port_id)
            if self.state.ports.pop(port_id, None) is not None:
                self._full()

    def update(self, update: HostFilterState) -> None:
        """Take the network service's state for this host: its ports (replacing those it
        listed before; ports plugged here that it does not list are kept), group rules and
        members. A stale one (older generation) is ignored."""
        with self._lock:
            if update.generation and update.generation < self.state.generation:
                log.info("firewall: ignored a stale update (%s < %s)", update.generation,
                         self.state.generation)
                return
            self.state.generation = update.generation
            ports = {p.port_id: p for p in update.ports}
            for port_id in self._plugged - set(ports):  # plugged here, unknown to the service
                if port_id in self.state.ports:
                    ports[port_id] = self.state.ports[port_id]
            changed_rules = {g for g in set(update.rules) | set(self.state.rules)
                             if update.rules.get(g, ()) != self.state.rules.get(g, ())}
            changed_members = {g for g in set(update.members) | set(self.state.members)
                               if update.members.get(g, ()) != self.state.members.get(g, ())}
            ports_changed = ports != self.state.ports
            removed = {g: [r for r in self.state.rules.get(g, ()) if r not in update.rules.get(g, ())]
                       for g in changed_rules}
            self.state.ports, self.state.rules = ports, dict(update.rules)
            self.state.members = dict(update.members)
            if ports_changed or self._dirty:
                self._full()
            elif changed_rules or changed_members:
                self._groups(changed_rules, changed_members)
            self._forget_removed({g: rules for g, rules in removed.items() if rules})

    def _forget_removed(self, removed: Mapping[str, list[SecurityGroupRule]]) -> None:
        """Connections a removed rule allowed are forgotten by conntrack (as Neutron does),
        so their next packet meets the new rules: dropped unless another rule allows it."""
        if not removed:
            return
        filters = []
        for port in self.state.filtered_ports():
            for group in set(port.security_groups) & set(removed):
                for rule in removed[group]:
                    filters += conntrack_filters(port, rule)
        if filters:
            self.forget_connections(filters)

    def forget_connections(self, filters: list[list[str]]) -> None:
        """Delete the conntrack entries each filter (`conntrack -D` arguments) matches."""

    def resync(self) -> None:
        with self._lock:
            self._full()

    def _full(self) -> None:
        if self._deferred:
            self._dirty = True
            return
        self._dirty = True  # until it is applied: a failed apply is retried whole next time
        self.apply(render_ruleset(self.state))
        self._dirty = False

    def _groups(self, groups: set[str], members: set[str]) -> None:
        if self._deferred or self._dirty:
            self._full()
            return
        self._dirty = True
        self.apply(render_group_update(self.state, groups, members))
        self._dirty = False

    def apply(self, script: str) -> None:
        """Put `script` on the host; the base records nothing more than the state."""


class NftFirewall(Firewall):
    """Applies with `nft -f -` in the dataplane's network namespace (or the host's)."""

    name = "nftables"

    def __init__(self, netns: str | None = None) -> None:
        super().__init__()
        self.netns = netns
        self._ready = False

    def _run(self, argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        return subprocess.run([*prefix, *argv], input=stdin, capture_output=True, text=True,
                              check=False)

    def _enable_br_netfilter(self) -> None:
        """Bridged IPv4/IPv6 traffic through the inet hooks (per network namespace)."""
        if shutil.which("nft") is None:
            raise RuntimeError("security groups cannot be enforced: `nft` is not installed "
                               "(apt-get install nftables), or set firewall_driver = \"noop\"")
        done = self._run(["sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=1",
                          "net.bridge.bridge-nf-call-ip6tables=1"])
        if done.returncode != 0:
            raise RuntimeError("security groups cannot be enforced: br_netfilter is not "
                               f"available ({done.stderr.strip()})")
        self._ready = True

    def forget_connections(self, filters: list[list[str]]) -> None:
        if shutil.which("conntrack") is None:
            log.warning("conntrack is not installed (apt-get install conntrack): connections "
                        "a removed rule allowed go on until they end")
            return
        for argv in filters:
            done = self._run(["conntrack", "-D", *argv])
            if done.returncode not in (0, 1):  # 1: nothing matched
                log.warning("conntrack -D %s failed: %s", " ".join(argv), done.stderr.strip())

    def apply(self, script: str) -> None:
        if not self._ready:
            self._enable_br_netfilter()
        started = time.monotonic()
        done = self._run(["nft", "-f", "-"], stdin=script)
        if done.returncode != 0:
            raise RuntimeError(f"nft failed: {done.stderr.strip()[:2000]}")
        log.info("firewall applied", extra={"ports": len(self.state.filtered_ports()),
                                            "seconds": round(time.monotonic() - started, 4)})


def load_firewall(name: str, netns: str | None = None) -> Firewall:
    if name == "nftables":
        return NftFirewall(netns=netns)
    if name == "noop":
        return Firewall()
    raise ValueError(f"unknown firewall driver {name!r} (known: nftables, noop)")
