"""Multi-host L2 with real packets (issue 14, l2): two hosts, each a network namespace running
the linuxbridge dataplane, joined by an underlay bridge; "VMs" are namespaces on the ports'
bridges. VXLAN carries a network between the hosts only with the forwarding database Cirrus
fills (head-end replication for ARP, unicast per MAC); flat carries it over a provider
switch; the last port leaving a host takes the VXLAN device and its entries; a host whose
devices are all gone (a reboot) is rebuilt by plugging again. See tests/network/fabric.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from cirrus.network.dataplane.linuxbridge import LinuxBridgeDataplane
from cirrus.network.model import NetworkPeer, Nic, vxlan_name
from tests.network.fabric import Fabric, fdb, ip, links, require_fabric, tcp_exchange

ZERO = "00:00:00:00:00:00"


@pytest.fixture
def fabric() -> Iterator[Fabric]:
    require_fabric()
    made = Fabric()
    try:
        made.add_host("h1", 1)
        made.add_host("h2", 2)
        yield made
    finally:
        made.close()


def nic(network_id: str, index: int, kind: str, seg_id: int | None = None,
        physnet: str | None = None, mtu: int = 1450) -> Nic:
    return Nic(index=0, name="eth0", port_id=str(uuid.uuid4()),
               mac=f"fa:16:3e:00:{index // 256:02x}:{index % 256:02x}", network_id=network_id,
               mtu=mtu, network_type=kind, physical_network=physnet, segmentation_id=seg_id)


def vxlan_pair(fabric: Fabric) -> tuple[Nic, Nic, str, str]:
    """One vxlan network, a port and a VM on each host; no peers told yet."""
    net = str(uuid.uuid4())
    a, b = nic(net, 1, "vxlan", 4242), nic(net, 2, "vxlan", 4242)
    h1, h2 = fabric.hosts["h1"], fabric.hosts["h2"]
    h1.dataplane.plug(a)
    h2.dataplane.plug(b)
    vm1 = fabric.add_vm(h1, a, "10.9.0.1/24")
    vm2 = fabric.add_vm(h2, b, "10.9.0.2/24")
    return a, b, vm1, vm2


def tell_peers(fabric: Fabric, a: Nic, b: Nic) -> None:
    h1, h2 = fabric.hosts["h1"], fabric.hosts["h2"]
    h1.dataplane.set_peers(a.network_id, (NetworkPeer("h2", h2.vtep, (b.mac,)),))
    h2.dataplane.set_peers(b.network_id, (NetworkPeer("h1", h1.vtep, (a.mac,)),))


def test_vms_on_two_hosts_of_a_vxlan_network_talk_once_peers_are_known(fabric):
    a, b, vm1, vm2 = vxlan_pair(fabric)
    h1 = fabric.hosts["h1"]
    device = links(h1.ns)[vxlan_name(a.network_id)]
    data = device["linkinfo"]["info_data"]
    assert (data["id"], data["local"], data["port"], data["learning"]) == (
        4242, "192.0.2.1", 4789, False)
    assert device["mtu"] == 1450 and device["master"] == a.bridge
    # No forwarding entries: nothing crosses (no learning, no multicast).
    assert fdb(h1.ns, vxlan_name(a.network_id)) == set()
    assert tcp_exchange(vm1, vm2, "10.9.0.2", timeout=2.0) is None
    tell_peers(fabric, a, b)
    assert fdb(h1.ns, vxlan_name(a.network_id)) == {(ZERO, "192.0.2.2"), (b.mac, "192.0.2.2")}
    assert tcp_exchange(vm1, vm2, "10.9.0.2") == "HELLO"
    # A payload larger than one frame at the network's MTU crosses too (no fragment lost
    # to the overlay's 50 bytes).
    assert tcp_exchange(vm2, vm1, "10.9.0.1", payload="x" * 20000) == "X" * 20000


def test_head_end_replication_alone_carries_arp_and_traffic(fabric):
    """Only the all-zero entries (a port whose MAC is not known yet): broadcasts reach the
    other host, and unicast to an unknown MAC floods the same way."""
    a, b, vm1, vm2 = vxlan_pair(fabric)
    h1, h2 = fabric.hosts["h1"], fabric.hosts["h2"]
    h1.dataplane.set_peers(a.network_id, (NetworkPeer("h2", h2.vtep),))
    h2.dataplane.set_peers(b.network_id, (NetworkPeer("h1", h1.vtep),))
    assert fdb(h1.ns, vxlan_name(a.network_id)) == {(ZERO, "192.0.2.2")}
    assert tcp_exchange(vm1, vm2, "10.9.0.2") == "HELLO"


def test_last_port_leaving_a_host_takes_the_vxlan_device_and_its_entries(fabric):
    a, b, vm1, vm2 = vxlan_pair(fabric)
    tell_peers(fabric, a, b)
    h1 = fabric.hosts["h1"]
    second = nic(a.network_id, 3, "vxlan", 4242)
    h1.dataplane.plug(second)
    h1.dataplane.unplug(second.port_id, second.network_id)
    assert vxlan_name(a.network_id) in links(h1.ns)  # a port is still there: kept
    # The peer's port leaves: its entries go, the device stays.
    h1.dataplane.set_peers(a.network_id, ())
    assert fdb(h1.ns, vxlan_name(a.network_id)) == set()
    h1.dataplane.unplug(a.port_id, a.network_id)
    present = links(h1.ns)
    # The VM's veth is a port of the bridge too (a stand-in for the tap, which is gone):
    # remove it as the VM's end would go, then the last port is gone.
    assert a.tap not in present
    for name, link in present.items():
        if link.get("master") == a.bridge and name.startswith("vm"):
            ip("-n", h1.ns, "link", "del", name)
    h1.dataplane.unplug(a.port_id, a.network_id)
    present = links(h1.ns)
    assert vxlan_name(a.network_id) not in present and a.bridge not in present
    assert h1.dataplane.fdb(a.network_id) == set()
    assert {"u0", "eth1"} <= set(present)  # the host's own interfaces are untouched


def test_a_rebooted_host_is_rebuilt_by_plugging_again(fabric):
    a, b, vm1, vm2 = vxlan_pair(fabric)
    tell_peers(fabric, a, b)
    assert tcp_exchange(vm1, vm2, "10.9.0.2") == "HELLO"
    h1 = fabric.hosts["h1"]
    # A reboot: every device Cirrus made is gone, and so is the agent's memory.
    for name in (a.tap, vxlan_name(a.network_id), a.bridge):
        ip("-n", h1.ns, "link", "del", name)
    assert tcp_exchange(vm1, vm2, "10.9.0.2", timeout=1.5) is None
    h1.dataplane = LinuxBridgeDataplane(netns=h1.ns, mappings={"physnet1": "eth1"},
                                        local_ip=h1.vtep)
    # What the agent does on start: the peers it kept, then every port it hosts.
    h1.dataplane.set_peers(a.network_id, (NetworkPeer("h2", "192.0.2.2", (b.mac,)),))
    h1.dataplane.plug(a)
    assert fdb(h1.ns, vxlan_name(a.network_id)) == {(ZERO, "192.0.2.2"), (b.mac, "192.0.2.2")}
    # The VM's end (its veth) died with the bridge's ports: the "VM" starts again.
    vm1_again = fabric.add_vm(h1, a, "10.9.0.11/24")
    assert tcp_exchange(vm1_again, vm2, "10.9.0.2") == "HELLO"


def test_a_stale_vxlan_device_with_another_vni_is_replaced(fabric):
    h1 = fabric.hosts["h1"]
    net = str(uuid.uuid4())
    ip("-n", h1.ns, "link", "add", vxlan_name(net), "type", "vxlan", "id", "7", "local",
       h1.vtep, "dstport", "4789")
    h1.dataplane.plug(nic(net, 9, "vxlan", 8))
    assert links(h1.ns)[vxlan_name(net)]["linkinfo"]["info_data"]["id"] == 8


def test_vms_on_two_hosts_of_a_flat_network_talk_over_the_provider_switch(fabric):
    net = str(uuid.uuid4())
    a, b = (nic(net, i, "flat", physnet="physnet1", mtu=1500) for i in (1, 2))
    h1, h2 = fabric.hosts["h1"], fabric.hosts["h2"]
    h1.dataplane.plug(a)
    h2.dataplane.plug(b)
    assert links(h1.ns)["eth1"]["master"] == a.bridge
    vm1 = fabric.add_vm(h1, a, "10.8.0.1/24")
    vm2 = fabric.add_vm(h2, b, "10.8.0.2/24")
    assert tcp_exchange(vm1, vm2, "10.8.0.2") == "HELLO"
    # The physical interface is released, never deleted, when the network leaves the host.
    for name, link in links(h1.ns).items():
        if link.get("master") == a.bridge and name.startswith("vm"):
            ip("-n", h1.ns, "link", "del", name)
    h1.dataplane.unplug(a.port_id, a.network_id)
    present = links(h1.ns)
    assert a.bridge not in present and "master" not in present["eth1"]


def test_a_physnet_this_host_does_not_map_leaves_the_bridge_without_uplink(fabric):
    h1 = fabric.hosts["h1"]
    lone = nic(str(uuid.uuid4()), 4, "flat", physnet="elsewhere", mtu=1500)
    h1.dataplane.plug(lone)
    ports = [n for n, link in links(h1.ns).items() if link.get("master") == lone.bridge]
    assert ports == [lone.tap]


def test_a_stale_vxlan_device_of_a_deleted_network_gives_its_vni_up(fabric):
    """The kernel takes one VXLAN device per VNI: a device left by a network deleted while
    the host was away must not stop the network that has its VNI now."""
    h1 = fabric.hosts["h1"]
    old, new = str(uuid.uuid4()), str(uuid.uuid4())
    ip("-n", h1.ns, "link", "add", vxlan_name(old), "type", "vxlan", "id", "31", "local",
       h1.vtep, "dstport", "4789")
    h1.dataplane.plug(nic(new, 10, "vxlan", 31))
    present = links(h1.ns)
    assert vxlan_name(old) not in present
    assert present[vxlan_name(new)]["linkinfo"]["info_data"]["id"] == 31
    # One Cirrus did not make is left alone, and the plug says why it cannot go on.
    other = str(uuid.uuid4())
    ip("-n", h1.ns, "link", "add", "foreign0", "type", "vxlan", "id", "32", "local",
       h1.vtep, "dstport", "4789")
    with pytest.raises(RuntimeError, match="VNI 32 is taken on this host by foreign0"):
        h1.dataplane.plug(nic(other, 11, "vxlan", 32))
    assert "foreign0" in links(h1.ns)


def test_a_dhcp_host_without_vm_ports_serves_a_vm_on_another_host_over_vxlan(
        fabric, namespaces, dnsmasq, busybox, tmp_path):
    """DHCP meets the overlay (issue 14 points 1 and 2): the DHCP host has no VM port on the
    network, yet its bridge gets the network's VXLAN device from the segment the DHCP
    message carries, and a guest on the other host gets its lease across the hosts."""
    from cirrus.network.dhcp.model import DhcpEntry, DhcpNetwork, DhcpSubnet
    from cirrus.network.dhcp.server import DnsmasqDhcp
    from tests.network.dhcpclient import Guest

    net, vm_mac, dhcp_mac = str(uuid.uuid4()), "fa:16:3e:00:20:05", "fa:16:3e:00:20:02"
    h1, h2 = fabric.hosts["h1"], fabric.hosts["h2"]
    vm = nic(net, 5, "vxlan", 4343, mtu=1400)
    h1.dataplane.plug(vm)
    server = DnsmasqDhcp(tmp_path / "dhcp-h2", h2.dataplane, netns=h2.ns, binary=dnsmasq)
    subnet = DhcpSubnet(id="s-1", cidr="10.78.0.0/24", ip_version=4, gateway_ip="10.78.0.1")
    server.sync(DhcpNetwork(
        network_id=net, mtu=1400, port_id="p-dhcp-h2-000", mac=dhcp_mac,
        addresses=("10.78.0.2/24",), subnets=(subnet,),
        entries=(DhcpEntry(vm_mac, "10.78.0.5", "host-10-78-0-5"),), lease=600,
        network_type="vxlan", segmentation_id=4343))
    try:
        device = links(h2.ns)[vxlan_name(net)]
        assert device["linkinfo"]["info_data"]["id"] == 4343
        assert device["master"] == vm.bridge
        h1.dataplane.set_peers(net, (NetworkPeer("h2", h2.vtep, (dhcp_mac,)),))
        h2.dataplane.set_peers(net, (NetworkPeer("h1", h1.vtep, (vm.mac,)),))
        # The VM's tap stands in for its NIC: a guest namespace on h1's bridge with its MAC.
        guest = Guest(namespaces, "g", h1.ns, vm.bridge, vm_mac, tmp_path, busybox)
        bound = guest.lease_once()
        assert (bound["ip"], bound["serverid"], bound["mtu"]) == ("10.78.0.5", "10.78.0.2",
                                                                  "1400")
    finally:
        server.remove(net)
    # The DHCP host's bridge and VXLAN device go with its last user, the DHCP namespace.
    assert vxlan_name(net) not in links(h2.ns) and vm.bridge not in links(h2.ns)
