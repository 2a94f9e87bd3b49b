"""Bulk create through the Neutron API (`{"networks": [...]}`, `{"subnets": [...]}`,
`{"ports": [...]}`): the answer lists the new resources in the order asked; one bad item
or one quota overrun creates none of them and keeps no IP allocation."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from cirrus.db.models import IPAllocation, Network, Port, Subnet
from tests.api.network_helpers import NET, network, neutron_error, subnet


def bulk(api, caller, collection: str, items: list):
    return api.post(f"{NET}/{collection}", json={collection: items}, headers=caller.headers)


def counts(cloud) -> dict[str, int]:
    with cloud.db.reader() as s:
        return {model.__tablename__: s.scalar(select(func.count()).select_from(model))
                for model in (Network, Subnet, Port, IPAllocation)}


def listed(api, caller, collection: str) -> list[dict]:
    r = api.get(f"{NET}/{collection}", headers=caller.headers)
    assert r.status_code == 200, r.text
    return r.json()[collection]


def set_quota(api, admin, project_id: str, **values) -> None:
    r = api.put(f"{NET}/quotas/{project_id}", json={"quota": values}, headers=admin.headers)
    assert r.status_code == 200, r.text


# ---------------------------------------------------------------- success, in order


def test_bulk_networks_are_created_and_answered_in_order(api, member, reader):
    r = bulk(api, member, "networks", [{"name": f"n{i}"} for i in range(3)]
             + [{"network": {"name": "wrapped"}}])
    assert r.status_code == 201, r.text
    created = r.json()["networks"]
    assert set(r.json()) == {"networks"}
    assert [n["name"] for n in created] == ["n0", "n1", "n2", "wrapped"]
    assert all(n["project_id"] == member.project_id for n in created)
    seen = {n["id"] for n in listed(api, reader, "networks")}
    assert {n["id"] for n in created} <= seen


def test_bulk_subnets_v4_and_v6_in_order(api, member):
    a, b = network(api, member), network(api, member)
    r = bulk(api, member, "subnets", [
        {"network_id": a["id"], "cidr": "10.1.0.0/24", "ip_version": 4, "name": "s4"},
        {"network_id": b["id"], "cidr": "2001:db8:1::/64", "ip_version": 6}])
    assert r.status_code == 201, r.text
    s4, s6 = r.json()["subnets"]
    assert (s4["name"], s4["cidr"], s4["network_id"]) == ("s4", "10.1.0.0/24", a["id"])
    assert (s6["name"], s6["cidr"], s6["gateway_ip"]) == ("", "2001:db8:1::/64", "2001:db8:1::1")
    shown = api.get(f"{NET}/networks/{a['id']}", headers=member.headers).json()["network"]
    assert shown["subnets"] == [s4["id"]]


def test_bulk_ports_get_distinct_addresses_in_order(api, member):
    net = network(api, member)
    sub = subnet(api, member, net["id"], "10.2.0.0/29")  # 5 usable addresses besides the gateway
    r = bulk(api, member, "ports", [{"network_id": net["id"], "name": f"p{i}",
                                     "admin_state_up": i % 2 == 0} for i in range(5)])
    assert r.status_code == 201, r.text
    ports = r.json()["ports"]
    assert [p["name"] for p in ports] == [f"p{i}" for i in range(5)]
    assert [p["admin_state_up"] for p in ports] == [True, False, True, False, True]
    addresses = [p["fixed_ips"][0]["ip_address"] for p in ports]
    assert len(set(addresses)) == 5
    assert all(p["fixed_ips"][0]["subnet_id"] == sub["id"] for p in ports)


# ---------------------------------------------------------------- all or nothing


def test_one_invalid_network_creates_none(api, cloud, member):
    before = counts(cloud)
    r = bulk(api, member, "networks", [{"name": "ok"}, {"name": "bad", "mtu": "x"}])
    assert r.status_code == 400
    assert "mtu" in neutron_error(r)["message"]
    r = bulk(api, member, "networks", [{"name": "ok"}, {"name": "bad", "mtu": 10}])
    assert r.status_code == 400 and "mtu" in neutron_error(r)["message"]
    assert counts(cloud) == before
    assert not [n for n in listed(api, member, "networks") if n["name"] == "ok"]


def test_a_failing_later_subnet_rolls_back_the_earlier_ones(api, cloud, member):
    net = network(api, member)
    before = counts(cloud)
    r = bulk(api, member, "subnets", [
        {"network_id": net["id"], "cidr": "10.3.0.0/24", "ip_version": 4},
        {"network_id": net["id"], "cidr": "10.3.0.0/25", "ip_version": 4}])  # overlaps
    assert r.status_code == 400, r.text
    assert "overlaps" in neutron_error(r)["message"]
    r = bulk(api, member, "subnets", [
        {"network_id": net["id"], "cidr": "10.4.0.0/24", "ip_version": 4},
        {"network_id": net["id"], "cidr": "10.5.0.0/24", "ip_version": 6}])
    assert r.status_code == 400 and "ip_version" in neutron_error(r)["message"]
    assert counts(cloud) == before
    assert listed(api, member, "subnets") == []


def test_a_port_without_an_address_rolls_back_every_port_and_allocation(api, cloud, member):
    net = network(api, member)
    subnet(api, member, net["id"], "10.6.0.0/29")  # 5 addresses
    before = counts(cloud)
    r = bulk(api, member, "ports", [{"network_id": net["id"]} for _ in range(6)])
    assert r.status_code == 409, r.text
    assert neutron_error(r)["type"] == "IpAddressGenerationFailure"
    assert counts(cloud) == before
    assert listed(api, member, "ports") == []
    # ... and the addresses are free again: five ports still fit.
    r = bulk(api, member, "ports", [{"network_id": net["id"]} for _ in range(5)])
    assert r.status_code == 201, r.text


def test_an_address_asked_twice_rolls_back_the_first_port(api, cloud, member):
    net = network(api, member)
    sub = subnet(api, member, net["id"], "10.7.0.0/24")
    fixed = [{"subnet_id": sub["id"], "ip_address": "10.7.0.9"}]
    before = counts(cloud)
    r = bulk(api, member, "ports", [{"network_id": net["id"], "fixed_ips": fixed},
                                    {"network_id": net["id"], "fixed_ips": fixed}])
    assert r.status_code == 409, r.text
    assert counts(cloud) == before


@pytest.mark.parametrize(("collection", "item"), [
    ("networks", {"name": "q"}),
    ("ports", None),
])
def test_a_quota_overrun_creates_none(api, cloud, admin, member, collection, item):
    net = network(api, member)
    subnet(api, member, net["id"], "10.8.0.0/24")
    item = item or {"network_id": net["id"]}
    used = len(listed(api, member, collection))
    set_quota(api, admin, member.project_id, **{collection[:-1]: used + 2})
    before = counts(cloud)
    r = bulk(api, member, collection, [dict(item) for _ in range(3)])
    assert r.status_code == 409, r.text
    assert neutron_error(r)["type"] == "OverQuota"
    assert counts(cloud) == before
    assert bulk(api, member, collection, [dict(item) for _ in range(2)]).status_code == 201


def test_a_subnet_quota_overrun_creates_none(api, cloud, admin, member):
    net = network(api, member)
    set_quota(api, admin, member.project_id, subnet=1)
    before = counts(cloud)
    r = bulk(api, member, "subnets", [
        {"network_id": net["id"], "cidr": f"10.9.{i}.0/24", "ip_version": 4} for i in range(2)])
    assert r.status_code == 409, r.text
    assert counts(cloud) == before


# ---------------------------------------------------------------- malformed bodies


@pytest.mark.parametrize(("body", "words"), [
    ({"networks": []}, "Resources required"),
    ({"networks": {"name": "x"}}, "networks"),
    ({"networks": ["x"]}, "networks"),
    ({"networks": [{"name": "x"}], "network": {"name": "y"}}, "networks"),
    ({"networks": [{"nme": "x"}]}, "nme"),
    ({"networks": [{"name": "x" * 256}]}, "name"),
])
def test_malformed_bulk_bodies_are_400_naming_the_field(api, cloud, member, body, words):
    before = counts(cloud)
    r = api.post(f"{NET}/networks", json=body, headers=member.headers)
    assert r.status_code == 400, r.text
    assert words in neutron_error(r)["message"]
    assert counts(cloud) == before


def test_bulk_ports_item_missing_network_id_is_400(api, cloud, member):
    net = network(api, member)
    before = counts(cloud)
    r = bulk(api, member, "ports", [{"network_id": net["id"]}, {"name": "lost"}])
    assert r.status_code == 400
    assert "network_id" in neutron_error(r)["message"]
    assert counts(cloud) == before


# ---------------------------------------------------------------- authorisation


def test_reader_cannot_bulk_create(api, cloud, member, reader):
    net = network(api, member)
    before = counts(cloud)
    for collection, items in (("networks", [{"name": "r"}]),
                              ("subnets", [{"network_id": net["id"], "cidr": "10.10.0.0/24",
                                            "ip_version": 4}]),
                              ("ports", [{"network_id": net["id"]}])):
        r = bulk(api, reader, collection, items)
        assert r.status_code == 403, (collection, r.text)
    assert counts(cloud) == before


def test_another_projects_member_cannot_use_a_private_network(api, cloud, member, other_member):
    net = network(api, member)
    subnet(api, member, net["id"], "10.11.0.0/24")
    theirs = network(api, other_member)
    before = counts(cloud)
    r = bulk(api, other_member, "ports", [{"network_id": theirs["id"]},
                                          {"network_id": net["id"]}])
    assert r.status_code == 404, r.text
    r = bulk(api, other_member, "subnets", [
        {"network_id": net["id"], "cidr": "10.12.0.0/24", "ip_version": 4}])
    assert r.status_code == 404, r.text
    assert counts(cloud) == before


def test_members_cannot_bulk_create_for_another_project_but_admins_can(
        api, admin, member, other_member):
    r = bulk(api, member, "networks", [{"name": "x", "project_id": other_member.project_id}])
    assert r.status_code in (400, 403), r.text
    r = bulk(api, admin, "networks", [{"name": "mine"},
                                      {"name": "theirs", "project_id": other_member.project_id}])
    assert r.status_code == 201, r.text
    mine, theirs = r.json()["networks"]
    assert (mine["project_id"], theirs["project_id"]) == (admin.project_id,
                                                          other_member.project_id)
    assert [n["id"] for n in listed(api, other_member, "networks")] == [theirs["id"]]
