"""Subnet pools through the Neutron API: create (defaults, normalising, every check in
Neutron's words), list/show/update/delete, tags, allocation of subnets from a pool (next
free block, a named cidr, exhaustion, default pools), and who may do what."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from cirrus.context import RequestContext
from cirrus.db.models import Subnet, SubnetPool
from cirrus.network import subnets as subnet_service
from tests.api.network_helpers import NET, create, network, neutron_error, subnet


def count(cloud, model) -> int:
    with cloud.db.reader() as s:
        return s.scalar(select(func.count()).select_from(model))


def pool(api, caller, prefixes=("10.10.0.0/16",), **body) -> dict:
    r = create(api, caller, "subnetpools", "subnetpool", prefixes=list(prefixes),
               **{"name": "pool", **body})
    assert r.status_code == 201, r.text
    return r.json()["subnetpool"]


def pool_subnet(api, caller, network_id, pool_id, status=201, **body):
    body = {"ip_version": 4, "subnetpool_id": pool_id, **body}
    r = create(api, caller, "subnets", "subnet", network_id=network_id, **body)
    assert r.status_code == status, r.text
    return r.json()["subnet"] if status == 201 else neutron_error(r)


# ---------------------------------------------------------------- create


def test_create_fills_neutron_defaults_and_merges_prefixes(api, member):
    p = pool(api, member, ["10.11.0.0/16", "10.10.0.0/16", "10.10.5.0/24"], description="d")
    assert set(p) == {
        "id", "name", "ip_version", "prefixes", "default_prefixlen", "min_prefixlen",
        "max_prefixlen", "default_quota", "shared", "is_default", "address_scope_id", "tags",
        "tenant_id", "project_id", "description", "created_at", "updated_at",
        "revision_number"}
    assert p["prefixes"] == ["10.10.0.0/15"]
    assert p["ip_version"] == 4
    assert (p["min_prefixlen"], p["max_prefixlen"], p["default_prefixlen"]) == (8, 32, 8)
    assert p["shared"] is False and p["is_default"] is False
    assert p["address_scope_id"] is None and p["default_quota"] is None
    assert p["project_id"] == member.project_id and p["description"] == "d"
    assert p["revision_number"] == 0


def test_ipv6_pool_defaults_and_normalises(api, member):
    p = pool(api, member, ["2001:db8:0:0::1/48"], default_prefixlen="64")
    assert p["prefixes"] == ["2001:db8::/48"]
    assert p["ip_version"] == 6
    assert (p["min_prefixlen"], p["max_prefixlen"], p["default_prefixlen"]) == (64, 128, 64)


@pytest.mark.parametrize(("body", "kind", "words"), [
    ({"prefixes": []}, "EmptySubnetPoolPrefixList", "Empty subnet pool prefix list."),
    ({"prefixes": ["10.0.0.0/8", "2001:db8::/32"]}, "PrefixVersionMismatch",
     "Cannot mix IPv4 and IPv6 prefixes in a subnet pool."),
    ({"prefixes": ["bogus"]}, "HTTPBadRequest",
     "Invalid input for prefixes. Reason: 'bogus' is not a valid IP subnet."),
    ({"prefixes": ["10.0.0.1/24"]}, "HTTPBadRequest",
     "'10.0.0.1/24' isn't a recognized IP subnet cidr, '10.0.0.0/24' is recommended"),
    ({"min_prefixlen": 24, "max_prefixlen": 16}, "IllegalSubnetPoolPrefixBounds",
     "Illegal prefix bounds: min_prefixlen=24, max_prefixlen=16."),
    ({"max_prefixlen": 33}, "IllegalSubnetPoolPrefixBounds",
     "Illegal prefix bounds: max_prefixlen=33, ip_version_max=32."),
    ({"min_prefixlen": 16, "default_prefixlen": 12}, "IllegalSubnetPoolPrefixBounds",
     "Illegal prefix bounds: default_prefixlen=12, min_prefixlen=16."),
    ({"max_prefixlen": 24, "default_prefixlen": 28}, "IllegalSubnetPoolPrefixBounds",
     "Illegal prefix bounds: default_prefixlen=28, max_prefixlen=24."),
    ({"min_prefixlen": -1}, None, "Invalid input for min_prefixlen"),
    ({"default_quota": "x"}, None, "Invalid input for default_quota"),
    ({"address_scope_id": "x"}, None, "Invalid input for address_scope_id"),
    ({"bogus": 1}, None, "Unrecognized attribute(s) 'bogus'"),
])
def test_invalid_pools_are_400_and_nothing_is_made(api, cloud, member, body, kind, words):
    r = create(api, member, "subnetpools", "subnetpool",
               **{"name": "p", "prefixes": ["10.10.0.0/16"], **body})
    assert r.status_code == 400, r.text
    error = neutron_error(r)
    assert words in error["message"]
    if kind:
        assert error["type"] == kind
    assert count(cloud, SubnetPool) == 0


def test_prefixes_are_required(api, member):
    r = api.post(f"{NET}/subnetpools", json={"subnetpool": {"name": "p"}},
                 headers=member.headers)
    assert r.status_code == 400
    assert "Required attribute 'prefixes' not specified" in neutron_error(r)["message"]


# ---------------------------------------------------------------- list, show, update, delete


def test_list_show_filter_sort_and_page(api, member):
    a = pool(api, member, ["10.1.0.0/16"], name="a")
    b = pool(api, member, ["10.2.0.0/16"], name="b", min_prefixlen=20)
    six = pool(api, member, ["2001:db8::/32"], name="c")
    r = api.get(f"{NET}/subnetpools/{a['id']}", headers=member.headers)
    assert r.status_code == 200 and r.json()["subnetpool"] == a
    r = api.get(f"{NET}/subnetpools?ip_version=6", headers=member.headers)
    assert [p["id"] for p in r.json()["subnetpools"]] == [six["id"]]
    r = api.get(f"{NET}/subnetpools?min_prefixlen=20&fields=id&fields=name",
                headers=member.headers)
    assert r.json()["subnetpools"] == [{"id": b["id"], "name": "b"}]
    r = api.get(f"{NET}/subnetpools?sort_key=name&sort_dir=desc&limit=2",
                headers=member.headers)
    body = r.json()
    assert [p["name"] for p in body["subnetpools"]] == ["c", "b"]
    assert body["subnetpools_links"][0]["rel"] == "next"
    r = api.get(f"{NET}/subnetpools?bogus=1", headers=member.headers)
    assert r.status_code == 400


def test_update_name_bounds_and_growing_prefixes(api, member):
    p = pool(api, member, ["10.10.0.0/16"], min_prefixlen=16, default_prefixlen=24)
    r = api.put(f"{NET}/subnetpools/{p['id']}", headers=member.headers, json={"subnetpool": {
        "name": "renamed", "description": "x", "prefixes": ["10.10.0.0/16", "10.20.0.0/16"],
        "max_prefixlen": 28}})
    assert r.status_code == 200, r.text
    updated = r.json()["subnetpool"]
    assert updated["name"] == "renamed" and updated["description"] == "x"
    assert updated["prefixes"] == ["10.10.0.0/16", "10.20.0.0/16"]
    assert updated["max_prefixlen"] == 28 and updated["revision_number"] == 1


@pytest.mark.parametrize(("body", "kind", "words"), [
    ({"prefixes": ["10.20.0.0/16"]}, "IllegalSubnetPoolPrefixUpdate",
     "Illegal update to prefixes: Existing prefixes must be a subset of the new prefixes."),
    ({"prefixes": ["2001:db8::/32"]}, "PrefixVersionMismatch", "Cannot mix IPv4 and IPv6"),
    ({"default_prefixlen": 30}, "IllegalSubnetPoolPrefixBounds",
     "Illegal prefix bounds: default_prefixlen=30, max_prefixlen=28."),
    ({"shared": True}, "HTTPBadRequest", "Cannot update read-only attribute shared"),
    ({"ip_version": 6}, "HTTPBadRequest", "Cannot update read-only attribute ip_version"),
])
def test_bad_updates_are_400_and_change_nothing(api, member, body, kind, words):
    p = pool(api, member, ["10.10.0.0/16"], max_prefixlen=28)
    r = api.put(f"{NET}/subnetpools/{p['id']}", headers=member.headers,
                json={"subnetpool": {"name": "new", **body}})
    assert r.status_code == 400, r.text
    error = neutron_error(r)
    assert words in error["message"]
    assert error["type"] == kind
    again = api.get(f"{NET}/subnetpools/{p['id']}", headers=member.headers).json()
    assert again["subnetpool"] == p


def test_delete_and_missing_pool_is_404(api, cloud, member):
    p = pool(api, member)
    assert api.delete(f"{NET}/subnetpools/{p['id']}", headers=member.headers).status_code == 204
    assert count(cloud, SubnetPool) == 0
    for r in (api.get(f"{NET}/subnetpools/{p['id']}", headers=member.headers),
              api.delete(f"{NET}/subnetpools/{p['id']}", headers=member.headers)):
        assert r.status_code == 404
        error = neutron_error(r)
        assert error["type"] == "SubnetPoolNotFound"
        assert error["message"] == f"Subnet pool {p['id']} could not be found."


def test_tags_on_pools(api, member):
    p = pool(api, member)
    base = f"{NET}/subnetpools/{p['id']}/tags"
    assert api.put(f"{base}/red", headers=member.headers).status_code == 201
    r = api.put(base, headers=member.headers, json={"tags": ["a", "b"]})
    assert r.status_code == 200 and sorted(r.json()["tags"]) == ["a", "b"]
    assert api.get(f"{base}/a", headers=member.headers).status_code == 204
    assert api.get(f"{base}/red", headers=member.headers).status_code == 404
    r = api.get(f"{NET}/subnetpools?tags=a", headers=member.headers)
    assert [x["id"] for x in r.json()["subnetpools"]] == [p["id"]]
    shown = api.get(f"{NET}/subnetpools/{p['id']}", headers=member.headers).json()
    assert sorted(shown["subnetpool"]["tags"]) == ["a", "b"]
    assert shown["subnetpool"]["revision_number"] == 2
    assert api.delete(base, headers=member.headers).status_code == 204
    assert api.get(base, headers=member.headers).json() == {"tags": []}


# ---------------------------------------------------------------- allocation


def test_subnets_take_the_next_free_block(api, cloud, member):
    p = pool(api, member, ["10.10.0.0/16"], default_prefixlen=24, min_prefixlen=16)
    net = network(api, member)
    first = pool_subnet(api, member, net["id"], p["id"])
    second = pool_subnet(api, member, net["id"], p["id"], prefixlen=26)
    third = pool_subnet(api, member, net["id"], p["id"], prefixlen="24")
    assert first["cidr"] == "10.10.0.0/24" and first["subnetpool_id"] == p["id"]
    assert first["gateway_ip"] == "10.10.0.1"
    assert second["cidr"] == "10.10.1.0/26"
    assert third["cidr"] == "10.10.2.0/24"
    # a freed block is handed out again
    assert api.delete(f"{NET}/subnets/{first['id']}", headers=member.headers).status_code == 204
    again = pool_subnet(api, member, net["id"], p["id"])
    assert again["cidr"] == "10.10.0.0/24"
    r = api.get(f"{NET}/subnets?subnetpool_id={p['id']}", headers=member.headers)
    assert len(r.json()["subnets"]) == 3


def test_concurrent_creates_never_share_a_block(api, cloud, member):
    p = pool(api, member, ["10.10.0.0/20"], min_prefixlen=16, default_prefixlen=24)
    nets = [network(api, member, name=f"n{i}")["id"] for i in range(12)]
    ctx = RequestContext(project_id=member.project_id, roles=["member", "reader"])

    def make(network_id: str) -> str:
        spec = {"network_id": network_id, "ip_version": 4, "subnetpool_id": p["id"]}
        return cloud.db.run(lambda s: subnet_service.create_subnet(
            s, ctx, cloud.settings, dict(spec)).cidr)

    with ThreadPoolExecutor(6) as workers:
        cidrs = list(workers.map(make, nets))
    assert len(set(cidrs)) == 12
    assert set(cidrs) <= {f"10.10.{i}.0/24" for i in range(16)}
    assert count(cloud, Subnet) == 12


def test_a_named_cidr_must_be_free_and_inside_the_pool(api, cloud, member):
    p = pool(api, member, ["10.10.0.0/16"], min_prefixlen=16, default_prefixlen=24)
    net = network(api, member)
    got = pool_subnet(api, member, net["id"], p["id"], cidr="10.10.7.0/24")
    assert got["cidr"] == "10.10.7.0/24" and got["subnetpool_id"] == p["id"]
    other = network(api, member)
    for cidr in ("10.10.7.0/25", "10.99.0.0/24"):
        error = pool_subnet(api, member, other["id"], p["id"], status=409, cidr=cidr)
        assert error["type"] == "SubnetAllocationError"
        assert error["message"] == ("Failed to allocate subnet: Cannot allocate requested "
                                    "subnet from the available set of prefixes.")
    assert count(cloud, Subnet) == 1


def test_exhaustion_and_prefix_bounds(api, cloud, member):
    p = pool(api, member, ["10.10.0.0/23"], min_prefixlen=23, max_prefixlen=25,
             default_prefixlen=24)
    net = network(api, member)
    pool_subnet(api, member, net["id"], p["id"])
    pool_subnet(api, member, net["id"], p["id"])
    error = pool_subnet(api, member, net["id"], p["id"], status=409)
    assert error["type"] == "SubnetAllocationError"
    assert error["message"] == ("Failed to allocate subnet: Insufficient prefix space to "
                                "allocate subnet size /24.")
    error = pool_subnet(api, member, net["id"], p["id"], status=400, prefixlen=26)
    assert error["type"] == "MaxPrefixSubnetAllocationError"
    assert error["message"] == ("Unable to allocate subnet with prefix length 26, maximum "
                                "allowed prefix is 25.")
    error = pool_subnet(api, member, net["id"], p["id"], status=400, prefixlen=22)
    assert error["type"] == "MinPrefixSubnetAllocationError"
    assert "minimum allowed prefix is 23." in error["message"]
    assert count(cloud, Subnet) == 2


@pytest.mark.parametrize(("body", "words"), [
    ({"ip_version": 6}, "Bad subnets request: Cannot allocate IPv6 subnet from IPv4 subnet "
     "pool."),
    ({"cidr": "10.10.0.0/24", "prefixlen": 24},
     "Bad subnets request: cidr and prefixlen must not be supplied together."),
    ({"use_default_subnetpool": True},
     "Bad subnets request: subnetpool_id and use_default_subnetpool cannot both be "
     "specified."),
    ({"subnetpool_id": "nope"}, "Invalid input for subnetpool_id"),
    ({"prefixlen": "x"}, "Invalid input for prefixlen"),
])
def test_bad_pool_subnet_requests_are_400(api, cloud, member, body, words):
    p = pool(api, member)
    net = network(api, member)
    error = pool_subnet(api, member, net["id"], p["id"], status=400, **body)
    assert words in error["message"]
    assert count(cloud, Subnet) == 0


def test_subnets_of_a_network_come_from_one_pool(api, member):
    p = pool(api, member, min_prefixlen=16, default_prefixlen=24)
    net = network(api, member)
    subnet(api, member, net["id"], "192.168.0.0/24")
    error = pool_subnet(api, member, net["id"], p["id"], status=400)
    assert error["type"] == "NetworkSubnetPoolAffinityError"
    assert error["message"] == ("Subnets hosted on the same network must be allocated from "
                                "the same subnet pool.")


def test_a_pool_in_use_cannot_be_deleted(api, cloud, member):
    p = pool(api, member, min_prefixlen=16, default_prefixlen=24)
    net = network(api, member)
    sub = pool_subnet(api, member, net["id"], p["id"])
    r = api.delete(f"{NET}/subnetpools/{p['id']}", headers=member.headers)
    assert r.status_code == 400
    error = neutron_error(r)
    assert error["type"] == "SubnetPoolDeleteError"
    assert error["message"] == ("Unable to delete subnet pool: Subnet pool has existing "
                                "allocations.")
    assert count(cloud, SubnetPool) == 1
    assert api.delete(f"{NET}/subnets/{sub['id']}", headers=member.headers).status_code == 204
    assert api.delete(f"{NET}/subnetpools/{p['id']}", headers=member.headers).status_code == 204


def test_default_pools(api, admin, member):
    net = network(api, member)
    r = create(api, member, "subnets", "subnet", network_id=net["id"], ip_version=4,
               use_default_subnetpool=True)
    assert r.status_code == 400
    assert neutron_error(r)["message"] == ("Bad subnets request: No default subnetpool found "
                                           "for IPv4.")
    p = pool(api, admin, ["10.50.0.0/16"], shared=True, is_default=True, min_prefixlen=16,
             default_prefixlen=26)
    assert p["is_default"] is True and p["shared"] is True
    r = create(api, admin, "subnetpools", "subnetpool", prefixes=["10.60.0.0/16"],
               is_default=True)
    assert r.status_code == 400
    assert "A default subnetpool for this IP family has already been set" in \
        neutron_error(r)["message"]
    r = create(api, member, "subnets", "subnet", network_id=net["id"], ip_version=4,
               use_default_subnetpool=True)
    assert r.status_code == 201, r.text
    assert r.json()["subnet"]["cidr"] == "10.50.0.0/26"
    assert r.json()["subnet"]["subnetpool_id"] == p["id"]
    # another pool may become the default only once this one stops being it
    other = pool(api, admin, ["10.60.0.0/16"])
    r = api.put(f"{NET}/subnetpools/{other['id']}", headers=admin.headers,
                json={"subnetpool": {"is_default": True}})
    assert r.status_code == 400
    r = api.put(f"{NET}/subnetpools/{p['id']}", headers=admin.headers,
                json={"subnetpool": {"is_default": False}})
    assert r.status_code == 200 and r.json()["subnetpool"]["is_default"] is False
    r = api.put(f"{NET}/subnetpools/{other['id']}", headers=admin.headers,
                json={"subnetpool": {"is_default": True}})
    assert r.status_code == 200 and r.json()["subnetpool"]["is_default"] is True


# ---------------------------------------------------------------- who may do what


def test_reader_reads_and_cannot_write(api, cloud, member, reader):
    p = pool(api, member)
    r = api.get(f"{NET}/subnetpools/{p['id']}", headers=reader.headers)
    assert r.status_code == 200
    assert [x["id"] for x in api.get(f"{NET}/subnetpools", headers=reader.headers)
            .json()["subnetpools"]] == [p["id"]]
    assert api.get(f"{NET}/subnetpools/{p['id']}/tags", headers=reader.headers) \
        .status_code == 200
    for r in (create(api, reader, "subnetpools", "subnetpool", prefixes=["10.9.0.0/16"]),
              api.put(f"{NET}/subnetpools/{p['id']}", headers=reader.headers,
                      json={"subnetpool": {"name": "x"}}),
              api.delete(f"{NET}/subnetpools/{p['id']}", headers=reader.headers),
              api.put(f"{NET}/subnetpools/{p['id']}/tags/x", headers=reader.headers)):
        assert r.status_code == 403, r.text
        assert neutron_error(r)["type"] == "PolicyNotAuthorized"
    assert count(cloud, SubnetPool) == 1


def test_only_admins_make_shared_or_default_pools(api, cloud, member):
    for flag in ("shared", "is_default"):
        r = create(api, member, "subnetpools", "subnetpool", prefixes=["10.9.0.0/16"],
                   **{flag: True})
        assert r.status_code == 403, r.text
        assert neutron_error(r)["message"] == \
            f"rule:create_subnetpool:{flag} is disallowed by policy"
    p = pool(api, member)
    r = api.put(f"{NET}/subnetpools/{p['id']}", headers=member.headers,
                json={"subnetpool": {"is_default": True}})
    assert r.status_code == 403
    assert count(cloud, SubnetPool) == 1


def test_another_project_sees_neither_private_pools_nor_uses_them(api, cloud, member,
                                                                   other_member):
    p = pool(api, member, min_prefixlen=16, default_prefixlen=24)
    assert api.get(f"{NET}/subnetpools", headers=other_member.headers).json() == \
        {"subnetpools": []}
    for r in (api.get(f"{NET}/subnetpools/{p['id']}", headers=other_member.headers),
              api.put(f"{NET}/subnetpools/{p['id']}", headers=other_member.headers,
                      json={"subnetpool": {"name": "x"}}),
              api.delete(f"{NET}/subnetpools/{p['id']}", headers=other_member.headers),
              api.put(f"{NET}/subnetpools/{p['id']}/tags/x", headers=other_member.headers)):
        assert r.status_code == 404, r.text
        assert neutron_error(r)["type"] == "SubnetPoolNotFound"
    net = network(api, other_member)
    error = pool_subnet(api, other_member, net["id"], p["id"], status=404)
    assert error["type"] == "SubnetPoolNotFound"
    assert count(cloud, Subnet) == 0


def test_shared_pools_are_seen_and_used_by_all_and_changed_by_admins(api, admin, member,
                                                                      other_member):
    p = pool(api, admin, ["10.70.0.0/16"], shared=True, min_prefixlen=16,
             default_prefixlen=24, project_id=member.project_id)
    assert p["project_id"] == member.project_id
    r = api.get(f"{NET}/subnetpools/{p['id']}", headers=other_member.headers)
    assert r.status_code == 200
    net = network(api, other_member)
    sub = pool_subnet(api, other_member, net["id"], p["id"])
    assert sub["cidr"] == "10.70.0.0/24" and sub["project_id"] == other_member.project_id
    r = api.put(f"{NET}/subnetpools/{p['id']}", headers=other_member.headers,
                json={"subnetpool": {"name": "x"}})
    assert r.status_code == 403
    r = api.put(f"{NET}/subnetpools/{p['id']}", headers=admin.headers,
                json={"subnetpool": {"name": "by-admin"}})
    assert r.status_code == 200 and r.json()["subnetpool"]["name"] == "by-admin"
    # the admin sees every pool, private ones included
    private = pool(api, member, ["10.80.0.0/16"])
    ids = {x["id"] for x in api.get(f"{NET}/subnetpools", headers=admin.headers)
           .json()["subnetpools"]}
    assert {p["id"], private["id"]} <= ids
    assert api.delete(f"{NET}/subnetpools/{private['id']}", headers=admin.headers) \
        .status_code == 204


def test_a_member_cannot_create_a_pool_for_another_project(api, cloud, member, other_member):
    r = create(api, member, "subnetpools", "subnetpool", prefixes=["10.9.0.0/16"],
               project_id=other_member.project_id)
    assert r.status_code == 400
    assert count(cloud, SubnetPool) == 0
