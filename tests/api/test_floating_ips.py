"""Floating IPs through the Neutron API: allocation from an external network, association
(and Neutron's errors when the port cannot be reached), disassociation, the port going
away, filters, quotas, tags and who may do what."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from cirrus.db.models import FloatingIP, IPAllocation, Port
from cirrus.network.routers import router_layout
from tests.api.network_helpers import NET, create, network, neutron_error, port, subnet


@pytest.fixture
def ext(api, admin) -> dict:
    net = network(api, admin, name="public", **{"router:external": True})
    net["subnet"] = subnet(api, admin, net["id"], "172.24.4.0/24", enable_dhcp=False)
    return net


@pytest.fixture
def behind(api, member, ext) -> dict:
    """The member's network, routed to `ext`: a router with its gateway there and an
    interface on the network's subnet; plus a port to associate."""
    net = network(api, member)
    sn = subnet(api, member, net["id"], "10.0.0.0/24")
    r = create(api, member, "routers", "router", name="r",
               external_gateway_info={"network_id": ext["id"]})
    router = r.json()["router"]
    api.put(f"{NET}/routers/{router['id']}/add_router_interface", json={"subnet_id": sn["id"]},
            headers=member.headers)
    return {"network": net, "subnet": sn, "router": router, "port": port(api, member, net["id"])}


def fip(api, caller, network_id: str, **body) -> dict:
    r = create(api, caller, "floatingips", "floatingip", floating_network_id=network_id, **body)
    assert r.status_code == 201, r.text
    return r.json()["floatingip"]


def update(api, caller, fip_id: str, **body):
    return api.put(f"{NET}/floatingips/{fip_id}", json={"floatingip": body},
                   headers=caller.headers)


def test_create_show_list_delete(api, cloud, member, ext):
    made = fip(api, member, ext["id"], description="d")
    assert made["floating_ip_address"].startswith("172.24.4.")
    assert made["status"] == "DOWN" and made["port_id"] is None
    assert made["router_id"] is None and made["fixed_ip_address"] is None
    assert made["project_id"] == made["tenant_id"] == member.project_id
    assert made["description"] == "d" and made["floating_network_id"] == ext["id"]
    shown = api.get(f"{NET}/floatingips/{made['id']}", headers=member.headers).json()
    assert shown["floatingip"] == made
    listed = api.get(f"{NET}/floatingips", headers=member.headers).json()["floatingips"]
    assert [f["id"] for f in listed] == [made["id"]]
    with cloud.db.reader() as s:
        holder = s.scalar(select(Port).where(Port.device_id == made["id"]))
        assert holder is not None and holder.device_owner == "network:floatingip"
        assert holder.project_id == ""
    assert api.delete(f"{NET}/floatingips/{made['id']}", headers=member.headers).status_code == 204
    r = api.get(f"{NET}/floatingips/{made['id']}", headers=member.headers)
    assert r.status_code == 404 and neutron_error(r)["type"] == "FloatingIPNotFound"
    with cloud.db.reader() as s:
        assert s.scalar(select(func.count()).select_from(Port).where(
            Port.device_owner == "network:floatingip")) == 0
        assert s.scalar(select(func.count()).select_from(IPAllocation).where(
            IPAllocation.network_id == ext["id"])) == 0


def test_associate_disassociate(api, cloud, member, ext, behind):
    target = behind["port"]
    made = fip(api, member, ext["id"], port_id=target["id"])
    assert made["port_id"] == target["id"] and made["status"] == "ACTIVE"
    assert made["fixed_ip_address"] == target["fixed_ips"][0]["ip_address"]
    assert made["router_id"] == behind["router"]["id"]
    with cloud.db.reader() as s:
        layout = router_layout(s, behind["router"]["id"])
    [translated] = layout.floating_ips
    assert translated.floating_ip_address == made["floating_ip_address"]
    assert translated.fixed_port_id == target["id"]
    # Moving it to another port, then off.
    other = port(api, member, behind["network"]["id"])
    r = update(api, member, made["id"], port_id=other["id"])
    assert r.status_code == 200 and r.json()["floatingip"]["port_id"] == other["id"]
    r = update(api, member, made["id"], port_id=None)
    body = r.json()["floatingip"]
    assert (body["port_id"], body["fixed_ip_address"], body["router_id"], body["status"]) == (
        None, None, None, "DOWN")


def test_fixed_ip_address_choice(api, member, ext, behind):
    two = port(api, member, behind["network"]["id"],
               fixed_ips=[{"ip_address": "10.0.0.50"}, {"ip_address": "10.0.0.51"}])
    r = create(api, member, "floatingips", "floatingip", floating_network_id=ext["id"],
               port_id=two["id"])
    assert r.status_code == 400 and "multiple fixed IPv4 addresses" in neutron_error(r)["message"]
    made = fip(api, member, ext["id"], port_id=two["id"], fixed_ip_address="10.0.0.50")
    assert made["fixed_ip_address"] == "10.0.0.50"
    r = update(api, member, made["id"], port_id=two["id"], fixed_ip_address="10.0.0.51")
    assert r.json()["floatingip"]["fixed_ip_address"] == "10.0.0.51"
    r = update(api, member, made["id"], port_id=two["id"], fixed_ip_address="10.0.0.99")
    assert r.status_code == 400
    assert neutron_error(r)["message"] == (f"Bad floatingip request: Port {two['id']} does not "
                                           "have fixed ip 10.0.0.99.")


def test_one_floating_ip_per_fixed_address(api, member, ext, behind):
    fip(api, member, ext["id"], port_id=behind["port"]["id"])
    second = fip(api, member, ext["id"])
    r = update(api, member, second["id"], port_id=behind["port"]["id"])
    assert r.status_code == 409 and neutron_error(r)["type"] == "FloatingIPPortAlreadyAssociated"
    # A create that cannot associate keeps nothing: no floating IP, no address.
    r = create(api, member, "floatingips", "floatingip", floating_network_id=ext["id"],
               port_id=behind["port"]["id"])
    assert r.status_code == 409
    listed = api.get(f"{NET}/floatingips", headers=member.headers).json()["floatingips"]
    assert len(listed) == 2


def test_unreachable_port_is_404(api, cloud, member, ext):
    """A port whose subnet no router connects to the external network (Tempest's
    negative tests): Neutron's ExternalGatewayForFloatingIPNotFound, nothing kept."""
    net = network(api, member)
    sn = subnet(api, member, net["id"], "10.0.0.0/24")
    router = create(api, member, "routers", "router", name="no-gw").json()["router"]
    api.put(f"{NET}/routers/{router['id']}/add_router_interface", json={"subnet_id": sn["id"]},
            headers=member.headers)
    target = port(api, member, net["id"])
    r = create(api, member, "floatingips", "floatingip", floating_network_id=ext["id"],
               port_id=target["id"])
    assert r.status_code == 404
    error = neutron_error(r)
    assert error["type"] == "ExternalGatewayForFloatingIPNotFound"
    assert error["message"] == (f"External network {ext['id']} is not reachable from subnet "
                                f"{sn['id']}.  Therefore, cannot associate Port {target['id']} "
                                "with a Floating IP.")
    with cloud.db.reader() as s:
        assert s.scalar(select(func.count()).select_from(FloatingIP)) == 0
        assert s.scalar(select(func.count()).select_from(IPAllocation).where(
            IPAllocation.network_id == ext["id"])) == 0
    made = fip(api, member, ext["id"])
    r = update(api, member, made["id"], port_id=target["id"])
    assert r.status_code == 404


def test_members_do_not_see_external_subnets(api, admin, member, ext):
    """Neutron's policy: an external network is visible, its subnets are not (unless it is
    shared); floating IPs and gateways are how projects use them."""
    r = api.get(f"{NET}/subnets", params={"network_id": ext["id"]}, headers=member.headers)
    assert r.json()["subnets"] == []
    r = api.get(f"{NET}/subnets/{ext['subnet']['id']}", headers=member.headers)
    assert r.status_code == 404
    r = api.get(f"{NET}/subnets", params={"network_id": ext["id"]}, headers=admin.headers)
    assert [sn["id"] for sn in r.json()["subnets"]] == [ext["subnet"]["id"]]


def test_not_an_external_network(api, member, ext):
    net = network(api, member)
    subnet(api, member, net["id"])
    r = create(api, member, "floatingips", "floatingip", floating_network_id=net["id"])
    assert r.status_code == 400
    assert neutron_error(r)["message"] == (f"Bad floatingip request: Network {net['id']} is "
                                           "not a valid external network.")
    r = create(api, member, "floatingips", "floatingip", floating_network_id="nope")
    assert r.status_code == 404 and neutron_error(r)["type"] == "NetworkNotFound"
    r = create(api, member, "floatingips", "floatingip")
    assert r.status_code == 400


def test_floating_ip_address_is_admin_only(api, admin, member, ext):
    r = create(api, member, "floatingips", "floatingip", floating_network_id=ext["id"],
               floating_ip_address="172.24.4.77")
    assert r.status_code == 403 and neutron_error(r)["type"] == "PolicyNotAuthorized"
    made = fip(api, admin, ext["id"], floating_ip_address="172.24.4.77",
               project_id=member.project_id)
    assert made["floating_ip_address"] == "172.24.4.77"
    assert made["project_id"] == member.project_id
    r = create(api, admin, "floatingips", "floatingip", floating_network_id=ext["id"],
               floating_ip_address="172.24.4.77")
    assert r.status_code == 409 and neutron_error(r)["type"] == "IpAddressAlreadyAllocated"
    # subnet_id is anyone's to choose.
    assert fip(api, member, ext["id"], subnet_id=ext["subnet"]["id"])["id"]


def test_deleting_the_port_disassociates(api, member, ext, behind):
    made = fip(api, member, ext["id"], port_id=behind["port"]["id"])
    assert api.delete(f"{NET}/ports/{behind['port']['id']}",
                      headers=member.headers).status_code == 204
    shown = api.get(f"{NET}/floatingips/{made['id']}", headers=member.headers).json()
    assert shown["floatingip"]["port_id"] is None and shown["floatingip"]["status"] == "DOWN"


def test_router_keeps_what_floating_ips_need(api, member, ext, behind):
    fip(api, member, ext["id"], port_id=behind["port"]["id"])
    router_url = f"{NET}/routers/{behind['router']['id']}"
    r = api.put(f"{router_url}/remove_router_interface", json={"subnet_id": behind["subnet"]["id"]},
                headers=member.headers)
    assert r.status_code == 409 and neutron_error(r)["type"] == "RouterInterfaceInUseByFloatingIP"
    r = api.put(router_url, json={"router": {"external_gateway_info": {}}},
                headers=member.headers)
    assert r.status_code == 409
    assert neutron_error(r)["type"] == "RouterExternalGatewayInUseByFloatingIp"


def test_external_network_delete_takes_its_floating_ips(api, admin, member, ext):
    made = fip(api, member, ext["id"])
    assert api.delete(f"{NET}/networks/{ext['id']}", headers=admin.headers).status_code == 204
    assert api.get(f"{NET}/floatingips/{made['id']}", headers=member.headers).status_code == 404


def test_external_network_with_a_router_gateway_is_in_use(api, admin, member, ext, behind):
    r = api.delete(f"{NET}/networks/{ext['id']}", headers=admin.headers)
    assert r.status_code == 409 and neutron_error(r)["type"] == "NetworkInUse"


def test_filters(api, member, ext, behind):
    associated = fip(api, member, ext["id"], port_id=behind["port"]["id"])
    free = fip(api, member, ext["id"])

    def ids(**params) -> list[str]:
        r = api.get(f"{NET}/floatingips", params=params, headers=member.headers)
        assert r.status_code == 200, r.text
        return [f["id"] for f in r.json()["floatingips"]]

    assert ids(port_id=behind["port"]["id"]) == [associated["id"]]
    assert ids(router_id=behind["router"]["id"]) == [associated["id"]]
    assert ids(status="DOWN") == [free["id"]]
    assert ids(fixed_ip_address=associated["fixed_ip_address"]) == [associated["id"]]
    assert ids(floating_ip_address=free["floating_ip_address"]) == [free["id"]]
    assert set(ids(floating_network_id=ext["id"])) == {associated["id"], free["id"]}
    assert ids(description="none") == []
    r = api.get(f"{NET}/floatingips", params={"bogus": "1"}, headers=member.headers)
    assert r.status_code == 400


def test_quota(api, admin, member, ext):
    r = api.put(f"{NET}/quotas/{member.project_id}", json={"quota": {"floatingip": 1}},
                headers=admin.headers)
    assert r.status_code == 200
    fip(api, member, ext["id"])
    r = create(api, member, "floatingips", "floatingip", floating_network_id=ext["id"])
    assert r.status_code == 409
    assert neutron_error(r)["message"] == "Quota exceeded for resources: ['floatingip']."
    details = api.get(f"{NET}/quotas/{member.project_id}/details", headers=member.headers)
    assert details.json()["quota"]["floatingip"] == {"used": 1, "limit": 1, "reserved": 0}


def test_tags(api, member, ext):
    made = fip(api, member, ext["id"], tags=["a"])
    assert made["tags"] == ["a"]
    url = f"{NET}/floatingips/{made['id']}/tags/b"
    assert api.put(url, headers=member.headers).status_code == 201
    r = api.get(f"{NET}/floatingips", params={"tags": "a,b"}, headers=member.headers)
    assert [f["id"] for f in r.json()["floatingips"]] == [made["id"]]


@pytest.mark.parametrize("who, sees, writes", [
    ("admin", 200, 200), ("member", 200, 200), ("reader", 200, 403), ("other_member", 404, 404)])
def test_authorisation(api, request, member, ext, behind, who, sees, writes):
    caller = request.getfixturevalue(who)
    made = fip(api, member, ext["id"])
    url = f"{NET}/floatingips/{made['id']}"
    assert api.get(url, headers=caller.headers).status_code == sees
    listed = api.get(f"{NET}/floatingips", headers=caller.headers).json()["floatingips"]
    assert (made["id"] in [f["id"] for f in listed]) == (sees == 200)
    r = update(api, caller, made["id"], port_id=behind["port"]["id"])
    assert r.status_code == writes
    r = update(api, caller, made["id"], description="x")
    assert r.status_code == writes
    r = api.delete(url, headers=caller.headers)
    assert r.status_code == (204 if writes == 200 else writes)
    r = create(api, caller, "floatingips", "floatingip", floating_network_id=ext["id"])
    assert r.status_code == (403 if who == "reader" else 201)


def test_another_projects_port_cannot_be_associated(api, member, other_member, ext, behind):
    made = fip(api, other_member, ext["id"])
    r = update(api, other_member, made["id"], port_id=behind["port"]["id"])
    assert r.status_code == 404 and neutron_error(r)["type"] == "PortNotFound"


def test_concurrent_associations_give_a_fixed_address_one_floating_ip(api, cloud, member, ext,
                                                                      behind):
    """Eight floating IPs associated with one port at once: exactly one wins, the others get
    FloatingIPPortAlreadyAssociated and stay unassociated (a unique key decides)."""
    from cirrus.context import RequestContext
    from cirrus.errors import Conflict
    from cirrus.network import floating_ips
    from tests.threads import run_threads

    fips = [fip(api, member, ext["id"])["id"] for _ in range(8)]
    ctx = RequestContext(project_id=member.project_id, roles=["member", "reader"])
    outcomes: list[str] = []

    def associate(fip_id: str) -> None:
        try:
            cloud.db.run(lambda s: floating_ips.update_floatingip(
                s, ctx, fip_id, {"port_id": behind["port"]["id"]}))
            outcomes.append("ok")
        except Conflict as exc:
            assert exc.error_type == "FloatingIPPortAlreadyAssociated"
            outcomes.append("conflict")

    run_threads([lambda f=f: associate(f) for f in fips])
    assert sorted(outcomes) == ["conflict"] * 7 + ["ok"]
    with cloud.db.reader() as s:
        associated = s.scalars(select(FloatingIP.id).where(
            FloatingIP.fixed_port_id == behind["port"]["id"])).all()
    assert len(associated) == 1 and associated[0] in fips
