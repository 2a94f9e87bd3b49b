"""Projects acting as domains (`is_domain`): a domain, seen through /v3/projects."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from tests.api.test_identity import PUBLIC, V3, assert_error
from tests.conftest import Caller


def _create(api: TestClient, admin: Caller, name: str = "acme", **fields: object) -> dict:
    r = api.post(f"{V3}/projects", headers=admin.headers,
                 json={"project": {"name": name, "is_domain": True, "description": "d",
                                   **fields}})
    assert r.status_code == 201, r.text
    return r.json()["project"]


def _ids(api: TestClient, admin: Caller, url: str, key: str) -> list[str]:
    r = api.get(url, headers=admin.headers)
    assert r.status_code == 200, r.text
    return [x["id"] for x in r.json()[key]]


def test_a_project_acting_as_a_domain_is_a_domain(api: TestClient, admin: Caller) -> None:
    project = _create(api, admin, domain_id=None)
    assert project == {"id": project["id"], "name": "acme", "description": "d",
                       "enabled": True, "domain_id": None, "parent_id": None,
                       "is_domain": True, "tags": [], "options": {},
                       "links": {"self": f"{PUBLIC}{V3}/projects/{project['id']}"}}
    domain = api.get(f"{V3}/domains/{project['id']}", headers=admin.headers).json()["domain"]
    assert (domain["name"], domain["description"], domain["enabled"]) == ("acme", "d", True)
    assert project["id"] in _ids(api, admin, f"{V3}/domains", "domains")
    as_domains = _ids(api, admin, f"{V3}/projects?is_domain=True", "projects")
    assert project["id"] in as_domains and "default" in as_domains
    assert _ids(api, admin, f"{V3}/projects?is_domain=true&name=acme", "projects") == [
        project["id"]]
    # Regular listings do not show it (Keystone lists is_domain=false unless asked).
    regular = _ids(api, admin, f"{V3}/projects", "projects")
    assert project["id"] not in regular and regular
    assert _ids(api, admin, f"{V3}/projects?is_domain=false", "projects") == regular
    r = api.get(f"{V3}/projects/{project['id']}", headers=admin.headers)
    assert r.status_code == 200 and r.json()["project"] == project

    # Update through either API.
    r = api.patch(f"{V3}/projects/{project['id']}", headers=admin.headers,
                  json={"project": {"name": "acme2", "description": "e", "is_domain": True}})
    assert r.status_code == 200, r.text
    assert (r.json()["project"]["name"], r.json()["project"]["is_domain"]) == ("acme2", True)
    assert api.get(f"{V3}/domains/{project['id']}", headers=admin.headers).json()[
        "domain"]["description"] == "e"

    # The domain rules: disable first, then delete.
    assert_error(api.delete(f"{V3}/projects/{project['id']}", headers=admin.headers), 403)
    r = api.patch(f"{V3}/projects/{project['id']}", headers=admin.headers,
                  json={"project": {"enabled": False}})
    assert r.json()["project"]["enabled"] is False
    assert api.delete(f"{V3}/projects/{project['id']}", headers=admin.headers).status_code == 204
    assert_error(api.get(f"{V3}/projects/{project['id']}", headers=admin.headers), 404)
    assert_error(api.get(f"{V3}/domains/{project['id']}", headers=admin.headers), 404)
    assert project["id"] not in _ids(api, admin, f"{V3}/projects?is_domain=true", "projects")


def test_projects_inside_a_domain_project(api: TestClient, admin: Caller) -> None:
    acme = _create(api, admin)
    r = api.post(f"{V3}/projects", headers=admin.headers,
                 json={"project": {"name": "web", "parent_id": acme["id"]}})
    assert r.status_code == 201, r.text
    web = r.json()["project"]
    assert (web["domain_id"], web["parent_id"], web["is_domain"]) == (acme["id"], acme["id"],
                                                                      False)
    r = api.post(f"{V3}/projects", headers=admin.headers,
                 json={"project": {"name": "db", "domain_id": acme["id"], "is_domain": False}})
    assert r.status_code == 201 and r.json()["project"]["domain_id"] == acme["id"]
    assert sorted(_ids(api, admin, f"{V3}/projects?domain_id={acme['id']}", "projects")) == \
        sorted([web["id"], r.json()["project"]["id"]])
    # Deleting the domain takes its projects with it.
    api.patch(f"{V3}/projects/{acme['id']}", headers=admin.headers,
              json={"project": {"enabled": False}})
    assert api.delete(f"{V3}/projects/{acme['id']}", headers=admin.headers).status_code == 204
    assert_error(api.get(f"{V3}/projects/{web['id']}", headers=admin.headers), 404)


@pytest.mark.parametrize(("extra", "field"), [
    ({"parent_id": "default"}, "project/parent_id"),
    ({"domain_id": "default"}, "project/domain_id"),
    ({"tags": ["a"]}, "project/tags"),
    ({"colour": "red"}, "project/colour"),
    ({"is_domain": "yes"}, "project/is_domain"),
    ({"name": ""}, "project/name"),
])
def test_bad_domain_projects_are_refused_naming_the_field(api: TestClient, admin: Caller,
                                                          extra: dict, field: str) -> None:
    body = {"name": "acme", "is_domain": True, **extra}
    r = api.post(f"{V3}/projects", headers=admin.headers, json={"project": body})
    assert_error(r, 400)
    assert field in r.json()["error"]["message"]
    assert "acme" not in [d["name"] for d in api.get(f"{V3}/domains", headers=admin.headers)
                          .json()["domains"]]


def test_is_domain_cannot_change_and_names_stay_unique(api: TestClient, admin: Caller,
                                                       member: Caller) -> None:
    acme = _create(api, admin)
    assert_error(api.patch(f"{V3}/projects/{acme['id']}", headers=admin.headers,
                           json={"project": {"is_domain": False}}), 400,
                 "Update of `is_domain` is not allowed.")
    assert_error(api.patch(f"{V3}/projects/{member.project_id}", headers=admin.headers,
                           json={"project": {"is_domain": True}}), 400,
                 "Update of `is_domain` is not allowed.")
    r = api.patch(f"{V3}/projects/{acme['id']}", headers=admin.headers,
                  json={"project": {"tags": ["x"]}})
    assert_error(r, 400)
    assert "project/tags" in r.json()["error"]["message"]
    assert_error(api.post(f"{V3}/projects", headers=admin.headers,
                          json={"project": {"name": "acme", "is_domain": True}}), 409)
    assert_error(api.post(f"{V3}/projects", headers=admin.headers,
                          json={"project": {"name": "Default", "is_domain": True}}), 409)
    assert api.get(f"{V3}/projects/{acme['id']}", headers=admin.headers).json()[
        "project"]["tags"] == []
    # The default domain is not deleted through /v3/projects either.
    assert_error(api.delete(f"{V3}/projects/default", headers=admin.headers), 403)


def test_who_may_see_and_change_domain_projects(api: TestClient, admin: Caller, member: Caller,
                                                reader: Caller, other_member: Caller) -> None:
    acme = _create(api, admin)
    url = f"{V3}/projects/{acme['id']}"
    for caller in (member, reader, other_member):
        assert_error(api.post(f"{V3}/projects", headers=caller.headers,
                              json={"project": {"name": "evil", "is_domain": True}}), 403)
        assert_error(api.get(f"{V3}/projects?is_domain=true", headers=caller.headers), 403)
        assert_error(api.get(url, headers=caller.headers), 404)
        assert_error(api.patch(url, headers=caller.headers,
                               json={"project": {"enabled": False}}), 403)
        assert_error(api.delete(url, headers=caller.headers), 403)
    # A member sees their own project's domain, as through /v3/domains/{id}.
    r = api.get(f"{V3}/projects/default", headers=member.headers)
    assert r.status_code == 200 and r.json()["project"]["is_domain"] is True
    assert api.get(url, headers=admin.headers).json()["project"]["enabled"] is True
    assert "evil" not in [d["name"] for d in api.get(f"{V3}/domains", headers=admin.headers)
                          .json()["domains"]]
