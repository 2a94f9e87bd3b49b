"""Security groups and rules through the Neutron API (recorded, not enforced): the default
group made on first use, CRUD, rule validation, policy."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from cirrus.db.models import SecurityGroup
from cirrus.network import security_groups
from tests.api.network_helpers import NET, create, network, neutron_error, port, subnet


def groups(api, caller) -> list[dict]:
    r = api.get(f"{NET}/security-groups", headers=caller.headers)
    assert r.status_code == 200, r.text
    return r.json()["security_groups"]


def new_group(api, caller, name: str = "web") -> dict:
    r = create(api, caller, "security-groups", "security_group", name=name, description="d")
    assert r.status_code == 201, r.text
    return r.json()["security_group"]


def new_rule(api, caller, status: int = 201, **body) -> dict:
    r = create(api, caller, "security-group-rules", "security_group_rule", **body)
    assert r.status_code == status, (body, r.text)
    return r.json()["security_group_rule"] if status == 201 else neutron_error(r)


def test_listing_makes_the_default_group_with_neutrons_rules(api, member):
    (default,) = groups(api, member)
    assert default["name"] == "default" and default["project_id"] == member.project_id
    rules = {(r["direction"], r["ethertype"], r["remote_group_id"])
             for r in default["security_group_rules"]}
    assert rules == {("ingress", "IPv4", default["id"]), ("ingress", "IPv6", default["id"]),
                     ("egress", "IPv4", None), ("egress", "IPv6", None)}
    assert groups(api, member) == [default]  # made once


def test_concurrent_first_uses_make_one_default_group(cloud, member):
    from cirrus.context import RequestContext

    ctx = RequestContext(project_id=member.project_id, roles=["member", "reader"])

    def first_use(_: int) -> str:
        return cloud.db.run(lambda s: security_groups.ensure_default_group(s, ctx.project_id).id)

    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(first_use, range(16)))
    assert len(ids) == 1
    with cloud.db.reader() as s:
        assert s.scalar(select(func.count()).select_from(SecurityGroup)) == 1


def test_each_project_sees_its_own_groups_admin_all(api, admin, member, other_member):
    web = new_group(api, member)
    assert {g["name"] for g in groups(api, other_member)} == {"default"}
    r = api.get(f"{NET}/security-groups/{web['id']}", headers=other_member.headers)
    assert r.status_code == 404
    assert neutron_error(r)["type"] == "SecurityGroupNotFound"
    projects = {g["project_id"] for g in groups(api, admin)}
    assert {member.project_id, other_member.project_id, admin.project_id} <= projects


def test_a_new_group_has_egress_rules_and_can_be_renamed_and_deleted(api, member):
    web = new_group(api, member)
    assert {(r["direction"], r["ethertype"]) for r in web["security_group_rules"]} == \
        {("egress", "IPv4"), ("egress", "IPv6")}
    r = api.put(f"{NET}/security-groups/{web['id']}",
                json={"security_group": {"name": "www", "stateful": False}}, headers=member.headers)
    assert (r.json()["security_group"]["name"], r.json()["security_group"]["stateful"]) == \
        ("www", False)
    assert api.delete(f"{NET}/security-groups/{web['id']}", headers=member.headers).status_code == 204
    assert api.get(f"{NET}/security-groups/{web['id']}", headers=member.headers).status_code == 404


def test_the_default_group_cannot_be_renamed_made_again_or_deleted_by_members(api, admin, member):
    (default,) = groups(api, member)
    r = api.put(f"{NET}/security-groups/{default['id']}",
                json={"security_group": {"name": "other"}}, headers=member.headers)
    assert r.status_code == 409
    r = create(api, member, "security-groups", "security_group", name="default")
    assert r.status_code == 409
    web = new_group(api, member)
    r = api.put(f"{NET}/security-groups/{web['id']}",
                json={"security_group": {"name": "default"}}, headers=member.headers)
    assert r.status_code == 409
    assert neutron_error(r)["message"] == "Default security group already exists."
    r = api.get(f"{NET}/security-groups/{web['id']}", headers=member.headers)
    assert r.json()["security_group"]["name"] == web["name"]
    r = api.put(f"{NET}/security-groups/{default['id']}",
                json={"security_group": {"description": "still allowed"}}, headers=member.headers)
    assert r.status_code == 200, r.text
    r = api.delete(f"{NET}/security-groups/{default['id']}", headers=member.headers)
    assert r.status_code == 409
    assert neutron_error(r) == {"type": "SecurityGroupCannotRemoveDefault", "detail": "",
                                "message": "Insufficient rights for removing default security group."}
    assert api.delete(f"{NET}/security-groups/{default['id']}", headers=admin.headers).status_code == 204


def test_a_group_in_use_by_a_port_cannot_be_deleted(api, member):
    net = network(api, member)
    subnet(api, member, net["id"])
    web = new_group(api, member)
    p = port(api, member, net["id"], security_groups=[web["id"]])
    r = api.delete(f"{NET}/security-groups/{web['id']}", headers=member.headers)
    assert r.status_code == 409
    assert neutron_error(r)["message"] == f"Security Group {web['id']} in use."
    api.delete(f"{NET}/ports/{p['id']}", headers=member.headers)
    assert api.delete(f"{NET}/security-groups/{web['id']}", headers=member.headers).status_code == 204


def test_stateful_is_created_shown_and_changed_only_while_no_port_uses_the_group(api, member):
    """Neutron's `stateful-security-group`: `stateful` defaults to true; changing it is
    refused (409 SecurityGroupInUse) while a port uses the group, other changes are not."""
    net = network(api, member)
    subnet(api, member, net["id"])
    assert new_group(api, member)["stateful"] is True
    r = create(api, member, "security-groups", "security_group", name="raw", stateful=False)
    assert r.status_code == 201, r.text
    raw = r.json()["security_group"]
    assert raw["stateful"] is False
    shown = api.get(f"{NET}/security-groups/{raw['id']}", headers=member.headers).json()
    assert shown["security_group"]["stateful"] is False
    p = port(api, member, net["id"], security_groups=[raw["id"]])
    url = f"{NET}/security-groups/{raw['id']}"
    r = api.put(url, json={"security_group": {"stateful": True}}, headers=member.headers)
    assert r.status_code == 409
    assert neutron_error(r)["type"] == "SecurityGroupInUse"
    assert neutron_error(r)["message"] == f"Security Group {raw['id']} in use."
    # the same value, or another attribute, is not a change of statefulness
    r = api.put(url, json={"security_group": {"stateful": False, "description": "x"}},
                headers=member.headers)
    assert r.status_code == 200, r.text
    api.delete(f"{NET}/ports/{p['id']}", headers=member.headers)
    r = api.put(url, json={"security_group": {"stateful": True}}, headers=member.headers)
    assert r.status_code == 200, r.text
    assert r.json()["security_group"]["stateful"] is True


def test_a_port_cannot_mix_stateful_and_stateless_groups(api, member):
    net = network(api, member)
    subnet(api, member, net["id"])
    web = new_group(api, member)
    raw = create(api, member, "security-groups", "security_group", name="raw",
                 stateful=False).json()["security_group"]
    raw2 = create(api, member, "security-groups", "security_group", name="raw2",
                  stateful=False).json()["security_group"]
    mixed = "Error Cannot apply both stateful and stateless security groups on the same port " \
            "at the same time while attempting the operation."
    r = create(api, member, "ports", "port", network_id=net["id"],
               security_groups=[web["id"], raw["id"]])
    assert r.status_code == 409
    assert neutron_error(r)["type"] == "SecurityGroupConflict"
    assert neutron_error(r)["message"] == mixed
    p = port(api, member, net["id"], security_groups=[raw["id"], raw2["id"]])  # all stateless
    r = api.put(f"{NET}/ports/{p['id']}", json={"port": {"security_groups": [raw["id"], web["id"]]}},
                headers=member.headers)
    assert r.status_code == 409
    assert neutron_error(r)["type"] == "SecurityGroupConflict"
    r = api.put(f"{NET}/ports/{p['id']}", json={"port": {"security_groups": [web["id"]]}},
                headers=member.headers)
    assert r.status_code == 200, r.text
    assert r.json()["port"]["security_groups"] == [web["id"]]


def test_reader_cannot_change_groups(api, member, reader):
    web = new_group(api, member)
    r = create(api, reader, "security-groups", "security_group", name="x")
    assert r.status_code == 403
    assert api.delete(f"{NET}/security-groups/{web['id']}", headers=reader.headers).status_code == 403
    new_rule(api, reader, 403, security_group_id=web["id"], direction="ingress")


# ---------------------------------------------------------------- rules


def test_rules_are_stored_shown_listed_and_deleted(api, member):
    web = new_group(api, member)
    rule = new_rule(api, member, security_group_id=web["id"], direction="ingress",
                    protocol="TCP", port_range_min=80, port_range_max=443,
                    remote_ip_prefix="10.1.2.3/8", ethertype="ipv4")
    # Neutron keeps the prefix as given and shows its network as normalized_cidr.
    assert (rule["protocol"], rule["ethertype"], rule["remote_ip_prefix"],
            rule["normalized_cidr"]) == ("tcp", "IPv4", "10.1.2.3/8", "10.0.0.0/8")
    assert (rule["port_range_min"], rule["port_range_max"]) == (80, 443)
    r = api.get(f"{NET}/security-group-rules/{rule['id']}", headers=member.headers)
    assert r.json()["security_group_rule"] == rule
    listed = api.get(f"{NET}/security-group-rules?security_group_id={web['id']}",
                     headers=member.headers).json()["security_group_rules"]
    assert rule["id"] in {r["id"] for r in listed} and len(listed) == 3
    shown = api.get(f"{NET}/security-groups/{web['id']}", headers=member.headers).json()
    assert rule["id"] in {r["id"] for r in shown["security_group"]["security_group_rules"]}
    assert api.delete(f"{NET}/security-group-rules/{rule['id']}", headers=member.headers).status_code == 204
    assert api.get(f"{NET}/security-group-rules/{rule['id']}", headers=member.headers).status_code == 404


def test_duplicate_rules_are_409_naming_the_existing_one(api, member):
    web = new_group(api, member)
    rule = new_rule(api, member, security_group_id=web["id"], direction="ingress", protocol="udp",
                    port_range_min=53, port_range_max=53)
    error = new_rule(api, member, 409, security_group_id=web["id"], direction="ingress",
                     protocol="udp", port_range_min=53, port_range_max=53)
    assert error["message"] == f"Security group rule already exists. Rule id is {rule['id']}."


@pytest.mark.parametrize(("body", "words"), [
    ({"direction": "sideways"}, "Invalid input for direction"),
    ({"direction": "ingress", "protocol": "teleport"}, "protocol teleport not supported"),
    ({"direction": "ingress", "protocol": "tcp", "port_range_min": 90, "port_range_max": 80},
     "port_range_min must be <= port_range_max"),
    ({"direction": "ingress", "port_range_min": 80}, "Must also specify protocol"),
    ({"direction": "ingress", "protocol": "gre", "port_range_min": 80},
     "Ports cannot be specified for protocol gre"),
    ({"direction": "ingress", "protocol": "icmp", "port_range_min": 300},
     "Invalid value for ICMP type"),
    ({"direction": "ingress", "protocol": "icmp", "port_range_max": 3},
     "ICMP type (port-range-min) is missing"),
    ({"direction": "ingress", "protocol": "tcp", "port_range_min": 70000},
     "Invalid input for port_range_min"),
    # Tempest's test_create_security_group_rule_with_invalid_ports, in Neutron's words.
    *[({"direction": "ingress", "protocol": "tcp", "port_range_min": low,
        "port_range_max": high}, words) for low, high, words in (
        (-16, 80, "Invalid value for port -16"),
        (80, 79, "port_range_min must be <= port_range_max"),
        (80, 65536, "Invalid value for port 65536"),
        (None, 6, "port_range_min must be <= port_range_max"),
        (6, None, "port_range_min must be <= port_range_max"),
        (0, 80, "Invalid value for port 0"),
        ("x", 80, "Invalid input for port_range_min. Reason: Invalid value for port x"),
        (True, 80, "Invalid input for port_range_min"),
        (-16, 65536, "Invalid value for port"))],
    *[({"direction": "ingress", "protocol": "icmp", "port_range_min": low,
        "port_range_max": high}, words) for low, high, words in (
        (1, 256, "Invalid value for ICMP code (port_range_max) 256. It must be 0 to 255."),
        (-1, 25, "Invalid value"),
        (None, 6, "ICMP type (port-range-min) is missing"),
        (300, 1, "Invalid value for ICMP type"))],
    ({"direction": "ingress", "ethertype": "IPv5"}, "ethertype 'IPv5' not supported"),
    ({"direction": "ingress", "remote_ip_prefix": "::/0"}, "Conflicting value ethertype IPv4"),
    ({"direction": "ingress", "remote_ip_prefix": "bad"}, "is not a valid IP subnet"),
    ({"direction": "ingress", "remote_ip_prefix": "10.0.0.0/8", "remote_group_id": "g"},
     "Only one of remote_ip_prefix or remote_group_id"),
    ({"direction": "ingress", "protocol": "ipv6-icmp"}, "Invalid ethertype IPv4 for protocol"),
    ({"direction": "ingress", "color": "red"}, "Unrecognized attribute(s) 'color'"),
])
def test_bad_rules_are_400(api, member, body, words):
    web = new_group(api, member)
    error = new_rule(api, member, 400, security_group_id=web["id"], **body)
    assert words in error["message"]
    shown = api.get(f"{NET}/security-groups/{web['id']}", headers=member.headers).json()
    assert len(shown["security_group"]["security_group_rules"]) == 2


def test_rules_need_a_visible_group_and_remote_group(api, member, other_member):
    web = new_group(api, member)
    assert new_rule(api, other_member, 404, security_group_id=web["id"],
                    direction="ingress")["type"] == "SecurityGroupNotFound"
    theirs = new_group(api, other_member, "theirs")
    new_rule(api, member, 404, security_group_id=web["id"], direction="ingress",
             remote_group_id=theirs["id"])
    ok = new_rule(api, member, security_group_id=web["id"], direction="ingress",
                  remote_group_id=web["id"], ethertype="IPv6", protocol="icmpv6")
    assert ok["remote_group_id"] == web["id"]
