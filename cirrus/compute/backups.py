"""Server backups (`createBackup`): a snapshot image with `image_type: backup` and its
`backup_type`, then, once it is active, the rotation Nova does: of the server's active
backups of that type, only the newest `rotation` are kept (0: none, not even this one).

The request rides on the snapshot machinery (compute/snapshots.py, the `image_snapshot`
task and workflow). The rotation, which Nova passes in its RPC message, waits in the
instance's system_metadata under `backup_rotation:<image id>` until the workflow has
imported the image and calls `rotate`.
"""

from __future__ import annotations

import logging

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from cirrus.compute import snapshots
from cirrus.context import RequestContext
from cirrus.db.engine import Database
from cirrus.db.models import Image, ImageMember, Instance
from cirrus.storage.filestore import FileStore

log = logging.getLogger(__name__)


def request_backup(db: Database, ctx: RequestContext, uuid: str, name: str, backup_type: str,
                   rotation: int, metadata: dict[str, str]) -> str:
    """As createImage, recording the backup's type and rotation; the new image's id."""
    return snapshots.request_snapshot(db, ctx, uuid, name, metadata,
                                      backup=(backup_type, rotation))


def _pop_rotation(s: Session, uuid: str, image_id: str) -> int | None:
    inst = s.scalar(select(Instance).where(Instance.uuid == uuid).with_for_update())
    key = snapshots.backup_rotation_key(image_id)
    if inst is None or key not in (inst.system_metadata or {}):
        return None
    meta = dict(inst.system_metadata)
    rotation = int(meta.pop(key))
    inst.system_metadata = meta
    return rotation


def _doomed(s: Session, uuid: str, image_id: str, rotation: int) -> list[Image]:
    image = s.get(Image, image_id)
    if image is None:
        return []
    backup_type = (image.properties or {}).get("backup_type")
    rows = s.scalars(select(Image).where(Image.status == "active")
                     .order_by(Image.created_at.desc(), Image.id)).all()
    backups = [row for row in rows
               if (row.properties or {}).get("instance_uuid") == uuid
               and (row.properties or {}).get("image_type") == "backup"
               and (row.properties or {}).get("backup_type") == backup_type]
    return [row for row in backups[rotation:] if not row.protected]


def rotate(db: Database, store: FileStore, uuid: str, image_id: str) -> None:
    """After backup `image_id` of server `uuid` became active: delete the server's oldest
    backups of its type beyond the rotation. Not a backup: nothing."""

    def work(s: Session) -> list[str | None]:
        rotation = _pop_rotation(s, uuid, image_id)
        if rotation is None:
            return []
        locations = []
        for image in _doomed(s, uuid, image_id, rotation):
            log.info("backup rotation of %s: deleting image %s", uuid, image.id)
            locations.append(image.location)
            s.execute(delete(ImageMember).where(ImageMember.image_id == image.id))
            s.delete(image)
        return locations

    locations = db.run(work)
    for location in locations:
        store.delete(location)  # after the commit, as the image API deletes


def forget(db: Database, uuid: str, image_id: str) -> None:
    """A backup that failed: its rotation waits for nothing any more."""
    db.run(lambda s: _pop_rotation(s, uuid, image_id))

