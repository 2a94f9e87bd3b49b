"""The per-host image cache and the qcow2 overlays root disks are.

An agent has no database: it reads an image's bytes from the image store directory
(`image_dir`, one file per image id, cirrus/storage/filestore.py), which agents must see
read-only at the same path as the API processes (a shared mount in production). The first
use of an image on a host copies it into the cache, `<cache dir>/<image id>`, verifying its
size and checksums (sha512 `os_hash_value` and/or md5 `checksum`) on the way; concurrent
first uses, threads or processes, wait on one `fcntl` lock per image, so the image is copied
once. The lock file is removed when the holder is done, so nothing is left behind.

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
import json
import logging
import os
import re
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cirrus.storage.filestore import QCOW2_HEADER, qcow2_virtual_size
from cirrus.virt.driver import SpawnError

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
RAW_FORMATS = ("raw", "ami", "aki", "ari")
CONVERTED_FORMATS = {"vmdk": "vmdk", "vdi": "vdi", "vhd": "vpc", "vhdx": "vhdx"}  # -> qemu-img
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")
QEMU_IMG_TIMEOUT = 600.0


@dataclass(frozen=True)
class ImageRef:
    """What the conductor tells an agent about an image (`InstanceSpec.extra["image"]`)."""

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
        if not path.exists():
            _make_dir(self.cache_dir)
            with file_lock(self.cache_dir / f".{image.id}.lock"):
                if not path.exists():  # another holder may have made it meanwhile
                    self._download(image, path)
        return CachedImage(path=path, fmt=fmt, virtual_size=virtual_size(path, fmt))

    def _download(self, image: ImageRef, path: Path) -> None:
        source = self.store_dir / image.id
        part = path.with_name(f".{image.id}.part.{secrets.token_hex(4)}")
        try:
            copy_verified(source, part, image)
            if image.disk_format == "qcow2":
                check_qcow2(part)
            elif image.disk_format in CONVERTED_FORMATS:
                part = convert_to_qcow2(part, CONVERTED_FORMATS[image.disk_format])
            part.chmod(0o644)
            os.replace(part, path)
        finally:
            part.unlink(missing_ok=True)
        log.info("cached image %s (%s) at %s", image.id, image.disk_format, path)


def copy_verified(source: Path, target: Path, image: ImageRef) -> None:
    """Copy `source` to `target` (a new file), checking size and checksums; SpawnError, and
    nothing at `target`, if anything disagrees."""
    hashes = _expected_hashes(image)
    try:
        src = open(source, "rb")  # noqa: SIM115 - closed below
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


def qemu_img(*args: str) -> str:
    """Run qemu-img; SpawnError with its message if it fails."""
    try:
        done = subprocess.run(["qemu-img", *args], capture_output=True, text=True,
                              timeout=QEMU_IMG_TIMEOUT, check=False)
    except FileNotFoundError:
        raise SpawnError("qemu-img is not installed on this host (Debian: qemu-utils)") from None
    if done.returncode != 0:
        raise SpawnError(f"qemu-img {args[0]} failed: {done.stderr.strip()}")
    return done.stdout


def image_info(path: Path, fmt: str | None = None) -> dict:
    """`qemu-img info` as JSON (`--force-share`: the image may be in use)."""
    args = ["info", "--output=json", "--force-share"]
    if fmt:
        args += ["-f", fmt]
    return json.loads(qemu_img(*args, str(path)))


def check_qcow2(path: Path) -> None:
    """Refuse what claims to be qcow2 but is not, or reaches outside itself."""
    info = image_info(path)
    if info.get("format") != "qcow2":
        raise SpawnError(f"image declared qcow2 is {info.get('format')!r}")
    if info.get("backing-filename") or info.get("format-specific", {}).get("data", {}).get(
            "data-file"):
        raise SpawnError("a qcow2 image with a backing file or external data file is refused")


def convert_to_qcow2(path: Path, qemu_format: str) -> Path:
    """Convert `path` (of `qemu_format`) to qcow2 beside it; returns the new file and removes
    the old one."""
    out = path.with_name(path.name + ".qcow2")
    try:
        qemu_img("convert", "-f", qemu_format, "-O", "qcow2", str(path), str(out))
    except SpawnError:
        out.unlink(missing_ok=True)
        raise
    finally:
        path.unlink(missing_ok=True)
    return out


def virtual_size(path: Path, fmt: str) -> int:
    """What the guest sees: the file's size for raw, the header's size for qcow2."""
    if fmt == "raw":
        return path.stat().st_size
    with open(path, "rb") as fh:
        size = qcow2_virtual_size(fh.read(QCOW2_HEADER))
    if size is None:
        raise SpawnError(f"{path} is not qcow2")
    return size


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
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` between threads and processes; the file is removed on
    release. The holder re-checks that the file it locked is still the one at `path`, so
    removing it cannot let two holders in at once."""
    while True:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if _same_file(fd, path):
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # removed by the previous holder between open and flock: again
    try:
        yield
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


def _make_dir(path: Path) -> None:
    """A directory QEMU (another user, e.g. libvirt-qemu) can traverse."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o755)
