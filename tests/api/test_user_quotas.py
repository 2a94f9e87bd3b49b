"""Issue 13 (comp-x): per-user quota sets, os-quota-sets/{project}?user_id= (Nova's rules:
at most the project's limit, at least the user's usage, enforced on server create)."""

from __future__ import annotations

import pytest
from tempest.lib.services.compute.quotas_client import QuotasClient

from tests.api.servers_helpers import server_body, wait_for_status
from tests.api.tempest_schemas import Clients, compute_microversion
from tests.conftest import ADMIN_PASSWORD, make_caller

QS = "/compute/v2.1/os-quota-sets"


def _put(api, caller, project, user, version="2.60", **values):
    return api.put(f"{QS}/{project}?user_id={user}", json={"quota_set": values},
                   headers=caller.compute(version))


def test_user_quota_set_get_delete(api, admin, member):
    project, user = member.project_id, member.user_id
    assert api.put(f"{QS}/{project}", json={"quota_set": {"ram": 5120}},
                   headers=admin.compute()).status_code == 200
    r = _put(api, admin, project, user, ram=2048, instances=3)
    assert r.status_code == 200, r.text
    assert r.json()["quota_set"]["ram"] == 2048 and "id" not in r.json()["quota_set"]
    got = api.get(f"{QS}/{project}?user_id={user}", headers=admin.compute()).json()["quota_set"]
    assert got["ram"] == 2048 and got["instances"] == 3 and got["id"] == project
    # The project's own quotas are untouched.
    whole = api.get(f"{QS}/{project}", headers=admin.compute()).json()["quota_set"]
    assert whole["ram"] == 5120 and whole["instances"] == 10
    detail = api.get(f"{QS}/{project}/detail?user_id={user}",
                     headers=admin.compute()).json()["quota_set"]
    assert detail["ram"] == {"limit": 2048, "in_use": 0, "reserved": 0}
    # A user reads its own quotas; another user's only as an admin.
    mine = api.get(f"{QS}/{project}?user_id={user}", headers=member.compute())
    assert mine.status_code == 200 and mine.json()["quota_set"]["ram"] == 2048
    assert api.delete(f"{QS}/{project}?user_id={user}",
                      headers=admin.compute()).status_code == 202
    got = api.get(f"{QS}/{project}?user_id={user}", headers=admin.compute()).json()["quota_set"]
    assert got["ram"] == 5120


def test_user_quota_limits_follow_the_project(api, admin, member):
    project, user = member.project_id, member.user_id
    api.put(f"{QS}/{project}", json={"quota_set": {"cores": 4}}, headers=admin.compute())
    r = _put(api, admin, project, user, cores=5)
    assert r.status_code == 400, r.text
    assert r.json()["badRequest"]["message"] == (
        "Quota limit 5 for cores must be less than or equal to 4.")
    r = _put(api, admin, project, user, cores="many")
    assert r.status_code == 400 and "cores" in r.json()["badRequest"]["message"]
    r = _put(api, admin, project, user, bogus=1)
    assert r.status_code == 400 and "bogus" in r.json()["badRequest"]["message"]
    # Nothing was stored by the refusals.
    got = api.get(f"{QS}/{project}?user_id={user}", headers=admin.compute()).json()["quota_set"]
    assert got["cores"] == 4
    assert _put(api, admin, project, user, cores=5, force=True).status_code == 200


def test_user_quota_enforced_on_create(api, admin, member, flavor, image):
    project, user = member.project_id, member.user_id
    assert _put(api, admin, project, user, instances=1).status_code == 200
    r = api.post("/compute/v2.1/servers", json=server_body(flavor, image),
                 headers=member.compute())
    assert r.status_code == 202, r.text
    wait_for_status(api, member.compute(), r.json()["server"]["id"], "ACTIVE")
    r = api.post("/compute/v2.1/servers", json=server_body(flavor, image, name="vm2"),
                 headers=member.compute())
    assert r.status_code == 403, r.text
    assert "instances" in r.text
    # Below what the user uses: refused unless forced.
    r = _put(api, admin, project, user, instances=0)
    assert r.status_code == 400 and "already used and reserved 1" in r.text


def test_user_quota_authorisation(api, cloud, admin, member, reader, other_member):
    project, user = member.project_id, member.user_id
    for caller in (member, reader, other_member):
        assert _put(api, caller, project, user, ram=1).status_code == 403
        assert api.delete(f"{QS}/{project}?user_id={user}",
                          headers=caller.compute()).status_code == 403
    # Another user of the same project may not read this user's quotas; nor may bob.
    rita = api.get(f"{QS}/{project}?user_id={user}", headers=reader.compute())
    assert rita.status_code == 403
    bob = api.get(f"{QS}/{project}?user_id={user}", headers=other_member.compute())
    assert bob.status_code == 403


@pytest.mark.parametrize("version", ["2.1", "2.36", "2.57"])
def test_user_quotas_match_tempest_schema(api, cloud, member, version):
    """Tempest's QuotasAdminTest*.test_get_updated_quotas, through its own client."""
    user = make_caller(cloud, "quser", "project-a", "member")
    client = Clients(api, "admin", ADMIN_PASSWORD, "admin").compute(QuotasClient)
    with compute_microversion(version):
        client.update_quota_set(member.project_id, ram="5120")
        detail = client.show_quota_set(member.project_id, detail=True)["quota_set"]
        assert detail["ram"]["limit"] == 5120
        client.update_quota_set(member.project_id, user_id=user.user_id, ram="2048")
        got = client.show_quota_set(member.project_id, user_id=user.user_id)["quota_set"]
        assert got["ram"] == 2048
        client.delete_quota_set(member.project_id)
