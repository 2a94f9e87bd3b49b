"""Block-storage API microversions: 3.0 up to MAX_VERSION, negotiated from
`OpenStack-API-Version: volume 3.x`. The declared gates (Since, by_version, fields_since,
min_version) are compute's, applied to this API's versions."""

from __future__ import annotations

from starlette.requests import Request

from cirrus.api.compute.microversion import (
    ByVersion,
    Since,
    Version,
    by_version,
    fields_since,
    fmt,
    header_version,
    max_version,
    min_version,
)
from cirrus.errors import NotAcceptable

__all__ = ["MIN_VERSION", "MAX_VERSION", "ByVersion", "Since", "Version", "by_version",
           "fields_since", "fmt", "max_version", "min_version", "negotiate"]

MIN_VERSION = (3, 0)
MAX_VERSION = (3, 60)
SERVICE_NAMES = ("volume", "block-storage")


def requested(request: Request) -> tuple[int, int]:
    asked = header_version(request, SERVICE_NAMES, MAX_VERSION)
    return MIN_VERSION if asked is None else asked


def negotiate(request: Request) -> tuple[tuple[int, int], dict[str, str]]:
    headers = {"Vary": "OpenStack-API-Version"}
    path = request.url.path.rstrip("/")
    if path in ("/volume", "/volume/v3"):  # version documents are not versioned
        return MIN_VERSION, headers
    version = requested(request)
    if not MIN_VERSION <= version <= MAX_VERSION:
        raise NotAcceptable(
            f"Version {fmt(version)} is not supported by the API. Minimum is "
            f"{fmt(MIN_VERSION)} and maximum is {fmt(MAX_VERSION)}.",
            headers={**headers, "OpenStack-API-Version": f"volume {fmt(version)}"})
    headers["OpenStack-API-Version"] = f"volume {fmt(version)}"
    return version, headers
