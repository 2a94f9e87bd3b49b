"""Issue 13 (comp-x): removing a grant revokes only the tokens scoped where the role was
held. Tempest's TokensV3TestJSON grants the admin user a role on a domain and removes it;
that used to revoke every token of the admin user, so a class running alongside failed with
401 "The token has been revoked." (AutoAllocateNetworkTest in the baseline)."""

from __future__ import annotations

import time

from tests.api.test_identity import V3, issue, password_auth, role_id


def _valid(api, admin, token) -> bool:
    r = api.get(f"{V3}/auth/tokens", headers={**admin.headers, "X-Subject-Token": token})
    return r.status_code == 200


def test_domain_grant_removal_keeps_project_tokens(api, admin, member):
    reader = role_id(api, admin, "reader")
    url = f"{V3}/domains/default/users/{member.user_id}/roles/{reader}"
    assert api.put(url, headers=admin.headers).status_code == 204
    r = issue(api, password_auth("alice", "pw-alice", scope={"domain": {"id": "default"}}))
    assert r.status_code == 201
    domain_token = r.headers["X-Subject-Token"]
    time.sleep(1.05)  # revocations are by whole second, as Keystone's
    assert api.delete(url, headers=admin.headers).status_code == 204
    assert _valid(api, admin, member.token)  # project-scoped: the domain role was not in it
    assert not _valid(api, admin, domain_token)
    # Still usable for a request.
    assert api.get("/compute/v2.1/servers", headers=member.compute()).status_code == 200


def test_project_grant_removal_revokes_that_projects_tokens_only(api, admin, member,
                                                                 other_member):
    reader = role_id(api, admin, "reader")
    url = f"{V3}/projects/{other_member.project_id}/users/{member.user_id}/roles/{reader}"
    assert api.put(url, headers=admin.headers).status_code == 204
    r = issue(api, password_auth("alice", "pw-alice",
                                 scope={"project": {"id": other_member.project_id}}))
    assert r.status_code == 201
    other_token = r.headers["X-Subject-Token"]
    time.sleep(1.05)
    assert api.delete(url, headers=admin.headers).status_code == 204
    assert not _valid(api, admin, other_token)
    assert _valid(api, admin, member.token)


def test_deleting_a_role_held_on_a_domain_keeps_project_tokens(api, admin, member):
    r = api.post(f"{V3}/roles", json={"role": {"name": "auditor"}}, headers=admin.headers)
    assert r.status_code == 201, r.text
    auditor = r.json()["role"]["id"]
    assert api.put(f"{V3}/domains/default/users/{member.user_id}/roles/{auditor}",
                   headers=admin.headers).status_code == 204
    time.sleep(1.05)
    assert api.delete(f"{V3}/roles/{auditor}", headers=admin.headers).status_code == 204
    assert _valid(api, admin, member.token)
