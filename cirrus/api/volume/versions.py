"""Block-storage version documents: GET /volume/ (300, Cinder's multiple choices) lists v3;
GET /volume/v3/ describes it with the microversion range this Cirrus honours. No token."""

from __future__ import annotations

from typing import Any

from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.volume import microversion
from cirrus.api.volume.common import volume_root

UPDATED = "2023-03-28T00:00:00Z"
MEDIA_TYPES = [{"base": "application/json",
                "type": "application/vnd.openstack.volume+json;version=3"}]


def _describe(req: ApiRequest) -> dict[str, Any]:
    return {
        "id": "v3.0", "status": "CURRENT",
        "version": microversion.fmt(microversion.MAX_VERSION),
        "min_version": microversion.fmt(microversion.MIN_VERSION),
        "updated": UPDATED,
        "links": [{"rel": "describedby", "type": "text/html",
                   "href": "https://docs.openstack.org/"},
                  {"rel": "self", "href": f"{volume_root(req)}/v3/"}],
        "media-types": MEDIA_TYPES,
    }


def list_versions(req: ApiRequest) -> Reply:
    return Reply(300, {"versions": [_describe(req)]})


def show_v3(req: ApiRequest) -> dict:
    return {"versions": [_describe(req)]}


ROUTES = [
    ("GET", "/", list_versions, {"auth": False, "inline": True}),
    ("GET", "/v3/", show_v3, {"auth": False, "inline": True}),
    ("GET", "/v3", show_v3, {"auth": False, "inline": True}),
]
