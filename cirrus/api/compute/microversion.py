"""Compute API microversions: 2.1 up to MAX_VERSION, negotiated from the request headers."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from starlette.requests import Request

from cirrus.errors import BadRequest, NotAcceptable, NotFound

MIN_VERSION = (2, 1)
MAX_VERSION = (2, 90)


def fmt(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def parse(text: str, latest: tuple[int, int] = MAX_VERSION) -> tuple[int, int]:
    """"X.Y" or "latest" (the API's newest, `latest`) as a version; 400 otherwise."""
    text = text.strip()
    if text == "latest":
        return latest
    try:
        major, minor = (int(part) for part in text.split("."))
    except ValueError as exc:
        raise BadRequest(f"Invalid API version request string {text!r}.") from exc
    return major, minor


def header_version(request: Request, services: tuple[str, ...],
                   latest: tuple[int, int]) -> tuple[int, int] | None:
    """The version `OpenStack-API-Version` asks of one of `services`, or None. Shared by
    every API with microversions (compute, block storage)."""
    header = request.headers.get("openstack-api-version")
    if header:
        for part in header.split(","):
            service, _, value = part.strip().partition(" ")
            if service.lower() in services and value:
                return parse(value, latest)
    return None


def requested(request: Request) -> tuple[int, int]:
    asked = header_version(request, ("compute",), MAX_VERSION)
    if asked is not None:
        return asked
    legacy = request.headers.get("x-openstack-nova-api-version")
    return parse(legacy) if legacy else MIN_VERSION


def negotiate(request: Request) -> tuple[tuple[int, int], dict[str, str]]:
    headers = {"Vary": "OpenStack-API-Version, X-OpenStack-Nova-API-Version"}
    path = request.url.path.rstrip("/")
    if path in ("/compute", "/compute/v2.1", "/compute/v2"):
        # Version documents are not versioned.
        return MIN_VERSION, headers
    if path.startswith("/compute/v2/"):
        # v2.0, Nova's legacy endpoint: no microversions; it answers as 2.1 without headers.
        return MIN_VERSION, {}
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



# ---------------------------------------------------------------- declared gates
#
# Handlers and views do not compare versions inline; they declare what changed when:
# `Since("2.47")` for a behaviour or field that starts at a version, `by_version({...})` for
# a value (a schema, a status code) chosen from version ranges, `fields_since(...)` for
# response fields a view gains at given versions, `@min_version` for a handler that exists
# only from a version on.

Version = tuple[int, int]
T = TypeVar("T")


class Versioned(Protocol):
    microversion: Version


def _v(text: str) -> Version:
    major, minor = (int(part) for part in text.split("."))
    return major, minor


@dataclass(frozen=True)
class Since:
    """A behaviour that starts at `version` (and, with `until`, ends after that version)."""

    version: str
    until: str | None = None

    def __call__(self, req: Versioned) -> bool:
        if req.microversion < _v(self.version):
            return False
        return self.until is None or req.microversion <= _v(self.until)


class ByVersion(Generic[T]):
    """A value chosen by microversion from declared, non-overlapping ranges
    {("first", "last" or None): value}."""

    def __init__(self, ranges: Mapping[tuple[str, str | None], T]) -> None:
        self.ranges = [(_v(lo), _v(hi) if hi else None, value)
                       for (lo, hi), value in ranges.items()]

    def __call__(self, req: Versioned) -> T:
        for lo, hi, value in self.ranges:
            if lo <= req.microversion and (hi is None or req.microversion <= hi):
                return value
        raise LookupError(f"no value declared for microversion {fmt(req.microversion)}")


def by_version(ranges: Mapping[tuple[str, str | None], T]) -> ByVersion[T]:
    return ByVersion(ranges)


def fields_since(req: Versioned, table: Mapping[str, Mapping[str, Callable[[Any], Any]]],
                 obj: Any) -> dict[str, Any]:
    """The fields of `table` ({"2.9": {"locked": getter}, ...}) that the request's version
    shows, each getter applied to `obj`, in the table's order."""
    return {name: get(obj) for version, fields in table.items()
            if req.microversion >= _v(version) for name, get in fields.items()}


def min_version(version: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """A handler that exists only from `version` on: before it, the route is not found."""

    def wrap(handler: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(handler)
        def gated(req: Versioned, *args: Any, **kwargs: Any) -> T:
            if req.microversion < _v(version):
                raise NotFound("The resource could not be found.")
            return handler(req, *args, **kwargs)

        return gated

    return wrap


def max_version(version: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """A handler that exists only up to `version`: after it, the route is not found (Nova's
    proxies removed at 2.36, for one)."""

    def wrap(handler: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(handler)
        def gated(req: Versioned, *args: Any, **kwargs: Any) -> T:
            if req.microversion > _v(version):
                raise NotFound("The resource could not be found.")
            return handler(req, *args, **kwargs)

        return gated

    return wrap
