"""The per-host image cache and the qcow2 overlays root disks are.

An agent has no database: it reads an image's bytes from the image store directory
(`image_dir`, one file per image id, cirrus/storage/filestore.py), which agents must see
read-only at the same path as the API processes (a shared mount in production). The first
use of an image on a host copies it into the cache, `<cache dir>/<image id>`, verifying its
size and checksums (sha512 `os_hash_value` and/or md5 `checksum`) on the way; concurrent
first uses, threads or processes, wait on one `fcntl` lock per image, so the image is copied
once. The lock file is removed when the holder is done, so nothing is left behind.

Expiry (`ImageCache.expire`): every fetch touches the cached file's mtime under that lock, and
each expiry pass touches the files some instance uses (image_use.py says how that is known),
so a file's mtime is when it was last used. A file no instance uses whose mtime is older than
the maximum age is removed under the same lock, after checking "in use" again; a spawn records
its images in its instance directory before it fetches them, so it is seen either way.

Formats: `raw` (and `ami`, `aki`, `ari`) stay raw and `qcow2` stays qcow2 — a qcow2 overlay
backs onto either directly, so nothing is converted; a qcow2 image with a backing file or an
external data file is refused (it could point into the host). `vmdk`, `vdi`, `vhd`, `vhdx`
are converted to qcow2 once, into the cache, with `qemu-img convert`. Other formats (`iso`,
`ploop`, ...) are refused.

A root disk is `qemu-img create -f qcow2 -F <base format> -b <cached base> <disk> <size>`:
a few hundred KiB written whatever the image's size, grown to the flavor's root disk.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cirrus.virt.driver import SpawnError
from cirrus.virt.libvirt.qemuimg import check_qcow2, convert_to_qcow2, qemu_img, virtual_size

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
RAW_FORMATS = ("raw", "ami", "aki", "ari")
CONVERTED_FORMATS = {"vmdk": "vmdk", "vdi": "vdi", "vhd": "vpc", "vhdx": "vhdx"}  # -> qemu-img
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")
LEFTOVER_AGE = 3600.0  # seconds after which a part or lock file is a crashed holder's leftover
PART_FILE = re.compile(r"^\.(?P<id>.+)\.part\.[0-9a-f]+(\.qcow2)?$")
LOCK_FILE = re.compile(r"^\.(?P<id>.+)\.lock$")


@dataclass(frozen=True)
class ImageRef:
    """What the driver fetches and checks of an image (from `InstanceSpec.image`)."""

    id: str
    disk_format: str = "raw"
    size: int | None = None
    checksum: str | None = None  # md5 hex (Glance's `checksum`)
    os_hash_algo: str | None = None  # "sha512"
    os_hash_value: str | None = None

    @classmethod
    def from_dict(cls, data: dict) -> ImageRef:
        return cls(id=data["id"], disk_format=(data.get("disk_format") or "raw").lower(),
                   size=data.get("size"), checksum=data.get("checksum"),
                   os_hash_algo=data.get("os_hash_algo"), os_hash_value=data.get("os_hash_value"))


@dataclass(frozen=True)
class CachedImage:
    path: Path
    fmt: str  # "raw" or "qcow2": what an overlay's -F says
    virtual_size: int  # bytes the guest sees


@dataclass
class CacheExpiry:
    """What one expiry pass did: image id -> bytes freed, and what it kept."""

    removed: dict[str, int] = field(default_factory=dict)
    leftovers: dict[str, int] = field(default_factory=dict)  # part/lock file name -> bytes
    in_use: list[str] = field(default_factory=list)
    recently_used: list[str] = field(default_factory=list)

    @property
    def bytes_freed(self) -> int:
        return sum(self.removed.values()) + sum(self.leftovers.values())


def cached_format(disk_format: str) -> str:
    """The format of the cached copy of an image of `disk_format`; SpawnError if refused."""
    if disk_format in RAW_FORMATS:
        return "raw"
    if disk_format == "qcow2" or disk_format in CONVERTED_FORMATS:
        return "qcow2"
    raise SpawnError(f"disk_format {disk_format!r} cannot be a root disk here (raw, qcow2, "
                     f"{', '.join(CONVERTED_FORMATS)} can)")


class ImageCache:
    def __init__(self, store_dir: Path, cache_dir: Path) -> None:
        self.store_dir = Path(store_dir)
        self.cache_dir = Path(cache_dir)

    def path_of(self, image_id: str) -> Path:
        if not SAFE_ID.match(image_id):
            raise SpawnError(f"bad image id {image_id!r}")
        return self.cache_dir / image_id

    def fetch(self, image: ImageRef) -> CachedImage:
        """The cached copy of `image`, copying (and converting) it first if this host has
        none. Safe to call from many threads and processes at once."""
        fmt = cached_format(image.disk_format)
        path = self.path_of(image.id)
        _make_dir(self.cache_dir)
        # Always under the lock: expiry removes under it, so a file seen here is not removed
        # before the touch below tells expiry it was just used.
        with file_lock(self._lock_path(image.id)):
            if path.exists():
                os.utime(path)
            else:
                self._download(image, path)
            return CachedImage(path=path, fmt=fmt, virtual_size=virtual_size(path, fmt))

    def _lock_path(self, image_id: str) -> Path:
        return self.cache_dir / f".{image_id}.lock"

    def expire(self, max_age: float, in_use: Callable[[], set[str]]) -> CacheExpiry:
        """Remove the cached images that `in_use()` does not name and that were last used
        more than `max_age` seconds ago, and part/lock files older than LEFTOVER_AGE that no
        one holds. `max_age` <= 0 disables it: nothing is removed. Never waits for a lock:
        an image whose lock is held is being fetched, so it is in use."""
        report = CacheExpiry()
        if max_age <= 0 or not self.cache_dir.is_dir():
            return report
        used = in_use()
        leftover_ids = set()
        for entry in sorted(self.cache_dir.iterdir()):
            name = entry.name
            if name.startswith("."):
                match = PART_FILE.match(name) or LOCK_FILE.match(name)
                if match and _age(entry) > LEFTOVER_AGE:
                    leftover_ids.add(match["id"])
            elif SAFE_ID.match(name) and entry.is_file():
                if name in used:
                    report.in_use.append(name)
                    with contextlib.suppress(FileNotFoundError):
                        os.utime(entry)  # "last used" is now: the age counts from here
                elif _age(entry) < max_age:
                    report.recently_used.append(name)
                else:
                    self._remove_unused(name, max_age, in_use, report)
        for image_id in sorted(leftover_ids):
            self._remove_leftovers(image_id, report)
        self._log_expiry(report, max_age)
        return report

    def _remove_unused(self, image_id: str, max_age: float, in_use: Callable[[], set[str]],
                       report: CacheExpiry) -> None:
        path = self.cache_dir / image_id
        with file_lock(self._lock_path(image_id), wait=False) as held:
            if not held:
                report.in_use.append(image_id)  # a fetch holds it
                return
            # Checked again under the lock: a fetch or a new instance may have come since.
            try:
                st = path.stat()
            except FileNotFoundError:
                return
            if time.time() - st.st_mtime < max_age:
                report.recently_used.append(image_id)
                return
            if image_id in in_use():
                report.in_use.append(image_id)
                return
            path.unlink()
        report.removed[image_id] = _allocated(st)
        log.info("image cache: removed image %s, unused for %.0f s, %d bytes freed", image_id,
                 time.time() - st.st_mtime, report.removed[image_id],
                 extra={"fields": {"image_id": image_id, "bytes_freed": report.removed[image_id],
                                   "cache_dir": str(self.cache_dir)}})

    def _remove_leftovers(self, image_id: str, report: CacheExpiry) -> None:
        """Part files of `image_id` older than LEFTOVER_AGE, and its stale lock file (taking
        the lock and releasing it removes it), if no one holds the lock."""
        lock = self._lock_path(image_id)
        stale_lock = lock.exists() and _age(lock) > LEFTOVER_AGE
        with file_lock(lock, wait=False) as held:
            if not held:
                return
            for part in self.cache_dir.iterdir():
                match = PART_FILE.match(part.name)
                if match and match["id"] == image_id and _age(part) > LEFTOVER_AGE:
                    with contextlib.suppress(FileNotFoundError):
                        report.leftovers[part.name] = _allocated(part.stat())
                        part.unlink()
        if stale_lock:
            report.leftovers[lock.name] = 0

    def _log_expiry(self, report: CacheExpiry, max_age: float) -> None:
        log.info("image cache %s: removed %d unused images and %d leftover files, %d bytes "
                 "freed; kept %d in use, %d used within %.0f s", self.cache_dir,
                 len(report.removed), len(report.leftovers), report.bytes_freed,
                 len(report.in_use), len(report.recently_used), max_age,
                 extra={"fields": {"cache_dir": str(self.cache_dir),
                                   "removed_images": sorted(report.removed),
                                   "removed_leftovers": sorted(report.leftovers),
                                   "bytes_freed": report.bytes_freed,
                                   "kept_in_use": len(report.in_use),
                                   "kept_recently_used": len(report.recently_used)}})

    def _download(self, image: ImageRef, path: Path) -> None:
        source = self.store_dir / image.id
        part = path.with_name(f".{image.id}.part.{secrets.token_hex(4)}")
        try:
            copy_verified(source, part, image)
            if image.disk_format == "qcow2":
                check_qcow2(part)
            elif image.disk_format in CONVERTED_FORMATS:
                part = convert_to_qcow2(part, CONVERTED_FORMATS[image.disk_format])
            # Private: libvirt gives it to QEMU's user while a domain uses it (access.py).
            part.chmod(0o600)
            os.replace(part, path)
        finally:
            part.unlink(missing_ok=True)
        log.info("cached image %s (%s) at %s", image.id, image.disk_format, path)


def copy_verified(source: Path, target: Path, image: ImageRef) -> None:
    """Copy `source` to `target` (a new file), checking size and checksums; SpawnError, and
    nothing at `target`, if anything disagrees."""
    hashes = _expected_hashes(image)
    try:
        src = open(source, "rb")
    except FileNotFoundError:
        raise SpawnError(
            f"image {image.id}: no data at {source}; agents read images from the image "
            "store directory (image_dir), which must be shared with the API hosts") from None
    size = 0
    with src, open(target, "xb") as dst:
        while chunk := src.read(CHUNK):
            dst.write(chunk)
            size += len(chunk)
            for digest, _ in hashes.values():
                digest.update(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    problems = [f"{name} is {digest.hexdigest()}, expected {want}"
                for name, (digest, want) in hashes.items() if digest.hexdigest() != want.lower()]
    if image.size is not None and size != image.size:
        problems.append(f"size is {size}, expected {image.size}")
    if problems:
        target.unlink(missing_ok=True)
        raise SpawnError(f"image {image.id} failed verification ({'; '.join(problems)}); "
                         "refusing to boot from it")


def _expected_hashes(image: ImageRef) -> dict[str, tuple]:
    hashes: dict[str, tuple] = {}
    if image.os_hash_value:
        algo = (image.os_hash_algo or "sha512").lower()
        if algo not in hashlib.algorithms_guaranteed:
            raise SpawnError(f"image {image.id}: unknown os_hash_algo {algo!r}")
        hashes[algo] = (hashlib.new(algo), image.os_hash_value)
    if image.checksum:
        hashes["md5"] = (hashlib.md5(usedforsecurity=False), image.checksum)
    if not hashes:
        raise SpawnError(f"image {image.id} has no checksum to verify it with")
    return hashes


def create_overlay(base: CachedImage, disk: Path, size_bytes: int | None) -> None:
    """A qcow2 disk backed by `base`, `size_bytes` big (None: the base's size). Refuses a
    size smaller than the image: the guest's filesystem would be cut."""
    if size_bytes is not None and size_bytes < base.virtual_size:
        raise SpawnError(f"the flavor's root disk ({size_bytes} bytes) is smaller than the "
                         f"image ({base.virtual_size} bytes)")
    args = ["create", "-q", "-f", "qcow2", "-F", base.fmt, "-b", str(base.path.resolve()),
            str(disk)]
    if size_bytes is not None:
        args.append(str(size_bytes))
    qemu_img(*args)


@contextlib.contextmanager
def file_lock(path: Path, wait: bool = True) -> Iterator[bool]:
    """An exclusive lock on `path` between threads and processes; the file is removed on
    release. The holder re-checks that the file it locked is still the one at `path`, so
    removing it cannot let two holders in at once. Yields True once held; with `wait=False`,
    yields False at once (holding nothing) if another holder has it."""
    flags = fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB
    while True:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, flags)
            if _same_file(fd, path):
                break
        except BlockingIOError:
            os.close(fd)
            fd = -1
            break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # removed by the previous holder between open and flock: again
    if fd < 0:
        yield False
        return
    try:
        yield True
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return False
        raise
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def _age(path: Path) -> float:
    """Seconds since `path` was last modified (infinite if it is gone)."""
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")


def _allocated(st: os.stat_result) -> int:
    """Bytes a file really takes on disk: a raw image is often sparse."""
    return st.st_blocks * 512


def _make_dir(path: Path) -> None:
    """The cache directory, private when made here; the libvirt driver opens it to QEMU's
    group for traversal only (access.py) before it fetches."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
