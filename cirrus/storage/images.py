"""Image records: who sees which image, and the writes that change one, by Glance's rules.

A caller sees the images of their own project, public images, community images, and shared
images their project is a member of (whatever its answer: the answer only decides what lists
show, image_members.py); an admin sees every image. Only the owning project (or an admin) may change an image. The image data
lives in the file store (image_data.py: upload, queued -> saving -> active); image_list.py
answers list requests.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cirrus.context import RequestContext
from cirrus.db.engine import Database
from cirrus.db.models import Image, ImageMember, utcnow
from cirrus.errors import Conflict, Forbidden, NotFound, OverLimit
from cirrus.identity.policy import owns
from cirrus.storage.filestore import FileStore

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
DEFAULT_VISIBILITY = "shared"  # as in Glance: owner only until a member is added
FORMAT_LOCKED_STATUSES = ("queued",)  # formats may change only before there is data


# ---------------------------------------------------------------- visibility


def membership(s: Session, ctx: RequestContext, image: Image) -> ImageMember | None:
    """The caller's project's membership of a shared image, if any."""
    if image.visibility != "shared" or not ctx.project_id:
        return None
    return s.get(ImageMember, (image.id, ctx.project_id))


def can_see(s: Session, ctx: RequestContext, image: Image) -> bool:
    if owns(ctx, image.owner) or image.visibility in ("public", "community"):
        return True
    return membership(s, ctx, image) is not None


def _visible(s: Session, ctx: RequestContext, image_id: str, *, lock: bool = False) -> Image:
    image = s.get(Image, image_id, with_for_update=lock) if looks_like_id(image_id) else None
    if image is None or not can_see(s, ctx, image):
        raise NotFound(f"No image found with ID {image_id}")
    return image


def owned_image(s: Session, ctx: RequestContext, image_id: str, action: str) -> Image:
    image = _visible(s, ctx, image_id, lock=True)
    if not owns(ctx, image.owner):
        raise Forbidden(f"You are not permitted to {action} image {image_id}.")
    return image


def looks_like_id(image_id: str) -> bool:
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
        image = owned_image(s, ctx, image_id, "modify")
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
        image = owned_image(s, ctx, image_id, "delete")
        if image.protected:
            raise Forbidden(f"Image {image_id} is protected and cannot be deleted.")
        location = image.location
        s.execute(delete(ImageMember).where(ImageMember.image_id == image.id))
        s.delete(image)
        return location

    location = db.run(work)
    store.delete(location)  # after the commit: a failed delete never loses data of a live image


def add_tag(db: Database, ctx: RequestContext, image_id: str, tag: str) -> None:
    def work(s: Session) -> None:
        image = owned_image(s, ctx, image_id, "modify")
        tags = list(image.tags or [])
        if tag not in tags:
            tags.append(tag)
            _check_quotas({}, tags)
            image.tags = tags
            image.updated_at = utcnow()

    db.run(work)


def remove_tag(db: Database, ctx: RequestContext, image_id: str, tag: str) -> None:
    def work(s: Session) -> None:
        image = owned_image(s, ctx, image_id, "modify")
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
        image = owned_image(s, ctx, image_id, verb)
        if image.status == wanted:
            return
        if image.status != source:
            raise Forbidden(f"Not allowed to {verb} image in status '{image.status}'")
        image.status = wanted
        image.updated_at = utcnow()

    db.run(work)
