"""Security groups enforced with nftables, checked with real TCP connections between "VMs"
(namespaces) on a bridge in a "host" namespace with br_netfilter (tests/network/lab.py).

Needs root, iproute2 and nft; skips with the reason otherwise (CI has them).
"""

from __future__ import annotations

import dataclasses
import shutil
import socket
import time
from collections.abc import Iterator

import pytest

from cirrus.network.dataplane.firewall import NftFirewall, combo_chain
from cirrus.network.port_filter import AddressPair, HostFilterState, PortFilter
from cirrus.network.port_filter import SecurityGroupRule as Rule
from tests.network.lab import Lab, Vm, echo_alive, in_netns, require_nftables, run
from tests.services import missing

WEB = "0a0a0a0a-0000-4000-8000-000000000001"
CLIENTS = "0a0a0a0a-0000-4000-8000-000000000002"
EGRESS = (Rule("egress", "IPv4"), Rule("egress", "IPv6"))
SSH = Rule("ingress", "IPv4", "tcp", 22, 22)


@pytest.fixture
def lab() -> Iterator[Lab]:
    require_nftables()
    lab = Lab()
    try:
        yield lab
    finally:
        lab.close()


def port(vm: Vm, *groups: str, security: bool = True,
         pairs: tuple[AddressPair, ...] = ()) -> PortFilter:
    return PortFilter(port_id=vm.port_id, mac=vm.mac, addresses=(vm.ip,),
                      security_groups=groups, port_security_enabled=security,
                      allowed_address_pairs=pairs)


class Host:
    """The firewall of the lab's host and the state the network service would send."""

    def __init__(self, lab: Lab) -> None:
        self.firewall = NftFirewall(netns=lab.host)
        self.generation = 0.0

    def send(self, ports: list[PortFilter], rules: dict, members: dict | None = None,
             stateless: tuple[str, ...] = ()) -> None:
        self.generation += 1
        self.firewall.update(HostFilterState(generation=self.generation, ports=tuple(ports),
                                             rules=rules, members=members or {},
                                             stateless=stateless))


def within_a_second(check) -> bool:
    deadline = time.monotonic() + 1.0
    while True:
        if check():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def test_a_group_allowing_tcp_22_lets_22_in_and_drops_the_rest(lab: Lab):
    client, server = lab.vm("10.77.0.1"), lab.vm("10.77.0.2")
    lab.serve(server, 22, 80)
    assert client.reaches(server, 80)  # no filter yet: open
    host = Host(lab)
    host.send([port(client, CLIENTS), port(server, WEB)],
              {WEB: (*EGRESS, SSH), CLIENTS: EGRESS})
    assert client.reaches(server, 22)
    assert not client.reaches(server, 80, timeout=0.5)
    # default-deny ingress: the client's group allows nothing in
    lab.serve(client, 22)
    assert not server.reaches(client, 22, timeout=0.5)


def test_a_new_rule_applies_within_a_second_and_established_connections_survive(lab: Lab):
    client, server = lab.vm("10.77.0.1"), lab.vm("10.77.0.2")
    lab.serve(server, 22, 8080)
    host = Host(lab)
    ports = [port(client, CLIENTS), port(server, WEB)]
    host.send(ports, {WEB: (*EGRESS, SSH), CLIENTS: EGRESS})
    ssh = client.connect(server.ip, 22)
    assert ssh is not None
    assert not client.reaches(server, 8080, timeout=0.3)
    http = Rule("ingress", "IPv4", "tcp", 8000, 8100, remote_ip_prefix="10.77.0.0/24")
    started = time.monotonic()
    host.send(ports, {WEB: (*EGRESS, SSH, http), CLIENTS: EGRESS})
    assert within_a_second(lambda: client.reaches(server, 8080, timeout=0.3))
    assert time.monotonic() - started < 1.0
    assert echo_alive(ssh)  # the unrelated change kept the established connection
    # a port change (full replacement of both tables) keeps it too
    host.send([*ports, port(lab.vm("10.77.0.3"), CLIENTS)], {WEB: (*EGRESS, SSH, http),
                                                              CLIENTS: EGRESS})
    assert echo_alive(ssh)
    ssh.close()


def test_remote_group_allows_members_only_and_follows_membership(lab: Lab):
    member, outsider, server = lab.vm("10.77.0.1"), lab.vm("10.77.0.5"), lab.vm("10.77.0.2")
    lab.serve(server, 22)
    host = Host(lab)
    from_clients = Rule("ingress", "IPv4", "tcp", 22, 22, remote_group_id=CLIENTS)
    ports = [port(member, CLIENTS), port(outsider, "0a0a0a0a-0000-4000-8000-00000000000f"),
             port(server, WEB)]
    rules = {WEB: (*EGRESS, from_clients), CLIENTS: EGRESS,
             "0a0a0a0a-0000-4000-8000-00000000000f": EGRESS}
    host.send(ports, rules, {CLIENTS: (member.ip,)})
    assert member.reaches(server, 22)
    assert not outsider.reaches(server, 22, timeout=0.5)
    # the outsider joins the group: only the set changes
    host.send(ports, rules, {CLIENTS: (member.ip, outsider.ip)})
    assert within_a_second(lambda: outsider.reaches(server, 22, timeout=0.3))
    # and leaves it again
    host.send(ports, rules, {CLIENTS: (member.ip,)})
    assert not outsider.reaches(server, 22, timeout=0.5)
    assert member.reaches(server, 22)


def test_a_spoofed_source_ip_or_mac_is_dropped_and_address_pairs_are_allowed(lab: Lab):
    client, server = lab.vm("10.77.0.1"), lab.vm("10.77.0.2")
    lab.serve(server, 22)
    host = Host(lab)
    open_in = Rule("ingress", "IPv4")
    rules = {WEB: (*EGRESS, open_in), CLIENTS: EGRESS}
    host.send([port(client, CLIENTS), port(server, WEB)], rules)
    run("ip", "-n", client.netns, "addr", "add", "10.77.0.99/24", "dev", "eth0")
    assert client.reaches(server, 22)
    assert not client.reaches(server, 22, timeout=0.5, source="10.77.0.99")
    # an allowed address pair makes that address the port's too
    host.send([port(client, CLIENTS, pairs=(AddressPair("10.77.0.96/29", client.mac),)),
               port(server, WEB)], rules)
    assert client.reaches(server, 22, source="10.77.0.99")
    run("ip", "-n", client.netns, "link", "set", "eth0", "address", "fa:16:3e:66:66:66")
    run("ip", "-n", client.netns, "neigh", "flush", "all")
    run("ip", "-n", server.netns, "neigh", "flush", "all")
    assert not client.reaches(server, 22, timeout=0.5)


def test_port_security_off_means_no_filter_and_no_anti_spoofing(lab: Lab):
    client, server = lab.vm("10.77.0.1"), lab.vm("10.77.0.2")
    lab.serve(server, 80)
    host = Host(lab)
    host.send([port(client, security=False), port(server, security=False)], {})
    run("ip", "-n", client.netns, "addr", "add", "10.77.0.99/24", "dev", "eth0")
    assert client.reaches(server, 80)
    assert client.reaches(server, 80, source="10.77.0.99")
    # turned on (no groups): everything but DHCP and neighbour discovery is dropped
    host.send([port(client), port(server)], {})
    assert not client.reaches(server, 80, timeout=0.5)


def test_the_linuxbridge_dataplane_filters_what_it_plugs(lab: Lab):
    """plug() puts the port's filter in place (br_netfilter on in the namespace) before it
    returns; unplug() takes it away."""
    from cirrus.network.dataplane import load_dataplane
    from cirrus.network.model import FixedIp, Nic, SubnetInfo

    dataplane = load_dataplane("linuxbridge", netns=lab.host)
    subnet = SubnetInfo(id="s", cidr="10.77.0.0/24", ip_version=4, gateway_ip=None)
    nic = Nic(index=0, name="eth0", port_id="0b0b0b0b-0000-4000-8000-000000000001",
              mac="fa:16:3e:0b:00:01", network_id="0c0c0c0c-0000-4000-8000-000000000001",
              mtu=1450, fixed_ips=(FixedIp("10.77.0.9", subnet),), security_groups=(WEB,))
    dataplane.plug(nic)
    assert run("sysctl", "-n", "net.bridge.bridge-nf-call-iptables", netns=lab.host).strip() == "1"
    tables = run("nft", "list", "ruleset", netns=lab.host)
    assert f'"{nic.tap}" . 10.77.0.9' in tables  # its anti-spoofing
    assert f"jump {combo_chain((WEB,), 'ingress')}" in tables  # its groups
    dataplane.unplug(nic.port_id, nic.network_id)
    assert nic.tap not in run("nft", "list", "ruleset", netns=lab.host)


def test_ipv6_rules_apply_to_ipv6_and_neighbour_discovery_works(lab: Lab):
    client = lab.vm("10.77.0.1", ip6="2001:db8:77::1")
    server = lab.vm("10.77.0.2", ip6="2001:db8:77::2")
    lab.serve(server, 22, 80)
    host = Host(lab)
    ports = [PortFilter(vm.port_id, vm.mac, (vm.ip, ip6), (grp,)) for vm, ip6, grp in
             ((client, "2001:db8:77::1", CLIENTS), (server, "2001:db8:77::2", WEB))]
    host.send(ports, {WEB: (*EGRESS, SSH), CLIENTS: EGRESS})
    assert client.reaches(server, 22)  # IPv4 rule
    assert client.connect("2001:db8:77::2", 22, timeout=0.5) is None  # not for IPv6
    ssh6 = Rule("ingress", "IPv6", "tcp", 22, 22)
    host.send(ports, {WEB: (*EGRESS, SSH, ssh6), CLIENTS: EGRESS})
    sock = client.connect("2001:db8:77::2", 22)  # neighbour discovery went through too
    assert sock is not None
    sock.close()
    assert client.connect("2001:db8:77::2", 80, timeout=0.5) is None
    # an IPv6 source the port does not own is dropped
    run("ip", "-n", client.netns, "addr", "add", "2001:db8:77::99/64", "dev", "eth0", "nodad")
    assert client.connect("2001:db8:77::2", 22, timeout=0.5, source="2001:db8:77::99") is None


def test_removing_a_rule_cuts_the_connections_it_allowed_and_only_those(lab: Lab):
    client, server = lab.vm("10.77.0.1"), lab.vm("10.77.0.2")
    lab.serve(server, 22, 80)
    host = Host(lab)
    http = Rule("ingress", "IPv4", "tcp", 80, 80)
    ports = [port(client, CLIENTS), port(server, WEB)]
    host.send(ports, {WEB: (*EGRESS, SSH, http), CLIENTS: EGRESS})
    ssh, web = client.connect(server.ip, 22), client.connect(server.ip, 80)
    assert ssh is not None and web is not None
    host.send(ports, {WEB: (*EGRESS, http), CLIENTS: EGRESS})  # ssh's rule removed
    assert not echo_alive(ssh, timeout=0.5)
    assert echo_alive(web)
    assert not client.reaches(server, 22, timeout=0.5)
    ssh.close()
    web.close()


def test_two_networks_with_the_same_addresses_do_not_share_connections(lab: Lab):
    """Each network has its own conntrack zone: a connection allowed on one network does
    not let the same addresses and ports through on another."""
    other = lab.network()
    client1, server1 = lab.vm("10.77.0.1"), lab.vm("10.77.0.2")
    client2, server2 = lab.vm("10.77.0.1", network=other), lab.vm("10.77.0.2", network=other)
    lab.serve(server1, 22)
    lab.serve(server2, 22)
    host = Host(lab)
    closed = "0a0a0a0a-0000-4000-8000-0000000000cc"
    ports = [dataclasses.replace(port(client1, CLIENTS), network_id=lab.network_id),
             dataclasses.replace(port(server1, WEB), network_id=lab.network_id),
             dataclasses.replace(port(client2, CLIENTS), network_id=other),
             dataclasses.replace(port(server2, closed), network_id=other)]
    host.send(ports, {WEB: (*EGRESS, SSH), CLIENTS: EGRESS, closed: EGRESS})
    first = client1.connect(server1.ip, 22, source="10.77.0.1")
    assert first is not None
    source_port = first.getsockname()[1]
    second = in_netns(client2.netns, lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    second.settimeout(0.5)
    second.bind(("10.77.0.1", source_port))  # the very same 5-tuple, on the other network
    with pytest.raises(OSError):
        second.connect((server2.ip, 22))
    second.close()
    zones = run("conntrack", "-L", "-p", "tcp", "--dport", "22", netns=lab.host, check=False)
    assert "zone=" in zones
    assert echo_alive(first)
    first.close()


def require_conntrack() -> None:
    if shutil.which("conntrack") is None:
        missing("`conntrack` not found (apt-get install conntrack)")


def _tracked(lab: Lab, ip: str) -> list[str]:
    """The host's conntrack entries (every zone) that name `ip`."""
    listed = run("conntrack", "-L", netns=lab.host, check=False)
    return [line for line in listed.splitlines() if f"={ip} " in line]


def test_a_stateless_group_tracks_nothing_and_lets_replies_in_only_by_rule(lab: Lab):
    """`stateful: false` (Neutron's stateless groups): the port's traffic is not tracked,
    so a reply to a connection the guest made is dropped unless an ingress rule allows it;
    with rules for both directions the connection works; conntrack has no entry for it."""
    require_conntrack()
    guest, peer = lab.vm("10.77.0.1"), lab.vm("10.77.0.2")
    lab.serve(peer, 80)
    lab.serve(guest, 22)
    host = Host(lab)
    raw, open_ = "0a0a0a0a-0000-4000-8000-0000000000a1", "0a0a0a0a-0000-4000-8000-0000000000a2"
    ports = [dataclasses.replace(port(guest, raw), network_id=lab.network_id),
             dataclasses.replace(port(peer, open_), network_id=lab.network_id)]
    rules = {raw: (*EGRESS, SSH), open_: (*EGRESS, Rule("ingress", "IPv4"))}
    # the same group stateful: the reply is accepted as part of the guest's connection
    host.send(ports, rules)
    assert guest.reaches(peer, 80)
    assert _tracked(lab, guest.ip)  # and conntrack knows it
    # stateless: the peer's reply (from port 80) matches no ingress rule of the guest
    host.send(ports, rules, stateless=(raw,))
    run("conntrack", "-F", netns=lab.host, check=False)
    assert not guest.reaches(peer, 80, timeout=0.5)
    assert peer.reaches(guest, 22)  # ingress 22 allowed, the reply by the egress rule
    # both directions allowed: an ingress rule for what the peer sends back
    replies = Rule("ingress", "IPv4", "tcp", remote_ip_prefix=f"{peer.ip}/32")
    host.send(ports, {**rules, raw: (*EGRESS, SSH, replies)}, stateless=(raw,))
    sock = guest.connect(peer.ip, 80)
    assert sock is not None
    assert echo_alive(sock)
    assert peer.reaches(guest, 22)
    assert _tracked(lab, guest.ip) == []  # nothing of the guest's traffic was tracked
    sock.close()
    # the peer (stateful) still has its own connections tracked: only the guest is stateless
    third = lab.vm("10.77.0.3")
    lab.serve(third, 80)
    host.send([*ports, dataclasses.replace(port(third, open_), network_id=lab.network_id)],
              {**rules, raw: (*EGRESS, SSH, replies)}, stateless=(raw,))
    assert peer.reaches(third, 80)
    assert _tracked(lab, third.ip)


def _frame(dst_mac: str, src_mac: str, src_ip: str, dst_ip: str, marker: bytes,
           vlan: int | None) -> bytes:
    """An Ethernet frame carrying an IPv4 UDP datagram with `marker`, tagged 802.1Q `vlan`."""
    import struct

    payload = struct.pack("!HHHH", 4444, 4444, 8 + len(marker), 0) + marker
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, 17, 0,
                         socket.inet_aton(src_ip), socket.inet_aton(dst_ip))
    checksum = 0
    for i in range(0, 20, 2):
        checksum += (header[i] << 8) + header[i + 1]
    while checksum >> 16:
        checksum = (checksum & 0xFFFF) + (checksum >> 16)
    header = header[:10] + struct.pack("!H", ~checksum & 0xFFFF) + header[12:]
    tag = struct.pack("!HH", 0x8100, vlan) if vlan is not None else b""
    return (bytes.fromhex(dst_mac.replace(":", "")) + bytes.fromhex(src_mac.replace(":", ""))
            + tag + struct.pack("!H", 0x0800) + header + payload)


def test_a_vlan_tagged_frame_from_a_port_is_dropped(lab: Lab):
    """A tag would hide a spoofed source from the address checks and the security groups
    (br_netfilter skips tagged frames): the port's tagged frames never leave it."""
    client, server = lab.vm("10.77.0.1"), lab.vm("10.77.0.2")
    host = Host(lab)
    open_in = (Rule("ingress", "IPv4"),)
    host.send([port(client, CLIENTS), port(server, WEB)],
              {WEB: (*EGRESS, *open_in), CLIENTS: EGRESS})
    sniffer = in_netns(server.netns, lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW,
                                                           socket.htons(0x0003)))
    sender = in_netns(client.netns, lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW))
    try:
        sniffer.bind(("eth0", 0))
        sniffer.settimeout(0.2)
        sender.bind(("eth0", 0))

        def arrives(marker: bytes, src_ip: str, vlan: int | None) -> bool:
            frame = _frame(server.mac, client.mac, src_ip, server.ip, marker, vlan)
            deadline = time.monotonic() + 1.5
            sender.send(frame)
            while time.monotonic() < deadline:
                try:
                    if marker in sniffer.recv(2048):
                        return True
                except TimeoutError:
                    sender.send(frame)
            return False

        assert arrives(b"cirrus-untagged-own", client.ip, None)  # the path works
        assert not arrives(b"cirrus-untagged-spoofed", "10.77.0.99", None)
        assert not arrives(b"cirrus-tagged-spoofed", "10.77.0.99", 5)
        assert not arrives(b"cirrus-tagged-own", client.ip, 5)
        # without the port's filter (port security off) the same tagged frame goes through,
        # so the drop above is the firewall's
        host.send([port(client, security=False), port(server, WEB)],
                  {WEB: (*EGRESS, *open_in), CLIENTS: EGRESS})
        assert arrives(b"cirrus-tagged-unfiltered", client.ip, 5)
    finally:
        sniffer.close()
        sender.close()
