"""IPv6 through the Neutron API, as Tempest's IPv6 network tests use it: the three address
modes, SLAAC / DHCPv6-stateless addresses from the MAC (EUI-64), stateful pools, gateway
defaults, ip_version checks, dual-stack ports, compressed text everywhere, and deleting an
auto-address subnet under its ports."""

from __future__ import annotations

import ipaddress

import pytest
from sqlalchemy import func, select

from cirrus.db.models import IPAllocation, Subnet
from tests.api.network_helpers import NET, create, network, neutron_error, port, subnet

MODES = ("slaac", "dhcpv6-stateful", "dhcpv6-stateless")


def eui64(cidr: str, mac: str) -> str:
    """RFC 4291 appendix A, written out here rather than imported from the code under test."""
    octets = [int(part, 16) for part in mac.split(":")]
    iid = [octets[0] ^ 0x02, *octets[1:3], 0xFF, 0xFE, *octets[3:]]
    prefix = ipaddress.IPv6Network(cidr).network_address.packed[:8]
    return str(ipaddress.IPv6Address(prefix + bytes(iid)))


def test_eui64_reference_value():
    # The example of Neutron's and netaddr's documentation.
    assert eui64("2001:db8::/64", "fa:16:3e:12:34:56") == "2001:db8::f816:3eff:fe12:3456"


def v6(api, caller, network_id: str, cidr: str, status: int = 201, **body):
    r = create(api, caller, "subnets", "subnet", network_id=network_id, cidr=cidr,
               ip_version=6, **body)
    assert r.status_code == status, (body, r.text)
    return r.json()["subnet"] if status == 201 else neutron_error(r)


def allocations(cloud) -> int:
    with cloud.db.reader() as s:
        return s.scalar(select(func.count()).select_from(IPAllocation))


# ---------------------------------------------------------------- subnets


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_is_taken_and_shown(api, member, reader, mode):
    net = network(api, member)
    sub = v6(api, member, net["id"], "2001:db8:10::/64", ipv6_ra_mode=mode,
             ipv6_address_mode=mode)
    assert (sub["ipv6_ra_mode"], sub["ipv6_address_mode"]) == (mode, mode)
    assert sub["ip_version"] == 6 and sub["enable_dhcp"] is True
    assert sub["gateway_ip"] == "2001:db8:10::1"
    assert sub["allocation_pools"] == [{"start": "2001:db8:10::2",
                                        "end": "2001:db8:10:0:ffff:ffff:ffff:ffff"}]
    shown = api.get(f"{NET}/subnets/{sub['id']}", headers=reader.headers).json()["subnet"]
    assert shown == sub


@pytest.mark.parametrize(("ra", "address"), [
    (ra, address) for ra in MODES for address in MODES if ra != address])
def test_different_ra_and_address_modes_are_400(api, cloud, member, ra, address):
    net = network(api, member)
    error = v6(api, member, net["id"], "2001:db8:11::/64", status=400, ipv6_ra_mode=ra,
               ipv6_address_mode=address)
    assert "ipv6_ra_mode set to" in error["message"]
    with cloud.db.reader() as s:
        assert s.scalar(select(func.count()).select_from(Subnet)) == 0


@pytest.mark.parametrize(("body", "words"), [
    ({"cidr": "10.0.0.0/24"}, "cidr '10.0.0.0/24' does not match the ip_version '6'"),
    ({"gateway_ip": "10.0.0.1"}, "gateway_ip"),
    ({"allocation_pools": [{"start": "10.0.0.2", "end": "10.0.0.9"}]}, "allocation pool"),
    ({"dns_nameservers": ["8.8.8.8"]}, "dns_nameserver"),
    ({"host_routes": [{"destination": "10.0.0.0/8", "nexthop": "2001:db8:12::9"}]},
     "destination"),
    ({"ipv6_address_mode": "slaac", "cidr": "2001:db8:12::/80"}, "/64"),
    ({"ipv6_address_mode": "dhcpv6-stateless", "enable_dhcp": False}, "enable_dhcp"),
    ({"ipv6_ra_mode": "stateful"}, "ipv6_ra_mode"),
    ({"ip_version": 5}, "ip_version"),
    ({"cidr": "::/64"}, "'::' is not supported"),
])
def test_invalid_ipv6_subnets_are_400_naming_the_field(api, cloud, member, body, words):
    net = network(api, member)
    body = {"network_id": net["id"], "cidr": "2001:db8:12::/64", "ip_version": 6, **body}
    r = create(api, member, "subnets", "subnet", **body)
    assert r.status_code == 400, (body, r.text)
    assert words in neutron_error(r)["message"]
    with cloud.db.reader() as s:
        assert s.scalar(select(func.count()).select_from(Subnet)) == 0


def test_ipv4_subnets_refuse_ipv6_modes(api, member):
    net = network(api, member)
    r = create(api, member, "subnets", "subnet", network_id=net["id"], cidr="10.0.0.0/24",
               ip_version=4, ipv6_address_mode="slaac")
    assert r.status_code == 400
    assert "ipv6_address_mode is not valid when ip_version is 4" in neutron_error(r)["message"]


def test_addresses_are_answered_compressed(api, member):
    net = network(api, member)
    sub = v6(api, member, net["id"], "2001:0DB8:0013:0000::/64",
             gateway_ip="2001:0db8:0013:0000:0000:0000:0000:00fe",
             allocation_pools=[{"start": "2001:db8:13:0::0010", "end": "2001:DB8:13::0020"}],
             dns_nameservers=["2001:4860:4860:0000:0000:0000:0000:8888"],
             host_routes=[{"destination": "2001:0db8:00ff::/64",
                           "nexthop": "2001:db8:13:0:0:0:0:1"}])
    assert sub["cidr"] == "2001:db8:13::/64"
    assert sub["gateway_ip"] == "2001:db8:13::fe"
    assert sub["allocation_pools"] == [{"start": "2001:db8:13::10", "end": "2001:db8:13::20"}]
    assert sub["dns_nameservers"] == ["2001:4860:4860::8888"]
    assert sub["host_routes"] == [{"destination": "2001:db8:ff::/64",
                                   "nexthop": "2001:db8:13::1"}]
    p = port(api, member, net["id"],
             fixed_ips=[{"subnet_id": sub["id"], "ip_address": "2001:0db8:0013::0015"}])
    assert p["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": "2001:db8:13::15"}]
    listed = api.get(f"{NET}/ports?fixed_ips=ip_address=2001:db8:13::15",
                     headers=member.headers).json()["ports"]
    assert [q["id"] for q in listed] == [p["id"]]


def test_no_gateway_and_an_ipv4_subnet_on_one_network(api, member):
    net = network(api, member)
    six = v6(api, member, net["id"], "2001:db8:14::/64", gateway_ip="2001:db8:14::2")
    four = subnet(api, member, net["id"], "10.14.0.0/28", gateway_ip=None)
    assert six["gateway_ip"] == "2001:db8:14::2"
    assert six["allocation_pools"] == [
        {"start": "2001:db8:14::1", "end": "2001:db8:14::1"},
        {"start": "2001:db8:14::3", "end": "2001:db8:14:0:ffff:ffff:ffff:ffff"}]
    assert four["gateway_ip"] is None
    shown = api.get(f"{NET}/networks/{net['id']}", headers=member.headers).json()["network"]
    assert sorted(shown["subnets"]) == sorted([six["id"], four["id"]])


# ---------------------------------------------------------------- ports


@pytest.mark.parametrize(("ra", "address"), [
    ("slaac", "slaac"), ("dhcpv6-stateless", "dhcpv6-stateless"), (None, "slaac"),
    (None, "dhcpv6-stateless")])
def test_auto_address_subnets_give_the_eui64_address(api, member, ra, address):
    net = network(api, member)
    modes = {"ipv6_address_mode": address, **({"ipv6_ra_mode": ra} if ra else {})}
    sub = v6(api, member, net["id"], "2001:db8:20::/64", **modes)
    mac = "fa:16:3e:ab:cd:01"
    p = port(api, member, net["id"], mac_address=mac)
    assert p["fixed_ips"] == [{"subnet_id": sub["id"],
                               "ip_address": eui64("2001:db8:20::/64", mac)}]
    p2 = port(api, member, net["id"])
    assert p2["fixed_ips"][0]["ip_address"] == eui64("2001:db8:20::/64", p2["mac_address"])


def test_without_modes_the_address_comes_from_the_pool(api, member):
    net = network(api, member)
    sub = v6(api, member, net["id"], "2001:db8:21::/64")
    mac = "fa:16:3e:ab:cd:02"
    (fixed,) = port(api, member, net["id"], mac_address=mac)["fixed_ips"]
    assert fixed["ip_address"] != eui64(sub["cidr"], mac)
    assert ipaddress.ip_address(fixed["ip_address"]) in ipaddress.ip_network(sub["cidr"])


@pytest.mark.parametrize("slaac_first", [True, False])
def test_dual_stack_and_stateful_beside_slaac(api, member, slaac_first):
    net = network(api, member)
    make = [lambda: v6(api, member, net["id"], "2001:db8:22::/64", ipv6_ra_mode="slaac",
                       ipv6_address_mode="slaac"),
            lambda: v6(api, member, net["id"], "2001:db8:23::/64",
                       ipv6_address_mode="dhcpv6-stateful"),
            lambda: subnet(api, member, net["id"], "10.22.0.0/24")]
    order = make if slaac_first else make[::-1]
    made = [f() for f in order]
    slaac, stateful, four = made if slaac_first else made[::-1]
    p = port(api, member, net["id"], mac_address="fa:16:3e:00:00:22")
    by_subnet = {f["subnet_id"]: f["ip_address"] for f in p["fixed_ips"]}
    assert set(by_subnet) == {slaac["id"], stateful["id"], four["id"]}
    assert by_subnet[slaac["id"]] == "2001:db8:22:0:f816:3eff:fe00:22"
    assert ipaddress.ip_address(by_subnet[stateful["id"]]) in ipaddress.ip_network(
        "2001:db8:23::/64")
    assert ipaddress.ip_address(by_subnet[four["id"]]) in ipaddress.ip_network("10.22.0.0/24")


def test_stateful_fixed_ips_inside_outside_and_twice(api, cloud, member):
    net = network(api, member)
    sub = v6(api, member, net["id"], "2001:db8:24::/64", ipv6_ra_mode="dhcpv6-stateful",
             ipv6_address_mode="dhcpv6-stateful",
             allocation_pools=[{"start": "2001:db8:24::10", "end": "2001:db8:24::12"}])
    wanted = [{"subnet_id": sub["id"], "ip_address": "2001:db8:24::11"}]
    assert port(api, member, net["id"], fixed_ips=wanted)["fixed_ips"] == wanted
    r = create(api, member, "ports", "port", network_id=net["id"], fixed_ips=wanted)
    assert r.status_code == 409 and neutron_error(r)["type"] == "IpAddressAlreadyAllocated"
    outside = [{"subnet_id": sub["id"], "ip_address": "2001:db8:25::11"}]
    r = create(api, member, "ports", "port", network_id=net["id"], fixed_ips=outside)
    assert r.status_code == 400 and "fixed_ips" in neutron_error(r)["message"]
    # The pool holds three addresses: two more ports fit, the third does not.
    port(api, member, net["id"])
    port(api, member, net["id"])
    before = allocations(cloud)
    r = create(api, member, "ports", "port", network_id=net["id"])
    assert r.status_code == 409 and neutron_error(r)["type"] == "IpAddressGenerationFailure"
    assert allocations(cloud) == before


def test_an_auto_address_cannot_be_chosen(api, member):
    net = network(api, member)
    sub = v6(api, member, net["id"], "2001:db8:26::/64", ipv6_address_mode="slaac")
    r = create(api, member, "ports", "port", network_id=net["id"],
               fixed_ips=[{"subnet_id": sub["id"], "ip_address": "2001:db8:26::5"}])
    assert r.status_code == 400
    assert "automatic addresses" in neutron_error(r)["message"]


# ---------------------------------------------------------------- delete


@pytest.mark.parametrize("mode", ["slaac", "dhcpv6-stateless"])
def test_an_auto_address_subnet_is_deleted_under_its_ports(api, cloud, member, mode):
    net = network(api, member)
    four = subnet(api, member, net["id"], "10.27.0.0/24")
    sub = v6(api, member, net["id"], "2001:db8:27::/64", ipv6_ra_mode=mode,
             ipv6_address_mode=mode)
    p = port(api, member, net["id"])
    assert len(p["fixed_ips"]) == 2
    assert api.delete(f"{NET}/subnets/{sub['id']}", headers=member.headers).status_code == 204
    shown = api.get(f"{NET}/ports/{p['id']}", headers=member.headers).json()["port"]
    assert [f["subnet_id"] for f in shown["fixed_ips"]] == [four["id"]]
    r = api.delete(f"{NET}/networks/{net['id']}", headers=member.headers)
    assert r.status_code == 409
    assert "There are one or more ports still in use on the network" in \
        neutron_error(r)["message"]


def test_a_stateful_subnet_with_ports_is_in_use(api, member):
    net = network(api, member)
    sub = v6(api, member, net["id"], "2001:db8:28::/64", ipv6_address_mode="dhcpv6-stateful")
    port(api, member, net["id"])
    r = api.delete(f"{NET}/subnets/{sub['id']}", headers=member.headers)
    assert r.status_code == 409 and neutron_error(r)["type"] == "SubnetInUse"


def test_only_the_owner_deletes_an_auto_address_subnet(api, member, other_member, reader):
    net = network(api, member)
    sub = v6(api, member, net["id"], "2001:db8:29::/64", ipv6_address_mode="slaac")
    p = port(api, member, net["id"])
    assert api.delete(f"{NET}/subnets/{sub['id']}", headers=reader.headers).status_code == 403
    assert api.delete(f"{NET}/subnets/{sub['id']}",
                      headers=other_member.headers).status_code == 404
    shown = api.get(f"{NET}/ports/{p['id']}", headers=member.headers).json()["port"]
    assert len(shown["fixed_ips"]) == 1  # nothing was taken from the port


# ---------------------------------------------------------------- authorisation


def test_ipv6_subnet_authorisation(api, admin, member, other_member, reader):
    net = network(api, member)
    v6(api, reader, net["id"], "2001:db8:30::/64", status=403, ipv6_address_mode="slaac")
    v6(api, other_member, net["id"], "2001:db8:30::/64", status=404, ipv6_address_mode="slaac")
    sub = v6(api, admin, net["id"], "2001:db8:30::/64", ipv6_address_mode="slaac")
    assert sub["project_id"] == admin.project_id
    mine = v6(api, member, net["id"], "2001:db8:31::/64", ipv6_address_mode="dhcpv6-stateful")
    seen = {s["id"] for s in api.get(f"{NET}/subnets?ip_version=6",
                                     headers=reader.headers).json()["subnets"]}
    assert {sub["id"], mine["id"]} <= seen
    assert api.get(f"{NET}/subnets?ip_version=6",
                   headers=other_member.headers).json()["subnets"] == []


# ---------------------------------------------------------------- ip_address_substr


def test_ports_filtered_by_part_of_an_address(api, member, other_member, reader):
    net = network(api, member)
    four = subnet(api, member, net["id"], "10.40.0.0/24")
    six = v6(api, member, net["id"], "2001:db8:40::/64", ipv6_address_mode="dhcpv6-stateful")
    a = port(api, member, net["id"], fixed_ips=[{"subnet_id": four["id"],
                                                 "ip_address": "10.40.0.15"}])
    b = port(api, member, net["id"], fixed_ips=[{"subnet_id": four["id"],
                                                 "ip_address": "10.40.0.25"},
                                                {"subnet_id": six["id"],
                                                 "ip_address": "2001:db8:40::abcd"}])

    def found(caller, value: str) -> list[str]:
        r = api.get(f"{NET}/ports", params={"fixed_ips": f"ip_address_substr={value}"},
                    headers=caller.headers)
        assert r.status_code == 200, r.text
        return [p["id"] for p in r.json()["ports"]]

    assert found(reader, "10.40.0.1") == [a["id"]]
    assert sorted(found(reader, "10.40.0.")) == sorted([a["id"], b["id"]])
    assert found(reader, ":abc") == [b["id"]]
    assert found(reader, "10.40.0._5") == []  # no LIKE wildcards
    assert found(reader, "%") == []
    assert found(other_member, "10.40.0.") == []
    r = api.get(f"{NET}/ports", params={"fixed_ips": "ip_substr=10"}, headers=member.headers)
    assert r.status_code == 400 and "fixed_ips" in neutron_error(r)["message"]
    aliases = {e["alias"] for e in api.get(f"{NET}/extensions", headers=member.headers)
               .json()["extensions"]}
    assert "ip-substring-filtering" in aliases
