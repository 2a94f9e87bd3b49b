"""The `file` volume backend: qcow2 files in a directory, the embedded default.

Spec: "file" (the directory is <data_dir>/volumes) or "file:DIRECTORY" (or "file:dir=DIRECTORY").
Layout of the directory (0700; every file 0600):

  volume-<id>.qcow2      a volume
  snapshot-<id>.qcow2    a snapshot: the volume's own clusters at that moment, backed by the
                         file the volume was backed by (so it is small and self-contained)
  images/image-<id>.raw  an image's data, once per image, the base of every volume made
  images/image-<id>.qcow2  from it: a hard link to the image store's file when both are on
                         one filesystem and the image is raw or qcow2 (nothing copied: the
                         same time for a 10 MiB and a 1 GiB image), else a copy converted to
                         qcow2 with `qemu-img convert` (vmdk, vdi, vhd, vhdx, or another
                         filesystem). Kept while volumes need them.

Backing chains (every backing path absolute, every backing format written):
  create_from_image     volume -> image base (a qcow2 overlay: a few hundred KiB)
  create_snapshot       snapshot = `qemu-img convert -B <the volume's backing>` of the
                        volume: a copy of the volume's own clusters only; the volume file
                        itself is never renamed or rewritten, so an attached guest keeps it
  create_from_snapshot  volume -> snapshot
  create_from_volume    a copy the same way as a snapshot (backed by what the source is
                        backed by): no volume is ever backed by another volume, so deleting
                        one never breaks another
  revert_to_snapshot    the volume file is replaced (renamed over) by a copy of the
                        snapshot's own clusters backed by what the snapshot is backed by:
                        the volume's data since the snapshot is gone, the snapshot stays
  delete_snapshot       the files backed by the snapshot are rebased (`qemu-img rebase`,
                        the safe mode: the snapshot's data they need is copied into them)
                        onto the snapshot's own backing file, then the snapshot goes
Image bases are removed by `prune_image_cache(keep)` (the volume role calls it after each
volume delete): a base goes when its image id is not in `keep` (the images of the volumes
the database still has) and no volume or snapshot file in the directory is backed by it
(read from their qcow2 headers). A volume being made from an image holds the image's
`images/.image-<id>.use` lock from finding the base to writing its overlay, and the prune
takes it before removing that base, so the two never cross.
Files are made under a temporary name and renamed into place, so a retried operation finds a
whole file or none. Operations that change chains hold an flock on <directory>/.lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

from cirrus.config import Settings
from cirrus.storage.volumes.backend import (
    BackendError,
    BackendUnavailable,
    Capacity,
    Connection,
    ImageSource,
)
from cirrus.storage.volumes.backends import qemu_img

GiB = 1024**3
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
RAW_OR_QCOW2 = {"raw": "raw", "ami": "raw", "aki": "raw", "ari": "raw", "qcow2": "qcow2"}


def _check_id(what: str, value: str) -> str:
    if not SAFE_ID.match(value):
        raise BackendError(f"{what} {value!r} is not a valid id (letters, digits, - and _)")
    return value


class FileBackend:
    kind = "file"

    def __init__(self, name: str, directory: Path) -> None:
        self.name = name
        self.directory = Path(directory).resolve()

    @classmethod
    def from_spec(cls, name: str, options: str, settings: Settings) -> FileBackend:
        options = options.strip()
        if options.startswith("dir="):
            options = options[4:]
        elif "=" in options:
            raise BackendError(
                f"volume backend {name!r}: file options are a directory (file:/srv/volumes) "
                f"or dir=DIRECTORY, not {options!r}")
        directory = Path(options) if options else Path(settings.data_dir) / "volumes"
        return cls(name, directory)

    # -- paths -----------------------------------------------------------------------------

    def volume_path(self, volume_id: str) -> Path:
        return self.directory / f"volume-{_check_id('volume id', volume_id)}.qcow2"

    def snapshot_path(self, snapshot_id: str) -> Path:
        return self.directory / f"snapshot-{_check_id('snapshot id', snapshot_id)}.qcow2"

    def _ready(self) -> Path:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            (self.directory / "images").mkdir(mode=0o700, exist_ok=True)
        except OSError as exc:
            raise BackendUnavailable(
                f"volume backend {self.name}: cannot use {self.directory}: {exc.strerror}") from None
        return self.directory

    @contextlib.contextmanager
    def _locked(self, path: Path | None = None) -> Iterator[None]:
        lock = path or (self._ready() / ".lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _new_file(self, final: Path) -> Iterator[Path]:
        """A temporary name beside `final`, renamed to it (0600) when the block succeeds."""
        part = final.with_name(f".{final.name}.part.{secrets.token_hex(4)}")
        try:
            yield part
            os.chmod(part, 0o600)
            os.rename(part, final)
        finally:
            part.unlink(missing_ok=True)

    def _need(self, path: Path, what: str) -> Path:
        if not path.exists():
            raise BackendError(f"volume backend {self.name}: no {what} file {path}")
        return path

    @staticmethod
    def _backing(path: Path) -> tuple[str, str] | None:
        """(backing file, its format) of one of our qcow2 files, or None."""
        data = qemu_img.info(path, "qcow2")
        name = data.get("full-backing-filename") or data.get("backing-filename")
        if not name:
            return None
        return name, data.get("backing-filename-format") or "raw"

    def _virtual_size(self, path: Path, fmt: str = "qcow2") -> int:
        return int(qemu_img.info(path, fmt)["virtual-size"])

    def _copy(self, source: Path, dest: Path, size_gb: int) -> None:
        """dest = source's own clusters, backed by what source is backed by (or a full copy
        when source has no backing file), grown to size_gb."""
        backing = self._backing(source)
        with self._new_file(dest) as part:
            args = ["convert", "-U", "-f", "qcow2", "-O", "qcow2"]
            if backing:
                args += ["-B", backing[0], "-F", backing[1]]
            qemu_img.run(*args, str(source), str(part))
            if size_gb and size_gb * GiB > self._virtual_size(part):
                qemu_img.run("resize", "-f", "qcow2", str(part), str(size_gb * GiB))

    def _overlay(self, dest: Path, backing: Path, backing_format: str, size_gb: int) -> None:
        wanted = size_gb * GiB
        have = self._virtual_size(backing, backing_format)
        if wanted < have:
            raise BackendError(
                f"a volume of {size_gb} GiB cannot hold its source of {have} bytes "
                f"({-(-have // GiB)} GiB or more needed)")
        with self._new_file(dest) as part:
            qemu_img.run("create", "-q", "-f", "qcow2", "-F", backing_format, "-b",
                         str(backing), str(part), str(wanted))

    # -- images ----------------------------------------------------------------------------

    def image_base(self, image: ImageSource) -> tuple[Path, str]:
        """The image's base file (made on first use, once, under a lock): (path, format)."""
        image_id = _check_id("image id", image.image_id)
        images = self._ready() / "images"
        for fmt in ("raw", "qcow2"):
            existing = images / f"image-{image_id}.{fmt}"
            if existing.exists():
                return existing, fmt
        qemu_fmt = qemu_img.qemu_format(image.disk_format)
        with self._locked(images / f".image-{image_id}.lock"):
            for fmt in ("raw", "qcow2"):
                existing = images / f"image-{image_id}.{fmt}"
                if existing.exists():
                    return existing, fmt
            if not image.path.exists():
                raise BackendError(f"image {image_id}: its data {image.path} is not on the "
                                   "volume host (image_dir must be shared with it)")
            found = qemu_img.info(image.path, qemu_fmt)
            if qemu_fmt == "qcow2" and (found.get("backing-filename") or found.get(
                    "format-specific", {}).get("data", {}).get("data-file")):
                raise BackendError(f"image {image_id}: a qcow2 image with a backing file or an "
                                   "external data file is refused")
            keep = RAW_OR_QCOW2.get(image.disk_format)
            if keep:
                base = images / f"image-{image_id}.{keep}"
                try:
                    os.link(image.path, base)
                    return base, keep
                except OSError as exc:
                    if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                        raise BackendError(f"image {image_id}: {exc}") from None
            base = images / f"image-{image_id}.qcow2"
            with self._new_file(base) as part:
                qemu_img.run("convert", "-f", qemu_fmt, "-O", "qcow2", str(image.path), str(part))
            return base, "qcow2"

    # -- the interface ---------------------------------------------------------------------

    def create_empty(self, volume_id: str, size_gb: int) -> None:
        path = self.volume_path(volume_id)
        self._ready()
        if path.exists():
            return
        with self._new_file(path) as part:
            qemu_img.run("create", "-q", "-f", "qcow2", str(part), str(size_gb * GiB))

    def create_from_image(self, volume_id: str, size_gb: int, image: ImageSource) -> None:
        path = self.volume_path(volume_id)
        self._ready()
        if path.exists():
            return
        with self._locked(self._use_lock(image.image_id)):
            base, fmt = self.image_base(image)
            self._overlay(path, base, fmt, size_gb)

    def _use_lock(self, image_id: str) -> Path:
        return self._ready() / "images" / f".image-{_check_id('image id', image_id)}.use"

    def prune_image_cache(self, keep: set[str]) -> list[str]:
        images = self.directory / "images"
        if not images.is_dir():
            return []
        removed: list[str] = []
        for base in sorted(images.glob("image-*")):
            found = re.match(r"^image-(.+)\.(raw|qcow2)$", base.name)
            if not found or found.group(1) in keep or not SAFE_ID.match(found.group(1)):
                continue
            image_id = found.group(1)
            with self._locked(self._use_lock(image_id)), self._locked():
                if str(base) in self._backing_files():
                    continue
                base.unlink(missing_ok=True)
                removed.append(image_id)
        return removed

    def _backing_files(self) -> set[str]:
        """The backing file of every volume and snapshot file in the directory."""
        found = set()
        for path in self.directory.glob("*-*.qcow2"):
            name = qemu_img.backing_file(path)
            if name:
                found.add(name)
        return found

    def revert_to_snapshot(self, volume_id: str, snapshot_id: str) -> None:
        path = self._need(self.volume_path(volume_id), "volume")
        with self._locked():
            snapshot = self._need(self.snapshot_path(snapshot_id), "snapshot")
            if self._virtual_size(snapshot) != self._virtual_size(path):
                raise BackendError(f"volume {volume_id} and snapshot {snapshot_id} differ in "
                                   "size: a revert needs them equal")
            self._copy(snapshot, path, 0)

    def create_from_volume(self, volume_id: str, size_gb: int, source_volume_id: str) -> None:
        path = self.volume_path(volume_id)
        if path.exists():
            return
        source = self._need(self.volume_path(source_volume_id), "source volume")
        with self._locked():
            if size_gb * GiB < self._virtual_size(source):
                raise BackendError(f"a volume of {size_gb} GiB is smaller than its source "
                                   f"volume {source_volume_id}")
            self._copy(source, path, size_gb)

    def create_from_snapshot(self, volume_id: str, size_gb: int, source_volume_id: str,
                             snapshot_id: str) -> None:
        path = self.volume_path(volume_id)
        if path.exists():
            return
        with self._locked():
            snapshot = self._need(self.snapshot_path(snapshot_id), "snapshot")
            self._overlay(path, snapshot, "qcow2", size_gb)

    def create_snapshot(self, volume_id: str, snapshot_id: str) -> None:
        path = self.snapshot_path(snapshot_id)
        if path.exists():
            return
        source = self._need(self.volume_path(volume_id), "volume")
        with self._locked():
            self._copy(source, path, 0)

    def delete_snapshot(self, volume_id: str, snapshot_id: str) -> None:
        path = self.snapshot_path(snapshot_id)
        with self._locked():
            if not path.exists():
                return
            below = self._backing(path)
            for dependent in self._backed_by(path):
                if below:
                    qemu_img.run("rebase", "-q", "-f", "qcow2", "-b", below[0], "-F", below[1],
                                 str(dependent))
                else:
                    qemu_img.run("rebase", "-q", "-f", "qcow2", "-b", "", str(dependent))
            path.unlink(missing_ok=True)

    def _backed_by(self, path: Path) -> list[Path]:
        """Our files whose backing file is `path` (read from their qcow2 headers)."""
        target = str(path)
        return sorted(p for p in self.directory.glob("*-*.qcow2")
                      if p != path and qemu_img.backing_file(p) == target)

    def delete(self, volume_id: str) -> None:
        path = self.volume_path(volume_id)
        with self._locked():
            dependents = self._backed_by(path)
            if dependents:  # never made by this backend; refuse rather than break them
                raise BackendError(
                    f"volume {volume_id} backs {', '.join(p.name for p in dependents)}")
            path.unlink(missing_ok=True)

    def extend(self, volume_id: str, new_size_gb: int) -> None:
        path = self._need(self.volume_path(volume_id), "volume")
        have = self._virtual_size(path)
        wanted = new_size_gb * GiB
        if wanted == have:
            return
        if wanted < have:
            raise BackendError(f"volume {volume_id} is {have} bytes: {new_size_gb} GiB would "
                               "shrink it")
        qemu_img.run("resize", "-f", "qcow2", str(path), str(wanted))

    def exists(self, volume_id: str) -> bool:
        return self.volume_path(volume_id).exists()

    def connection(self, volume_id: str) -> Connection:
        path = self._need(self.volume_path(volume_id), "volume")
        return Connection("file", {"path": str(path), "format": "qcow2"})

    def copy_to_file(self, volume_id: str, dest: Path, disk_format: str) -> int:
        path = self._need(self.volume_path(volume_id), "volume")
        fmt = qemu_img.qemu_format(disk_format)
        qemu_img.run("convert", "-U", "-f", "qcow2", "-O", fmt, str(path), str(dest))
        return dest.stat().st_size

    def capacity(self) -> Capacity:
        st = os.statvfs(self._ready())
        return Capacity(total_gb=st.f_blocks * st.f_frsize / GiB,
                        free_gb=st.f_bavail * st.f_frsize / GiB)
