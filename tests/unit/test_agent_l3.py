"""The agent's side of the router messages: what it runs after sync_router and
sync_routers_all, in whatever order the bus delivers them (the recording router host:
nothing is made)."""

from __future__ import annotations

import time

from cirrus.agent import rpcapi
from cirrus.agent.service import Agent
from cirrus.bus.local import LocalBus
from cirrus.context import RequestContext
from cirrus.network.dataplane.noop import NoopDataplane
from cirrus.network.l3.agent import RecordingRouters
from cirrus.network.l3.model import RouterConfig, RouterPort
from cirrus.virt.fake import FakeDriver
from tests.conftest import make_settings

CTX = RequestContext.admin()


def config(router_id: str, *floating: tuple[str, str]) -> dict:
    leg = RouterPort(port_id=f"p-{router_id}", mac="fa:16:3e:00:00:01",
                     addresses=("10.0.0.1/24",), network_id="n1", mtu=1450,
                     network_type="vxlan", segmentation_id=7)
    gw = RouterPort(port_id=f"g-{router_id}", mac="fa:16:3e:00:00:02",
                    addresses=("203.0.113.10/24",), network_id="ext", mtu=1500,
                    network_type="flat", physical_network="physnet1",
                    gateway_ips=("203.0.113.1",))
    return RouterConfig(router_id=router_id, interfaces=(leg,), gateway=gw,
                        routes=(("10.9.0.0/16", "10.0.0.9"),),
                        floating_ips=tuple(floating)).to_dict()


def make_agent(tmp_path, l3: bool = True) -> Agent:
    settings = make_settings(tmp_path, l3_agent=l3)
    driver = FakeDriver("host-a", settings.fake, tmp_path / "fake-hosts")
    return Agent(settings, LocalBus(), "host-a", driver, dataplane=NoopDataplane())


def test_the_configuration_survives_the_wire_and_the_state_file(tmp_path):
    data = config("r1", ("203.0.113.50", "10.0.0.5"))
    assert RouterConfig.from_dict(data).to_dict() == data
    agent = make_agent(tmp_path)
    assert isinstance(agent.routers, RecordingRouters)
    agent.sync_router(CTX, rpcapi.SyncRouter(router_id="r1", router=data, stamp=1))
    again = make_agent(tmp_path)  # a restarted agent reads what it ran
    assert again.routers.served()["r1"] == RouterConfig.from_dict(data)
    state = tmp_path / "agents" / "host-a" / "l3" / "r1" / "router.json"
    assert state.stat().st_mode & 0o077 == 0


def test_an_older_message_delivered_late_changes_nothing(tmp_path):
    agent = make_agent(tmp_path)
    agent.sync_router(CTX, rpcapi.SyncRouter(
        router_id="r1", router=config("r1", ("203.0.113.50", "10.0.0.5")), stamp=5))
    agent.sync_router(CTX, rpcapi.SyncRouter(router_id="r1", router=config("r1"), stamp=4))
    assert agent.routers.served()["r1"].floating_ips == (("203.0.113.50", "10.0.0.5"),)
    agent.sync_router(CTX, rpcapi.SyncRouter(router_id="r1", router=None, stamp=4))
    assert "r1" in agent.routers.served()
    agent.sync_router(CTX, rpcapi.SyncRouter(router_id="r1", router=None, stamp=6))
    assert agent.routers.served() == {}


def test_the_full_state_removes_what_is_not_listed_but_keeps_newer_changes(tmp_path):
    agent = make_agent(tmp_path)
    for router_id, stamp in (("r1", 1), ("r2", 1), ("r3", 9)):
        agent.sync_router(CTX, rpcapi.SyncRouter(router_id=router_id,
                                                 router=config(router_id), stamp=stamp))
    agent.sync_routers_all(CTX, rpcapi.SyncRoutersAll(routers=[config("r1")], stamp=5))
    assert set(agent.routers.served()) == {"r1", "r3"}  # r3 came after the full state


def test_an_agent_with_l3_off_runs_nothing(tmp_path):
    agent = make_agent(tmp_path, l3=False)
    assert agent.routers is None
    agent.sync_router(CTX, rpcapi.SyncRouter(router_id="r1", router=config("r1"), stamp=1))
    assert not (tmp_path / "agents" / "host-a" / "l3").exists()


def test_the_agent_reports_each_router_built_or_why_not(tmp_path, monkeypatch):
    import queue

    from cirrus.compute.rpcapi import CONDUCTOR_TOPIC, RouterStatus

    agent = make_agent(tmp_path)
    heard: queue.Queue = queue.Queue()
    agent.bus.subscribe(CONDUCTOR_TOPIC, {
        "router_status": lambda ctx, wire: heard.put(RouterStatus.from_wire(wire))})

    def reports(n: int) -> dict[str, RouterStatus]:
        got = [heard.get(timeout=5) for _ in range(n)]
        return {r.router_id: r for r in got}

    agent.sync_router(CTX, rpcapi.SyncRouter(router_id="r1", router=config("r1"), stamp=1))
    assert reports(1) == {"r1": RouterStatus(host="host-a", router_id="r1", built=True,
                                             stamp=1)}
    agent.sync_router(CTX, rpcapi.SyncRouter(router_id="r1", router=None, stamp=2))
    original = RecordingRouters._converge

    def fails_for_r2(self, router, before):
        if router.router_id == "r2":
            raise RuntimeError("ip netns add qrouter-r2:\n  File exists")
        original(self, router, before)

    monkeypatch.setattr(RecordingRouters, "_converge", fails_for_r2)
    agent.sync_routers_all(CTX, rpcapi.SyncRoutersAll(routers=[config("r1"), config("r2")],
                                                      stamp=5))
    both = reports(2)
    assert both["r1"].built and both["r1"].error is None and both["r1"].stamp == 5
    assert not both["r2"].built
    assert both["r2"].error == "RuntimeError: ip netns add qrouter-r2: File exists"
    agent.sync_router(CTX, rpcapi.SyncRouter(router_id="r2", router=config("r2"), stamp=6))
    assert not reports(1)["r2"].built  # still failing: reported again
    agent.sync_router(CTX, rpcapi.SyncRouter(router_id="r1", router=None, stamp=7))
    time.sleep(0.2)  # (a cast is delivered by a worker thread)
    assert heard.empty()  # a removal is not reported (the control side needs nothing)
    agent.bus.unsubscribe(CONDUCTOR_TOPIC)


def test_an_agent_with_l3_off_says_so_for_a_router_it_is_sent(tmp_path):
    import queue

    from cirrus.compute.rpcapi import CONDUCTOR_TOPIC, RouterStatus

    agent = make_agent(tmp_path, l3=False)
    heard: queue.Queue = queue.Queue()
    agent.bus.subscribe(CONDUCTOR_TOPIC, {
        "router_status": lambda ctx, wire: heard.put(RouterStatus.from_wire(wire))})
    agent.sync_router(CTX, rpcapi.SyncRouter(router_id="r1", router=config("r1"), stamp=1))
    said = heard.get(timeout=5)
    assert not said.built and said.error == "l3_agent is off on host-a"
    agent.bus.unsubscribe(CONDUCTOR_TOPIC)
