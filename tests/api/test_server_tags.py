"""Server tags (2.26): the routes, who may use them, bad input, and the list filters."""

from __future__ import annotations

import pytest

from tests.api.servers_helpers import server_body, wait_for_status

BASE = "/compute/v2.1"
V = "2.26"


@pytest.fixture
def server(api, member, flavor, image) -> str:
    r = api.post(f"{BASE}/servers", headers=member.compute(),
                 json=server_body(flavor, image, tags=["alpha"]))
    assert r.status_code == 202, r.text
    sid = r.json()["server"]["id"]
    wait_for_status(api, member.compute(), sid, "ACTIVE")
    return sid


def tags_of(api, caller, sid):
    r = api.get(f"{BASE}/servers/{sid}/tags", headers=caller.compute(V))
    assert r.status_code == 200, r.text
    return r.json()["tags"]


def test_tag_routes_and_server_body(api, member, reader, server):
    assert tags_of(api, reader, server) == ["alpha"]
    r = api.put(f"{BASE}/servers/{server}/tags/beta", headers=member.compute(V))
    assert r.status_code == 201
    assert r.headers["location"].endswith(f"/compute/v2.1/servers/{server}/tags/beta")
    assert api.put(f"{BASE}/servers/{server}/tags/beta",
                   headers=member.compute(V)).status_code == 204
    assert api.get(f"{BASE}/servers/{server}/tags/beta",
                   headers=reader.compute(V)).status_code == 204
    assert api.get(f"{BASE}/servers/{server}/tags/gamma",
                   headers=reader.compute(V)).status_code == 404
    shown = api.get(f"{BASE}/servers/{server}", headers=member.compute(V)).json()["server"]
    assert shown["tags"] == ["alpha", "beta"]
    assert "tags" not in api.get(f"{BASE}/servers/{server}",
                                 headers=member.compute("2.25")).json()["server"]
    r = api.put(f"{BASE}/servers/{server}/tags", headers=member.compute(V),
                json={"tags": ["x", "y", "x"]})
    assert r.status_code == 200 and r.json() == {"tags": ["x", "y"]}
    assert api.delete(f"{BASE}/servers/{server}/tags/x",
                      headers=member.compute(V)).status_code == 204
    assert api.delete(f"{BASE}/servers/{server}/tags/x",
                      headers=member.compute(V)).status_code == 404
    assert tags_of(api, member, server) == ["y"]
    assert api.delete(f"{BASE}/servers/{server}/tags",
                      headers=member.compute(V)).status_code == 204
    assert tags_of(api, member, server) == []


def test_tags_are_404_before_2_26(api, member, server):
    for method, path in (("GET", "tags"), ("PUT", "tags/a"), ("DELETE", "tags")):
        r = api.request(method, f"{BASE}/servers/{server}/{path}",
                        headers=member.compute("2.25"))
        assert r.status_code == 404


def test_tag_authorisation(api, admin, member, reader, other_member, server):
    # Readers read, not write.
    for method, path in (("PUT", "tags/a"), ("DELETE", "tags/alpha"), ("DELETE", "tags")):
        assert api.request(method, f"{BASE}/servers/{server}/{path}",
                           headers=reader.compute(V)).status_code == 403
    r = api.put(f"{BASE}/servers/{server}/tags", headers=reader.compute(V), json={"tags": []})
    assert r.status_code == 403
    # Another project's member does not see the server at all.
    for method, path in (("GET", "tags"), ("GET", "tags/alpha"), ("PUT", "tags/a"),
                         ("DELETE", "tags/alpha"), ("DELETE", "tags")):
        assert api.request(method, f"{BASE}/servers/{server}/{path}",
                           headers=other_member.compute(V)).status_code == 404
    assert api.put(f"{BASE}/servers/{server}/tags/admins", headers=admin.compute(V)
                   ).status_code == 201
    assert tags_of(api, member, server) == ["alpha", "admins"]


@pytest.mark.parametrize(("body", "field"), [
    ({"tags": ["a/b"]}, "tags"),
    ({"tags": ["x" * 61]}, "tags"),
    ({"tags": [f"t{i}" for i in range(51)]}, "tags"),
    ({"tags": "alpha"}, "tags"),
    ({"labels": []}, "labels"),
])
def test_bad_tag_lists_are_400_naming_the_field(api, member, server, body, field):
    r = api.put(f"{BASE}/servers/{server}/tags", headers=member.compute(V), json=body)
    assert r.status_code == 400, r.text
    assert field in r.json()["badRequest"]["message"]
    assert tags_of(api, member, server) == ["alpha"]


def test_bad_single_tags_and_the_limit(api, member, server):
    r = api.put(f"{BASE}/servers/{server}/tags/{'x' * 61}", headers=member.compute(V))
    assert r.status_code == 400 and "tag" in r.json()["badRequest"]["message"]
    r = api.put(f"{BASE}/servers/{server}/tags/a,b", headers=member.compute(V))
    assert r.status_code == 400
    api.put(f"{BASE}/servers/{server}/tags", headers=member.compute(V),
            json={"tags": [f"t{i}" for i in range(50)]})
    r = api.put(f"{BASE}/servers/{server}/tags/one-more", headers=member.compute(V))
    assert r.status_code == 400 and "50 tags" in r.json()["badRequest"]["message"]
    assert len(tags_of(api, member, server)) == 50


def test_list_filters_by_tags(api, member, flavor, image):
    ids = {}
    for name, tags in (("ab", ["a", "b"]), ("a", ["a"]), ("c", ["c"]), ("none", [])):
        r = api.post(f"{BASE}/servers", headers=member.compute(),
                     json=server_body(flavor, image, name=name, tags=tags))
        ids[r.json()["server"]["id"]] = name

    def names(query, version=V):
        r = api.get(f"{BASE}/servers?{query}", headers=member.compute(version))
        assert r.status_code == 200, r.text
        return sorted(ids[s["id"]] for s in r.json()["servers"])

    assert names("tags=a,b") == ["ab"]
    assert names("tags-any=b,c") == ["ab", "c"]
    assert names("not-tags=a,b") == ["a", "c", "none"]
    assert names("not-tags-any=a") == ["c", "none"]
    assert names("tags=a&limit=1") in (["a"], ["ab"])
    # Before 2.26 the tag filters are not Nova's: ignored.
    assert names("tags=a,b", "2.25") == ["a", "ab", "c", "none"]
    r = api.get(f"{BASE}/servers?tags=a,,b", headers=member.compute(V))
    assert r.status_code == 400 and "tags" in r.json()["badRequest"]["message"]
