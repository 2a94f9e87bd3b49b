"""GET /v2/images query parameters: filters, sorting and paging, 400 for bad values."""

from __future__ import annotations

import datetime as dt

from cirrus.api.image.common import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
)
from cirrus.api.limits import INT64_MAX
from cirrus.errors import BadRequest
from cirrus.storage import image_list


def _parse_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered not in ("true", "false"):
        raise BadRequest(f"Invalid value for {name} filter: {value}. It must be true or false.")
    return lowered == "true"


def _parse_int(name: str, value: str, minimum: int = 0) -> int:
    try:
        number = int(value) if len(value.strip()) <= 20 else None
    except ValueError:
        number = None
    if number is None:
        raise BadRequest(f"{name} param must be an integer")
    if number < minimum:
        raise BadRequest(f"{name} param must be positive")
    if number > INT64_MAX:  # sizes are 64-bit columns
        raise BadRequest(f"{name} param must be no larger than {INT64_MAX}")
    return number


def _parse_time(name: str, value: str) -> tuple[str, dt.datetime]:
    op, sep, when = value.partition(":")
    if not sep or op not in image_list.TIME_OPERATORS:
        op, when = "eq", value
    try:
        parsed = dt.datetime.fromisoformat(when.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadRequest(f"Invalid {name} filter: {value}. Use <op>:<ISO 8601 time> with op one "
                         f"of {', '.join(image_list.TIME_OPERATORS)}.") from exc
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    return op, parsed


def _sort_key(key: str) -> str:
    key = key.strip()
    if key not in image_list.SORT_KEYS:
        raise BadRequest(f"Invalid sort key: {key}. It must be one of the following: "
                         f"{', '.join(image_list.SORT_KEYS)}.")
    return key


def _sort_dir(direction: str) -> str:
    direction = direction.strip()
    if direction not in ("asc", "desc"):
        raise BadRequest(f"Invalid sort direction: {direction}")
    return direction


def _parse_sort(params: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Glance's two syntaxes: sort=name:asc,size:desc or sort_key=..&sort_dir=.. pairs."""
    sort = [v for k, v in params if k == "sort"]
    keys = [_sort_key(v) for k, v in params if k == "sort_key"]
    dirs = [_sort_dir(v) for k, v in params if k == "sort_dir"]
    if sort:
        if keys or dirs:
            raise BadRequest("Old and new sorting syntax cannot be combined")
        pairs = []
        for item in sort[-1].strip().split(","):
            key, _, direction = item.partition(":")
            pairs.append((_sort_key(key), _sort_dir(direction or "desc")))
        return pairs
    if len(dirs) > 1 and len(dirs) != len(keys):
        raise BadRequest("Number of sort dirs does not match the number of sort keys")
    keys = keys or ["created_at"]
    dirs = dirs or ["desc"]
    return [(key, dirs[i] if len(dirs) > 1 else dirs[0]) for i, key in enumerate(keys)]


_PAGING = ("limit", "marker", "sort", "sort_key", "sort_dir", "tag", "member_status")
_VISIBILITY_FILTERS = ("community", "public", "private", "shared", "all")


def parse_list_query(params: list[tuple[str, str]]) -> image_list.ImageQuery:
    """Turn GET /v2/images query parameters into an ImageQuery (400 for bad values)."""
    q = image_list.ImageQuery(sort=_parse_sort(params))
    single = {k: v for k, v in params}
    q.tags = [v.strip() for k, v in params if k == "tag"]
    if "limit" in single:
        q.limit = min(_parse_int("limit", single["limit"]), MAX_LIMIT)
    else:
        q.limit = DEFAULT_LIMIT
    q.marker = single.get("marker")
    q.member_status = single.get("member_status", "accepted")
    if q.member_status not in ("pending", "accepted", "rejected", "all"):
        raise BadRequest(f"Invalid member_status filter: {q.member_status}. It must be one of "
                         "pending, accepted, rejected, all.")
    for key, value in single.items():
        if key in _PAGING:
            continue
        if key == "visibility":
            if value not in _VISIBILITY_FILTERS:
                raise BadRequest(f"Invalid visibility filter: {value}. It must be one of "
                                 f"{', '.join(_VISIBILITY_FILTERS)}.")
            q.visibility = value
        elif key in ("protected", "os_hidden"):
            setattr(q, key, _parse_bool(key, value))
        elif key in ("size", "size_min", "size_max"):
            setattr(q, key, _parse_int(key, value))
        elif key in ("created_at", "updated_at"):
            q.times.append((key, *_parse_time(key, value)))
        elif key == "changes-since":
            raise BadRequest('The "changes-since" filter is no longer available on v2.')
        elif key in image_list.FILTER_COLUMNS:
            values = value[3:].split(",") if value.startswith("in:") else [value]
            q.columns[key] = [v.strip() for v in values]
        else:
            q.properties[key] = value
    return q
