"""Glance tasks (type `import`): a record of an import request and how it ended.

Cirrus never fetches a URL a caller names unless an operator allowed it (server-side request
forgery: the API hosts can reach addresses callers cannot). `image_import_allowed_url_prefixes`
(empty by default) lists the URL prefixes allowed; a task whose `import_from` matches none ends
in `failure` at once, nothing fetched. Downloading from an allowed URL is not built yet, so such
a task ends in `failure` too, saying so (docs/images.md); use glance-direct (stage, then
import) instead. A task is written once, in its final state: never left `pending`.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from cirrus.context import RequestContext
from cirrus.db.engine import Database
from cirrus.db.models import ImageTask, utcnow
from cirrus.errors import NotFound

TASK_TYPES = ("import",)
TASK_TIME_TO_LIVE = dt.timedelta(hours=48)  # Glance's task_time_to_live


def url_allowed(url: str, prefixes: list[str]) -> bool:
    """True if `url` is http(s) and starts with an allowed prefix at a boundary (so the prefix
    `https://images.example.com` does not allow `https://images.example.com.evil.net/`)."""
    if not url.lower().startswith(("http://", "https://")):
        return False
    for prefix in prefixes:
        if prefix and url.startswith(prefix):
            rest = url[len(prefix):]
            if prefix.endswith("/") or not rest or rest[0] in "/?#":
                return True
    return False


def _outcome(url: str, prefixes: list[str]) -> str:
    if not url_allowed(url, prefixes):
        return (f"Import from {url} is not allowed: Cirrus fetches only URLs under a prefix "
                "listed in the setting image_import_allowed_url_prefixes (none by default). "
                "Nothing was fetched. Upload the image data, or use the glance-direct import "
                "method, instead.")
    return ("Importing from a URL is not supported by this Cirrus version; nothing was "
            "fetched. Upload the image data, or use the glance-direct import method, instead.")


def create_task(db: Database, ctx: RequestContext, body: dict,
                allowed_prefixes: list[str]) -> ImageTask:
    now = utcnow()
    task = ImageTask(id=str(uuid.uuid4()), type=body["type"], status="failure",
                     owner=ctx.project_id, input=body["input"], result=None,
                     message=_outcome(body["input"]["import_from"], allowed_prefixes),
                     expires_at=now + TASK_TIME_TO_LIVE, created_at=now, updated_at=now)

    def work(s: Session) -> ImageTask:
        s.add(task)
        s.flush()
        return task

    return db.run(work)


def list_tasks(db: Database, ctx: RequestContext, *, status: str | None, type_: str | None,
               limit: int, marker: str | None, sort_dir: str) -> list[ImageTask]:
    with db.reader() as s:
        query = select(ImageTask)
        if not ctx.is_admin:
            query = query.where(ImageTask.owner == ctx.project_id)
        if status:
            query = query.where(ImageTask.status == status)
        if type_:
            query = query.where(ImageTask.type == type_)
        if sort_dir == "asc":
            query = query.order_by(ImageTask.created_at.asc(), ImageTask.id.asc())
        else:
            query = query.order_by(ImageTask.created_at.desc(), ImageTask.id.desc())
        rows = list(s.scalars(query))
        if marker is not None:
            ids = [t.id for t in rows]
            if marker not in ids:
                raise NotFound(f"No task found with ID {marker}")
            rows = rows[ids.index(marker) + 1:]
        return rows[:limit]


def get_task(db: Database, ctx: RequestContext, task_id: str) -> ImageTask:
    with db.reader() as s:
        task = s.get(ImageTask, task_id) if len(task_id) <= 36 else None
        if task is None or not (ctx.is_admin or task.owner == ctx.project_id):
            raise NotFound(f"Task with the given ID {task_id} was not found")
        return task


def tasks_of_image(db: Database, ctx: RequestContext, image_id: str) -> list[ImageTask]:
    """The tasks that made or import into an image (Glance 2.12's image tasks), oldest first.
    No task here ever produces an image yet (imports from URLs are not fetched), so an
    image's list is empty unless a task result names it."""
    with db.reader() as s:
        query = select(ImageTask).order_by(ImageTask.created_at, ImageTask.id)
        if not ctx.is_admin:
            query = query.where(ImageTask.owner == ctx.project_id)
        return [t for t in s.scalars(query) if (t.result or {}).get("image_id") == image_id]
