"""Routers as the control side runs them (issue 14, l3): which L3 host runs each router,
and what its agent is told after each change. The fake hosts run the recording router host
(the noop dataplane's): it keeps what it was told and makes nothing; tests/network/ makes
real namespaces and moves packets."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import delete, select, update

from cirrus.agent.service import Agent
from cirrus.db.models import Port, Service
from cirrus.hosts.liveness import L3_BINARY
from cirrus.network.l3.model import RouterConfig
from tests.api.network_helpers import NET, create, network, port, subnet


@pytest.fixture
def settings(settings):
    settings.l3_agent = True  # every fake host runs routers
    return settings


def agents(cloud) -> dict[str, Agent]:
    return {role.host: role for role in cloud.roles if isinstance(role, Agent)}


def running(cloud, router_id: str) -> dict[str, RouterConfig]:
    """host -> what its agent was last told about the router."""
    return {host: agent.routers.served()[router_id] for host, agent in agents(cloud).items()
            if agent.routers is not None and router_id in agent.routers.served()}


def wait_for(predicate, what: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def make_router(api, caller, **body) -> dict:
    r = create(api, caller, "routers", "router", **{"name": "r", **body})
    assert r.status_code == 201, r.text
    return r.json()["router"]


def bound_hosts(cloud, router_id: str) -> set[str | None]:
    with cloud.db.reader() as s:
        return set(s.scalars(select(Port.binding_host_id).where(Port.device_id == router_id)))


@pytest.fixture
def public(api, admin) -> dict:
    net = network(api, admin, name="public", **{"router:external": True})
    subnet(api, admin, net["id"], "198.51.100.0/24", gateway_ip="198.51.100.1",
           enable_dhcp=False)
    return net


def test_l3_agents_report_a_service(cloud, api, admin):
    with cloud.db.reader() as s:
        hosts = set(s.scalars(select(Service.host).where(Service.binary == L3_BINARY)))
    assert hosts == set(agents(cloud))


def test_a_router_is_told_to_one_host_with_everything_it_needs(cloud, api, admin, member,
                                                               public):
    net = network(api, member, mtu=1400)
    sn = subnet(api, member, net["id"], "10.61.0.0/24", gateway_ip="10.61.0.1")
    router = make_router(api, member)
    assert bound_hosts(cloud, router["id"]) == set()
    time.sleep(0.2)
    assert running(cloud, router["id"]) == {}  # no leg: runs nowhere
    r = api.put(f"{NET}/routers/{router['id']}/add_router_interface",
                json={"subnet_id": sn["id"]}, headers=member.headers)
    assert r.status_code == 200, r.text
    [host] = wait_for(lambda: running(cloud, router["id"]), "the router on a host")
    assert bound_hosts(cloud, router["id"]) == {host}
    config = running(cloud, router["id"])[host]
    [leg] = config.interfaces
    assert leg.addresses == ("10.61.0.1/24",) and leg.network_id == net["id"]
    assert leg.mtu == 1400 and leg.network_type is not None
    assert config.gateway is None

    r = api.put(f"{NET}/routers/{router['id']}", json={"router": {
        "external_gateway_info": {"network_id": public["id"], "enable_snat": False},
        "routes": [{"destination": "10.99.0.0/16", "nexthop": "10.61.0.9"}]}},
        headers=admin.headers)
    assert r.status_code == 200, r.text
    gateway = wait_for(lambda: running(cloud, router["id"])[host].gateway, "the gateway")
    assert gateway.gateway_ips == ("198.51.100.1",)
    assert gateway.addresses[0].endswith("/24") and gateway.network_id == public["id"]
    config = running(cloud, router["id"])[host]
    assert config.enable_snat is False
    assert config.routes == (("10.99.0.0/16", "10.61.0.9"),)

    vm = port(api, member, net["id"])
    made = create(api, member, "floatingips", "floatingip", floating_network_id=public["id"],
                  port_id=vm["id"])
    assert made.status_code == 201, made.text
    fip = made.json()["floatingip"]
    wait_for(lambda: running(cloud, router["id"])[host].floating_ips == (
        (fip["floating_ip_address"], vm["fixed_ips"][0]["ip_address"]),), "the floating IP")
    assert api.delete(f"{NET}/floatingips/{fip['id']}",
                      headers=member.headers).status_code == 204
    wait_for(lambda: running(cloud, router["id"])[host].floating_ips == (), "no floating IP")

    # Down: removed from its host; up: back.
    r = api.put(f"{NET}/routers/{router['id']}", json={"router": {"admin_state_up": False}},
                headers=member.headers)
    assert r.status_code == 200
    wait_for(lambda: running(cloud, router["id"]) == {}, "the router down")
    r = api.put(f"{NET}/routers/{router['id']}", json={"router": {"admin_state_up": True}},
                headers=member.headers)
    wait_for(lambda: set(running(cloud, router["id"])) == {host}, "the router up again")

    # Deleted: gone from its host.
    r = api.put(f"{NET}/routers/{router['id']}", json={"router": {"routes": []}},
                headers=member.headers)
    wait_for(lambda: running(cloud, router["id"])[host].routes == (), "no route")
    r = api.put(f"{NET}/routers/{router['id']}/remove_router_interface",
                json={"subnet_id": sn["id"]}, headers=member.headers)
    assert r.status_code == 200
    assert api.delete(f"{NET}/routers/{router['id']}", headers=member.headers).status_code == 204
    wait_for(lambda: running(cloud, router["id"]) == {}, "the router removed")


def test_routers_spread_over_hosts_and_leave_a_disabled_one(cloud, api, member, public):
    assert len(agents(cloud)) >= 2
    first = make_router(api, member, external_gateway_info={"network_id": public["id"]})
    second = make_router(api, member, external_gateway_info={"network_id": public["id"]})
    [host1] = wait_for(lambda: running(cloud, first["id"]), "the first router")
    [host2] = wait_for(lambda: running(cloud, second["id"]), "the second router")
    assert host1 != host2  # the least loaded host takes the next router

    with cloud.db.writer() as s:  # the first router's host is disabled: it moves away
        s.execute(update(Service).where(Service.host == host1, Service.binary == L3_BINARY)
                  .values(disabled=True))
    r = api.put(f"{NET}/routers/{first['id']}", json={"router": {"name": "moved"}},
                headers=member.headers)
    assert r.status_code == 200
    [moved] = wait_for(lambda: [h for h in running(cloud, first["id"]) if h != host1],
                       "the router on another host")
    wait_for(lambda: set(running(cloud, first["id"])) == {moved}, "the old host told")
    assert bound_hosts(cloud, first["id"]) == {moved}


def test_a_full_report_moves_a_router_off_a_host_that_went_away(cloud, api, member, public):
    from cirrus.context import RequestContext
    from cirrus.network.l3.control import sync_host

    router = make_router(api, member, external_gateway_info={"network_id": public["id"]})
    [old] = wait_for(lambda: running(cloud, router["id"]), "the router on a host")
    with cloud.db.writer() as s:
        s.execute(update(Service).where(Service.host == old, Service.binary == L3_BINARY)
                  .values(disabled=True))
    other = sorted(h for h in agents(cloud) if h != old)[0]
    sync_host(cloud, RequestContext.admin(), other)  # what the other agent's full report does
    wait_for(lambda: set(running(cloud, router["id"])) == {other}, "the router moved")
    assert bound_hosts(cloud, router["id"]) == {other}


def test_a_changed_subnet_or_network_reaches_the_routers_on_it(cloud, api, admin, member):
    public = network(api, admin, name="public", **{"router:external": True})
    ext_subnet = subnet(api, admin, public["id"], "198.51.100.0/24",
                        gateway_ip="198.51.100.1", enable_dhcp=False,
                        allocation_pools=[{"start": "198.51.100.10",
                                           "end": "198.51.100.200"}])
    net = network(api, member)
    sn = subnet(api, member, net["id"], "10.62.0.0/24")
    router = make_router(api, member, external_gateway_info={"network_id": public["id"]})
    r = api.put(f"{NET}/routers/{router['id']}/add_router_interface",
                json={"subnet_id": sn["id"]}, headers=member.headers)
    assert r.status_code == 200, r.text
    [host] = wait_for(lambda: running(cloud, router["id"]), "the router on a host")
    r = api.put(f"{NET}/subnets/{ext_subnet['id']}",
                json={"subnet": {"gateway_ip": "198.51.100.254"}}, headers=admin.headers)
    assert r.status_code == 200, r.text
    wait_for(lambda: running(cloud, router["id"])[host].gateway.gateway_ips
             == ("198.51.100.254",), "the new external gateway")
    r = api.put(f"{NET}/networks/{net['id']}", json={"network": {"mtu": 1300}},
                headers=member.headers)
    assert r.status_code == 200, r.text
    wait_for(lambda: running(cloud, router["id"])[host].interfaces[0].mtu == 1300,
             "the new MTU")


# ---- a router's status follows what its host made of it (docs/networking.md, "Router status")


def status(api, caller, router_id: str) -> str:
    r = api.get(f"{NET}/routers/{router_id}", headers=caller.headers)
    assert r.status_code == 200, r.text
    return r.json()["router"]["status"]


def test_a_router_is_allocating_until_its_host_reports_it_built(cloud, api, member, public,
                                                                monkeypatch):
    import threading

    from cirrus.network.l3.agent import RecordingRouters

    router = make_router(api, member)
    assert router["status"] == "ACTIVE"  # no leg: nothing to build anywhere (as Neutron)
    building = threading.Event()
    release = threading.Event()

    def slow(self, config, before):  # the host takes its time making the namespace
        building.set()
        assert release.wait(10)

    monkeypatch.setattr(RecordingRouters, "_converge", slow)
    r = api.put(f"{NET}/routers/{router['id']}", headers=member.headers,
                json={"router": {"external_gateway_info": {"network_id": public["id"]}}})
    assert r.status_code == 200, r.text
    assert building.wait(10)
    assert status(api, member, router["id"]) == "ALLOCATING"
    release.set()
    wait_for(lambda: status(api, member, router["id"]) == "ACTIVE", "the router ACTIVE")
    listed = api.get(f"{NET}/routers?status=ACTIVE", headers=member.headers).json()
    assert router["id"] in {x["id"] for x in listed["routers"]}


def test_a_router_its_host_cannot_build_is_error_saying_why_then_active_again(
        cloud, api, member, public, monkeypatch, caplog):
    from cirrus.network.l3.agent import RecordingRouters

    router = make_router(api, member, external_gateway_info={"network_id": public["id"]})
    [host] = wait_for(lambda: running(cloud, router["id"]), "the router on a host")
    wait_for(lambda: status(api, member, router["id"]) == "ACTIVE", "the router ACTIVE")

    def broken(self, config, before):
        raise RuntimeError("ip netns add: Cannot create namespace file: No space left")

    monkeypatch.setattr(RecordingRouters, "_converge", broken)
    r = api.put(f"{NET}/routers/{router['id']}", headers=member.headers,
                json={"router": {"routes": [{"destination": "10.99.0.0/16",
                                             "nexthop": "198.51.100.1"}]}})
    assert r.status_code == 200, r.text
    wait_for(lambda: status(api, member, router["id"]) == "ERROR", "the router in ERROR")
    said = [rec.getMessage() for rec in caplog.records
            if rec.levelname == "ERROR" and rec.name == "cirrus.network.l3.control"]
    assert any(router["id"] in m and host in m and "No space left" in m for m in said), said

    monkeypatch.undo()  # the host can build it again: the next change (or full report) heals
    r = api.put(f"{NET}/routers/{router['id']}", headers=member.headers,
                json={"router": {"routes": []}})
    assert r.status_code == 200, r.text
    wait_for(lambda: status(api, member, router["id"]) == "ACTIVE", "the router ACTIVE again")


def test_a_report_from_a_host_that_does_not_run_the_router_changes_nothing(
        cloud, api, member, public):
    from cirrus.network.l3.control import record_status

    router = make_router(api, member, external_gateway_info={"network_id": public["id"]})
    [host] = wait_for(lambda: running(cloud, router["id"]), "the router on a host")
    wait_for(lambda: status(api, member, router["id"]) == "ACTIVE", "the router ACTIVE")
    other = next(h for h in agents(cloud) if h != host)
    assert record_status(cloud.db, other, router["id"], False, "stale") is None
    assert record_status(cloud.db, host, "no-such-router", False, "gone") is None
    assert status(api, member, router["id"]) == "ACTIVE"
    assert record_status(cloud.db, host, router["id"], False, "late failure") == "ERROR"
    assert status(api, member, router["id"]) == "ERROR"


def test_a_router_with_no_live_l3_host_waits_allocating_then_runs(cloud, api, member, public,
                                                                  caplog):
    from cirrus.context import RequestContext
    from cirrus.network.l3.control import sync_host

    with cloud.db.writer() as s:  # every L3 host disabled: none can take a router
        s.execute(update(Service).where(Service.binary == L3_BINARY).values(disabled=True))
    router = make_router(api, member, external_gateway_info={"network_id": public["id"]})
    wait_for(lambda: status(api, member, router["id"]) == "ALLOCATING", "ALLOCATING")
    assert running(cloud, router["id"]) == {}
    assert any(router["id"] in rec.getMessage() and "no live L3 host" in rec.getMessage()
               for rec in caplog.records if rec.levelname == "WARNING")
    host = sorted(agents(cloud))[0]
    with cloud.db.writer() as s:
        s.execute(update(Service).where(Service.binary == L3_BINARY, Service.host == host)
                  .values(disabled=False))
    sync_host(cloud, RequestContext.admin(), host)  # what its next full report does
    wait_for(lambda: set(running(cloud, router["id"])) == {host}, "the router on the host")
    wait_for(lambda: status(api, member, router["id"]) == "ACTIVE", "the router ACTIVE")


def test_a_cloud_with_no_l3_host_at_all_shows_routers_active(cloud, api, member, public):
    """No L3 service registered anywhere (the fake all-in-one): a router with a gateway is
    ACTIVE, as Neutron without an L3 agent says, so clients waiting for ACTIVE go on."""
    with cloud.db.writer() as s:
        s.execute(delete(Service).where(Service.binary == L3_BINARY))
    router = make_router(api, member, external_gateway_info={"network_id": public["id"]})
    wait_for(lambda: status(api, member, router["id"]) == "ACTIVE", "ACTIVE")
    assert running(cloud, router["id"]) == {}
