"""Nova's floating IP proxy: os-floating-ips and os-floating-ip-pools (Tempest's schemas) up
to 2.35, addFloatingIp/removeFloatingIp up to 2.43, over the network service's floating
IPs; gone after."""

from __future__ import annotations

import jsonschema
import pytest
from tempest.lib.api_schema.response.compute.v2_1 import floating_ips as schemas

from tests.api.network_helpers import NET, create, network, subnet
from tests.api.servers_helpers import server_body, wait_for_status

FIPS = "/compute/v2.1/os-floating-ips"


def check(schema: dict, r) -> dict:
    assert r.status_code in schema["status_code"], r.text
    if "response_body" in schema:
        jsonschema.validate(r.json(), schema["response_body"],
                            format_checker=jsonschema.FormatChecker())
    return r.json() if r.content else {}


@pytest.fixture
def public(api, admin) -> dict:
    net = network(api, admin, name="public", **{"router:external": True})
    subnet(api, admin, net["id"], "172.24.4.0/24", enable_dhcp=False)
    return net


@pytest.fixture
def server(api, member, public, flavor, image) -> dict:
    """A running server of the member's on a network routed to `public`."""
    net = network(api, member)
    sn = subnet(api, member, net["id"], "10.0.0.0/24")
    router = create(api, member, "routers", "router", name="r",
                    external_gateway_info={"network_id": public["id"]}).json()["router"]
    api.put(f"{NET}/routers/{router['id']}/add_router_interface", json={"subnet_id": sn["id"]},
            headers=member.headers)
    r = api.post("/compute/v2.1/servers", headers=member.compute("2.35"),
                 json=server_body(flavor, image, networks=[{"uuid": net["id"]}]))
    assert r.status_code == 202, r.text
    return wait_for_status(api, member.compute("2.35"), r.json()["server"]["id"], "ACTIVE")


def action(api, caller, server_id: str, mv: str = "2.43", **body):
    return api.post(f"/compute/v2.1/servers/{server_id}/action", json=body,
                    headers=caller.compute(mv))


def test_pools_and_allocation(api, member, public):
    r = api.get("/compute/v2.1/os-floating-ip-pools", headers=member.compute("2.35"))
    assert r.status_code == 200
    assert r.json()["floating_ip_pools"] == [{"name": "public"}]
    made = check(schemas.create_get_floating_ip, api.post(
        FIPS, json={"pool": "public"}, headers=member.compute("2.35")))["floating_ip"]
    assert made["pool"] == "public" and made["ip"].startswith("172.24.4.")
    assert made["instance_id"] is None and made["fixed_ip"] is None
    shown = check(schemas.create_get_floating_ip, api.get(
        f"{FIPS}/{made['id']}", headers=member.compute("2.35")))
    assert shown["floating_ip"] == made
    listed = check(schemas.list_floating_ips, api.get(FIPS, headers=member.compute("2.35")))
    assert listed["floating_ips"] == [made]
    # The same floating IP in the network API.
    neutron = api.get(f"{NET}/floatingips/{made['id']}", headers=member.headers).json()
    assert neutron["floatingip"]["floating_ip_address"] == made["ip"]
    r = api.delete(f"{FIPS}/{made['id']}", headers=member.compute("2.35"))
    assert r.status_code == 202
    r = api.get(f"{FIPS}/{made['id']}", headers=member.compute("2.35"))
    assert r.status_code == 404 and "Floating IP not found" in r.text


def test_errors_and_removal_at_2_36(api, admin, member, reader, public):
    r = api.post(FIPS, json={"pool": "nope"}, headers=member.compute("2.35"))
    assert r.status_code == 404 and "Floating IP pool not found" in r.text
    r = api.post(FIPS, json={"pool": "public"}, headers=reader.compute("2.35"))
    assert r.status_code == 403
    api.put(f"{NET}/quotas/{member.project_id}", json={"quota": {"floatingip": 0}},
            headers=admin.headers)
    r = api.post(FIPS, json={"pool": "public"}, headers=member.compute("2.35"))
    assert r.status_code == 403 and "Maximum number of floating IPs exceeded" in r.text
    for path in (FIPS, "/compute/v2.1/os-floating-ip-pools"):
        assert api.get(path, headers=member.compute("2.36")).status_code == 404


def test_add_and_remove_on_a_server(api, member, other_member, public, server):
    made = api.post(FIPS, json={"pool": "public"},
                    headers=member.compute("2.35")).json()["floating_ip"]
    r = action(api, member, server["id"], addFloatingIp={"address": made["ip"]})
    assert r.status_code == 202, r.text
    shown = api.get(f"{FIPS}/{made['id']}", headers=member.compute("2.35")).json()["floating_ip"]
    assert shown["instance_id"] == server["id"] and shown["fixed_ip"].startswith("10.0.0.")
    neutron = api.get(f"{NET}/floatingips/{made['id']}", headers=member.headers).json()
    assert neutron["floatingip"]["status"] == "ACTIVE"
    # Another project cannot see the server or the address.
    r = action(api, other_member, server["id"], removeFloatingIp={"address": made["ip"]})
    assert r.status_code == 404
    r = action(api, member, server["id"], addFloatingIp={"address": "172.24.4.250"})
    assert r.status_code == 404 and "floating IP not found" in r.text
    r = action(api, member, server["id"], addFloatingIp={"address": made["ip"],
                                                         "fixed_address": "10.0.0.250"})
    assert r.status_code == 400
    r = action(api, member, server["id"], "2.44", addFloatingIp={"address": made["ip"]})
    assert r.status_code == 400
    assert action(api, member, server["id"],
                  removeFloatingIp={"address": made["ip"]}).status_code == 202
    shown = api.get(f"{FIPS}/{made['id']}", headers=member.compute("2.35")).json()["floating_ip"]
    assert shown["instance_id"] is None
    r = action(api, member, server["id"], removeFloatingIp={"address": made["ip"]})
    assert r.status_code == 409


def test_a_server_without_a_router_cannot_have_one(api, member, public, flavor, image):
    net = network(api, member)
    subnet(api, member, net["id"], "10.0.0.0/24")
    r = api.post("/compute/v2.1/servers", headers=member.compute("2.35"),
                 json=server_body(flavor, image, networks=[{"uuid": net["id"]}]))
    vm = wait_for_status(api, member.compute("2.35"), r.json()["server"]["id"], "ACTIVE")
    made = api.post(FIPS, json={"pool": "public"},
                    headers=member.compute("2.35")).json()["floating_ip"]
    r = action(api, member, vm["id"], addFloatingIp={"address": made["ip"]})
    assert r.status_code == 400 and "is not reachable from subnet" in r.text
    shown = api.get(f"{FIPS}/{made['id']}", headers=member.compute("2.35")).json()["floating_ip"]
    assert shown["instance_id"] is None


def test_deleting_the_server_disassociates(api, member, public, server):
    made = api.post(FIPS, json={"pool": "public"},
                    headers=member.compute("2.35")).json()["floating_ip"]
    assert action(api, member, server["id"],
                  addFloatingIp={"address": made["ip"]}).status_code == 202
    r = api.delete(f"/compute/v2.1/servers/{server['id']}", headers=member.compute("2.35"))
    assert r.status_code == 204
    wait_for_status(api, member.compute("2.35"), server["id"], "DELETED")
    shown = api.get(f"{NET}/floatingips/{made['id']}", headers=member.headers).json()
    assert shown["floatingip"]["port_id"] is None and shown["floatingip"]["status"] == "DOWN"
