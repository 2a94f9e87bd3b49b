"""OS-EP-FILTER: endpoint groups, project associations, and the catalog they narrow."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from tests.api.test_identity import PUBLIC, V3, assert_error, role_id, token_for
from tests.conftest import Caller

EPF = f"{V3}/OS-EP-FILTER"
GROUPS = f"{EPF}/endpoint_groups"


def _service_id(api: TestClient, admin: Caller, type_: str) -> str:
    found = api.get(f"{V3}/services?type={type_}", headers=admin.headers).json()["services"]
    assert len(found) == 1
    return found[0]["id"]


def _create(api: TestClient, admin: Caller, name: str = "g", **filters: str) -> dict:
    r = api.post(GROUPS, headers=admin.headers,
                 json={"endpoint_group": {"name": name, "description": "d",
                                          "filters": filters or {"interface": "public"}}})
    assert r.status_code == 201, r.text
    return r.json()["endpoint_group"]


def _catalog(api: TestClient, caller: Caller) -> dict[str, list[dict]]:
    r = api.get(f"{V3}/auth/catalog", headers=caller.headers)
    assert r.status_code == 200, r.text
    return {svc["type"]: svc["endpoints"] for svc in r.json()["catalog"]}


@pytest.fixture
def system_reader(api: TestClient, admin: Caller, member: Caller) -> dict[str, str]:
    """alice (a member of project-a) also holds reader on the system: a system-scoped token."""
    url = f"{V3}/system/users/{member.user_id}/roles/{role_id(api, admin, 'reader')}"
    assert api.put(url, headers=admin.headers).status_code == 204
    token = token_for(api, "alice", "pw-alice", {"system": {"all": True}})
    return {"X-Auth-Token": token}


def test_endpoint_group_crud(api: TestClient, admin: Caller) -> None:
    compute = _service_id(api, admin, "compute")
    group = _create(api, admin, "computes", service_id=compute)
    assert group["name"] == "computes" and group["description"] == "d"
    assert group["filters"] == {"service_id": compute} and len(group["id"]) == 32
    assert group["links"]["self"] == f"{PUBLIC}{GROUPS}/{group['id']}"
    other = _create(api, admin, "internals", interface="internal")

    listed = api.get(GROUPS, headers=admin.headers).json()
    assert group in listed["endpoint_groups"] and other in listed["endpoint_groups"]
    by_name = api.get(f"{GROUPS}?name=internals", headers=admin.headers).json()
    assert by_name["endpoint_groups"] == [other]
    assert api.get(f"{GROUPS}/{group['id']}", headers=admin.headers).json() == {
        "endpoint_group": group}
    assert api.head(f"{GROUPS}/{group['id']}", headers=admin.headers).status_code == 200

    image = _service_id(api, admin, "image")
    r = api.patch(f"{GROUPS}/{group['id']}", headers=admin.headers,
                  json={"endpoint_group": {"name": "images", "description": None,
                                           "filters": {"service_id": image,
                                                       "interface": "admin"}}})
    assert r.status_code == 200, r.text
    changed = r.json()["endpoint_group"]
    assert (changed["name"], changed["description"]) == ("images", None)
    assert changed["filters"] == {"service_id": image, "interface": "admin"}
    assert api.get(f"{GROUPS}/{group['id']}", headers=admin.headers).json()[
        "endpoint_group"] == changed

    assert api.delete(f"{GROUPS}/{group['id']}", headers=admin.headers).status_code == 204
    assert [g["id"] for g in api.get(GROUPS, headers=admin.headers).json()[
        "endpoint_groups"]] == [other["id"]]
    missing = f"{GROUPS}/{group['id']}"
    assert_error(api.get(missing, headers=admin.headers), 404,
                 f"Could not find endpoint group: {group['id']}.")
    assert api.head(missing, headers=admin.headers).status_code == 404
    assert_error(api.patch(missing, headers=admin.headers,
                           json={"endpoint_group": {"name": "x"}}), 404)
    assert_error(api.delete(missing, headers=admin.headers), 404)


def test_endpoints_of_a_group_match_its_filters(api: TestClient, admin: Caller) -> None:
    internal = _create(api, admin, "internal", interface="internal")
    found = api.get(f"{GROUPS}/{internal['id']}/endpoints", headers=admin.headers).json()
    assert len(found["endpoints"]) == 6
    assert {e["interface"] for e in found["endpoints"]} == {"internal"}
    compute = _service_id(api, admin, "compute")
    one = _create(api, admin, "one", service_id=compute, interface="public",
                  region_id="RegionOne")
    found = api.get(f"{GROUPS}/{one['id']}/endpoints", headers=admin.headers).json()
    assert [e["url"] for e in found["endpoints"]] == [f"{PUBLIC}/compute/v2.1"]
    nowhere = _create(api, admin, "nowhere", region_id="Mars")
    assert api.get(f"{GROUPS}/{nowhere['id']}/endpoints",
                   headers=admin.headers).json()["endpoints"] == []
    assert_error(api.get(f"{GROUPS}/nope/endpoints", headers=admin.headers), 404)


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "g"}, "filters"),
    ({"filters": {"interface": "public"}}, "name"),
    ({"name": "g", "filters": {}}, "endpoint_group/filters"),
    ({"name": "g", "filters": {"url": "http://x"}}, "endpoint_group/filters"),
    ({"name": "g", "filters": {"interface": 5}}, "endpoint_group/filters/interface"),
    ({"name": "g", "filters": "interface=public"}, "endpoint_group/filters"),
    ({"name": "", "filters": {"interface": "public"}}, "endpoint_group/name"),
    ({"name": "g", "filters": {"interface": "public"}, "colour": "red"}, "colour"),
])
def test_bad_endpoint_groups_are_refused_naming_the_field(api: TestClient, admin: Caller,
                                                          body: dict, field: str) -> None:
    r = api.post(GROUPS, headers=admin.headers, json={"endpoint_group": body})
    assert_error(r, 400)
    assert field in r.json()["error"]["message"]
    assert api.get(GROUPS, headers=admin.headers).json()["endpoint_groups"] == []


def test_bad_update_changes_nothing(api: TestClient, admin: Caller) -> None:
    group = _create(api, admin, "g", interface="public")
    for body, field in (({}, "endpoint_group"),
                        ({"filters": {"service": "x"}}, "endpoint_group/filters"),
                        ({"name": 3}, "endpoint_group/name")):
        r = api.patch(f"{GROUPS}/{group['id']}", headers=admin.headers,
                      json={"endpoint_group": body})
        assert_error(r, 400)
        assert field in r.json()["error"]["message"]
    assert api.get(f"{GROUPS}/{group['id']}", headers=admin.headers).json()[
        "endpoint_group"] == group


def test_who_may_read_and_write_endpoint_groups(api: TestClient, admin: Caller, member: Caller,
                                                reader: Caller, other_member: Caller,
                                                system_reader: dict[str, str]) -> None:
    group = _create(api, admin, "g", interface="public")
    one = f"{GROUPS}/{group['id']}"
    assoc = f"{one}/projects/{member.project_id}"
    assert api.put(assoc, headers=admin.headers).status_code == 204
    endpoint = api.get(f"{GROUPS}/{group['id']}/endpoints",
                       headers=admin.headers).json()["endpoints"][0]["id"]
    direct = f"{EPF}/projects/{member.project_id}/endpoints/{endpoint}"
    assert api.put(direct, headers=admin.headers).status_code == 204
    reads = [GROUPS, one, f"{one}/endpoints", f"{one}/projects", assoc,
             f"{EPF}/projects/{member.project_id}/endpoint_groups",
             f"{EPF}/projects/{member.project_id}/endpoints", direct,
             f"{EPF}/endpoints/{endpoint}/projects"]
    body = {"endpoint_group": {"name": "x", "filters": {"interface": "admin"}}}
    for caller in (member.headers, reader.headers, other_member.headers, system_reader):
        assert_error(api.post(GROUPS, headers=caller, json=body), 403)
        assert_error(api.patch(one, headers=caller, json={"endpoint_group": {"name": "x"}}), 403)
        assert_error(api.delete(one, headers=caller), 403)
        assert_error(api.put(f"{one}/projects/{other_member.project_id}", headers=caller), 403)
        assert_error(api.delete(assoc, headers=caller), 403)
        assert_error(api.put(f"{EPF}/projects/{other_member.project_id}/endpoints/{endpoint}",
                             headers=caller), 403)
        assert_error(api.delete(direct, headers=caller), 403)
    for caller in (member.headers, reader.headers, other_member.headers):
        for url in reads:
            assert_error(api.get(url, headers=caller), 403)
    # Keystone's default policy: a reader scoped to the system reads them all.
    for url in reads:
        assert api.get(url, headers=system_reader).status_code in (200, 204), url
    assert api.get(one, headers=system_reader).json()["endpoint_group"] == group
    # Nothing the refused callers tried was written.
    assert api.get(GROUPS, headers=admin.headers).json()["endpoint_groups"] == [group]
    assert [p["id"] for p in api.get(f"{one}/projects", headers=admin.headers).json()[
        "projects"]] == [member.project_id]


def test_project_associations_of_a_group(api: TestClient, admin: Caller, member: Caller,
                                         other_member: Caller) -> None:
    group = _create(api, admin, "g", interface="public")
    url = f"{GROUPS}/{group['id']}/projects/{member.project_id}"
    assert_error(api.get(url, headers=admin.headers), 404)
    assert api.head(url, headers=admin.headers).status_code == 404
    assert api.put(url, headers=admin.headers).status_code == 204
    assert_error(api.put(url, headers=admin.headers), 409)
    r = api.get(url, headers=admin.headers)
    assert r.status_code == 200, r.text
    assert r.json() == {"project_endpoint_group": {
        "endpoint_group_id": group["id"], "project_id": member.project_id,
        "links": {"self": f"{PUBLIC}{url}"}}}
    assert api.head(url, headers=admin.headers).status_code == 200
    projects = api.get(f"{GROUPS}/{group['id']}/projects", headers=admin.headers).json()
    assert [(p["id"], p["name"]) for p in projects["projects"]] == [
        (member.project_id, "project-a")]
    of_project = api.get(f"{EPF}/projects/{member.project_id}/endpoint_groups",
                         headers=admin.headers).json()
    assert of_project["endpoint_groups"] == [group]
    assert api.get(f"{EPF}/projects/{other_member.project_id}/endpoint_groups",
                   headers=admin.headers).json()["endpoint_groups"] == []
    assert api.delete(url, headers=admin.headers).status_code == 204
    assert_error(api.delete(url, headers=admin.headers), 404)
    assert api.get(f"{GROUPS}/{group['id']}/projects",
                   headers=admin.headers).json()["projects"] == []
    # Unknown project or group: 404, nothing written.
    assert_error(api.put(f"{GROUPS}/{group['id']}/projects/nope", headers=admin.headers), 404,
                 "Could not find project: nope.")
    assert_error(api.put(f"{GROUPS}/nope/projects/{member.project_id}", headers=admin.headers),
                 404, "Could not find endpoint group: nope.")
    assert_error(api.get(f"{EPF}/projects/nope/endpoint_groups", headers=admin.headers), 404)
    assert_error(api.get(f"{GROUPS}/nope/projects", headers=admin.headers), 404)


def test_a_project_with_associations_gets_only_those_endpoints(
        api: TestClient, admin: Caller, member: Caller, other_member: Caller) -> None:
    assert sorted(_catalog(api, member)) == ["block-storage", "compute", "identity", "image",
                                            "network", "volumev3"]
    compute = _service_id(api, admin, "compute")
    group = _create(api, admin, "computes", service_id=compute)
    url = f"{GROUPS}/{group['id']}/projects/{member.project_id}"
    assert api.put(url, headers=admin.headers).status_code == 204

    narrowed = _catalog(api, member)
    assert sorted(narrowed) == ["compute"] and len(narrowed["compute"]) == 3
    # A new token for the project carries the same; another project keeps everything.
    token = api.post(f"{V3}/auth/tokens", json={"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "id": member.user_id, "password": "pw-alice"}}},
        "scope": {"project": {"id": member.project_id}}}}).json()["token"]
    assert [s["type"] for s in token["catalog"]] == ["compute"]
    assert sorted(_catalog(api, other_member)) == [
        "block-storage", "compute", "identity", "image", "network", "volumev3"]

    # A single endpoint associated directly is added to what the groups give.
    image_public = next(e["id"] for e in api.get(
        f"{V3}/endpoints?interface=public&service_id={_service_id(api, admin, 'image')}",
        headers=admin.headers).json()["endpoints"])
    direct = f"{EPF}/projects/{member.project_id}/endpoints/{image_public}"
    assert api.put(direct, headers=admin.headers).status_code == 204
    narrowed = _catalog(api, member)
    assert sorted(narrowed) == ["compute", "image"]
    assert [e["id"] for e in narrowed["image"]] == [image_public]
    listed = api.get(f"{EPF}/projects/{member.project_id}/endpoints",
                     headers=admin.headers).json()["endpoints"]
    assert len(listed) == 4 and image_public in {e["id"] for e in listed}

    # Deleting the group removes its associations: only the direct endpoint is left.
    assert api.delete(f"{GROUPS}/{group['id']}", headers=admin.headers).status_code == 204
    assert sorted(_catalog(api, member)) == ["image"]
    assert api.get(f"{EPF}/projects/{member.project_id}/endpoint_groups",
                   headers=admin.headers).json()["endpoint_groups"] == []
    # No association left: the whole catalog again.
    assert api.delete(direct, headers=admin.headers).status_code == 204
    assert sorted(_catalog(api, member)) == [
        "block-storage", "compute", "identity", "image", "network", "volumev3"]


def test_single_endpoint_associations(api: TestClient, admin: Caller, member: Caller) -> None:
    endpoint = api.get(f"{V3}/endpoints?interface=admin", headers=admin.headers).json()[
        "endpoints"][0]
    url = f"{EPF}/projects/{member.project_id}/endpoints/{endpoint['id']}"
    assert_error(api.get(url, headers=admin.headers), 404)
    assert api.put(url, headers=admin.headers).status_code == 204
    assert_error(api.put(url, headers=admin.headers), 409)
    assert api.get(url, headers=admin.headers).status_code == 204
    assert api.head(url, headers=admin.headers).status_code == 204
    assert api.get(f"{EPF}/projects/{member.project_id}/endpoints",
                   headers=admin.headers).json()["endpoints"] == [
        {**endpoint, "links": endpoint["links"]}]
    projects = api.get(f"{EPF}/endpoints/{endpoint['id']}/projects",
                       headers=admin.headers).json()["projects"]
    assert [p["id"] for p in projects] == [member.project_id]
    assert api.delete(url, headers=admin.headers).status_code == 204
    assert_error(api.get(url, headers=admin.headers), 404)
    assert_error(api.delete(url, headers=admin.headers), 404)
    assert_error(api.put(f"{EPF}/projects/{member.project_id}/endpoints/nope",
                         headers=admin.headers), 404, "Could not find endpoint: nope.")
    assert_error(api.put(f"{EPF}/projects/nope/endpoints/{endpoint['id']}",
                         headers=admin.headers), 404, "Could not find project: nope.")
    assert_error(api.get(f"{EPF}/endpoints/nope/projects", headers=admin.headers), 404)
    assert_error(api.get(f"{EPF}/projects/nope/endpoints", headers=admin.headers), 404)


def test_deleting_a_project_or_an_endpoint_removes_its_associations(
        api: TestClient, admin: Caller) -> None:
    project = api.post(f"{V3}/projects", headers=admin.headers,
                       json={"project": {"name": "short-lived"}}).json()["project"]
    group = _create(api, admin, "g", interface="internal")
    r = api.post(f"{V3}/endpoints", headers=admin.headers, json={"endpoint": {
        "service_id": _service_id(api, admin, "image"), "interface": "internal",
        "url": "http://extra.example/image"}})
    endpoint = r.json()["endpoint"]["id"]
    assert api.put(f"{GROUPS}/{group['id']}/projects/{project['id']}",
                   headers=admin.headers).status_code == 204
    assert api.put(f"{EPF}/projects/{project['id']}/endpoints/{endpoint}",
                   headers=admin.headers).status_code == 204
    # The group matches the new endpoint too (filters, not a fixed list).
    assert endpoint in {e["id"] for e in api.get(f"{GROUPS}/{group['id']}/endpoints",
                                                 headers=admin.headers).json()["endpoints"]}

    assert api.delete(f"{V3}/endpoints/{endpoint}", headers=admin.headers).status_code == 204
    assert_error(api.get(f"{EPF}/endpoints/{endpoint}/projects", headers=admin.headers), 404)
    assert endpoint not in {e["id"] for e in api.get(
        f"{EPF}/projects/{project['id']}/endpoints", headers=admin.headers).json()["endpoints"]}

    assert api.delete(f"{V3}/projects/{project['id']}", headers=admin.headers).status_code == 204
    assert api.get(f"{GROUPS}/{group['id']}/projects",
                   headers=admin.headers).json()["projects"] == []
