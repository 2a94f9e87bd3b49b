"""os-quota-class-sets: admin only; the `default` class changes every project's defaults."""

from __future__ import annotations

import pytest

BASE = "/compute/v2.1"


def test_default_class_changes_project_defaults(api, admin, member):
    r = api.get(f"{BASE}/os-quota-class-sets/default", headers=admin.compute("2.1"))
    assert r.status_code == 200
    shown = r.json()["quota_class_set"]
    assert shown["id"] == "default" and "floating_ips" in shown and "server_groups" not in shown
    r = api.put(f"{BASE}/os-quota-class-sets/default", headers=admin.compute("2.1"),
                json={"quota_class_set": {"instances": 3, "cores": "7"}})
    assert r.status_code == 200
    body = r.json()["quota_class_set"]
    assert "id" not in body and body["instances"] == 3 and body["cores"] == 7
    defaults = api.get(f"{BASE}/os-quota-sets/{member.project_id}/defaults",
                       headers=member.compute()).json()["quota_set"]
    assert defaults["instances"] == 3
    mine = api.get(f"{BASE}/os-quota-sets/{member.project_id}",
                   headers=member.compute()).json()["quota_set"]
    assert mine["instances"] == 3 and mine["cores"] == 7


def test_fields_by_microversion(api, admin):
    at_250 = api.get(f"{BASE}/os-quota-class-sets/default",
                     headers=admin.compute("2.50")).json()["quota_class_set"]
    assert "server_groups" in at_250 and "floating_ips" not in at_250
    assert "injected_files" in at_250
    at_257 = api.get(f"{BASE}/os-quota-class-sets/default",
                     headers=admin.compute("2.57")).json()["quota_class_set"]
    assert "injected_files" not in at_257
    r = api.put(f"{BASE}/os-quota-class-sets/default", headers=admin.compute("2.57"),
                json={"quota_class_set": {"injected_files": 1}})
    assert r.status_code == 400 and "injected_files" in r.json()["badRequest"]["message"]


def test_other_classes_do_not_apply_to_projects(api, admin, member):
    r = api.put(f"{BASE}/os-quota-class-sets/gold", headers=admin.compute(),
                json={"quota_class_set": {"instances": 99}})
    assert r.json()["quota_class_set"]["instances"] == 99
    assert api.get(f"{BASE}/os-quota-class-sets/gold", headers=admin.compute()
                   ).json()["quota_class_set"]["instances"] == 99
    assert api.get(f"{BASE}/os-quota-sets/{member.project_id}", headers=member.compute()
                   ).json()["quota_set"]["instances"] != 99


def test_only_admins(api, member, reader, other_member):
    for caller in (member, reader, other_member):
        assert api.get(f"{BASE}/os-quota-class-sets/default",
                       headers=caller.compute()).status_code == 403
        assert api.put(f"{BASE}/os-quota-class-sets/default", headers=caller.compute(),
                       json={"quota_class_set": {"instances": 1}}).status_code == 403


@pytest.mark.parametrize(("body", "field"), [
    ({"quota_class_set": {"instances": -2}}, "instances"),
    ({"quota_class_set": {"cores": "many"}}, "cores"),
    ({"quota_class_set": {"instances": 2 ** 31}}, "instances"),
    ({"quota_class_set": {"bogus": 1}}, "bogus"),
    ({"quota_set": {"instances": 1}}, "quota_set"),
])
def test_bad_input_is_400_and_changes_nothing(api, admin, body, field):
    before = api.get(f"{BASE}/os-quota-class-sets/default", headers=admin.compute()).json()
    r = api.put(f"{BASE}/os-quota-class-sets/default", headers=admin.compute(), json=body)
    assert r.status_code == 400, r.text
    assert field in r.json()["badRequest"]["message"]
    assert api.get(f"{BASE}/os-quota-class-sets/default", headers=admin.compute()
                   ).json() == before


def test_bad_class_name_is_400(api, admin):
    r = api.get(f"{BASE}/os-quota-class-sets/{'x' * 256}", headers=admin.compute())
    assert r.status_code == 400 and "id" in r.json()["badRequest"]["message"]
