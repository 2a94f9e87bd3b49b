"""Server snapshots (`createImage`): the image record, the agent's staging file, the import.

The API sets the task `image_snapshot` and records a queued image in the same transaction.
The conductor asks the server's agent to write a flattened copy of the root disk to a
staging file in the shared image directory (the agent has no database); when the agent
reports, the conductor imports that file into the image store (checksums, size, active) or,
on failure, deletes the image, and clears the task. The server keeps its vm_state.
"""

from __future__ import annotations

import logging
import uuid as uuidlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cirrus.compute import actions, capabilities, instances, lifecycle, states
from cirrus.context import RequestContext
from cirrus.db.engine import Database
from cirrus.db.models import Image, Instance, utcnow
from cirrus.errors import CirrusError, Conflict, NotFound, OverLimit, is_transient
from cirrus.storage import image_data, images
from cirrus.storage.filestore import READ_CHUNK, FileStore, snapshot_staging_path

log = logging.getLogger(__name__)

ACTION = "createImage"
BACKUP_ACTION = "createBackup"
EVENT = "compute_snapshot_instance"
DISK_FORMAT, CONTAINER_FORMAT = "qcow2", "bare"
# Set by Cirrus on every snapshot; a request's metadata cannot override them. `image_type`
# ("snapshot") is a default the metadata may change, as in Nova (Tempest checks it); a
# backup's `image_type` ("backup") and `backup_type` are set over the metadata.
_OWN_PROPERTIES = ("instance_uuid", "base_image_ref", "user_id", "backup_type")


# ---------------------------------------------------------------- API side


def request_snapshot(db: Database, ctx: RequestContext, uuid: str, name: str,
                     metadata: dict[str, str], *, backup: tuple[str, int] | None = None) -> str:
    """Check the server may be snapshotted, set its task and record the queued image, in
    one transaction; returns the new image's id. `backup`: (backup_type, rotation) of a
    createBackup (compute/backups.py)."""

    def work(s: Session) -> str:
        inst = instances.get(s, ctx, uuid)
        if inst.locked and not ctx.is_admin:
            raise Conflict(f"Instance {uuid} is locked")
        states.check_action("create_image", uuid, inst.vm_state, inst.task_state)
        capabilities.require(s, inst, "snapshot", "createImage")
        done = lifecycle.transition(
            s, uuid, "create_image", vm_state=inst.vm_state, task_state=None,
            where=(Instance.deleted.is_(False),), task_started_at=utcnow(), updated_at=utcnow())
        if not done:
            raise Conflict(f"Instance {uuid} changed state while the request was processed; "
                           "try again.")
        own = ({} if backup is None
               else {"image_type": "backup", "backup_type": backup[0]})
        image = _snapshot_image(s, ctx, inst, name, metadata, own)
        s.add(image)
        if backup is not None:
            inst.system_metadata = {**(inst.system_metadata or {}),
                                    backup_rotation_key(image.id): str(backup[1])}
        actions.start_action(s, ctx, uuid, ACTION if backup is None else BACKUP_ACTION)
        return image.id

    return db.run(work)


def backup_rotation_key(image_id: str) -> str:
    """The instance's system_metadata key that holds a pending backup's rotation."""
    return f"backup_rotation:{image_id}"


def _snapshot_image(s: Session, ctx: RequestContext, inst: Instance, name: str,
                    metadata: dict[str, str], own: dict[str, str] | None = None) -> Image:
    """A queued, private image owned by the caller's project, as Nova asks Glance for one:
    the base image's properties carry over (kernel_id, ramdisk_id ...) so the snapshot
    boots as its server did."""
    base = s.get(Image, inst.image_ref) if inst.image_ref else None
    properties = {**((base.properties or {}) if base is not None else {}),
                  "image_type": "snapshot", **metadata, **(own or {}), "instance_uuid": inst.uuid,
                  "base_image_ref": inst.image_ref or "", "user_id": ctx.user_id}
    if len(properties) > images.MAX_PROPERTIES:
        raise OverLimit(f"Quota exceeded for metadata: the snapshot would have "
                        f"{len(properties)} properties, at most {images.MAX_PROPERTIES}.")
    now = utcnow()
    return Image(id=str(uuidlib.uuid4()), name=name, owner=ctx.project_id or inst.project_id,
                 status="queued", visibility="private", protected=False, os_hidden=False,
                 container_format=CONTAINER_FORMAT, disk_format=DISK_FORMAT,
                 min_disk=inst.root_gb or 0, min_ram=(base.min_ram or 0) if base else 0,
                 tags=[], properties=properties, created_at=now, updated_at=now)


def abandon_request(db: Database, uuid: str, image_id: str) -> None:
    """Undo an accepted request the conductor could not be told about: nothing would ever
    finish it (the sweeper does not re-drive snapshots)."""

    def work(s: Session) -> None:
        lifecycle.transition(s, uuid, "task_failed", task_state=states.IMAGE_SNAPSHOT,
                             task_started_at=None)
        _delete_unfinished(s, image_id)

    db.run(work)


# ---------------------------------------------------------------- agent and conductor side


def import_snapshot(db: Database, store: FileStore, ctx: RequestContext, image_id: str,
                    source: Path) -> None:
    """Copy the agent's file into the store through the upload path (md5 + sha512, size,
    virtual size) and make the image active. NotFound: the image was deleted meanwhile."""
    image_data.begin_upload(db, ctx, image_id)
    writer = store.writer(image_id)
    try:
        with open(source, "rb") as fh:
            while chunk := fh.read(READ_CHUNK):
                writer.write(chunk)
        stored = writer.commit()
    except BaseException:
        writer.abort()
        image_data.abort_upload(db, image_id)
        raise
    if image_data.finish_upload(db, image_id, stored) is None:
        store.delete(stored.location)
        raise NotFound(f"Image {image_id} was deleted while the snapshot was uploaded.")


def import_result(db: Database, store: FileStore, ctx: RequestContext,
                  result: Mapping[str, Any], what: str) -> str | None:
    """Take an agent's answer to `snapshot` or `shelve`: import the staging file it wrote
    into the image, then remove the file. Returns why not, if the agent or the import
    failed (`what` names the disk in that message: "snapshot", "shelved disk"). A
    transient failure is raised: the bus redelivers the result; the file is kept for it."""
    uuid, image_id = result["uuid"], result["image_id"]
    source = snapshot_staging_path(store.root, result["file"])
    error = None if result["ok"] else (result.get("details") or result.get("error"))
    try:
        if error is None:
            import_snapshot(db, store, ctx, image_id, source)
    except (CirrusError, OSError) as exc:
        if is_transient(exc):
            raise
        error = f"Importing the {what} of {uuid} into image {image_id} failed: {exc}"
    remove_staging(source)
    return error


def discard_image(db: Database, store: FileStore, image_id: str) -> None:
    """Delete a snapshot image that will get no data, as Nova does when a snapshot fails."""
    store.delete(db.run(lambda s: _delete_unfinished(s, image_id)))


def unfinished_images_of(db: Database, uuid: str) -> list[str]:
    """Snapshot images of the instance still waiting for their data."""
    with db.reader() as s:
        rows = s.execute(select(Image.id, Image.properties)
                         .where(Image.status.in_(("queued", "saving")))).all()
    return [image_id for image_id, props in rows if (props or {}).get("instance_uuid") == uuid]


def _delete_unfinished(s: Session, image_id: str) -> str | None:
    image = s.get(Image, image_id, with_for_update=True)
    if image is None or image.status not in ("queued", "saving"):
        return None
    location = image.location
    s.delete(image)
    return location


def finish_task(db: Database, ctx: RequestContext, uuid: str, host: str | None,
                error: str | None) -> None:
    """Clear the task (the vm_state never changed) and record the outcome; a task already
    ended (by the sweeper, or a delete) is left alone."""

    def work(s: Session) -> None:
        done = lifecycle.transition(
            s, uuid, "task_failed" if error else "task_done", task_state=states.IMAGE_SNAPSHOT,
            where=(Instance.deleted.is_(False),), task_started_at=None, updated_at=utcnow())
        if done:
            actions.record_event(s, uuid, ctx.request_id, EVENT, host,
                                 actions.ERROR if error else actions.SUCCESS, traceback=error)

    db.run(work)


def remove_staging(path: Path) -> None:
    """The agent's file is not needed once imported (or once the snapshot failed)."""
    path.unlink(missing_ok=True)
