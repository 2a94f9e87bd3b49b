"""The all-in-one's default external network (issue 14, point 5): made once, as an
operator would through the API, and left alone afterwards."""

from __future__ import annotations

from cirrus.network.external import ensure_default_external_network
from tests.api.network_helpers import NET


def test_made_once_external_flat_without_dhcp_and_usable_by_projects(cloud, api, admin,
                                                                     member):
    made = cloud.db.run(lambda s: ensure_default_external_network(s, cloud.settings))
    assert made is not None
    again = cloud.db.run(lambda s: ensure_default_external_network(s, cloud.settings))
    assert again is not None and again.id == made.id
    [net] = api.get(f"{NET}/networks?name=public", headers=admin.headers).json()["networks"]
    assert net["router:external"] is True and net["shared"] is False
    assert net["provider:network_type"] == "flat"
    assert net["provider:physical_network"] == "public"
    assert net["project_id"] == admin.project_id
    [sub] = api.get(f"{NET}/subnets?network_id={net['id']}",
                    headers=admin.headers).json()["subnets"]
    assert (sub["cidr"], sub["gateway_ip"], sub["enable_dhcp"]) == (
        "172.24.4.0/24", "172.24.4.1", False)
    # A project sees it and takes a router gateway and a floating IP on it.
    seen = api.get(f"{NET}/networks?router:external=true", headers=member.headers).json()
    assert [n["id"] for n in seen["networks"]] == [net["id"]]
    r = api.post(f"{NET}/routers", json={"router": {
        "name": "r", "external_gateway_info": {"network_id": net["id"]}}},
        headers=member.headers)
    assert r.status_code == 201, r.text
    r = api.post(f"{NET}/floatingips", json={"floatingip": {
        "floating_network_id": net["id"]}}, headers=member.headers)
    assert r.status_code == 201, r.text
    assert r.json()["floatingip"]["floating_ip_address"].startswith("172.24.4.")


def test_none_when_turned_off(cloud):
    cloud.settings.all_in_one_external_network = ""
    assert cloud.db.run(lambda s: ensure_default_external_network(s, cloud.settings)) is None
