"""Keystone v3 under /identity, through the HTTP API."""

from __future__ import annotations

import re
import time

import pytest
from sqlalchemy import event
from starlette.testclient import TestClient

from cirrus.identity import catalog
from tests.conftest import ADMIN_PASSWORD, Caller

V3 = "/identity/v3"
PUBLIC = "http://testserver"
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
UNAUTHENTICATED = "The request you have made requires authentication."


def password_auth(name: str, password: str, *, user_domain: dict | None = None,
                  user_id: str | None = None, scope: object = None) -> dict:
    user: dict = {"id": user_id} if user_id else {"name": name,
                                                  "domain": user_domain or {"id": "default"}}
    body: dict = {"auth": {"identity": {"methods": ["password"],
                                        "password": {"user": {**user, "password": password}}}}}
    if scope is not None:
        body["auth"]["scope"] = scope
    return body


def project_scope(name: str, domain: str = "Default") -> dict:
    return {"project": {"name": name, "domain": {"name": domain}}}


def issue(api: TestClient, body: dict, query: str = ""):
    return api.post(f"{V3}/auth/tokens{query}", json=body)


def token_for(api: TestClient, name: str, password: str, scope: object = None) -> str:
    r = issue(api, password_auth(name, password, scope=scope))
    assert r.status_code == 201, r.text
    return r.headers["X-Subject-Token"]


def admin_token(api: TestClient) -> str:
    return token_for(api, "admin", ADMIN_PASSWORD, project_scope("admin"))


def assert_error(r, status: int, message: str | None = None) -> None:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == status
    assert error["title"]
    if message is not None:
        assert error["message"] == message


def create_user(api: TestClient, admin: Caller, name: str, password: str = "pw",
                **fields: object) -> dict:
    r = api.post(f"{V3}/users", headers=admin.headers,
                 json={"user": {"name": name, "password": password, **fields}})
    assert r.status_code == 201, r.text
    return r.json()["user"]


def create_project(api: TestClient, admin: Caller, name: str, **fields: object) -> dict:
    r = api.post(f"{V3}/projects", headers=admin.headers,
                 json={"project": {"name": name, **fields}})
    assert r.status_code == 201, r.text
    return r.json()["project"]


def role_id(api: TestClient, admin: Caller, name: str) -> str:
    roles = api.get(f"{V3}/roles?name={name}", headers=admin.headers).json()["roles"]
    assert len(roles) == 1
    return roles[0]["id"]


def grant(api: TestClient, admin: Caller, project_id: str, user_id: str, role: str) -> None:
    r = api.put(f"{V3}/projects/{project_id}/users/{user_id}/roles/{role_id(api, admin, role)}",
                headers=admin.headers)
    assert r.status_code == 204, r.text


def past_revocation_second() -> None:
    """Revocations compare whole seconds (as Keystone does): let the clock pass the second."""
    time.sleep(1.05 - time.time() % 1)


# ---------------------------------------------------------------- version discovery


def test_version_list_answers_300_without_a_token(api: TestClient) -> None:
    for path in ("/identity", "/identity/"):
        r = api.get(path)
        assert r.status_code == 300
        (version,) = r.json()["versions"]["values"]
        assert version["id"] == "v3.14"
        assert version["links"] == [{"rel": "self", "href": f"{PUBLIC}/identity/v3/"}]


def test_v3_document_points_at_the_public_url(api: TestClient) -> None:
    for path in ("/identity/v3", "/identity/v3/"):
        r = api.get(path)
        assert r.status_code == 200
        version = r.json()["version"]
        assert version["status"] == "stable"
        assert version["updated"].endswith("Z")
        assert version["links"] == [{"rel": "self", "href": f"{PUBLIC}/identity/v3/"}]
        assert version["media-types"][0]["type"] == "application/vnd.openstack.identity-v3+json"


# ---------------------------------------------------------------- issuing tokens


def test_password_token_scoped_by_names_has_keystones_shape(api: TestClient, admin: Caller) -> None:
    r = issue(api, password_auth("admin", ADMIN_PASSWORD, user_domain={"name": "Default"},
                                 scope=project_scope("admin")))
    assert r.status_code == 201
    assert r.headers["X-Subject-Token"]
    token = r.json()["token"]
    assert token["methods"] == ["password"]
    assert token["user"] == {"id": admin.user_id, "name": "admin", "password_expires_at": None,
                             "domain": {"id": "default", "name": "Default"}}
    assert token["project"] == {"id": admin.project_id, "name": "admin",
                                "domain": {"id": "default", "name": "Default"}}
    assert token["is_domain"] is False
    assert {r["name"] for r in token["roles"]} == {"admin", "manager", "member", "reader"}
    assert all(set(role) == {"id", "name"} for role in token["roles"])
    assert ISO_Z.match(token["issued_at"]) and ISO_Z.match(token["expires_at"])
    assert token["expires_at"] > token["issued_at"]
    assert len(token["audit_ids"]) == 1
    services = {entry["type"]: entry for entry in token["catalog"]}
    assert set(services) == {row.type for row in catalog.SERVICES} >= {"identity", "compute",
                                                                       "image"}
    assert {ep["interface"] for ep in services["compute"]["endpoints"]} == {
        "public", "internal", "admin"}
    assert services["identity"]["endpoints"][0]["url"] == f"{PUBLIC}/identity"
    assert services["compute"]["endpoints"][0]["url"] == f"{PUBLIC}/compute/v2.1"
    assert services["image"]["endpoints"][0]["region_id"] == "RegionOne"


def test_password_token_by_user_id_and_project_id(api: TestClient, member: Caller) -> None:
    r = issue(api, password_auth("", "pw-alice", user_id=member.user_id,
                                 scope={"project": {"id": member.project_id}}))
    assert r.status_code == 201
    token = r.json()["token"]
    assert token["project"]["id"] == member.project_id
    assert [role["name"] for role in token["roles"]] == ["member", "reader"]


def test_project_scope_by_name_with_domain_id(api: TestClient, member: Caller) -> None:
    scope = {"project": {"name": "project-a", "domain": {"id": "default"}}}
    r = issue(api, password_auth("alice", "pw-alice", scope=scope))
    assert r.status_code == 201
    assert r.json()["token"]["project"]["id"] == member.project_id


def test_no_scope_means_the_default_project_as_keystone_does(api: TestClient,
                                                             member: Caller) -> None:
    r = issue(api, password_auth("alice", "pw-alice"))
    assert r.status_code == 201
    assert r.json()["token"]["project"]["id"] == member.project_id


def test_explicitly_unscoped_token_has_no_project_roles_or_catalog(api: TestClient,
                                                                   member: Caller) -> None:
    r = issue(api, password_auth("alice", "pw-alice", scope="unscoped"))
    assert r.status_code == 201
    token = r.json()["token"]
    assert not {"project", "domain", "roles", "catalog", "is_domain"} & set(token)
    assert token["user"]["id"] == member.user_id


def test_no_scope_and_no_default_project_is_unscoped(api: TestClient, admin: Caller) -> None:
    create_user(api, admin, "loner")
    r = issue(api, password_auth("loner", "pw"))
    assert r.status_code == 201
    assert "project" not in r.json()["token"]


def test_domain_scoped_token(api: TestClient, admin: Caller) -> None:
    r = issue(api, password_auth("admin", ADMIN_PASSWORD, scope={"domain": {"name": "Default"}}))
    assert r.status_code == 201
    token = r.json()["token"]
    assert token["domain"] == {"id": "default", "name": "Default"}
    assert "project" not in token
    assert "admin" in {role["name"] for role in token["roles"]}
    assert token["catalog"]


def test_domain_scope_without_a_domain_role_is_401(api: TestClient, member: Caller) -> None:
    r = issue(api, password_auth("alice", "pw-alice", scope={"domain": {"id": "default"}}))
    assert_error(r, 401, UNAUTHENTICATED)


def test_nocatalog_leaves_the_catalog_out(api: TestClient, admin: Caller) -> None:
    r = issue(api, password_auth("admin", ADMIN_PASSWORD, scope=project_scope("admin")),
              "?nocatalog")
    assert r.status_code == 201
    assert "catalog" not in r.json()["token"]
    assert r.json()["token"]["roles"]


@pytest.mark.parametrize("case", ["wrong password", "unknown user", "unknown domain",
                                  "disabled user", "no role on project", "unknown project",
                                  "disabled project", "system scope"])
def test_every_authentication_failure_is_the_same_401(api: TestClient, admin: Caller,
                                                      member: Caller, case: str) -> None:
    name, password, scope = "alice", "pw-alice", project_scope("project-a")
    user_domain = None
    if case == "wrong password":
        password = "nope"
    elif case == "unknown user":
        name = "mallory"
    elif case == "unknown domain":
        user_domain = {"name": "Elsewhere"}
    elif case == "disabled user":
        api.patch(f"{V3}/users/{member.user_id}", headers=admin.headers,
                  json={"user": {"enabled": False}})
    elif case == "no role on project":
        scope = project_scope("admin")
    elif case == "unknown project":
        scope = {"project": {"id": "f" * 32}}
    elif case == "disabled project":
        api.patch(f"{V3}/projects/{member.project_id}", headers=admin.headers,
                  json={"project": {"enabled": False}})
    elif case == "system scope":
        scope = {"system": {"all": True}}
    r = issue(api, password_auth(name, password, user_domain=user_domain, scope=scope))
    assert_error(r, 401, UNAUTHENTICATED)
    assert r.headers["WWW-Authenticate"].startswith("Keystone uri=")


@pytest.mark.parametrize(("body", "field"), [
    ({}, "auth"),
    ({"auth": {}}, "identity"),
    ({"auth": {"identity": {"methods": "password"}}}, "methods"),
    ({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "x"}}}}},
     "password"),
    ({"auth": {"identity": {"methods": ["password"]}}}, "password"),
    ({"auth": {"identity": {"methods": ["token"], "token": {}}}}, "id"),
])
def test_malformed_auth_bodies_are_400_naming_the_field(api: TestClient, body: dict,
                                                        field: str) -> None:
    r = issue(api, body)
    assert_error(r, 400)
    assert field in r.json()["error"]["message"]


def test_a_400_never_echoes_the_password(api: TestClient) -> None:
    body = password_auth("admin", ADMIN_PASSWORD)
    body["auth"]["identity"]["password"]["user"]["domain"] = "not-an-object"
    r = issue(api, body)
    assert_error(r, 400)
    assert ADMIN_PASSWORD not in r.text
    body = password_auth("admin", ADMIN_PASSWORD)
    body["auth"]["identity"]["password"]["user"]["password"] = 424242
    r = issue(api, body)
    assert_error(r, 400)
    assert "424242" not in r.text


def test_name_without_domain_is_400(api: TestClient) -> None:
    body = {"auth": {"identity": {"methods": ["password"],
                                  "password": {"user": {"name": "admin", "password": "x"}}}}}
    assert_error(issue(api, body), 400)


def test_unsupported_method_is_401(api: TestClient) -> None:
    body = {"auth": {"identity": {"methods": ["totp"], "totp": {}}}}
    assert_error(issue(api, body), 401, "Attempted to authenticate with an unsupported method.")


def test_token_method_rescopes_an_unscoped_token(api: TestClient, member: Caller) -> None:
    unscoped = issue(api, password_auth("alice", "pw-alice", scope="unscoped"))
    body = {"auth": {"identity": {"methods": ["token"],
                                  "token": {"id": unscoped.headers["X-Subject-Token"]}},
                     "scope": {"project": {"id": member.project_id}}}}
    r = issue(api, body)
    assert r.status_code == 201
    token = r.json()["token"]
    assert token["project"]["id"] == member.project_id
    assert "token" in token["methods"] and "password" in token["methods"]
    assert token["expires_at"] <= unscoped.json()["token"]["expires_at"]
    scoped = r.headers["X-Subject-Token"]
    assert api.get(f"{V3}/auth/projects", headers={"X-Auth-Token": scoped}).status_code == 200


def test_token_method_with_a_revoked_or_bad_token_is_401(api: TestClient, member: Caller) -> None:
    api.delete(f"{V3}/auth/tokens", headers={**member.headers, "X-Subject-Token": member.token})
    for token_id in (member.token, "garbage"):
        body = {"auth": {"identity": {"methods": ["token"], "token": {"id": token_id}}}}
        assert_error(issue(api, body), 401, UNAUTHENTICATED)


def test_issuing_a_token_writes_nothing_to_the_database(api: TestClient, cloud) -> None:
    from cirrus.context import current_request_id

    statements: list[tuple[str | None, str]] = []

    def record(conn, cursor, statement, *args) -> None:
        statements.append((current_request_id(), statement))

    event.listen(cloud.db.engine, "before_cursor_execute", record)
    try:
        r = issue(api, password_auth("admin", ADMIN_PASSWORD, scope=project_scope("admin")))
    finally:
        event.remove(cloud.db.engine, "before_cursor_execute", record)
    assert r.status_code == 201
    mine = [sql.split()[0].upper() for rid, sql in statements
            if rid == r.headers["x-openstack-request-id"]]
    assert "SELECT" in mine  # the capture saw this request's queries
    assert not {"INSERT", "UPDATE", "DELETE"} & set(mine)


# ---------------------------------------------------------------- validating and revoking


def test_validate_own_token_returns_the_issue_body(api: TestClient) -> None:
    r = issue(api, password_auth("admin", ADMIN_PASSWORD, scope=project_scope("admin")))
    token = r.headers["X-Subject-Token"]
    got = api.get(f"{V3}/auth/tokens", headers={"X-Auth-Token": token, "X-Subject-Token": token})
    assert got.status_code == 200
    assert got.json() == r.json()
    nocat = api.get(f"{V3}/auth/tokens?nocatalog",
                    headers={"X-Auth-Token": token, "X-Subject-Token": token})
    assert "catalog" not in nocat.json()["token"]


def test_head_checks_a_token_with_an_empty_body(api: TestClient, member: Caller) -> None:
    r = api.head(f"{V3}/auth/tokens", headers={**member.headers, "X-Subject-Token": member.token})
    assert r.status_code == 200
    assert r.content == b""


def test_a_member_cannot_validate_someone_elses_token(api: TestClient, admin: Caller,
                                                      member: Caller,
                                                      other_member: Caller) -> None:
    r = api.get(f"{V3}/auth/tokens",
                headers={**member.headers, "X-Subject-Token": other_member.token})
    assert_error(r, 403, "You are not authorized to perform the requested action: "
                         "identity:validate_token.")
    r = api.get(f"{V3}/auth/tokens",
                headers={**admin.headers, "X-Subject-Token": other_member.token})
    assert r.status_code == 200
    assert r.json()["token"]["user"]["id"] == other_member.user_id


def test_validate_bad_subject_is_404_and_missing_one_400(api: TestClient, admin: Caller) -> None:
    assert_error(api.get(f"{V3}/auth/tokens", headers={**admin.headers,
                                                       "X-Subject-Token": "bad.token"}), 404)
    r = api.head(f"{V3}/auth/tokens", headers={**admin.headers, "X-Subject-Token": "bad.token"})
    assert r.status_code == 404
    assert_error(api.get(f"{V3}/auth/tokens", headers=admin.headers), 400)


def test_validate_without_a_caller_token_is_401(api: TestClient, admin: Caller) -> None:
    r = api.get(f"{V3}/auth/tokens", headers={"X-Subject-Token": admin.token})
    assert_error(r, 401, UNAUTHENTICATED)


def test_delete_revokes_the_token(api: TestClient, member: Caller) -> None:
    r = api.delete(f"{V3}/auth/tokens", headers={**member.headers, "X-Subject-Token": member.token})
    assert r.status_code == 204
    assert_error(api.get(f"{V3}/auth/projects", headers=member.headers), 401)


def test_admin_revokes_someone_elses_token_a_member_cannot(api: TestClient, admin: Caller,
                                                           member: Caller,
                                                           other_member: Caller) -> None:
    r = api.delete(f"{V3}/auth/tokens",
                   headers={**member.headers, "X-Subject-Token": other_member.token})
    assert_error(r, 403)
    r = api.delete(f"{V3}/auth/tokens",
                   headers={**admin.headers, "X-Subject-Token": other_member.token})
    assert r.status_code == 204
    r = api.get(f"{V3}/auth/tokens", headers={**admin.headers,
                                              "X-Subject-Token": other_member.token})
    assert_error(r, 404)


# ---------------------------------------------------------------- auth/catalog, projects, domains


def test_auth_catalog_lists_every_service(api: TestClient, member: Caller) -> None:
    r = api.get(f"{V3}/auth/catalog", headers=member.headers)
    assert r.status_code == 200
    assert {entry["type"] for entry in r.json()["catalog"]} == {row.type
                                                                for row in catalog.SERVICES}
    assert r.json()["links"] == {"self": f"{PUBLIC}{V3}/auth/catalog", "previous": None,
                                 "next": None}


def test_auth_catalog_needs_a_scoped_token(api: TestClient, member: Caller) -> None:
    token = token_for(api, "alice", "pw-alice", "unscoped")
    assert_error(api.get(f"{V3}/auth/catalog", headers={"X-Auth-Token": token}), 403)


def test_auth_projects_lists_the_projects_with_a_role(api: TestClient, member: Caller,
                                                      other_member: Caller) -> None:
    token = token_for(api, "alice", "pw-alice", "unscoped")
    r = api.get(f"{V3}/auth/projects", headers={"X-Auth-Token": token})
    assert r.status_code == 200
    assert [p["id"] for p in r.json()["projects"]] == [member.project_id]
    assert r.json()["projects"][0]["links"]["self"] == f"{PUBLIC}{V3}/projects/{member.project_id}"


def test_auth_domains_lists_domains_with_a_role(api: TestClient, admin: Caller,
                                                member: Caller) -> None:
    r = api.get(f"{V3}/auth/domains", headers=admin.headers)
    assert [d["id"] for d in r.json()["domains"]] == ["default"]
    assert api.get(f"{V3}/auth/domains", headers=member.headers).json()["domains"] == []


# ---------------------------------------------------------------- catalog


def test_bootstrap_writes_the_default_catalog_once(cloud) -> None:
    from cirrus.identity.service import catalog_admin

    with cloud.db.reader() as s:
        first = [(e.id, e.url) for e in catalog_admin.list_endpoints(s)]
    cloud.bootstrap("admin-secret")  # a second start neither duplicates nor changes it
    with cloud.db.reader() as s:
        second = [(e.id, e.url) for e in catalog_admin.list_endpoints(s)]
        services = catalog_admin.list_services(s)
    assert first == second
    assert len(first) == 3 * len(catalog.SERVICES)
    assert sorted(s.id for s in services) == sorted(s.id for s in catalog.default_services())


def test_services_endpoints_and_regions_are_listed_and_shown(api: TestClient,
                                                             admin: Caller) -> None:
    services = api.get(f"{V3}/services", headers=admin.headers).json()["services"]
    assert {s["type"] for s in services} == {row.type for row in catalog.SERVICES}
    compute = next(s for s in services if s["type"] == "compute")
    assert compute["links"]["self"] == f"{PUBLIC}{V3}/services/{compute['id']}"
    shown = api.get(f"{V3}/services/{compute['id']}", headers=admin.headers)
    assert shown.json()["service"] == compute
    assert len(api.get(f"{V3}/services?type=image", headers=admin.headers).json()["services"]) == 1

    endpoints = api.get(f"{V3}/endpoints?interface=public&service_id={compute['id']}",
                        headers=admin.headers).json()["endpoints"]
    assert [(e["interface"], e["url"]) for e in endpoints] == [
        ("public", f"{PUBLIC}/compute/v2.1")]
    shown = api.get(f"{V3}/endpoints/{endpoints[0]['id']}", headers=admin.headers)
    assert shown.json()["endpoint"]["region_id"] == "RegionOne"

    regions = api.get(f"{V3}/regions", headers=admin.headers).json()["regions"]
    assert [r["id"] for r in regions] == ["RegionOne"]
    assert api.get(f"{V3}/regions/RegionOne", headers=admin.headers).status_code == 200


def test_unknown_catalog_ids_are_404(api: TestClient, admin: Caller) -> None:
    assert_error(api.get(f"{V3}/services/nope", headers=admin.headers), 404,
                 "Could not find service: nope.")
    assert_error(api.get(f"{V3}/endpoints/nope", headers=admin.headers), 404,
                 "Could not find endpoint: nope.")
    assert_error(api.get(f"{V3}/regions/nope", headers=admin.headers), 404,
                 "Could not find region: nope.")


def test_services_and_endpoints_are_admin_only(api: TestClient, admin: Caller,
                                               member: Caller) -> None:
    assert_error(api.post(f"{V3}/services", headers=admin.headers, json={}), 400)
    assert_error(api.get(f"{V3}/services", headers=member.headers), 403)
    assert_error(api.get(f"{V3}/endpoints", headers=member.headers), 403)
    assert api.get(f"{V3}/regions", headers=member.headers).status_code == 200


# ---------------------------------------------------------------- domains


def test_domain_crud_by_admin(api: TestClient, admin: Caller) -> None:
    r = api.post(f"{V3}/domains", headers=admin.headers,
                 json={"domain": {"name": "Acme", "description": "acme corp"}})
    assert r.status_code == 201
    domain = r.json()["domain"]
    assert domain["enabled"] is True
    assert domain["links"]["self"] == f"{PUBLIC}{V3}/domains/{domain['id']}"
    names = [d["name"] for d in api.get(f"{V3}/domains", headers=admin.headers).json()["domains"]]
    assert names == ["Acme", "Default"]
    assert api.get(f"{V3}/domains?name=Acme", headers=admin.headers).json()["domains"] == [domain]
    r = api.patch(f"{V3}/domains/{domain['id']}", headers=admin.headers,
                  json={"domain": {"description": "renamed"}})
    assert r.json()["domain"]["description"] == "renamed"
    assert_error(api.delete(f"{V3}/domains/{domain['id']}", headers=admin.headers), 403)
    api.patch(f"{V3}/domains/{domain['id']}", headers=admin.headers,
              json={"domain": {"enabled": False}})
    assert api.delete(f"{V3}/domains/{domain['id']}", headers=admin.headers).status_code == 204
    assert_error(api.get(f"{V3}/domains/{domain['id']}", headers=admin.headers), 404,
                 f"Could not find domain: {domain['id']}.")


def test_projects_and_users_can_live_in_another_domain(api: TestClient, admin: Caller) -> None:
    domain = api.post(f"{V3}/domains", headers=admin.headers,
                      json={"domain": {"name": "Acme"}}).json()["domain"]
    project = create_project(api, admin, "ops", domain_id=domain["id"])
    user = create_user(api, admin, "wile", domain_id=domain["id"])
    grant(api, admin, project["id"], user["id"], "member")
    r = issue(api, password_auth("wile", "pw", user_domain={"name": "Acme"},
                                 scope=project_scope("ops", "Acme")))
    assert r.status_code == 201
    assert r.json()["token"]["project"]["domain"] == {"id": domain["id"], "name": "Acme"}


def test_duplicate_domain_is_409_and_unknown_404(api: TestClient, admin: Caller) -> None:
    r = api.post(f"{V3}/domains", headers=admin.headers, json={"domain": {"name": "Default"}})
    assert_error(r, 409)
    assert r.json()["error"]["message"].startswith("Conflict occurred attempting to store domain")
    assert_error(api.patch(f"{V3}/domains/nope", headers=admin.headers,
                           json={"domain": {"enabled": False}}), 404)
    r = api.post(f"{V3}/domains", headers=admin.headers,
                 json={"domain": {"name": "Tagged", "tags": ["a"]}})
    assert_error(r, 400)


def test_non_admins_see_their_own_domain_and_cannot_write(api: TestClient, admin: Caller,
                                                          member: Caller) -> None:
    api.post(f"{V3}/domains", headers=admin.headers, json={"domain": {"name": "Acme"}})
    listed = api.get(f"{V3}/domains", headers=member.headers).json()["domains"]
    assert [d["id"] for d in listed] == ["default"]
    assert api.get(f"{V3}/domains/default", headers=member.headers).status_code == 200
    r = api.post(f"{V3}/domains", headers=member.headers, json={"domain": {"name": "Mine"}})
    assert_error(r, 403, "You are not authorized to perform the requested action: "
                         "identity:create_domain.")


def test_the_default_domain_cannot_be_deleted(api: TestClient, admin: Caller) -> None:
    # Disabling Default revokes every token of its users, so an admin from elsewhere tries.
    acme = api.post(f"{V3}/domains", headers=admin.headers,
                    json={"domain": {"name": "Acme"}}).json()["domain"]
    project = create_project(api, admin, "ops", domain_id=acme["id"])
    boss = create_user(api, admin, "boss", domain_id=acme["id"])
    grant(api, admin, project["id"], boss["id"], "admin")
    r = api.patch(f"{V3}/domains/default", headers=admin.headers,
                  json={"domain": {"enabled": False}})
    assert r.json()["domain"]["enabled"] is False
    assert_error(api.get(f"{V3}/auth/projects", headers=admin.headers), 401)
    token = issue(api, password_auth("boss", "pw", user_domain={"name": "Acme"},
                                     scope=project_scope("ops", "Acme"))).headers["X-Subject-Token"]
    r = api.delete(f"{V3}/domains/default", headers={"X-Auth-Token": token})
    assert_error(r, 403)
    assert api.get(f"{V3}/domains/default", headers={"X-Auth-Token": token}).status_code == 200


# ---------------------------------------------------------------- projects


def test_project_crud_by_admin(api: TestClient, admin: Caller) -> None:
    project = create_project(api, admin, "demo", description="a demo", tags=["blue"],
                             team="ops")
    assert project == {
        "id": project["id"], "name": "demo", "domain_id": "default", "description": "a demo",
        "enabled": True, "parent_id": "default", "is_domain": False, "tags": ["blue"],
        "options": {}, "team": "ops",
        "links": {"self": f"{PUBLIC}{V3}/projects/{project['id']}"},
    }
    shown = api.get(f"{V3}/projects/{project['id']}", headers=admin.headers)
    assert shown.json()["project"] == project
    r = api.patch(f"{V3}/projects/{project['id']}", headers=admin.headers,
                  json={"project": {"name": "demo2", "description": "", "team": "dev"}})
    assert r.status_code == 200
    assert (r.json()["project"]["name"], r.json()["project"]["team"]) == ("demo2", "dev")
    assert api.delete(f"{V3}/projects/{project['id']}", headers=admin.headers).status_code == 204
    assert_error(api.get(f"{V3}/projects/{project['id']}", headers=admin.headers), 404,
                 f"Could not find project: {project['id']}.")


def test_project_list_filters(api: TestClient, admin: Caller, member: Caller) -> None:
    off = create_project(api, admin, "off", enabled=False)
    url = f"{V3}/projects"
    everything = api.get(url, headers=admin.headers).json()
    assert {p["name"] for p in everything["projects"]} == {"admin", "service", "project-a", "off"}
    assert everything["links"] == {"self": f"{PUBLIC}{url}", "previous": None, "next": None}
    by_name = api.get(f"{url}?name=project-a", headers=admin.headers).json()["projects"]
    assert [p["id"] for p in by_name] == [member.project_id]
    disabled = api.get(f"{url}?enabled=false", headers=admin.headers).json()["projects"]
    assert [p["id"] for p in disabled] == [off["id"]]
    enabled = api.get(f"{url}?enabled=True", headers=admin.headers).json()["projects"]
    assert off["id"] not in {p["id"] for p in enabled}
    assert api.get(f"{url}?domain_id=nope", headers=admin.headers).json()["projects"] == []
    assert len(api.get(f"{url}?domain_id=default", headers=admin.headers).json()["projects"]) == 4


def test_a_member_sees_only_projects_they_have_a_role_on(api: TestClient, member: Caller,
                                                         other_member: Caller) -> None:
    # Keystone's default policy: no listing of /v3/projects for a project's member
    assert_error(api.get(f"{V3}/projects", headers=member.headers), 403,
                 "You are not authorized to perform the requested action: identity:list_projects.")
    listed = api.get(f"{V3}/auth/projects", headers=member.headers).json()["projects"]
    assert [p["id"] for p in listed] == [member.project_id]
    assert api.get(f"{V3}/projects/{member.project_id}", headers=member.headers).status_code == 200
    r = api.get(f"{V3}/projects/{other_member.project_id}", headers=member.headers)
    assert_error(r, 404, f"Could not find project: {other_member.project_id}.")


@pytest.mark.parametrize("who", ["member", "reader"])
def test_project_writes_are_admin_only(api: TestClient, request: pytest.FixtureRequest,
                                       who: str) -> None:
    caller: Caller = request.getfixturevalue(who)
    forbidden = "You are not authorized to perform the requested action: identity:{}."
    r = api.post(f"{V3}/projects", headers=caller.headers, json={"project": {"name": "x"}})
    assert_error(r, 403, forbidden.format("create_project"))
    r = api.patch(f"{V3}/projects/{caller.project_id}", headers=caller.headers,
                  json={"project": {"name": "x"}})
    assert_error(r, 403, forbidden.format("update_project"))
    r = api.delete(f"{V3}/projects/{caller.project_id}", headers=caller.headers)
    assert_error(r, 403, forbidden.format("delete_project"))


def test_project_conflicts_and_bad_bodies(api: TestClient, admin: Caller) -> None:
    r = api.post(f"{V3}/projects", headers=admin.headers, json={"project": {"name": "admin"}})
    assert_error(r, 409, "Conflict occurred attempting to store project - Duplicate entry "
                         "found with name admin at domain ID default.")
    demo = create_project(api, admin, "demo")
    r = api.patch(f"{V3}/projects/{demo['id']}", headers=admin.headers,
                  json={"project": {"name": "admin"}})
    assert_error(r, 409)
    for body, field in [({"project": {"name": ""}}, "name"),
                        ({"project": {"name": "x", "enabled": "yes"}}, "enabled"),
                        ({"project": {"description": "no name"}}, "name"),
                        ({"projects": {"name": "x"}}, "project"),
                        ({"project": {"name": "x" * 65}}, "name")]:
        r = api.post(f"{V3}/projects", headers=admin.headers, json=body)
        assert_error(r, 400)
        assert field in r.json()["error"]["message"]
    assert_error(api.post(f"{V3}/projects", headers=admin.headers, content=b"{not json"), 400)
    r = api.patch(f"{V3}/projects/{demo['id']}", headers=admin.headers,
                  json={"project": {"domain_id": "other"}})
    assert_error(r, 400, "Update of `domain_id` is not allowed.")
    assert_error(api.patch(f"{V3}/projects/{demo['id']}", headers=admin.headers,
                           json={"project": {}}), 400)
    r = api.post(f"{V3}/projects", headers=admin.headers,
                 json={"project": {"name": "x", "domain_id": "nope"}})
    assert_error(r, 404, "Could not find domain: nope.")


def test_a_project_with_children_cannot_be_deleted(api: TestClient, admin: Caller) -> None:
    parent = create_project(api, admin, "parent")
    child = create_project(api, admin, "child", parent_id=parent["id"])
    assert child["parent_id"] == parent["id"]
    assert_error(api.delete(f"{V3}/projects/{parent['id']}", headers=admin.headers), 403)
    listed = api.get(f"{V3}/projects?parent_id={parent['id']}", headers=admin.headers)
    assert [p["id"] for p in listed.json()["projects"]] == [child["id"]]


def test_deleting_a_project_revokes_tokens_scoped_to_it(api: TestClient, admin: Caller,
                                                        member: Caller) -> None:
    assert api.get(f"{V3}/auth/projects", headers=member.headers).status_code == 200
    r = api.delete(f"{V3}/projects/{member.project_id}", headers=admin.headers)
    assert r.status_code == 204
    assert_error(api.get(f"{V3}/auth/projects", headers=member.headers), 401)
    r = api.get(f"{V3}/role_assignments?scope.project.id={member.project_id}",
                headers=admin.headers)
    assert r.json()["role_assignments"] == []


def test_disabling_a_project_revokes_its_tokens(api: TestClient, admin: Caller,
                                                member: Caller) -> None:
    r = api.patch(f"{V3}/projects/{member.project_id}", headers=admin.headers,
                  json={"project": {"enabled": False}})
    assert r.json()["project"]["enabled"] is False
    assert_error(api.get(f"{V3}/auth/projects", headers=member.headers), 401)


# ---------------------------------------------------------------- users


def test_user_crud_by_admin(api: TestClient, admin: Caller, member: Caller) -> None:
    user = create_user(api, admin, "carol", "s3cret", email="carol@example.com",
                       default_project_id=member.project_id, description="ops")
    assert user == {
        "id": user["id"], "name": "carol", "domain_id": "default", "enabled": True,
        "email": "carol@example.com", "description": "ops", "password_expires_at": None,
        "default_project_id": member.project_id, "options": {},
        "links": {"self": f"{PUBLIC}{V3}/users/{user['id']}"},
    }
    assert api.get(f"{V3}/users/{user['id']}", headers=admin.headers).json()["user"] == user
    r = api.patch(f"{V3}/users/{user['id']}", headers=admin.headers,
                  json={"user": {"name": "caroline", "email": None}})
    assert r.json()["user"]["name"] == "caroline"
    assert "email" not in r.json()["user"]
    assert api.delete(f"{V3}/users/{user['id']}", headers=admin.headers).status_code == 204
    assert_error(api.get(f"{V3}/users/{user['id']}", headers=admin.headers), 404,
                 f"Could not find user: {user['id']}.")


def test_a_created_user_with_a_role_can_get_a_token(api: TestClient, admin: Caller) -> None:
    user = create_user(api, admin, "dave", "d4ve")
    grant(api, admin, admin.project_id, user["id"], "member")
    token = token_for(api, "dave", "d4ve", project_scope("admin"))
    r = api.get(f"{V3}/auth/tokens", headers={"X-Auth-Token": token, "X-Subject-Token": token})
    assert [role["name"] for role in r.json()["token"]["roles"]] == ["member", "reader"]


def test_user_list_filters(api: TestClient, admin: Caller, member: Caller, reader: Caller) -> None:
    create_user(api, admin, "off", enabled=False)
    names = {u["name"] for u in api.get(f"{V3}/users", headers=admin.headers).json()["users"]}
    assert names == {"admin", "alice", "rita", "off"}
    by_name = api.get(f"{V3}/users?name=alice", headers=admin.headers).json()["users"]
    assert [u["id"] for u in by_name] == [member.user_id]
    disabled = api.get(f"{V3}/users?enabled=false", headers=admin.headers).json()["users"]
    assert [u["name"] for u in disabled] == ["off"]
    assert api.get(f"{V3}/users?domain_id=x", headers=admin.headers).json()["users"] == []


def test_a_user_sees_only_themselves(api: TestClient, member: Caller, reader: Caller) -> None:
    assert_error(api.get(f"{V3}/users", headers=member.headers), 403,
                 "You are not authorized to perform the requested action: identity:list_users.")
    assert api.get(f"{V3}/users/{member.user_id}", headers=member.headers).status_code == 200
    assert_error(api.get(f"{V3}/users/{reader.user_id}", headers=member.headers), 404)


def test_user_writes_are_admin_only(api: TestClient, member: Caller) -> None:
    r = api.post(f"{V3}/users", headers=member.headers, json={"user": {"name": "x"}})
    assert_error(r, 403, "You are not authorized to perform the requested action: "
                         "identity:create_user.")
    r = api.patch(f"{V3}/users/{member.user_id}", headers=member.headers,
                  json={"user": {"enabled": False}})
    assert_error(r, 403)
    assert_error(api.delete(f"{V3}/users/{member.user_id}", headers=member.headers), 403)


def test_user_conflicts_and_bad_bodies(api: TestClient, admin: Caller) -> None:
    r = api.post(f"{V3}/users", headers=admin.headers, json={"user": {"name": "admin"}})
    assert_error(r, 409, "Conflict occurred attempting to store user - Duplicate entry found "
                         "with name admin at domain ID default.")
    r = api.post(f"{V3}/users", headers=admin.headers,
                 json={"user": {"name": "x", "password": 12345}})
    assert_error(r, 400)
    assert "12345" not in r.text
    r = api.post(f"{V3}/users", headers=admin.headers, json={"user": {"name": "x",
                                                                      "enabled": "no"}})
    assert_error(r, 400)
    assert "enabled" in r.json()["error"]["message"]
    assert_error(api.patch(f"{V3}/users/nope", headers=admin.headers,
                           json={"user": {"name": "y"}}), 404, "Could not find user: nope.")


def test_disabling_a_user_revokes_their_tokens_and_refuses_new_ones(
        api: TestClient, admin: Caller, member: Caller) -> None:
    r = api.patch(f"{V3}/users/{member.user_id}", headers=admin.headers,
                  json={"user": {"enabled": False}})
    assert r.json()["user"]["enabled"] is False
    assert_error(api.get(f"{V3}/auth/projects", headers=member.headers), 401)
    assert_error(issue(api, password_auth("alice", "pw-alice")), 401, UNAUTHENTICATED)


def test_deleting_a_user_revokes_their_tokens(api: TestClient, admin: Caller,
                                              member: Caller) -> None:
    assert api.delete(f"{V3}/users/{member.user_id}", headers=admin.headers).status_code == 204
    assert_error(api.get(f"{V3}/auth/projects", headers=member.headers), 401)
    r = api.get(f"{V3}/role_assignments?user.id={member.user_id}", headers=admin.headers)
    assert r.json()["role_assignments"] == []


def test_user_projects(api: TestClient, admin: Caller, member: Caller,
                       other_member: Caller) -> None:
    r = api.get(f"{V3}/users/{member.user_id}/projects", headers=member.headers)
    assert r.status_code == 200
    assert [p["name"] for p in r.json()["projects"]] == ["project-a"]
    r = api.get(f"{V3}/users/{other_member.user_id}/projects", headers=admin.headers)
    assert [p["name"] for p in r.json()["projects"]] == ["project-b"]
    assert_error(api.get(f"{V3}/users/{other_member.user_id}/projects", headers=member.headers),
                 404)
    assert_error(api.get(f"{V3}/users/nope/projects", headers=admin.headers), 404)


def test_a_user_changes_their_own_password(api: TestClient, member: Caller) -> None:
    url = f"{V3}/users/{member.user_id}/password"
    r = api.post(url, json={"user": {"original_password": "wrong", "password": "new-pw"}})
    assert_error(r, 401, UNAUTHENTICATED)
    r = api.post(url, json={"user": {"original_password": "pw-alice", "password": "new-pw"}})
    assert r.status_code == 204
    assert_error(api.get(f"{V3}/auth/projects", headers=member.headers), 401)
    assert_error(issue(api, password_auth("alice", "pw-alice")), 401)
    assert issue(api, password_auth("alice", "new-pw")).status_code == 201
    r = api.post(url, json={"user": {"password": "x"}})
    assert_error(r, 400)
    assert "original_password" in r.json()["error"]["message"]


def test_an_admin_sets_a_password_and_the_user_tokens_go(api: TestClient, admin: Caller,
                                                         member: Caller) -> None:
    r = api.patch(f"{V3}/users/{member.user_id}", headers=admin.headers,
                  json={"user": {"password": "reset"}})
    assert r.status_code == 200
    assert "password" not in r.json()["user"]
    assert_error(api.get(f"{V3}/auth/projects", headers=member.headers), 401)
    assert issue(api, password_auth("alice", "reset")).status_code == 201


# ---------------------------------------------------------------- roles


def test_default_roles_exist_and_readers_can_list_them(api: TestClient, reader: Caller) -> None:
    r = api.get(f"{V3}/roles", headers=reader.headers)
    assert r.status_code == 200
    roles = {role["name"]: role for role in r.json()["roles"]}
    assert set(roles) == {"admin", "manager", "member", "reader", "service"}
    assert roles["admin"]["links"]["self"] == f"{PUBLIC}{V3}/roles/{roles['admin']['id']}"
    shown = api.get(f"{V3}/roles/{roles['member']['id']}", headers=reader.headers)
    assert shown.json()["role"] == roles["member"]


def test_role_crud_by_admin(api: TestClient, admin: Caller) -> None:
    r = api.post(f"{V3}/roles", headers=admin.headers,
                 json={"role": {"name": "auditor", "description": "reads logs"}})
    assert r.status_code == 201
    role = r.json()["role"]
    assert (role["name"], role["description"], role["domain_id"]) == ("auditor", "reads logs",
                                                                      None)
    assert role_id(api, admin, "auditor") == role["id"]
    r = api.patch(f"{V3}/roles/{role['id']}", headers=admin.headers,
                  json={"role": {"name": "auditor2"}})
    assert r.json()["role"]["name"] == "auditor2"
    assert_error(api.post(f"{V3}/roles", headers=admin.headers,
                          json={"role": {"name": "member"}}), 409)
    assert api.delete(f"{V3}/roles/{role['id']}", headers=admin.headers).status_code == 204
    assert_error(api.get(f"{V3}/roles/{role['id']}", headers=admin.headers), 404,
                 f"Could not find role: {role['id']}.")


def test_default_roles_cannot_be_deleted(api: TestClient, admin: Caller) -> None:
    r = api.delete(f"{V3}/roles/{role_id(api, admin, 'reader')}", headers=admin.headers)
    assert_error(r, 403)


def test_role_writes_are_admin_only_and_bodies_checked(api: TestClient, admin: Caller,
                                                       member: Caller) -> None:
    r = api.post(f"{V3}/roles", headers=member.headers, json={"role": {"name": "x"}})
    assert_error(r, 403, "You are not authorized to perform the requested action: "
                         "identity:create_role.")
    r = api.post(f"{V3}/roles", headers=admin.headers, json={"role": {"name": "x", "bogus": 1}})
    assert_error(r, 400)
    assert "bogus" in r.json()["error"]["message"]
    r = api.post(f"{V3}/roles", headers=admin.headers,
                 json={"role": {"name": "x", "options": {"immutable": True}}})
    assert_error(r, 400)  # a role has nowhere to keep options: refused, not silently dropped
    assert "options" in r.json()["error"]["message"]


def test_deleting_a_role_revokes_the_tokens_it_gave(api: TestClient, admin: Caller) -> None:
    role = api.post(f"{V3}/roles", headers=admin.headers,
                    json={"role": {"name": "temp"}}).json()["role"]
    user = create_user(api, admin, "erin", "pw")
    grant(api, admin, admin.project_id, user["id"], "temp")
    token = token_for(api, "erin", "pw", project_scope("admin"))
    assert api.delete(f"{V3}/roles/{role['id']}", headers=admin.headers).status_code == 204
    assert_error(api.get(f"{V3}/auth/projects", headers={"X-Auth-Token": token}), 401)


# ---------------------------------------------------------------- grants


def test_project_grant_lifecycle(api: TestClient, admin: Caller) -> None:
    user = create_user(api, admin, "frank", "pw")
    member_role = role_id(api, admin, "member")
    url = f"{V3}/projects/{admin.project_id}/users/{user['id']}/roles"
    assert api.head(f"{url}/{member_role}", headers=admin.headers).status_code == 404
    assert api.put(f"{url}/{member_role}", headers=admin.headers).status_code == 204
    assert api.put(f"{url}/{member_role}", headers=admin.headers).status_code == 204  # idempotent
    assert api.head(f"{url}/{member_role}", headers=admin.headers).status_code == 204
    listed = api.get(url, headers=admin.headers).json()
    assert [r["name"] for r in listed["roles"]] == ["member"]
    assert listed["links"]["self"] == f"{PUBLIC}{url}"
    token = token_for(api, "frank", "pw", project_scope("admin"))
    assert api.get(url, headers={"X-Auth-Token": token}).status_code == 200  # own roles
    assert api.delete(f"{url}/{member_role}", headers=admin.headers).status_code == 204
    assert_error(api.get(f"{V3}/auth/projects", headers={"X-Auth-Token": token}), 401)
    r = api.delete(f"{url}/{member_role}", headers=admin.headers)
    assert_error(r, 404, f"Could not find role assignment with role: {member_role}, user or "
                         f"group: {user['id']}, project, domain, or system: {admin.project_id}.")
    past_revocation_second()
    assert_error(issue(api, password_auth("frank", "pw", scope=project_scope("admin"))), 401)


def test_removing_a_grant_keeps_tokens_for_other_projects(api: TestClient, admin: Caller,
                                                         member: Caller) -> None:
    grant(api, admin, admin.project_id, member.user_id, "reader")
    on_admin = token_for(api, "alice", "pw-alice", project_scope("admin"))
    r = api.delete(f"{V3}/projects/{admin.project_id}/users/{member.user_id}/roles/"
                   f"{role_id(api, admin, 'reader')}", headers=admin.headers)
    assert r.status_code == 204
    assert_error(api.get(f"{V3}/auth/projects", headers={"X-Auth-Token": on_admin}), 401)
    assert api.get(f"{V3}/auth/projects", headers=member.headers).status_code == 200


def test_grants_on_unknown_things_are_404(api: TestClient, admin: Caller, member: Caller) -> None:
    member_role = role_id(api, admin, "member")
    base = f"{V3}/projects/{member.project_id}/users/{member.user_id}/roles"
    assert_error(api.put(f"{base}/nope", headers=admin.headers), 404, "Could not find role: nope.")
    assert_error(api.put(f"{V3}/projects/nope/users/{member.user_id}/roles/{member_role}",
                         headers=admin.headers), 404, "Could not find project: nope.")
    assert_error(api.put(f"{V3}/projects/{member.project_id}/users/nope/roles/{member_role}",
                         headers=admin.headers), 404, "Could not find user: nope.")
    assert_error(api.get(f"{V3}/projects/nope/users/{member.user_id}/roles",
                         headers=admin.headers), 404)


def test_grants_are_admin_only(api: TestClient, member: Caller, other_member: Caller,
                               admin: Caller) -> None:
    member_role = role_id(api, admin, "member")
    url = f"{V3}/projects/{member.project_id}/users/{other_member.user_id}/roles"
    assert_error(api.put(f"{url}/{member_role}", headers=member.headers), 403,
                 "You are not authorized to perform the requested action: identity:create_grant.")
    assert_error(api.delete(f"{url}/{member_role}", headers=member.headers), 403)
    assert_error(api.get(url, headers=member.headers), 403)


def test_domain_grant_lifecycle(api: TestClient, admin: Caller, member: Caller) -> None:
    reader_role = role_id(api, admin, "reader")
    url = f"{V3}/domains/default/users/{member.user_id}/roles"
    assert api.put(f"{url}/{reader_role}", headers=admin.headers).status_code == 204
    assert api.head(f"{url}/{reader_role}", headers=admin.headers).status_code == 204
    assert [r["name"] for r in api.get(url, headers=admin.headers).json()["roles"]] == ["reader"]
    r = issue(api, password_auth("alice", "pw-alice", scope={"domain": {"id": "default"}}))
    assert r.status_code == 201
    assert [role["name"] for role in r.json()["token"]["roles"]] == ["reader"]
    domains = api.get(f"{V3}/auth/domains", headers=member.headers).json()["domains"]
    assert [d["id"] for d in domains] == ["default"]
    assert api.delete(f"{url}/{reader_role}", headers=admin.headers).status_code == 204
    assert api.head(f"{url}/{reader_role}", headers=admin.headers).status_code == 404
    assert_error(api.put(f"{V3}/domains/nope/users/{member.user_id}/roles/{reader_role}",
                         headers=admin.headers), 404, "Could not find domain: nope.")


# ---------------------------------------------------------------- role assignments


def test_role_assignments_list_and_filters(api: TestClient, admin: Caller, member: Caller,
                                           other_member: Caller) -> None:
    url = f"{V3}/role_assignments"
    everything = api.get(url, headers=admin.headers).json()["role_assignments"]
    # admin on project, domain and system, alice and bob on their projects
    assert len(everything) == 5
    mine = api.get(f"{url}?user.id={member.user_id}", headers=admin.headers).json()
    (only,) = mine["role_assignments"]
    member_role = role_id(api, admin, "member")
    assert only == {
        "role": {"id": member_role}, "user": {"id": member.user_id},
        "scope": {"project": {"id": member.project_id}},
        "links": {"assignment": f"{PUBLIC}{V3}/projects/{member.project_id}/users/"
                                f"{member.user_id}/roles/{member_role}"},
    }
    by_project = api.get(f"{url}?scope.project.id={other_member.project_id}",
                         headers=admin.headers).json()["role_assignments"]
    assert [a["user"]["id"] for a in by_project] == [other_member.user_id]
    by_role = api.get(f"{url}?role.id={member_role}", headers=admin.headers).json()
    assert {a["user"]["id"] for a in by_role["role_assignments"]} == {member.user_id,
                                                                      other_member.user_id}
    by_domain = api.get(f"{url}?scope.domain.id=default", headers=admin.headers).json()
    assert [a["user"]["id"] for a in by_domain["role_assignments"]] == [admin.user_id]
    assert api.get(f"{url}?group.id=g1", headers=admin.headers).json()["role_assignments"] == []
    by_system = api.get(f"{url}?scope.system=all", headers=admin.headers).json()
    assert [a["scope"] for a in by_system["role_assignments"]] == [{"system": {"all": True}}]


def test_role_assignments_with_names(api: TestClient, admin: Caller, member: Caller) -> None:
    r = api.get(f"{V3}/role_assignments?user.id={member.user_id}&include_names=True",
                headers=admin.headers)
    (only,) = r.json()["role_assignments"]
    assert only["role"] == {"id": role_id(api, admin, "member"), "name": "member"}
    assert only["user"] == {"id": member.user_id, "name": "alice",
                            "domain": {"id": "default", "name": "Default"}}
    assert only["scope"] == {"project": {"id": member.project_id, "name": "project-a",
                                         "domain": {"id": "default", "name": "Default"}}}
    domain_scoped = api.get(f"{V3}/role_assignments?scope.domain.id=default&include_names",
                            headers=admin.headers).json()["role_assignments"]
    assert domain_scoped[0]["scope"] == {"domain": {"id": "default", "name": "Default"}}


def test_effective_role_assignments_add_implied_roles(api: TestClient, admin: Caller,
                                                      member: Caller) -> None:
    url = f"{V3}/role_assignments?effective&user.id={member.user_id}"
    found = api.get(url, headers=admin.headers).json()["role_assignments"]
    member_role, reader_role = role_id(api, admin, "member"), role_id(api, admin, "reader")
    assert sorted(a["role"]["id"] for a in found) == sorted([member_role, reader_role])
    implied = next(a for a in found if a["role"]["id"] == reader_role)
    assert implied["links"]["prior_role"] == f"{PUBLIC}{V3}/roles/{member_role}"
    assert implied["links"]["assignment"].endswith(f"/roles/{member_role}")
    only_reader = api.get(f"{url}&role.id={reader_role}", headers=admin.headers).json()
    assert len(only_reader["role_assignments"]) == 1
    direct = api.get(f"{V3}/role_assignments?effective=false&user.id={member.user_id}",
                     headers=admin.headers).json()["role_assignments"]
    assert len(direct) == 1


def test_a_non_admin_lists_only_their_own_assignments(api: TestClient, member: Caller,
                                                      other_member: Caller) -> None:
    found = api.get(f"{V3}/role_assignments", headers=member.headers).json()["role_assignments"]
    assert {a["user"]["id"] for a in found} == {member.user_id}
    r = api.get(f"{V3}/role_assignments?user.id={other_member.user_id}", headers=member.headers)
    assert_error(r, 403)


# ---------------------------------------------------------------- odds and ends


def test_unknown_identity_paths_are_404_in_keystones_shape(api: TestClient,
                                                           admin: Caller) -> None:
    assert_error(api.get(f"{V3}/nothing-here", headers=admin.headers), 404)


def test_every_response_has_a_request_id(api: TestClient) -> None:
    assert api.get("/identity/v3").headers["x-openstack-request-id"].startswith("req-")
