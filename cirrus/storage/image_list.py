"""Image list requests: the filters, the visibility rules and the sort keys of Glance's
`GET /v2/images`, one page at a time."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, false, or_, select, true

from cirrus.context import RequestContext
from cirrus.db.engine import Database
from cirrus.db.models import Image, ImageMember
from cirrus.errors import BadRequest
from cirrus.storage.images import can_see, looks_like_id

SORT_KEYS = ("name", "status", "container_format", "disk_format", "size", "id", "created_at",
             "updated_at")


@dataclass
class ImageQuery:
    """A parsed image list request."""

    visibility: str | None = None  # None: Glance's default view
    member_status: str = "accepted"  # which images shared with the caller show: or "all"
    columns: dict[str, list[str]] = field(default_factory=dict)  # exact matches, any of the list
    protected: bool | None = None
    os_hidden: bool | None = False  # hidden images are left out unless asked for
    size: int | None = None
    size_min: int | None = None
    size_max: int | None = None
    times: list[tuple[str, str, dt.datetime]] = field(default_factory=list)  # (column, op, when)
    tags: list[str] = field(default_factory=list)
    properties: dict[str, str] = field(default_factory=dict)
    sort: list[tuple[str, str]] = field(default_factory=lambda: [("created_at", "desc")])
    marker: str | None = None
    limit: int = 25


FILTER_COLUMNS = ("id", "name", "status", "owner", "container_format", "disk_format", "checksum",
                  "os_hash_value")
# Times are shown in whole seconds, so a time without a fraction stands for its whole second
# [t, t + 1s): `lte:` a shown created_at includes that image. `u` is the end of that second.
_TIME_OPS = {
    "eq": lambda c, t, u: (c >= t) & (c < u), "neq": lambda c, t, u: (c < t) | (c >= u),
    "gt": lambda c, t, u: c >= u, "gte": lambda c, t, u: c >= t,
    "lt": lambda c, t, u: c < t, "lte": lambda c, t, u: c < u,
}
TIME_OPERATORS = tuple(_TIME_OPS)


def _shared_with(ctx: RequestContext, member_status: str) -> ColumnElement:
    """Shared images the caller's project is a member of, with that status (or any: all)."""
    if not ctx.project_id:
        return false()
    members = select(ImageMember.image_id).where(ImageMember.member_id == ctx.project_id)
    if member_status != "all":
        members = members.where(ImageMember.status == member_status)
    return (Image.visibility == "shared") & Image.id.in_(members)


def _visibility_clause(ctx: RequestContext, visibility: str | None,
                       member_status: str = "accepted") -> list[ColumnElement]:
    mine = Image.owner == ctx.project_id if ctx.project_id else false()
    if ctx.is_admin:
        if visibility is None:
            return [or_(Image.visibility != "community", mine)]
        return [] if visibility == "all" else [Image.visibility == visibility]
    shared = _shared_with(ctx, member_status)
    if visibility is None:
        return [or_(mine, Image.visibility == "public", shared)]
    if visibility == "all":
        return [or_(mine, Image.visibility.in_(("public", "community")), shared)]
    if visibility in ("public", "community"):
        return [Image.visibility == visibility]
    if visibility == "shared":
        return [Image.visibility == "shared", or_(mine, shared)]
    return [Image.visibility == visibility, mine]


def _filter_clauses(q: ImageQuery) -> list[ColumnElement]:
    clauses: list[ColumnElement] = []
    for column, values in q.columns.items():
        attr = getattr(Image, column)
        clauses.append(attr == values[0] if len(values) == 1 else attr.in_(values))
    if q.protected is not None:
        clauses.append(Image.protected == (true() if q.protected else false()))
    if q.os_hidden is not None:
        clauses.append(Image.os_hidden == (true() if q.os_hidden else false()))
    if q.size is not None:
        clauses.append(Image.size == q.size)
    if q.size_min is not None:
        clauses.append(Image.size >= q.size_min)
    if q.size_max is not None:
        clauses.append(Image.size <= q.size_max)
    for column, op, when in q.times:
        end = when + dt.timedelta(seconds=1) if when.microsecond == 0 else \
            when + dt.timedelta(microseconds=1)
        clauses.append(_TIME_OPS[op](getattr(Image, column), when, end))
    return clauses


def _matches_json_filters(image: Image, q: ImageQuery) -> bool:
    tags = set(image.tags or [])
    if any(tag not in tags for tag in q.tags):
        return False
    props = image.properties or {}
    return all(props.get(key) == value for key, value in q.properties.items())


def _compare(sort: list[tuple[str, str]], a: Image, b: Image) -> int:
    """Order by the sort keys (None first when ascending), then by id, in the first direction."""
    for key, direction in [*sort, ("id", sort[0][1])]:
        left, right = getattr(a, key), getattr(b, key)
        if left == right:
            continue
        if left is None or right is None:
            result = -1 if left is None else 1
        else:
            result = -1 if left < right else 1
        return result if direction == "asc" else -result
    return 0


def list_images(db: Database, ctx: RequestContext, q: ImageQuery) -> tuple[list[Image], str | None]:
    """One page of the images the caller may see, and the marker of the next page (or None).

    Tags and extra properties are JSON columns, so those filters and the ordering are applied
    here rather than in SQL; the column filters and visibility narrow the rows first.
    """
    with db.reader() as s:
        rows = list(s.scalars(select(Image).where(*_visibility_clause(ctx, q.visibility, q.member_status),
                                                  *_filter_clauses(q))))
        marker = None
        if q.marker is not None:
            marker = s.get(Image, q.marker) if looks_like_id(q.marker) else None
            if marker is None or not can_see(s, ctx, marker):
                raise BadRequest(f"Invalid marker. Image {q.marker} could not be found.")
    compare: Callable[[Image, Image], int] = functools.partial(_compare, q.sort)
    rows = [row for row in rows if _matches_json_filters(row, q)]
    if marker is not None:
        rows = [row for row in rows if compare(row, marker) > 0]
    rows.sort(key=functools.cmp_to_key(compare))
    page = rows[: q.limit]
    next_marker = page[-1].id if page and len(rows) > q.limit else None
    return page, next_marker
