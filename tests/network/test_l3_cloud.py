"""Routers end to end on one host: the API, the control side (scheduling, `sync_router`
after each commit), the bus, an agent with `l3_agent` and the linuxbridge dataplane in a
namespace of its own, and real packets between a "VM" namespace and an "outside" one."""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from cirrus.agent.service import Agent
from cirrus.db.models import Port
from cirrus.hosts.liveness import L3_BINARY
from cirrus.network.l3.agent import NamespaceRouters, namespace_name
from cirrus.network.model import bridge_name
from cirrus.runtime import Cloud
from tests.api.network_helpers import NET, create, network, port, subnet
from tests.network.conftest import cloud_with_agent_in, ip, wait_for
from tests.network.test_router import SERVER, seen_by
from tests.services import require

HOST = "l3-host-1"


@pytest.fixture
def host_ns(namespaces) -> str:
    return namespaces.add("hv")


@pytest.fixture
def cloud(settings, host_ns) -> Iterator[Cloud]:
    require(shutil.which("nft") is not None, "nftables (nft) is not installed")
    settings.l3_agent = True
    with cloud_with_agent_in(settings, HOST, host_ns, L3_BINARY) as (c, agent):
        assert isinstance(agent.routers, NamespaceRouters)
        yield c
    for router_id in list(agent.routers.served()):
        agent.routers.remove(router_id)


def nat_rules(ns: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "table", "ip",
                           "cirrus-router"], capture_output=True, text=True).stdout


def endpoint(namespaces, host_ns: str, network_id: str, mac: str | None, address: str,
             gateway: str | None, servers: list) -> str:
    ns = namespaces.add(f"e{uuid.uuid4().hex[:4]}")
    outer = f"v{uuid.uuid4().hex[:10]}"
    ip("link", "add", "eth0", "netns", ns, *(["address", mac] if mac else []), "type", "veth",
       "peer", "name", outer, "netns", host_ns)
    ip("link", "set", outer, "master", bridge_name(network_id), "up", netns=host_ns)
    ip("addr", "add", address, "dev", "eth0", netns=ns)
    ip("link", "set", "eth0", "up", netns=ns)
    if gateway:
        ip("route", "add", "default", "via", gateway, netns=ns)
    servers.append(subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", SERVER,
                                     "60"], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL))
    return ns


def test_a_router_made_through_the_api_routes_snats_and_floats(
        cloud, api, admin, member, namespaces, host_ns):
    agent = next(role for role in cloud.roles if isinstance(role, Agent))
    routers = agent.routers
    assert isinstance(routers, NamespaceRouters)
    public = network(api, admin, name="public", **{"router:external": True})
    subnet(api, admin, public["id"], "198.51.100.0/24", gateway_ip="198.51.100.1",
           enable_dhcp=False)
    net = network(api, member)
    sn = subnet(api, member, net["id"], "10.93.0.0/24", gateway_ip="10.93.0.1",
                enable_dhcp=False)
    made = create(api, member, "routers", "router", name="r1",
                  external_gateway_info={"network_id": public["id"]})
    assert made.status_code == 201, made.text
    router = made.json()["router"]
    gw_address = router["external_gateway_info"]["external_fixed_ips"][0]["ip_address"]
    r = api.put(f"{NET}/routers/{router['id']}/add_router_interface",
                json={"subnet_id": sn["id"]}, headers=member.headers)
    assert r.status_code == 200, r.text
    wait_for(lambda: len(getattr(routers.served().get(router["id"]), "interfaces", ())) == 1,
             what="the router with its interface on the host")
    # (served() is what the host was told, recorded before it converges: wait for the leg)
    wait_for(lambda: f"master {bridge_name(net['id'])}" in ip("-o", "link", "show",
                                                              netns=host_ns),
             what="the router's leg on the network's bridge")
    ns = namespace_name(router["id"], host_ns)
    assert Path("/run/netns", ns).exists()
    with cloud.db.reader() as s:  # its ports are bound to the host that runs it
        hosts = set(s.scalars(select(Port.binding_host_id).where(Port.device_id == router["id"])))
    assert hosts == {HOST}

    vm_port = port(api, member, net["id"])
    vm_ip = vm_port["fixed_ips"][0]["ip_address"]
    servers: list[subprocess.Popen] = []
    try:
        vm = endpoint(namespaces, host_ns, net["id"], vm_port["mac_address"], f"{vm_ip}/24",
                      "10.93.0.1", servers)
        outside = endpoint(namespaces, host_ns, public["id"], None, "198.51.100.1/24", None,
                           servers)
        assert seen_by(vm, "198.51.100.1") == gw_address  # SNAT to the gateway's address

        made = create(api, member, "floatingips", "floatingip",
                      floating_network_id=public["id"], port_id=vm_port["id"])
        assert made.status_code == 201, made.text
        fip = made.json()["floatingip"]
        floating = fip["floating_ip_address"]
        wait_for(lambda: f"dnat to {vm_ip}" in nat_rules(ns), what="the floating IP's DNAT")
        assert routers.served()[router["id"]].floating_ips == ((floating, vm_ip),)
        assert seen_by(outside, floating) == "198.51.100.1"
        assert seen_by(vm, "198.51.100.1") == floating

        r = api.put(f"{NET}/floatingips/{fip['id']}", json={"floatingip": {"port_id": None}},
                    headers=member.headers)
        assert r.status_code == 200, r.text
        wait_for(lambda: "dnat to" not in nat_rules(ns), what="the floating IP's DNAT gone")
        assert routers.served()[router["id"]].floating_ips == ()
        assert seen_by(outside, floating, timeout=1.5) is None
        assert seen_by(vm, "198.51.100.1") == gw_address
    finally:
        for server in servers:
            server.kill()
            server.wait()

    # The interface and the gateway go, then the router: nothing of it stays on the host.
    r = api.put(f"{NET}/routers/{router['id']}/remove_router_interface",
                json={"subnet_id": sn["id"]}, headers=member.headers)
    assert r.status_code == 200, r.text
    assert api.delete(f"{NET}/routers/{router['id']}", headers=member.headers).status_code == 204
    wait_for(lambda: router["id"] not in routers.served(), what="the router removed")
    assert not Path("/run/netns", ns).exists()
    assert not [n for n in ip("-o", "link", "show", netns=host_ns).split()
                if n.startswith(("rq-", "rg-"))]


def router_status(api, caller, router_id: str) -> str:
    r = api.get(f"{NET}/routers/{router_id}", headers=caller.headers)
    assert r.status_code == 200, r.text
    return r.json()["router"]["status"]


def test_a_router_its_host_cannot_build_is_error_then_active_once_it_can(
        cloud, api, admin, member, host_ns, caplog):
    """The status comes from the real dataplane: a namespace that cannot be made (here its
    name taken by a plain file, not a namespace) makes the router ERROR with the host's
    reason in the log; once the host can make it, the next change makes it ACTIVE."""
    public = network(api, admin, name="public", **{"router:external": True})
    subnet(api, admin, public["id"], "198.51.100.0/24", gateway_ip="198.51.100.1",
           enable_dhcp=False)
    made = create(api, member, "routers", "router", name="r1")
    assert made.status_code == 201, made.text
    router = made.json()["router"]
    assert router["status"] == "ACTIVE"  # no leg: nothing to build
    blocker = Path("/run/netns", namespace_name(router["id"], host_ns))
    blocker.write_text("")
    try:
        r = api.put(f"{NET}/routers/{router['id']}", headers=member.headers,
                    json={"router": {"external_gateway_info": {"network_id": public["id"]}}})
        assert r.status_code == 200, r.text
        wait_for(lambda: router_status(api, member, router["id"]) == "ERROR",
                 what="the router in ERROR")
        said = [rec.getMessage() for rec in caplog.records if rec.levelname == "ERROR"
                and rec.name == "cirrus.network.l3.control"]
        assert any(router["id"] in m and HOST in m and "RuntimeError" in m for m in said), said
    finally:
        blocker.unlink()
    r = api.put(f"{NET}/routers/{router['id']}", json={"router": {"name": "r1-again"}},
                headers=member.headers)
    assert r.status_code == 200, r.text
    wait_for(lambda: router_status(api, member, router["id"]) == "ACTIVE",
             what="the router ACTIVE once built")
    assert Path("/run/netns", namespace_name(router["id"], host_ns)).exists()
