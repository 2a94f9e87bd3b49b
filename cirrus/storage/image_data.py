"""Image data: the upload that takes an image from queued through saving to active (or back
to queued if it fails), its size and checksums recorded, and the recovery of uploads a
restart interrupted. The bytes themselves live in the file store (filestore.py)."""

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


def begin_upload(db: Database, ctx: RequestContext, image_id: str) -> None:
    """Move a queued image to saving, so that exactly one upload may run."""

    def work(s: Session) -> None:
        image = owned_image(s, ctx, image_id, "upload data to")
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
