"""Groups, membership, group role grants: Keystone's wire format, rights and cascades."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from tests.api.test_identity import (
    V3,
    assert_error,
    create_project,
    create_user,
    issue,
    password_auth,
    role_id,
)
from tests.conftest import Caller


def create_group(api: TestClient, admin: Caller, name: str, **fields: object) -> dict:
    r = api.post(f"{V3}/groups", headers=admin.headers, json={"group": {"name": name, **fields}})
    assert r.status_code == 201, r.text
    return r.json()["group"]


def test_group_crud_has_keystones_shape(api: TestClient, admin: Caller) -> None:
    group = create_group(api, admin, "ops", description="operators")
    assert group == {"id": group["id"], "name": "ops", "domain_id": "default",
                     "description": "operators",
                     "links": {"self": f"http://testserver{V3}/groups/{group['id']}"}}
    assert api.get(f"{V3}/groups/{group['id']}", headers=admin.headers).json()["group"] == group
    listed = api.get(f"{V3}/groups?name=ops", headers=admin.headers).json()["groups"]
    assert [g["id"] for g in listed] == [group["id"]]
    r = api.patch(f"{V3}/groups/{group['id']}", headers=admin.headers,
                  json={"group": {"name": "ops2", "description": None}})
    assert r.status_code == 200, r.text
    assert r.json()["group"]["name"] == "ops2" and r.json()["group"]["description"] == ""
    assert_error(api.post(f"{V3}/groups", headers=admin.headers,
                          json={"group": {"name": "ops2"}}), 409)
    # like Keystone, other attributes are kept and returned
    extra = create_group(api, admin, "tagged", project_id="p1")
    assert extra["project_id"] == "p1"
    assert api.get(f"{V3}/groups/{extra['id']}", headers=admin.headers).json()["group"][
        "project_id"] == "p1"
    assert_error(api.patch(f"{V3}/groups/{extra['id']}", headers=admin.headers,
                           json={"group": {"domain_id": "other"}}), 400)
    api.delete(f"{V3}/groups/{extra['id']}", headers=admin.headers)
    assert api.delete(f"{V3}/groups/{group['id']}", headers=admin.headers).status_code == 204
    assert_error(api.get(f"{V3}/groups/{group['id']}", headers=admin.headers), 404)


@pytest.mark.parametrize(("body", "field"), [
    ({"group": {}}, "name"),
    ({"group": {"name": ""}}, "name"),
    ({"group": {"name": "g" * 65}}, "name"),
    ({"group": {"name": "g", "description": 5}}, "description"),
    ({"group": {"name": "g", "domain_id": "no/such"}}, "domain_id"),
    ({"groups": {"name": "g"}}, "group"),
])
def test_bad_group_bodies_are_400_naming_the_field(api: TestClient, admin: Caller, body: dict,
                                                   field: str) -> None:
    r = api.post(f"{V3}/groups", headers=admin.headers, json=body)
    assert_error(r, 400)
    assert field in r.json()["error"]["message"]
    assert api.get(f"{V3}/groups", headers=admin.headers).json()["groups"] == []


def test_group_in_an_unknown_domain_is_404_and_writes_nothing(api: TestClient,
                                                              admin: Caller) -> None:
    assert_error(api.post(f"{V3}/groups", headers=admin.headers,
                          json={"group": {"name": "g", "domain_id": "nosuch"}}), 404)
    assert api.get(f"{V3}/groups", headers=admin.headers).json()["groups"] == []


def test_group_routes_are_authorised(api: TestClient, admin: Caller, member: Caller,
                                     reader: Caller, other_member: Caller) -> None:
    group = create_group(api, admin, "ops")
    gid = group["id"]
    for caller in (member, reader, other_member):
        h = caller.headers
        assert_error(api.post(f"{V3}/groups", headers=h, json={"group": {"name": "x"}}), 403)
        assert_error(api.patch(f"{V3}/groups/{gid}", headers=h,
                               json={"group": {"name": "x"}}), 403)
        assert_error(api.delete(f"{V3}/groups/{gid}", headers=h), 403)
        assert_error(api.get(f"{V3}/groups", headers=h), 403)  # project tokens: no domain
        assert_error(api.get(f"{V3}/groups/{gid}", headers=h), 403)
        assert_error(api.get(f"{V3}/groups/{gid}/users", headers=h), 403)
        assert_error(api.put(f"{V3}/groups/{gid}/users/{caller.user_id}", headers=h), 403)
        assert_error(api.delete(f"{V3}/groups/{gid}/users/{caller.user_id}", headers=h), 403)
        assert_error(api.get(f"{V3}/users/{admin.user_id}/groups", headers=h), 403)
        own = api.get(f"{V3}/users/{caller.user_id}/groups", headers=h)
        assert own.status_code == 200 and own.json()["groups"] == []
        role = role_id(api, admin, "member")
        assert_error(api.put(f"{V3}/projects/{caller.project_id}/groups/{gid}/roles/{role}",
                             headers=h), 403)
        assert_error(api.get(f"{V3}/projects/{caller.project_id}/groups/{gid}/roles",
                             headers=h), 403)
    assert api.get(f"{V3}/groups/{gid}", headers=admin.headers).json()["group"] == group
    assert api.get(f"{V3}/groups/{gid}/users", headers=admin.headers).json()["users"] == []


def test_membership_add_check_list_remove(api: TestClient, admin: Caller, member: Caller) -> None:
    gid = create_group(api, admin, "ops")["id"]
    url = f"{V3}/groups/{gid}/users/{member.user_id}"
    assert api.head(url, headers=admin.headers).status_code == 404
    assert api.put(url, headers=admin.headers).status_code == 204
    assert api.put(url, headers=admin.headers).status_code == 204  # idempotent
    assert api.head(url, headers=admin.headers).status_code == 204
    assert api.head(url, headers=member.headers).status_code == 204  # oneself
    users = api.get(f"{V3}/groups/{gid}/users", headers=admin.headers).json()["users"]
    assert [u["id"] for u in users] == [member.user_id]
    groups = api.get(f"{V3}/users/{member.user_id}/groups", headers=member.headers).json()
    assert [g["id"] for g in groups["groups"]] == [gid]
    assert api.delete(url, headers=admin.headers).status_code == 204
    assert_error(api.delete(url, headers=admin.headers), 404)
    assert_error(api.put(f"{V3}/groups/{gid}/users/nosuch", headers=admin.headers), 404)
    assert_error(api.put(f"{V3}/groups/nosuch/users/{member.user_id}", headers=admin.headers),
                 404)


def test_group_roles_reach_members_tokens_and_removal_revokes(api: TestClient, admin: Caller,
                                                               member: Caller) -> None:
    project = create_project(api, admin, "team")
    user = create_user(api, admin, "gina", "pw-gina")
    gid = create_group(api, admin, "team-members")["id"]
    member_role = role_id(api, admin, "member")
    grant_url = f"{V3}/projects/{project['id']}/groups/{gid}/roles/{member_role}"
    scope = {"project": {"id": project["id"]}}
    assert issue(api, password_auth("gina", "pw-gina", scope=scope)).status_code == 401
    assert api.put(grant_url, headers=admin.headers).status_code == 204
    assert api.head(grant_url, headers=admin.headers).status_code == 204
    roles = api.get(f"{V3}/projects/{project['id']}/groups/{gid}/roles",
                    headers=admin.headers).json()["roles"]
    assert [r["id"] for r in roles] == [member_role]
    assert issue(api, password_auth("gina", "pw-gina", scope=scope)).status_code == 401
    api.put(f"{V3}/groups/{gid}/users/{user['id']}", headers=admin.headers)
    r = issue(api, password_auth("gina", "pw-gina", scope=scope))
    assert r.status_code == 201, r.text
    assert {x["name"] for x in r.json()["token"]["roles"]} == {"member", "reader"}
    token = r.headers["X-Subject-Token"]
    projects = api.get(f"{V3}/auth/projects", headers={"X-Auth-Token": token}).json()
    assert [p["id"] for p in projects["projects"]] == [project["id"]]
    api.delete(f"{V3}/groups/{gid}/users/{user['id']}", headers=admin.headers)
    assert_error(api.get(f"{V3}/auth/tokens", headers={**admin.headers,
                                                        "X-Subject-Token": token}), 404)
    assert issue(api, password_auth("gina", "pw-gina", scope=scope)).status_code == 401


def test_group_grant_revoke_and_group_delete_revoke_members(api: TestClient,
                                                            admin: Caller) -> None:
    project = create_project(api, admin, "team")
    user = create_user(api, admin, "gina", "pw-gina")
    gid = create_group(api, admin, "g")["id"]
    member_role = role_id(api, admin, "member")
    grant_url = f"{V3}/projects/{project['id']}/groups/{gid}/roles/{member_role}"
    api.put(grant_url, headers=admin.headers)
    api.put(f"{V3}/groups/{gid}/users/{user['id']}", headers=admin.headers)
    scope = {"project": {"id": project["id"]}}
    token = issue(api, password_auth("gina", "pw-gina", scope=scope)).headers["X-Subject-Token"]
    assert api.delete(grant_url, headers=admin.headers).status_code == 204
    assert api.head(grant_url, headers=admin.headers).status_code == 404
    assert_error(api.get(f"{V3}/auth/tokens", headers={**admin.headers,
                                                        "X-Subject-Token": token}), 404)
    api.put(grant_url, headers=admin.headers)
    token = issue(api, password_auth("gina", "pw-gina", scope=scope)).headers["X-Subject-Token"]
    assert api.delete(f"{V3}/groups/{gid}", headers=admin.headers).status_code == 204
    assert_error(api.get(f"{V3}/auth/tokens", headers={**admin.headers,
                                                        "X-Subject-Token": token}), 404)
    found = api.get(f"{V3}/role_assignments?scope.project.id={project['id']}",
                    headers=admin.headers).json()["role_assignments"]
    assert found == []


def test_group_domain_grants(api: TestClient, admin: Caller) -> None:
    gid = create_group(api, admin, "g")["id"]
    user = create_user(api, admin, "gina", "pw-gina")
    api.put(f"{V3}/groups/{gid}/users/{user['id']}", headers=admin.headers)
    reader = role_id(api, admin, "reader")
    url = f"{V3}/domains/default/groups/{gid}/roles/{reader}"
    assert api.put(url, headers=admin.headers).status_code == 204
    r = issue(api, password_auth("gina", "pw-gina", scope={"domain": {"id": "default"}}))
    assert r.status_code == 201, r.text
    assert r.json()["token"]["domain"]["id"] == "default"
    token = r.headers["X-Subject-Token"]
    domains = api.get(f"{V3}/auth/domains", headers={"X-Auth-Token": token}).json()["domains"]
    assert [d["id"] for d in domains] == ["default"]
    # a domain reader sees its domain's groups and their members
    h = {"X-Auth-Token": token}
    assert [g["id"] for g in api.get(f"{V3}/groups", headers=h).json()["groups"]] == [gid]
    assert api.get(f"{V3}/groups/{gid}/users", headers=h).status_code == 200
    assert_error(api.post(f"{V3}/groups", headers=h, json={"group": {"name": "x"}}), 403)
    assert api.delete(url, headers=admin.headers).status_code == 204


def test_effective_assignments_expand_groups(api: TestClient, admin: Caller,
                                             member: Caller) -> None:
    project = create_project(api, admin, "team")
    gid = create_group(api, admin, "g")["id"]
    api.put(f"{V3}/groups/{gid}/users/{member.user_id}", headers=admin.headers)
    member_role = role_id(api, admin, "member")
    api.put(f"{V3}/projects/{project['id']}/groups/{gid}/roles/{member_role}",
            headers=admin.headers)
    url = f"{V3}/role_assignments"
    direct = api.get(f"{url}?group.id={gid}", headers=admin.headers).json()["role_assignments"]
    assert [(a["group"]["id"], a["role"]["id"]) for a in direct] == [(gid, member_role)]
    assert "user" not in direct[0]
    effective = api.get(f"{url}?effective&scope.project.id={project['id']}&include_names",
                        headers=admin.headers).json()["role_assignments"]
    assert {(a["user"]["name"], a["role"]["name"]) for a in effective} == {
        ("alice", "member"), ("alice", "reader")}
    assert all("group" not in a for a in effective)
    via = next(a for a in effective if a["role"]["name"] == "member")
    assert via["links"]["membership"].endswith(f"/groups/{gid}/users/{member.user_id}")
    assert via["links"]["assignment"].endswith(
        f"/projects/{project['id']}/groups/{gid}/roles/{member_role}")
    mine = api.get(f"{url}?effective&user.id={member.user_id}", headers=member.headers).json()
    assert {a["scope"]["project"]["id"] for a in mine["role_assignments"]} == {
        member.project_id, project["id"]}
    assert_error(api.get(f"{url}?effective&group.id={gid}", headers=admin.headers), 400)
    assert_error(api.get(f"{url}?group.id={gid}", headers=member.headers), 403)


def test_role_assignments_include_subtree_and_bad_filters(api: TestClient, admin: Caller,
                                                          member: Caller) -> None:
    parent = create_project(api, admin, "parent")
    child = create_project(api, admin, "child", parent_id=parent["id"])
    user = create_user(api, admin, "kid")
    reader = role_id(api, admin, "reader")
    api.put(f"{V3}/projects/{child['id']}/users/{user['id']}/roles/{reader}",
            headers=admin.headers)
    url = f"{V3}/role_assignments?scope.project.id={parent['id']}"
    assert api.get(url, headers=admin.headers).json()["role_assignments"] == []
    found = api.get(f"{url}&include_subtree=true", headers=admin.headers).json()
    assert [(a["user"]["id"], a["scope"]["project"]["id"]) for a in found["role_assignments"]] \
        == [(user["id"], child["id"])]
    for query, field in [("include_subtree=true", "include_subtree"),
                         ("scope.system=some", "scope.system"),
                         (f"scope.project.id={parent['id']}&scope.domain.id=default",
                          "scope.domain.id"),
                         (f"user.id={user['id']}&group.id=g", "group.id")]:
        r = api.get(f"{V3}/role_assignments?{query}", headers=admin.headers)
        assert_error(r, 400)
        assert field in r.json()["error"]["message"]
    # a non-admin lists only their own, whatever they ask for
    mine = api.get(f"{V3}/role_assignments", headers=member.headers).json()["role_assignments"]
    assert {a["user"]["id"] for a in mine} == {member.user_id}
    assert_error(api.get(f"{V3}/role_assignments?user.id={user['id']}",
                         headers=member.headers), 403)
