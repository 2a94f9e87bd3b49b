"""Networks through the Neutron API: version documents, extensions, CRUD, policy, list
queries (filters, fields, sorting, pagination) and tags."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from cirrus.db.models import Network, Subnet
from tests.api.network_helpers import NET, create, network, neutron_error, port, subnet

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def count_networks(cloud) -> int:
    with cloud.db.reader() as s:
        return s.scalar(select(func.count()).select_from(Network))


# ---------------------------------------------------------------- versions and extensions


def test_version_document_needs_no_token_and_points_at_v2(api):
    for path in ("/network", "/network/"):
        r = api.get(path)
        assert r.status_code == 200
        (version,) = r.json()["versions"]
        assert version["id"] == "v2.0" and version["status"] == "CURRENT"
        assert version["links"][0]["href"] == "http://testserver/network/v2.0/"


def test_resource_index_lists_the_collections_and_needs_a_token(api, member):
    r = api.get(f"{NET}/", headers=member.headers)
    assert r.status_code == 200
    collections = {res["collection"] for res in r.json()["resources"]}
    assert {"networks", "subnets", "ports", "security-groups"} <= collections
    r = api.get(f"{NET}/networks")
    assert r.status_code == 401
    assert neutron_error(r)["type"] == "HTTPUnauthorized"


def test_catalog_has_the_network_service(api, member):
    r = api.post("/identity/v3/auth/tokens", json={"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "alice", "domain": {"id": "default"}, "password": "pw-alice"}}},
        "scope": {"project": {"id": member.project_id}}}})
    assert r.status_code == 201, r.text
    services = {svc["type"]: svc for svc in r.json()["token"]["catalog"]}
    assert services["network"]["name"] == "neutron"
    assert {ep["url"] for ep in services["network"]["endpoints"]} == {"http://testserver/network"}


def test_extensions_list_what_is_implemented_and_nothing_else(api, member):
    r = api.get(f"{NET}/extensions", headers=member.headers)
    aliases = {ext["alias"] for ext in r.json()["extensions"]}
    assert {"external-net", "provider", "quotas", "security-group", "binding", "port-security",
            "auto-allocated-topology", "standard-attr-revisions", "net-mtu", "router",
            "extraroute", "ext-gw-mode", "allowed-address-pairs", "subnet_allocation",
            "default-subnetpools"} <= aliases
    assert not aliases & {"dvr", "l3-ha", "l3-flavors", "dns-integration",
                          "qos", "extra_dhcp_opt", "address-scope", "subnetpool-prefix-ops"}
    r = api.get(f"{NET}/extensions/binding", headers=member.headers)
    assert r.json()["extension"]["name"] == "Port Binding"
    r = api.get(f"{NET}/extensions/dvr", headers=member.headers)
    assert r.status_code == 404
    assert neutron_error(r)["type"] == "HTTPNotFound"


def test_unknown_path_and_method_answer_in_neutron_shape(api, member):
    r = api.get(f"{NET}/trunks", headers=member.headers)
    assert r.status_code == 404
    neutron_error(r)
    r = api.patch(f"{NET}/networks", headers=member.headers, json={})
    assert r.status_code == 405
    assert neutron_error(r)["type"] == "HTTPMethodNotAllowed"


# ---------------------------------------------------------------- create and show


def test_create_shows_every_neutron_field(api, cloud, member):
    net = network(api, member, name="n1", description="d")
    assert set(net) == {
        "id", "name", "status", "admin_state_up", "shared", "router:external", "is_default",
        "mtu", "port_security_enabled", "subnets", "availability_zone_hints",
        "availability_zones", "ipv4_address_scope", "ipv6_address_scope", "tags", "tenant_id",
        "project_id", "description", "created_at", "updated_at", "revision_number"}
    assert net["tenant_id"] == net["project_id"] == member.project_id
    assert (net["name"], net["description"], net["status"]) == ("n1", "d", "ACTIVE")
    assert net["mtu"] == cloud.settings.default_network_mtu - 50  # vxlan (a tenant network)
    assert net["admin_state_up"] is True and net["shared"] is False
    assert net["router:external"] is False and net["subnets"] == []
    assert TIMESTAMP.match(net["created_at"]) and TIMESTAMP.match(net["updated_at"])
    r = api.get(f"{NET}/networks/{net['id']}", headers=member.headers)
    assert r.json()["network"] == net


def test_show_with_fields_returns_only_those(api, member):
    net = network(api, member)
    r = api.get(f"{NET}/networks/{net['id']}?fields=id&fields=mtu", headers=member.headers)
    assert r.json() == {"network": {"id": net["id"], "mtu": net["mtu"]}}


def test_network_lists_its_subnets(api, member):
    net = network(api, member)
    sub = subnet(api, member, net["id"])
    r = api.get(f"{NET}/networks/{net['id']}", headers=member.headers)
    assert r.json()["network"]["subnets"] == [sub["id"]]
    assert r.json()["network"]["revision_number"] > net["revision_number"]


def test_member_cannot_set_admin_only_attributes(api, cloud, member):
    for attribute, value in (("shared", True), ("router:external", True), ("is_default", True),
                             ("provider:network_type", "vlan"),
                             ("provider:segmentation_id", 7)):
        r = create(api, member, "networks", "network", **{attribute: value})
        assert r.status_code == 403, (attribute, r.text)
        error = neutron_error(r)
        assert error["type"] == "PolicyNotAuthorized"
        assert error["message"] == f"rule:create_network:{attribute} is disallowed by policy"
    assert count_networks(cloud) == 0
    # The default value is anyone's to send.
    assert network(api, member, shared=False)["shared"] is False


def test_provider_attributes_are_admin_only_in_responses(api, cloud, admin, member):
    cloud.settings.network_vlan_ranges = ["physnet1"]
    net = network(api, admin, shared=True, **{"provider:network_type": "vlan",
                                              "provider:physical_network": "physnet1",
                                              "provider:segmentation_id": 101})
    assert (net["provider:network_type"], net["provider:segmentation_id"]) == ("vlan", 101)
    seen = api.get(f"{NET}/networks/{net['id']}", headers=member.headers).json()["network"]
    assert not [key for key in seen if key.startswith("provider:")]
    r = api.get(f"{NET}/networks?provider:network_type=vlan", headers=member.headers)
    assert r.status_code == 400


def test_mtu_is_settable_within_limits(api, member):
    # A member's network is vxlan: the physical MTU (1500) less the overlay's 50 bytes.
    assert network(api, member)["mtu"] == 1450
    assert network(api, member, mtu=1400)["mtu"] == 1400
    assert network(api, member, mtu=1450)["mtu"] == 1450
    r = create(api, member, "networks", "network", mtu=1451)
    assert r.status_code == 400
    assert "Requested MTU is too big, maximum is 1450" in neutron_error(r)["message"]
    r = create(api, member, "networks", "network", mtu=9001)
    assert r.status_code == 400
    r = create(api, member, "networks", "network", mtu=10)
    assert r.status_code == 400


def test_member_names_only_its_own_project_admin_any(api, admin, member, other_member):
    r = create(api, member, "networks", "network", project_id=other_member.project_id)
    assert r.status_code == 400
    assert "Specifying 'project_id' other than the authenticated project" in neutron_error(r)["message"]
    r = create(api, member, "networks", "network", project_id=member.project_id,
               tenant_id=other_member.project_id)
    assert r.status_code == 400
    net = network(api, admin, project_id=other_member.project_id)
    assert net["project_id"] == other_member.project_id


def test_bad_bodies_are_400_in_neutron_shape_and_create_nothing(api, cloud, member):
    cases = [
        (b"not json", "Malformed request body"),
        (b'{"net": {}}', "Unable to find 'network' in request body"),
        (b'{"network": []}', "must be a JSON object"),
        (b'{"network": {"color": "red"}}', "Unrecognized attribute(s) 'color'"),
        (b'{"network": {"admin_state_up": "maybe"}}', "Invalid input for admin_state_up"),
        (b'{"network": {"name": 5}}', "Invalid input for name"),
        (b'{"network": {"mtu": "big"}}', "Invalid input for mtu"),
    ]
    for raw, words in cases:
        r = api.post(f"{NET}/networks", content=raw, headers=member.headers)
        assert r.status_code == 400, (raw, r.text)
        assert words in neutron_error(r)["message"], (raw, r.text)
    assert count_networks(cloud) == 0


def test_reader_reads_but_cannot_write(api, member, reader):
    net = network(api, member)
    assert api.get(f"{NET}/networks/{net['id']}", headers=reader.headers).status_code == 200
    r = create(api, reader, "networks", "network")
    assert r.status_code == 403
    assert neutron_error(r)["type"] == "PolicyNotAuthorized"
    r = api.put(f"{NET}/networks/{net['id']}", json={"network": {"name": "x"}},
                headers=reader.headers)
    assert r.status_code == 403
    assert api.delete(f"{NET}/networks/{net['id']}", headers=reader.headers).status_code == 403


# ---------------------------------------------------------------- visibility


def test_projects_see_their_own_shared_and_external_networks_only(api, admin, member, other_member):
    private = network(api, member, name="private")
    shared = network(api, admin, name="shared", shared=True)
    external = network(api, admin, name="external", **{"router:external": True})
    admins_own = network(api, admin, name="admins")
    names = {n["name"] for n in api.get(f"{NET}/networks", headers=other_member.headers)
             .json()["networks"]}
    assert names == {"shared", "external"}
    r = api.get(f"{NET}/networks/{private['id']}", headers=other_member.headers)
    assert r.status_code == 404
    assert neutron_error(r) == {"type": "NetworkNotFound", "detail": "",
                                "message": f"Network {private['id']} could not be found."}
    all_names = {n["name"] for n in api.get(f"{NET}/networks", headers=admin.headers)
                 .json()["networks"]}
    assert {"private", "shared", "external", "admins"} <= all_names
    assert shared["id"] and external["id"] and admins_own["id"]


def test_others_cannot_change_or_delete_a_shared_network_they_see(api, admin, other_member):
    shared = network(api, admin, shared=True)
    r = api.put(f"{NET}/networks/{shared['id']}", json={"network": {"name": "mine"}},
                headers=other_member.headers)
    assert r.status_code == 403
    assert neutron_error(r)["message"] == "rule:update_network is disallowed by policy"
    assert api.delete(f"{NET}/networks/{shared['id']}",
                      headers=other_member.headers).status_code == 403


def test_changing_an_invisible_network_is_404(api, member, other_member):
    net = network(api, member)
    r = api.put(f"{NET}/networks/{net['id']}", json={"network": {"name": "x"}},
                headers=other_member.headers)
    assert r.status_code == 404
    assert api.delete(f"{NET}/networks/{net['id']}", headers=other_member.headers).status_code == 404


# ---------------------------------------------------------------- update


def test_update_changes_attributes_and_revision(api, member):
    net = network(api, member)
    r = api.put(f"{NET}/networks/{net['id']}", json={"network": {
        "name": "renamed", "description": "x", "admin_state_up": False, "mtu": 1450}},
        headers=member.headers)
    assert r.status_code == 200, r.text
    updated = r.json()["network"]
    assert (updated["name"], updated["admin_state_up"], updated["mtu"]) == ("renamed", False, 1450)
    assert updated["revision_number"] == net["revision_number"] + 1


def test_update_refuses_read_only_and_unknown_attributes(api, member):
    net = network(api, member)
    for body, words in (({"id": "x"}, "Cannot update read-only attribute id"),
                        ({"tenant_id": "x"}, "Cannot update read-only attribute tenant_id"),
                        ({"colour": 1}, "Unrecognized attribute(s) 'colour'")):
        r = api.put(f"{NET}/networks/{net['id']}", json={"network": body}, headers=member.headers)
        assert r.status_code == 400
        assert neutron_error(r)["message"] == words
    assert api.get(f"{NET}/networks/{net['id']}", headers=member.headers).json()["network"] == net


def test_admin_shares_and_unsharing_is_refused_while_others_use_it(api, admin, member, other_member):
    net = network(api, member)
    subnet(api, member, net["id"])
    r = api.put(f"{NET}/networks/{net['id']}", json={"network": {"shared": True}},
                headers=member.headers)
    assert r.status_code == 403
    r = api.put(f"{NET}/networks/{net['id']}", json={"network": {"shared": True}},
                headers=admin.headers)
    assert r.json()["network"]["shared"] is True
    port(api, other_member, net["id"])
    r = api.put(f"{NET}/networks/{net['id']}", json={"network": {"shared": False}},
                headers=admin.headers)
    assert r.status_code == 409
    assert neutron_error(r)["type"] == "InvalidSharedSetting"


def test_is_default_needs_a_shared_or_external_network_and_is_unique(api, admin):
    r = create(api, admin, "networks", "network", is_default=True)
    assert r.status_code == 400
    first = network(api, admin, shared=True, is_default=True)
    assert first["is_default"] is True
    r = create(api, admin, "networks", "network", shared=True, is_default=True)
    assert r.status_code == 409
    assert first["id"] in neutron_error(r)["message"]


# ---------------------------------------------------------------- delete


def test_delete_takes_the_subnets_along(api, cloud, member):
    net = network(api, member)
    subnet(api, member, net["id"])
    assert api.delete(f"{NET}/networks/{net['id']}", headers=member.headers).status_code == 204
    assert api.get(f"{NET}/networks/{net['id']}", headers=member.headers).status_code == 404
    with cloud.db.reader() as s:
        assert s.scalar(select(func.count()).select_from(Subnet)) == 0


def test_delete_with_a_port_is_network_in_use(api, member):
    net = network(api, member)
    subnet(api, member, net["id"])
    p = port(api, member, net["id"], device_owner="compute:nova", device_id="vm")
    r = api.delete(f"{NET}/networks/{net['id']}", headers=member.headers)
    assert r.status_code == 409
    assert neutron_error(r) == {"type": "NetworkInUse", "detail": "", "message": (
        f"Unable to complete operation on network {net['id']}. There are one or more ports "
        "still in use on the network.")}
    assert api.delete(f"{NET}/ports/{p['id']}", headers=member.headers).status_code == 204
    assert api.delete(f"{NET}/networks/{net['id']}", headers=member.headers).status_code == 204


# ---------------------------------------------------------------- list queries


def test_filters_match_exactly_and_repeat_as_alternatives(api, admin, member):
    a = network(api, member, name="a")
    network(api, member, name="b")
    ext = network(api, admin, name="ext", **{"router:external": True})

    def names(query: str) -> list[str]:
        r = api.get(f"{NET}/networks?{query}", headers=member.headers)
        assert r.status_code == 200, r.text
        return sorted(n["name"] for n in r.json()["networks"])

    assert names("name=a") == ["a"]
    assert names("name=a&name=b") == ["a", "b"]
    assert names("router:external=True") == ["ext"]
    assert names("router:external=false") == ["a", "b"]
    assert names(f"id={a['id']}") == ["a"]
    assert names(f"tenant_id={member.project_id}") == ["a", "b"]
    assert names(f"project_id={ext['project_id']}") == ["ext"]
    assert names("mtu=1450&admin_state_up=1") == ["a", "b", "ext"]  # all vxlan
    assert names("name=") == ["a", "b", "ext"]  # empty values are ignored, as Neutron does


def test_unknown_filters_and_bad_values_are_400(api, member):
    r = api.get(f"{NET}/networks?color=red", headers=member.headers)
    assert r.status_code == 400
    assert neutron_error(r)["message"] == "['color'] is invalid attribute for filtering"
    for query in ("shared=perhaps", "limit=-1", "limit=x", "sort_key=name",
                  "sort_key=name&sort_dir=up", "sort_key=subnets&sort_dir=asc"):
        r = api.get(f"{NET}/networks?{query}", headers=member.headers)
        assert r.status_code == 400, query
        neutron_error(r)


def test_pagination_follows_next_links_in_sort_order(api, member):
    for name in "edcba":
        network(api, member, name=name)
    seen: list[str] = []
    url = f"{NET}/networks?limit=2&sort_key=name&sort_dir=asc"
    while url:
        body = api.get(url, headers=member.headers).json()
        seen += [n["name"] for n in body["networks"]]
        nxt = [link["href"] for link in body.get("networks_links", []) if link["rel"] == "next"]
        url = nxt[0].replace("http://testserver", "") if nxt else None
    assert seen == ["a", "b", "c", "d", "e"]
    desc = api.get(f"{NET}/networks?sort_key=name&sort_dir=desc", headers=member.headers).json()
    assert [n["name"] for n in desc["networks"]] == ["e", "d", "c", "b", "a"]
    assert "networks_links" not in desc


def test_marker_that_does_not_exist_is_404(api, member):
    r = api.get(f"{NET}/networks?limit=1&marker=nope", headers=member.headers)
    assert r.status_code == 404


def test_list_fields_trims_each_network(api, member):
    network(api, member, name="x")
    r = api.get(f"{NET}/networks?fields=name", headers=member.headers)
    assert r.json()["networks"] == [{"name": "x"}]


# ---------------------------------------------------------------- tags


def test_tags_set_add_filter_and_remove(api, member, other_member):
    red = network(api, member, name="red")
    blue = network(api, member, name="blue")
    base = f"{NET}/networks/{red['id']}/tags"
    r = api.put(base, json={"tags": ["red", "warm"]}, headers=member.headers)
    assert r.status_code == 200 and r.json() == {"tags": ["red", "warm"]}
    assert api.put(f"{NET}/networks/{blue['id']}/tags/cold", headers=member.headers).status_code == 201
    assert api.get(f"{base}/red", headers=member.headers).status_code == 204
    assert api.get(f"{base}/cold", headers=member.headers).status_code == 404

    def names(query: str) -> list[str]:
        body = api.get(f"{NET}/networks?{query}", headers=member.headers).json()
        return sorted(n["name"] for n in body["networks"])

    assert names("tags=red,warm") == ["red"]
    assert names("tags-any=warm,cold") == ["blue", "red"]
    assert names("not-tags=red") == ["blue"]
    assert names("not-tags-any=cold") == ["red"]
    assert api.delete(f"{base}/warm", headers=member.headers).status_code == 204
    assert api.delete(f"{base}/warm", headers=member.headers).status_code == 404
    assert api.get(base, headers=member.headers).json() == {"tags": ["red"]}
    assert api.put(base, json={"tags": ["x"]}, headers=other_member.headers).status_code == 404
    assert api.put(base, json={"tags": "x"}, headers=member.headers).status_code == 400
    r = api.post(base, json={"tags": ["red", "new"]}, headers=member.headers)
    assert r.status_code == 201 and r.json() == {"tags": ["red", "new"]}
    assert api.delete(base, headers=member.headers).status_code == 204
    assert api.get(base, headers=member.headers).json() == {"tags": []}
