"""Nested projects (parent_id, subtree, parents) and project tags."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from tests.api.test_identity import V3, assert_error
from tests.conftest import Caller


def make_project(api: TestClient, admin: Caller, name: str, **fields: object) -> dict:
    r = api.post(f"{V3}/projects", headers=admin.headers,
                 json={"project": {"name": name, **fields}})
    assert r.status_code == 201, r.text
    return r.json()["project"]


def test_a_tree_of_projects(api: TestClient, admin: Caller) -> None:
    top = make_project(api, admin, "top")
    mid = make_project(api, admin, "mid", parent_id=top["id"])
    leaf = make_project(api, admin, "leaf", parent_id=mid["id"])
    assert (top["parent_id"], mid["parent_id"], leaf["is_domain"]) == ("default", top["id"],
                                                                       False)
    shown = api.get(f"{V3}/projects/{top['id']}?subtree_as_list", headers=admin.headers)
    assert [p["project"]["id"] for p in shown.json()["project"]["subtree"]] == [mid["id"],
                                                                               leaf["id"]]
    shown = api.get(f"{V3}/projects/{top['id']}?subtree_as_ids", headers=admin.headers)
    assert shown.json()["project"]["subtree"] == {mid["id"]: {leaf["id"]: None}}
    shown = api.get(f"{V3}/projects/{leaf['id']}?parents_as_list", headers=admin.headers)
    assert [p["project"]["id"] for p in shown.json()["project"]["parents"]] == [mid["id"],
                                                                               top["id"]]
    shown = api.get(f"{V3}/projects/{leaf['id']}?parents_as_ids", headers=admin.headers)
    assert shown.json()["project"]["parents"] == {mid["id"]: {top["id"]: None}}
    assert "subtree" not in api.get(f"{V3}/projects/{top['id']}",
                                    headers=admin.headers).json()["project"]
    children = api.get(f"{V3}/projects?parent_id={top['id']}", headers=admin.headers)
    assert [p["id"] for p in children.json()["projects"]] == [mid["id"]]
    # A project with children is not deleted (Keystone's 403); a leaf is.
    assert_error(api.delete(f"{V3}/projects/{mid['id']}", headers=admin.headers), 403)
    assert api.get(f"{V3}/projects/{mid['id']}", headers=admin.headers).status_code == 200
    assert api.delete(f"{V3}/projects/{leaf['id']}", headers=admin.headers).status_code == 204
    assert api.delete(f"{V3}/projects/{mid['id']}", headers=admin.headers).status_code == 204


def test_bad_parents_are_refused(api: TestClient, admin: Caller) -> None:
    assert_error(api.post(f"{V3}/projects", headers=admin.headers,
                          json={"project": {"name": "x", "parent_id": "nope"}}), 404)
    # A project acting as a domain has no parent (tests/api/test_identity_domain_projects.py).
    r = api.post(f"{V3}/projects", headers=admin.headers,
                 json={"project": {"name": "x", "is_domain": True, "parent_id": "default"}})
    assert_error(r, 400)
    assert "project/parent_id" in r.json()["error"]["message"]
    top = make_project(api, admin, "top")
    r = api.patch(f"{V3}/projects/{top['id']}", headers=admin.headers,
                  json={"project": {"parent_id": "elsewhere"}})
    assert_error(r, 400)
    assert "parent_id" in r.json()["error"]["message"]


def test_a_member_sees_only_their_projects_in_the_tree(api: TestClient, admin: Caller,
                                                       member: Caller) -> None:
    child = make_project(api, admin, "child", parent_id=member.project_id)
    shown = api.get(f"{V3}/projects/{member.project_id}?subtree_as_list",
                    headers=member.headers)
    assert shown.json()["project"]["subtree"] == []
    shown = api.get(f"{V3}/projects/{member.project_id}?subtree_as_ids", headers=member.headers)
    assert shown.json()["project"]["subtree"] == {child["id"]: None}


def test_tags(api: TestClient, admin: Caller, member: Caller) -> None:
    pid = member.project_id
    url = f"{V3}/projects/{pid}/tags"
    r = api.put(url, headers=member.headers, json={"tags": ["blue", "green"]})
    assert r.status_code == 200 and r.json() == {"tags": ["blue", "green"]}
    r = api.put(f"{url}/red", headers=member.headers)
    assert r.status_code == 201 and r.headers["Location"].endswith(f"/projects/{pid}/tags/red")
    assert api.get(url, headers=member.headers).json() == {"tags": ["blue", "green", "red"]}
    assert api.head(f"{url}/red", headers=member.headers).status_code == 204
    assert api.get(f"{url}/red", headers=member.headers).status_code == 204
    assert_error(api.get(f"{url}/purple", headers=member.headers), 404)
    assert api.delete(f"{url}/red", headers=member.headers).status_code == 204
    assert_error(api.delete(f"{url}/red", headers=member.headers), 404)
    assert api.get(f"{V3}/projects/{pid}", headers=member.headers).json()["project"]["tags"] == [
        "blue", "green"]

    other = make_project(api, admin, "other", tags=["green", "yellow"])

    def listed(query: str) -> set[str]:
        r = api.get(f"{V3}/projects?{query}", headers=admin.headers)
        assert r.status_code == 200, r.text
        return {p["id"] for p in r.json()["projects"]} & {pid, other["id"]}

    assert listed("tags=blue,green") == {pid}
    assert listed("tags=green") == {pid, other["id"]}
    assert listed("tags-any=blue,yellow") == {pid, other["id"]}
    assert listed("not-tags=green,yellow") == {pid}
    assert listed("not-tags-any=blue") == {other["id"]}
    assert api.delete(url, headers=admin.headers).status_code == 204
    assert api.get(url, headers=member.headers).json() == {"tags": []}


@pytest.mark.parametrize("request_, field", [
    (("PUT", "/tags", {"tags": ["a/b"]}), "tags/0"),
    (("PUT", "/tags", {"tags": ["x"] * 2}), "tags"),
    (("PUT", "/tags", {"tags": [f"t{i}" for i in range(81)]}), "tags"),
    (("PUT", "/tags", {"labels": []}), "labels"),
    (("PUT", "/tags/a,b", None), "tag"),
])
def test_bad_tags_are_400_naming_the_field(api: TestClient, admin: Caller, member: Caller,
                                           request_: tuple, field: str) -> None:
    method, path, body = request_
    r = api.request(method, f"{V3}/projects/{member.project_id}{path}", headers=member.headers,
                    json=body)
    assert_error(r, 400)
    assert field in r.json()["error"]["message"]
    assert api.get(f"{V3}/projects/{member.project_id}/tags",
                   headers=member.headers).json() == {"tags": []}
    # Listing projects is an admin's (or a domain reader's) call since Keystone's per-caller
    # rules; a bad tag filter is 400 for them.
    r = api.get(f"{V3}/projects?tags=a/b", headers=admin.headers)
    assert_error(r, 400)


@pytest.mark.parametrize("who", ["reader", "other_member"])
def test_who_may_touch_tags(api: TestClient, admin: Caller, member: Caller, who: str,
                            request: pytest.FixtureRequest) -> None:
    caller: Caller = request.getfixturevalue(who)
    url = f"{V3}/projects/{member.project_id}/tags"
    api.put(url, headers=admin.headers, json={"tags": ["keep"]})
    expected = 403 if who == "reader" else 404
    assert_error(api.put(url, headers=caller.headers, json={"tags": ["x"]}), expected)
    assert_error(api.put(f"{url}/x", headers=caller.headers), expected)
    assert_error(api.delete(f"{url}/keep", headers=caller.headers), expected)
    assert_error(api.delete(url, headers=caller.headers), expected)
    if who == "reader":
        assert api.get(url, headers=caller.headers).json() == {"tags": ["keep"]}
        assert api.head(f"{url}/keep", headers=caller.headers).status_code == 204
    else:
        assert_error(api.get(url, headers=caller.headers), 404)
        assert api.head(f"{url}/keep", headers=caller.headers).status_code == 404
    assert api.get(url, headers=admin.headers).json() == {"tags": ["keep"]}


def test_hierarchy_rules(api: TestClient, admin: Caller) -> None:
    chain = [make_project(api, admin, "level1")]
    for level in range(2, 6):
        chain.append(make_project(api, admin, f"level{level}", parent_id=chain[-1]["id"]))
    r = api.post(f"{V3}/projects", headers=admin.headers,
                 json={"project": {"name": "level6", "parent_id": chain[-1]["id"]}})
    assert_error(r, 403, f"Max hierarchy depth reached for {chain[-1]['id']} branch.")

    parent, child = chain[2], chain[3]
    api.patch(f"{V3}/projects/{child['id']}", headers=admin.headers,
              json={"project": {"enabled": False}})
    api.patch(f"{V3}/projects/{parent['id']}", headers=admin.headers,
              json={"project": {"enabled": False}})
    r = api.post(f"{V3}/projects", headers=admin.headers,
                 json={"project": {"name": "under-disabled", "parent_id": parent["id"]}})
    assert_error(r, 403)
    r = api.patch(f"{V3}/projects/{child['id']}", headers=admin.headers,
                  json={"project": {"enabled": True}})
    assert_error(r, 403, f"Cannot enable project {child['id']} since it has disabled parents.")
    assert api.get(f"{V3}/projects/{child['id']}",
                   headers=admin.headers).json()["project"]["enabled"] is False
