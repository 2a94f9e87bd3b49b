"""VXLAN peers from the port bindings to the agents (issue 14, l2): servers of one vxlan
network on two hosts make each host's agent learn the other's VTEP and port MACs; a server
deleted takes its host out of the others' views; a flat network has none; a host without a
VTEP is nobody's peer; a started agent gets its whole state; the periodic resync sends
everyone theirs. The agents here run the noop dataplane, which records what it is told (the
kernel side is tests/network/)."""

from __future__ import annotations

import time
import uuid

from sqlalchemy import select

from cirrus.compute import l2peers
from cirrus.context import RequestContext
from cirrus.db.models import ComputeNode, Instance, Port
from cirrus.network import l2pop
from cirrus.network.model import NetworkPeer
from tests.api.network_helpers import network, subnet
from tests.api.servers_helpers import add_flavor, add_image, server_body, wait_for_status

SERVERS = "/compute/v2.1/servers"
VTEPS = {"fake-1": "192.0.2.10", "fake-2": "192.0.2.11"}  # fake-3 has none


def set_vteps(cloud) -> None:
    def work(s):
        for node in s.scalars(select(ComputeNode)):
            node.overlay_ip = VTEPS.get(node.host)
    cloud.db.run(work)


def agent(cloud, host):
    return next(r for r in cloud.roles if type(r).__name__ == "Agent" and r.host == host)


def boot(api, cloud, admin, net_id: str, host: str) -> tuple[str, str]:
    """A server on `host`; its id and its port's MAC."""
    body = server_body(add_flavor(cloud, name=f"f-{uuid.uuid4().hex[:8]}"), add_image(cloud),
                       name=host,
                       availability_zone=f"nova:{host}")
    body["server"]["networks"] = [{"uuid": net_id}]
    r = api.post(SERVERS, json=body, headers=admin.compute())
    assert r.status_code == 202, r.text
    server = wait_for_status(api, admin.compute(), r.json()["server"]["id"], "ACTIVE")
    with cloud.db.reader() as s:
        mac = s.scalar(select(Port.mac_address).where(Port.device_id == server["id"]))
    return server["id"], mac


def eventually(check, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def test_hosts_of_a_vxlan_network_learn_each_other(api, cloud, admin, member):
    set_vteps(cloud)
    net = network(api, member)
    subnet(api, member, net["id"])
    _, mac0 = boot(api, cloud, admin, net["id"], "fake-1")
    second, mac1 = boot(api, cloud, admin, net["id"], "fake-2")
    a0, a1 = agent(cloud, "fake-1"), agent(cloud, "fake-2")
    want0 = (NetworkPeer("fake-2", "192.0.2.11", (mac1,)),)
    want1 = (NetworkPeer("fake-1", "192.0.2.10", (mac0,)),)
    assert eventually(lambda: a0.dataplane.peers.get(net["id"]) == want0), a0.dataplane.peers
    assert eventually(lambda: a1.dataplane.peers.get(net["id"]) == want1), a1.dataplane.peers
    assert a0.peers.get(net["id"]) == [want0[0].to_dict()]  # kept on disk for a restart
    # fake-2's server goes: fake-1 has no peer left on the network.
    assert api.delete(f"{SERVERS}/{second}", headers=admin.compute()).status_code == 204
    assert eventually(lambda: a0.dataplane.peers.get(net["id"]) == ()), a0.dataplane.peers


def test_views_leave_out_flat_networks_and_hosts_without_a_vtep(api, cloud, admin, member):
    set_vteps(cloud)
    cloud.settings.flat_networks = ["*"]
    vx = network(api, member)
    flat = network(api, admin, shared=True, **{"provider:network_type": "flat",
                                               "provider:physical_network": "physnet1"})
    for net in (vx, flat):
        subnet(api, admin, net["id"])
        for host in ("fake-1", "fake-3"):
            boot(api, cloud, admin, net["id"], host)
    with cloud.db.reader() as s:
        views = l2pop.views(s)
        assert set(views["fake-1"]) == {vx["id"]}  # no flat network: it learns on the wire
        assert views["fake-1"][vx["id"]] == []  # fake-3 has no VTEP: nobody's peer
        peer = views["fake-3"][vx["id"]]
        assert [(p.host, p.vtep) for p in peer] == [("fake-1", "192.0.2.10")]
        assert l2pop.host_view(s, "fake-3") == views["fake-3"]


def test_a_started_agent_and_the_resync_send_whole_views(api, cloud, admin, member):
    set_vteps(cloud)
    net = network(api, member)
    subnet(api, member, net["id"])
    boot(api, cloud, admin, net["id"], "fake-1")
    _, mac1 = boot(api, cloud, admin, net["id"], "fake-2")
    a0 = agent(cloud, "fake-1")
    # fake-1 forgot everything (a restart) and believes in a network that is gone.
    a0.dataplane.peers.clear()
    a0.dataplane.set_peers("net-gone", (NetworkPeer("x", "192.0.2.99"),))
    a0.peers.set("net-gone", [{"host": "x", "vtep": "192.0.2.99", "macs": []}])
    l2peers.push_host(cloud.db, _agents(cloud), RequestContext.admin(), "fake-1")
    want = (NetworkPeer("fake-2", "192.0.2.11", (mac1,)),)
    assert eventually(lambda: a0.dataplane.peers.get(net["id"]) == want), a0.dataplane.peers
    assert eventually(lambda: a0.dataplane.peers.get("net-gone") == ())
    assert a0.peers.get("net-gone") == []
    a0.dataplane.peers.clear()
    assert l2peers.resync(cloud.db, _agents(cloud), RequestContext.admin()) == 2
    assert eventually(lambda: a0.dataplane.peers.get(net["id"]) == want)


def test_a_deleted_instances_network_is_reported_by_its_nics(cloud):
    assert l2peers.network_ids([{"port_id": "p", "network_id": "n1"}, {"port_id": "q"}]) == ["n1"]
    with cloud.db.reader() as s:
        assert s.scalar(select(Instance.uuid)) is None
        assert l2pop.views(s) == {}


def _agents(cloud):
    from cirrus.agent.rpcapi import AgentAPI

    return AgentAPI(cloud.bus)


def test_a_started_host_with_a_new_vtep_is_announced_to_its_peers(api, cloud, admin, member):
    set_vteps(cloud)
    net = network(api, member)
    subnet(api, member, net["id"])
    boot(api, cloud, admin, net["id"], "fake-1")
    _, mac2 = boot(api, cloud, admin, net["id"], "fake-2")

    def move(s):  # fake-2 came back with another underlay address (its first report)
        s.scalar(select(ComputeNode).where(ComputeNode.host == "fake-2")).overlay_ip = \
            "192.0.2.99"
    cloud.db.run(move)
    l2peers.push_host(cloud.db, _agents(cloud), RequestContext.admin(), "fake-2")
    a1 = agent(cloud, "fake-1")
    want = (NetworkPeer("fake-2", "192.0.2.99", (mac2,)),)
    assert eventually(lambda: a1.dataplane.peers.get(net["id"]) == want), a1.dataplane.peers


def test_a_migrated_server_moves_its_ports_in_the_peers_views(api, cloud, admin, member):
    set_vteps(cloud)
    net = network(api, member)
    subnet(api, member, net["id"])
    boot(api, cloud, admin, net["id"], "fake-1")
    moving, mac = boot(api, cloud, admin, net["id"], "fake-3")  # fake-3: no VTEP
    a1 = agent(cloud, "fake-1")
    assert eventually(lambda: a1.dataplane.peers.get(net["id"]) == ())
    r = api.post(f"{SERVERS}/{moving}/action", json={"migrate": {"host": "fake-2"}},
                 headers=admin.compute("2.56"))
    assert r.status_code == 202, r.text
    wait_for_status(api, admin.compute(), moving, "VERIFY_RESIZE")
    want = (NetworkPeer("fake-2", "192.0.2.11", (mac,)),)
    assert eventually(lambda: a1.dataplane.peers.get(net["id"]) == want), a1.dataplane.peers
