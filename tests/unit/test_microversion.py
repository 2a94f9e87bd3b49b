"""Compute microversion negotiation, and the version documents that announce the range."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from cirrus.api.compute import microversion
from cirrus.errors import BadRequest, NotAcceptable


def request(path: str = "/compute/v2.1/flavors", **headers: str) -> Request:
    raw = [(k.replace("_", "-").lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "method": "GET", "path": path, "headers": raw,
                    "query_string": b""})


def test_parse_reads_major_minor_and_latest():
    assert microversion.parse("2.55") == (2, 55)
    assert microversion.parse(" 2.7 ") == (2, 7)
    assert microversion.parse("latest") == microversion.MAX_VERSION


@pytest.mark.parametrize("text", ["two", "2", "2.x", "2.1.1", ""])
def test_parse_refuses_malformed_versions(text):
    with pytest.raises(BadRequest):
        microversion.parse(text)


def test_no_header_means_the_minimum():
    version, headers = microversion.negotiate(request())
    assert version == microversion.MIN_VERSION
    assert headers["OpenStack-API-Version"] == "compute 2.1"


def test_new_style_header_wins_over_legacy():
    version, headers = microversion.negotiate(request(
        openstack_api_version="identity 3.5, compute 2.42", x_openstack_nova_api_version="2.3"))
    assert version == (2, 42)
    assert headers["X-OpenStack-Nova-API-Version"] == "2.42"
    assert "OpenStack-API-Version" in headers["Vary"]


def test_legacy_header_is_honoured():
    version, _ = microversion.negotiate(request(x_openstack_nova_api_version="2.11"))
    assert version == (2, 11)


@pytest.mark.parametrize("value", ["2.0", "2.61", "3.0", "1.1"])
def test_versions_outside_the_range_are_406(value):
    with pytest.raises(NotAcceptable):
        microversion.negotiate(request(openstack_api_version=f"compute {value}"))


def test_version_documents_are_not_versioned():
    version, _ = microversion.negotiate(request("/compute/v2.1/",
                                                openstack_api_version="compute 9.9"))
    assert version == microversion.MIN_VERSION


# ---------------------------------------------------------------- through the app


def test_unsupported_version_is_406_over_http(api, member):
    r = api.get("/compute/v2.1/flavors", headers=member.compute("2.61"))
    assert r.status_code == 406
    assert "2.61" in r.json()["HTTPNotAcceptable"]["message"]
    r = api.get("/compute/v2.1/flavors", headers=member.compute("latest"))
    assert r.status_code == 200
    assert r.headers["OpenStack-API-Version"] == "compute 2.60"
    r = api.get("/compute/v2.1/flavors", headers=member.compute("2.x"))
    assert r.status_code == 400


def test_root_lists_v2_1_without_a_token(api):
    r = api.get("/compute/")
    assert r.status_code == 200
    assert r.json() == {"versions": [{
        "id": "v2.1", "status": "CURRENT", "version": "2.60", "min_version": "2.1",
        "updated": "2013-07-23T11:33:21Z",
        "links": [{"rel": "self", "href": "http://testserver/compute/v2.1/"}]}]}


@pytest.mark.parametrize("path", ["/compute/v2.1", "/compute/v2.1/"])
def test_v2_1_document_announces_the_range(api, path):
    r = api.get(path)
    assert r.status_code == 200
    doc = r.json()["version"]
    assert (doc["id"], doc["status"], doc["version"], doc["min_version"]) == (
        "v2.1", "CURRENT", microversion.fmt(microversion.MAX_VERSION),
        microversion.fmt(microversion.MIN_VERSION))
    assert doc["links"][0] == {"rel": "self", "href": "http://testserver/compute/v2.1/"}
    assert doc["media-types"] == [{"base": "application/json",
                                   "type": "application/vnd.openstack.compute+json;version=2.1"}]
