"""The volume role: takes the volume messages (`rpcapi.py`), runs the backend work and moves
the records out of their transitional states; its sweeper makes sure nothing stays in one.

Every handler reads the record first and does nothing unless it is in the state the message
is for (a duplicate, or a message for a record the sweeper already ended, changes nothing);
every status write is conditional on the state it leaves (`volumes.transition`,
`snapshots.transition`), so several copies of the role can run against one database.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cirrus.context import RequestContext
from cirrus.db.models import Image, Volume, VolumeSnapshot, utcnow
from cirrus.storage.volumes import rpcapi, snapshots, states, volume_images, volumes
from cirrus.storage.volumes.backend import BackendError, ImageSource, VolumeBackend
from cirrus.storage.volumes.backends import load_backends
from cirrus.storage.volumes.rpcapi import (
    VOLUME_TOPIC,
    CreateSnapshot,
    CreateVolume,
    DeleteSnapshot,
    DeleteVolume,
    ExtendVolume,
    RevertVolume,
    UploadImage,
)

if TYPE_CHECKING:
    from cirrus.services import Deps

log = logging.getLogger(__name__)

MAX_REMEMBERED = 10000


class VolumeManager:
    def __init__(self, deps: Deps, backends: dict[str, VolumeBackend] | None = None) -> None:
        self.deps = deps
        self.db = deps.db
        self.settings = deps.settings
        self.backends: dict[str, VolumeBackend] = backends if backends is not None else {}
        self._loaded = backends is not None
        self.load_error: str | None = None
        self.api = rpcapi.VolumeAPI(deps.bus)
        self._redriven: dict[tuple[str, str], float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- lifecycle
    def start(self) -> None:
        if not self._loaded:
            try:
                self.backends = load_backends(self.settings)
            except BackendError as exc:  # the role runs: its volumes fail with the reason
                self.load_error = str(exc)
                log.error("volume role: the backends cannot be loaded: %s", exc)
            self._loaded = True
        self.deps.bus.subscribe(VOLUME_TOPIC, rpcapi.endpoints(self), workers=4)
        self._thread = threading.Thread(target=self._periodic, name="volume-loop", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.deps.bus.unsubscribe(VOLUME_TOPIC)
        if self._thread:
            self._thread.join(timeout=5)

    def _periodic(self) -> None:
        while not self._stop.wait(self.settings.heartbeat_interval):
            try:
                self.sweep()
            except Exception:
                log.exception("volume role: sweep failed")

    def _backend(self, name: str | None) -> VolumeBackend:
        backend = self.backends.get(name or "")
        if backend is None:
            why = f" ({self.load_error})" if self.load_error else ""
            raise BackendError(f"volume backend {name!r} is not configured on this volume "
                               f"role (volume_backends: {', '.join(self.backends) or 'none'})"
                               f"{why}")
        return backend

    # ---- volumes
    def create_volume(self, ctx: RequestContext, payload: CreateVolume) -> None:
        with self.db.reader() as s:
            volume = s.get(Volume, payload.volume_id)
            if volume is None or volume.deleted or volume.status != states.CREATING:
                return
            vid, size, name = volume.id, volume.size, volume.backend
            source = self._source(s, volume)
        try:
            backend = self._backend(name)
            if isinstance(source, ImageSource):
                backend.create_from_image(vid, size, source)
            elif isinstance(source, tuple):
                backend.create_from_snapshot(vid, size, source[0], source[1])
            elif isinstance(source, str):
                backend.create_from_volume(vid, size, source)
            else:
                backend.create_empty(vid, size)
        except Exception as exc:
            self._fail_volume(vid, states.CREATING, states.ERROR, exc)
            return
        if self.db.run(lambda s: volumes.transition(s, vid, (states.CREATING,),
                                                    states.AVAILABLE)):
            log.info("volume %s: created (%d GiB on %s)", vid, size, name)

    def _source(self, s: Session, volume: Volume) -> ImageSource | tuple[str, str] | str | None:
        """What the volume is made from: an image's file, (volume, snapshot), a volume."""
        if volume.snapshot_id:
            snap = s.get(VolumeSnapshot, volume.snapshot_id)
            if snap is None:
                raise BackendError(f"snapshot {volume.snapshot_id} is gone")
            return (snap.volume_id, snap.id)
        if volume.source_volid:
            return volume.source_volid
        if volume.image_id:
            image = s.get(Image, volume.image_id)
            if image is None or not image.location:
                return ImageSource(volume.image_id, Path("/nonexistent"), "raw", 0)
            from cirrus.storage.filestore import FileStore

            path = FileStore(self.settings.effective_image_dir).path_of(image.location)
            return ImageSource(image.id, path, image.disk_format or "raw", int(image.size or 0),
                               image.os_hash_value or "")
        return None

    def _fail_volume(self, volume_id: str, status: str, to: str, exc: Exception) -> None:
        message = f"{status} failed: {type(exc).__name__}: {exc}"
        log.error("volume %s: %s", volume_id, message)
        self.db.run(lambda s: volumes.transition(s, volume_id, (status,), to,
                                                 error=message[:2000]))

    def delete_volume(self, ctx: RequestContext, payload: DeleteVolume) -> None:
        for snapshot_id in payload.snapshot_ids:  # a cascade: the snapshots first
            self.delete_snapshot(ctx, DeleteSnapshot(snapshot_id=snapshot_id))
        with self.db.reader() as s:
            volume = s.get(Volume, payload.volume_id)
            if volume is None or volume.deleted or volume.status != states.DELETING:
                return
            vid, name = volume.id, volume.backend
            left = s.scalar(select(VolumeSnapshot.id).where(
                VolumeSnapshot.volume_id == vid, VolumeSnapshot.deleted.is_(False)).limit(1))
        try:
            if left is not None:
                raise BackendError(f"snapshot {left} of the volume was not deleted")
            if name in self.backends or not self._creation_failed(vid):
                self._backend(name).delete(vid)
        except Exception as exc:
            self._fail_volume(vid, states.DELETING, states.ERROR_DELETING, exc)
            return
        now = utcnow()
        if self.db.run(lambda s: volumes.transition(s, vid, (states.DELETING,), states.DELETED,
                                                    deleted=True, deleted_at=now)):
            log.info("volume %s: deleted", vid)
            self.prune_images(name)

    def prune_images(self, name: str | None) -> list[str]:
        """Remove the backend's cached image bases no volume needs any more (after a
        volume is deleted). The database says which images volumes not yet deleted were
        made from (those in `creating` included: their clone may not exist yet); the
        backend itself never removes a base that still backs a volume or a snapshot."""
        backend = self.backends.get(name or "")
        prune = getattr(backend, "prune_image_cache", None)
        if prune is None:
            return []
        with self.db.reader() as s:
            keep = {i for i in s.scalars(select(Volume.image_id).where(
                Volume.deleted.is_(False), Volume.backend == name,
                Volume.image_id.is_not(None))) if i}
        try:
            removed: list[str] = prune(keep)
        except Exception as exc:  # a cache left behind costs space, nothing else
            log.warning("volume backend %s: pruning its image cache failed: %s", name, exc)
            return []
        if removed:
            log.info("volume backend %s: removed the cached bases of images %s", name,
                     ", ".join(removed))
        return removed

    def _creation_failed(self, volume_id: str) -> bool:
        """A volume whose creation failed (its last error says so) holds no data: deleting
        it needs no backend (one that could not be loaded, say)."""
        with self.db.reader() as s:
            volume = s.get(Volume, volume_id)
            return volume is not None and (volume.error or "").startswith(
                f"{states.CREATING} ")

    def extend_volume(self, ctx: RequestContext, payload: ExtendVolume) -> None:
        with self.db.reader() as s:
            volume = s.get(Volume, payload.volume_id)
            if volume is None or volume.deleted or volume.status != states.EXTENDING:
                return
            vid, name = volume.id, volume.backend
        try:
            self._backend(name).extend(vid, payload.new_size)
        except Exception as exc:
            self._fail_volume(vid, states.EXTENDING, states.ERROR_EXTENDING, exc)
            return
        self.db.run(lambda s: volumes.transition(s, vid, (states.EXTENDING,), states.AVAILABLE,
                                                 size=payload.new_size))

    # ---- upload to image (os-volume_upload_image)
    def upload_image(self, ctx: RequestContext, payload: UploadImage) -> None:
        from cirrus.storage import image_data
        from cirrus.storage.filestore import FileStore, store_file

        with self.db.reader() as s:
            volume = s.get(Volume, payload.volume_id)
            image = s.get(Image, payload.image_id)
            if volume is None or volume.deleted or volume.status != states.UPLOADING:
                return
            if image is None or image.status != "queued":
                return  # a duplicate, or the image was deleted: the sweeper ends the volume
            vid, name = volume.id, volume.backend
        if not self.db.run(functools.partial(_image_to_saving, image_id=payload.image_id)):
            return
        store = FileStore(self.settings.effective_image_dir)
        try:
            backend = self._backend(name)
            with self._alive(vid, states.UPLOADING):
                stored = store_file(store, payload.image_id, lambda path: backend.copy_to_file(
                    vid, path, payload.disk_format))
        except Exception as exc:
            self._fail_upload(vid, payload.image_id, exc)
            return
        if image_data.finish_upload(self.db, payload.image_id, stored) is None:
            store.delete(stored.location)  # the image was deleted meanwhile
            log.warning("volume %s: image %s was deleted during the upload", vid,
                        payload.image_id)
        else:
            log.info("volume %s: uploaded to image %s (%d bytes, %s)", vid, payload.image_id,
                     stored.size, payload.disk_format)
        self.db.run(functools.partial(_end_upload, volume_id=vid, message=None))

    def _fail_upload(self, volume_id: str, image_id: str, exc: Exception) -> None:
        message = f"{states.UPLOADING} to image {image_id} failed: {type(exc).__name__}: {exc}"
        log.error("volume %s: %s", volume_id, message)
        self.db.run(functools.partial(_delete_upload_image, image_id=image_id))
        self.db.run(functools.partial(_end_upload, volume_id=volume_id,
                                      message=message[:2000]))

    # ---- revert to snapshot (3.40)
    def revert_volume(self, ctx: RequestContext, payload: RevertVolume) -> None:
        with self.db.reader() as s:
            volume = s.get(Volume, payload.volume_id)
            snap = s.get(VolumeSnapshot, payload.snapshot_id)
            if volume is None or volume.deleted or volume.status != states.REVERTING:
                return
            if snap is None or snap.deleted or snap.volume_id != volume.id:
                return
            vid, sid, name = volume.id, snap.id, volume.backend
        try:
            backend = self._backend(name)
            revert = getattr(backend, "revert_to_snapshot", None)
            if revert is None:  # nothing was touched: the volume is as it was
                raise NotImplementedError(f"volume backend {name} cannot revert to a snapshot")
            with self._alive(vid, states.REVERTING):
                revert(vid, sid)
        except NotImplementedError as exc:
            self._fail_volume(vid, states.REVERTING, states.AVAILABLE, exc)
            self._restored(sid)
            return
        except Exception as exc:  # the volume's data may be half-written
            self._fail_volume(vid, states.REVERTING, states.ERROR, exc)
            self._restored(sid)
            return
        self._restored(sid)
        if self.db.run(lambda s: volumes.transition(s, vid, (states.REVERTING,),
                                                    states.AVAILABLE, error=None)):
            log.info("volume %s: reverted to snapshot %s", vid, sid)

    @contextlib.contextmanager
    def _alive(self, volume_id: str, status: str) -> Iterator[None]:
        """While a long copy runs (an upload of a large volume, an rbd rollback), keep the
        volume's status_changed_at fresh, so the sweeper ends only the work of a role that
        died, not work still going after volume_task_timeout."""
        done = threading.Event()
        every = max(1.0, min(60.0, self.settings.volume_task_timeout / 4))

        def beat() -> None:
            while not done.wait(every):
                try:
                    self.db.run(lambda s: s.execute(
                        update(Volume).where(Volume.id == volume_id, Volume.status == status)
                        .values(status_changed_at=utcnow())
                        .execution_options(synchronize_session=False)))
                except Exception as exc:  # the sweeper may end it: the copy goes on
                    log.warning("volume %s: cannot mark %s as alive: %s", volume_id, status,
                                exc)

        thread = threading.Thread(target=beat, name=f"alive-{volume_id[:8]}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join(timeout=5)

    def _restored(self, snapshot_id: str) -> None:
        self.db.run(lambda s: snapshots.transition(s, snapshot_id, (states.RESTORING,),
                                                   states.AVAILABLE))

    # ---- attachments (issue 15)
    def initialize_connection(self, ctx: RequestContext,
                              payload: rpcapi.InitializeConnection) -> dict:
        with self.db.reader() as s:
            volume = s.get(Volume, payload.volume_id)
            if volume is None or volume.deleted:
                raise BackendError(f"volume {payload.volume_id} does not exist")
            name = volume.backend
        conn = self._backend(name).connection(payload.volume_id)
        return {"driver_volume_type": conn.driver_volume_type, "data": dict(conn.data)}

    def extend_attached(self, ctx: RequestContext, payload: rpcapi.ExtendAttached) -> dict:
        """Online extend: rbd (and the fake) resize here; a file volume is grown by QEMU
        (driver.extend_volume), which holds its lock, so the backend leaves it alone."""
        with self.db.reader() as s:
            volume = s.get(Volume, payload.volume_id)
            if volume is None or volume.deleted:
                raise BackendError(f"volume {payload.volume_id} does not exist")
            name = volume.backend
        backend = self._backend(name)
        if backend.kind == "file":
            return {"resized": False}
        backend.extend(payload.volume_id, payload.new_size)
        return {"resized": True}

    # ---- snapshots
    def _snapshot_and_backend(self, snapshot_id: str,
                              status: str) -> tuple[str, str, str | None] | None:
        with self.db.reader() as s:
            snap = s.get(VolumeSnapshot, snapshot_id)
            if snap is None or snap.deleted or snap.status != status:
                return None
            volume = s.get(Volume, snap.volume_id)
            return snap.id, snap.volume_id, volume.backend if volume else None

    def create_snapshot(self, ctx: RequestContext, payload: CreateSnapshot) -> None:
        found = self._snapshot_and_backend(payload.snapshot_id, states.CREATING)
        if found is None:
            return
        sid, vid, name = found
        try:
            self._backend(name).create_snapshot(vid, sid)
        except Exception as exc:
            self._fail_snapshot(sid, states.CREATING, states.ERROR, exc)
            return
        self.db.run(lambda s: snapshots.transition(s, sid, (states.CREATING,), states.AVAILABLE,
                                                   progress="100%"))

    def delete_snapshot(self, ctx: RequestContext, payload: DeleteSnapshot) -> None:
        found = self._snapshot_and_backend(payload.snapshot_id, states.DELETING)
        if found is None:
            return
        sid, vid, name = found
        try:
            self._backend(name).delete_snapshot(vid, sid)
        except Exception as exc:
            self._fail_snapshot(sid, states.DELETING, states.ERROR_DELETING, exc)
            return
        now = utcnow()
        self.db.run(lambda s: snapshots.transition(s, sid, (states.DELETING,), states.DELETED,
                                                   deleted=True, deleted_at=now))

    def _fail_snapshot(self, snapshot_id: str, status: str, to: str, exc: Exception) -> None:
        message = f"{type(exc).__name__}: {exc}"
        log.error("snapshot %s: %s failed: %s", snapshot_id, status, message)
        self.db.run(lambda s: snapshots.transition(s, snapshot_id, (status,), to,
                                                   error=message[:2000]))

    # ---- the sweeper: nothing stays creating, deleting or extending
    def sweep(self) -> int:
        """Send again what made no progress for `task_redrive_after` seconds (its message
        was lost, or the role that had it died), and end in an error state what is still
        transitional after `volume_task_timeout`. Returns how many it ended."""
        now = utcnow()
        timeout_cutoff = now - dt.timedelta(seconds=self.settings.volume_task_timeout)
        redrive_cutoff = now - dt.timedelta(seconds=self.settings.task_redrive_after)
        with self.db.reader() as s:
            stuck_volumes = s.execute(
                select(Volume.id, Volume.status, Volume.status_changed_at)
                .where(Volume.deleted.is_(False),
                       Volume.status.in_((*states.VOLUME_TIMEOUT_STATE,
                                          *states.UPLOAD_TIMEOUT_STATES)),
                       Volume.status_changed_at < redrive_cutoff)).all()
            stuck_snaps = s.execute(
                select(VolumeSnapshot.id, VolumeSnapshot.status,
                       VolumeSnapshot.status_changed_at)
                .where(VolumeSnapshot.deleted.is_(False),
                       VolumeSnapshot.status.in_(tuple(states.SNAPSHOT_TIMEOUT_STATE)),
                       VolumeSnapshot.status_changed_at < redrive_cutoff)).all()
        ctx = RequestContext.admin()
        ended = 0
        for vid, status, changed in stuck_volumes:
            if status in states.UPLOAD_TIMEOUT_STATES:
                if changed is not None and changed < timeout_cutoff:
                    message = (f"{status} timed out after "
                               f"{self.settings.volume_task_timeout:g} s (volume_task_timeout)")
                    if self.db.run(functools.partial(_end_upload, volume_id=vid,
                                                     message=message)):
                        log.warning("volume %s: %s", vid, message)
                        ended += 1
                continue
            if changed is not None and changed < timeout_cutoff:
                to = states.VOLUME_TIMEOUT_STATE[status]
                message = (f"{status} timed out after {self.settings.volume_task_timeout:g} s "
                           "(volume_task_timeout)")
                if self.db.run(functools.partial(_end_volume, volume_id=vid, status=status,
                                                 to=to, message=message)):
                    log.warning("volume %s: %s", vid, message)
                    ended += 1
            elif status in states.REDRIVEN and self._due(vid, status):
                log.warning("volume %s: %s has made no progress since %s; sending it again",
                            vid, status, changed)
                if status == states.CREATING:
                    self.api.create_volume(ctx, vid)
                else:
                    self.api.delete_volume(ctx, vid, self._deleting_snapshots(vid))
        for sid, status, changed in stuck_snaps:
            if changed is not None and changed < timeout_cutoff:
                to = states.SNAPSHOT_TIMEOUT_STATE[status]
                message = (f"{status} timed out after {self.settings.volume_task_timeout:g} s "
                           "(volume_task_timeout)")
                if self.db.run(functools.partial(_end_snapshot, snapshot_id=sid, status=status,
                                                 to=to, message=message)):
                    log.warning("snapshot %s: %s", sid, message)
                    ended += 1
            elif status in states.REDRIVEN and self._due(sid, status):
                if status == states.CREATING:
                    self.api.create_snapshot(ctx, sid)
                else:
                    self.api.delete_snapshot(ctx, sid)
        return ended

    def _deleting_snapshots(self, volume_id: str) -> tuple[str, ...]:
        with self.db.reader() as s:
            return tuple(s.scalars(select(VolumeSnapshot.id).where(
                VolumeSnapshot.volume_id == volume_id, VolumeSnapshot.deleted.is_(False),
                VolumeSnapshot.status == states.DELETING)))

    def _due(self, record_id: str, status: str) -> bool:
        """Once per `task_redrive_after` per (record, status), in this process."""
        now = time.monotonic()
        key = (record_id, status)
        if now - self._redriven.get(key, -math.inf) < self.settings.task_redrive_after:
            return False
        self._redriven[key] = now
        if len(self._redriven) > MAX_REMEMBERED:
            self._redriven.clear()
        return True


def _end_volume(s: Session, volume_id: str, status: str, to: str, message: str) -> bool:
    return volumes.transition(s, volume_id, (status,), to, error=message)


def _end_upload(s: Session, volume_id: str, message: str | None) -> bool:
    """An upload is over (done, failed, timed out): the volume back to in-use or available."""
    volume = s.get(Volume, volume_id)
    if volume is None or volume.deleted or volume.status != states.UPLOADING:
        return False
    values = {"error": message} if message else {}
    return volumes.transition(s, volume_id, (states.UPLOADING,),
                              volume_images.after_upload(volume), **values)


def _image_to_saving(s: Session, image_id: str) -> bool:
    image = s.get(Image, image_id, with_for_update=True)
    if image is None or image.status != "queued":
        return False
    image.status = "saving"
    image.updated_at = utcnow()
    return True


def _delete_upload_image(s: Session, image_id: str) -> None:
    """A failed upload's image goes (Cinder deletes it): it never had data."""
    image = s.get(Image, image_id, with_for_update=True)
    if image is not None and image.status in ("queued", "saving") and not image.location:
        s.delete(image)


def _end_snapshot(s: Session, snapshot_id: str, status: str, to: str, message: str) -> bool:
    return snapshots.transition(s, snapshot_id, (status,), to, error=message)
