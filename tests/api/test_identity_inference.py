"""Implied roles (role inference rules), domain-specific roles and system-scoped tokens."""

from __future__ import annotations

from starlette.testclient import TestClient

from tests.api.test_identity import (
    PUBLIC,
    V3,
    assert_error,
    create_project,
    create_user,
    grant,
    issue,
    password_auth,
    role_id,
)
from tests.conftest import ADMIN_PASSWORD, Caller


def create_role(api: TestClient, admin: Caller, name: str, **fields: object) -> dict:
    r = api.post(f"{V3}/roles", headers=admin.headers, json={"role": {"name": name, **fields}})
    assert r.status_code == 201, r.text
    return r.json()["role"]


def test_bootstrap_stores_the_default_inference_rules(api: TestClient, admin: Caller) -> None:
    rules = api.get(f"{V3}/role_inferences", headers=admin.headers).json()
    pairs = {(r["prior_role"]["name"], i["name"]) for r in rules["role_inferences"]
             for i in r["implies"]}
    assert pairs == {("admin", "manager"), ("manager", "member"), ("member", "reader")}
    assert rules["links"]["self"] == f"{PUBLIC}{V3}/role_inferences"


def test_rule_lifecycle_and_tokens_follow_it(api: TestClient, admin: Caller) -> None:
    prior, implied = create_role(api, admin, "deployer"), create_role(api, admin, "viewer")
    url = f"{V3}/roles/{prior['id']}/implies/{implied['id']}"
    assert api.head(url, headers=admin.headers).status_code == 404
    r = api.put(url, headers=admin.headers)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["role_inference"]["prior_role"] == {
        "id": prior["id"], "name": "deployer",
        "links": {"self": f"{PUBLIC}{V3}/roles/{prior['id']}"}}
    assert body["role_inference"]["implies"]["id"] == implied["id"]
    assert body["links"]["self"] == f"{PUBLIC}{url}"
    assert api.get(url, headers=admin.headers).json() == body
    assert api.head(url, headers=admin.headers).status_code == 204
    listed = api.get(f"{V3}/roles/{prior['id']}/implies", headers=admin.headers).json()
    assert [i["id"] for i in listed["role_inference"]["implies"]] == [implied["id"]]
    # a chain: viewer implies reader, so deployer gives deployer, viewer and reader
    api.put(f"{V3}/roles/{implied['id']}/implies/{role_id(api, admin, 'reader')}",
            headers=admin.headers)
    project = create_project(api, admin, "p")
    user = create_user(api, admin, "dee", "pw-dee")
    grant(api, admin, project["id"], user["id"], "deployer")
    r = issue(api, password_auth("dee", "pw-dee", scope={"project": {"id": project["id"]}}))
    assert {x["name"] for x in r.json()["token"]["roles"]} == {"deployer", "viewer", "reader"}
    found = api.get(f"{V3}/role_assignments?effective&user.id={user['id']}",
                    headers=admin.headers).json()["role_assignments"]
    assert {a["role"]["id"] for a in found} == {prior["id"], implied["id"],
                                                role_id(api, admin, "reader")}
    assert api.delete(url, headers=admin.headers).status_code == 204
    assert api.head(url, headers=admin.headers).status_code == 404
    assert_error(api.delete(url, headers=admin.headers), 404)
    r = issue(api, password_auth("dee", "pw-dee", scope={"project": {"id": project["id"]}}))
    assert {x["name"] for x in r.json()["token"]["roles"]} == {"deployer"}


def test_cycles_and_domain_roles_are_refused(api: TestClient, admin: Caller) -> None:
    a, b = create_role(api, admin, "a"), create_role(api, admin, "b")
    api.put(f"{V3}/roles/{a['id']}/implies/{b['id']}", headers=admin.headers)
    assert_error(api.put(f"{V3}/roles/{b['id']}/implies/{a['id']}", headers=admin.headers), 400)
    assert_error(api.put(f"{V3}/roles/{a['id']}/implies/{a['id']}", headers=admin.headers), 400)
    dom = create_role(api, admin, "acme-only", domain_id="default")
    assert_error(api.put(f"{V3}/roles/{a['id']}/implies/{dom['id']}", headers=admin.headers),
                 403)  # a global role cannot imply a domain-specific one; the reverse is fine
    assert api.put(f"{V3}/roles/{dom['id']}/implies/{a['id']}",
                   headers=admin.headers).status_code == 201
    assert_error(api.put(f"{V3}/roles/{a['id']}/implies/nosuch", headers=admin.headers), 404)
    rules = api.get(f"{V3}/roles/{a['id']}/implies", headers=admin.headers).json()
    assert [i["id"] for i in rules["role_inference"]["implies"]] == [b["id"]]


def test_inference_routes_are_admin_only(api: TestClient, admin: Caller, member: Caller,
                                         reader: Caller, other_member: Caller) -> None:
    a, b = create_role(api, admin, "a"), create_role(api, admin, "b")
    url = f"{V3}/roles/{a['id']}/implies/{b['id']}"
    for caller in (member, reader, other_member):
        h = caller.headers
        assert_error(api.put(url, headers=h), 403)
        assert_error(api.get(url, headers=h), 403)
        assert api.head(url, headers=h).status_code == 403
        assert_error(api.delete(url, headers=h), 403)
        assert_error(api.get(f"{V3}/roles/{a['id']}/implies", headers=h), 403)
        assert_error(api.get(f"{V3}/role_inferences", headers=h), 403)
    assert api.head(url, headers=admin.headers).status_code == 404  # nothing was created


def test_domain_specific_roles(api: TestClient, admin: Caller) -> None:
    role = create_role(api, admin, "acme-op", domain_id="default")
    assert role["domain_id"] == "default"
    assert "acme-op" not in {r["name"] for r in api.get(f"{V3}/roles", headers=admin.headers)
                             .json()["roles"]}
    listed = api.get(f"{V3}/roles?domain_id=default", headers=admin.headers).json()["roles"]
    assert [r["id"] for r in listed] == [role["id"]]
    other = api.post(f"{V3}/domains", headers=admin.headers,
                     json={"domain": {"name": "Other"}}).json()["domain"]
    foreign = create_project(api, admin, "far", domain_id=other["id"])
    user = create_user(api, admin, "u1")
    r = api.put(f"{V3}/projects/{foreign['id']}/users/{user['id']}/roles/{role['id']}",
                headers=admin.headers)
    assert_error(r, 403)
    assert "must be in the same domain as the role" in r.json()["error"]["message"]
    local = create_project(api, admin, "near")
    assert api.put(f"{V3}/projects/{local['id']}/users/{user['id']}/roles/{role['id']}",
                   headers=admin.headers).status_code == 204
    # a domain-specific role stands only for what it implies: not in tokens nor effective lists
    url = f"{V3}/role_assignments?effective&user.id={user['id']}"
    assert api.get(url, headers=admin.headers).json()["role_assignments"] == []
    api.put(f"{V3}/roles/{role['id']}/implies/{role_id(api, admin, 'reader')}",
            headers=admin.headers)
    found = api.get(url, headers=admin.headers).json()["role_assignments"]
    assert [a["role"]["id"] for a in found] == [role_id(api, admin, "reader")]
    r = issue(api, password_auth("u1", "pw", scope={"project": {"id": local["id"]}}))
    assert r.status_code == 201, r.text
    assert [x["name"] for x in r.json()["token"]["roles"]] == ["reader"]


def test_system_scoped_token(api: TestClient, admin: Caller, member: Caller) -> None:
    scope = {"system": {"all": True}}
    r = issue(api, password_auth("admin", ADMIN_PASSWORD, scope=scope))
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    assert token["system"] == {"all": True}
    assert {x["name"] for x in token["roles"]} == {"admin", "manager", "member", "reader"}
    assert "project" not in token and "domain" not in token and token["catalog"]
    system_token = r.headers["X-Subject-Token"]
    h = {"X-Auth-Token": system_token}
    assert api.get(f"{V3}/auth/tokens", headers={**h, "X-Subject-Token": system_token}).json()[
        "token"]["system"] == {"all": True}
    assert api.get(f"{V3}/auth/system", headers=h).json()["system"] == [{"all": True}]
    assert api.get(f"{V3}/auth/catalog", headers=h).status_code == 200
    assert api.get(f"{V3}/auth/system", headers=member.headers).json()["system"] == []
    assert issue(api, password_auth("alice", "pw-alice", scope=scope)).status_code == 401
    assert_error(issue(api, password_auth("admin", ADMIN_PASSWORD,
                                          scope={"system": {"all": False}})), 400)


def test_system_grants(api: TestClient, admin: Caller, member: Caller, reader: Caller,
                       other_member: Caller) -> None:
    reader_role = role_id(api, admin, "reader")
    url = f"{V3}/system/users/{member.user_id}/roles/{reader_role}"
    for caller in (member, reader, other_member):
        assert_error(api.put(url, headers=caller.headers), 403)
        assert_error(api.delete(url, headers=caller.headers), 403)
        assert_error(api.get(f"{V3}/system/users/{admin.user_id}/roles",
                             headers=caller.headers), 403)
    assert api.head(url, headers=admin.headers).status_code == 404
    assert api.put(url, headers=admin.headers).status_code == 204
    assert api.head(url, headers=member.headers).status_code == 204  # their own
    r = issue(api, password_auth("alice", "pw-alice", scope={"system": {"all": True}}))
    assert r.status_code == 201
    assert {x["name"] for x in r.json()["token"]["roles"]} == {"reader"}
    token = r.headers["X-Subject-Token"]
    assert api.delete(url, headers=admin.headers).status_code == 204
    assert_error(api.get(f"{V3}/auth/tokens", headers={**admin.headers,
                                                        "X-Subject-Token": token}), 404)
