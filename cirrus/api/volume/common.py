"""What every block-storage handler shares: the service name, roots, policy helpers and the
query-string parsers (400s that name the parameter)."""

from __future__ import annotations

import ast
import datetime as dt
import json
from typing import Any

from cirrus.api.framework import ApiRequest
from cirrus.api.validation import to_bool
from cirrus.errors import BadRequest, Forbidden
from cirrus.identity.policy import ADMIN, READ, WRITE, authorize

SERVICE = "volume"
__all__ = ["ADMIN", "READ", "WRITE", "SERVICE", "allow", "volume_root", "parse_int",
           "parse_bool", "parse_sort", "parse_dict", "parse_time_filter", "timestamp",
           "all_projects", "page_links"]

_TRUE = ("1", "true", "yes", "on", "t", "y")
_FALSE = ("0", "false", "no", "off", "f", "n")


def allow(req: ApiRequest, level: str, action: str) -> None:
    """Forbidden (403) unless the caller holds `level` (reader, member, admin)."""
    authorize(req.ctx, level, action)


def admin_only(req: ApiRequest, action: str) -> None:
    if not req.ctx.is_admin:
        raise Forbidden(f"Policy doesn't allow {action} to be performed.")


def volume_root(req: ApiRequest) -> str:
    return f"{req.base_url}/volume"


def project_root(req: ApiRequest) -> str:
    return f"{volume_root(req)}/v3/{req.ctx.project_id or ''}"


def parse_int(req: ApiRequest, name: str, minimum: int = 0) -> int | None:
    text = req.query.get(name)
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"Invalid input received: {name} must be an integer, "
                         f"not {text[:40]!r}.") from None
    if value < minimum:
        raise BadRequest(f"Invalid input received: {name} must be >= {minimum}.")
    return value


def parse_bool(name: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise BadRequest(f"Invalid input received: {name} must be a boolean, not {text[:40]!r}.")


def body_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return parse_bool(name, value)
    raise BadRequest(f"Invalid input for field/attribute {name}. Value: {value!r}. "
                     "It must be a boolean.")


def all_projects(req: ApiRequest) -> bool:
    text = req.query.get("all_tenants") or req.query.get("all_projects")
    return bool(text) and to_bool(text) and req.ctx.is_admin


def parse_sort(req: ApiRequest, keys: dict[str, Any]) -> list[tuple[str, str]]:
    """`sort=key:dir,key2` or `sort_key`/`sort_dir`; 400 naming an unknown key or dir."""
    result: list[tuple[str, str]] = []
    text = req.query.get("sort")
    if text:
        for part in text.split(","):
            key, _, direction = part.strip().partition(":")
            result.append((key.strip(), (direction or "desc").strip().lower()))
    elif req.query.get("sort_key") or req.query.get("sort_dir"):
        result.append((req.query.get("sort_key") or "created_at",
                       (req.query.get("sort_dir") or "desc").lower()))
    for key, direction in result:
        if key not in keys:
            raise BadRequest(f"Invalid input received: Invalid sort key {key!r} in sort "
                             f"(known: {', '.join(sorted(keys))}).")
        if direction not in ("asc", "desc"):
            raise BadRequest(f"Invalid input received: Invalid sort dir {direction!r} in "
                             "sort (asc or desc).")
    return result


def parse_dict(name: str, text: str) -> dict[str, str]:
    """A metadata filter as clients send it: JSON or a Python dict literal."""
    try:
        value = json.loads(text)
    except ValueError:
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = None
    if not isinstance(value, dict):
        raise BadRequest(f"Invalid input received: {name} must be a dictionary, "
                         f"not {text[:60]!r}.")
    return {str(k): str(v) for k, v in value.items()}


_TIME_OPS = ("gt", "gte", "lt", "lte", "eq", "neq")


def parse_time_filter(name: str, text: str) -> list[tuple[str, str, dt.datetime]]:
    """`created_at=gt:2020-01-01T00:00:00,lt:...` (3.60)."""
    result = []
    for part in text.split(","):
        op, sep, value = part.partition(":")
        if not sep or op not in _TIME_OPS:
            raise BadRequest(f"Invalid input received: {name} filter {part[:60]!r} must be "
                             f"OP:TIME with OP one of {', '.join(_TIME_OPS)}.")
        try:
            when = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise BadRequest(f"Invalid input received: {name} time {value[:60]!r} is not "
                             "an ISO 8601 time.") from None
        if when.tzinfo is not None:
            when = when.astimezone(dt.UTC).replace(tzinfo=None)
        result.append((name, op, when))
    return result


def timestamp(value: dt.datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f") if value else None


def page_links(req: ApiRequest, collection: str, items: list[dict], limit: int | None,
               path: str) -> list[dict[str, str]]:
    """A `next` link when a page of `limit` came back full."""
    if limit is None or not items or len(items) < limit:
        return []
    params = {k: v for k, v in req.query.items() if k not in ("marker", "offset")}
    params["marker"] = items[-1]["id"]
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return [{"rel": "next", "href": f"{req.base_url}{path}?{query}"}]
