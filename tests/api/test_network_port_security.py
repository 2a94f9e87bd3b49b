"""Port security through the Neutron API (issue 14, sg): `allowed_address_pairs` (checks,
storage, view, policy), `port_security_enabled` with groups and pairs, and the delivery of
security groups to the agents of the hosts that enforce them (the fake agents' noop
dataplane records the filter state it is sent)."""

from __future__ import annotations

import time

import pytest

from cirrus.agent.service import Agent
from tests.api.network_helpers import NET, create, network, neutron_error, port, subnet


@pytest.fixture
def net(api, member) -> dict:
    return network(api, member)


@pytest.fixture
def sub(api, member, net) -> dict:
    return subnet(api, member, net["id"], "10.0.0.0/24")


def update(api, caller, port_id: str, **body):
    return api.put(f"{NET}/ports/{port_id}", json={"port": body}, headers=caller.headers)


# ---------------------------------------------------------------- allowed address pairs


def test_address_pairs_are_checked_stored_and_shown(api, member, net, sub):
    p = port(api, member, net["id"], allowed_address_pairs=[
        {"ip_address": "10.0.0.200"}, {"ip_address": "10.1.0.0/16", "mac_address": "FA:16:3E:AA:BB:CC"}])
    assert p["allowed_address_pairs"] == [
        {"ip_address": "10.0.0.200", "mac_address": p["mac_address"]},
        {"ip_address": "10.1.0.0/16", "mac_address": "fa:16:3e:aa:bb:cc"}]
    shown = api.get(f"{NET}/ports/{p['id']}", headers=member.headers).json()["port"]
    assert shown["allowed_address_pairs"] == p["allowed_address_pairs"]
    r = update(api, member, p["id"], allowed_address_pairs=[{"ip_address": "2001:db8::/64"}])
    assert r.status_code == 200, r.text
    assert r.json()["port"]["allowed_address_pairs"] == [
        {"ip_address": "2001:db8::/64", "mac_address": p["mac_address"]}]
    assert update(api, member, p["id"], allowed_address_pairs=[]).json()["port"][
        "allowed_address_pairs"] == []


@pytest.mark.parametrize(("pairs", "status", "kind"), [
    ([{"ip_address": "10.0.0.300"}], 400, "HTTPBadRequest"),
    ([{"mac_address": "fa:16:3e:00:00:01"}], 400, "AllowedAddressPairsMissingIP"),
    ([{"ip_address": "10.0.0.9"}, {"ip_address": "10.0.0.9"}], 400,
     "DuplicateAddressPairInRequest"),
    ([{"ip_address": f"10.0.0.{i}"} for i in range(20, 31)], 400, "AllowedAddressPairExhausted"),
    ([{"ip_address": "10.0.0.9", "mac_address": "not-a-mac"}], 400, "HTTPBadRequest"),
    ([{"ip_address": "10.0.0.9", "extra": 1}], 400, None),
])
def test_bad_address_pairs_are_refused_and_nothing_is_made(api, member, net, sub, pairs,
                                                          status, kind):
    r = create(api, member, "ports", "port", network_id=net["id"], allowed_address_pairs=pairs)
    assert r.status_code == status, r.text
    if kind:
        assert neutron_error(r)["type"] == kind
    assert api.get(f"{NET}/ports", headers=member.headers).json()["ports"] == []


def test_address_pairs_need_port_security(api, member, net, sub):
    r = create(api, member, "ports", "port", network_id=net["id"], port_security_enabled=False,
               allowed_address_pairs=[{"ip_address": "10.0.0.9"}])
    assert r.status_code == 409, r.text
    assert neutron_error(r)["type"] == "AddressPairAndPortSecurityRequired"
    p = port(api, member, net["id"], security_groups=[],
             allowed_address_pairs=[{"ip_address": "10.0.0.9"}])
    r = update(api, member, p["id"], port_security_enabled=False)
    assert r.status_code == 409 and neutron_error(r)["type"] == "AddressPairAndPortSecurityRequired"
    r = update(api, member, p["id"], port_security_enabled=False, allowed_address_pairs=[])
    assert r.status_code == 200, r.text
    assert r.json()["port"]["port_security_enabled"] is False


def test_port_security_off_refuses_security_groups(api, member, net, sub):
    groups = api.get(f"{NET}/security-groups", headers=member.headers).json()["security_groups"]
    r = create(api, member, "ports", "port", network_id=net["id"], port_security_enabled=False,
               security_groups=[groups[0]["id"]])
    assert r.status_code == 400, r.text
    p = port(api, member, net["id"])
    r = update(api, member, p["id"], port_security_enabled=False)
    assert r.status_code == 409
    assert neutron_error(r)["type"] == "PortSecurityPortHasSecurityGroup"
    off = port(api, member, net["id"], port_security_enabled=False)
    assert off["security_groups"] == [] and off["port_security_enabled"] is False


def test_the_extension_is_listed(api, member):
    r = api.get(f"{NET}/extensions/allowed-address-pairs", headers=member.headers)
    assert r.status_code == 200 and r.json()["extension"]["name"] == "Allowed Address Pairs"


# ---------------------------------------------------------------- policy


def test_who_may_set_pairs_and_port_security(api, admin, member, reader, other_member):
    shared = network(api, admin, shared=True)
    subnet(api, admin, shared["id"], "172.16.0.0/24")
    pairs = [{"ip_address": "172.16.0.50"}]
    # admin: anywhere
    p = port(api, admin, shared["id"], allowed_address_pairs=pairs, project_id=member.project_id)
    assert p["allowed_address_pairs"][0]["ip_address"] == "172.16.0.50"
    # a member on another project's shared network: neither attribute (Neutron's policy)
    r = create(api, member, "ports", "port", network_id=shared["id"], allowed_address_pairs=pairs)
    assert r.status_code == 403 and neutron_error(r)["type"] == "PolicyNotAuthorized"
    assert "create_port:allowed_address_pairs" in neutron_error(r)["message"]
    r = create(api, member, "ports", "port", network_id=shared["id"], port_security_enabled=True)
    assert r.status_code == 403, r.text
    mine = port(api, member, shared["id"])
    r = update(api, member, mine["id"], allowed_address_pairs=pairs)
    assert r.status_code == 403, r.text
    # on its own network a member may
    own = network(api, member)
    subnet(api, member, own["id"], "10.5.0.0/24")
    p = port(api, member, own["id"], allowed_address_pairs=[{"ip_address": "10.5.0.99"}])
    assert update(api, member, p["id"], port_security_enabled=True).status_code == 200
    # a reader of the same project may not; another project does not see the port
    assert update(api, reader, p["id"], allowed_address_pairs=[]).status_code == 403
    assert update(api, other_member, p["id"], allowed_address_pairs=[]).status_code == 404
    r = create(api, reader, "ports", "port", network_id=own["id"],
               allowed_address_pairs=[{"ip_address": "10.5.0.98"}])
    assert r.status_code == 403


# ---------------------------------------------------------------- delivery to the hosts


def _agent(cloud) -> Agent:
    return next(r for r in cloud.roles if isinstance(r, Agent))


def _eventually(check, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def test_rule_and_membership_changes_reach_the_hosts_that_need_them(api, cloud, admin, member,
                                                                    net, sub):
    agent = _agent(cloud)
    state = agent.dataplane.firewall.state
    web = create(api, member, "security-groups", "security_group", name="web").json()[
        "security_group"]
    clients = create(api, member, "security-groups", "security_group", name="clients").json()[
        "security_group"]
    server = port(api, member, net["id"], security_groups=[web["id"]])
    r = update(api, admin, server["id"], **{"binding:host_id": agent.host})
    assert r.status_code == 200, r.text
    assert _eventually(lambda: server["id"] in state.ports)
    assert state.ports[server["id"]].security_groups == (web["id"],)
    # a rule of the port's group, naming another group as remote
    r = create(api, member, "security-group-rules", "security_group_rule",
               security_group_id=web["id"], direction="ingress", protocol="tcp",
               port_range_min=22, port_range_max=22, remote_group_id=clients["id"])
    assert r.status_code == 201, r.text
    assert _eventually(lambda: any(rule.port_range_min == 22 and rule.remote_group_id ==
                                   clients["id"] for rule in state.rules.get(web["id"], ())))
    assert state.members.get(clients["id"]) == ()
    # a port joins the remote group (it is bound nowhere): the host hears of its address
    client = port(api, member, net["id"], security_groups=[clients["id"]])
    address = client["fixed_ips"][0]["ip_address"]
    assert _eventually(lambda: state.members.get(clients["id"]) == (address,))
    # and leaves it
    assert update(api, member, client["id"], security_groups=[]).status_code == 200
    assert _eventually(lambda: state.members.get(clients["id"]) == ())
    # the rule deleted
    api.delete(f"{NET}/security-group-rules/{r.json()['security_group_rule']['id']}",
               headers=member.headers)
    assert _eventually(lambda: all(rule.port_range_min != 22
                                   for rule in state.rules.get(web["id"], ())))


def test_a_hosts_state_says_which_of_its_groups_are_stateless(api, cloud, admin, member,
                                                                net, sub):
    agent = _agent(cloud)
    state = agent.dataplane.firewall.state
    raw = create(api, member, "security-groups", "security_group", name="raw",
                 stateful=False).json()["security_group"]
    web = create(api, member, "security-groups", "security_group", name="web").json()[
        "security_group"]
    ports = [port(api, member, net["id"], security_groups=[g["id"]]) for g in (raw, web)]
    for p in ports:
        assert update(api, admin, p["id"], **{"binding:host_id": agent.host}).status_code == 200
    assert _eventually(lambda: {p["id"] for p in ports} <= set(state.ports))
    assert state.stateless == frozenset({raw["id"]})
    assert state.is_stateless(state.ports[ports[0]["id"]].security_groups)
    assert not state.is_stateless(state.ports[ports[1]["id"]].security_groups)


def test_a_servers_host_gets_its_ports_filter_state_when_it_is_built(api, cloud, member, net,
                                                                     sub):
    from tests.api.servers_helpers import add_flavor, add_image, server_body, wait_for_status

    flavor, image = add_flavor(cloud, name="f-sg"), add_image(cloud)
    body = server_body(flavor, image, name="vm")
    body["server"]["networks"] = [{"uuid": net["id"]}]
    r = api.post("/compute/v2.1/servers", json=body, headers=member.compute())
    assert r.status_code == 202, r.text
    server = wait_for_status(api, member.compute(), r.json()["server"]["id"], "ACTIVE")
    (p,) = api.get(f"{NET}/ports", params={"device_id": server["id"]},
                   headers=member.headers).json()["ports"]
    agent = next(a for a in cloud.roles if isinstance(a, Agent)
                 and p["id"] in a.dataplane.firewall.state.ports)
    state = agent.dataplane.firewall.state
    (group,) = p["security_groups"]  # the project's default group: its rules came along
    assert {(r.direction, r.ethertype, r.remote_group_id) for r in state.rules[group]} == {
        ("ingress", "IPv4", group), ("ingress", "IPv6", group), ("egress", "IPv4", None),
        ("egress", "IPv6", None)}
    assert _eventually(lambda: p["fixed_ips"][0]["ip_address"] in state.members.get(group, ()))
    # the server deleted: its host forgets the port, and the group its address
    api.delete(f"/compute/v2.1/servers/{server['id']}", headers=member.compute())
    assert _eventually(lambda: p["id"] not in state.ports)
    assert _eventually(lambda: not state.members.get(group))


def test_an_agent_that_starts_again_is_sent_its_state(api, cloud, admin, member, net, sub):
    from cirrus.compute.conductor import Conductor
    from cirrus.context import RequestContext

    agent = _agent(cloud)
    p = port(api, member, net["id"])
    assert update(api, admin, p["id"], **{"binding:host_id": agent.host}).status_code == 200
    state = agent.dataplane.firewall.state
    assert _eventually(lambda: p["id"] in state.ports)
    (group,) = p["security_groups"]
    state.rules.clear()  # what a restart with a lost or stale file would leave
    conductor = next(r for r in cloud.roles if isinstance(r, Conductor))
    conductor.agent_report(RequestContext.admin(), {"host": agent.host, "startup": True})
    assert _eventually(lambda: group in state.rules)


def test_the_clouds_own_ports_are_not_filtered(api, cloud, admin, member, net, sub):
    """A DHCP or router port (`network:*` owner) is trusted, as in Neutron: its host does
    not filter it, so the DHCP server's answers are not refused as a VM's would be."""
    agent = _agent(cloud)
    dhcp = port(api, member, net["id"], device_owner="network:dhcp")
    vm = port(api, member, net["id"])
    for p in (dhcp, vm):
        r = update(api, admin, p["id"], **{"binding:host_id": agent.host})
        assert r.status_code == 200, r.text
    state = agent.dataplane.firewall.state
    assert _eventually(lambda: {dhcp["id"], vm["id"]} <= set(state.ports))
    assert state.ports[dhcp["id"]].port_security_enabled is False
    assert state.ports[vm["id"]].port_security_enabled is True
