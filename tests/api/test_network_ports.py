"""Ports through the Neutron API: fixed IPs chosen or allocated, MACs, bindings, security
groups, update of addresses, delete freeing them, policy and list filters."""

from __future__ import annotations

import ipaddress
import re

import pytest
from sqlalchemy import func, select

from cirrus.db.models import IPAllocation, Port
from cirrus.network.ipam import eui64_address
from tests.api.network_helpers import NET, create, network, neutron_error, port, subnet

MAC = re.compile(r"^fa:16:3e(:[0-9a-f]{2}){3}$")


def counts(cloud) -> tuple[int, int]:
    with cloud.db.reader() as s:
        return (s.scalar(select(func.count()).select_from(Port)),
                s.scalar(select(func.count()).select_from(IPAllocation)))


def bad_port(api, caller, network_id: str, status: int, **body) -> dict:
    r = create(api, caller, "ports", "port", network_id=network_id, **body)
    assert r.status_code == status, (body, r.text)
    return neutron_error(r)


@pytest.fixture
def net(api, member) -> dict:
    return network(api, member)


@pytest.fixture
def sub(api, member, net) -> dict:
    return subnet(api, member, net["id"], "10.0.0.0/24")


# ---------------------------------------------------------------- create


def test_create_allocates_an_address_a_mac_and_the_default_group(api, member, net, sub):
    p = port(api, member, net["id"], name="p")
    assert set(p) == {
        "id", "name", "network_id", "mac_address", "admin_state_up", "status", "device_id",
        "device_owner", "fixed_ips", "security_groups", "port_security_enabled",
        "allowed_address_pairs", "extra_dhcp_opts", "dns_name", "binding:vnic_type", "tags",
        "tenant_id", "project_id", "description", "created_at", "updated_at",
        "revision_number"}
    assert MAC.match(p["mac_address"])
    (fixed,) = p["fixed_ips"]
    assert fixed["subnet_id"] == sub["id"]
    assert ipaddress.ip_address(fixed["ip_address"]) in ipaddress.ip_network("10.0.0.0/24")
    assert fixed["ip_address"] not in ("10.0.0.0", "10.0.0.1", "10.0.0.255")
    assert p["status"] == "DOWN" and p["binding:vnic_type"] == "normal"
    groups = api.get(f"{NET}/security-groups?name=default", headers=member.headers).json()
    assert p["security_groups"] == [groups["security_groups"][0]["id"]]


def test_binding_is_admin_only_to_see_and_to_set(api, admin, member, net, sub):
    p = port(api, member, net["id"])
    shown = api.get(f"{NET}/ports/{p['id']}", headers=admin.headers).json()["port"]
    assert (shown["binding:host_id"], shown["binding:vif_type"]) == ("", "unbound")
    assert shown["binding:vif_details"] == {} and shown["binding:profile"] == {}
    error = bad_port(api, member, net["id"], 403, **{"binding:host_id": "node-1"})
    assert error["message"] == "rule:create_port:binding:host_id is disallowed by policy"
    r = api.put(f"{NET}/ports/{p['id']}", json={"port": {"binding:host_id": "node-1"}},
                headers=admin.headers)
    bound = r.json()["port"]
    assert (bound["binding:host_id"], bound["binding:vif_type"], bound["status"]) == \
        ("node-1", "bridge", "ACTIVE")
    assert bound["binding:vif_details"]["bridge_name"].startswith("brq")
    r = api.get(f"{NET}/ports?binding:host_id=node-1", headers=admin.headers)
    assert [x["id"] for x in r.json()["ports"]] == [p["id"]]
    assert api.get(f"{NET}/ports?binding:host_id=node-1", headers=member.headers).status_code == 400


@pytest.mark.parametrize("how", ["both", "address", "subnet"])
def test_fixed_ips_asked_by_subnet_address_or_both(api, member, net, sub, how):
    fixed = {"both": {"subnet_id": sub["id"], "ip_address": "10.0.0.77"},
             "address": {"ip_address": "10.0.0.77"}, "subnet": {"subnet_id": sub["id"]}}[how]
    p = port(api, member, net["id"], fixed_ips=[fixed])
    assert p["fixed_ips"][0]["subnet_id"] == sub["id"]
    if how != "subnet":
        assert p["fixed_ips"][0]["ip_address"] == "10.0.0.77"


def test_an_address_outside_the_pool_but_inside_the_cidr_may_be_asked_for(api, member, net):
    sub = subnet(api, member, net["id"], "10.0.0.0/24",
                 allocation_pools=[{"start": "10.0.0.10", "end": "10.0.0.20"}])
    p = port(api, member, net["id"], fixed_ips=[{"subnet_id": sub["id"], "ip_address": "10.0.0.200"}])
    assert p["fixed_ips"][0]["ip_address"] == "10.0.0.200"


def test_a_taken_address_is_409_in_neutrons_words(api, cloud, member, net, sub):
    port(api, member, net["id"], fixed_ips=[{"ip_address": "10.0.0.9"}])
    before = counts(cloud)
    error = bad_port(api, member, net["id"], 409, fixed_ips=[{"ip_address": "10.0.0.9"}])
    assert error == {"type": "IpAddressAlreadyAllocated", "detail": "",
                     "message": f"IP address 10.0.0.9 already allocated in subnet {sub['id']}"}
    error = bad_port(api, member, net["id"], 409, fixed_ips=[{"ip_address": "10.0.0.8"},
                                                               {"ip_address": "10.0.0.8"}])
    assert error["type"] == "IpAddressAlreadyAllocated"
    assert counts(cloud) == before


@pytest.mark.parametrize(("fixed", "status", "words"), [
    ([{"ip_address": "10.9.9.9"}], 400,
     "IP address 10.9.9.9 is not a valid IP for any of the subnets on the specified network"),
    ([{"ip_address": "10.0.0.255"}], 400, "is not a valid IP for any of the subnets"),
    ([{"ip_address": "nonsense"}], 400, "'nonsense' is not a valid IP address"),
    ([{}], 400, "IP allocation requires subnet_id or ip_address"),
    ([{"subnet_id": "missing"}], 404, "Subnet missing could not be found."),
    ([{"subnet_id": "x", "mac": "y"}], 400, "Invalid input for fixed_ips"),
])
def test_bad_fixed_ips(api, cloud, member, net, sub, fixed, status, words):
    before = counts(cloud)
    error = bad_port(api, member, net["id"], status, fixed_ips=fixed)
    assert words in error["message"]
    assert counts(cloud) == before


def test_a_subnet_of_another_network_is_refused(api, member, net, sub):
    other = network(api, member)
    foreign = subnet(api, member, other["id"], "10.5.0.0/24")
    error = bad_port(api, member, net["id"], 400,
                     fixed_ips=[{"subnet_id": foreign["id"], "ip_address": "10.5.0.5"}])
    assert error["message"] == (f"Invalid input for operation: Failed to create port on network "
                                f"{net['id']}, because fixed_ips included invalid subnet "
                                f"{foreign['id']}.")


def test_no_subnets_means_no_addresses_unless_some_are_asked_for(api, member, net):
    assert port(api, member, net["id"])["fixed_ips"] == []
    error = bad_port(api, member, net["id"], 400, fixed_ips=[{"ip_address": "10.0.0.5"}])
    assert "IP allocation requires subnets for network" in error["message"]


def test_empty_fixed_ips_means_none(api, member, net, sub):
    assert port(api, member, net["id"], fixed_ips=[])["fixed_ips"] == []


def test_exhaustion_names_the_subnet_its_range_and_use_and_leaves_nothing(api, cloud, member, net):
    sub = subnet(api, member, net["id"], "10.0.0.0/29")  # .2-.6: five addresses
    for _ in range(5):
        port(api, member, net["id"])
    before = counts(cloud)
    error = bad_port(api, member, net["id"], 409)
    assert error == {"type": "IpAddressGenerationFailure", "detail": "", "message":
                     f"No more IP addresses available on subnet {sub['id']} (10.0.0.0/29, 5 in use)"}
    error = bad_port(api, member, net["id"], 409, fixed_ips=[{"subnet_id": sub["id"]}])
    assert error["type"] == "IpAddressGenerationFailure"
    assert counts(cloud) == before


def test_default_allocation_moves_to_the_next_ipv4_subnet_and_names_all_when_full(api, member, net):
    first = subnet(api, member, net["id"], "10.0.0.0/30")  # one address: .2
    second = subnet(api, member, net["id"], "10.0.1.0/30")
    a, b = port(api, member, net["id"]), port(api, member, net["id"])
    assert [a["fixed_ips"][0]["subnet_id"], b["fixed_ips"][0]["subnet_id"]] == \
        [first["id"], second["id"]]
    error = bad_port(api, member, net["id"], 409)
    assert error["message"] == (
        f"No more IP addresses available on subnet {first['id']} (10.0.0.0/30, 1 in use); "
        f"No more IP addresses available on subnet {second['id']} (10.0.1.0/30, 1 in use)")


def test_slaac_subnets_give_the_eui64_address_beside_an_ipv4_one(api, member, net, sub):
    v6 = subnet(api, member, net["id"], "2001:db8::/64", ipv6_address_mode="slaac",
                ipv6_ra_mode="slaac")
    p = port(api, member, net["id"])
    by_subnet = {f["subnet_id"]: f["ip_address"] for f in p["fixed_ips"]}
    assert set(by_subnet) == {sub["id"], v6["id"]}
    assert by_subnet[v6["id"]] == eui64_address("2001:db8::/64", p["mac_address"])
    error = bad_port(api, member, net["id"], 400,
                     fixed_ips=[{"subnet_id": v6["id"], "ip_address": "2001:db8::99"}])
    assert "configured for automatic addresses" in error["message"]


def test_stateful_ipv6_allocates_from_the_pool(api, member, net):
    v6 = subnet(api, member, net["id"], "2001:db8:1::/120", ipv6_address_mode="dhcpv6-stateful")
    p = port(api, member, net["id"])
    (fixed,) = p["fixed_ips"]
    assert fixed["subnet_id"] == v6["id"]
    assert ipaddress.ip_address(fixed["ip_address"]) in ipaddress.ip_network("2001:db8:1::/120")
    assert fixed["ip_address"] != "2001:db8:1::1"


def test_mac_addresses(api, member, net, sub):
    p = port(api, member, net["id"], mac_address="FA:16:3E:00:00:01")
    assert p["mac_address"] == "fa:16:3e:00:00:01"
    error = bad_port(api, member, net["id"], 409, mac_address="fa:16:3e:00:00:01")
    assert error == {"type": "MacAddressInUse", "detail": "", "message": (
        f"Unable to complete operation for network {net['id']}. The mac address "
        "fa:16:3e:00:00:01 is in use.")}
    other = network(api, member)
    assert port(api, member, other["id"], mac_address="fa:16:3e:00:00:01")["fixed_ips"] == []
    for bad in ("fa:16:3e:00:00", "01:00:5e:00:00:01", "00:00:00:00:00:00", "zz:16:3e:00:00:01"):
        error = bad_port(api, member, net["id"], 400, mac_address=bad)
        assert error["message"] == f"Invalid input for mac_address. Reason: '{bad}' is not a valid MAC address."


@pytest.mark.parametrize(("body", "words"), [
    ({"extra_dhcp_opts": [{"opt_name": "x", "opt_value": "y"}]}, "extra_dhcp_opts"),
    ({"dns_name": "vm1"}, "dns_name"),
    ({"binding:vnic_type": "direct"}, "binding:vnic_type"),
    ({"binding:profile": {"a": 1}}, "binding:profile"),
    ({"qos_policy_id": "x"}, "Unrecognized attribute(s) 'qos_policy_id'"),
])
def test_unsupported_port_features_are_refused_not_ignored(api, cloud, member, net, sub, body, words):
    error = bad_port(api, member, net["id"], 400, **body)
    assert words in error["message"]
    assert counts(cloud) == (0, 0)


def test_empty_values_of_unsupported_features_are_accepted(api, member, net, sub):
    p = port(api, member, net["id"], allowed_address_pairs=[], extra_dhcp_opts=[], dns_name="",
             **{"binding:vnic_type": "normal", "binding:profile": {}})
    assert p["allowed_address_pairs"] == [] and p["dns_name"] == ""


# ---------------------------------------------------------------- shared networks and policy


def test_ports_on_a_shared_network(api, admin, member, other_member):
    shared = network(api, admin, shared=True)
    sub = subnet(api, admin, shared["id"], "172.16.0.0/24")
    mine = port(api, other_member, shared["id"], fixed_ips=[{"subnet_id": sub["id"]}])
    assert mine["project_id"] == other_member.project_id
    error = bad_port(api, other_member, shared["id"], 403, fixed_ips=[{"ip_address": "172.16.0.9"}])
    assert error["message"] == "rule:create_port:fixed_ips:ip_address is disallowed by policy"
    bad_port(api, other_member, shared["id"], 403, device_owner="network:dhcp")
    bad_port(api, other_member, shared["id"], 403, mac_address="fa:16:3e:01:02:03")
    seen = {p["id"] for p in api.get(f"{NET}/ports", headers=admin.headers).json()["ports"]}
    assert mine["id"] in seen  # the network's owner sees ports on its network
    assert api.get(f"{NET}/ports", headers=member.headers).json()["ports"] == []


def test_a_private_network_of_another_project_is_not_found(api, member, other_member, net, sub):
    error = bad_port(api, other_member, net["id"], 404)
    assert error["type"] == "NetworkNotFound"


def test_reader_cannot_create_ports(api, member, reader, net, sub):
    bad_port(api, reader, net["id"], 403)


def test_other_projects_ports_are_invisible(api, member, other_member, net, sub):
    p = port(api, member, net["id"])
    assert api.get(f"{NET}/ports/{p['id']}", headers=other_member.headers).status_code == 404
    assert api.delete(f"{NET}/ports/{p['id']}", headers=other_member.headers).status_code == 404
    r = api.put(f"{NET}/ports/{p['id']}", json={"port": {"name": "x"}}, headers=other_member.headers)
    assert r.status_code == 404


# ---------------------------------------------------------------- security groups on ports


def test_security_groups_by_name_or_id_and_port_security(api, member, net, sub):
    r = create(api, member, "security-groups", "security_group", name="web")
    web = r.json()["security_group"]
    p = port(api, member, net["id"], security_groups=["web"])
    assert p["security_groups"] == [web["id"]]
    assert bad_port(api, member, net["id"], 404, security_groups=["nope"])["type"] == \
        "SecurityGroupNotFound"
    insecure = port(api, member, net["id"], port_security_enabled=False)
    assert insecure["security_groups"] == [] and insecure["port_security_enabled"] is False
    error = bad_port(api, member, net["id"], 400, port_security_enabled=False,
                     security_groups=[web["id"]])
    assert "Port security must be enabled" in error["message"]
    r = api.put(f"{NET}/ports/{p['id']}", json={"port": {"port_security_enabled": False}},
                headers=member.headers)
    assert r.status_code == 409
    r = api.put(f"{NET}/ports/{p['id']}", json={"port": {"port_security_enabled": False,
                                                         "security_groups": []}},
                headers=member.headers)
    assert r.status_code == 200 and r.json()["port"]["security_groups"] == []


def test_ports_of_networks_without_port_security_get_no_group(api, member):
    plain = network(api, member, port_security_enabled=False)
    subnet(api, member, plain["id"], "10.3.0.0/24")
    p = port(api, member, plain["id"])
    assert (p["port_security_enabled"], p["security_groups"]) == (False, [])


# ---------------------------------------------------------------- update and delete


def test_update_simple_attributes(api, member, net, sub):
    p = port(api, member, net["id"])
    r = api.put(f"{NET}/ports/{p['id']}", json={"port": {
        "name": "n", "device_id": "vm-1", "device_owner": "compute:nova",
        "admin_state_up": False}}, headers=member.headers)
    updated = r.json()["port"]
    assert (updated["name"], updated["device_id"], updated["device_owner"]) == \
        ("n", "vm-1", "compute:nova")
    assert updated["revision_number"] == p["revision_number"] + 1
    r = api.put(f"{NET}/ports/{p['id']}", json={"port": {"network_id": "x"}},
                headers=member.headers)
    assert neutron_error(r)["message"] == "Cannot update read-only attribute network_id"


def test_updating_fixed_ips_keeps_asked_frees_the_rest(api, member, net, sub):
    p = port(api, member, net["id"], fixed_ips=[{"ip_address": "10.0.0.10"},
                                                {"ip_address": "10.0.0.11"}])
    r = api.put(f"{NET}/ports/{p['id']}", json={"port": {"fixed_ips": [
        {"ip_address": "10.0.0.11"}, {"ip_address": "10.0.0.12"}]}}, headers=member.headers)
    assert r.status_code == 200, r.text
    assert sorted(f["ip_address"] for f in r.json()["port"]["fixed_ips"]) == ["10.0.0.11", "10.0.0.12"]
    other = port(api, member, net["id"], fixed_ips=[{"ip_address": "10.0.0.10"}])
    assert other["fixed_ips"][0]["ip_address"] == "10.0.0.10"
    r = api.put(f"{NET}/ports/{p['id']}", json={"port": {"fixed_ips": [{"subnet_id": sub["id"]}]}},
                headers=member.headers)
    assert len(r.json()["port"]["fixed_ips"]) == 1
    r = api.put(f"{NET}/ports/{p['id']}", json={"port": {"fixed_ips": [{"ip_address": "10.0.0.10"}]}},
                headers=member.headers)
    assert r.status_code == 409
    assert neutron_error(r)["type"] == "IpAddressAlreadyAllocated"


def test_mac_changes_are_admin_only_and_never_on_a_bound_port(api, admin, member, net, sub):
    p = port(api, member, net["id"])
    r = api.put(f"{NET}/ports/{p['id']}", json={"port": {"mac_address": "fa:16:3e:aa:aa:aa"}},
                headers=member.headers)
    assert r.status_code == 403
    r = api.put(f"{NET}/ports/{p['id']}", json={"port": {"mac_address": "fa:16:3e:aa:aa:aa"}},
                headers=admin.headers)
    assert r.json()["port"]["mac_address"] == "fa:16:3e:aa:aa:aa"
    api.put(f"{NET}/ports/{p['id']}", json={"port": {"binding:host_id": "node-1"}},
            headers=admin.headers)
    r = api.put(f"{NET}/ports/{p['id']}", json={"port": {"mac_address": "fa:16:3e:bb:bb:bb"}},
                headers=admin.headers)
    assert r.status_code == 409
    assert neutron_error(r)["type"] == "PortBound"


def test_delete_frees_the_addresses(api, cloud, member, net, sub):
    p = port(api, member, net["id"], fixed_ips=[{"ip_address": "10.0.0.50"}])
    assert api.delete(f"{NET}/ports/{p['id']}", headers=member.headers).status_code == 204
    assert api.get(f"{NET}/ports/{p['id']}", headers=member.headers).status_code == 404
    assert counts(cloud) == (0, 0)
    again = port(api, member, net["id"], fixed_ips=[{"ip_address": "10.0.0.50"}])
    assert again["fixed_ips"][0]["ip_address"] == "10.0.0.50"


# ---------------------------------------------------------------- list filters


def test_list_filters_as_the_clients_send_them(api, member, net, sub):
    a = port(api, member, net["id"], device_id="server-a", device_owner="compute:nova",
             fixed_ips=[{"ip_address": "10.0.0.21"}])
    b = port(api, member, net["id"], device_id="server-b", fixed_ips=[{"ip_address": "10.0.0.22"}])

    def ids(query: str) -> list[str]:
        r = api.get(f"{NET}/ports?{query}", headers=member.headers)
        assert r.status_code == 200, r.text
        return sorted(p["id"] for p in r.json()["ports"])

    assert ids("device_id=server-a") == [a["id"]]
    assert ids("device_owner=compute:nova") == [a["id"]]
    assert ids(f"network_id={net['id']}") == sorted([a["id"], b["id"]])
    assert ids("fixed_ips=ip_address%3D10.0.0.22") == [b["id"]]
    assert ids(f"fixed_ips=subnet_id%3D{sub['id']}") == sorted([a["id"], b["id"]])
    assert ids(f"mac_address={a['mac_address']}") == [a["id"]]
    assert ids(f"security_groups={a['security_groups'][0]}") == sorted([a["id"], b["id"]])
    assert ids("status=DOWN&name=") == sorted([a["id"], b["id"]])
    r = api.get(f"{NET}/ports?fixed_ips=10.0.0.22", headers=member.headers)
    assert r.status_code == 400
