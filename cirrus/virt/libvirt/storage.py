"""Storage pools: named directories a host offers for instance disks (`hdd`, `ssd`, ...).

A host declares them in the `storage_pools` setting; the instances directory is always the
pool `default` unless `storage_pools` names `default` itself. A server asks for a pool by
flavor extra spec `cirrus:storage_pool`, else by image property `cirrus_storage_pool`
(the flavor, set by the operator, wins; cirrus.storage.pools). The conductor passes the
name as `InstanceSpec.storage_pool`; the driver puts the instance's directory
`<pool dir>/<uuid>` there, or refuses a pool this host does not have.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from cirrus.storage.pools import DEFAULT_POOL
from cirrus.virt.driver import SpawnError

GIB = 1024**3


class StoragePools:
    def __init__(self, pools: dict[str, Path], host: str) -> None:
        self.pools = {name: Path(path) for name, path in pools.items()}
        self.host = host

    def directory(self, name: str | None) -> Path:
        """The directory of pool `name` (None: the default pool); SpawnError if this host has
        no such pool."""
        name = name or DEFAULT_POOL
        path = self.pools.get(name)
        if path is None:
            raise SpawnError(
                f"storage pool {name!r} is not declared on host {self.host} (it has: "
                f"{', '.join(sorted(self.pools))}); declare it in the host's storage_pools "
                "setting or ask for another pool")
        return path

    def instance_dir(self, name: str | None, uuid: str) -> Path:
        return self.directory(name) / uuid

    def find_instance_dir(self, uuid: str) -> Path | None:
        """Where an instance's files are, whichever pool holds them; None if nowhere."""
        for path in self.pools.values():
            candidate = path / uuid
            if candidate.is_dir():
                return candidate
        return None

    def capacity(self) -> dict[str, dict[str, int]]:
        """pool -> {"total_gb", "free_gb"} of the filesystem under it (0 if it is missing)."""
        result = {}
        for name, path in self.pools.items():
            usage = _usage(path)
            result[name] = {"total_gb": usage[0] // GIB, "free_gb": usage[1] // GIB}
        return result

    def local_gb(self) -> int:
        """Disk the host offers: the sum over the distinct filesystems the pools are on."""
        seen: dict[int, int] = {}
        for path in self.pools.values():
            existing = _nearest_existing(path)
            seen.setdefault(os.stat(existing).st_dev, _usage(existing)[0])
        return sum(seen.values()) // GIB


def _nearest_existing(path: Path) -> Path:
    """`path`, or its closest parent that exists (a pool made on first use)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _usage(path: Path) -> tuple[int, int]:
    usage = shutil.disk_usage(_nearest_existing(path))
    return usage.total, usage.free
