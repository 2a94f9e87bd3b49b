"""The snapshot workflow (createImage): the agent writes the file, the conductor imports it.

The vm_state never changes; the task `image_snapshot` ends with the import (or without an
image, if anything failed). The records' side is in `cirrus.compute.snapshots`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from cirrus.compute import backups, snapshots, states
from cirrus.compute.workflows.deps import WorkflowDeps, log
from cirrus.context import RequestContext
from cirrus.db.models import Instance
from cirrus.storage.filestore import FileStore, snapshot_staging_name


def snapshot_instance(deps: WorkflowDeps, ctx: RequestContext, payload: dict[str, Any]) -> None:
    uuid, image_id = payload["uuid"], payload["image_id"]
    with deps.db.reader() as s:
        inst = s.scalar(select(Instance).where(Instance.uuid == uuid))
        if inst is None or inst.deleted or inst.task_state != states.IMAGE_SNAPSHOT:
            return
        host = inst.host
    result = {"uuid": uuid, "image_id": image_id, "host": host,
              "file": snapshot_staging_name(image_id)}
    if not host:
        snapshot_result(deps, ctx, {**result, "ok": False, "error": "The instance has no host."})
        return
    deps.agents.snapshot(ctx, host, uuid, image_id, result["file"])


def snapshot_result(deps: WorkflowDeps, ctx: RequestContext, result: dict[str, Any]) -> None:
    uuid, image_id = result["uuid"], result["image_id"]
    store = FileStore(deps.settings.effective_image_dir)
    error = snapshots.import_result(deps.db, store, ctx, result, "snapshot")
    if error is not None:
        log.warning("snapshot of %s into image %s failed: %s", uuid, image_id, error)
        snapshots.discard_image(deps.db, store, image_id)
        backups.forget(deps.db, uuid, image_id)
    else:
        log.info("snapshot of %s is image %s", uuid, image_id)
        backups.rotate(deps.db, store, uuid, image_id)  # createBackup's rotation
    snapshots.finish_task(deps.db, ctx, uuid, result.get("host"), error)


def discard_unfinished(deps: WorkflowDeps, uuid: str) -> None:
    """Delete the images a snapshot of `uuid` will never fill (its task ended without them)."""
    store = FileStore(deps.settings.effective_image_dir)
    for image_id in snapshots.unfinished_images_of(deps.db, uuid):
        snapshots.discard_image(deps.db, store, image_id)
