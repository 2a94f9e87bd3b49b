"""Server tags (Nova's os-server-tags, 2.26): at most 50 per server, each 1 to 60
characters without `/` or `,`; kept in the instance's `tags` list, in the order added."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from cirrus.context import RequestContext
from cirrus.db.models import Instance, utcnow
from cirrus.errors import BadRequest, Conflict, NotFound

from . import instances, states

if TYPE_CHECKING:
    from cirrus.services import Deps

MAX_TAGS = 50
MAX_LENGTH = 60


def check_tag(tag: str, field: str = "tag") -> None:
    if not 1 <= len(tag) <= MAX_LENGTH or "/" in tag or "," in tag:
        raise BadRequest(f"Invalid input for field/attribute {field}. Value: {tag[:64]}. "
                         f"A tag is 1 to {MAX_LENGTH} characters without '/' or ','.")


def _editable(s: Session, ctx: RequestContext, uuid: str) -> Instance:
    inst = instances.get(s, ctx, uuid)
    if inst.task_state == states.DELETING:
        raise Conflict(f"Cannot change the tags of instance {uuid} while it is being deleted.")
    return inst


def get_tags(cloud: Deps, ctx: RequestContext, uuid: str) -> list[str]:
    with cloud.db.reader() as s:
        return list(instances.get(s, ctx, uuid).tags or [])


def replace_tags(cloud: Deps, ctx: RequestContext, uuid: str, tags: list[str]) -> list[str]:
    wanted = list(dict.fromkeys(tags))
    if len(wanted) > MAX_TAGS:
        raise BadRequest(f"Invalid input for field/attribute tags: at most {MAX_TAGS} tags.")

    def work(s: Session) -> list[str]:
        inst = _editable(s, ctx, uuid)
        inst.tags = wanted
        inst.updated_at = utcnow()
        return wanted

    return cloud.db.run(work)


def add_tag(cloud: Deps, ctx: RequestContext, uuid: str, tag: str) -> bool:
    """Add `tag`; False if the server already had it."""
    check_tag(tag)

    def work(s: Session) -> bool:
        inst = _editable(s, ctx, uuid)
        current = list(inst.tags or [])
        if tag in current:
            return False
        if len(current) >= MAX_TAGS:
            raise BadRequest(f"Invalid input for field/attribute tag: the server already has "
                             f"{MAX_TAGS} tags, the most it may have.")
        inst.tags = [*current, tag]
        inst.updated_at = utcnow()
        return True

    return cloud.db.run(work)


def delete_tag(cloud: Deps, ctx: RequestContext, uuid: str, tag: str | None) -> None:
    """Remove `tag` (NotFound if the server has no such tag), or every tag (None)."""

    def work(s: Session) -> None:
        inst = _editable(s, ctx, uuid)
        current = list(inst.tags or [])
        if tag is not None and tag not in current:
            raise NotFound(f"Tag '{tag}' could not be found for instance {uuid}.")
        inst.tags = [t for t in current if tag is not None and t != tag]
        inst.updated_at = utcnow()

    cloud.db.run(work)
