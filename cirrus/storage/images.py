"""Image records: who sees which image, and the writes that change one, by Glance's rules.

A caller sees the images of their own project, public images, and community images; an admin
sees every image. Only the owning project (or an admin) may change an image. The image data
lives in the file store; its status goes queued -> saving -> active on upload, and back to
queued if the upload fails.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, false, or_, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cirrus.context import RequestContext
from cirrus.db.engine import Database
from cirrus.db.models import Image, utcnow
from cirrus.errors import BadRequest, Conflict, Forbidden, NotFound, OverLimit
from cirrus.identity.policy import owns
from cirrus.storage.filestore import FileStore, StoredData

log = logging.getLogger(__name__)

# Attributes a caller may set; everything else in a body is an extra property.
WRITABLE = ("name", "visibility", "protected", "os_hidden", "container_format", "disk_format",
            "min_disk", "min_ram", "owner", "tags")
READ_ONLY = ("created_at", "updated_at", "status", "checksum", "size", "virtual_size",
             "direct_url", "self", "file", "schema", "stores", "id", "os_hash_algo",
             "os_hash_value")
# Refused at create even though `id` may be chosen then.
READ_ONLY_AT_CREATE = tuple(name for name in READ_ONLY if name != "id")
RESERVED = ("location", "locations", "deleted", "deleted_at")
RESERVED_PREFIX = "os_glance"
MAX_PROPERTIES = 128
MAX_TAGS = 128
DEFAULT_VISIBILITY = "private"
FORMAT_LOCKED_STATUSES = ("queued",)  # formats may change only before there is data

SORT_KEYS = ("name", "status", "container_format", "disk_format", "size", "id", "created_at",
             "updated_at")


# ---------------------------------------------------------------- visibility


def can_see(ctx: RequestContext, image: Image) -> bool:
    return owns(ctx, image.owner) or image.visibility in ("public", "community")


def _visible(s: Session, ctx: RequestContext, image_id: str, *, lock: bool = False) -> Image:
    image = s.get(Image, image_id, with_for_update=lock) if _looks_like_id(image_id) else None
    if image is None or not can_see(ctx, image):
        raise NotFound(f"No image found with ID {image_id}")
    return image


def _owned(s: Session, ctx: RequestContext, image_id: str, action: str) -> Image:
    image = _visible(s, ctx, image_id, lock=True)
    if not owns(ctx, image.owner):
        raise Forbidden(f"You are not permitted to {action} image {image_id}.")
    return image


def _looks_like_id(image_id: str) -> bool:
    return 0 < len(image_id) <= 36


def check_attribute_names(names: list[str], *, creating: bool) -> None:
    """Forbidden for read-only and reserved attributes, in Glance's words."""
    read_only = READ_ONLY_AT_CREATE if creating else READ_ONLY
    for name in names:
        if name in read_only:
            raise Forbidden(f"Attribute '{name}' is read-only.")
        if name in RESERVED or name.startswith(RESERVED_PREFIX):
            raise Forbidden(f"Attribute '{name}' is reserved.")


# ---------------------------------------------------------------- reads


def get_image(db: Database, ctx: RequestContext, image_id: str) -> Image:
    with db.reader() as s:
        return _visible(s, ctx, image_id)


def properties_of(s: Session, image_id: str | None) -> dict | None:
    """An image's properties, visible or not (None if there is no such image)."""
    image = s.get(Image, image_id) if image_id else None
    return image.properties if image else None


def get_for_download(db: Database, ctx: RequestContext, image_id: str) -> Image:
    image = get_image(db, ctx, image_id)
    if image.status == "deactivated" and not ctx.is_admin:
        raise Forbidden("The requested image has been deactivated. "
                        "Image data download is forbidden.")
    return image


@dataclass
class ImageQuery:
    """A parsed image list request."""

    visibility: str | None = None  # None: Glance's default view
    columns: dict[str, list[str]] = field(default_factory=dict)  # exact matches, any of the list
    protected: bool | None = None
    os_hidden: bool | None = False  # hidden images are left out unless asked for
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
_TIME_OPS = {
    "eq": lambda c, t: c == t, "neq": lambda c, t: c != t, "gt": lambda c, t: c > t,
    "gte": lambda c, t: c >= t, "lt": lambda c, t: c < t, "lte": lambda c, t: c <= t,
}
TIME_OPERATORS = tuple(_TIME_OPS)


def _visibility_clause(ctx: RequestContext, visibility: str | None) -> list[ColumnElement]:
    mine = Image.owner == ctx.project_id if ctx.project_id else false()
    if ctx.is_admin:
        if visibility is None:
            return [or_(Image.visibility != "community", mine)]
        return [] if visibility == "all" else [Image.visibility == visibility]
    if visibility is None:
        return [or_(mine, Image.visibility == "public")]
    if visibility == "all":
        return [or_(mine, Image.visibility.in_(("public", "community")))]
    if visibility in ("public", "community"):
        return [Image.visibility == visibility]
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
    if q.size_min is not None:
        clauses.append(Image.size >= q.size_min)
    if q.size_max is not None:
        clauses.append(Image.size <= q.size_max)
    for column, op, when in q.times:
        clauses.append(_TIME_OPS[op](getattr(Image, column), when))
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
        rows = list(s.scalars(select(Image).where(*_visibility_clause(ctx, q.visibility),
                                                  *_filter_clauses(q))))
        marker = None
        if q.marker is not None:
            marker = s.get(Image, q.marker) if _looks_like_id(q.marker) else None
            if marker is None or not can_see(ctx, marker):
                raise BadRequest(f"Invalid marker. Image {q.marker} could not be found.")
    compare: Callable[[Image, Image], int] = functools.partial(_compare, q.sort)
    rows = [row for row in rows if _matches_json_filters(row, q)]
    if marker is not None:
        rows = [row for row in rows if compare(row, marker) > 0]
    rows.sort(key=functools.cmp_to_key(compare))
    page = rows[: q.limit]
    next_marker = page[-1].id if page and len(rows) > q.limit else None
    return page, next_marker


# ---------------------------------------------------------------- writes


def _check_quotas(properties: dict, tags: list) -> None:
    if len(properties) > MAX_PROPERTIES:
        raise OverLimit("The limit has been exceeded on the number of allowed image properties. "
                        f"Attempted: {len(properties)}, Maximum: {MAX_PROPERTIES}")
    if len(tags) > MAX_TAGS:
        raise OverLimit("The limit has been exceeded on the number of allowed image tags. "
                        f"Attempted: {len(tags)}, Maximum: {MAX_TAGS}")


def _check_visibility(ctx: RequestContext, visibility: str) -> None:
    if visibility == "public" and not ctx.is_admin:
        raise Forbidden("You are not authorized to complete publicize_image action.")


def _check_owner(ctx: RequestContext, owner: str | None) -> None:
    if not ctx.is_admin and owner != ctx.project_id:
        raise Forbidden(f"You are not permitted to create images owned by '{owner}'.")


def _unique(tags: list[str]) -> list[str]:
    return list(dict.fromkeys(tags))


def create_image(db: Database, ctx: RequestContext, body: dict[str, Any]) -> Image:
    """Record a new queued image from a validated create body."""
    body = dict(body)
    image_id = body.pop("id", None) or str(uuid.uuid4())
    tags = _unique(body.pop("tags", []))
    core = {name: body.pop(name) for name in WRITABLE if name in body}
    properties = body  # what is left is extra properties
    visibility = core.get("visibility", DEFAULT_VISIBILITY)
    _check_visibility(ctx, visibility)
    owner = core.get("owner", ctx.project_id)
    if "owner" in core:
        _check_owner(ctx, owner)
    _check_quotas(properties, tags)
    now = utcnow()

    def work(s: Session) -> Image:
        if s.get(Image, image_id) is not None:
            raise Conflict(f"An image with identifier {image_id} already exists")
        image = Image(
            id=image_id, name=core.get("name"), owner=owner, status="queued",
            visibility=visibility, protected=core.get("protected", False),
            os_hidden=core.get("os_hidden", False),
            container_format=core.get("container_format"), disk_format=core.get("disk_format"),
            min_disk=core.get("min_disk", 0), min_ram=core.get("min_ram", 0), tags=tags,
            properties=properties, created_at=now, updated_at=now,
        )
        s.add(image)
        s.flush()
        return image

    try:
        return db.run(work)
    except IntegrityError as exc:
        raise Conflict(f"An image with identifier {image_id} already exists") from exc


@dataclass(frozen=True)
class Change:
    """One JSON-patch operation on a top-level attribute or extra property."""

    op: str  # add | replace | remove
    name: str
    value: Any = None


def _apply_core(ctx: RequestContext, image: Image, change: Change) -> None:
    name, value = change.name, change.value
    if change.op == "remove":
        raise Forbidden(f"Property {name} may not be removed.")
    if name == "visibility":
        _check_visibility(ctx, value)
    elif name == "owner" and value != image.owner and not ctx.is_admin:
        raise Forbidden("Only an admin may change the owner of an image.")
    elif name in ("container_format", "disk_format") and value != getattr(image, name) \
            and image.status not in FORMAT_LOCKED_STATUSES:
        raise Forbidden(f"Attribute {name} can be only replaced for a queued image.")
    elif name == "tags":
        value = _unique(value)
    setattr(image, name, value)


def _apply_extra(properties: dict, change: Change) -> None:
    name = change.name
    if change.op == "add":
        properties[name] = change.value
    elif name not in properties:
        raise Conflict(f"Property {name} does not exist.")
    elif change.op == "replace":
        properties[name] = change.value
    else:
        del properties[name]


def update_image(db: Database, ctx: RequestContext, image_id: str, changes: list[Change]) -> Image:
    """Apply JSON-patch changes (already checked for shape and value types) in one transaction."""

    def work(s: Session) -> Image:
        image = _owned(s, ctx, image_id, "modify")
        properties = dict(image.properties or {})
        for change in changes:
            if change.name in WRITABLE:
                _apply_core(ctx, image, change)
            else:
                _apply_extra(properties, change)
        _check_quotas(properties, image.tags or [])
        image.properties = properties
        image.updated_at = utcnow()
        return image

    return db.run(work)


def delete_image(db: Database, store: FileStore, ctx: RequestContext, image_id: str) -> None:
    def work(s: Session) -> str | None:
        image = _owned(s, ctx, image_id, "delete")
        if image.protected:
            raise Forbidden(f"Image {image_id} is protected and cannot be deleted.")
        location = image.location
        s.delete(image)
        return location

    location = db.run(work)
    store.delete(location)  # after the commit: a failed delete never loses data of a live image


def add_tag(db: Database, ctx: RequestContext, image_id: str, tag: str) -> None:
    def work(s: Session) -> None:
        image = _owned(s, ctx, image_id, "modify")
        tags = list(image.tags or [])
        if tag not in tags:
            tags.append(tag)
            _check_quotas({}, tags)
            image.tags = tags
            image.updated_at = utcnow()

    db.run(work)


def remove_tag(db: Database, ctx: RequestContext, image_id: str, tag: str) -> None:
    def work(s: Session) -> None:
        image = _owned(s, ctx, image_id, "modify")
        tags = list(image.tags or [])
        if tag not in tags:
            raise NotFound(f"Tag {tag} not found on image {image_id}.")
        tags.remove(tag)
        image.tags = tags
        image.updated_at = utcnow()

    db.run(work)


def set_deactivated(db: Database, ctx: RequestContext, image_id: str, deactivated: bool) -> None:
    """Deactivate an active image, or reactivate a deactivated one; repeating is a no-op."""
    wanted, source = ("deactivated", "active") if deactivated else ("active", "deactivated")
    verb = "deactivate" if deactivated else "reactivate"

    def work(s: Session) -> None:
        image = _owned(s, ctx, image_id, verb)
        if image.status == wanted:
            return
        if image.status != source:
            raise Forbidden(f"Not allowed to {verb} image in status '{image.status}'")
        image.status = wanted
        image.updated_at = utcnow()

    db.run(work)


# ---------------------------------------------------------------- upload


def begin_upload(db: Database, ctx: RequestContext, image_id: str) -> None:
    """Move a queued image to saving, so that exactly one upload may run."""

    def work(s: Session) -> None:
        image = _owned(s, ctx, image_id, "upload data to")
        if image.status != "queued":
            raise Conflict(f"Image status transition from '{image.status}' to 'saving' is "
                           "not allowed")
        if not image.disk_format or not image.container_format:
            raise BadRequest("Properties disk_format, container_format must be set prior to "
                             "saving data.")
        image.status = "saving"
        image.updated_at = utcnow()

    db.run(work)


def finish_upload(db: Database, image_id: str, stored: StoredData) -> Image | None:
    """Make a saving image active with its data; None if it was deleted meanwhile."""

    def work(s: Session) -> Image | None:
        image = s.get(Image, image_id, with_for_update=True)
        if image is None or image.status != "saving":
            return None
        image.status = "active"
        image.location = stored.location
        image.size = stored.size
        image.virtual_size = _virtual_size(image.disk_format, stored)
        image.checksum = stored.checksum
        image.os_hash_algo = stored.os_hash_algo
        image.os_hash_value = stored.os_hash_value
        image.updated_at = utcnow()
        return image

    return db.run(work)


def abort_upload(db: Database, image_id: str) -> None:
    """Put an image whose upload failed back in the queue."""

    def work(s: Session) -> None:
        image = s.get(Image, image_id, with_for_update=True)
        if image is not None and image.status == "saving":
            image.status = "queued"
            image.updated_at = utcnow()

    db.run(work)


def _virtual_size(disk_format: str | None, stored: StoredData) -> int | None:
    if disk_format in ("raw", "iso"):
        return stored.size
    if disk_format == "qcow2":
        return stored.qcow2_virtual_size
    return None


def recover_interrupted_uploads(db: Database, store: FileStore) -> int:
    """At the start of the only API process: uploads that were running are gone, so images
    left in saving go back to queued and their staging files are removed."""

    def work(s: Session) -> int:
        images = list(s.scalars(select(Image).where(Image.status == "saving")))
        for image in images:
            image.status = "queued"
            image.updated_at = utcnow()
        return len(images)

    count = db.run(work)
    store.clean_staging()
    if count:
        log.warning("%d image upload(s) were interrupted; those images are queued again", count)
    return count
