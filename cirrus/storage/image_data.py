"""Image data: the upload that takes an image from queued through saving to active (or back
to queued if it fails), its size and checksums recorded, and the recovery of uploads a
restart interrupted. The bytes themselves live in the file store (filestore.py).

The `glance-direct` import is the same in two steps: staging takes a queued image to
`uploading` (back to queued if the transfer fails; still `uploading`, with its data, once it
succeeds), then the import takes it through `importing` to `active`.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from cirrus.context import RequestContext
from cirrus.db.engine import Database
from cirrus.db.models import Image, utcnow
from cirrus.errors import BadRequest, Conflict
from cirrus.storage.filestore import FileStore, StoredData
from cirrus.storage.images import owned_image

log = logging.getLogger(__name__)


# How each way in moves an image: the state while the bytes arrive, and the state after.
UPLOAD, STAGE = ("saving", "active"), ("uploading", "uploading")


def begin_upload(db: Database, ctx: RequestContext, image_id: str,
                 mode: tuple[str, str] = UPLOAD) -> None:
    """Move a queued image to saving (or uploading to stage), so that one upload may run."""

    def work(s: Session) -> None:
        image = owned_image(s, ctx, image_id, "upload data to")
        if image.status != "queued":
            raise Conflict(f"Image status transition from '{image.status}' to '{mode[0]}' is "
                           "not allowed")
        if not image.disk_format or not image.container_format:
            raise BadRequest("Properties disk_format, container_format must be set prior to "
                             "saving data.")
        image.status = mode[0]
        image.updated_at = utcnow()

    db.run(work)


def finish_upload(db: Database, image_id: str, stored: StoredData,
                  mode: tuple[str, str] = UPLOAD) -> Image | None:
    """Make a saving image active (or a staging one staged) with its data; None if it was
    deleted meanwhile."""

    def work(s: Session) -> Image | None:
        image = s.get(Image, image_id, with_for_update=True)
        if image is None or image.status != mode[0] or image.location:
            return None
        image.status = mode[1]
        image.location = stored.location
        image.size = stored.size
        image.virtual_size = _virtual_size(image.disk_format, stored)
        image.checksum = stored.checksum
        image.os_hash_algo = stored.os_hash_algo
        image.os_hash_value = stored.os_hash_value
        image.updated_at = utcnow()
        return image

    return db.run(work)


def abort_upload(db: Database, image_id: str, mode: tuple[str, str] = UPLOAD) -> None:
    """Put an image whose upload (or staging) failed back in the queue."""

    def work(s: Session) -> None:
        image = s.get(Image, image_id, with_for_update=True)
        if image is not None and image.status == mode[0] and not image.location:
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
    left in saving (or uploading without staged data) go back to queued and their staging
    files are removed; imports that were running go back to staged (uploading)."""

    def work(s: Session) -> int:
        images = list(s.scalars(select(Image).where(
            Image.status.in_(("saving", "uploading", "importing")))))
        count = 0
        for image in images:
            if image.status == "uploading" and image.location:
                continue  # staged: waits for its import
            image.status = "uploading" if image.location else "queued"
            image.updated_at = utcnow()
            count += 1
        return count

    count = db.run(work)
    store.clean_staging()
    if count:
        log.warning("%d image upload(s) were interrupted; those images are queued again", count)
    return count


IMPORT_METHODS = ("glance-direct",)


def import_staged(db: Database, ctx: RequestContext, image_id: str, method: str) -> None:
    """`glance-direct`: a staged image goes through importing to active. The staged data
    already sits in the store with its checksums, so the import is a state change; each
    step commits, and a failure between them leaves the image staged (uploading) again."""

    def start(s: Session) -> None:
        image = owned_image(s, ctx, image_id, "import data to")
        if image.status != "uploading" or not image.location:
            raise Conflict(f"Image {image_id} needs to be staged before the '{method}' import "
                           f"method can be used (its status is '{image.status}').")
        image.status = "importing"
        image.updated_at = utcnow()

    def finish(s: Session) -> None:
        image = s.get(Image, image_id, with_for_update=True)
        if image is not None and image.status == "importing":
            image.status = "active"
            image.updated_at = utcnow()

    def back_to_staged(s: Session) -> None:
        image = s.get(Image, image_id, with_for_update=True)
        if image is not None and image.status == "importing":
            image.status = "uploading"
            image.updated_at = utcnow()

    db.run(start)
    try:
        db.run(finish)
    except Exception:
        log.exception("import of image %s failed; it is staged again", image_id)
        db.run(back_to_staged)  # if this fails too, the next start-up puts it back
        raise
