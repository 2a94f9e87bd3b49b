"""Disk names (targets) for volumes, for every driver: the first free `vdX` on virtio, `sdX`
on virtio-scsi."""

from __future__ import annotations

import string

from cirrus.virt.driver import VolumeError
from cirrus.virt.spec import VolumeDevice

PREFIX = {"virtio": "vd", "scsi": "sd"}


def free_target(bus: str, used: set[str]) -> str:
    """The first target of `bus` ("vdb", "sdc", ...) not in `used`."""
    prefix = PREFIX[bus]
    for first in ["", *string.ascii_lowercase]:
        for letter in string.ascii_lowercase:
            name = f"{prefix}{first}{letter}"
            if name not in used:
                return name
    raise VolumeError(f"no free {bus} disk name left")


def assign_targets(volumes: list[VolumeDevice], used: set[str]) -> list[tuple[VolumeDevice, str]]:
    """(volume, target) for each: its own device name unless taken, else the first free
    one; the boot volume first, so it gets the first name (vda)."""
    taken = set(used)
    result = []
    for vol in sorted(volumes, key=lambda v: v.boot_index != 0):
        target = vol.device_name
        if not target or target in taken or not target.startswith(PREFIX[vol.bus]):
            target = free_target(vol.bus, taken)
        taken.add(target)
        result.append((vol, target))
    return result
