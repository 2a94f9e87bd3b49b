"""The interface every volume backend implements, and the plain data it takes and returns.

A backend holds volume and snapshot data (qcow2 files in a directory, Ceph RBD images, or
nothing: the fake); it never touches the database. The volume role calls it with ids and
sizes taken from the records; the compute side gets a `Connection` to hand the hypervisor.
Every operation is idempotent (a retried message does the same thing once) and raises
`BackendError` with a message that says what failed, where, and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


class BackendError(Exception):
    """A backend operation failed; the message is for the volume's fault and the log."""


class BackendUnavailable(BackendError):
    """The backend cannot be reached (Ceph down, directory missing): retry later."""


@dataclass(frozen=True)
class ImageSource:
    """An image's data on the machine the backend runs on (the image store's file)."""

    image_id: str
    path: Path
    disk_format: str  # "qcow2", "raw", ...: what `path` holds
    size: int  # bytes in `path`
    checksum: str = ""  # the image's os_hash_value, when known: a cache key


@dataclass(frozen=True)
class Connection:
    """How a hypervisor opens a volume: Cinder's `connection_info`.

    `driver_volume_type` "file": data = {"path": str, "format": "qcow2"|"raw"};
    "rbd": data = {"name": "pool/image", "hosts": [...], "ports": [...],
    "auth_username": str, "secret_uuid": str, "secret_type": "ceph", "conf": str}.
    """

    driver_volume_type: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Capacity:
    total_gb: float
    free_gb: float


@runtime_checkable
class VolumeBackend(Protocol):
    """One configured backend (a `volume_backends` entry). Sizes are whole GiB, as in Cinder."""

    name: str  # the operator's name for it: volume types name it as `volume_backend_name`
    kind: str  # "file", "rbd", "fake"

    def create_empty(self, volume_id: str, size_gb: int) -> None: ...

    def create_from_image(self, volume_id: str, size_gb: int, image: ImageSource) -> None:
        """A volume holding the image's data, grown to size_gb (copy-on-write where the
        backend can: a qcow2 backing file, an RBD clone of the image's cached snapshot)."""

    def create_from_volume(self, volume_id: str, size_gb: int, source_volume_id: str) -> None: ...

    def create_from_snapshot(self, volume_id: str, size_gb: int, source_volume_id: str,
                             snapshot_id: str) -> None: ...

    def create_snapshot(self, volume_id: str, snapshot_id: str) -> None: ...

    def delete_snapshot(self, volume_id: str, snapshot_id: str) -> None:
        """Idempotent; flattens the volumes cloned from it first if the backend needs to."""

    def delete(self, volume_id: str) -> None:
        """Idempotent: a volume that is not there is deleted."""

    def extend(self, volume_id: str, new_size_gb: int) -> None: ...

    def exists(self, volume_id: str) -> bool: ...

    def connection(self, volume_id: str) -> Connection: ...

    def copy_to_file(self, volume_id: str, dest: Path, disk_format: str) -> int:
        """Write the volume's data to dest as disk_format (upload to image); returns bytes."""

    def capacity(self) -> Capacity: ...

    def revert_to_snapshot(self, volume_id: str, snapshot_id: str) -> None:
        """The volume's data becomes the snapshot's again (3.40's revert; the snapshot is
        the volume's latest and of the same size, the volume detached). Optional: the
        volume role answers "cannot revert" for a backend without it."""

    def prune_image_cache(self, keep: set[str]) -> list[str]:
        """Remove the cached bases of images (file: images/image-<id>.*, rbd: the pool's
        image-<id> and its `base` snapshot) that no volume, snapshot or clone depends on
        and whose id is not in `keep`; returns the image ids removed. Optional; the volume
        role calls it after each volume delete with the images of the volumes left."""
