"""Subnets through the Neutron API: defaults, every validation (in Neutron's words), IPv6
modes, update, delete, visibility and filters."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from cirrus.db.models import Subnet
from tests.api.network_helpers import NET, create, network, neutron_error, port, subnet


def count_subnets(cloud) -> int:
    with cloud.db.reader() as s:
        return s.scalar(select(func.count()).select_from(Subnet))


def bad_subnet(api, caller, network_id: str, status: int = 400, **body) -> dict:
    body = {"cidr": "10.0.0.0/24", "ip_version": 4, **body}
    r = create(api, caller, "subnets", "subnet", network_id=network_id, **body)
    assert r.status_code == status, (body, r.text)
    return neutron_error(r)


# ---------------------------------------------------------------- create


def test_create_fills_neutron_defaults(api, member):
    net = network(api, member)
    sub = subnet(api, member, net["id"], "10.0.0.0/24", name="s")
    assert set(sub) == {
        "id", "name", "network_id", "ip_version", "cidr", "gateway_ip", "allocation_pools",
        "dns_nameservers", "host_routes", "enable_dhcp", "ipv6_ra_mode", "ipv6_address_mode",
        "subnetpool_id", "segment_id", "service_types", "tags", "tenant_id", "project_id",
        "description", "created_at", "updated_at", "revision_number"}
    assert sub["gateway_ip"] == "10.0.0.1"
    assert sub["allocation_pools"] == [{"start": "10.0.0.2", "end": "10.0.0.254"}]
    assert sub["enable_dhcp"] is True and sub["ip_version"] == 4
    assert sub["dns_nameservers"] == [] and sub["host_routes"] == []
    assert sub["project_id"] == member.project_id


def test_host_bits_are_corrected_as_neutron_does(api, member):
    net = network(api, member)
    sub = subnet(api, member, net["id"], "10.129.122.5/16")
    assert sub["cidr"] == "10.129.0.0/16"
    assert sub["gateway_ip"] == "10.129.0.1"


def test_no_gateway_gives_the_whole_range_to_the_pool(api, member):
    net = network(api, member)
    sub = subnet(api, member, net["id"], "10.0.0.0/29", gateway_ip=None)
    assert sub["gateway_ip"] is None
    assert sub["allocation_pools"] == [{"start": "10.0.0.1", "end": "10.0.0.6"}]


def test_a_gateway_in_the_middle_splits_the_default_pool(api, member):
    net = network(api, member)
    sub = subnet(api, member, net["id"], "10.0.0.0/29", gateway_ip="10.0.0.3")
    assert sub["allocation_pools"] == [{"start": "10.0.0.1", "end": "10.0.0.2"},
                                       {"start": "10.0.0.4", "end": "10.0.0.6"}]


def test_everything_a_guest_is_told_is_kept_in_order(api, member):
    net = network(api, member)
    sub = subnet(api, member, net["id"], "192.168.5.0/24", enable_dhcp=False,
                 dns_nameservers=["9.9.9.9", "1.1.1.1"],
                 host_routes=[{"destination": "10.10.0.0/16", "nexthop": "192.168.5.254"},
                              {"destination": "0.0.0.0/0", "nexthop": "192.168.5.1"}],
                 allocation_pools=[{"start": "192.168.5.100", "end": "192.168.5.110"}])
    assert sub["enable_dhcp"] is False
    assert sub["dns_nameservers"] == ["9.9.9.9", "1.1.1.1"]
    assert sub["host_routes"][0] == {"destination": "10.10.0.0/16", "nexthop": "192.168.5.254"}
    assert sub["allocation_pools"] == [{"start": "192.168.5.100", "end": "192.168.5.110"}]


@pytest.mark.parametrize("cidr", ["10.0.0.0", "banana", "10.0.0.0/33", " 10.0.0.0/24",
                                  "300.0.0.0/8"])
def test_bad_cidrs_are_refused(api, cloud, member, cidr):
    net = network(api, member)
    error = bad_subnet(api, member, net["id"], cidr=cidr)
    assert error["message"] == f"Invalid input for cidr. Reason: '{cidr}' is not a valid IP subnet."
    assert count_subnets(cloud) == 0


@pytest.mark.parametrize(("body", "words"), [
    ({"cidr": "2001:db8::/64"}, "cidr '2001:db8::/64' does not match the ip_version '4'"),
    ({"cidr": "0.0.0.0/0"}, "0 is not allowed as CIDR prefix length"),
    ({"cidr": "10.0.0.0/31"}, "incompatible with DHCP service enabled"),
    ({"gateway_ip": "10.0.1.1"}, "Gateway is not valid on subnet"),
    ({"gateway_ip": "10.0.0.0"}, "Gateway is not valid on subnet"),
    ({"gateway_ip": "10.0.0.255"}, "Gateway is not valid on subnet"),
    ({"gateway_ip": "not-an-ip"}, "'not-an-ip' is not a valid IP address"),
    ({"allocation_pools": [{"start": "10.0.1.2", "end": "10.0.1.9"}]},
     "spans beyond the subnet cidr"),
    ({"allocation_pools": [{"start": "10.0.0.9", "end": "10.0.0.2"}]}, "is not valid"),
    ({"allocation_pools": [{"start": "10.0.0.2", "end": "x"}]}, "is not valid"),
    ({"allocation_pools": [{"start": "10.0.0.2"}]}, "Invalid input for allocation_pools"),
    ({"dns_nameservers": ["8.8.8.x"]}, "Error parsing dns address 8.8.8.x"),
    ({"dns_nameservers": ["2001:db8::1"]}, "does not match the ip_version"),
    ({"dns_nameservers": ["1.1.1.1", "1.1.1.1"]}, "Duplicate nameserver '1.1.1.1'"),
    ({"dns_nameservers": [f"1.1.1.{i}" for i in range(6)]},
     "The number of DNS nameservers exceeds the limit 5"),
    ({"host_routes": [{"destination": "10.1.0.0/16", "nexthop": "x"}]}, "Invalid route"),
    ({"host_routes": [{"destination": "10.1.0.5/16", "nexthop": "10.0.0.1"}]}, "Invalid route"),
    ({"host_routes": [{"destination": "2001:db8::/64", "nexthop": "10.0.0.1"}]},
     "does not match the ip_version"),
    ({"host_routes": [{"destination": "10.1.0.0/16", "nexthop": "10.0.0.1"}] * 2},
     "Duplicate hostroute"),
    ({"ipv6_ra_mode": "slaac"}, "ipv6_ra_mode is not valid when ip_version is 4"),
    ({"ipv6_address_mode": "bogus"}, "Invalid input for ipv6_address_mode"),
    ({"ip_version": 5}, "Invalid input for ip_version"),
    ({"subnetpool_id": "pool"}, "Invalid input for subnetpool_id"),
    ({"prefixlen": 24}, "cidr and prefixlen must not be supplied together"),
])
def test_invalid_subnets_are_400_and_nothing_is_made(api, cloud, member, body, words):
    net = network(api, member)
    error = bad_subnet(api, member, net["id"], **body)
    assert words in error["message"]
    assert count_subnets(cloud) == 0


@pytest.mark.parametrize(("body", "words", "kind"), [
    ({"allocation_pools": [{"start": "10.0.0.2", "end": "10.0.0.20"},
                           {"start": "10.0.0.10", "end": "10.0.0.30"}]},
     "Found overlapping allocation pools: 10.0.0.2-10.0.0.20 10.0.0.10-10.0.0.30 for subnet "
     "10.0.0.0/24.", "HTTPConflict"),
    ({"allocation_pools": [{"start": "10.0.0.1", "end": "10.0.0.20"}]},
     "Gateway ip 10.0.0.1 conflicts with allocation pool 10.0.0.1-10.0.0.20.", "HTTPConflict"),
])
def test_pool_conflicts_are_409(api, cloud, member, body, words, kind):
    net = network(api, member)
    error = bad_subnet(api, member, net["id"], status=409, **body)
    assert error["message"] == words
    assert count_subnets(cloud) == 0


def test_required_attributes(api, member):
    net = network(api, member)
    r = create(api, member, "subnets", "subnet", cidr="10.0.0.0/24", ip_version=4)
    assert r.status_code == 400
    assert neutron_error(r)["message"] == ("Failed to parse request. Required attribute "
                                           "'network_id' not specified")
    r = create(api, member, "subnets", "subnet", network_id=net["id"], ip_version=4)
    assert r.status_code == 400
    assert "a cidr must be specified" in neutron_error(r)["message"]
    r = create(api, member, "subnets", "subnet", network_id="nope", cidr="10.0.0.0/24",
               ip_version=4)
    assert r.status_code == 404
    assert neutron_error(r)["type"] == "NetworkNotFound"


def test_overlapping_subnets_on_one_network_are_refused_not_across_networks(api, member):
    net = network(api, member)
    subnet(api, member, net["id"], "10.0.0.0/24")
    error = bad_subnet(api, member, net["id"], cidr="10.0.0.128/25")
    assert error["message"] == (f"Invalid input for operation: Requested subnet with cidr: "
                                f"10.0.0.128/25 for network: {net['id']} overlaps with another "
                                "subnet.")
    other = network(api, member)
    assert subnet(api, member, other["id"], "10.0.0.0/24")["cidr"] == "10.0.0.0/24"


def test_ipv6_subnets_and_their_modes(api, member):
    net = network(api, member)
    sub = subnet(api, member, net["id"], "2001:db8::/64", ipv6_ra_mode="slaac",
                 ipv6_address_mode="slaac")
    assert sub["gateway_ip"] == "2001:db8::1"
    assert sub["allocation_pools"] == [{"start": "2001:db8::2",
                                        "end": "2001:db8::ffff:ffff:ffff:ffff"}]
    stateful = subnet(api, member, net["id"], "2001:db8:1::/80",
                      ipv6_address_mode="dhcpv6-stateful")
    assert stateful["ipv6_address_mode"] == "dhcpv6-stateful"
    error = bad_subnet(api, member, net["id"], cidr="2001:db8:2::/80", ip_version=6,
                       ipv6_address_mode="slaac")
    assert "requires the prefix to be /64" in error["message"]
    error = bad_subnet(api, member, net["id"], cidr="2001:db8:3::/64", ip_version=6,
                       ipv6_address_mode="slaac", ipv6_ra_mode="dhcpv6-stateful")
    assert "they must be the same value" in error["message"]


# ---------------------------------------------------------------- policy and visibility


def test_only_the_network_owner_adds_subnets(api, admin, member, other_member, reader):
    net = network(api, member)
    shared = network(api, admin, shared=True)
    error = bad_subnet(api, other_member, shared["id"], status=403)
    assert error["message"] == "rule:create_subnet is disallowed by policy"
    bad_subnet(api, other_member, net["id"], status=404)
    bad_subnet(api, reader, net["id"], status=403)


def test_subnets_of_shared_networks_are_visible_to_all(api, admin, member, other_member):
    shared = network(api, admin, shared=True)
    public = subnet(api, admin, shared["id"], "172.16.0.0/24")
    private = subnet(api, member, network(api, member)["id"], "10.0.0.0/24")
    seen = {s["id"] for s in api.get(f"{NET}/subnets", headers=other_member.headers)
            .json()["subnets"]}
    assert seen == {public["id"]}
    assert api.get(f"{NET}/subnets/{private['id']}", headers=other_member.headers).status_code == 404
    r = api.put(f"{NET}/subnets/{public['id']}", json={"subnet": {"name": "x"}},
                headers=other_member.headers)
    assert r.status_code == 403


def test_filters(api, member):
    net = network(api, member)
    v4 = subnet(api, member, net["id"], "10.0.0.0/24")
    v6 = subnet(api, member, net["id"], "2001:db8::/64", enable_dhcp=False)

    def ids(query: str) -> set[str]:
        r = api.get(f"{NET}/subnets?{query}", headers=member.headers)
        assert r.status_code == 200, r.text
        return {s["id"] for s in r.json()["subnets"]}

    assert ids("ip_version=6") == {v6["id"]}
    assert ids("enable_dhcp=false") == {v6["id"]}
    assert ids(f"network_id={net['id']}") == {v4["id"], v6["id"]}
    assert ids("cidr=10.0.0.0/24") == {v4["id"]}
    assert ids("gateway_ip=10.0.0.1") == {v4["id"]}


# ---------------------------------------------------------------- update and delete


def test_update_what_neutron_lets_change(api, member):
    net = network(api, member)
    sub = subnet(api, member, net["id"], "10.0.0.0/24")
    r = api.put(f"{NET}/subnets/{sub['id']}", json={"subnet": {
        "name": "renamed", "dns_nameservers": ["1.0.0.1"], "enable_dhcp": False,
        "host_routes": [{"destination": "10.9.0.0/16", "nexthop": "10.0.0.9"}],
        "allocation_pools": [{"start": "10.0.0.50", "end": "10.0.0.60"}]}},
        headers=member.headers)
    assert r.status_code == 200, r.text
    updated = r.json()["subnet"]
    assert updated["name"] == "renamed" and updated["dns_nameservers"] == ["1.0.0.1"]
    assert updated["allocation_pools"] == [{"start": "10.0.0.50", "end": "10.0.0.60"}]
    assert updated["revision_number"] == sub["revision_number"] + 1
    r = api.put(f"{NET}/subnets/{sub['id']}", json={"subnet": {"gateway_ip": "10.0.0.55"}},
                headers=member.headers)
    assert r.status_code == 409
    assert "conflicts with allocation pool" in neutron_error(r)["message"]
    r = api.put(f"{NET}/subnets/{sub['id']}", json={"subnet": {"gateway_ip": None}},
                headers=member.headers)
    assert r.json()["subnet"]["gateway_ip"] is None
    r = api.put(f"{NET}/subnets/{sub['id']}", json={"subnet": {"cidr": "10.1.0.0/24"}},
                headers=member.headers)
    assert r.status_code == 400
    assert neutron_error(r)["message"] == "Cannot update read-only attribute cidr"


def test_delete_refused_while_a_port_has_an_address_there(api, member):
    net = network(api, member)
    sub = subnet(api, member, net["id"], "10.0.0.0/24")
    p = port(api, member, net["id"])
    r = api.delete(f"{NET}/subnets/{sub['id']}", headers=member.headers)
    assert r.status_code == 409
    assert neutron_error(r) == {"type": "SubnetInUse", "detail": "", "message": (
        f"Unable to complete operation on subnet {sub['id']}: One or more ports have an IP "
        "allocation from this subnet.")}
    api.delete(f"{NET}/ports/{p['id']}", headers=member.headers)
    assert api.delete(f"{NET}/subnets/{sub['id']}", headers=member.headers).status_code == 204
    shown = api.get(f"{NET}/networks/{net['id']}", headers=member.headers).json()["network"]
    assert shown["subnets"] == []
