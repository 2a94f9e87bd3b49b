"""The nftables rendering of security groups (cirrus.network.dataplane.firewall): each
Neutron rule field becomes the match it means, port chains carry the fixed parts (stateful
accept, DHCP and ND, default drop), anti-spoofing lists exactly the port's addresses, and
incremental updates touch only groups and sets. Pure functions: no nft needed here; the
rendered text is checked by the kernel in tests/network."""

from __future__ import annotations

import dataclasses

import pytest

from cirrus.network.dataplane.firewall import (
    Firewall,
    FirewallState,
    combo_chain,
    group_chain,
    render_group_update,
    render_rule,
    render_ruleset,
    set_name,
)
from cirrus.network.port_filter import AddressPair, HostFilterState, PortFilter
from cirrus.network.port_filter import SecurityGroupRule as Rule

G = "aaaaaaaa-0000-4000-8000-000000000001"
R = "bbbbbbbb-0000-4000-8000-000000000002"
P1 = "11111111-0000-4000-8000-000000000001"
P2 = "22222222-0000-4000-8000-000000000002"


@pytest.mark.parametrize(("rule", "expected"), [
    (Rule("ingress"), "meta nfproto ipv4 accept"),
    (Rule("egress", "IPv6"), "meta nfproto ipv6 accept"),
    (Rule("ingress", protocol="tcp", port_range_min=22, port_range_max=22),
     "meta nfproto ipv4 meta l4proto 6 th dport 22 accept"),
    (Rule("ingress", protocol="17", port_range_min=1000, port_range_max=2000),
     "meta nfproto ipv4 meta l4proto 17 th dport 1000-2000 accept"),
    (Rule("ingress", protocol="icmp", port_range_min=8, port_range_max=0),
     "meta nfproto ipv4 meta l4proto 1 icmp type 8 icmp code 0 accept"),
    (Rule("ingress", protocol="icmp", port_range_min=8),
     "meta nfproto ipv4 meta l4proto 1 icmp type 8 accept"),
    # Neutron: icmp on an IPv6 rule means ICMPv6
    (Rule("ingress", "IPv6", protocol="icmp", port_range_min=128),
     "meta nfproto ipv6 meta l4proto 58 icmpv6 type 128 accept"),
    (Rule("ingress", "IPv6", protocol="ipv6-icmp"), "meta nfproto ipv6 meta l4proto 58 accept"),
    (Rule("ingress", protocol="gre"), "meta nfproto ipv4 meta l4proto 47 accept"),
    (Rule("ingress", protocol="0"), "meta nfproto ipv4 accept"),  # 0 is any, as iptables
    (Rule("ingress", remote_ip_prefix="10.1.2.3/16"),
     "meta nfproto ipv4 ip saddr 10.1.0.0/16 accept"),
    (Rule("egress", remote_ip_prefix="10.1.0.0/16"),
     "meta nfproto ipv4 ip daddr 10.1.0.0/16 accept"),
    (Rule("ingress", remote_ip_prefix="0.0.0.0/0"), "meta nfproto ipv4 accept"),
    (Rule("ingress", "IPv6", remote_ip_prefix="2001:db8::/32"),
     "meta nfproto ipv6 ip6 saddr 2001:db8::/32 accept"),
    (Rule("ingress", remote_group_id=R, protocol="tcp", port_range_min=80, port_range_max=80),
     f"meta nfproto ipv4 ip saddr @{set_name(R, 4)} meta l4proto 6 th dport 80 accept"),
    (Rule("egress", "IPv6", remote_group_id=R), f"meta nfproto ipv6 ip6 daddr @{set_name(R, 6)} accept"),
])
def test_each_rule_field_renders_to_its_match(rule, expected):
    assert render_rule(rule) == expected


def test_a_prefix_of_the_other_ip_version_never_matches():
    assert render_rule(Rule("ingress", "IPv6", remote_ip_prefix="10.0.0.0/8")) is None


def _state(*ports: PortFilter, rules=None, members=None) -> FirewallState:
    return FirewallState(ports={p.port_id: p for p in ports}, rules=rules or {},
                         members=members or {})


def _chain(text: str, name: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(f"  chain {name} {{")
    end = lines.index("  }", start)
    return [line.strip() for line in lines[start + 1:end]]


def _elements(text: str, name: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line in (f"  set {name} {{", f"  map {name} {{"))
    end = lines.index("  }", start)
    body = " ".join(line.strip() for line in lines[start + 1:end])
    if "elements = {" not in body:
        return []
    return [e.strip() for e in body.split("elements = {", 1)[1].rsplit("}", 1)[0].split(",")]


def test_ports_are_stateful_default_deny_and_jump_to_their_groups():
    port = PortFilter(P1, "fa:16:3e:00:00:01", ("10.0.0.5",), (G,))
    text = render_ruleset(_state(port, rules={G: (Rule("ingress", protocol="tcp",
                                                        port_range_min=22, port_range_max=22),)}))
    # the port's mark and class lead to the chain of its groups, both directions
    assert _elements(text, "egress") == [f"0x00010000 : jump {combo_chain((G,), 'egress')}"]
    assert _elements(text, "ingress") == [f"c1:1 : jump {combo_chain((G,), 'ingress')}"]
    assert _elements(text, "src_mark") == [f'"{port.tap}" : 0x00010000']
    assert _elements(text, "dst_class") == [f'"{port.tap}" : c1:1']
    # an allowed connection's packets are accepted first, before any lookup of their port
    assert _chain(text, "egress_hook")[1:] == [
        "ct state established,related accept", 'iifname != "brq*" accept',
        "meta mark vmap @egress"]
    assert _chain(text, "ingress_hook")[1] == "ct state established,related accept"
    assert _chain(text, combo_chain((G,), "ingress")) == [
        "jump port_ingress", f"jump {group_chain(G, 'ingress')}", "drop"]
    ingress = _chain(text, "port_ingress")
    assert ingress[0] == "ct state established,related accept"
    assert "udp sport 67 udp dport 68 accept" in ingress  # DHCP answers
    assert ingress[-1] == "ct state invalid drop"
    egress = _chain(text, "port_egress")
    assert "udp sport 68 udp dport 67 accept" in egress  # DHCP requests
    assert "udp sport 67 drop" in egress  # no DHCP server
    assert "icmpv6 type nd-router-advert drop" in egress  # no router advertisements
    assert _chain(text, group_chain(G, "ingress")) == [
        "meta nfproto ipv4 meta l4proto 6 th dport 22 accept"]
    assert _chain(text, group_chain(G, "egress")) == []  # no egress rule: nothing leaves


def test_stateless_ports_are_not_tracked_and_have_no_reply_shortcut():
    """Groups with `stateful: false`: their ports' packets (from or to their MACs) get
    `notrack` before conntrack, and their fixed part has no `ct state` rule: a reply must
    match a rule of its direction. Stateful ports beside them are unchanged."""
    raw = PortFilter(P1, "fa:16:3e:00:00:01", ("10.0.0.5",), (R,),
                     allowed_address_pairs=(AddressPair("10.9.0.1", "fa:16:3e:00:00:99"),))
    tracked = PortFilter(P2, "fa:16:3e:00:00:02", ("10.0.0.6",), (G,))
    state = _state(raw, tracked)
    state.stateless = frozenset({R})
    text = render_ruleset(state)
    assert _elements(text, "stateless") == ["fa:16:3e:00:00:01", "fa:16:3e:00:00:99"]
    assert _chain(text, "zone") == [
        "type filter hook prerouting priority -300; policy accept;",
        "ether saddr @stateless notrack accept", "ether daddr @stateless notrack accept",
        "ct zone set iifname map @zones"]
    assert _chain(text, combo_chain((R,), "ingress"))[0] == "jump port_ingress_stateless"
    assert _chain(text, combo_chain((R,), "egress"))[0] == "jump port_egress_stateless"
    assert _chain(text, combo_chain((G,), "ingress"))[0] == "jump port_ingress"
    for direction in ("ingress", "egress"):
        fixed = _chain(text, f"port_{direction}_stateless")
        assert fixed and not any("ct " in rule for rule in fixed)
        assert "ct state established,related accept" in _chain(text, f"port_{direction}")
    assert "udp sport 67 udp dport 68 accept" in _chain(text, "port_ingress_stateless")
    # a MAC a stateful port has too (an address pair's) is never untracked
    shared = dataclasses.replace(tracked, allowed_address_pairs=(
        AddressPair("10.0.0.7", "fa:16:3e:00:00:99"),))
    state = _state(raw, shared)
    state.stateless = frozenset({R})
    assert _elements(render_ruleset(state), "stateless") == ["fa:16:3e:00:00:01"]
    # a port with a stateful group among stateless ones (the API refuses it) is stateful
    mixed = dataclasses.replace(raw, security_groups=(R, G))
    state = _state(mixed)
    state.stateless = frozenset({R})
    text = render_ruleset(state)
    assert "notrack" not in text and "stateless" not in text


def test_a_group_becoming_stateless_replaces_everything():
    fw = Recording()
    port = PortFilter(P1, "fa:16:3e:00:00:01", ("10.0.0.5",), (G,))
    rules = {G: (Rule("egress"),)}
    fw.update(HostFilterState(generation=1, ports=(port,), rules=rules))
    assert "notrack" not in fw.scripts[-1]
    fw.update(HostFilterState(generation=2, ports=(port,), rules=rules, stateless=(G,)))
    assert fw.scripts[-1].startswith("add table bridge cirrus")
    assert "jump port_ingress_stateless" in fw.scripts[-1]
    # and it travels on the bus and to disk; a state without the key is all stateful
    sent = HostFilterState(generation=2, ports=(port,), rules=rules, stateless=(G,))
    assert HostFilterState.from_dict(sent.to_dict()) == sent
    legacy = sent.to_dict()
    del legacy["stateless"]
    assert HostFilterState.from_dict(legacy).stateless == ()


def test_a_removed_rule_of_a_stateless_port_forgets_nothing():
    class Forgetting(Recording):
        forgotten: list[list[str]] = []

        def forget_connections(self, filters: list[list[str]]) -> None:
            self.forgotten = [*self.forgotten, *filters]

    fw = Forgetting()
    port = PortFilter(P1, "fa:16:3e:00:00:01", ("10.0.0.5",), (G,))
    ssh = Rule("ingress", protocol="tcp", port_range_min=22, port_range_max=22)
    fw.update(HostFilterState(generation=1, ports=(port,), rules={G: (ssh,)}, stateless=(G,)))
    fw.update(HostFilterState(generation=2, ports=(port,), rules={G: ()}, stateless=(G,)))
    assert fw.forgotten == []
    fw.update(HostFilterState(generation=3, ports=(port,), rules={G: (ssh,)}))
    fw.update(HostFilterState(generation=4, ports=(port,), rules={G: ()}))
    assert fw.forgotten == [["-f", "ipv4", "--dst", "10.0.0.5", "-p", "tcp", "--dport", "22"]]


def test_ports_with_the_same_groups_share_their_chains():
    ports = [PortFilter(f"{i:08x}-0000-4000-8000-000000000000", f"fa:16:3e:00:00:{i:02x}",
                        (f"10.0.0.{i}",), (G, R) if i % 2 else (R, G)) for i in range(1, 41)]
    text = render_ruleset(_state(*ports))
    # 6 bridge and 5 inet fixed chains, 2 per group, 2 for the one set of groups
    assert text.count("  chain ") == 11 + 2 * 2 + 2
    assert len(_elements(text, "egress")) == 40


def test_anti_spoofing_allows_exactly_the_ports_addresses_and_pairs():
    port = PortFilter(P1, "fa:16:3e:00:00:01", ("10.0.0.5", "2001:db8::5"), (G,),
                      allowed_address_pairs=(AddressPair("10.9.0.0/24", "fa:16:3e:00:00:99"),))
    text = render_ruleset(_state(port))
    tap = f'"{port.tap}"'
    assert _elements(text, "macs") == [f"{tap} . fa:16:3e:00:00:01", f"{tap} . fa:16:3e:00:00:99"]
    assert _elements(text, "addr4") == [f"{tap} . 10.0.0.5/32", f"{tap} . 10.9.0.0/24"]
    addr6 = _elements(text, "addr6")
    assert f"{tap} . 2001:db8::5/128" in addr6
    assert f"{tap} . fe80::f816:3eff:fe00:1" in addr6  # EUI-64 link-local of each MAC
    spoof = _chain(text, "prerouting")
    assert spoof[1:3] == ["iifname != @filtered accept", "iifname . ether saddr != @macs drop"]
    assert spoof[3] == "ether type { 0x8100, 0x88a8 } drop"  # no VLAN tag hides a source
    # then only the rules of the packet's protocol
    assert spoof[4] == ("ether type vmap { arp : jump spoof_arp, ip : jump spoof_ip, "
                        "ip6 : jump spoof_ip6 }")
    assert _chain(text, "spoof_ip")[-1] == "iifname . ip saddr != @addr4 drop"
    assert _chain(text, "spoof_ip6")[-1] == "iifname . ip6 saddr != @addr6 drop"
    assert _chain(text, "spoof_arp") == ["iifname . arp saddr ether != @macs drop",
                                         "arp saddr ip 0.0.0.0 accept",
                                         "iifname . arp saddr ip != @addr4 drop"]


def test_a_port_without_ipv4_sends_none():
    port = PortFilter(P1, "fa:16:3e:00:00:01", ("2001:db8::5",), ())
    text = render_ruleset(_state(port))
    assert _elements(text, "addr4") == []  # its lookups fail: every IPv4 source is dropped
    assert _elements(text, "filtered") == [f'"{port.tap}"']


def test_ports_with_port_security_off_get_no_chain_and_no_mark():
    on = PortFilter(P1, "fa:16:3e:00:00:01", ("10.0.0.5",), (G,))
    off = PortFilter(P2, "fa:16:3e:00:00:02", ("10.0.0.6",), port_security_enabled=False)
    text = render_ruleset(_state(on, off))
    assert on.tap in text and off.tap not in text


def test_remote_groups_are_sets_of_member_addresses_per_ip_version():
    port = PortFilter(P1, "fa:16:3e:00:00:01", ("10.0.0.5",), (G,))
    text = render_ruleset(_state(port, rules={G: (Rule("ingress", remote_group_id=R),)},
                                 members={R: ("10.0.0.7", "2001:db8::7", "10.2.0.0/16")}))
    assert (f"  set {set_name(R, 4)} {{ type ipv4_addr; flags interval; auto-merge; "
            "elements = { 10.0.0.7, 10.2.0.0/16 }; }") in text
    assert f"  set {set_name(R, 6)} {{ type ipv6_addr; flags interval; auto-merge; elements = {{ 2001:db8::7 }}; }}" in text


def test_a_rule_or_membership_change_rewrites_only_groups_and_sets():
    port = PortFilter(P1, "fa:16:3e:00:00:01", ("10.0.0.5",), (G,))
    state = _state(port, rules={G: (Rule("ingress", remote_group_id=R),)}, members={R: ("10.0.0.7",)})
    text = render_group_update(state, {G}, {R})
    assert port.tap not in text  # no port chain, map or mark touched
    assert f"flush chain inet cirrus {group_chain(G, 'ingress')}" in text
    assert f"flush set inet cirrus {set_name(R, 4)}" in text
    assert f"add element inet cirrus {set_name(R, 4)} {{ 10.0.0.7 }}" in text
    rules_only = render_group_update(state, {G}, set())
    assert f"flush set inet cirrus {set_name(R, 4)}" not in rules_only  # members unchanged
    assert f"add set inet cirrus {set_name(R, 4)}" in rules_only  # but made sure of


class Recording(Firewall):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []

    def apply(self, script: str) -> None:
        self.scripts.append(script)


def test_updates_choose_full_or_group_application_and_ignore_stale_ones():
    fw = Recording()
    port = PortFilter(P1, "fa:16:3e:00:00:01", ("10.0.0.5",), (G,))
    fw.update(HostFilterState(generation=2, ports=(port,), rules={G: (Rule("egress"),)}))
    assert fw.scripts[-1].startswith("add table bridge cirrus")  # a port: full replacement
    fw.update(HostFilterState(generation=3, ports=(port,), rules={G: (Rule("ingress"),)}))
    assert fw.scripts[-1].startswith("add chain inet cirrus")  # rules only: groups
    count = len(fw.scripts)
    fw.update(HostFilterState(generation=1, ports=(), rules={}))  # older: ignored
    assert len(fw.scripts) == count and fw.state.rules[G] == (Rule("ingress"),)
    fw.set_port(port)  # unchanged: nothing applied
    assert len(fw.scripts) == count
    with fw.batch():
        fw.remove_port(P1)
        fw.set_port(port)
        assert len(fw.scripts) == count
    assert len(fw.scripts) == count + 1  # once, at the end of the batch


def test_a_removed_rule_forgets_the_connections_it_may_have_allowed():
    port = PortFilter(P1, "fa:16:3e:00:00:01", ("10.0.0.5", "2001:db8::5"), (G,))
    ssh = Rule("ingress", protocol="tcp", port_range_min=22, port_range_max=22)
    from cirrus.network.dataplane.firewall import conntrack_filters

    assert conntrack_filters(port, ssh) == [
        ["-f", "ipv4", "--dst", "10.0.0.5", "-p", "tcp", "--dport", "22"]]
    assert conntrack_filters(port, Rule("egress", "IPv6", protocol="udp", port_range_min=1,
                                        port_range_max=9)) == [
        ["-f", "ipv6", "--src", "2001:db8::5", "-p", "udp"]]

    class Forgetting(Recording):
        def __init__(self) -> None:
            super().__init__()
            self.forgotten: list[list[str]] = []

        def forget_connections(self, filters: list[list[str]]) -> None:
            self.forgotten += filters

    fw = Forgetting()
    fw.update(HostFilterState(generation=1, ports=(port,), rules={G: (ssh, Rule("egress"))}))
    fw.update(HostFilterState(generation=2, ports=(port,), rules={G: (ssh,)}))  # egress gone
    assert fw.forgotten == [["-f", "ipv4", "--src", "10.0.0.5"]]
    fw.update(HostFilterState(generation=3, ports=(port,), rules={G: (ssh, Rule("egress"))}))
    assert len(fw.forgotten) == 1  # an added rule cuts nothing


def test_each_network_has_its_own_stable_conntrack_zone():
    from cirrus.network.dataplane.firewall import conntrack_zone
    from cirrus.network.model import bridge_name

    net1, net2 = "4e4e4e4e-0000-4000-8000-000000000001", "4e4e4e4e-0000-4000-8000-000000000002"
    ports = [PortFilter(P1, "fa:16:3e:00:00:01", ("10.0.0.5",), (G,), network_id=net1),
             PortFilter(P2, "fa:16:3e:00:00:02", ("10.0.0.5",), (G,), network_id=net2)]
    text = render_ruleset(_state(*ports))
    assert sorted(_elements(text, "zones")) == sorted(
        [f'"{bridge_name(net1)}" : {conntrack_zone(net1)}',
         f'"{bridge_name(net2)}" : {conntrack_zone(net2)}'])
    assert conntrack_zone(net1) != conntrack_zone(net2)
    assert conntrack_zone(net1) == conntrack_zone(net1) and 1 <= conntrack_zone(net1) <= 65535
    assert _chain(text, "zone") == ["type filter hook prerouting priority -300; policy accept;",
                                    "ct zone set iifname map @zones"]


def test_ports_the_service_stops_listing_go_unless_plugged_here():
    fw = Recording()
    plugged = PortFilter(P1, "fa:16:3e:00:00:01", ("10.0.0.5",), (G,))
    elsewhere = PortFilter(P2, "fa:16:3e:00:00:02", ("10.0.0.6",), (G,))
    fw.set_port(plugged)
    fw.update(HostFilterState(generation=1, ports=(plugged, elsewhere)))
    assert set(fw.state.ports) == {P1, P2}
    fw.update(HostFilterState(generation=2, ports=()))  # both unbound from this host
    assert set(fw.state.ports) == {P1}  # the plugged one stays until it is unplugged
    fw.remove_port(P1)
    assert fw.state.ports == {}


def test_a_failed_apply_is_retried_whole_and_the_first_one_is_whole():
    class Failing(Recording):
        fail = False

        def apply(self, script: str) -> None:
            if self.fail:
                raise RuntimeError("nft failed")
            super().apply(script)

    fw = Failing()
    port = PortFilter(P1, "fa:16:3e:00:00:01", ("10.0.0.5",), (G,))
    fw.update(HostFilterState(generation=1, rules={G: (Rule("egress"),)}))
    assert fw.scripts[-1].startswith("add table bridge cirrus")  # first: whole, even portless
    fw.update(HostFilterState(generation=2, ports=(port,), rules={G: (Rule("egress"),)}))
    fw.fail = True
    with pytest.raises(RuntimeError):
        fw.update(HostFilterState(generation=3, ports=(port,), rules={G: (Rule("ingress"),)}))
    fw.fail = False
    fw.update(HostFilterState(generation=4, ports=(port,), rules={G: (Rule("ingress"),)}))
    assert fw.scripts[-1].startswith("add table bridge cirrus")  # no change, but retried whole
