"""The agent's side of VXLAN peers (issue 14, l2): updates reach the dataplane and are kept
on disk; after a host restart the agent gives the dataplane the peers it kept before it
plugs any port (so a VXLAN device is made with its forwarding entries), and a full update
empties what it no longer lists."""

from __future__ import annotations

from cirrus.agent.service import Agent
from cirrus.bus.local import LocalBus
from cirrus.context import RequestContext
from cirrus.network.dataplane.noop import NoopDataplane
from cirrus.network.model import NetworkPeer, Nic
from cirrus.virt.driver import InstanceSpec
from cirrus.virt.fake import FakeDriver
from tests.conftest import make_settings

NET = "net-1111-2222"
PEER = {"host": "host-b", "vtep": "192.0.2.2", "macs": ["fa:16:3e:00:00:09"]}


class OrderedDataplane(NoopDataplane):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, str]] = []

    def plug(self, nic: Nic) -> None:
        super().plug(nic)
        self.events.append(("plug", nic.network_id))

    def set_peers(self, network_id: str, peers: tuple[NetworkPeer, ...]) -> None:
        super().set_peers(network_id, peers)
        self.events.append(("peers", network_id))


def make_agent(tmp_path, bus: LocalBus) -> Agent:
    settings = make_settings(tmp_path)
    driver = FakeDriver("host-a", settings.fake, tmp_path / "fake-hosts")
    bus.subscribe("conductor", {"spawn_result": lambda c, p: None,
                                "agent_report": lambda c, p: None}, workers=1)
    return Agent(settings, bus, "host-a", driver, dataplane=OrderedDataplane())


def vxlan_nic() -> Nic:
    return Nic(index=0, name="eth0", port_id="port-aaaaaaaaaaaa", mac="fa:16:3e:00:00:01",
               network_id=NET, mtu=1450, network_type="vxlan", segmentation_id=42)


def test_peers_survive_a_restart_and_come_before_the_ports(tmp_path) -> None:
    ctx = RequestContext.admin()
    bus = LocalBus()
    try:
        agent = make_agent(tmp_path, bus)
        spec = InstanceSpec(uuid="vm-1", name="vm", vcpus=1, memory_mb=64, root_gb=1,
                            nics=[vxlan_nic()])
        agent.spawn(ctx, {"spec": spec.to_dict()})
        agent.update_network_peers(ctx, {"networks": {NET: [PEER]}})
        assert agent.dataplane.peers[NET] == (NetworkPeer.from_dict(PEER),)
    finally:
        bus.stop()
    bus = LocalBus()
    try:
        fresh = make_agent(tmp_path, bus)
        fresh.start()
        assert fresh.dataplane.events[:2] == [("peers", NET), ("plug", NET)]
        assert fresh.dataplane.peers[NET] == (NetworkPeer.from_dict(PEER),)
        # A full update that does not list the network: it has no peer any more.
        fresh.update_network_peers(ctx, {"networks": {}, "full": True})
        assert fresh.dataplane.peers[NET] == ()
        assert fresh.peers.get(NET) == []
        fresh.stop()
    finally:
        bus.stop()


def test_a_dataplane_failure_does_not_lose_the_update(tmp_path) -> None:
    bus = LocalBus()
    try:
        agent = make_agent(tmp_path, bus)

        def broken(network_id, peers):
            raise OSError("netlink went away")

        agent.dataplane.set_peers = broken  # type: ignore[method-assign]
        agent.update_network_peers(RequestContext.admin(), {"networks": {NET: [PEER]}})
        assert agent.peers.get(NET) == [PEER]  # kept: the restart applies it
    finally:
        bus.stop()


def test_a_nic_of_before_network_types_reads_as_one_without_a_segment() -> None:
    old = {"index": 0, "name": "eth0", "port_id": "p", "mac": "fa:16:3e:00:00:01",
           "network_id": NET, "mtu": 1500, "fixed_ips": []}
    nic = Nic.from_dict(old)
    assert (nic.network_type, nic.physical_network, nic.segmentation_id) == (None, None, None)
    assert Nic.from_dict(vxlan_nic().to_dict()) == vxlan_nic()


def test_a_view_older_than_one_applied_is_dropped(tmp_path) -> None:
    """Casts may arrive out of order: the view read later wins, per network."""
    bus = LocalBus()
    try:
        agent = make_agent(tmp_path, bus)
        ctx = RequestContext.admin()
        newer = {"host": "host-c", "vtep": "192.0.2.3", "macs": []}
        agent.update_network_peers(ctx, {"networks": {NET: [newer]}, "taken_at": 20.0})
        agent.update_network_peers(ctx, {"networks": {NET: [PEER], "other": [PEER]},
                                         "taken_at": 10.0})
        assert agent.dataplane.peers[NET] == (NetworkPeer.from_dict(newer),)
        assert agent.dataplane.peers["other"] == (NetworkPeer.from_dict(PEER),)  # first seen
        agent.update_network_peers(ctx, {"networks": {NET: []}, "taken_at": 30.0})
        assert agent.dataplane.peers[NET] == ()
    finally:
        bus.stop()
