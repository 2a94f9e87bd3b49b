"""Routers through the Neutron API: CRUD, the external gateway, interfaces by subnet and by
port, static routes, Neutron's errors, lists, quotas, tags and who may do what."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from cirrus.db.models import IPAllocation, Port, Router
from cirrus.network.routers import router_layout
from tests.api.network_helpers import NET, create, network, neutron_error, port, subnet


def router(api, caller, **body) -> dict:
    r = create(api, caller, "routers", "router", **{"name": "r1", **body})
    assert r.status_code == 201, r.text
    return r.json()["router"]


def external(api, admin, cidr: str = "172.24.4.0/24") -> tuple[dict, dict]:
    net = network(api, admin, name="public", **{"router:external": True})
    return net, subnet(api, admin, net["id"], cidr, enable_dhcp=False)


def add(api, caller, router_id: str, **body):
    return api.put(f"{NET}/routers/{router_id}/add_router_interface", json=body,
                   headers=caller.headers)


def remove(api, caller, router_id: str, **body):
    return api.put(f"{NET}/routers/{router_id}/remove_router_interface", json=body,
                   headers=caller.headers)


def ports_of(api, caller, router_id: str) -> list[dict]:
    return api.get(f"{NET}/ports", params={"device_id": router_id},
                   headers=caller.headers).json()["ports"]


def test_create_show_list_update_delete(api, member):
    made = router(api, member, description="d", admin_state_up=False)
    assert made["status"] == "ACTIVE" and made["admin_state_up"] is False
    assert made["external_gateway_info"] is None and made["routes"] == []
    assert made["project_id"] == made["tenant_id"] == member.project_id
    assert made["description"] == "d" and made["revision_number"] == 0
    shown = api.get(f"{NET}/routers/{made['id']}", headers=member.headers).json()["router"]
    assert shown == made
    listed = api.get(f"{NET}/routers", headers=member.headers).json()["routers"]
    assert [r["id"] for r in listed] == [made["id"]]
    r = api.put(f"{NET}/routers/{made['id']}", json={"router": {"name": "r2",
                                                                  "admin_state_up": True}},
                headers=member.headers)
    assert r.status_code == 200
    assert r.json()["router"]["name"] == "r2" and r.json()["router"]["revision_number"] == 1
    assert api.delete(f"{NET}/routers/{made['id']}", headers=member.headers).status_code == 204
    r = api.get(f"{NET}/routers/{made['id']}", headers=member.headers)
    assert r.status_code == 404 and neutron_error(r)["type"] == "RouterNotFound"


def test_gateway_on_an_external_network(api, admin, member):
    ext, ext_subnet = external(api, admin)
    made = router(api, member, external_gateway_info={"network_id": ext["id"]})
    info = made["external_gateway_info"]
    assert info["network_id"] == ext["id"] and info["enable_snat"] is True
    [fixed] = info["external_fixed_ips"]
    assert fixed["subnet_id"] == ext_subnet["id"] and fixed["ip_address"].startswith("172.24.4.")
    gw = api.get(f"{NET}/ports", params={"device_id": made["id"],
                                         "device_owner": "network:router_gateway"},
                 headers=admin.headers).json()["ports"]
    assert len(gw) == 1 and gw[0]["fixed_ips"] == [fixed] and gw[0]["project_id"] == ""
    # The member does not own the gateway port (Neutron makes it with no project).
    assert ports_of(api, member, made["id"]) == []
    # Clearing it removes the port.
    r = api.put(f"{NET}/routers/{made['id']}", json={"router": {"external_gateway_info": {}}},
                headers=member.headers)
    assert r.status_code == 200 and r.json()["router"]["external_gateway_info"] is None
    assert ports_of(api, admin, made["id"]) == []


def test_gateway_errors(api, cloud, admin, member):
    ext, ext_subnet = external(api, admin)
    made = router(api, member)
    internal = network(api, member)
    url = f"{NET}/routers/{made['id']}"
    r = api.put(url, json={"router": {"external_gateway_info": {"network_id": made["id"]}}},
                headers=member.headers)
    assert r.status_code == 404 and neutron_error(r)["type"] == "NetworkNotFound"
    r = api.put(url, json={"router": {"external_gateway_info": {"network_id": internal["id"]}}},
                headers=member.headers)
    assert r.status_code == 400
    assert neutron_error(r)["message"] == (f"Bad router request: Network {internal['id']} is "
                                           "not an external network.")
    # enable_snat and external_fixed_ips are admin-only.
    for extra in ({"enable_snat": False},
                  {"external_fixed_ips": [{"subnet_id": ext_subnet["id"]}]}):
        r = api.put(url, json={"router": {"external_gateway_info": {
            "network_id": ext["id"], **extra}}}, headers=member.headers)
        assert r.status_code == 403 and neutron_error(r)["type"] == "PolicyNotAuthorized"
    # An address already taken is a 409 and leaves no gateway port behind.
    taken = port(api, admin, ext["id"])["fixed_ips"][0]
    r = create(api, admin, "routers", "router", external_gateway_info={
        "network_id": ext["id"], "external_fixed_ips": [taken]})
    assert r.status_code == 409 and neutron_error(r)["type"] == "IpAddressAlreadyAllocated"
    with cloud.db.reader() as s:
        assert s.scalar(select(func.count()).select_from(Port).where(
            Port.device_owner == "network:router_gateway")) == 0
        assert s.scalar(select(func.count()).select_from(Router)) == 1


def test_admin_chooses_snat_and_gateway_address(api, admin, member):
    ext, ext_subnet = external(api, admin)
    made = router(api, admin, external_gateway_info={
        "network_id": ext["id"], "enable_snat": False,
        "external_fixed_ips": [{"subnet_id": ext_subnet["id"], "ip_address": "172.24.4.99"}]})
    info = made["external_gateway_info"]
    assert info["enable_snat"] is False
    assert info["external_fixed_ips"] == [{"subnet_id": ext_subnet["id"],
                                           "ip_address": "172.24.4.99"}]
    r = api.put(f"{NET}/routers/{made['id']}", json={"router": {"external_gateway_info": {
        "network_id": ext["id"], "enable_snat": True}}}, headers=admin.headers)
    assert r.json()["router"]["external_gateway_info"]["enable_snat"] is True
    assert r.json()["router"]["external_gateway_info"]["external_fixed_ips"][0][
        "ip_address"] == "172.24.4.99"


def test_interface_by_subnet_takes_the_gateway_address(api, member):
    net = network(api, member)
    sn = subnet(api, member, net["id"], "10.1.0.0/24")
    made = router(api, member)
    r = add(api, member, made["id"], subnet_id=sn["id"])
    assert r.status_code == 200, r.text
    info = r.json()
    assert info["id"] == made["id"] and info["subnet_id"] == sn["id"]
    assert info["subnet_ids"] == [sn["id"]] and info["network_id"] == net["id"]
    [iface] = ports_of(api, member, made["id"])
    assert iface["id"] == info["port_id"] and iface["device_owner"] == "network:router_interface"
    assert iface["fixed_ips"] == [{"subnet_id": sn["id"], "ip_address": "10.1.0.1"}]
    assert iface["status"] == "ACTIVE" and iface["project_id"] == member.project_id
    # Neither the router nor its subnet can go while the interface is there.
    r = api.delete(f"{NET}/routers/{made['id']}", headers=member.headers)
    assert r.status_code == 409 and neutron_error(r)["type"] == "RouterInUse"
    assert neutron_error(r)["message"] == f"Router {made['id']} still has ports"
    r = api.delete(f"{NET}/subnets/{sn['id']}", headers=member.headers)
    assert r.status_code == 409 and neutron_error(r)["type"] == "SubnetInUse"
    r = api.delete(f"{NET}/ports/{iface['id']}", headers=member.headers)
    assert r.status_code == 409 and neutron_error(r)["type"] == "L3PortInUse"
    r = remove(api, member, made["id"], subnet_id=sn["id"])
    assert r.status_code == 200 and r.json()["port_id"] == iface["id"]
    assert ports_of(api, member, made["id"]) == []
    assert api.delete(f"{NET}/routers/{made['id']}", headers=member.headers).status_code == 204
    assert api.delete(f"{NET}/subnets/{sn['id']}", headers=member.headers).status_code == 204


def test_interface_by_port(api, member):
    net = network(api, member)
    sn = subnet(api, member, net["id"], "10.2.0.0/24")
    made = router(api, member)
    mine = port(api, member, net["id"])
    r = add(api, member, made["id"], port_id=mine["id"])
    assert r.status_code == 200 and r.json()["port_id"] == mine["id"]
    assert r.json()["subnet_id"] == sn["id"]
    shown = api.get(f"{NET}/ports/{mine['id']}", headers=member.headers).json()["port"]
    assert shown["device_id"] == made["id"]
    assert shown["device_owner"] == "network:router_interface"
    # A port already in use cannot be added again.
    r = add(api, member, made["id"], port_id=mine["id"])
    assert r.status_code == 409 and neutron_error(r)["type"] == "PortInUse"
    # Removing it by port deletes the port, as Neutron does.
    assert remove(api, member, made["id"], port_id=mine["id"]).status_code == 200
    assert api.get(f"{NET}/ports/{mine['id']}", headers=member.headers).status_code == 404


def test_interface_errors(api, member, other_member):
    net = network(api, member)
    sn = subnet(api, member, net["id"], "10.3.0.0/24")
    other = network(api, member, name="other")
    overlapping = subnet(api, member, other["id"], "10.3.0.0/25")
    no_gateway = subnet(api, member, network(api, member, name="ng")["id"], "10.4.0.0/24",
                        gateway_ip=None)
    made = router(api, member)
    assert add(api, member, made["id"], subnet_id=sn["id"]).status_code == 200
    r = add(api, member, made["id"], subnet_id=overlapping["id"])
    assert r.status_code == 400 and "overlaps with cidr" in neutron_error(r)["message"]
    r = add(api, member, made["id"], subnet_id=sn["id"])
    assert r.status_code == 400 and "already has a port on subnet" in neutron_error(r)["message"]
    r = add(api, member, made["id"], subnet_id=no_gateway["id"])
    assert r.status_code == 400
    assert neutron_error(r)["message"] == ("Bad router request: Subnet for router interface "
                                           "must have a gateway IP.")
    assert add(api, member, made["id"]).status_code == 400
    assert add(api, member, made["id"], subnet_id=sn["id"], port_id="x").status_code == 400
    r = add(api, member, made["id"], subnet_id="nope")
    assert r.status_code == 404 and neutron_error(r)["type"] == "SubnetNotFound"
    r = add(api, member, made["id"], port_id="nope")
    assert r.status_code == 404 and neutron_error(r)["type"] == "PortNotFound"
    r = remove(api, member, made["id"], subnet_id=overlapping["id"])
    assert r.status_code == 404 and neutron_error(r)["type"] == "RouterInterfaceNotFoundForSubnet"
    r = remove(api, member, made["id"], port_id="nope")
    assert r.status_code == 404 and neutron_error(r)["type"] == "RouterInterfaceNotFound"
    # Another project's subnet is not found; nothing was added for it.
    theirs = subnet(api, other_member, network(api, other_member)["id"], "10.9.0.0/24")
    r = add(api, member, made["id"], subnet_id=theirs["id"])
    assert r.status_code == 404
    assert len(ports_of(api, member, made["id"])) == 1


def test_failed_interface_leaves_nothing(api, member):
    """The subnet's gateway address is taken by another port: 409, no port made."""
    net = network(api, member)
    sn = subnet(api, member, net["id"], "10.5.0.0/24")
    port(api, member, net["id"], fixed_ips=[{"ip_address": "10.5.0.1"}])
    made = router(api, member)
    r = add(api, member, made["id"], subnet_id=sn["id"])
    assert r.status_code == 409 and neutron_error(r)["type"] == "IpAddressAlreadyAllocated"
    assert ports_of(api, member, made["id"]) == []
    shown = api.get(f"{NET}/routers/{made['id']}", headers=member.headers).json()["router"]
    assert shown["revision_number"] == 0


def test_static_routes(api, member):
    net = network(api, member)
    sn = subnet(api, member, net["id"], "10.6.0.0/24")
    made = router(api, member)
    url = f"{NET}/routers/{made['id']}"
    route = {"destination": "192.168.0.0/16", "nexthop": "10.6.0.5"}
    r = api.put(url, json={"router": {"routes": [route]}}, headers=member.headers)
    assert r.status_code == 400 and neutron_error(r)["type"] == "InvalidRoutes"
    assert "the nexthop is not connected with router" in neutron_error(r)["message"]
    assert add(api, member, made["id"], subnet_id=sn["id"]).status_code == 200
    r = api.put(url, json={"router": {"routes": [route]}}, headers=member.headers)
    assert r.status_code == 200 and r.json()["router"]["routes"] == [route]
    bad = {"destination": "192.168.0.0/16", "nexthop": "10.6.0.1"}
    r = api.put(url, json={"router": {"routes": [bad]}}, headers=member.headers)
    assert r.status_code == 400 and "the nexthop is used by router" in neutron_error(r)["message"]
    r = api.put(url, json={"router": {"routes": [route, route]}}, headers=member.headers)
    assert r.status_code == 400
    too_many = [{"destination": f"192.168.{i}.0/24", "nexthop": "10.6.0.5"} for i in range(31)]
    r = api.put(url, json={"router": {"routes": too_many}}, headers=member.headers)
    assert r.status_code == 400 and neutron_error(r)["type"] == "RoutesExhausted"
    # The interface its nexthop needs cannot go.
    r = remove(api, member, made["id"], subnet_id=sn["id"])
    assert r.status_code == 409 and neutron_error(r)["type"] == "RouterInterfaceInUseByRoute"
    r = api.put(url, json={"router": {"routes": None}}, headers=member.headers)
    assert r.json()["router"]["routes"] == []
    assert remove(api, member, made["id"], subnet_id=sn["id"]).status_code == 200


def test_bad_bodies(api, member):
    for body in ({"routes": []}, {"distributed": True}, {"external_gateway_info": "x"},
                 {"name": 5}, {"bogus": 1}):
        r = create(api, member, "routers", "router", **body)
        assert r.status_code == 400, body
        neutron_error(r)
    made = router(api, member)
    r = api.put(f"{NET}/routers/{made['id']}", json={"router": {"status": "DOWN"}},
                headers=member.headers)
    assert r.status_code == 400
    assert neutron_error(r)["message"] == "Cannot update read-only attribute status"


def test_list_filters_sorting_paging_fields(api, member):
    ids = [router(api, member, name=name)["id"] for name in ("b", "a", "c")]
    r = api.get(f"{NET}/routers", params={"name": "a"}, headers=member.headers)
    assert [x["id"] for x in r.json()["routers"]] == [ids[1]]
    r = api.get(f"{NET}/routers", params={"sort_key": "name", "sort_dir": "desc",
                                          "limit": 2, "fields": ["id", "name"]},
                headers=member.headers)
    body = r.json()
    assert [x["name"] for x in body["routers"]] == ["c", "b"]
    assert set(body["routers"][0]) == {"id", "name"} and body["routers_links"]
    r = api.get(f"{NET}/routers", params={"bogus": "1"}, headers=member.headers)
    assert r.status_code == 400
    r = api.get(f"{NET}/routers", params={"sort_key": "routes", "sort_dir": "asc"},
                headers=member.headers)
    assert r.status_code == 400


def test_quota(api, admin, member):
    r = api.put(f"{NET}/quotas/{member.project_id}", json={"quota": {"router": 1}},
                headers=admin.headers)
    assert r.status_code == 200
    router(api, member)
    r = create(api, member, "routers", "router", name="second")
    assert r.status_code == 409
    assert neutron_error(r)["message"] == "Quota exceeded for resources: ['router']."
    details = api.get(f"{NET}/quotas/{member.project_id}/details", headers=member.headers)
    assert details.json()["quota"]["router"] == {"used": 1, "limit": 1, "reserved": 0}
    default = api.get(f"{NET}/quotas/{member.project_id}/default", headers=member.headers)
    assert default.json()["quota"]["router"] == 10


def test_tags(api, member, reader):
    made = router(api, member)
    url = f"{NET}/routers/{made['id']}/tags"
    assert api.put(url, json={"tags": ["a", "b"]}, headers=member.headers).status_code == 200
    assert api.get(url, headers=reader.headers).json()["tags"] == ["a", "b"]
    assert api.put(url, json={"tags": ["x"]}, headers=reader.headers).status_code == 403
    r = api.get(f"{NET}/routers", params={"tags": "a"}, headers=member.headers)
    assert [x["id"] for x in r.json()["routers"]] == [made["id"]]


@pytest.mark.parametrize("who, sees, writes", [
    ("admin", 200, 200), ("member", 200, 200), ("reader", 200, 403), ("other_member", 404, 404)])
def test_authorisation(api, request, member, who, sees, writes):
    caller = request.getfixturevalue(who)
    net = network(api, member)
    sn = subnet(api, member, net["id"], "10.7.0.0/24")
    made = router(api, member)
    url = f"{NET}/routers/{made['id']}"
    assert api.get(url, headers=caller.headers).status_code == sees
    listed = api.get(f"{NET}/routers", headers=caller.headers).json()["routers"]
    assert (made["id"] in [x["id"] for x in listed]) == (sees == 200)
    r = api.put(url, json={"router": {"name": "n"}}, headers=caller.headers)
    assert r.status_code == writes
    r = add(api, caller, made["id"], subnet_id=sn["id"])
    assert r.status_code == writes
    if writes == 200:
        assert remove(api, caller, made["id"], subnet_id=sn["id"]).status_code == 200
    r = api.delete(url, headers=caller.headers)
    assert r.status_code == (204 if writes == 200 else writes)
    # A reader or another project cannot create one for the project either.
    r = create(api, caller, "routers", "router", name="x", project_id=member.project_id)
    assert r.status_code == {"admin": 201, "member": 201, "reader": 403,
                             "other_member": 400}[who]


def test_layout_for_the_dataplane(api, cloud, admin, member):
    ext, _ = external(api, admin)
    net = network(api, member)
    sn = subnet(api, member, net["id"], "10.8.0.0/24")
    made = router(api, member, external_gateway_info={"network_id": ext["id"]})
    add(api, member, made["id"], subnet_id=sn["id"])
    with cloud.db.reader() as s:
        layout = router_layout(s, made["id"])
        gateway_ips = s.scalars(select(IPAllocation.ip_address).where(
            IPAllocation.network_id == ext["id"])).all()
    assert layout.enable_snat is True and layout.floating_ips == ()
    [iface] = layout.interfaces
    assert iface.network_id == net["id"]
    assert iface.addresses == ((sn["id"], "10.8.0.0/24", "10.8.0.1"),)
    assert layout.gateway is not None and layout.gateway.network_id == ext["id"]
    assert [a[2] for a in layout.gateway.addresses] == list(gateway_ips)


def test_bulk_create_is_all_or_nothing(api, cloud, admin, member):
    ext, _ = external(api, admin)
    r = api.post(f"{NET}/routers", headers=member.headers, json={"routers": [
        {"name": "a", "external_gateway_info": {"network_id": ext["id"]}},
        {"name": "b", "external_gateway_info": {"network_id": "nope"}}]})
    assert r.status_code == 404 and neutron_error(r)["type"] == "NetworkNotFound"
    with cloud.db.reader() as s:
        assert s.scalar(select(func.count()).select_from(Router)) == 0
        assert s.scalar(select(func.count()).select_from(Port)) == 0
    r = api.post(f"{NET}/routers", headers=member.headers,
                 json={"routers": [{"name": "a"}, {"name": "b"}]})
    assert r.status_code == 201 and [x["name"] for x in r.json()["routers"]] == ["a", "b"]
