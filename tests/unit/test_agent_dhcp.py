"""The agent's side of the DHCP messages: what it serves after sync_dhcp and sync_dhcp_all,
in whatever order the bus delivers them (the recording DHCP server: nothing runs)."""

from __future__ import annotations

from cirrus.agent import rpcapi
from cirrus.agent.service import Agent
from cirrus.bus.local import LocalBus
from cirrus.context import RequestContext
from cirrus.network.dataplane.noop import NoopDataplane
from cirrus.network.dhcp.model import DhcpEntry, DhcpNetwork, DhcpSubnet
from cirrus.network.dhcp.server import RecordingDhcp
from cirrus.virt.fake import FakeDriver
from tests.conftest import make_settings

CTX = RequestContext.admin()


def net(network_id: str, *macs: str) -> dict:
    subnet = DhcpSubnet(id="s", cidr="10.0.0.0/24", ip_version=4, gateway_ip="10.0.0.1")
    entries = tuple(DhcpEntry(mac, f"10.0.0.{10 + i}", f"host-10-0-0-{10 + i}")
                    for i, mac in enumerate(macs))
    return DhcpNetwork(network_id=network_id, mtu=1450, port_id=f"dhcp-{network_id}",
                       mac="fa:16:3e:00:00:02", addresses=("10.0.0.2/24",),
                       subnets=(subnet,), entries=entries).to_dict()


def make_agent(tmp_path, dhcp: bool = True) -> Agent:
    settings = make_settings(tmp_path, dhcp_agent=dhcp)
    driver = FakeDriver("host-a", settings.fake, tmp_path / "fake-hosts")
    return Agent(settings, LocalBus(), "host-a", driver, dataplane=NoopDataplane())


def macs(agent: Agent, network_id: str) -> list[str]:
    return [e.mac for e in agent.dhcp.served()[network_id].entries]


def test_an_agent_with_dhcp_on_serves_what_it_is_told_and_stops_when_told(tmp_path):
    agent = make_agent(tmp_path)
    assert isinstance(agent.dhcp, RecordingDhcp)
    agent.sync_dhcp(CTX, rpcapi.SyncDhcp(network_id="n1", network=net("n1", "m1"), stamp=1))
    agent.sync_dhcp(CTX, rpcapi.SyncDhcp(network_id="n1", network=net("n1", "m1", "m2"),
                                         stamp=2))
    assert macs(agent, "n1") == ["m1", "m2"]
    agent.sync_dhcp(CTX, rpcapi.SyncDhcp(network_id="n1", network=None, stamp=3))
    assert agent.dhcp.served() == {}
    assert not (tmp_path / "agents" / "host-a" / "dhcp" / "n1").exists()


def test_an_older_message_delivered_late_changes_nothing(tmp_path):
    agent = make_agent(tmp_path)
    agent.sync_dhcp(CTX, rpcapi.SyncDhcp(network_id="n1", network=net("n1", "m1", "m2"),
                                         stamp=5))
    agent.sync_dhcp(CTX, rpcapi.SyncDhcp(network_id="n1", network=net("n1", "m1"), stamp=4))
    assert macs(agent, "n1") == ["m1", "m2"]
    agent.sync_dhcp(CTX, rpcapi.SyncDhcp(network_id="n1", network=None, stamp=4))
    assert "n1" in agent.dhcp.served()


def test_the_full_state_removes_what_is_not_listed_but_keeps_newer_changes(tmp_path):
    agent = make_agent(tmp_path)
    for nid in ("old", "newer"):
        agent.sync_dhcp(CTX, {"network_id": nid, "network": net(nid, "m1"), "stamp": 1.0})
    agent.sync_dhcp(CTX, {"network_id": "newer", "network": net("newer", "m1", "m9"),
                          "stamp": 10.0})
    # A full state read at 5: "old" is no longer served, "newer" is as it was at 5.
    agent.sync_dhcp_all(CTX, rpcapi.SyncDhcpAll(
        networks=[net("newer", "m1"), net("fresh", "m3")], stamp=5.0))
    served = agent.dhcp.served()
    assert set(served) == {"newer", "fresh"}
    assert macs(agent, "newer") == ["m1", "m9"]


def test_what_it_served_is_there_again_after_a_restart(tmp_path):
    agent = make_agent(tmp_path)
    agent.sync_dhcp(CTX, rpcapi.SyncDhcp(network_id="n1", network=net("n1", "m1"), stamp=1))
    again = make_agent(tmp_path)
    assert macs(again, "n1") == ["m1"]


def test_an_agent_without_dhcp_ignores_the_messages(tmp_path):
    agent = make_agent(tmp_path, dhcp=False)
    assert agent.dhcp is None
    agent.sync_dhcp(CTX, rpcapi.SyncDhcp(network_id="n1", network=net("n1", "m1"), stamp=1))
    agent.sync_dhcp_all(CTX, rpcapi.SyncDhcpAll(networks=[net("n1", "m1")], stamp=1))
    assert not (tmp_path / "agents" / "host-a" / "dhcp").exists()
