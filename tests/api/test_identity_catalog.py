"""Regions, services and endpoints stored in the database; the catalog in tokens follows them."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from tests.api.test_identity import PUBLIC, V3, assert_error
from tests.conftest import Caller


def _token_catalog(api: TestClient, caller: Caller) -> list[dict]:
    r = api.get(f"{V3}/auth/catalog", headers=caller.headers)
    assert r.status_code == 200, r.text
    return r.json()["catalog"]


def test_a_fresh_cloud_serves_every_interface_of_its_public_url(api: TestClient,
                                                                 member: Caller) -> None:
    by_type = {svc["type"]: svc for svc in _token_catalog(api, member)}
    assert sorted(by_type) == ["block-storage", "compute", "identity", "image", "network",
                              "volumev3"]
    compute = by_type["compute"]["endpoints"]
    assert sorted(e["interface"] for e in compute) == ["admin", "internal", "public"]
    assert {(e["url"], e["region_id"], e["region"]) for e in compute} == {
        (f"{PUBLIC}/compute/v2.1", "RegionOne", "RegionOne")}


def test_service_and_endpoint_crud_show_in_new_tokens(api: TestClient, admin: Caller,
                                                      member: Caller) -> None:
    r = api.post(f"{V3}/services", headers=admin.headers,
                 json={"service": {"type": "object-store", "name": "swift",
                                   "description": "blocks"}})
    assert r.status_code == 201, r.text
    svc = r.json()["service"]
    assert svc["enabled"] is True and svc["links"]["self"] == f"{PUBLIC}{V3}/services/{svc['id']}"
    r = api.post(f"{V3}/endpoints", headers=admin.headers,
                 json={"endpoint": {"service_id": svc["id"], "interface": "public",
                                    "url": "http://blocks.example/v3", "region_id": "RegionOne"}})
    assert r.status_code == 201, r.text
    ep = r.json()["endpoint"]
    assert (ep["region"], ep["region_id"], ep["enabled"]) == ("RegionOne", "RegionOne", True)
    cinder = next(s for s in _token_catalog(api, member) if s["type"] == "object-store")
    assert [e["url"] for e in cinder["endpoints"]] == ["http://blocks.example/v3"]

    r = api.patch(f"{V3}/endpoints/{ep['id']}", headers=admin.headers,
                  json={"endpoint": {"url": "http://blocks2.example/v3"}})
    assert r.json()["endpoint"]["url"] == "http://blocks2.example/v3"
    cinder = next(s for s in _token_catalog(api, member) if s["type"] == "object-store")
    assert [e["url"] for e in cinder["endpoints"]] == ["http://blocks2.example/v3"]
    # A new token carries it too.
    token = api.post(f"{V3}/auth/tokens", json={"auth": {"identity": {
        "methods": ["password"], "password": {"user": {"id": member.user_id,
                                                       "password": "pw-alice"}}}}})
    assert any(s["type"] == "object-store" for s in token.json()["token"]["catalog"])

    api.patch(f"{V3}/endpoints/{ep['id']}", headers=admin.headers,
              json={"endpoint": {"enabled": False}})
    cinder = next(s for s in _token_catalog(api, member) if s["type"] == "object-store")
    assert cinder["endpoints"] == []
    api.patch(f"{V3}/services/{svc['id']}", headers=admin.headers,
              json={"service": {"enabled": False}})
    assert all(s["type"] != "object-store" for s in _token_catalog(api, member))

    assert api.delete(f"{V3}/services/{svc['id']}", headers=admin.headers).status_code == 204
    assert_error(api.get(f"{V3}/endpoints/{ep['id']}", headers=admin.headers), 404)
    assert_error(api.get(f"{V3}/services/{svc['id']}", headers=admin.headers), 404)


def test_endpoint_filters(api: TestClient, admin: Caller) -> None:
    found = api.get(f"{V3}/endpoints?interface=internal&region_id=RegionOne",
                    headers=admin.headers).json()["endpoints"]
    assert len(found) == 6 and {e["interface"] for e in found} == {"internal"}
    assert api.get(f"{V3}/endpoints?region_id=nowhere",
                   headers=admin.headers).json()["endpoints"] == []


def test_region_crud_with_parents(api: TestClient, admin: Caller, member: Caller) -> None:
    r = api.put(f"{V3}/regions/Europe", headers=admin.headers,
                json={"region": {"description": "EU"}})
    assert r.status_code == 201, r.text
    r = api.post(f"{V3}/regions", headers=admin.headers,
                 json={"region": {"id": "Paris", "parent_region_id": "Europe"}})
    assert r.status_code == 201, r.text
    assert r.json()["region"]["parent_region_id"] == "Europe"
    r = api.post(f"{V3}/regions", headers=admin.headers, json={"region": {}})
    generated = r.json()["region"]["id"]
    assert r.status_code == 201 and len(generated) == 32
    children = api.get(f"{V3}/regions?parent_region_id=Europe", headers=member.headers)
    assert [r["id"] for r in children.json()["regions"]] == ["Paris"]
    # Circular: Europe under Paris.
    assert_error(api.patch(f"{V3}/regions/Europe", headers=admin.headers,
                           json={"region": {"parent_region_id": "Paris"}}), 400)
    assert_error(api.post(f"{V3}/regions", headers=admin.headers,
                          json={"region": {"id": "Europe"}}), 409)
    assert_error(api.post(f"{V3}/regions", headers=admin.headers,
                          json={"region": {"parent_region_id": "nowhere"}}), 404)
    r = api.patch(f"{V3}/regions/Paris", headers=admin.headers,
                  json={"region": {"description": "FR"}})
    assert r.json()["region"]["description"] == "FR"
    # A region with endpoints (RegionOne's defaults) is not deleted.
    assert_error(api.delete(f"{V3}/regions/RegionOne", headers=admin.headers), 403)
    # Deleting a region deletes its children.
    assert api.delete(f"{V3}/regions/Europe", headers=admin.headers).status_code == 204
    assert_error(api.get(f"{V3}/regions/Paris", headers=admin.headers), 404)


def test_bootstrap_follows_a_new_public_url_unless_an_admin_changed_the_endpoint(
        cloud, api: TestClient, admin: Caller) -> None:
    from cirrus.identity.service import catalog_admin

    identity = api.get(f"{V3}/endpoints?interface=public", headers=admin.headers).json()
    ids = {e["url"]: e["id"] for e in identity["endpoints"]}
    changed = ids[f"{PUBLIC}/image"]
    api.patch(f"{V3}/endpoints/{changed}", headers=admin.headers,
              json={"endpoint": {"url": "http://images.example"}})
    cloud.db.run(lambda s: catalog_admin.ensure_default_catalog(s, "http://new:1", "RegionOne"))
    catalog_admin.catalog_changed(cloud.db)
    urls = {e["id"]: e["url"] for e in api.get(f"{V3}/endpoints?interface=public",
                                               headers=admin.headers).json()["endpoints"]}
    assert urls[ids[f"{PUBLIC}/compute/v2.1"]] == "http://new:1/compute/v2.1"
    assert urls[changed] == "http://images.example"


@pytest.mark.parametrize("body, field", [
    ({"endpoint": {"service_id": "x", "interface": "sideways", "url": "http://a"}},
     "endpoint/interface"),
    ({"endpoint": {"service_id": "x", "interface": "public", "url": "http://a",
                   "enabled": "False"}}, "endpoint/enabled"),
    ({"endpoint": {"service_id": "x", "interface": "public", "url": "not a url"}},
     "endpoint/url"),
    ({"endpoint": {"service_id": "nope", "interface": "public", "url": "http://a"}},
     "endpoint/service_id"),
])
def test_bad_endpoints_are_400_naming_the_field(api: TestClient, admin: Caller, body: dict,
                                                field: str) -> None:
    before = api.get(f"{V3}/endpoints", headers=admin.headers).json()["endpoints"]
    r = api.post(f"{V3}/endpoints", headers=admin.headers, json=body)
    assert_error(r, 400)
    assert field in r.json()["error"]["message"]
    assert api.get(f"{V3}/endpoints", headers=admin.headers).json()["endpoints"] == before


def test_bad_region_and_service_bodies_are_400(api: TestClient, admin: Caller) -> None:
    r = api.post(f"{V3}/services", headers=admin.headers, json={"service": {"name": "x"}})
    assert_error(r, 400)
    assert "type" in r.json()["error"]["message"]
    r = api.post(f"{V3}/regions", headers=admin.headers,
                 json={"region": {"description": 5}})
    assert_error(r, 400)
    assert "region/description" in r.json()["error"]["message"]
    r = api.post(f"{V3}/endpoints", headers=admin.headers, json={"endpoint": {
        "service_id": api.get(f"{V3}/services", headers=admin.headers).json()["services"][0]["id"],
        "interface": "public", "url": "http://a", "region_id": "nowhere"}})
    assert_error(r, 400)
    assert "endpoint/region_id" in r.json()["error"]["message"]


@pytest.mark.parametrize("who", ["member", "reader", "other_member"])
def test_only_admins_change_the_catalog(api: TestClient, admin: Caller, who: str,
                                        request: pytest.FixtureRequest) -> None:
    caller: Caller = request.getfixturevalue(who)
    svc_id = api.get(f"{V3}/services", headers=admin.headers).json()["services"][0]["id"]
    ep_id = api.get(f"{V3}/endpoints", headers=admin.headers).json()["endpoints"][0]["id"]
    h = caller.headers
    for r in (api.post(f"{V3}/services", headers=h, json={"service": {"type": "x"}}),
              api.patch(f"{V3}/services/{svc_id}", headers=h, json={"service": {"name": "x"}}),
              api.delete(f"{V3}/services/{svc_id}", headers=h),
              api.get(f"{V3}/services", headers=h),
              api.post(f"{V3}/endpoints", headers=h, json={"endpoint": {
                  "service_id": svc_id, "interface": "public", "url": "http://a"}}),
              api.patch(f"{V3}/endpoints/{ep_id}", headers=h, json={"endpoint": {"url": "http://a"}}),
              api.delete(f"{V3}/endpoints/{ep_id}", headers=h),
              api.get(f"{V3}/endpoints/{ep_id}", headers=h),
              api.post(f"{V3}/regions", headers=h, json={"region": {"id": "x"}}),
              api.put(f"{V3}/regions/x", headers=h, json={"region": {}}),
              api.patch(f"{V3}/regions/RegionOne", headers=h, json={"region": {"description": "x"}}),
              api.delete(f"{V3}/regions/RegionOne", headers=h)):
        assert_error(r, 403)
    # Anyone may read regions; the catalog is unchanged.
    assert [r["id"] for r in api.get(f"{V3}/regions", headers=h).json()["regions"]] == [
        "RegionOne"]
    assert len(api.get(f"{V3}/endpoints", headers=admin.headers).json()["endpoints"]) == 18


def test_a_region_id_too_long_is_400(api: TestClient, admin: Caller) -> None:
    r = api.put(f"{V3}/regions/{'r' * 256}", headers=admin.headers, json={"region": {}})
    assert_error(r, 400)
    assert "region/id" in r.json()["error"]["message"]
    assert_error(api.get(f"{V3}/regions/{'r' * 256}", headers=admin.headers), 404)
