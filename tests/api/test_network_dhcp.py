"""DHCP as the API shows it: DHCP ports (device_owner network:dhcp) made on the hosts that
serve a network's DHCP, addresses from the pool, and what their agents are told.

The fake hosts here run the recording DHCP server (the noop dataplane's): it keeps what
its agent was told and starts nothing; tests/network/ runs the real dnsmasq.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import time

import pytest

from cirrus.agent.service import Agent
from cirrus.network.dhcp.control import dhcp_device_id
from tests.api.network_helpers import NET, network, neutron_error, port, subnet


@pytest.fixture
def settings(settings):
    settings.dhcp_agent = True  # every fake host serves DHCP; two per network
    return settings


def agents(cloud) -> dict[str, Agent]:
    return {role.host: role for role in cloud.roles if isinstance(role, Agent)}


def served(cloud) -> dict[str, dict]:
    """host -> {network id: what its agent was last told}."""
    return {host: {nid: net for nid, net in agent.dhcp.served().items()}
            for host, agent in agents(cloud).items() if agent.dhcp is not None}


def wait_for(predicate, what: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def dhcp_ports(api, caller, network_id: str) -> list[dict]:
    r = api.get(f"{NET}/ports?network_id={network_id}&device_owner=network:dhcp",
                headers=caller.headers)
    assert r.status_code == 200, r.text
    return r.json()["ports"]


def serving_hosts(cloud, network_id: str) -> set[str]:
    return {host for host, nets in served(cloud).items() if network_id in nets}


def test_a_dhcp_subnet_gets_dhcp_ports_on_two_hosts_with_pool_addresses(
        cloud, api, admin, member):
    net = network(api, member)
    sub = subnet(api, member, net["id"], cidr="10.40.0.0/24",
                 allocation_pools=[{"start": "10.40.0.100", "end": "10.40.0.200"}])
    found = dhcp_ports(api, member, net["id"])
    assert len(found) == cloud.settings.dhcp_hosts_per_network == 2
    addresses = set()
    for p in found:
        assert p["device_owner"] == "network:dhcp"
        assert p["device_id"].startswith("dhcp") and p["device_id"].endswith(net["id"])
        assert p["project_id"] == member.project_id
        [fixed] = p["fixed_ips"]
        assert fixed["subnet_id"] == sub["id"]
        assert 100 <= int(ipaddress.ip_address(fixed["ip_address"]).packed[-1]) <= 200
        addresses.add(fixed["ip_address"])
        assert "binding:host_id" not in p  # admin-only
    assert len(addresses) == 2
    # Admins see where they are bound: the hosts whose agents serve the network.
    hosts = {p["binding:host_id"] for p in dhcp_ports(api, admin, net["id"])}
    assert hosts <= set(agents(cloud))
    assert {p["device_id"] for p in found} == {dhcp_device_id(h, net["id"]) for h in hosts}
    wait_for(lambda: serving_hosts(cloud, net["id"]) == hosts, "the agents told")
    for host in hosts:
        told = served(cloud)[host][net["id"]]
        mine = next(p for p in dhcp_ports(api, admin, net["id"])
                    if p["binding:host_id"] == host)
        assert told.port_id == mine["id"] and told.mac == mine["mac_address"]
        assert told.addresses == (f"{mine['fixed_ips'][0]['ip_address']}/24",)
        assert [sn.id for sn in told.subnets] == [sub["id"]]


def test_port_changes_reach_the_dhcp_hosts(cloud, api, member):
    net = network(api, member)
    subnet(api, member, net["id"], cidr="10.41.0.0/24", gateway_ip="10.41.0.1",
           dns_nameservers=["10.41.0.53"], host_routes=[
               {"destination": "172.16.0.0/16", "nexthop": "10.41.0.9"}])
    vm = port(api, member, net["id"])
    address = vm["fixed_ips"][0]["ip_address"]

    def told_about_vm():
        nets = [nets[net["id"]] for nets in served(cloud).values() if net["id"] in nets]
        return len(nets) == 2 and all(
            any(e.mac == vm["mac_address"] and e.ip == address for e in n.entries)
            for n in nets) and nets
    nets = wait_for(told_about_vm, "the new port in the hosts entries")
    subnet_told = nets[0].subnets[0]
    assert subnet_told.gateway_ip == "10.41.0.1"
    assert subnet_told.dns_nameservers == ("10.41.0.53",)
    assert subnet_told.host_routes == (("172.16.0.0/16", "10.41.0.9"),)

    assert api.delete(f"{NET}/ports/{vm['id']}", headers=member.headers).status_code == 204
    wait_for(lambda: all(not any(e.mac == vm["mac_address"] for e in nets[net["id"]].entries)
                         for nets in served(cloud).values() if net["id"] in nets),
             "the deleted port gone from the entries")


def test_no_dhcp_ports_without_enable_dhcp_and_they_follow_the_setting(cloud, api, member):
    net = network(api, member)
    sub = subnet(api, member, net["id"], cidr="10.42.0.0/24", enable_dhcp=False)
    assert dhcp_ports(api, member, net["id"]) == []
    assert serving_hosts(cloud, net["id"]) == set()

    r = api.put(f"{NET}/subnets/{sub['id']}", json={"subnet": {"enable_dhcp": True}},
                headers=member.headers)
    assert r.status_code == 200, r.text
    assert len(dhcp_ports(api, member, net["id"])) == 2
    wait_for(lambda: len(serving_hosts(cloud, net["id"])) == 2, "two DHCP hosts")

    r = api.put(f"{NET}/subnets/{sub['id']}", json={"subnet": {"enable_dhcp": False}},
                headers=member.headers)
    assert r.status_code == 200, r.text
    assert dhcp_ports(api, member, net["id"]) == []
    wait_for(lambda: serving_hosts(cloud, net["id"]) == set(), "the DHCP hosts told to stop")


def test_deleting_the_subnet_or_the_network_takes_the_dhcp_ports(cloud, api, member):
    net = network(api, member)
    sub = subnet(api, member, net["id"], cidr="10.43.0.0/24")
    assert len(dhcp_ports(api, member, net["id"])) == 2
    assert api.delete(f"{NET}/subnets/{sub['id']}", headers=member.headers).status_code == 204
    assert dhcp_ports(api, member, net["id"]) == []
    wait_for(lambda: serving_hosts(cloud, net["id"]) == set(), "the subnet's DHCP gone")

    subnet(api, member, net["id"], cidr="10.43.0.0/24")
    wait_for(lambda: len(serving_hosts(cloud, net["id"])) == 2, "DHCP back")
    # The DHCP ports do not keep the network: it goes, and they with it.
    assert api.delete(f"{NET}/networks/{net['id']}", headers=member.headers).status_code == 204
    r = api.get(f"{NET}/ports?network_id={net['id']}", headers=member.headers)
    assert r.json()["ports"] == []
    wait_for(lambda: serving_hosts(cloud, net["id"]) == set(), "the network's DHCP gone")


def test_a_users_port_still_keeps_the_network(cloud, api, member):
    net = network(api, member)
    subnet(api, member, net["id"], cidr="10.44.0.0/24")
    port(api, member, net["id"])
    r = api.delete(f"{NET}/networks/{net['id']}", headers=member.headers)
    assert r.status_code == 409
    assert neutron_error(r)["type"] == "NetworkInUse"
    assert len(dhcp_ports(api, member, net["id"])) == 2


def test_dhcp_ports_take_their_addresses_from_the_pool(cloud, api, member):
    net = network(api, member)
    # A /29 pool of five: two go to the DHCP ports, three are left for the project.
    subnet(api, member, net["id"], cidr="10.45.0.0/29")
    for _ in range(3):
        port(api, member, net["id"])
    r = api.post(f"{NET}/ports", json={"port": {"network_id": net["id"]}},
                 headers=member.headers)
    assert r.status_code == 409
    assert neutron_error(r)["type"] == "IpAddressGenerationFailure"


def test_who_sees_the_dhcp_ports(cloud, api, admin, member, reader, other_member):
    net = network(api, member)
    subnet(api, member, net["id"], cidr="10.46.0.0/24")
    assert len(dhcp_ports(api, admin, net["id"])) == 2
    assert len(dhcp_ports(api, reader, net["id"])) == 2  # same project, read-only
    assert dhcp_ports(api, other_member, net["id"]) == []
    some = dhcp_ports(api, member, net["id"])[0]
    r = api.get(f"{NET}/ports/{some['id']}", headers=other_member.headers)
    assert r.status_code == 404
    r = api.delete(f"{NET}/ports/{some['id']}", headers=reader.headers)
    assert r.status_code == 403


def test_an_agent_that_starts_is_told_everything_it_serves(cloud, api, member):
    net = network(api, member)
    subnet(api, member, net["id"], cidr="10.47.0.0/24")
    hosts = wait_for(lambda: serving_hosts(cloud, net["id"]), "DHCP hosts")
    host = sorted(hosts)[0]
    agent = agents(cloud)[host]
    # The agent forgets everything (a lost state directory), then reports as at start.
    for network_id in list(agent.dhcp.served()):
        agent.dhcp.remove(network_id)
    agent._dhcp_stamps.clear()
    agent.report(cloud.admin_context(), full=True, startup=True)
    wait_for(lambda: net["id"] in agent.dhcp.served(), "the full state after a restart")


def test_a_second_dhcp_subnet_gives_the_dhcp_ports_an_address_on_it(cloud, api, member):
    net = network(api, member)
    first = subnet(api, member, net["id"], cidr="10.48.0.0/24")
    second = subnet(api, member, net["id"], cidr="10.49.0.0/24")
    for p in dhcp_ports(api, member, net["id"]):
        assert {f["subnet_id"] for f in p["fixed_ips"]} == {first["id"], second["id"]}

    def both_subnets_told():
        nets = [n[net["id"]] for n in served(cloud).values() if net["id"] in n]
        return len(nets) == 2 and all(len(n.subnets) == 2 and len(n.addresses) == 2
                                      for n in nets)
    wait_for(both_subnets_told, "both subnets sent to both hosts")


def test_a_network_whose_dhcp_host_is_down_gets_another(cloud, api, admin, member):
    from sqlalchemy import update

    from cirrus.db.models import Service
    from cirrus.hosts.liveness import DHCP_BINARY

    net = network(api, member)
    subnet(api, member, net["id"], cidr="10.50.0.0/24")
    before = {p["binding:host_id"] for p in dhcp_ports(api, admin, net["id"])}
    down = sorted(before)[0]
    cloud.db.run(lambda s: s.execute(update(Service).where(
        Service.host == down, Service.binary == DHCP_BINARY).values(forced_down=True)))
    port(api, member, net["id"])  # any change of the network syncs it
    after = {p["binding:host_id"] for p in dhcp_ports(api, admin, net["id"])}
    spare = set(agents(cloud)) - before
    assert after == before | spare and len(spare) == 1
    wait_for(lambda: spare <= serving_hosts(cloud, net["id"]), "the spare host told")


def test_hosts_per_network_is_a_setting(cloud, api, member):
    cloud.settings.dhcp_hosts_per_network = 1
    net = network(api, member)
    subnet(api, member, net["id"], cidr="10.51.0.0/24")
    assert len(dhcp_ports(api, member, net["id"])) == 1


def test_deleting_a_dhcp_service_releases_its_networks(cloud, api, admin, member):
    net = network(api, member)
    subnet(api, member, net["id"], cidr="10.52.0.0/24")
    before = {p["binding:host_id"] for p in dhcp_ports(api, admin, net["id"])}
    gone = sorted(before)[0]
    services = api.get(f"/compute/v2.1/os-services?host={gone}&binary=cirrus-dhcp-agent",
                       headers=admin.compute("2.53")).json()["services"]
    [svc] = services
    assert svc["state"] == "up" and svc["zone"] == "internal"
    agents(cloud)[gone].dhcp = None  # the host stops serving DHCP (and reporting it)
    r = api.delete(f"/compute/v2.1/os-services/{svc['id']}", headers=admin.compute("2.53"))
    assert r.status_code == 204, r.text
    port(api, member, net["id"])
    after = {p["binding:host_id"] for p in dhcp_ports(api, admin, net["id"])}
    assert gone not in after and len(after) == 2


def test_a_deleted_dhcp_port_is_made_again(cloud, api, admin, member):
    net = network(api, member)
    subnet(api, member, net["id"], cidr="10.53.0.0/24")
    victim = dhcp_ports(api, admin, net["id"])[0]
    r = api.delete(f"{NET}/ports/{victim['id']}", headers=member.headers)
    assert r.status_code == 204
    again = dhcp_ports(api, admin, net["id"])
    assert len(again) == 2 and victim["id"] not in {p["id"] for p in again}
    # Each serving host is told its (new) port; none serves with the deleted one.
    hosts = {p["binding:host_id"]: p["id"] for p in again}
    wait_for(lambda: {h: nets[net["id"]].port_id for h, nets in served(cloud).items()
                      if net["id"] in nets} == hosts, "the hosts told their DHCP ports")


def test_a_dhcp_subnet_without_room_leaves_the_dhcp_ports_as_they_were(cloud, api, member):
    net = network(api, member)
    first = subnet(api, member, net["id"], cidr="10.54.0.0/24")
    full = subnet(api, member, net["id"], cidr="10.54.1.0/29", enable_dhcp=False,
                  allocation_pools=[{"start": "10.54.1.2", "end": "10.54.1.2"}])
    port(api, member, net["id"], fixed_ips=[{"subnet_id": full["id"]}])
    before = {p["id"]: p["fixed_ips"] for p in dhcp_ports(api, member, net["id"])}
    r = api.put(f"{NET}/subnets/{full['id']}", json={"subnet": {"enable_dhcp": True}},
                headers=member.headers)
    assert r.status_code == 200, r.text  # the subnet change stands
    after = {p["id"]: p["fixed_ips"] for p in dhcp_ports(api, member, net["id"])}
    assert after == before
    assert all(f["subnet_id"] == first["id"] for ips in after.values() for f in ips)


def test_dhcp_ports_bound_after_a_server_join_the_vxlan_views_at_once(
        cloud, api, admin, member):
    """DHCP turned on for a vxlan network that has a server already: the DHCP hosts' new
    ports take them into the network's forwarding databases now, not at the next resync
    (the server's host floods its DHCP requests to them; they answer to its MAC), and a
    DHCP port that goes takes its host out of the others' views."""
    from tests.api.test_network_peers import boot, eventually, set_vteps

    set_vteps(cloud)  # fake-1 and fake-2 have VTEPs, fake-3 none
    cloud.settings.dhcp_hosts_per_network = 3
    net = network(api, member)
    sub = subnet(api, member, net["id"], cidr="10.47.0.0/24", enable_dhcp=False)
    _, server_mac = boot(api, cloud, admin, net["id"], "fake-1")
    one, two = agents(cloud)["fake-1"], agents(cloud)["fake-2"]
    assert eventually(lambda: one.dataplane.peers.get(net["id"]) == ())

    r = api.put(f"{NET}/subnets/{sub['id']}", json={"subnet": {"enable_dhcp": True}},
                headers=member.headers)
    assert r.status_code == 200, r.text
    macs = {p["binding:host_id"]: p["mac_address"] for p in dhcp_ports(api, admin, net["id"])}
    assert set(macs) == {"fake-1", "fake-2", "fake-3"}
    assert eventually(lambda: [(p.host, p.vtep, p.macs) for p in
                               one.dataplane.peers.get(net["id"], ())]
                      == [("fake-2", "192.0.2.11", (macs["fake-2"],))]), one.dataplane.peers
    assert eventually(lambda: [(p.host, p.vtep, set(p.macs)) for p in
                               two.dataplane.peers.get(net["id"], ())]
                      == [("fake-1", "192.0.2.10", {server_mac, macs["fake-1"]})]), \
        two.dataplane.peers

    r = api.put(f"{NET}/subnets/{sub['id']}", json={"subnet": {"enable_dhcp": False}},
                headers=member.headers)
    assert r.status_code == 200, r.text
    assert eventually(lambda: one.dataplane.peers.get(net["id"]) == ()), one.dataplane.peers


def test_a_dhcp_host_taking_over_a_network_joins_its_vxlan_views_at_once(
        cloud, api, admin, member):
    """The full sync of a DHCP host's report gives it a network whose DHCP host is down: its
    new DHCP port makes it a peer of the network's servers' hosts now."""
    from sqlalchemy import select, update

    from cirrus.db.models import ComputeNode, Service
    from cirrus.hosts.liveness import DHCP_BINARY
    from tests.api.test_network_peers import boot, eventually

    vteps = {"fake-1": "192.0.2.10", "fake-2": "192.0.2.11", "fake-3": "192.0.2.12"}

    def set_vteps(s):
        for node in s.scalars(select(ComputeNode)):
            node.overlay_ip = vteps[node.host]
    cloud.db.run(set_vteps)
    cloud.settings.dhcp_hosts_per_network = 1
    net = network(api, member)
    subnet(api, member, net["id"], cidr="10.54.0.0/24")
    [first] = [p["binding:host_id"] for p in dhcp_ports(api, admin, net["id"])]
    # The server on the later-named of the two others: the spare DHCP host is the other.
    spare, server_host = sorted(set(vteps) - {first})
    boot(api, cloud, admin, net["id"], server_host)
    watcher = agents(cloud)[server_host]
    assert eventually(lambda: [p.host for p in watcher.dataplane.peers.get(net["id"], ())]
                      == [first])
    cloud.db.run(lambda s: s.execute(update(Service).where(
        Service.host == first, Service.binary == DHCP_BINARY).values(forced_down=True)))
    reporter = agents(cloud)[spare]  # reports its own VTEP, as a real agent does
    reporter.settings = dataclasses.replace(reporter.settings, overlay_local_ip=vteps[spare])
    reporter.report(cloud.admin_context(), full=True)
    wait_for(lambda: spare in {p["binding:host_id"] for p in dhcp_ports(api, admin, net["id"])},
             "the spare host's DHCP port")
    [made] = [p for p in dhcp_ports(api, admin, net["id"]) if p["binding:host_id"] == spare]
    assert eventually(lambda: (spare, vteps[spare], (made["mac_address"],)) in
                      [(p.host, p.vtep, p.macs) for p in
                       watcher.dataplane.peers.get(net["id"], ())]), watcher.dataplane.peers
