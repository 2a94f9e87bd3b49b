"""Domains: rights on every route, enable/disable, and delete's cascade."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from tests.api.test_identity import (
    V3,
    assert_error,
    create_project,
    create_user,
    grant,
    issue,
    password_auth,
    role_id,
)
from tests.conftest import Caller


def create_domain(api: TestClient, admin: Caller, name: str, **fields: object) -> dict:
    r = api.post(f"{V3}/domains", headers=admin.headers, json={"domain": {"name": name, **fields}})
    assert r.status_code == 201, r.text
    return r.json()["domain"]


def acme_with_everything(api: TestClient, admin: Caller) -> dict:
    """A domain with a project, a user with a role on it, a group with a member and grants."""
    domain = create_domain(api, admin, "Acme")
    project = create_project(api, admin, "ops", domain_id=domain["id"])
    user = create_user(api, admin, "wile", "pw-wile", domain_id=domain["id"])
    grant(api, admin, project["id"], user["id"], "member")
    group = api.post(f"{V3}/groups", headers=admin.headers,
                     json={"group": {"name": "g", "domain_id": domain["id"]}}).json()["group"]
    api.put(f"{V3}/groups/{group['id']}/users/{user['id']}", headers=admin.headers)
    reader = role_id(api, admin, "reader")
    assert api.put(f"{V3}/domains/{domain['id']}/groups/{group['id']}/roles/{reader}",
                   headers=admin.headers).status_code == 204
    return {"domain": domain, "project": project, "user": user, "group": group}


def test_domain_routes_are_authorised(api: TestClient, admin: Caller, member: Caller,
                                      reader: Caller, other_member: Caller) -> None:
    acme = create_domain(api, admin, "Acme")
    for caller in (member, reader, other_member):
        h = caller.headers
        assert_error(api.post(f"{V3}/domains", headers=h, json={"domain": {"name": "x"}}), 403)
        assert_error(api.patch(f"{V3}/domains/{acme['id']}", headers=h,
                               json={"domain": {"enabled": False}}), 403)
        assert_error(api.delete(f"{V3}/domains/{acme['id']}", headers=h), 403)
        assert_error(api.get(f"{V3}/domains/{acme['id']}", headers=h), 404)  # not theirs
        assert [d["id"] for d in api.get(f"{V3}/domains", headers=h).json()["domains"]] == [
            "default"]
    assert api.get(f"{V3}/domains/{acme['id']}", headers=admin.headers).json()["domain"][
        "enabled"] is True


@pytest.mark.parametrize(("body", "field"), [
    ({"domain": {}}, "name"),
    ({"domain": {"name": 5}}, "name"),
    ({"domain": {"name": "a", "enabled": "yes"}}, "enabled"),
    ({"domain": {"name": "a", "colour": "red"}}, "colour"),
])
def test_bad_domain_bodies_are_400_naming_the_field(api: TestClient, admin: Caller, body: dict,
                                                    field: str) -> None:
    r = api.post(f"{V3}/domains", headers=admin.headers, json=body)
    assert_error(r, 400)
    assert field in r.json()["error"]["message"]
    assert len(api.get(f"{V3}/domains", headers=admin.headers).json()["domains"]) == 1


def test_disabled_domain_users_cannot_authenticate_and_tokens_stop(api: TestClient,
                                                                   admin: Caller) -> None:
    acme = acme_with_everything(api, admin)
    scope = {"project": {"id": acme["project"]["id"]}}
    auth = password_auth("wile", "pw-wile", user_domain={"id": acme["domain"]["id"]},
                         scope=scope)
    token = issue(api, auth).headers["X-Subject-Token"]
    domain_auth = password_auth("wile", "pw-wile", user_domain={"id": acme["domain"]["id"]},
                                scope={"domain": {"id": acme["domain"]["id"]}})
    domain_token = issue(api, domain_auth).headers["X-Subject-Token"]
    r = api.patch(f"{V3}/domains/{acme['domain']['id']}", headers=admin.headers,
                  json={"domain": {"enabled": False}})
    assert r.status_code == 200 and r.json()["domain"]["enabled"] is False
    for t in (token, domain_token):
        assert_error(api.get(f"{V3}/auth/tokens", headers={**admin.headers,
                                                            "X-Subject-Token": t}), 404)
    assert issue(api, auth).status_code == 401
    assert issue(api, domain_auth).status_code == 401
    api.patch(f"{V3}/domains/{acme['domain']['id']}", headers=admin.headers,
              json={"domain": {"enabled": True}})
    assert issue(api, auth).status_code == 201


def test_delete_cascades_to_projects_users_groups_and_assignments(api: TestClient,
                                                                  admin: Caller) -> None:
    acme = acme_with_everything(api, admin)
    did = acme["domain"]["id"]
    role = api.post(f"{V3}/roles", headers=admin.headers,
                    json={"role": {"name": "acme-viewer", "domain_id": did}}).json()["role"]
    r = api.delete(f"{V3}/domains/{did}", headers=admin.headers)
    assert_error(r, 403)
    assert "disable it first" in r.json()["error"]["message"]
    api.patch(f"{V3}/domains/{did}", headers=admin.headers, json={"domain": {"enabled": False}})
    assert api.delete(f"{V3}/domains/{did}", headers=admin.headers).status_code == 204
    h = admin.headers
    assert_error(api.get(f"{V3}/projects/{acme['project']['id']}", headers=h), 404)
    assert_error(api.get(f"{V3}/users/{acme['user']['id']}", headers=h), 404)
    assert_error(api.get(f"{V3}/groups/{acme['group']['id']}", headers=h), 404)
    assert_error(api.get(f"{V3}/roles/{role['id']}", headers=h), 404)
    everything = api.get(f"{V3}/role_assignments", headers=h).json()["role_assignments"]
    touched = {acme["project"]["id"], did, acme["user"]["id"], acme["group"]["id"]}
    for a in everything:
        ids = {a.get("user", {}).get("id"), a.get("group", {}).get("id"),
               *(v.get("id") for v in a["scope"].values() if isinstance(v, dict))}
        assert not ids & touched
    assert_error(api.delete(f"{V3}/domains/{did}", headers=h), 404)


def test_domain_scoped_admin_token_and_domain_grants(api: TestClient, admin: Caller) -> None:
    acme = create_domain(api, admin, "Acme")
    user = create_user(api, admin, "dom", "pw-dom", domain_id=acme["id"])
    admin_role = role_id(api, admin, "admin")
    url = f"{V3}/domains/{acme['id']}/users/{user['id']}/roles/{admin_role}"
    assert api.put(url, headers=admin.headers).status_code == 204
    r = issue(api, password_auth("dom", "pw-dom", user_domain={"id": acme["id"]},
                                 scope={"domain": {"name": "Acme"}}))
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    assert token["domain"] == {"id": acme["id"], "name": "Acme"}
    assert {x["name"] for x in token["roles"]} == {"admin", "manager", "member", "reader"}
    assert "project" not in token and token["catalog"]
    found = api.get(f"{V3}/role_assignments?scope.domain.id={acme['id']}&effective",
                    headers=admin.headers).json()["role_assignments"]
    assert {a["role"]["id"] for a in found} == {admin_role, role_id(api, admin, "manager"),
                                                role_id(api, admin, "member"),
                                                role_id(api, admin, "reader")}


def test_users_and_projects_listed_per_the_callers_rights(api: TestClient, admin: Caller,
                                                          member: Caller) -> None:
    acme = create_domain(api, admin, "Acme")
    project = create_project(api, admin, "ops", domain_id=acme["id"])
    wile = create_user(api, admin, "wile", "pw-wile", domain_id=acme["id"])
    dom = create_user(api, admin, "dom", "pw-dom", domain_id=acme["id"])
    reader = role_id(api, admin, "reader")
    api.put(f"{V3}/domains/{acme['id']}/users/{dom['id']}/roles/{reader}", headers=admin.headers)
    r = issue(api, password_auth("dom", "pw-dom", user_domain={"id": acme["id"]},
                                 scope={"domain": {"id": acme["id"]}}))
    h = {"X-Auth-Token": r.headers["X-Subject-Token"]}
    # a domain reader: its domain's users and projects, nothing of another domain
    users = api.get(f"{V3}/users", headers=h).json()["users"]
    assert {u["name"] for u in users} == {"wile", "dom"}
    assert api.get(f"{V3}/users?domain_id=default", headers=h).json()["users"] == []
    assert api.get(f"{V3}/users/{wile['id']}", headers=h).status_code == 200
    assert_error(api.get(f"{V3}/users/{member.user_id}", headers=h), 404)
    projects = api.get(f"{V3}/projects", headers=h).json()["projects"]
    assert [p["id"] for p in projects] == [project["id"]]
    assert_error(api.get(f"{V3}/projects/{member.project_id}", headers=h), 404)
    # a project member: no listing (Keystone's default policy), but themselves and their projects
    assert_error(api.get(f"{V3}/users", headers=member.headers), 403)
    assert_error(api.get(f"{V3}/projects", headers=member.headers), 403)
    assert api.get(f"{V3}/users/{member.user_id}", headers=member.headers).status_code == 200
    own = api.get(f"{V3}/auth/projects", headers=member.headers).json()["projects"]
    assert [p["id"] for p in own] == [member.project_id]
    assert api.get(f"{V3}/users/{member.user_id}/projects",
                   headers=member.headers).status_code == 200
    assert_error(api.get(f"{V3}/users/{wile['id']}/projects", headers=member.headers), 404)
    # the admin: everyone
    everyone = {u["name"] for u in api.get(f"{V3}/users", headers=admin.headers).json()["users"]}
    assert {"wile", "dom", "alice", "admin"} <= everyone
