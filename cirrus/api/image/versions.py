"""Version discovery: GET /, /v2 and /v2/."""

from __future__ import annotations

from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.image.common import (
    CURRENT_VERSION,
    SUPPORTED_VERSIONS,
)


def _version(version: str, status: str, base: str) -> dict:
    return {"id": f"v{version}", "status": status,
            "links": [{"rel": "self", "href": f"{base}/image/v2/"}]}


def version_document(req: ApiRequest) -> Reply:
    base = req.base_url
    versions = [_version(CURRENT_VERSION, "CURRENT", base)]
    versions += [_version(v, "SUPPORTED", base) for v in SUPPORTED_VERSIONS]
    return Reply(300, {"versions": versions})


ROUTES: list = [
    ("GET", "/", version_document, {"auth": False, "inline": True}),
    ("GET", "/v2", version_document, {"auth": False, "inline": True}),
    ("GET", "/v2/", version_document, {"auth": False, "inline": True}),
]
