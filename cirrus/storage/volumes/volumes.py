"""Volume records: create (empty, from an image, a volume or a snapshot), list, show, update,
delete and the state-changing actions. The API records what is asked and the volume role
(`manager.py`) does the backend work; every status change is a conditional write
(`transition`), so a duplicate message or a second copy of a role changes nothing.

Visibility as everywhere in Cirrus: another project's volume is not found unless the caller
is an admin.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.orm import Session

from cirrus.config import Settings
from cirrus.context import RequestContext
from cirrus.db.models import Image, Volume, VolumeSnapshot, VolumeType, utcnow
from cirrus.errors import BadRequest, NotFound
from cirrus.storage.volumes import quotas, states
from cirrus.storage.volumes import types as vtypes

GIB = 1024 ** 3
# Image properties that are not copied into a volume's image metadata (Cinder's list).
_IMAGE_SKIP = {"image_location", "image_state", "owner_id", "image_type", "ramdisk_id",
               "kernel_id"}


class InvalidVolume(BadRequest):
    """Cinder's InvalidVolume: the volume's state does not allow this (400)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"Invalid volume: {reason}")


def owns(ctx: RequestContext, project_id: str) -> bool:
    return ctx.is_admin or project_id == ctx.project_id


def get_volume(s: Session, ctx: RequestContext, volume_id: str, *,
               lock: bool = False) -> Volume:
    row = s.get(Volume, volume_id, with_for_update=lock) if len(volume_id) <= 36 else None
    if row is None or row.deleted or not owns(ctx, row.project_id):
        raise NotFound(f"Volume {volume_id} could not be found.")
    return row


def transition(s: Session, volume_id: str, from_statuses: tuple[str, ...], to_status: str,
               **values: Any) -> bool:
    """Set the volume's status to `to_status` (and `values`) only if it is in one of
    `from_statuses` now: True if this call changed it."""
    result = s.execute(update(Volume).where(
        Volume.id == volume_id, Volume.deleted.is_(False), Volume.status.in_(from_statuses))
        .values(status=to_status, status_changed_at=utcnow(), updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False))
    return bool(result.rowcount)  # type: ignore[attr-defined]


# ---------------------------------------------------------------- listing


@dataclass
class VolumeFilters:
    all_projects: bool = False
    project_id: str | None = None
    name: str | None = None
    status: str | None = None
    bootable: bool | None = None
    availability_zone: str | None = None
    volume_type: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    image_metadata: dict[str, str] = field(default_factory=dict)
    # (column, operator, value): created_at/updated_at with gt, gte, lt, lte, eq, neq (3.60)
    times: list[tuple[str, str, dt.datetime]] = field(default_factory=list)
    sort: list[tuple[str, str]] = field(default_factory=list)
    limit: int | None = None
    offset: int = 0
    marker: str | None = None


SORT_KEYS = {"id": Volume.id, "name": Volume.name, "size": Volume.size,
             "status": Volume.status, "created_at": Volume.created_at,
             "updated_at": Volume.updated_at, "availability_zone": Volume.availability_zone,
             "bootable": Volume.bootable, "project_id": Volume.project_id,
             "volume_type_id": Volume.volume_type_id, "display_name": Volume.name}

_TIME_OPS = {"gt": "__gt__", "gte": "__ge__", "lt": "__lt__", "lte": "__le__",
             "eq": "__eq__", "neq": "__ne__"}


def _conditions(s: Session, ctx: RequestContext, f: VolumeFilters) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [Volume.deleted.is_(False)]
    if not (ctx.is_admin and f.all_projects):
        where.append(Volume.project_id == (ctx.project_id or ""))
    if f.project_id and ctx.is_admin:
        where.append(Volume.project_id == f.project_id)
    if f.name is not None:
        where.append(Volume.name == f.name)
    if f.status is not None:
        where.append(Volume.status == f.status)
    if f.bootable is not None:
        where.append(Volume.bootable.is_(f.bootable))
    if f.availability_zone is not None:
        where.append(Volume.availability_zone == f.availability_zone)
    if f.volume_type is not None:
        type_ids = select(VolumeType.id).where(
            (VolumeType.id == f.volume_type) | (VolumeType.name == f.volume_type))
        where.append(Volume.volume_type_id.in_(type_ids))
    for column, op, value in f.times:
        where.append(getattr(getattr(Volume, column), _TIME_OPS[op])(value))
    return where


def list_volumes(s: Session, ctx: RequestContext, f: VolumeFilters) -> tuple[list[Volume], int]:
    """The page of volumes `f` asks for, and how many match in all (3.45's count)."""
    where = _conditions(s, ctx, f)
    query = select(Volume).where(*where)
    sort = f.sort or [("created_at", "desc")]
    if not any(key == "id" for key, _ in sort):
        sort = [*sort, ("id", sort[0][1])]
    order = [SORT_KEYS[key].desc() if direction == "desc" else SORT_KEYS[key].asc()
             for key, direction in sort]
    rows = list(s.scalars(query.order_by(*order)))
    if f.metadata:
        rows = [v for v in rows if all((v.metadata_items or {}).get(k) == val
                                       for k, val in f.metadata.items())]
    if f.image_metadata:
        rows = [v for v in rows if all((v.image_metadata or {}).get(k) == val
                                       for k, val in f.image_metadata.items())]
    total = len(rows)
    if f.marker:
        ids = [v.id for v in rows]
        if f.marker not in ids:
            marker = s.get(Volume, f.marker)
            if marker is None or marker.deleted or not owns(ctx, marker.project_id):
                raise NotFound(f"Marker {f.marker} could not be found.")
            raise BadRequest(f"marker [{f.marker}] not found")
        rows = rows[ids.index(f.marker) + 1:]
    rows = rows[f.offset:]
    if f.limit is not None:
        rows = rows[:f.limit]
    return rows, total


def summary(s: Session, ctx: RequestContext, all_projects: bool) -> dict[str, Any]:
    """volumes/summary (3.12): how many, how big, and the metadata keys' values (3.36)."""
    f = VolumeFilters(all_projects=all_projects)
    rows = list(s.scalars(select(Volume).where(*_conditions(s, ctx, f))))
    metadata: dict[str, list[str]] = {}
    for v in rows:
        for key, value in (v.metadata_items or {}).items():
            values = metadata.setdefault(key, [])
            if value not in values:
                values.append(value)
    return {"total_count": len(rows), "total_size": sum(v.size for v in rows),
            "metadata": metadata}


# ---------------------------------------------------------------- create


@dataclass
class VolumeSpec:
    size: int | None = None
    name: str | None = None
    description: str | None = None
    volume_type: str | None = None
    availability_zone: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    snapshot_id: str | None = None
    source_volid: str | None = None
    image_id: str | None = None
    multiattach: bool = False


def _image(s: Session, ctx: RequestContext, image_id: str) -> Image:
    from cirrus.storage.images import can_see

    image = s.get(Image, image_id) if len(image_id) <= 36 else None
    if image is None or not can_see(s, ctx, image):
        raise BadRequest(f"Invalid image identifier or unable to access requested image "
                         f"{image_id}.")
    if image.status != "active":
        raise BadRequest(f"Image {image_id} is not active.")
    return image


def image_min_gb(image: Image) -> int:
    """The smallest volume that holds the image: its virtual size (or size) and min_disk."""
    data = image.virtual_size or image.size or 0
    return max(int(image.min_disk or 0), -(-int(data) // GIB), 1)


def image_metadata_of(image: Image) -> dict[str, str]:
    """What a volume made from `image` keeps of it (volume_image_metadata)."""
    meta = {"image_id": image.id, "image_name": image.name or "",
            "checksum": image.checksum or "", "container_format": image.container_format or "",
            "disk_format": image.disk_format or "", "min_disk": str(image.min_disk or 0),
            "min_ram": str(image.min_ram or 0), "size": str(image.size or 0)}
    for key, value in (image.properties or {}).items():
        if key not in _IMAGE_SKIP:
            meta[key] = value if isinstance(value, str) else str(value)
    return meta


def create_volume(s: Session, ctx: RequestContext, settings: Settings,
                  spec: VolumeSpec) -> Volume:
    """Record a volume in `creating` (the caller sends `create_volume` after the commit)."""
    project_id = ctx.project_id
    if not project_id or not ctx.user_id:
        raise BadRequest("Creating a volume needs a project-scoped token.")
    sources = [n for n in ("snapshot_id", "source_volid", "image_id") if getattr(spec, n)]
    if len(sources) > 1:
        raise BadRequest("Invalid input received: only one of snapshot_id, source_volid "
                         "and imageRef may be given.")
    size = spec.size
    vtype: VolumeType | None = None
    image_meta: dict[str, str] = {}
    bootable = False
    backend: str | None = None
    source_volume: Volume | None = None
    if spec.snapshot_id:
        snap = s.get(VolumeSnapshot, spec.snapshot_id)
        if snap is None or snap.deleted or not owns(ctx, snap.project_id):
            raise NotFound(f"Snapshot {spec.snapshot_id} could not be found.")
        if snap.status != states.AVAILABLE:
            raise BadRequest(f"Invalid snapshot: Originating snapshot status must be one of "
                             f"'available' values (it is {snap.status}).")
        source_volume = s.get(Volume, snap.volume_id)
        size = size or snap.size
        if size < snap.size:
            raise BadRequest(f"Invalid input received: Volume size '{size}'GB cannot be "
                             f"smaller than the snapshot size {snap.size}GB. They must be "
                             ">= original snapshot size.")
    if spec.source_volid:
        source_volume = get_volume(s, ctx, spec.source_volid)
        if source_volume.status not in states.USABLE:
            raise InvalidVolume(f"Volume {source_volume.id} status must be available or "
                                f"in-use to be cloned, but it is {source_volume.status}.")
        size = size or source_volume.size
        if size < source_volume.size:
            raise BadRequest(f"Invalid input received: Volume size '{size}'GB cannot be "
                             f"smaller than original volume size {source_volume.size}GB. "
                             "They must be >= original volume size.")
    if source_volume is not None:
        backend = source_volume.backend
        image_meta = dict(source_volume.image_metadata or {})
        bootable = source_volume.bootable
        if spec.volume_type is None:
            vtype = s.get(VolumeType, source_volume.volume_type_id)
    if spec.image_id:
        image = _image(s, ctx, spec.image_id)
        needed = image_min_gb(image)
        size = size or needed
        if size < needed:
            raise BadRequest(f"Invalid input received: Volume size {size}GB is too small "
                             f"for image {image.id}: it needs at least {needed}GB.")
        image_meta = image_metadata_of(image)
        bootable = True
    if size is None:
        raise BadRequest("Invalid input for field/attribute size. Value: None. "
                         "A size is required without a source.")
    if vtype is None:
        vtype = (vtypes.get_type(s, ctx, spec.volume_type) if spec.volume_type
                 else vtypes.ensure_default_type(s))
    type_backend = vtypes.backend_for(settings, vtype)
    if backend is not None and backend != type_backend and spec.volume_type:
        raise BadRequest(f"Invalid volume type: the source lives on backend {backend}, "
                         f"type {vtype.name} on {type_backend}; a copy between backends is "
                         "not supported.")
    backend = backend or type_backend
    zone = settings.default_availability_zone
    if spec.availability_zone not in (None, zone):
        raise BadRequest(f"Invalid availability zone: {spec.availability_zone}.")
    if source_volume is not None and spec.availability_zone not in (
            None, source_volume.availability_zone):
        raise BadRequest("Invalid input received: the volume must be in the availability "
                         "zone of its source.")
    now = utcnow()
    volume = Volume(
        id=str(uuid.uuid4()), project_id=project_id, user_id=ctx.user_id, name=spec.name,
        description=spec.description, size=size, status=states.CREATING,
        attach_status=states.DETACHED, availability_zone=zone, volume_type_id=vtype.id,
        backend=backend, source_volid=spec.source_volid, snapshot_id=spec.snapshot_id,
        image_id=spec.image_id, bootable=bootable, multiattach=spec.multiattach,
        readonly=None, metadata_items=dict(spec.metadata), image_metadata=image_meta,
        status_changed_at=now, deleted=False, created_at=now)
    s.add(volume)
    s.flush()
    quotas.check(s, settings, project_id, vtype.name, volumes=1, gigabytes=size, size=size)
    return volume


# ---------------------------------------------------------------- update and metadata


def update_volume(s: Session, ctx: RequestContext, volume_id: str,
                  values: dict[str, Any]) -> Volume:
    volume = get_volume(s, ctx, volume_id, lock=True)
    for key in ("name", "description"):
        if key in values:
            setattr(volume, key, values[key])
    if "metadata" in values:
        volume.metadata_items = dict(values["metadata"])
    volume.updated_at = utcnow()
    s.flush()
    return volume


def set_metadata(s: Session, ctx: RequestContext, volume_id: str, metadata: dict[str, str],
                 *, replace: bool) -> dict[str, str]:
    volume = get_volume(s, ctx, volume_id, lock=True)
    current = {} if replace else dict(volume.metadata_items or {})
    current.update(metadata)
    _check_metadata_count(current)
    volume.metadata_items = current
    volume.updated_at = utcnow()
    return current


def delete_metadata_key(s: Session, ctx: RequestContext, volume_id: str, key: str) -> None:
    volume = get_volume(s, ctx, volume_id, lock=True)
    current = dict(volume.metadata_items or {})
    if key not in current:
        raise NotFound(f"Volume {volume_id} has no metadata with key {key}.")
    del current[key]
    volume.metadata_items = current
    volume.updated_at = utcnow()


MAX_METADATA = 128


def _check_metadata_count(metadata: dict[str, str]) -> None:
    if len(metadata) > MAX_METADATA:
        raise BadRequest(f"Invalid input for field/attribute metadata: at most "
                         f"{MAX_METADATA} items.")


# ---------------------------------------------------------------- delete


def request_delete(s: Session, ctx: RequestContext, volume_id: str, *, cascade: bool = False,
                   force: bool = False) -> list[str]:
    """Mark the volume (and with `cascade` its snapshots) deleting; returns the snapshot ids
    to delete first. InvalidVolume when its state forbids it, as Cinder answers."""
    volume = get_volume(s, ctx, volume_id, lock=True)
    allowed = states.VOLUME_STATUSES if force else states.DELETABLE
    if volume.status not in allowed or volume.attach_status != states.DETACHED:
        raise InvalidVolume(
            "Volume status must be available or error or error_restoring or "
            "error_extending or error_managing and must not be migrating, attached, belong "
            f"to a group, have snapshots or be disassociated from snapshots after volume "
            f"transfer (it is {volume.status}, {volume.attach_status}).")
    snaps = list(s.scalars(select(VolumeSnapshot).where(
        VolumeSnapshot.volume_id == volume_id, VolumeSnapshot.deleted.is_(False))))
    if snaps and not cascade:
        raise InvalidVolume(f"Volume {volume_id} still has {len(snaps)} dependent "
                            "snapshots; delete them first or pass cascade=true.")
    busy = [snap.id for snap in snaps
            if snap.status not in (states.AVAILABLE, states.ERROR, states.ERROR_DELETING)]
    if busy:
        raise InvalidVolume(f"Snapshot {busy[0]} of the volume is busy; its status must be "
                            "available or error to delete it in cascade.")
    now = utcnow()
    for snap in snaps:
        snap.status = states.DELETING
        snap.status_changed_at = now
    if not transition(s, volume_id, allowed, states.DELETING):  # keeps the last error
        raise InvalidVolume("the volume's status changed meanwhile; try again.")
    return [snap.id for snap in snaps]


# ---------------------------------------------------------------- actions


def request_extend(s: Session, ctx: RequestContext, settings: Settings, volume_id: str,
                   new_size: int) -> Volume:
    volume = get_volume(s, ctx, volume_id, lock=True)
    if volume.status != states.AVAILABLE:
        raise InvalidVolume(f"Volume status must be 'available' to extend, currently in "
                            f"'{volume.status}'.")
    if new_size <= volume.size:
        raise BadRequest(f"Invalid input received: New size for extend must be greater than "
                         f"current size. (current: {volume.size}, extended: {new_size}).")
    vtype = s.get(VolumeType, volume.volume_type_id)
    quotas.check(s, settings, volume.project_id, vtype.name if vtype else "",
                 gigabytes=new_size - volume.size, size=new_size, pending=True)
    transition(s, volume_id, (states.AVAILABLE,), states.EXTENDING, error=None)
    return volume


def retype(s: Session, ctx: RequestContext, settings: Settings, volume_id: str,
           new_type: str, migration_policy: str) -> Volume:
    """os-retype within a backend: the type changes at once (a move between backends, a
    migration, is not supported: 400 whatever the policy)."""
    volume = get_volume(s, ctx, volume_id, lock=True)
    if volume.status not in states.USABLE:
        raise InvalidVolume(f"Volume status must be available or in-use to retype, but it "
                            f"is {volume.status}.")
    vtype = vtypes.get_type(s, ctx, new_type)
    if vtype.id == volume.volume_type_id:
        raise BadRequest(f"Invalid volume type: the volume's type is {vtype.name} already.")
    backend = vtypes.backend_for(settings, vtype)
    if backend != volume.backend:
        raise BadRequest(f"Invalid volume type: type {vtype.name} lives on backend {backend}, "
                         f"the volume on {volume.backend}; moving a volume between backends "
                         f"is not supported (migration_policy {migration_policy}).")
    volume.volume_type_id = vtype.id
    volume.updated_at = utcnow()
    s.flush()
    quotas.check(s, settings, volume.project_id, vtype.name, volumes=1,
                 gigabytes=volume.size)
    return volume


def set_bootable(s: Session, ctx: RequestContext, volume_id: str, bootable: bool) -> None:
    volume = get_volume(s, ctx, volume_id, lock=True)
    volume.bootable = bootable
    volume.updated_at = utcnow()


def set_readonly(s: Session, ctx: RequestContext, volume_id: str, readonly: bool) -> None:
    volume = get_volume(s, ctx, volume_id, lock=True)
    if volume.status != states.AVAILABLE:
        raise InvalidVolume(f"Volume status must be available to update readonly flag, but "
                            f"current status is: {volume.status}.")
    volume.readonly = readonly
    volume.updated_at = utcnow()


def set_image_metadata(s: Session, ctx: RequestContext, volume_id: str,
                       metadata: dict[str, str]) -> dict[str, str]:
    volume = get_volume(s, ctx, volume_id, lock=True)
    if volume.status not in states.USABLE:
        raise InvalidVolume(f"Volume status must be available or in-use, but current "
                            f"status is: {volume.status}.")
    current = {**(volume.image_metadata or {}), **metadata}
    volume.image_metadata = current
    volume.updated_at = utcnow()
    return current


def unset_image_metadata(s: Session, ctx: RequestContext, volume_id: str, key: str) -> None:
    volume = get_volume(s, ctx, volume_id, lock=True)
    current = dict(volume.image_metadata or {})
    if key not in current:
        raise NotFound(f"Glance metadata for volume {volume_id} with key {key} cannot be "
                       "found.")
    del current[key]
    volume.image_metadata = current
    volume.updated_at = utcnow()


def reset_status(s: Session, volume_id: str, status: str | None,
                 attach_status: str | None) -> None:
    """os-reset_status (admins): set the recorded state, whatever it is."""
    volume = s.get(Volume, volume_id, with_for_update=True)
    if volume is None or volume.deleted:
        raise NotFound(f"Volume {volume_id} could not be found.")
    if status is not None:
        volume.status = status
        volume.status_changed_at = utcnow()
    if attach_status is not None:
        volume.attach_status = attach_status
    volume.updated_at = utcnow()


def count_in_project(s: Session, project_id: str) -> int:
    return int(s.scalar(select(func.count()).select_from(Volume).where(
        Volume.project_id == project_id, Volume.deleted.is_(False))) or 0)
