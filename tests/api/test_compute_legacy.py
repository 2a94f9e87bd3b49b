"""Nova routes old clients still call: extensions, os-hosts (to 2.42), os-tenant-networks and
os-networks (to 2.35), the server password; checked against Tempest's schemas."""

from __future__ import annotations

import jsonschema
import pytest
from tempest.lib.api_schema.response.compute.v2_1 import extensions as ext_schemas
from tempest.lib.api_schema.response.compute.v2_1 import hosts as host_schemas
from tempest.lib.api_schema.response.compute.v2_1 import tenant_networks as net_schemas

from tests.api.servers_helpers import add_flavor, add_image, server_body, wait_for_status

C = "/compute/v2.1"


def check(schema: dict, r) -> dict:
    assert r.status_code in schema["status_code"], r.text
    jsonschema.validate(r.json(), schema["response_body"])
    return r.json()


def test_extensions_list_and_show(api, member, reader):
    listed = check(ext_schemas.list_extensions, api.get(f"{C}/extensions", headers=reader.compute()))
    assert "Hosts" in {e["name"] for e in listed["extensions"]}
    r = api.get(f"{C}/extensions/os-consoles", headers=member.compute())
    assert r.status_code == 200 and r.json()["extension"]["alias"] == "os-consoles"
    assert api.get(f"{C}/extensions/os-nothing", headers=member.compute()).status_code == 404


def test_hosts_list_filter_and_detail(api, cloud, admin, member):
    h = admin.compute("2.42")
    hosts = check(host_schemas.list_hosts, api.get(f"{C}/os-hosts", headers=h))["hosts"]
    compute = [x for x in hosts if x["service"] == "compute"]
    assert {x["service"] for x in hosts} >= {"compute", "conductor", "scheduler"}
    assert {x["zone"] for x in hosts if x["service"] != "compute"} == {"internal"}
    zone = compute[0]["zone"]
    zoned = api.get(f"{C}/os-hosts?zone={zone}", headers=h).json()["hosts"]
    assert compute[0] in zoned and all(x["zone"] == zone for x in zoned)
    assert api.get(f"{C}/os-hosts?zone=", headers=h).json()["hosts"] == hosts
    assert api.get(f"{C}/os-hosts?zone=xxx", headers=h).json()["hosts"] == []
    # A server of the member's project shows in its host's detail.
    flavor, image = add_flavor(cloud, vcpus=2, ram=256), add_image(cloud)
    r = api.post(f"{C}/servers", headers=member.compute(), json=server_body(flavor, image))
    server = wait_for_status(api, member.compute(), r.json()["server"]["id"], "ACTIVE")
    host = api.get(f"{C}/servers/{server['id']}", headers=admin.compute()).json()["server"][
        "OS-EXT-SRV-ATTR:host"]
    detail = check(host_schemas.get_host_detail, api.get(f"{C}/os-hosts/{host}", headers=h))
    rows = {row["resource"]["project"]: row["resource"] for row in detail["host"]}
    assert rows["(total)"]["cpu"] > 0 and rows["(used_now)"]["cpu"] >= 2
    assert rows[member.project_id]["cpu"] == 2 and rows[member.project_id]["memory_mb"] == 256
    assert api.get(f"{C}/os-hosts/nonexistent", headers=h).status_code == 404
    assert api.get(f"{C}/os-hosts", headers=admin.compute("2.43")).status_code == 404


@pytest.mark.parametrize("body", [{"status": "bogus"}, {"maintenance_mode": "bogus"}, {},
                                  {"status": "enable", "other": 1}])
def test_host_update_bad_input_is_400(api, admin, body):
    hosts = api.get(f"{C}/os-hosts", headers=admin.compute("2.42")).json()["hosts"]
    host = next(x["host_name"] for x in hosts if x["service"] == "compute")
    assert api.put(f"{C}/os-hosts/{host}", headers=admin.compute("2.42"), json=body).status_code == 400


def test_host_update_disables_and_enables_the_compute_service(api, admin):
    hosts = api.get(f"{C}/os-hosts", headers=admin.compute("2.42")).json()["hosts"]
    host = next(x["host_name"] for x in hosts if x["service"] == "compute")
    r = api.put(f"{C}/os-hosts/{host}", headers=admin.compute("2.42"), json={"status": "disable"})
    assert check(host_schemas.update_host, r) == {"host": host, "status": "disabled"}
    services = api.get(f"{C}/os-services?host={host}", headers=admin.compute("2.42")).json()["services"]
    assert {s_["status"] for s_ in services} == {"disabled"}
    r = api.put(f"{C}/os-hosts/{host}", headers=admin.compute("2.42"), json={"status": "enable"})
    assert r.json()["status"] == "enabled"
    assert api.put(f"{C}/os-hosts/nowhere", headers=admin.compute("2.42"),
                   json={"status": "enable"}).status_code == 404
    assert api.put(f"{C}/os-hosts/{host}", headers=admin.compute("2.42"),
                   json={"maintenance_mode": "enable"}).status_code == 501
    assert api.get(f"{C}/os-hosts/{host}/startup", headers=admin.compute("2.42")).status_code == 501
    assert api.get(f"{C}/os-hosts/nowhere/reboot", headers=admin.compute("2.42")).status_code == 404


def test_hosts_are_admin_only(api, member, reader, other_member):
    for caller in (member, reader, other_member):
        assert api.get(f"{C}/os-hosts", headers=caller.compute("2.42")).status_code == 403
        assert api.put(f"{C}/os-hosts/x", headers=caller.compute("2.42"),
                       json={"status": "enable"}).status_code == 403


def _network(api, caller, name, cidr):
    net = api.post("/network/v2.0/networks", headers=caller.headers,
                   json={"network": {"name": name}}).json()["network"]
    api.post("/network/v2.0/subnets", headers=caller.headers,
             json={"subnet": {"network_id": net["id"], "cidr": cidr, "ip_version": 4}})
    return net


def test_tenant_networks_and_networks_proxies(api, member, reader, other_member, admin):
    net = _network(api, member, "mine", "10.9.8.0/24")
    listed = check(net_schemas.list_tenant_networks,
                   api.get(f"{C}/os-tenant-networks", headers=reader.compute("2.35")))
    assert {"id": net["id"], "label": "mine", "cidr": "10.9.8.0/24"} in listed["networks"]
    shown = check(net_schemas.get_tenant_network,
                  api.get(f"{C}/os-tenant-networks/{net['id']}", headers=member.compute("2.35")))
    assert shown["network"]["cidr"] == "10.9.8.0/24"
    assert api.get(f"{C}/os-tenant-networks/{net['id']}",
                   headers=other_member.compute("2.35")).status_code == 404
    others = api.get(f"{C}/os-tenant-networks", headers=other_member.compute("2.35")).json()
    assert net["id"] not in {n["id"] for n in others["networks"]}
    full = api.get(f"{C}/os-networks/{net['id']}", headers=member.compute("2.35")).json()["network"]
    assert (full["label"], full["netmask"], full["broadcast"]) == \
        ("mine", "255.255.255.0", "10.9.8.255")
    assert net["id"] in {n["id"] for n in api.get(f"{C}/os-networks",
                                                  headers=admin.compute("2.35")).json()["networks"]}
    assert api.get(f"{C}/os-tenant-networks", headers=member.compute("2.36")).status_code == 404
    assert api.get(f"{C}/os-networks", headers=member.compute("2.36")).status_code == 404


def test_server_password_is_empty_and_clearing_is_accepted(api, cloud, member, reader,
                                                          other_member):
    flavor, image = add_flavor(cloud), add_image(cloud)
    r = api.post(f"{C}/servers", headers=member.compute(), json=server_body(flavor, image))
    server_id = r.json()["server"]["id"]
    url = f"{C}/servers/{server_id}/os-server-password"
    assert api.get(url, headers=reader.compute()).json() == {"password": ""}
    assert api.delete(url, headers=reader.compute()).status_code == 403
    assert api.delete(url, headers=member.compute()).status_code == 204
    assert api.get(url, headers=other_member.compute()).status_code == 404
    assert api.delete(url, headers=other_member.compute()).status_code == 404
