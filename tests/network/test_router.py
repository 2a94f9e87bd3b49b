"""Routers on a host with real namespaces, bridges, veths and nftables (issue 14, l3).

One "host" namespace holds the linuxbridge dataplane's bridges; the router's `qrouter`
namespace joins them by veths; "VMs" are namespaces on the internal networks' bridges with a
default route via their router interface, and "outside" is a namespace on the external
network's bridge holding the external subnet's gateway address. Every connection is TCP,
answered by a server that sends back the source address it saw.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from cirrus.network.dataplane.linuxbridge import LinuxBridgeDataplane
from cirrus.network.l3.agent import NamespaceRouters, namespace_name, nft_ruleset
from cirrus.network.l3.model import RouterConfig, RouterPort
from cirrus.network.model import bridge_name
from tests.network.conftest import Namespaces, ip
from tests.services import require

NET_A, NET_B, NET_EXT = (str(uuid.uuid4()) for _ in range(3))
GW_ADDRESS, OUTSIDE, FLOATING = "203.0.113.10", "203.0.113.1", "203.0.113.50"
VM_A, VM_B = "10.81.1.5", "10.81.2.5"

SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7777)); s.listen(); s.settimeout(float(sys.argv[1]))
while True:
    c, peer = s.accept(); c.sendall(peer[0].encode()); c.close()
"""
CLIENT = """
import socket, sys
s = socket.create_connection((sys.argv[1], 7777), timeout=1.0)
print(s.recv(100).decode())
"""


def leg(port: str, mac: str, address: str, network: str, gateway_ips=()) -> RouterPort:
    return RouterPort(port_id=port, mac=mac, addresses=(address,), network_id=network,
                      mtu=1450, gateway_ips=tuple(gateway_ips))


def router(router_id: str, floating: tuple[tuple[str, str], ...] = (),
           snat: bool = True, gateway: bool = True) -> RouterConfig:
    return RouterConfig(
        router_id=router_id,
        interfaces=(leg("pa00000000000001", "fa:16:3e:0a:00:01", "10.81.1.1/24", NET_A),
                    leg("pb00000000000001", "fa:16:3e:0b:00:01", "10.81.2.1/24", NET_B)),
        gateway=(leg("pg00000000000001", "fa:16:3e:0e:00:01", f"{GW_ADDRESS}/24", NET_EXT,
                     gateway_ips=(OUTSIDE,)) if gateway else None),
        enable_snat=snat, routes=(("192.0.2.128/25", "10.81.1.7"),), floating_ips=floating)


class Lab:
    def __init__(self, spaces: Namespaces, tmp_path: Path) -> None:
        self.spaces = spaces
        self.host = spaces.add("h1")
        self.state = tmp_path / "l3"
        self.routers = NamespaceRouters(self.state, LinuxBridgeDataplane(netns=self.host),
                                        netns=self.host)
        self.servers: list[subprocess.Popen] = []

    def endpoint(self, name: str, network: str, address: str, gateway: str | None) -> str:
        """A namespace with eth0 on the network's bridge (made by the router's leg)."""
        ns = self.spaces.add(name)
        outer = f"v{uuid.uuid4().hex[:10]}"
        ip("link", "add", "eth0", "netns", ns, "mtu", "1450", "type", "veth", "peer", "name",
           outer, "netns", self.host)
        ip("link", "set", outer, "master", bridge_name(network), "up", netns=self.host)
        ip("addr", "add", f"{address}/24", "dev", "eth0", netns=ns)
        ip("link", "set", "eth0", "up", netns=ns)
        if gateway:
            ip("route", "add", "default", "via", gateway, netns=ns)
        self.servers.append(subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-c", SERVER, "60"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        return ns

    def close(self) -> None:
        for server in self.servers:
            server.kill()
            server.wait()


def seen_by(client_ns: str, address: str, timeout: float = 4.0) -> str | None:
    """The source address the server at `address` saw for a connection from `client_ns`;
    None when no connection could be made within `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = subprocess.run(["ip", "netns", "exec", client_ns, sys.executable, "-c", CLIENT,
                               address], capture_output=True, text=True, check=False)
        if done.returncode == 0 and done.stdout.strip():
            return done.stdout.strip()
        time.sleep(0.2)
    return None


def links(ns: str) -> dict[str, dict]:
    return {link["ifname"]: link for link in json.loads(ip("-j", "link", "show", netns=ns))}


@pytest.fixture
def lab(namespaces, tmp_path):
    require(shutil.which("nft") is not None, "nftables (nft) is not installed")
    made = Lab(namespaces, tmp_path)
    try:
        yield made
    finally:
        made.close()


def test_nft_ruleset_nats_floating_ips_and_snats_internal_subnets():
    rules = nft_ruleset(router("r1", floating=((FLOATING, VM_B),)))
    assert f"ip daddr {FLOATING} dnat to {VM_B}" in rules
    assert f'ip saddr {VM_B} oifname "qg-pg000000000" snat to {FLOATING}' in rules
    assert (f'ip saddr {{ 10.81.1.0/24, 10.81.2.0/24 }} oifname "qg-pg000000000" '
            f"snat to {GW_ADDRESS}") in rules
    # The 1:1 SNAT comes before the subnets' SNAT, which would otherwise take the VM.
    assert rules.index(f"snat to {FLOATING}") < rules.index(f"snat to {GW_ADDRESS}")
    without = nft_ruleset(router("r1", floating=((FLOATING, VM_B),), snat=False))
    assert f"snat to {GW_ADDRESS}" not in without
    assert f"snat to {FLOATING}" in without  # floating IPs are 1:1 whatever enable_snat


def test_router_forwards_snats_and_floats(lab):
    router_id = str(uuid.uuid4())
    lab.routers.sync(router(router_id))
    ns = namespace_name(router_id, lab.host)
    vm_a = lab.endpoint("vma", NET_A, VM_A, "10.81.1.1")
    vm_b = lab.endpoint("vmb", NET_B, VM_B, "10.81.2.1")
    outside = lab.endpoint("out", NET_EXT, OUTSIDE, None)

    inside = links(ns)
    assert inside["qr-pa000000000"]["address"] == "fa:16:3e:0a:00:01"
    assert inside["qg-pg000000000"]["address"] == "fa:16:3e:0e:00:01"
    host_links = links(lab.host)
    assert host_links["rq-pa000000000"]["master"] == bridge_name(NET_A)
    assert host_links["rg-pg000000000"]["master"] == bridge_name(NET_EXT)
    assert not any(name.startswith("tap") for name in host_links)
    routes = ip("route", "show", netns=ns)
    assert f"default via {OUTSIDE} dev qg-pg000000000" in routes
    assert "192.0.2.128/25 via 10.81.1.7" in routes
    forwarding = subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-n",
                                 "net.ipv4.ip_forward"], capture_output=True, text=True)
    assert forwarding.stdout.strip() == "1"

    # Between internal networks: routed, not NATed (the server sees the VM's own address).
    assert seen_by(vm_a, VM_B) == VM_A
    assert seen_by(vm_b, VM_A) == VM_B
    # To the outside: SNATed to the gateway's address.
    assert seen_by(vm_a, OUTSIDE) == GW_ADDRESS
    # A floating address nobody has: no answer.
    assert seen_by(outside, FLOATING, timeout=1.5) is None

    lab.routers.sync(router(router_id, floating=((FLOATING, VM_B),)))
    assert seen_by(outside, FLOATING) == OUTSIDE  # DNAT only: the VM sees the real client
    assert seen_by(vm_b, OUTSIDE) == FLOATING  # its own traffic leaves as the floating IP
    assert seen_by(vm_a, OUTSIDE) == GW_ADDRESS  # the other VM still by the gateway

    lab.routers.sync(router(router_id))  # disassociated
    assert seen_by(outside, FLOATING, timeout=1.5) is None
    assert seen_by(vm_b, OUTSIDE) == GW_ADDRESS

    # Without SNAT the VM's own address leaves, and the outside has no route back to it.
    lab.routers.sync(router(router_id, snat=False))
    assert "snat to" not in subprocess.run(
        ["ip", "netns", "exec", ns, "nft", "list", "table", "ip", "cirrus-router"],
        capture_output=True, text=True).stdout
    assert seen_by(vm_a, OUTSIDE, timeout=1.5) is None

    lab.routers.remove(router_id)
    assert not Path("/run/netns", ns).exists()
    left = links(lab.host)
    assert not [name for name in left if name[:3] in ("rq-", "rg-")]
    assert not (lab.state / router_id).exists()
    # Without the router the networks are apart.
    assert seen_by(vm_a, VM_B, timeout=1.5) is None


def test_router_restored_from_its_state_after_a_restart(lab):
    router_id = str(uuid.uuid4())
    lab.routers.sync(router(router_id, floating=((FLOATING, VM_B),)))
    ns = namespace_name(router_id, lab.host)
    vm_a = lab.endpoint("vma", NET_A, VM_A, "10.81.1.1")
    lab.endpoint("vmb", NET_B, VM_B, "10.81.2.1")
    outside = lab.endpoint("out", NET_EXT, OUTSIDE, None)
    assert seen_by(vm_a, VM_B) == VM_A

    ip("netns", "del", ns)  # the host rebooted: the namespace and its veths are gone
    time.sleep(0.2)
    assert seen_by(vm_a, VM_B, timeout=1.0) is None
    restarted = NamespaceRouters(lab.state, LinuxBridgeDataplane(netns=lab.host),
                                 netns=lab.host)
    assert set(restarted.served()) == {router_id}
    restarted.restore()
    assert seen_by(vm_a, VM_B) == VM_A
    assert seen_by(outside, FLOATING) == OUTSIDE
    state = lab.state / router_id / "router.json"
    assert state.stat().st_mode & 0o077 == 0
    restarted.sync_all([])
    assert not Path("/run/netns", ns).exists()


def test_a_router_on_one_host_serves_a_vm_on_another_over_vxlan(tmp_path):
    """The router's host (h2) has no VM: its qr leg brings the network's VXLAN device, its
    qg leg the external flat network's provider interface; the VM on h1 reaches the
    outside through it, and the outside reaches the VM by its floating IP."""
    from cirrus.network.model import NetworkPeer, Nic
    from tests.network.fabric import Fabric, require_fabric

    require_fabric()
    require(shutil.which("nft") is not None, "nftables (nft) is not installed")
    fabric = Fabric()
    servers: list[subprocess.Popen] = []
    routers: NamespaceRouters | None = None
    router_id = str(uuid.uuid4())
    try:
        h1, h2 = fabric.add_host("h1", 1), fabric.add_host("h2", 2)
        net, ext = str(uuid.uuid4()), str(uuid.uuid4())
        vm_nic = Nic(index=0, name="eth0", port_id=str(uuid.uuid4()), mac="fa:16:3e:00:30:05",
                     network_id=net, mtu=1450, network_type="vxlan", segmentation_id=4545)
        h1.dataplane.plug(vm_nic)
        vm = fabric.add_vm(h1, vm_nic, "10.82.0.5/24")
        ip("route", "add", "default", "via", "10.82.0.1", netns=vm)
        outside = fabric.netns("out")  # on the provider switch the external network uses
        fabric._veth(outside, "eth0", "pv")
        ip("addr", "add", f"{OUTSIDE}/24", "dev", "eth0", netns=outside)
        for ns in (vm, outside):
            servers.append(subprocess.Popen(
                ["ip", "netns", "exec", ns, sys.executable, "-c", SERVER, "60"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

        qr_mac = "fa:16:3e:00:30:01"
        routers = NamespaceRouters(tmp_path / "l3-h2", h2.dataplane, netns=h2.ns)
        routers.sync(RouterConfig(
            router_id=router_id,
            interfaces=(RouterPort(port_id="pq00000000000001", mac=qr_mac,
                                   addresses=("10.82.0.1/24",), network_id=net, mtu=1450,
                                   network_type="vxlan", segmentation_id=4545),),
            gateway=RouterPort(port_id="pz00000000000001", mac="fa:16:3e:00:30:02",
                               addresses=(f"{GW_ADDRESS}/24",), network_id=ext, mtu=1500,
                               network_type="flat", physical_network="physnet1",
                               gateway_ips=(OUTSIDE,)),
            floating_ips=((FLOATING, "10.82.0.5"),)))
        # What l2pop tells the two hosts once the router's ports are bound to h2.
        h1.dataplane.set_peers(net, (NetworkPeer("h2", h2.vtep, (qr_mac,)),))
        h2.dataplane.set_peers(net, (NetworkPeer("h1", h1.vtep, (vm_nic.mac,)),))

        assert seen_by(vm, OUTSIDE) == FLOATING
        assert seen_by(outside, FLOATING) == OUTSIDE
        routers.remove(router_id)
        assert seen_by(outside, FLOATING, timeout=1.0) is None
        assert not [n for n in links(h2.ns) if n[:3] in ("rq-", "rg-")]
    finally:
        for server in servers:
            server.kill()
            server.wait()
        if routers is not None:
            routers.remove(router_id)  # its namespace is not one the fabric made
        fabric.close()


def test_security_groups_filter_a_vm_behind_its_router_and_never_the_router(tmp_path):
    """The sg firewall on the host (nftables, br_netfilter) filters the VM's tap: its egress
    to the router's MAC is ordinary egress, its ingress through the floating IP obeys its
    groups; the router's own veths (rq-, rg-) are never filtered."""
    from cirrus.network.dataplane.firewall import NftFirewall
    from cirrus.network.port_filter import HostFilterState, PortFilter
    from cirrus.network.port_filter import SecurityGroupRule as Rule
    from tests.network.lab import Lab as SgLab
    from tests.network.lab import require_nftables

    require_nftables()
    lab = SgLab()
    servers: list[subprocess.Popen] = []
    routers = NamespaceRouters(tmp_path / "l3", LinuxBridgeDataplane(netns=lab.host),
                               netns=lab.host)
    router_id = str(uuid.uuid4())
    try:
        internal, external = lab.network_id, lab.network()
        web = lab.vm("10.77.0.5")
        outside = lab.vm(OUTSIDE, network=external)
        ip("route", "add", "default", "via", "10.77.0.1", netns=web.netns)
        for vm in (web, outside):
            servers.append(subprocess.Popen(
                ["ip", "netns", "exec", vm.netns, sys.executable, "-c", SERVER, "60"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        routers.sync(RouterConfig(
            router_id=router_id,
            interfaces=(leg("pw00000000000001", "fa:16:3e:0a:00:01", "10.77.0.1/24",
                            internal),),
            gateway=leg("px00000000000001", "fa:16:3e:0e:00:01", f"{GW_ADDRESS}/24", external,
                        gateway_ips=(OUTSIDE,)),
            floating_ips=((FLOATING, web.ip),)))
        group = "0a0a0a0a-0000-4000-8000-0000000000aa"
        egress = (Rule("egress", "IPv4"), Rule("egress", "IPv6"))
        web_port = PortFilter(port_id=web.port_id, mac=web.mac, addresses=(web.ip,),
                              security_groups=(group,))
        firewall = NftFirewall(netns=lab.host)
        firewall.update(HostFilterState(generation=1.0, ports=(web_port,), rules={
            group: (*egress, Rule("ingress", "IPv4", "tcp", 7777, 7777))}, members={}))

        assert seen_by(web.netns, OUTSIDE) == FLOATING  # out through the router
        assert seen_by(outside.netns, FLOATING) == OUTSIDE  # in, as the group allows
        firewall.update(HostFilterState(generation=2.0, ports=(web_port,),
                                        rules={group: egress}, members={}))
        assert seen_by(outside.netns, FLOATING, timeout=1.5) is None  # the group says no
        assert seen_by(web.netns, OUTSIDE) == FLOATING  # egress still fine
        ruleset = subprocess.run(["ip", "netns", "exec", lab.host, "nft", "list", "ruleset"],
                                 capture_output=True, text=True, check=True).stdout
        assert web.tap in ruleset
        assert "rq-" not in ruleset and "rg-" not in ruleset
    finally:
        for server in servers:
            server.kill()
            server.wait()
        routers.remove(router_id)
        lab.close()
