"""An agent host that reboots comes back with its VXLAN networks whole (issue 14, points 1
and 6): the real Agent, with the linuxbridge dataplane in a host namespace of the fabric and
the fake virt driver, is sent its peers, "reboots" (every device Cirrus made deleted, a new
agent on the same disk), and before it serves anything has its bridge, VXLAN device,
forwarding entries and tap back; a VM on the other host reaches the one here again."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from cirrus.agent.service import Agent
from cirrus.bus.local import LocalBus
from cirrus.context import RequestContext
from cirrus.network.dataplane.linuxbridge import LinuxBridgeDataplane
from cirrus.network.model import NetworkPeer, Nic, vxlan_name
from cirrus.virt.driver import InstanceSpec
from cirrus.virt.fake import FakeDriver
from tests.conftest import make_settings
from tests.network.fabric import Fabric, Host, fdb, ip, links, require_fabric, tcp_exchange

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


def start_agent(tmp_path, host: Host) -> tuple[Agent, LocalBus]:
    bus = LocalBus()
    bus.subscribe("conductor", {"spawn_result": lambda c, p: None,
                                "agent_report": lambda c, p: None}, workers=1)
    settings = make_settings(tmp_path, overlay_local_ip=host.vtep,
                             physical_interface_mappings={"physnet1": "eth1"})
    driver = FakeDriver(host.name, settings.fake, tmp_path / "fake-hosts")
    dataplane = LinuxBridgeDataplane(netns=host.ns, mappings={"physnet1": "eth1"},
                                     local_ip=host.vtep)
    return Agent(settings, bus, host.name, driver, dataplane=dataplane), bus


def test_a_rebooted_agent_host_rebuilds_its_vxlan_network_before_serving(tmp_path, fabric):
    ctx = RequestContext.admin()
    h1, h2 = fabric.hosts["h1"], fabric.hosts["h2"]
    net = str(uuid.uuid4())
    here = Nic(index=0, name="eth0", port_id=str(uuid.uuid4()), mac="fa:16:3e:00:01:01",
               network_id=net, mtu=1450, network_type="vxlan", segmentation_id=777)
    there = Nic(index=0, name="eth0", port_id=str(uuid.uuid4()), mac="fa:16:3e:00:01:02",
                network_id=net, mtu=1450, network_type="vxlan", segmentation_id=777)
    agent, bus = start_agent(tmp_path, h1)
    try:
        agent.spawn(ctx, {"spec": InstanceSpec(uuid="vm-1", name="vm", vcpus=1, memory_mb=64,
                                               root_gb=1, nics=[here]).to_dict()})
        agent.update_network_peers(ctx, {"networks": {net: [
            NetworkPeer("h2", h2.vtep, (there.mac,)).to_dict()]}})
    finally:
        bus.stop()
    h2.dataplane.plug(there)
    h2.dataplane.set_peers(net, (NetworkPeer("h1", h1.vtep, (here.mac,)),))
    vm2 = fabric.add_vm(h2, there, "10.7.0.2/24")
    vm1 = fabric.add_vm(h1, here, "10.7.0.1/24")
    assert tcp_exchange(vm2, vm1, "10.7.0.1") == "HELLO"

    # The reboot: every device Cirrus made on h1 is gone (the VM's end with them).
    for name in (here.tap, vxlan_name(net), here.bridge):
        ip("-n", h1.ns, "link", "del", name)
    assert here.bridge not in links(h1.ns)
    fresh, bus = start_agent(tmp_path, h1)
    try:
        fresh.start()
        present = links(h1.ns)
        assert present[vxlan_name(net)]["master"] == here.bridge
        assert present[here.tap]["master"] == here.bridge
        assert fdb(h1.ns, vxlan_name(net)) == {(ZERO, h2.vtep), (there.mac, h2.vtep)}
        vm1_again = fabric.add_vm(h1, here, "10.7.0.1/24")
        assert tcp_exchange(vm2, vm1_again, "10.7.0.1") == "HELLO"
        fresh.stop()
    finally:
        bus.stop()
