"""Volumes on a libvirt domain: hot attach, detach that waits for the guest, live extend.

A volume is a `<disk>` whose `<serial>` is the volume id (domain.volume_xml): that is how the
driver finds it again (detach, extend) and how the guest names it
(/dev/disk/by-id/virtio-<id[:20]>). Attach and detach change the running guest and the
domain's definition together (VIR_DOMAIN_AFFECT_LIVE | CONFIG; CONFIG alone when it is off),
so stop/start and reboots keep them; a spawn (build, rebuild) attaches `spec.volumes`.
"""

from __future__ import annotations

import json
import logging
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import libvirt

from cirrus.virt.driver import SpawnError, VolumeDetachTimeout, VolumeError, volume_device
from cirrus.virt.libvirt import domain
from cirrus.virt.libvirt.build import Build
from cirrus.virt.libvirt.connection import wait_until
from cirrus.virt.libvirt.secrets import ensure_ceph_secret
from cirrus.virt.spec import VolumeDevice
from cirrus.virt.targets import assign_targets

log = logging.getLogger(__name__)
T = TypeVar("T")

GIB = 1024**3
DETACH_VOLUME_TIMEOUT = 30.0  # seconds a guest gets to release a hot-unplugged volume
def _disk_element(xml: str, target: str) -> str | None:
    for disk in ET.fromstring(xml).findall("devices/disk"):
        t = disk.find("target")
        if t is not None and t.get("dev") == target:
            return ET.tostring(disk, encoding="unicode")
    return None


class Volumes(Build):
    """attach_volume, detach_volume, extend_volume; the disks of a spawn's spec.volumes."""

    # -- what a volume becomes in the domain -----------------------------------------------

    def _volume_disk(self, vol: VolumeDevice, target: str) -> domain.VolumeDisk:
        """The volume's disk with what the host must provide first: QEMU's way to a file
        volume's directories, or the libvirt secret of an RBD volume's Ceph user."""
        if vol.driver_volume_type == "file":
            path = Path(str(vol.data["path"]))
            if not path.is_file():
                raise VolumeError(f"volume {vol.volume_id}: its file {path} does not exist on "
                                  f"{self.host}")
            access = self._qemu_access()
            for file in _chain(path, str(vol.data.get("format") or "qcow2")):
                access.reach_file(file)
            return domain.VolumeDisk(vol, target)
        if not domain._auth_enabled(vol.data):
            return domain.VolumeDisk(vol, target)
        secret = self._vcall(f"defining the Ceph secret for volume {vol.volume_id}",
                            lambda c: ensure_ceph_secret(c, vol.data))
        return domain.VolumeDisk(vol, target, secret_uuid=secret)

    def _spawn_volumes(self, volumes: list[VolumeDevice],
                       local_targets: set[str]) -> tuple[domain.VolumeDisk, ...]:
        return tuple(self._volume_disk(vol, target)
                     for vol, target in assign_targets(volumes, local_targets))

    # -- the operations --------------------------------------------------------------------

    def _vcall(self, what: str, fn: Callable[[libvirt.virConnect], T]) -> T:
        """_call, its failure a VolumeError."""
        try:
            return self._call(what, fn)
        except VolumeError:
            raise
        except SpawnError as exc:
            raise VolumeError(str(exc)) from exc

    def _volume_domain(self, uuid: str) -> libvirt.virDomain:
        dom = self._vcall(f"looking up {uuid}", lambda c: self._domain(uuid))
        if dom is None:
            raise VolumeError(f"no domain for instance {uuid} on {self.host}")
        return dom

    def _xml(self, dom: libvirt.virDomain, uuid: str, live: bool) -> str:
        flags = 0 if live else libvirt.VIR_DOMAIN_XML_INACTIVE
        return self._call(f"reading {uuid}", lambda c: dom.XMLDesc(flags))

    def volume_targets(self, uuid: str) -> dict[str, str]:
        dom = self._volume_domain(uuid)
        return {serial: target
                for target, serial in domain.disk_targets(self._xml(dom, uuid, False)).items()
                if serial}

    def attach_volume(self, uuid: str, volume: VolumeDevice | dict) -> str:
        vol = volume_device(volume)
        dom = self._volume_domain(uuid)
        live = self._is_active(dom, uuid)
        config_xml = self._xml(dom, uuid, live=False)
        xmls = [config_xml, self._xml(dom, uuid, live=True)] if live else [config_xml]
        for xml in xmls:
            existing = domain.volume_target(xml, vol.volume_id)
            if existing:
                return existing
        used = {t for xml in xmls for t in domain.disk_targets(xml)}
        if vol.device_name and vol.device_name in used:
            raise VolumeError(f"volume {vol.volume_id}: device {vol.device_name} of "
                              f"{uuid} is in use")
        [(_, target)] = assign_targets([vol], used)
        disk = self._volume_disk(vol, target)
        flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
        if live:
            flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
        if vol.bus == "scsi" and not all(domain.has_scsi_controller(x) for x in xmls):
            self._vcall(f"adding a virtio-scsi controller to {uuid}", lambda c: dom.attachDeviceFlags(
                domain.scsi_controller_xml(), flags))
        self._vcall(f"attaching volume {vol.volume_id} to {uuid}",
                    lambda c: dom.attachDeviceFlags(domain.volume_xml(disk), flags))
        log.info("attached volume %s to %s as %s (%s%s)", vol.volume_id, uuid, target,
                 vol.driver_volume_type, ", live" if live else "")
        return target

    def detach_volume(self, uuid: str, volume_id: str, timeout: float | None = None) -> None:
        timeout = DETACH_VOLUME_TIMEOUT if timeout is None else timeout
        dom = self._domain(uuid)
        if dom is None:
            return
        config_xml = self._xml(dom, uuid, live=False)
        target = domain.volume_target(config_xml, volume_id)
        if target is not None:
            element = _disk_element(config_xml, target) or ""
            self._vcall(f"detaching volume {volume_id} from the definition of {uuid}",
                       lambda c: dom.detachDeviceFlags(element, libvirt.VIR_DOMAIN_AFFECT_CONFIG))
        if not self._is_active(dom, uuid):
            log.info("detached volume %s from %s (off)", volume_id, uuid)
            return
        live_xml = self._xml(dom, uuid, live=True)
        target = domain.volume_target(live_xml, volume_id)
        if target is None:
            return
        element = _disk_element(live_xml, target) or ""

        def request(_conn: libvirt.virConnect) -> None:
            try:
                dom.detachDeviceFlags(element, libvirt.VIR_DOMAIN_AFFECT_LIVE)
            except libvirt.libvirtError as exc:
                # A detach asked for before (a retry): QEMU is still waiting for the guest.
                if "unplug" not in (exc.get_error_message() or ""):
                    raise
        # A live detach is a request to the guest (ACPI PCI hot-unplug for virtio-blk);
        # QEMU lets go of the volume only once the guest has released the device.
        self._vcall(f"detaching volume {volume_id} from {uuid}", request)

        def released() -> bool:
            if not self._is_active(dom, uuid):
                return True
            return domain.volume_target(self._xml(dom, uuid, live=True), volume_id) is None
        if not wait_until(released, timeout):
            raise VolumeDetachTimeout(
                f"the guest of {uuid} did not release volume {volume_id} ({target}) within "
                f"{timeout:.0f} s; it is detached from the definition (gone at the next boot) "
                "but still in use by the running guest: retry the detach, or stop the server")
        log.info("detached volume %s (%s) from %s", volume_id, target, uuid)

    def extend_volume(self, uuid: str, volume_id: str, new_size_gb: int) -> None:
        dom = self._volume_domain(uuid)
        if new_size_gb <= 0:
            raise VolumeError(f"volume {volume_id}: new size must be above 0 GiB")
        if not self._is_active(dom, uuid):
            if domain.volume_target(self._xml(dom, uuid, live=False), volume_id) is None:
                raise VolumeError(f"volume {volume_id} is not attached to {uuid}")
            return  # QEMU does not hold it: the volume service's resize is all there is
        target = domain.volume_target(self._xml(dom, uuid, live=True), volume_id)
        if target is None:
            raise VolumeError(f"volume {volume_id} is not attached to {uuid}")
        wanted = new_size_gb * GIB
        have = self._vcall(f"reading the size of {target} of {uuid}",
                          lambda c: dom.blockInfo(target, 0))[0]
        if wanted < have:
            raise VolumeError(f"volume {volume_id} is {have} bytes in {uuid}: "
                              f"{new_size_gb} GiB would shrink it")
        if wanted == have:
            return
        self._vcall(f"extending volume {volume_id} of {uuid} to {new_size_gb} GiB",
                   lambda c: dom.blockResize(target, wanted,
                                             libvirt.VIR_DOMAIN_BLOCK_RESIZE_BYTES))
        log.info("extended volume %s (%s) of %s to %d GiB", volume_id, target, uuid,
                 new_size_gb)


def _chain(path: Path, fmt: str) -> list[Path]:
    """The file and its backing files (QEMU opens them all)."""
    if fmt != "qcow2":
        return [path]
    done = subprocess.run(["qemu-img", "info", "-U", "--backing-chain", "--output=json",
                           "-f", fmt, str(path)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise VolumeError(f"cannot read {path}: {done.stderr.strip()[-300:]}")
    files = []
    for entry in json.loads(done.stdout):
        name = entry.get("filename")
        if name and not name.startswith(("rbd:", "json:")):
            files.append(Path(name))
    return files or [path]
