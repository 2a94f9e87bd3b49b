"""Which cached images the instances on a host use: what image cache expiry must keep.

A spawn writes the ids of the cached images it uses (root base, kernel, ramdisk) to
`<instance dir>/cached-images.json` before it fetches any of them: that is exact (no guess
from paths), cheap to read for every instance on each pass, needs no libvirt and survives
agent restarts, and written before the fetch it makes a spawn in progress visible to expiry.
An instance directory without it (made before this record existed, or with a torn one) is
read the slow way: its qcow2 disks' backing files (`qemu-img info`) and the kernel and initrd
paths of its domain (the driver's `boot_files`). A destroyed instance's directory goes with
its record, which ends its use.
"""

from __future__ import annotations

import json
import os
import uuid as uuidlib
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from pathlib import Path

from cirrus.virt.driver import SpawnError
from cirrus.virt.libvirt.qemuimg import image_info

USE_FILE = "cached-images.json"

BootFiles = Callable[[str], list[str]]  # instance uuid -> kernel/initrd paths of its domain


def record_image_use(inst_dir: Path, image_ids: Iterable[str]) -> None:
    """Write the record of the cached images an instance uses (replaced atomically)."""
    part = inst_dir / f".{USE_FILE}.part"
    part.write_text(json.dumps({"images": sorted(set(image_ids))}))
    os.replace(part, inst_dir / USE_FILE)


def recorded_images(inst_dir: Path) -> set[str] | None:
    """The ids the record names; None if there is no readable record."""
    try:
        data = json.loads((inst_dir / USE_FILE).read_text())
        return {str(image_id) for image_id in data["images"]}
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None


def boot_files(domain_xml: str) -> list[str]:
    """The `<kernel>` and `<initrd>` paths of a domain's XML."""
    root = ET.fromstring(domain_xml)
    return [text for tag in ("os/kernel", "os/initrd") if (text := root.findtext(tag))]


class ImagesInUse:
    """A callable: the ids of the cached images in `cache_dir` the instances in `pool_dirs`
    use, read again on every call (expiry re-checks under each image's lock). The slow
    answer for a directory without a record is kept for the life of this object: such an
    instance gains no new image."""

    def __init__(self, pool_dirs: Iterable[Path], cache_dir: Path,
                 boot_files: BootFiles | None = None) -> None:
        self.pool_dirs = [Path(p) for p in pool_dirs]
        self.cache_dir = Path(cache_dir).resolve()
        self.boot_files = boot_files
        self._unrecorded: dict[Path, set[str]] = {}

    def __call__(self) -> set[str]:
        used: set[str] = set()
        for inst_dir in self._instance_dirs():
            recorded = recorded_images(inst_dir)
            if recorded is None:
                if inst_dir not in self._unrecorded:
                    self._unrecorded[inst_dir] = self._read_unrecorded(inst_dir)
                recorded = self._unrecorded[inst_dir]
            used |= recorded
        return used

    def _instance_dirs(self) -> list[Path]:
        dirs = []
        for pool in self.pool_dirs:
            if not pool.is_dir():
                continue
            for entry in pool.iterdir():
                # The cache is inside the default pool unless set elsewhere (`_base`).
                if entry.is_dir() and entry.resolve() != self.cache_dir:
                    dirs.append(entry)
        return dirs

    def _read_unrecorded(self, inst_dir: Path) -> set[str]:
        """The cached images an instance without a record uses, from its disk and domain;
        a failure raises (expiry then removes nothing rather than guess)."""
        paths = []
        try:
            disks = sorted(p for p in inst_dir.iterdir() if p.suffix == ".qcow2")
        except FileNotFoundError:  # destroyed meanwhile: it uses nothing now
            disks = []
        for disk in disks:
            try:
                info = image_info(disk, "qcow2")
            except SpawnError:
                if not disk.exists():  # destroyed meanwhile: it uses nothing now
                    continue
                raise
            backing = info.get("full-backing-filename") or info.get("backing-filename")
            if backing:
                paths.append(str(disk.parent / backing))  # an absolute path stays as it is
        if self.boot_files is not None and _is_uuid(inst_dir.name):
            paths += self.boot_files(inst_dir.name)
        return {Path(p).name for p in paths if Path(p).resolve().parent == self.cache_dir}


def _is_uuid(text: str) -> bool:
    try:
        uuidlib.UUID(text)
    except ValueError:
        return False
    return True
