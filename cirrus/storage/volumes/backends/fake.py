"""A fake volume backend, for tests and simulations: it keeps sizes and snapshots in memory
and holds no data. Named "fake" in `volume_backends`; never the default."""

from __future__ import annotations

import threading
from pathlib import Path

from cirrus.config import Settings
from cirrus.storage.volumes.backend import BackendError, Capacity, Connection, ImageSource


class FakeBackend:
    kind = "fake"

    def __init__(self, name: str, total_gb: float = 10000.0) -> None:
        self.name = name
        self.total_gb = total_gb
        self._lock = threading.Lock()
        self.volumes: dict[str, int] = {}
        self.snapshots: dict[str, str] = {}  # snapshot id -> volume id
        self.calls: list[tuple[str, ...]] = []

    @classmethod
    def from_spec(cls, name: str, options: str, settings: Settings) -> FakeBackend:
        # options: total size in GB, e.g. "fake:500"
        return cls(name, float(options) if options.strip() else 10000.0)

    def _need(self, volume_id: str) -> int:
        if volume_id not in self.volumes:
            raise BackendError(f"fake backend {self.name}: no volume {volume_id}")
        return self.volumes[volume_id]

    def create_empty(self, volume_id: str, size_gb: int) -> None:
        with self._lock:
            self.calls.append(("create_empty", volume_id))
            self.volumes[volume_id] = size_gb

    def create_from_image(self, volume_id: str, size_gb: int, image: ImageSource) -> None:
        with self._lock:
            self.calls.append(("create_from_image", volume_id, image.image_id))
            self.volumes[volume_id] = size_gb

    def create_from_volume(self, volume_id: str, size_gb: int, source_volume_id: str) -> None:
        with self._lock:
            self._need(source_volume_id)
            self.calls.append(("create_from_volume", volume_id, source_volume_id))
            self.volumes[volume_id] = size_gb

    def create_from_snapshot(self, volume_id: str, size_gb: int, source_volume_id: str,
                             snapshot_id: str) -> None:
        with self._lock:
            if snapshot_id not in self.snapshots:
                raise BackendError(f"fake backend {self.name}: no snapshot {snapshot_id}")
            self.calls.append(("create_from_snapshot", volume_id, snapshot_id))
            self.volumes[volume_id] = size_gb

    def create_snapshot(self, volume_id: str, snapshot_id: str) -> None:
        with self._lock:
            self._need(volume_id)
            self.calls.append(("create_snapshot", volume_id, snapshot_id))
            self.snapshots[snapshot_id] = volume_id

    def delete_snapshot(self, volume_id: str, snapshot_id: str) -> None:
        with self._lock:
            self.calls.append(("delete_snapshot", volume_id, snapshot_id))
            self.snapshots.pop(snapshot_id, None)

    def delete(self, volume_id: str) -> None:
        with self._lock:
            self.calls.append(("delete", volume_id))
            self.volumes.pop(volume_id, None)

    def extend(self, volume_id: str, new_size_gb: int) -> None:
        with self._lock:
            self._need(volume_id)
            self.calls.append(("extend", volume_id, str(new_size_gb)))
            self.volumes[volume_id] = new_size_gb

    def exists(self, volume_id: str) -> bool:
        return volume_id in self.volumes

    def connection(self, volume_id: str) -> Connection:
        self._need(volume_id)
        return Connection("fake", {"name": f"{self.name}/volume-{volume_id}"})

    def copy_to_file(self, volume_id: str, dest: Path, disk_format: str) -> int:
        size = self._need(volume_id)
        dest.write_bytes(b"")
        self.calls.append(("copy_to_file", volume_id, str(dest)))
        return 0 if size >= 0 else 0

    def revert_to_snapshot(self, volume_id: str, snapshot_id: str) -> None:
        with self._lock:
            self._need(volume_id)
            if self.snapshots.get(snapshot_id) != volume_id:
                raise BackendError(f"fake backend {self.name}: no snapshot {snapshot_id} of "
                                   f"volume {volume_id}")
            self.calls.append(("revert_to_snapshot", volume_id, snapshot_id))

    def prune_image_cache(self, keep: set[str]) -> list[str]:
        with self._lock:
            self.calls.append(("prune_image_cache", *sorted(keep)))
        return []

    def capacity(self) -> Capacity:
        used = sum(self.volumes.values())
        return Capacity(self.total_gb, max(0.0, self.total_gb - used))
