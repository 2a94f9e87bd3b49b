"""Image members: the projects a shared image is shared with, by Glance's rules.

Only the owner (or an admin) adds or removes members, and only on an image whose visibility is
`shared`. A member project sees the image as soon as it is added; its status (pending,
accepted, rejected) decides only whether the image shows in its default lists (accepted) or
when it asks with `member_status`. Only the member itself (or an admin) changes its status.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cirrus.context import RequestContext
from cirrus.db.engine import Database
from cirrus.db.models import ImageMember, utcnow
from cirrus.errors import Conflict, Forbidden, NotFound, OverLimit
from cirrus.identity.policy import owns
from cirrus.storage.images import _visible, owned_image

STATUSES = ("pending", "accepted", "rejected")
MAX_MEMBERS = 128


def list_members(db: Database, ctx: RequestContext, image_id: str) -> list[ImageMember]:
    """The owner sees every member; a member sees only itself."""
    with db.reader() as s:
        image = _visible(s, ctx, image_id)
        if image.visibility != "shared":
            return []
        query = select(ImageMember).where(ImageMember.image_id == image_id)
        if not owns(ctx, image.owner):
            query = query.where(ImageMember.member_id == ctx.project_id)
        return list(s.scalars(query.order_by(ImageMember.created_at, ImageMember.member_id)))


def _member(s: Session, ctx: RequestContext, image_id: str, member_id: str,
            *, lock: bool = False) -> ImageMember:
    image = _visible(s, ctx, image_id, lock=lock)
    member = s.get(ImageMember, (image_id, member_id), with_for_update=lock) \
        if image.visibility == "shared" else None
    # Another member's record does not exist for a member.
    if member is None or not (owns(ctx, image.owner) or member_id == ctx.project_id):
        raise NotFound(f"{member_id} is not a member of image {image_id}")
    return member


def get_member(db: Database, ctx: RequestContext, image_id: str, member_id: str) -> ImageMember:
    with db.reader() as s:
        return _member(s, ctx, image_id, member_id)


def add_member(db: Database, ctx: RequestContext, image_id: str, member_id: str) -> ImageMember:
    def work(s: Session) -> ImageMember:
        image = owned_image(s, ctx, image_id, "add members to")
        if image.visibility != "shared":
            raise Forbidden(f"Image {image_id} is not shared: only shared images have members.")
        if s.get(ImageMember, (image_id, member_id)) is not None:
            raise Conflict(f"Member {member_id} already exists on image {image_id}.")
        count = s.scalar(select(func.count()).select_from(ImageMember)
                         .where(ImageMember.image_id == image_id)) or 0
        if count >= MAX_MEMBERS:
            raise OverLimit("The limit has been exceeded on the number of allowed image members "
                            f"for this image. Attempted: {count + 1}, Maximum: {MAX_MEMBERS}")
        now = utcnow()
        member = ImageMember(image_id=image_id, member_id=member_id, status="pending",
                             created_at=now, updated_at=now)
        s.add(member)
        s.flush()
        return member

    try:
        return db.run(work)
    except IntegrityError as exc:
        raise Conflict(f"Member {member_id} already exists on image {image_id}.") from exc


def set_status(db: Database, ctx: RequestContext, image_id: str, member_id: str,
               status: str) -> ImageMember:
    """The member's answer; only the member project itself (or an admin) gives it."""

    def work(s: Session) -> ImageMember:
        member = _member(s, ctx, image_id, member_id, lock=True)
        if not ctx.is_admin and member_id != ctx.project_id:
            raise Forbidden(f"Only project {member_id} may change its own membership status "
                            f"of image {image_id}.")
        member.status = status
        member.updated_at = utcnow()
        return member

    return db.run(work)


def remove_member(db: Database, ctx: RequestContext, image_id: str, member_id: str) -> None:
    def work(s: Session) -> None:
        image = _visible(s, ctx, image_id, lock=True)
        member = _member(s, ctx, image_id, member_id, lock=True)
        if not owns(ctx, image.owner):
            raise Forbidden(f"You are not permitted to remove members of image {image_id}.")
        s.delete(member)

    db.run(work)
