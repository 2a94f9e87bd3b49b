"""Nova's security group proxy: os-security-groups, os-security-group-rules, a server's groups
and the add/removeSecurityGroup actions, in Nova's format (Tempest's schemas) up to 2.35 and
gone (404) from 2.36."""

from __future__ import annotations

import jsonschema
import pytest
from tempest.lib.api_schema.response.compute.v2_1 import security_groups as schemas

from tests.api.servers_helpers import add_flavor, add_image, server_body, wait_for_status

MV = "2.35"


def h(caller, mv: str = MV) -> dict:
    return caller.compute(mv)


def check(schema: dict, r) -> dict:
    assert r.status_code in schema["status_code"], r.text
    if "response_body" in schema:
        jsonschema.validate(r.json(), schema["response_body"])
    return r.json() if r.content else {}


def make_group(api, caller, name="web", description="web servers") -> dict:
    r = api.post("/compute/v2.1/os-security-groups", headers=h(caller),
                 json={"security_group": {"name": name, "description": description}})
    return check(schemas.create_security_group, r)["security_group"]


def test_group_lifecycle_in_novas_format(api, member):
    group = make_group(api, member)
    assert group["name"] == "web" and group["tenant_id"] == member.project_id
    assert group["rules"] == []  # Neutron's default egress rules are not shown by Nova
    listed = check(schemas.list_security_groups,
                   api.get("/compute/v2.1/os-security-groups", headers=h(member)))
    assert {g["name"] for g in listed["security_groups"]} == {"default", "web"}
    r = api.put(f"/compute/v2.1/os-security-groups/{group['id']}", headers=h(member),
                json={"security_group": {"name": "web2", "description": "changed"}})
    assert check(schemas.update_security_group, r)["security_group"]["name"] == "web2"
    shown = check(schemas.get_security_group,
                  api.get(f"/compute/v2.1/os-security-groups/{group['id']}", headers=h(member)))
    assert shown["security_group"]["description"] == "changed"
    check(schemas.delete_security_group,
          api.delete(f"/compute/v2.1/os-security-groups/{group['id']}", headers=h(member)))
    r = api.get(f"/compute/v2.1/os-security-groups/{group['id']}", headers=h(member))
    assert r.status_code == 404


def test_rules_cidr_and_group_in_novas_format(api, member):
    group = make_group(api, member)
    peer = make_group(api, member, name="peer")
    r = api.post("/compute/v2.1/os-security-group-rules", headers=h(member),
                 json={"security_group_rule": {"parent_group_id": group["id"],
                                               "ip_protocol": "tcp", "from_port": 22,
                                               "to_port": 22, "cidr": "10.0.0.0/8"}})
    rule = check(schemas.create_security_group_rule, r)["security_group_rule"]
    assert (rule["from_port"], rule["to_port"], rule["ip_range"]) == (22, 22, {"cidr": "10.0.0.0/8"})
    r = api.post("/compute/v2.1/os-security-group-rules", headers=h(member),
                 json={"security_group_rule": {"parent_group_id": group["id"],
                                               "ip_protocol": "icmp", "from_port": -1,
                                               "to_port": -1, "group_id": peer["id"]}})
    by_group = check(schemas.create_security_group_rule, r)["security_group_rule"]
    assert by_group["group"] == {"name": "peer", "tenant_id": member.project_id}
    assert (by_group["from_port"], by_group["to_port"]) == (-1, -1)
    shown = api.get(f"/compute/v2.1/os-security-groups/{group['id']}", headers=h(member)).json()
    assert {r["id"] for r in shown["security_group"]["rules"]} == {rule["id"], by_group["id"]}
    # The same rule through Neutron's API: an ingress rule of that group.
    neutron = api.get(f"/network/v2.0/security-group-rules/{rule['id']}", headers=member.headers)
    assert neutron.json()["security_group_rule"]["direction"] == "ingress"
    check(schemas.delete_security_group_rule,
          api.delete(f"/compute/v2.1/os-security-group-rules/{rule['id']}", headers=h(member)))
    assert api.delete(f"/compute/v2.1/os-security-group-rules/{rule['id']}",
                      headers=h(member)).status_code == 404


@pytest.mark.parametrize("rule,words", [
    ({"ip_protocol": "tcp", "from_port": 70000, "to_port": 22}, "port range"),
    ({"ip_protocol": "tcp", "from_port": 22, "to_port": 70000}, "port range"),
    ({"ip_protocol": "tcp", "from_port": 30, "to_port": 22}, "greater than"),
    ({"ip_protocol": "999x", "from_port": 22, "to_port": 22}, "IP protocol"),
    ({"ip_protocol": "icmp", "from_port": 300, "to_port": 1}, "ICMP"),
    ({"ip_protocol": "tcp", "from_port": 22, "to_port": 22, "cidr": "10.0.0.300/8"}, "cidr"),
    ({"from_port": 22, "to_port": 22}, "ip_protocol"),
])
def test_bad_rules_are_400_and_change_nothing(api, member, rule, words):
    group = make_group(api, member)
    r = api.post("/compute/v2.1/os-security-group-rules", headers=h(member),
                 json={"security_group_rule": {"parent_group_id": group["id"], **rule}})
    assert r.status_code == 400, r.text
    assert words in r.json()["badRequest"]["message"]
    shown = api.get(f"/compute/v2.1/os-security-groups/{group['id']}", headers=h(member)).json()
    assert shown["security_group"]["rules"] == []


def test_duplicate_rule_and_bad_ids_are_400_unknown_group_404(api, member):
    group = make_group(api, member)
    body = {"parent_group_id": group["id"], "ip_protocol": "tcp", "from_port": 80, "to_port": 80}
    url = "/compute/v2.1/os-security-group-rules"
    assert api.post(url, headers=h(member), json={"security_group_rule": body}).status_code == 200
    assert api.post(url, headers=h(member), json={"security_group_rule": body}).status_code == 400
    bad = {**body, "parent_group_id": "not-a-uuid"}
    assert api.post(url, headers=h(member), json={"security_group_rule": bad}).status_code == 400
    missing = {**body, "parent_group_id": "0b7c7a52-3f0e-4d49-9a43-6f3b1f6a1c2e"}
    assert api.post(url, headers=h(member), json={"security_group_rule": missing}).status_code == 404
    assert api.get("/compute/v2.1/os-security-groups/xyz", headers=h(member)).status_code == 400
    r = api.post("/compute/v2.1/os-security-groups", headers=h(member),
                 json={"security_group": {"name": "no description"}})
    assert r.status_code == 400 and "description" in r.json()["badRequest"]["message"]


def test_the_default_group_cannot_be_deleted(api, member):
    groups = api.get("/compute/v2.1/os-security-groups", headers=h(member)).json()
    default = next(g for g in groups["security_groups"] if g["name"] == "default")
    r = api.delete(f"/compute/v2.1/os-security-groups/{default['id']}", headers=h(member))
    assert r.status_code == 400
    assert api.get(f"/compute/v2.1/os-security-groups/{default['id']}",
                   headers=h(member)).status_code == 200


def test_gone_from_2_36(api, member):
    group = make_group(api, member)
    for method, url in (("GET", "/compute/v2.1/os-security-groups"),
                        ("GET", f"/compute/v2.1/os-security-groups/{group['id']}"),
                        ("DELETE", f"/compute/v2.1/os-security-groups/{group['id']}")):
        assert api.request(method, url, headers=h(member, "2.36")).status_code == 404
    assert api.get(f"/compute/v2.1/os-security-groups/{group['id']}",
                   headers=h(member)).status_code == 200


def test_authorisation(api, admin, member, reader, other_member):
    group = make_group(api, member)
    url = f"/compute/v2.1/os-security-groups/{group['id']}"
    assert api.get(url, headers=h(reader)).status_code == 200
    assert api.get(url, headers=h(other_member)).status_code == 404
    assert api.delete(url, headers=h(other_member)).status_code == 404
    assert api.delete(url, headers=h(reader)).status_code == 403
    r = api.post("/compute/v2.1/os-security-groups", headers=h(reader),
                 json={"security_group": {"name": "x", "description": ""}})
    assert r.status_code == 403
    others = api.get("/compute/v2.1/os-security-groups", headers=h(other_member)).json()
    assert group["id"] not in {g["id"] for g in others["security_groups"]}
    everyone = api.get("/compute/v2.1/os-security-groups?all_tenants=1", headers=h(admin)).json()
    assert group["id"] in {g["id"] for g in everyone["security_groups"]}
    assert api.get(url, headers=h(admin)).status_code == 200
    assert api.delete(url, headers=h(admin)).status_code == 202


def test_server_groups_add_and_remove(api, cloud, member, reader, other_member):
    flavor, image = add_flavor(cloud), add_image(cloud)
    r = api.post("/compute/v2.1/servers", headers=h(member, "2.35"),
                 json=server_body(flavor, image))
    server_id = r.json()["server"]["id"]
    wait_for_status(api, h(member), server_id, "ACTIVE")
    group = make_group(api, member)
    url = f"/compute/v2.1/servers/{server_id}/os-security-groups"
    names = lambda: [g["name"] for g in api.get(url, headers=h(member)).json()["security_groups"]]  # noqa: E731
    assert names() == ["default"]
    action = f"/compute/v2.1/servers/{server_id}/action"
    assert api.post(action, headers=h(reader), json={"addSecurityGroup": {"name": "web"}}).status_code == 403
    assert api.post(action, headers=h(other_member),
                    json={"addSecurityGroup": {"name": "web"}}).status_code == 404
    assert api.post(action, headers=h(member), json={"addSecurityGroup": {"name": "web"}}).status_code == 202
    assert names() == ["default", "web"]
    assert api.post(action, headers=h(member), json={"addSecurityGroup": {"name": "web"}}).status_code == 400
    assert api.post(action, headers=h(member),
                    json={"addSecurityGroup": {"name": "nope"}}).status_code == 404
    assert api.post(action, headers=h(member),
                    json={"removeSecurityGroup": {"name": group["id"]}}).status_code == 202
    assert names() == ["default"]
    assert api.post(action, headers=h(member),
                    json={"removeSecurityGroup": {"name": "web"}}).status_code == 400
    assert api.post(action, headers=h(member),
                    json={"removeSecurityGroup": {"name": "default"}}).status_code == 202
    assert names() == []
    shown = api.get(f"/compute/v2.1/servers/{server_id}", headers=h(member)).json()["server"]
    assert "security_groups" not in shown  # Nova leaves the key out when there are none
    assert api.post(action, headers=h(member), json={"addSecurityGroup": {}}).status_code == 400
    assert api.get(url, headers=h(other_member)).status_code == 404
