"""Compute version documents.

GET /compute/ lists the API versions (200, as Nova's root does); GET /compute/v2.1 describes
v2.1 with the microversion range this Cirrus honours. Neither needs a token.
"""

from __future__ import annotations

from typing import Any

from cirrus.api.compute import microversion
from cirrus.api.compute.common import api_root
from cirrus.api.framework import ApiRequest

UPDATED = "2013-07-23T11:33:21Z"
MEDIA_TYPES = [{"base": "application/json",
                "type": "application/vnd.openstack.compute+json;version=2.1"}]


# ---------------------------------------------------------------- version documents


def _describe(req: ApiRequest) -> dict[str, Any]:
    return {
        "id": "v2.1",
        "status": "CURRENT",
        "version": microversion.fmt(microversion.MAX_VERSION),
        "min_version": microversion.fmt(microversion.MIN_VERSION),
        "updated": UPDATED,
    }


def list_versions(req: ApiRequest) -> dict:
    doc = _describe(req)
    doc["links"] = [{"rel": "self", "href": f"{api_root(req)}/"}]
    return {"versions": [doc]}


def show_version(req: ApiRequest) -> dict:
    doc = _describe(req)
    doc["links"] = [
        {"rel": "self", "href": f"{api_root(req)}/"},
        {"rel": "describedby", "type": "text/html", "href": "http://docs.openstack.org/"},
    ]
    doc["media-types"] = [dict(m) for m in MEDIA_TYPES]
    return {"version": doc}


PUBLIC = {"auth": False, "inline": True}  # no I/O: served on the event loop
ROUTES = [
    ("GET", "/", list_versions, PUBLIC),
    ("GET", "/v2.1", show_version, PUBLIC),
    ("GET", "/v2.1/", show_version, PUBLIC),
]
