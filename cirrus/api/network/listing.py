"""List queries as Neutron takes them: filters, `fields`, sorting and pagination.

Any attribute a resource shows is a filter (exact match, repeated keys are alternatives,
empty values ignored); an unknown one is a 400, as with Neutron's filter-validation. The
common ones become SQL conditions (`sql_filters`); the rest, and the tag filters, are
applied to the built views. Sorting takes `sort_key`/`sort_dir` pairs (id breaks ties);
`limit`/`marker`/`page_reverse` page the result, with `<collection>_links` as Neutron
writes them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from cirrus.api.framework import ApiRequest
from cirrus.errors import BadRequest, NotFound

PAGING = ("fields", "sort_key", "sort_dir", "limit", "marker", "page_reverse")
TAG_FILTERS = ("tags", "tags-any", "not-tags", "not-tags-any")
# Attributes holding lists or objects: filters, but no sort keys.
UNSORTABLE = {"subnets", "availability_zone_hints", "availability_zones", "tags", "fixed_ips",
              "security_groups", "allocation_pools", "dns_nameservers", "host_routes",
              "service_types", "allowed_address_pairs", "extra_dhcp_opts",
              "security_group_rules", "binding:vif_details", "binding:profile",
              "external_gateway_info", "routes"}
_TRUE = ("1", "t", "true", "on", "y", "yes")
_FALSE = ("0", "f", "false", "off", "n", "no")


def parse_bool(attribute: str, raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise BadRequest(f"Invalid input for {attribute}. Reason: '{raw}' cannot be converted "
                     "to boolean.")


def parse_int(attribute: str, raw: object) -> int:
    """An integer filter value: at most 18 digits, so it fits every integer column."""
    text = str(raw).strip()
    if not _INTEGER.match(text):
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise BadRequest(f"Invalid input for {attribute}. Reason: '{shown}' is not an "
                         "integer.") from None
    return int(text)


_INTEGER = re.compile(r"^[+-]?[0-9]{1,18}$")


@dataclass
class Listing:
    filters: dict[str, list[str]] = field(default_factory=dict)
    tags: dict[str, list[str]] = field(default_factory=dict)
    fields: list[str] = field(default_factory=list)
    sorts: list[tuple[str, bool]] = field(default_factory=list)  # (key, ascending)
    limit: int | None = None
    marker: str | None = None
    page_reverse: bool = False


def parse_listing(req: ApiRequest, filterable: set[str]) -> Listing:
    """The list query of a request; 400 for unknown filters or bad paging values."""
    listing = Listing()
    invalid: list[str] = []
    for key, value in req.query.multi_items():
        if key in PAGING:
            continue
        if key in TAG_FILTERS:
            listing.tags.setdefault(key, []).extend(t for t in value.split(",") if t)
        elif key not in filterable:
            if key not in invalid:
                invalid.append(key)
        elif value != "":
            listing.filters.setdefault(key, []).append(value)
    if invalid:
        raise BadRequest(f"{invalid} is invalid attribute for filtering")
    listing.fields = [f for f in req.query.getlist("fields") if f]
    keys = [k for k in req.query.getlist("sort_key") if k]
    dirs = [d for d in req.query.getlist("sort_dir") if d]
    if len(keys) != len(dirs):
        raise BadRequest("The number of sort_keys and sort_dirs must be same")
    bad_dirs = [d for d in dirs if d not in ("asc", "desc")]
    if bad_dirs:
        raise BadRequest(f"{bad_dirs} is invalid value for sort_dirs, valid value is 'asc' "
                         "and 'desc'")
    bad_keys = [k for k in keys if k not in filterable or k in UNSORTABLE]
    if bad_keys:
        raise BadRequest(f"{bad_keys} is invalid attribute for sort_keys")
    listing.sorts = [(k, d == "asc") for k, d in zip(keys, dirs, strict=True)]
    limit = req.query.get("limit")
    if limit is not None:
        if not limit.strip().isdigit() or len(limit.strip()) > 18:
            shown = limit if len(limit) <= 40 else limit[:37] + "..."
            raise BadRequest(f"Limit must be an integer 0 or greater and not '{shown}'")
        listing.limit = int(limit) or None
    listing.marker = req.query.get("marker") or None
    listing.page_reverse = req.query.get("page_reverse", "false").lower() == "true"
    return listing


def sql_filters(listing: Listing, columns: dict[str, tuple[str, Callable[[str, str], Any]]]
                ) -> dict[str, list]:
    """Take the filters that map to columns ({neutron name: (model attribute, converter)})
    out of `listing`, converted, keyed by model attribute."""
    result: dict[str, list] = {}
    for name, (attribute, convert) in columns.items():
        values = listing.filters.pop(name, None)
        if values:
            result.setdefault(attribute, []).extend(convert(name, v) for v in values)
    return result


def as_text(_: str, value: str) -> str:
    return value


def _matches(name: str, value: object, wanted: list[str]) -> bool:
    if isinstance(value, bool):
        return value in {parse_bool(name, w) for w in wanted}
    if isinstance(value, int):
        return value in {parse_int(name, w) for w in wanted}
    if isinstance(value, list):
        return any(str(item) in wanted for item in value)
    return value is not None and str(value) in wanted


def _tags_match(tags: list[str], wanted: dict[str, list[str]]) -> bool:
    present = set(tags or [])
    return (set(wanted.get("tags", [])) <= present
            and (not wanted.get("tags-any") or bool(present & set(wanted["tags-any"])))
            and (not wanted.get("not-tags") or not set(wanted["not-tags"]) <= present)
            and not present & set(wanted.get("not-tags-any", [])))


def _present_then_value(key: str) -> Callable[[dict], tuple[bool, Any]]:
    """A sort key that puts the views without `key` (or with null) first, ascending."""
    return lambda v: (v.get(key) is not None, v.get(key))


def _sort(views: list[dict], sorts: list[tuple[str, bool]]) -> list[dict]:
    ordered = sorted(views, key=lambda v: str(v.get("id")))
    for key, ascending in reversed(sorts):
        ordered.sort(key=_present_then_value(key), reverse=not ascending)
    return ordered


def _page(views: list[dict], listing: Listing) -> list[dict]:
    if listing.marker is None:
        start, end = 0, len(views)
    else:
        index = next((i for i, v in enumerate(views) if v.get("id") == listing.marker), None)
        if index is None:
            raise NotFound(f"Marker {listing.marker} could not be found.")
        start, end = (0, index) if listing.page_reverse else (index + 1, len(views))
    page = views[start:end]
    if listing.limit:
        page = page[-listing.limit:] if listing.page_reverse else page[:listing.limit]
    return page


def _links(req: ApiRequest, page: list[dict], listing: Listing) -> list[dict[str, str]]:
    if not listing.limit:
        return []
    params = [(k, v) for k, v in req.query.multi_items() if k not in ("marker", "page_reverse")]
    url = f"{req.base_url}{req.path}?"
    links = []
    if not (len(page) < listing.limit and not listing.page_reverse) and page:
        links.append({"rel": "next",
                      "href": url + urlencode([*params, ("marker", page[-1]["id"])])})
    if not (len(page) < listing.limit and listing.page_reverse) and listing.marker and page:
        links.append({"rel": "previous", "href": url + urlencode(
            [*params, ("marker", page[0]["id"]), ("page_reverse", "True")])})
    return links


def select_fields(view: dict, fields: list[str]) -> dict:
    return {k: v for k, v in view.items() if k in fields} if fields else view


def finish(req: ApiRequest, collection: str, views: list[dict], listing: Listing) -> dict:
    """Filter (what SQL did not), sort, page and trim the views into a list response."""
    views = [v for v in views
             if all(_matches(k, v.get(k), w) for k, w in listing.filters.items())
             and (not listing.tags or _tags_match(v.get("tags", []), listing.tags))]
    page = _page(_sort(views, listing.sorts), listing)
    body: dict[str, Any] = {collection: [select_fields(v, listing.fields) for v in page]}
    links = _links(req, page, listing)
    if links:
        body[f"{collection}_links"] = links
    return body
