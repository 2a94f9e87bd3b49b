"""Networking quotas through the Neutron API: show, details, defaults, update, delete, list,
and enforcement on create with Neutron's OverQuota message."""

from __future__ import annotations

from sqlalchemy import func, select

from cirrus.db.models import Network, Port
from tests.api.network_helpers import NET, create, network, neutron_error, subnet

RESOURCES = {"network", "subnet", "port", "security_group", "security_group_rule", "router",
             "floatingip"}


def set_quota(api, admin, project_id: str, **values):
    return api.put(f"{NET}/quotas/{project_id}", json={"quota": values}, headers=admin.headers)


def test_members_read_their_own_quotas_only(api, cloud, member, other_member, reader):
    r = api.get(f"{NET}/quotas/{member.project_id}", headers=member.headers)
    assert r.status_code == 200
    assert r.json()["quota"] == {"network": cloud.settings.quota_network,
                                 "subnet": cloud.settings.quota_subnet,
                                 "port": cloud.settings.quota_port,
                                 "security_group": cloud.settings.quota_security_group,
                                 "security_group_rule": cloud.settings.quota_security_group_rule,
                                 "router": 10, "floatingip": 50}
    assert api.get(f"{NET}/quotas/{member.project_id}", headers=reader.headers).status_code == 200
    r = api.get(f"{NET}/quotas/{member.project_id}", headers=other_member.headers)
    assert r.status_code == 403
    assert neutron_error(r)["type"] == "PolicyNotAuthorized"
    r = api.get(f"{NET}/quotas/{member.project_id}/default", headers=member.headers)
    assert set(r.json()["quota"]) == RESOURCES


def test_details_count_what_the_project_uses(api, member):
    net = network(api, member)
    subnet(api, member, net["id"])
    create(api, member, "ports", "port", network_id=net["id"])
    for path in ("details", "details.json"):
        r = api.get(f"{NET}/quotas/{member.project_id}/{path}", headers=member.headers)
        quota = r.json()["quota"]
        assert quota["network"] == {"used": 1, "limit": 100, "reserved": 0}
        assert quota["port"]["used"] == 1 and quota["subnet"]["used"] == 1
        assert quota["security_group"]["used"] == 1  # the default group the port got
        assert quota["security_group_rule"]["used"] == 4


def test_admin_updates_lists_and_resets(api, admin, member):
    r = set_quota(api, admin, member.project_id, network=3, port=-1)
    assert r.status_code == 200
    assert (r.json()["quota"]["network"], r.json()["quota"]["port"]) == (3, -1)
    listed = api.get(f"{NET}/quotas", headers=admin.headers).json()["quotas"]
    row = next(q for q in listed if q["project_id"] == member.project_id)
    assert row["network"] == 3 and row["tenant_id"] == member.project_id
    assert api.delete(f"{NET}/quotas/{member.project_id}", headers=admin.headers).status_code == 204
    r = api.get(f"{NET}/quotas/{member.project_id}", headers=member.headers)
    assert r.json()["quota"]["network"] == 100


def test_resetting_network_quotas_keeps_compute_quotas(api, admin, member):
    r = api.put(f"/compute/v2.1/os-quota-sets/{member.project_id}",
                json={"quota_set": {"instances": 7}}, headers=admin.compute())
    assert r.status_code == 200, r.text
    set_quota(api, admin, member.project_id, network=3)
    api.delete(f"{NET}/quotas/{member.project_id}", headers=admin.headers)
    r = api.get(f"/compute/v2.1/os-quota-sets/{member.project_id}", headers=admin.compute())
    assert r.json()["quota_set"]["instances"] == 7


def test_only_admins_change_quotas_and_bad_values_are_400(api, admin, member):
    assert set_quota(api, member, member.project_id, network=3).status_code == 403
    assert api.get(f"{NET}/quotas", headers=member.headers).status_code == 403
    assert api.delete(f"{NET}/quotas/{member.project_id}", headers=member.headers).status_code == 403
    for values, words in (({"network": -2}, "Invalid input for network"),
                          ({"network": "many"}, "Invalid input for network"),
                          ({"rbac_policy": 3}, "Unrecognized attribute(s) 'rbac_policy'"),
                          ({"port": 2**40}, "too large")):
        r = set_quota(api, admin, member.project_id, **values)
        assert r.status_code == 400, values
        assert words in neutron_error(r)["message"]
    r = api.get(f"{NET}/quotas/{member.project_id}", headers=member.headers)
    assert r.json()["quota"]["network"] == 100


def test_check_limit_refuses_a_limit_below_usage(api, admin, member):
    network(api, member)
    network(api, member)
    r = set_quota(api, admin, member.project_id, network=1, check_limit=True)
    assert r.status_code == 400
    assert set_quota(api, admin, member.project_id, network=1).status_code == 200


def test_creates_over_quota_are_409_and_leave_nothing(api, cloud, admin, member):
    set_quota(api, admin, member.project_id, network=1, port=1)
    net = network(api, member)
    r = create(api, member, "networks", "network", name="second")
    assert r.status_code == 409
    assert neutron_error(r) == {"type": "OverQuota", "detail": "",
                                "message": "Quota exceeded for resources: ['network']."}
    subnet(api, member, net["id"])
    assert create(api, member, "ports", "port", network_id=net["id"]).status_code == 201
    r = create(api, member, "ports", "port", network_id=net["id"])
    assert r.status_code == 409
    assert neutron_error(r)["message"] == "Quota exceeded for resources: ['port']."
    with cloud.db.reader() as s:
        assert s.scalar(select(func.count()).select_from(Network)) == 1
        assert s.scalar(select(func.count()).select_from(Port)) == 1


def test_subnet_and_security_group_quotas(api, admin, member):
    set_quota(api, admin, member.project_id, subnet=1, security_group=1, security_group_rule=6)
    net = network(api, member)
    subnet(api, member, net["id"], "10.0.0.0/24")
    r = create(api, member, "subnets", "subnet", network_id=net["id"], cidr="10.1.0.0/24",
               ip_version=4)
    assert neutron_error(r)["message"] == "Quota exceeded for resources: ['subnet']."
    r = create(api, member, "security-groups", "security_group", name="web")
    assert r.status_code == 409  # the default group is the one allowed
    set_quota(api, admin, member.project_id, security_group=2)
    r = create(api, member, "security-groups", "security_group", name="web")
    assert r.status_code == 201, r.text  # its 2 egress rules and the default's 4 make 6
    r = create(api, member, "security-group-rules", "security_group_rule",
               security_group_id=r.json()["security_group"]["id"], direction="ingress")
    assert r.status_code == 409
    assert neutron_error(r)["message"] == "Quota exceeded for resources: ['security_group_rule']."
