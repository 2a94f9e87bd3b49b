"""URL, paging, query and version-gate helpers that the compute routes share."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from cirrus.api.compute import microversion
from cirrus.api.framework import ApiRequest
from cirrus.errors import BadRequest, NotFound

# Nova's [api] max_limit: the largest page a list returns.
MAX_PAGE_SIZE = 1000
# Nova's db.MAX_INT: the largest count, size or id its schemas and its database columns take.
MAX_INT = 0x7FFFFFFF


# ---------------------------------------------------------------- integers


def bounded_int(value: object, field: str, minimum: int, maximum: int = MAX_INT) -> int:
    """A schema-checked integer (a JSON number or a string of digits) as an int in
    minimum..maximum, else 400 in Nova's words.

    The schemas check a string's digits only (Nova's validator also compares string numbers
    with its minimum and maximum): this is that comparison, so a count given as a string is
    bounded exactly as one given as a number.
    """
    try:
        if not isinstance(value, (int, float, str)):
            raise TypeError(value)
        number = int(value)
    except (TypeError, ValueError):
        raise BadRequest(f"Invalid input for field/attribute {field}. Value: {str(value)[:64]}. "
                         "It is not an integer.") from None
    if number < minimum:
        raise BadRequest(f"Invalid input for field/attribute {field}. Value: {value}. "
                         f"{value} is less than the minimum of {minimum}")
    if number > maximum:
        shown = str(value) if len(str(value)) <= 64 else str(value)[:64] + "..."
        raise BadRequest(f"Invalid input for field/attribute {field}. Value: {shown}. "
                         f"{shown} is greater than the maximum of {maximum}")
    return number


def int_query(req: ApiRequest, name: str, message: str, minimum: int = -MAX_INT - 1,
              maximum: int = MAX_INT) -> int | None:
    """An integer query parameter bounded to what the database columns hold (400 with
    `message` otherwise); None if absent."""
    raw = req.query.get(name)
    if raw is None:
        return None
    text = raw.strip()
    if not (text.isascii() and len(text) <= 20 and re.fullmatch(r"[+-]?[0-9]+", text)):
        raise BadRequest(message)
    value = int(text)
    if not minimum <= value <= maximum:
        raise BadRequest(message)
    return value


# ---------------------------------------------------------------- URLs


def compute_root(req: ApiRequest) -> str:
    """The unversioned compute endpoint, e.g. http://host:8774/compute."""
    return f"{req.base_url}/compute"


def api_root(req: ApiRequest) -> str:
    """The v2.1 endpoint, e.g. http://host:8774/compute/v2.1."""
    return f"{compute_root(req)}/v2.1"


# ---------------------------------------------------------------- paging


def page_limit_and_marker(req: ApiRequest) -> tuple[int, str | None]:
    """`limit` (capped at MAX_PAGE_SIZE; 400 unless a non-negative integer) and `marker`."""
    limit = MAX_PAGE_SIZE
    raw = req.query.get("limit")
    if raw is not None:
        text = raw.strip()
        if not (text.isascii() and len(text) <= 20 and re.fullmatch(r"[+-]?[0-9]+", text)):
            raise BadRequest("limit must be an integer")
        value = int(text)
        if value < 0:
            raise BadRequest("limit must be >= 0")
        limit = min(value, MAX_PAGE_SIZE)
    return limit, req.query.get("marker")


def next_links(req: ApiRequest, collection: str, count: int, last_id: object | None,
               limit: int) -> list[dict[str, str]]:
    """A "next" link when the page is full (Nova's rule: len(items) == limit)."""
    if not limit or count != limit or last_id is None:
        return []
    params = dict(sorted(req.query.items()))
    params["marker"] = str(last_id)
    return [{"rel": "next", "href": f"{api_root(req)}/{collection}?{urlencode(params)}"}]


def query_bool(name: str, raw: str) -> bool:
    """A strict boolean query parameter (what oslo's bool_from_string(strict=True) takes)."""
    lowered = raw.strip().lower()
    if lowered in ("1", "t", "true", "on", "y", "yes"):
        return True
    if lowered in ("0", "f", "false", "off", "n", "no"):
        return False
    raise BadRequest(f"Invalid input for query parameters {name}. Value: {raw}. "
                     "It is not a boolean.")


# ---------------------------------------------------------------- version gates


def available(low: str = "2.1", high: str | None = None) -> Callable:
    """Serve the handler only for microversions low..high; outside that the route is 404."""
    low_v = microversion.parse(low)
    high_v = microversion.parse(high) if high else microversion.MAX_VERSION

    def wrap(handler: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(handler)
        def run(req: ApiRequest, **params: Any) -> Any:
            if not low_v <= req.microversion <= high_v:
                raise NotFound("The resource could not be found.")
            return handler(req, **params)
        return run
    return wrap
