"""The image file store: one file per image under the image directory.

Uploads are written to a staging file and renamed into place only when complete, so a
reader never sees half an image and a failed upload leaves nothing behind. Locations are
`file://` URLs, as Glance's file store records them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlparse

from cirrus import files
from cirrus.errors import BadRequest

log = logging.getLogger(__name__)

HASH_ALGO = "sha512"
STAGING = ".staging"
READ_CHUNK = 1024 * 1024
QCOW2_MAGIC = b"QFI\xfb"
QCOW2_HEADER = 32  # magic, version, backing file offset and size, cluster bits, then the size
MAX_VIRTUAL_SIZE = 2**63 - 1  # what a signed 64-bit size (the database's, QEMU's) holds


class InvalidImageData(BadRequest):
    """The uploaded data contradicts itself (a qcow2 header no disk could have)."""


@dataclass(frozen=True)
class StoredData:
    """What a finished upload left in the store."""

    location: str
    size: int
    checksum: str  # md5 hex, Glance's `checksum`
    os_hash_algo: str
    os_hash_value: str
    qcow2_virtual_size: int | None = None  # from the header, when the data is qcow2


class ImageWriter:
    """Receives an image's bytes chunk by chunk, hashing as it writes."""

    def __init__(self, staging_path: Path, final_path: Path) -> None:
        self._staging = staging_path
        self._final = final_path
        # Created 0600 (0640 with file_group) whatever the umask: private images stay private.
        self._fh: BinaryIO | None = os.fdopen(files.create_private(staging_path, exclusive=True),
                                              "wb")
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._hash = hashlib.new(HASH_ALGO)
        self.size = 0
        self._head = b""  # the first bytes, enough for a qcow2 header

    def write(self, chunk: bytes) -> None:
        if self._fh is None:
            raise ValueError("the writer is closed")
        if len(self._head) < QCOW2_HEADER:
            self._head += chunk[: QCOW2_HEADER - len(self._head)]
            if len(self._head) == QCOW2_HEADER:
                qcow2_virtual_size(self._head)  # refuses an impossible header at once
        self._fh.write(chunk)
        self._md5.update(chunk)
        self._hash.update(chunk)
        self.size += len(chunk)

    def commit(self) -> StoredData:
        """Flush to disk and move the file into place."""
        if self._fh is None:
            raise ValueError("the writer is closed")
        fh, self._fh = self._fh, None
        try:
            fh.flush()
            os.fsync(fh.fileno())
        finally:
            fh.close()
        os.replace(self._staging, self._final)
        return StoredData(location=self._final.as_uri(), size=self.size,
                          checksum=self._md5.hexdigest(), os_hash_algo=HASH_ALGO,
                          os_hash_value=self._hash.hexdigest(),
                          qcow2_virtual_size=qcow2_virtual_size(self._head))

    def abort(self) -> None:
        """Throw away what was written; safe to call more than once."""
        if self._fh is not None:
            fh, self._fh = self._fh, None
            fh.close()
        self._staging.unlink(missing_ok=True)


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def _ensure_dirs(self) -> Path:
        staging = self.root / STAGING
        files.make_dirs(staging)
        return staging

    def writer(self, image_id: str) -> ImageWriter:
        """A writer for the data of `image_id`; the file appears only on commit."""
        staging = self._ensure_dirs()
        name = _safe_name(image_id)
        return ImageWriter(staging / f"{name}.{secrets.token_hex(8)}", self.root / name)

    def path_of(self, location: str) -> Path:
        """The file behind a location; ValueError if it does not point into this store."""
        parsed = urlparse(location)
        if parsed.scheme != "file":
            raise ValueError(f"not a file store location: {location}")
        path = Path(unquote(parsed.path)).resolve()
        if path.parent != self.root:
            raise ValueError(f"location outside the image store: {location}")
        return path

    def open(self, location: str) -> BinaryIO:
        """Open the data for reading; FileNotFoundError if it is gone."""
        return open(self.path_of(location), "rb")

    def delete(self, location: str | None) -> None:
        if not location:
            return
        try:
            self.path_of(location).unlink(missing_ok=True)
        except ValueError:
            log.warning("not deleting image data at %s: outside the store", location)

    def clean_staging(self, older_than: float = 0.0) -> int:
        """Remove staging files left by interrupted uploads; returns how many went."""
        staging = self.root / STAGING
        if not staging.is_dir():
            return 0
        cutoff = time.time() - older_than
        removed = 0
        for path in staging.iterdir():
            try:
                if path.stat().st_mtime <= cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed


def qcow2_virtual_size(head: bytes) -> int | None:
    """The virtual disk size a qcow2 header announces, or None if `head` is not qcow2;
    InvalidImageData (400) if the size does not fit a signed 64-bit integer."""
    if len(head) < QCOW2_HEADER or not head.startswith(QCOW2_MAGIC):
        return None
    size = struct.unpack(">Q", head[24:32])[0]
    if size > MAX_VIRTUAL_SIZE:
        raise InvalidImageData(f"The qcow2 header declares a virtual size of {size} bytes; "
                               f"the largest possible is {MAX_VIRTUAL_SIZE}.")
    return size


def _safe_name(image_id: str) -> str:
    if not image_id or "/" in image_id or image_id.startswith(".") or "\\" in image_id:
        raise ValueError(f"bad image id for the file store: {image_id!r}")
    return image_id


def snapshot_staging_name(image_id: str) -> str:
    """A snapshot's staging file name; the agent and the conductor each resolve it under
    their own image_dir mount."""
    return f"{image_id}.snapshot"


def snapshot_staging_path(image_dir: Path, name: str) -> Path:
    """Where the agent writes and the conductor reads the snapshot `name`."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"bad snapshot staging name: {name!r}")
    return Path(image_dir) / STAGING / name


def store_file(store: FileStore, image_id: str, fill: Callable[[Path], object]) -> StoredData:
    """Data written to a path by someone else (a volume's `qemu-img convert`, for
    os-volume_upload_image): `fill(path)` writes a staging file, which is then hashed and
    renamed into place as the image's data. Nothing is left behind if `fill` fails."""
    staging = store._ensure_dirs()
    name = _safe_name(image_id)
    part = staging / f"{name}.{secrets.token_hex(8)}"
    final = store.root / name
    try:
        os.close(files.create_private(part, exclusive=True))
        fill(part)
        md5 = hashlib.md5(usedforsecurity=False)
        digest = hashlib.new(HASH_ALGO)
        size = 0
        with open(part, "rb") as fh:
            head = fh.read(QCOW2_HEADER)
            fh.seek(0)
            while chunk := fh.read(READ_CHUNK):
                md5.update(chunk)
                digest.update(chunk)
                size += len(chunk)
            os.fsync(fh.fileno())
        os.replace(part, final)
    finally:
        part.unlink(missing_ok=True)
    return StoredData(location=final.as_uri(), size=size, checksum=md5.hexdigest(),
                      os_hash_algo=HASH_ALGO, os_hash_value=digest.hexdigest(),
                      qcow2_virtual_size=qcow2_virtual_size(head))
