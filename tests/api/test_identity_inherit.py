"""OS-INHERIT: roles granted on a domain or project for the projects below it."""

from __future__ import annotations

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

INHERIT = f"{V3}/OS-INHERIT"


def test_domain_inherited_role_reaches_its_projects_not_the_domain(api: TestClient,
                                                                   admin: Caller) -> None:
    project = create_project(api, admin, "inh")
    user = create_user(api, admin, "heir", "pw-heir")
    member = role_id(api, admin, "member")
    url = f"{INHERIT}/domains/default/users/{user['id']}/roles/{member}/inherited_to_projects"
    assert api.head(url, headers=admin.headers).status_code == 404
    assert api.put(url, headers=admin.headers).status_code == 204
    assert api.head(url, headers=admin.headers).status_code == 204
    listed = api.get(f"{INHERIT}/domains/default/users/{user['id']}/roles/inherited_to_projects",
                     headers=admin.headers).json()["roles"]
    assert [r["id"] for r in listed] == [member]
    r = issue(api, password_auth("heir", "pw-heir", scope={"project": {"id": project["id"]}}))
    assert r.status_code == 201, r.text
    assert {x["name"] for x in r.json()["token"]["roles"]} == {"member", "reader"}
    token = r.headers["X-Subject-Token"]
    assert issue(api, password_auth("heir", "pw-heir",
                                    scope={"domain": {"id": "default"}})).status_code == 401
    found = api.get(f"{V3}/role_assignments?effective&scope.project.id={project['id']}",
                    headers=admin.headers).json()["role_assignments"]
    mine = [a for a in found if a["user"]["id"] == user["id"]]
    assert {a["role"]["id"] for a in mine} == {member, role_id(api, admin, "reader")}
    assert mine[0]["links"]["assignment"].endswith(
        f"/OS-INHERIT/domains/default/users/{user['id']}/roles/{member}/inherited_to_projects")
    assert api.delete(url, headers=admin.headers).status_code == 204
    assert_error(api.get(f"{V3}/auth/tokens", headers={**admin.headers,
                                                        "X-Subject-Token": token}), 404)
    found = api.get(f"{V3}/role_assignments?effective&user.id={user['id']}",
                    headers=admin.headers).json()["role_assignments"]
    assert found == []


def test_project_inherited_role_reaches_the_subtree_through_a_group(api: TestClient,
                                                                    admin: Caller) -> None:
    parent = create_project(api, admin, "top")
    leaf = create_project(api, admin, "leaf", parent_id=parent["id"])
    user = create_user(api, admin, "heir", "pw-heir")
    group = api.post(f"{V3}/groups", headers=admin.headers,
                     json={"group": {"name": "heirs"}}).json()["group"]
    api.put(f"{V3}/groups/{group['id']}/users/{user['id']}", headers=admin.headers)
    reader = role_id(api, admin, "reader")
    url = (f"{INHERIT}/projects/{parent['id']}/groups/{group['id']}/roles/{reader}"
           f"/inherited_to_projects")
    assert api.put(url, headers=admin.headers).status_code == 204
    assert issue(api, password_auth("heir", "pw-heir", scope={
        "project": {"id": leaf["id"]}})).status_code == 201
    assert issue(api, password_auth("heir", "pw-heir", scope={
        "project": {"id": parent["id"]}})).status_code == 401
    found = api.get(f"{V3}/role_assignments?effective&user.id={user['id']}",
                    headers=admin.headers).json()["role_assignments"]
    assert [a["scope"]["project"]["id"] for a in found] == [leaf["id"]]
    assert api.delete(f"{V3}/groups/{group['id']}", headers=admin.headers).status_code == 204
    assert api.head(url, headers=admin.headers).status_code == 404
    assert issue(api, password_auth("heir", "pw-heir", scope={
        "project": {"id": leaf["id"]}})).status_code == 401


def test_inherit_routes_are_admin_only(api: TestClient, admin: Caller, member: Caller,
                                       reader: Caller, other_member: Caller) -> None:
    role = role_id(api, admin, "member")
    for caller in (member, reader, other_member):
        base = f"{INHERIT}/projects/{caller.project_id}/users/{caller.user_id}/roles"
        assert_error(api.put(f"{base}/{role}/inherited_to_projects", headers=caller.headers), 403)
        assert api.head(f"{base}/{role}/inherited_to_projects",
                        headers=caller.headers).status_code == 403
        assert_error(api.delete(f"{base}/{role}/inherited_to_projects", headers=caller.headers),
                     403)
        assert_error(api.get(f"{INHERIT}/domains/default/users/{caller.user_id}/roles/"
                             f"inherited_to_projects", headers=caller.headers), 403)
    assert_error(api.put(f"{INHERIT}/domains/nosuch/users/{member.user_id}/roles/{role}/"
                         f"inherited_to_projects", headers=admin.headers), 404)
    assert_error(api.put(f"{INHERIT}/domains/default/users/{member.user_id}/roles/nosuch/"
                         f"inherited_to_projects", headers=admin.headers), 404)
    found = api.get(f"{V3}/role_assignments?effective&user.id={member.user_id}",
                    headers=admin.headers).json()["role_assignments"]
    assert {a["scope"]["project"]["id"] for a in found} == {member.project_id}
