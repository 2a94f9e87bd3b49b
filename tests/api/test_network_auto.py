"""On-demand project networks through /v2.0/auto-allocated-topology: made on first use,
pre-initialised by an admin, the admin's default network when there is one, deleted."""

from __future__ import annotations

from tests.api.network_helpers import NET, network, neutron_error, port

TOPOLOGY = f"{NET}/auto-allocated-topology"


def topology(api, caller, project_id: str) -> dict:
    r = api.get(f"{TOPOLOGY}/{project_id}", headers=caller.headers)
    assert r.status_code == 200, r.text
    return r.json()["auto_allocated_topology"]


def test_nothing_exists_until_first_use_then_one_network(api, cloud, member):
    assert api.get(f"{NET}/networks", headers=member.headers).json()["networks"] == []
    first = topology(api, member, member.project_id)
    assert first["tenant_id"] == first["project_id"] == member.project_id
    assert topology(api, member, member.project_id) == first
    net = api.get(f"{NET}/networks/{first['id']}", headers=member.headers).json()["network"]
    assert net["name"] == "auto_allocated_network" and net["project_id"] == member.project_id
    (sub,) = api.get(f"{NET}/subnets?network_id={first['id']}", headers=member.headers).json()["subnets"]
    assert sub["cidr"] == cloud.settings.auto_network_cidr
    assert sub["enable_dhcp"] is False
    assert sub["dns_nameservers"] == list(cloud.settings.auto_network_dns)


def test_admin_pre_initialises_a_project_member_gets_the_same(api, admin, member, other_member):
    made = topology(api, admin, member.project_id)
    assert topology(api, member, member.project_id)["id"] == made["id"]
    r = api.get(f"{TOPOLOGY}/{member.project_id}", headers=other_member.headers)
    assert r.status_code == 403
    assert neutron_error(r)["type"] == "PolicyNotAuthorized"


def test_none_means_the_callers_project(api, member):
    assert topology(api, member, "None")["project_id"] == member.project_id


def test_an_admin_default_network_serves_every_project(api, admin, member, other_member):
    default = network(api, admin, shared=True, is_default=True)
    assert topology(api, member, member.project_id)["id"] == default["id"]
    assert topology(api, other_member, other_member.project_id)["id"] == default["id"]
    names = [n["name"] for n in api.get(f"{NET}/networks", headers=member.headers)
             .json()["networks"]]
    assert "auto_allocated_network" not in names


def test_dry_run_makes_nothing(api, member):
    r = api.get(f"{TOPOLOGY}/{member.project_id}?fields=dry-run", headers=member.headers)
    assert r.json()["auto_allocated_topology"]["id"] == "dry-run=pass"
    assert api.get(f"{NET}/networks", headers=member.headers).json()["networks"] == []


def test_delete_is_refused_while_ports_use_it_and_is_idempotent(api, member):
    made = topology(api, member, member.project_id)
    p = port(api, member, made["id"], device_owner="compute:nova")
    r = api.delete(f"{TOPOLOGY}/{member.project_id}", headers=member.headers)
    assert r.status_code == 409
    assert neutron_error(r)["type"] == "NetworkInUse"
    api.delete(f"{NET}/ports/{p['id']}", headers=member.headers)
    assert api.delete(f"{TOPOLOGY}/{member.project_id}", headers=member.headers).status_code == 204
    assert api.get(f"{NET}/networks/{made['id']}", headers=member.headers).status_code == 404
    assert api.delete(f"{TOPOLOGY}/{member.project_id}", headers=member.headers).status_code == 204
    assert topology(api, member, member.project_id)["id"] != made["id"]


def test_reader_cannot_make_the_network(api, reader):
    r = api.get(f"{TOPOLOGY}/{reader.project_id}", headers=reader.headers)
    assert r.status_code == 403
