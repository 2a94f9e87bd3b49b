"""Compute API microversions: 2.1 up to MAX_VERSION, negotiated from the request headers."""

from __future__ import annotations

from starlette.requests import Request

from cirrus.errors import BadRequest, NotAcceptable

MIN_VERSION = (2, 1)
MAX_VERSION = (2, 60)


def fmt(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def parse(text: str) -> tuple[int, int]:
    text = text.strip()
    if text == "latest":
        return MAX_VERSION
    try:
        major, minor = (int(part) for part in text.split("."))
    except ValueError as exc:
        raise BadRequest(f"Invalid API version request string {text!r}.") from exc
    return major, minor


def requested(request: Request) -> tuple[int, int]:
    header = request.headers.get("openstack-api-version")
    if header:
        for part in header.split(","):
            service, _, value = part.strip().partition(" ")
            if service.lower() == "compute" and value:
                return parse(value)
    legacy = request.headers.get("x-openstack-nova-api-version")
    return parse(legacy) if legacy else MIN_VERSION


def negotiate(request: Request) -> tuple[tuple[int, int], dict[str, str]]:
    headers = {"Vary": "OpenStack-API-Version, X-OpenStack-Nova-API-Version"}
    path = request.url.path.rstrip("/")
    if path in ("/compute", "/compute/v2.1", "/compute/v2"):
        # Version documents are not versioned.
        return MIN_VERSION, headers
    version = requested(request)
    if not MIN_VERSION <= version <= MAX_VERSION:
        headers = {**headers, "OpenStack-API-Version": f"compute {fmt(version)}",
                   "X-OpenStack-Nova-API-Version": fmt(version)}
        raise NotAcceptable(
            f"Version {fmt(version)} is not supported by the API. Minimum is {fmt(MIN_VERSION)} "
            f"and maximum is {fmt(MAX_VERSION)}.", headers=headers)
    headers["OpenStack-API-Version"] = f"compute {fmt(version)}"
    headers["X-OpenStack-Nova-API-Version"] = fmt(version)
    return version, headers

