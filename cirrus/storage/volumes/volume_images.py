"""A volume's data as a new image (os-volume_upload_image) and a volume reverted to its
latest snapshot (3.40's `revert`): the API's side. Both record a transitional status
(`uploading`, `reverting`) and the caller casts the volume role's message after the commit;
the role does the backend work (manager.py).

Upload: the image is created here, in the image service's tables (the same database),
`queued`, owned by the caller's project, with the volume's image metadata copied into its
properties as Cinder does (every key but Glance's core ones; min_disk and min_ram as
attributes). The volume role takes it through `saving` to `active`, or deletes it when the
copy fails.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from cirrus.context import RequestContext
from cirrus.db.models import Image, Volume, VolumeSnapshot, utcnow
from cirrus.errors import BadRequest, Forbidden
from cirrus.storage.volumes import snapshots, states
from cirrus.storage.volumes.volumes import InvalidVolume, get_volume

# Cinder's glance_core_properties: not copied as properties (checksum, formats, the source
# image's id and name, sizes are the new image's own).
CORE_PROPERTIES = ("checksum", "container_format", "disk_format", "image_name", "image_id",
                   "min_disk", "min_ram", "name", "size")
# What Glance would refuse as an extra property on create.
_GLANCE_ATTRIBUTES = ("id", "status", "visibility", "protected", "os_hidden", "owner", "tags",
                      "created_at", "updated_at", "virtual_size", "os_hash_algo",
                      "os_hash_value", "location", "locations", "deleted", "deleted_at",
                      "direct_url", "self", "file", "schema", "stores")
DISK_FORMATS = ("raw", "qcow2", "vmdk", "vdi", "vhd", "vhdx")
CONTAINER_FORMATS = ("bare",)


@dataclass(frozen=True)
class UploadRequest:
    image_name: str
    force: bool = False
    disk_format: str = "raw"
    container_format: str = "bare"
    visibility: str = "private"
    protected: bool = False


@dataclass(frozen=True)
class Upload:
    """What the API answers: the volume as it is now and the new image."""

    volume: Volume
    image: Image


def image_properties(volume_image_metadata: dict[str, str]) -> tuple[dict[str, str], int, int]:
    """(properties, min_disk, min_ram) of an image made from a volume with this metadata."""
    props = {k: v for k, v in volume_image_metadata.items()
             if k not in CORE_PROPERTIES and k not in _GLANCE_ATTRIBUTES
             and not k.startswith("os_glance")}

    def number(key: str) -> int:
        try:
            return max(0, int(volume_image_metadata.get(key) or 0))
        except ValueError:
            return 0

    return props, number("min_disk"), number("min_ram")


def request_upload(s: Session, ctx: RequestContext, volume_id: str,
                   req: UploadRequest) -> Upload:
    """Record the volume `uploading` and a queued image for its data."""
    volume = get_volume(s, ctx, volume_id, lock=True)
    if not ctx.project_id:
        raise BadRequest("Uploading a volume to an image needs a project-scoped token.")
    if volume.status == states.IN_USE and not req.force:
        raise InvalidVolume(f"Volume {volume.id} status must be available to upload to an "
                            "image, but the current status is in-use (force it with "
                            "force=true).")
    if volume.status not in (states.AVAILABLE, states.IN_USE):
        raise InvalidVolume(f"Volume {volume.id} status must be available or in-use (with "
                            f"force) to upload to an image, but it is {volume.status}.")
    if req.visibility == "public" and not ctx.is_admin:
        raise Forbidden("You are not authorized to complete publicize_image action.")
    props, min_disk, min_ram = image_properties(dict(volume.image_metadata or {}))
    now = utcnow()
    image = Image(id=str(uuid.uuid4()), name=req.image_name, owner=ctx.project_id,
                  status="queued", visibility=req.visibility, protected=req.protected,
                  os_hidden=False, container_format=req.container_format,
                  disk_format=req.disk_format, min_disk=min_disk, min_ram=min_ram, tags=[],
                  properties=props, created_at=now, updated_at=now)
    s.add(image)
    volume.status = states.UPLOADING
    volume.status_changed_at = now
    volume.updated_at = now
    s.flush()
    return Upload(volume=volume, image=image)


def after_upload(volume: Volume) -> str:
    """Where an upload leaves the volume: in-use if it is attached, else available."""
    return states.IN_USE if volume.attach_status == "attached" else states.AVAILABLE


def request_revert(s: Session, ctx: RequestContext, volume_id: str,
                   snapshot_id: str) -> VolumeSnapshot:
    """Record the volume `reverting` and its latest snapshot `restoring` (3.40)."""
    volume = get_volume(s, ctx, volume_id, lock=True)
    snap = snapshots.get_snapshot(s, ctx, snapshot_id, lock=True)
    if snap.volume_id != volume.id:
        raise BadRequest(f"Invalid snapshot: snapshot {snap.id} does not belong to volume "
                         f"{volume.id}.")
    if volume.status != states.AVAILABLE:
        raise InvalidVolume(f"Cannot revert volume {volume.id} to snapshot {snap.id}: the "
                            f"volume must be available, but it is {volume.status}.")
    if snap.status != states.AVAILABLE:
        raise BadRequest(f"Invalid snapshot: cannot revert to snapshot {snap.id}: it must be "
                         f"available, but it is {snap.status}.")
    latest = s.scalars(select(VolumeSnapshot).where(
        VolumeSnapshot.volume_id == volume.id, VolumeSnapshot.deleted.is_(False))
        .order_by(VolumeSnapshot.created_at.desc(), VolumeSnapshot.id.desc()).limit(1)).first()
    if latest is None or latest.id != snap.id:
        raise InvalidVolume(f"Cannot revert volume {volume.id} to snapshot {snap.id}: only the "
                            f"volume's latest snapshot ({latest.id if latest else 'none'}) "
                            "can be reverted to.")
    if snap.size != volume.size:
        raise InvalidVolume(f"Cannot revert volume {volume.id} of {volume.size} GiB to "
                            f"snapshot {snap.id} of {snap.size} GiB: their sizes must be "
                            "equal.")
    now = utcnow()
    volume.status, volume.status_changed_at, volume.updated_at = states.REVERTING, now, now
    snap.status, snap.status_changed_at, snap.updated_at = states.RESTORING, now, now
    s.flush()
    return snap
