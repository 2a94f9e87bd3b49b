"""GET /limits and os-quota-sets through the compute API, per microversion."""

from __future__ import annotations

import uuid

import pytest

from cirrus.db.models import Instance

BASE = "/compute/v2.1"

LIMITS_V21 = {"maxImageMeta", "maxPersonality", "maxPersonalitySize", "maxSecurityGroupRules",
              "maxSecurityGroups", "maxServerMeta", "maxTotalCores", "maxTotalFloatingIps",
              "maxTotalInstances", "maxTotalKeypairs", "maxTotalRAMSize", "totalCoresUsed",
              "totalFloatingIpsUsed", "totalInstancesUsed", "totalRAMUsed",
              "totalSecurityGroupsUsed", "maxServerGroups", "maxServerGroupMembers",
              "totalServerGroupsUsed"}
LIMITS_V236 = LIMITS_V21 - {"maxSecurityGroupRules", "maxSecurityGroups", "maxTotalFloatingIps",
                            "totalFloatingIpsUsed", "totalSecurityGroupsUsed"}
LIMITS_V239 = LIMITS_V236 - {"maxImageMeta"}
LIMITS_V257 = LIMITS_V239 - {"maxPersonality", "maxPersonalitySize"}

QUOTAS_V21 = {"instances", "cores", "ram", "floating_ips", "fixed_ips", "metadata_items",
              "key_pairs", "security_groups", "security_group_rules", "injected_files",
              "injected_file_content_bytes", "injected_file_path_bytes", "server_groups",
              "server_group_members"}
QUOTAS_V236 = QUOTAS_V21 - {"fixed_ips", "floating_ips", "security_groups",
                            "security_group_rules"}
QUOTAS_V257 = QUOTAS_V236 - {"injected_files", "injected_file_content_bytes",
                             "injected_file_path_bytes"}


def add_instances(cloud, project_id: str, user_id: str, count: int, vcpus: int,
                  memory_mb: int) -> None:
    def work(s):
        for _ in range(count):
            s.add(Instance(uuid=str(uuid.uuid4()), display_name="vm", project_id=project_id,
                           user_id=user_id, flavor={}, vcpus=vcpus, memory_mb=memory_mb,
                           vm_state="active"))
    cloud.db.run(work)


# ---------------------------------------------------------------- limits


@pytest.mark.parametrize("mv,keys", [("2.1", LIMITS_V21), ("2.35", LIMITS_V21),
                                     ("2.36", LIMITS_V236), ("2.38", LIMITS_V236),
                                     ("2.39", LIMITS_V239), ("2.56", LIMITS_V239),
                                     ("2.57", LIMITS_V257), ("2.60", LIMITS_V257)])
def test_limits_fields_per_microversion(api, member, mv, keys):
    r = api.get(f"{BASE}/limits", headers=member.compute(mv))
    assert r.status_code == 200
    body = r.json()["limits"]
    assert body["rate"] == []
    assert set(body["absolute"]) == keys
    assert all(isinstance(v, int) for v in body["absolute"].values())


def test_limits_show_quotas_and_usage(cloud, api, admin, member):
    add_instances(cloud, member.project_id, member.user_id, 2, vcpus=2, memory_mb=1024)
    api.put(f"{BASE}/os-quota-sets/{member.project_id}", headers=admin.compute(),
            json={"quota_set": {"instances": 7, "metadata_items": 3}})
    absolute = api.get(f"{BASE}/limits", headers=member.compute("2.1")).json()["limits"]["absolute"]
    assert absolute["maxTotalInstances"] == 7
    assert absolute["maxServerMeta"] == absolute["maxImageMeta"] == 3
    assert absolute["maxTotalCores"] == cloud.settings.quota_cores
    assert (absolute["totalInstancesUsed"], absolute["totalCoresUsed"],
            absolute["totalRAMUsed"]) == (2, 4, 2048)


def test_limits_of_another_project_are_for_admins(cloud, api, admin, member, other_member):
    add_instances(cloud, member.project_id, member.user_id, 1, vcpus=1, memory_mb=64)
    r = api.get(f"{BASE}/limits?tenant_id={member.project_id}", headers=admin.compute())
    assert r.json()["limits"]["absolute"]["totalInstancesUsed"] == 1
    r = api.get(f"{BASE}/limits?tenant_id={member.project_id}", headers=other_member.compute())
    assert r.status_code == 403
    r = api.get(f"{BASE}/limits?tenant_id={member.project_id}", headers=member.compute())
    assert r.status_code == 200


# ---------------------------------------------------------------- quota sets


@pytest.mark.parametrize("mv,keys", [("2.1", QUOTAS_V21), ("2.36", QUOTAS_V236),
                                     ("2.57", QUOTAS_V257), ("2.60", QUOTAS_V257)])
def test_quota_set_fields_per_microversion(api, member, mv, keys):
    path = f"{BASE}/os-quota-sets/{member.project_id}"
    shown = api.get(path, headers=member.compute(mv)).json()["quota_set"]
    assert set(shown) == keys | {"id"}
    assert shown["id"] == member.project_id
    defaults = api.get(f"{path}/defaults", headers=member.compute(mv)).json()["quota_set"]
    assert set(defaults) == keys | {"id"}
    detail = api.get(f"{path}/detail", headers=member.compute(mv)).json()["quota_set"]
    assert set(detail) == keys | {"id"}
    assert set(detail["cores"]) == {"in_use", "limit", "reserved"}


def test_defaults_come_from_settings(cloud, api, member):
    r = api.get(f"{BASE}/os-quota-sets/{member.project_id}/defaults", headers=member.compute())
    quota = r.json()["quota_set"]
    settings = cloud.settings
    assert (quota["instances"], quota["cores"], quota["ram"], quota["key_pairs"]) == (
        settings.quota_instances, settings.quota_cores, settings.quota_ram,
        settings.quota_key_pairs)


def test_detail_counts_usage_and_own_keypairs(cloud, api, member):
    add_instances(cloud, member.project_id, member.user_id, 3, vcpus=1, memory_mb=256)
    api.post(f"{BASE}/os-keypairs", headers=member.compute(), json={"keypair": {"name": "k"}})
    detail = api.get(f"{BASE}/os-quota-sets/{member.project_id}/detail",
                     headers=member.compute()).json()["quota_set"]
    assert detail["instances"] == {"in_use": 3, "limit": cloud.settings.quota_instances,
                                   "reserved": 0}
    assert detail["ram"]["in_use"] == 768
    assert detail["key_pairs"]["in_use"] == 1


def test_members_read_only_their_own_quotas(api, member, other_member):
    path = f"{BASE}/os-quota-sets/{member.project_id}"
    assert api.get(path, headers=other_member.compute()).status_code == 403
    assert api.get(f"{path}/detail", headers=other_member.compute()).status_code == 403


def test_unknown_project_is_400(api, admin):
    r = api.get(f"{BASE}/os-quota-sets/no-such-project", headers=admin.compute())
    assert r.status_code == 400
    assert r.json()["badRequest"]["message"] == "Project ID no-such-project is not a valid project."


def test_admin_updates_then_deletes_quotas(cloud, api, admin, member):
    path = f"{BASE}/os-quota-sets/{member.project_id}"
    r = api.put(path, headers=admin.compute(), json={"quota_set": {"instances": "5", "cores": -1}})
    assert r.status_code == 200
    updated = r.json()["quota_set"]
    assert "id" not in updated
    assert (updated["instances"], updated["cores"]) == (5, -1)
    shown = api.get(path, headers=member.compute()).json()["quota_set"]
    assert (shown["instances"], shown["cores"]) == (5, -1)

    r = api.delete(path, headers=admin.compute())
    assert r.status_code == 202
    shown = api.get(path, headers=member.compute()).json()["quota_set"]
    assert shown["instances"] == cloud.settings.quota_instances


def test_quota_updates_are_admin_only(api, member):
    path = f"{BASE}/os-quota-sets/{member.project_id}"
    assert api.put(path, headers=member.compute(),
                   json={"quota_set": {"instances": 50}}).status_code == 403
    assert api.delete(path, headers=member.compute()).status_code == 403


@pytest.mark.parametrize("mv,body,field", [
    ("2.60", {"instances": "many"}, "quota_set/instances"),
    ("2.60", {"instances": -2}, "quota_set/instances"),
    ("2.60", {"gpus": 1}, "gpus"),
    ("2.36", {"floating_ips": 1}, "floating_ips"),
    ("2.57", {"injected_files": 1}, "injected_files"),
])
def test_bad_quota_bodies_are_400_naming_the_field(api, admin, member, mv, body, field):
    r = api.put(f"{BASE}/os-quota-sets/{member.project_id}", headers=admin.compute(mv),
                json={"quota_set": body})
    assert r.status_code == 400
    assert field in r.json()["badRequest"]["message"]


def test_limit_below_usage_needs_force(cloud, api, admin, member):
    add_instances(cloud, member.project_id, member.user_id, 2, vcpus=1, memory_mb=64)
    path = f"{BASE}/os-quota-sets/{member.project_id}"
    r = api.put(path, headers=admin.compute(), json={"quota_set": {"instances": 1}})
    assert r.status_code == 400
    assert "already used and reserved 2" in r.json()["badRequest"]["message"]
    r = api.put(path, headers=admin.compute(), json={"quota_set": {"instances": 1, "force": True}})
    assert r.status_code == 200
    assert r.json()["quota_set"]["instances"] == 1


def test_legacy_fields_still_settable_before_2_36(api, admin, member):
    path = f"{BASE}/os-quota-sets/{member.project_id}"
    r = api.put(path, headers=admin.compute("2.35"), json={"quota_set": {"floating_ips": 3}})
    assert r.status_code == 200
    assert r.json()["quota_set"]["floating_ips"] == 3
