"""Volume snapshots: recorded `creating` by the API, made by the volume role; deleted the
same way (`deleting`, then the record is marked deleted). Status changes are conditional."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from cirrus.config import Settings
from cirrus.context import RequestContext
from cirrus.db.models import Volume, VolumeSnapshot, VolumeType, utcnow
from cirrus.errors import BadRequest, NotFound
from cirrus.storage.volumes import quotas, states
from cirrus.storage.volumes.volumes import InvalidVolume, get_volume, owns


def get_snapshot(s: Session, ctx: RequestContext, snapshot_id: str, *,
                 lock: bool = False) -> VolumeSnapshot:
    row = (s.get(VolumeSnapshot, snapshot_id, with_for_update=lock)
           if len(snapshot_id) <= 36 else None)
    if row is None or row.deleted or not owns(ctx, row.project_id):
        raise NotFound(f"Snapshot {snapshot_id} could not be found.")
    return row


def transition(s: Session, snapshot_id: str, from_statuses: tuple[str, ...], to_status: str,
               **values: Any) -> bool:
    result = s.execute(update(VolumeSnapshot).where(
        VolumeSnapshot.id == snapshot_id, VolumeSnapshot.deleted.is_(False),
        VolumeSnapshot.status.in_(from_statuses))
        .values(status=to_status, status_changed_at=utcnow(), updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False))
    return bool(result.rowcount)  # type: ignore[attr-defined]


@dataclass
class SnapshotFilters:
    all_projects: bool = False
    project_id: str | None = None
    name: str | None = None
    status: str | None = None
    volume_id: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    sort: list[tuple[str, str]] = field(default_factory=list)
    limit: int | None = None
    offset: int = 0
    marker: str | None = None


SORT_KEYS = {"id": VolumeSnapshot.id, "name": VolumeSnapshot.name,
             "display_name": VolumeSnapshot.name,
             "size": VolumeSnapshot.size, "status": VolumeSnapshot.status,
             "created_at": VolumeSnapshot.created_at, "updated_at": VolumeSnapshot.updated_at,
             "volume_id": VolumeSnapshot.volume_id, "project_id": VolumeSnapshot.project_id}


def list_snapshots(s: Session, ctx: RequestContext,
                   f: SnapshotFilters) -> tuple[list[VolumeSnapshot], int]:
    where: list[ColumnElement[bool]] = [VolumeSnapshot.deleted.is_(False)]
    if not (ctx.is_admin and f.all_projects):
        where.append(VolumeSnapshot.project_id == (ctx.project_id or ""))
    if f.project_id and ctx.is_admin:
        where.append(VolumeSnapshot.project_id == f.project_id)
    for name in ("name", "status", "volume_id"):
        value = getattr(f, name)
        if value is not None:
            where.append(getattr(VolumeSnapshot, name) == value)
    sort = f.sort or [("created_at", "desc")]
    if not any(key == "id" for key, _ in sort):
        sort = [*sort, ("id", sort[0][1])]
    order = [SORT_KEYS[k].desc() if d == "desc" else SORT_KEYS[k].asc() for k, d in sort]
    rows = list(s.scalars(select(VolumeSnapshot).where(*where).order_by(*order)))
    if f.metadata:
        rows = [r for r in rows if all((r.metadata_items or {}).get(k) == v
                                       for k, v in f.metadata.items())]
    total = len(rows)
    if f.marker:
        ids = [r.id for r in rows]
        if f.marker not in ids:
            raise NotFound(f"Marker {f.marker} could not be found.")
        rows = rows[ids.index(f.marker) + 1:]
    rows = rows[f.offset:]
    if f.limit is not None:
        rows = rows[:f.limit]
    return rows, total


def create_snapshot(s: Session, ctx: RequestContext, settings: Settings, volume_id: str, *,
                    name: str | None, description: str | None, force: bool,
                    metadata: dict[str, str]) -> VolumeSnapshot:
    """Record a snapshot `creating` (the caller sends `create_snapshot` after the commit).
    A volume in use needs `force`, as in Cinder before 3.66."""
    volume = get_volume(s, ctx, volume_id, lock=True)
    allowed = (states.AVAILABLE, states.IN_USE) if force else (states.AVAILABLE,)
    if volume.status not in allowed:
        raise InvalidVolume(f"Volume {volume_id} status must be available, but current "
                            f"status is: {volume.status}.")
    if not ctx.user_id:
        raise BadRequest("Creating a snapshot needs a project-scoped token.")
    now = utcnow()
    snap = VolumeSnapshot(
        id=str(uuid.uuid4()), project_id=volume.project_id, user_id=ctx.user_id,
        volume_id=volume.id, volume_type_id=volume.volume_type_id, name=name,
        description=description, size=volume.size, status=states.CREATING, progress="0%",
        metadata_items=dict(metadata), status_changed_at=now, deleted=False, created_at=now)
    s.add(snap)
    s.flush()
    vtype = s.get(VolumeType, volume.volume_type_id)
    quotas.check(s, settings, volume.project_id, vtype.name if vtype else "", snapshots=1,
                 gigabytes=volume.size)
    return snap


def update_snapshot(s: Session, ctx: RequestContext, snapshot_id: str,
                    values: dict[str, Any]) -> VolumeSnapshot:
    snap = get_snapshot(s, ctx, snapshot_id, lock=True)
    for key in ("name", "description"):
        if key in values:
            setattr(snap, key, values[key])
    snap.updated_at = utcnow()
    s.flush()
    return snap


def set_metadata(s: Session, ctx: RequestContext, snapshot_id: str, metadata: dict[str, str],
                 *, replace: bool) -> dict[str, str]:
    snap = get_snapshot(s, ctx, snapshot_id, lock=True)
    current = {} if replace else dict(snap.metadata_items or {})
    current.update(metadata)
    snap.metadata_items = current
    snap.updated_at = utcnow()
    return current


def delete_metadata_key(s: Session, ctx: RequestContext, snapshot_id: str, key: str) -> None:
    snap = get_snapshot(s, ctx, snapshot_id, lock=True)
    current = dict(snap.metadata_items or {})
    if key not in current:
        raise NotFound(f"Snapshot {snapshot_id} has no metadata with key {key}.")
    del current[key]
    snap.metadata_items = current
    snap.updated_at = utcnow()


def request_delete(s: Session, ctx: RequestContext, snapshot_id: str, *,
                   force: bool = False) -> VolumeSnapshot:
    snap = get_snapshot(s, ctx, snapshot_id, lock=True)
    allowed = states.SNAPSHOT_STATUSES if force else (states.AVAILABLE, states.ERROR,
                                                      states.ERROR_DELETING)
    if snap.status not in allowed or not transition(s, snapshot_id, allowed, states.DELETING,
                                                    error=None):
        raise BadRequest(f"Invalid snapshot: Snapshot status must be available or error "
                         f"(it is {snap.status}).")
    return snap


def reset_status(s: Session, snapshot_id: str, status: str) -> None:
    snap = s.get(VolumeSnapshot, snapshot_id, with_for_update=True)
    if snap is None or snap.deleted:
        raise NotFound(f"Snapshot {snapshot_id} could not be found.")
    snap.status = status
    snap.status_changed_at = utcnow()


# Cinder's os-update_snapshot_status (what a hypervisor reports of a snapshot it makes):
# the statuses each status may move to; any other current status may not be updated.
UPDATABLE_STATUSES = {
    states.CREATING: (states.CREATING, states.AVAILABLE, states.ERROR),
    states.DELETING: (states.DELETING, states.ERROR_DELETING)}


def update_status(s: Session, ctx: RequestContext, snapshot_id: str, status: str,
                  progress: str | None) -> None:
    snap = get_snapshot(s, ctx, snapshot_id, lock=True)
    allowed = UPDATABLE_STATUSES.get(snap.status)
    if allowed is None:
        raise BadRequest(f"Invalid snapshot: Snapshot status {snap.status} not allowed for "
                         f"update_snapshot_status")
    if status not in allowed:
        raise BadRequest(f"Invalid snapshot: Provided snapshot status {status} not allowed "
                         f"for snapshot with status {snap.status}.")
    snap.status = status
    snap.status_changed_at = utcnow()
    if progress:
        snap.progress = progress


def volume_of(s: Session, snap: VolumeSnapshot) -> Volume | None:
    return s.get(Volume, snap.volume_id)
