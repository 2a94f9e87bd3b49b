"""Version discovery: GET / and /v3."""

from __future__ import annotations

from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.identity.common import FAST_NOAUTH, MEDIA_TYPES, V3_ID, V3_UPDATED, _v3


def _version_doc(req: ApiRequest) -> dict:
    return {"id": V3_ID, "status": "stable", "updated": V3_UPDATED,
            "links": [{"rel": "self", "href": f"{_v3(req)}/"}], "media-types": MEDIA_TYPES}


def list_versions(req: ApiRequest) -> Reply:
    return Reply(300, {"versions": {"values": [_version_doc(req)]}})


def show_v3(req: ApiRequest) -> dict:
    return {"version": _version_doc(req)}


ROUTES: list = [
    ("GET", "/", list_versions, FAST_NOAUTH),
    ("GET", "/v3", show_v3, FAST_NOAUTH),
    ("GET", "/v3/", show_v3, FAST_NOAUTH),
]
