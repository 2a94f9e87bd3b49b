"""The build side of the libvirt driver: an instance's directory and disks, its config
drive, its domain defined and started; and destroy, which undoes all of it."""

from __future__ import annotations

import contextlib
import logging
import shutil
from pathlib import Path

import libvirt

from cirrus.virt.driver import InstanceSpec, SpawnError
from cirrus.virt.libvirt import access, domain
from cirrus.virt.libvirt import spec as specs
from cirrus.virt.libvirt.drive import ConfigDrives
from cirrus.virt.libvirt.image_use import record_image_use
from cirrus.virt.libvirt.images import create_overlay

log = logging.getLogger(__name__)

ROOT_DISK = "disk.qcow2"
CONSOLE_LOG = "console.log"
UNDEFINE_FLAGS = (libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                  | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                  | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)


class Build(ConfigDrives):
    """Spawn and destroy."""

    _access: access.QemuAccess | None

    def _qemu_access(self) -> access.QemuAccess:
        """How to make directories reachable by QEMU's user, which libvirt's capabilities
        name (read once, on the first spawn)."""
        if self._access is None:
            caps = self._call("reading capabilities", lambda c: c.getCapabilities())
            user = access.qemu_user(caps, self.virt_type)
            self._access = access.QemuAccess(
                user, Path(self.settings.data_dir),
                [*self.pools.pools.values(), self.images.cache_dir])
            log.info("QEMU runs as %s: instance directories are %s",
                     f"uid {user.uid} gid {user.gid}" if user else "root or this user",
                     "0710 with its group" if user else "0700")
        return self._access

    def spawn(self, spec: InstanceSpec) -> None:
        try:
            self._spawn(spec)
        except BaseException:
            self._quiet_destroy(spec.uuid)  # no half-built domain or directory stays
            raise

    def _spawn(self, spec: InstanceSpec) -> None:
        boot = specs.boot_images(spec)
        pool = spec.storage_pool
        inst_dir = self.pools.instance_dir(pool, spec.uuid)
        # QEMU runs as another user (libvirt-qemu): these directories are traversal-only
        # for its group and closed to others; libvirt gives it the files (access.py).
        qemu = self._qemu_access()
        qemu.private_dir(inst_dir)
        qemu.private_dir(self.images.cache_dir)
        # Before any fetch, so image cache expiry sees the images as used from here on.
        record_image_use(inst_dir, [i.id for i in (boot.root, boot.kernel, boot.ramdisk) if i])
        disks = []
        if boot.root is not None:  # else it boots from a volume (spec.boot_volume())
            base = self.images.fetch(boot.root)
            create_overlay(base, inst_dir / ROOT_DISK, specs.root_disk_bytes(spec))
            disks.append(domain.Disk(str(inst_dir / ROOT_DISK), "qcow2", "vda"))
        if specs.wants_config_drive(spec, self.settings.force_config_drive):
            disks.append(domain.Disk(str(self._config_drive(spec, boot, inst_dir)), "raw",
                                     "vdb", readonly=True))
        volumes = self._spawn_volumes(spec.volumes, {d.target for d in disks})
        cfg = domain.DomainConfig(
            uuid=spec.uuid, virt_type=self.virt_type, vcpus=spec.vcpus,
            memory_mb=spec.memory_mb, console_log=str(inst_dir / CONSOLE_LOG),
            disks=tuple(disks), volumes=volumes,
            nics=tuple(nic.to_dict() for nic in spec.nics),
            kernel_boot=self._kernel_boot(boot),
            display_name=spec.config_drive.display_name or spec.name,
            instance_dir=str(inst_dir), storage_pool=pool or "default")
        xml = domain.domain_xml(cfg)
        dom = self._call(f"defining {spec.uuid}", lambda c: c.defineXML(xml))
        self._call(f"starting {spec.uuid}", lambda c: dom.create())
        log.info("started %s on %s (%s, pool %s)", spec.uuid, self.host, self.virt_type,
                 cfg.storage_pool)

    def _spawn_volumes(self, volumes: list, local_targets: set[str]
                       ) -> tuple[domain.VolumeDisk, ...]:
        """The disks of spec.volumes (volumes.py gives them); none here."""
        if volumes:
            raise SpawnError("this driver cannot attach volumes")
        return ()

    def _kernel_boot(self, boot: specs.BootImages) -> domain.KernelBoot | None:
        if boot.kernel is None:
            return None
        kernel = self.images.fetch(boot.kernel).path
        initrd = self.images.fetch(boot.ramdisk).path if boot.ramdisk else None
        return domain.KernelBoot(str(kernel), str(initrd) if initrd else None, boot.cmdline)

    def destroy(self, uuid: str) -> None:
        dom = self._domain(uuid)
        inst_dir = None
        if dom is not None:
            with contextlib.suppress(libvirt.libvirtError, ValueError):
                meta = domain.instance_metadata(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
                inst_dir = Path(meta["instance-dir"]) if meta.get("instance-dir") else None
            self._stop(dom, uuid)
            self._call(f"undefining {uuid}", lambda c: _undefine(dom))
        for path in (inst_dir, self.pools.find_instance_dir(uuid)):
            if path is not None and path.name == uuid and path.is_dir():
                shutil.rmtree(path)
        log.info("destroyed %s on %s", uuid, self.host)

    def _quiet_destroy(self, uuid: str) -> None:
        try:
            self.destroy(uuid)
        except Exception:
            log.exception("clean-up of %s on %s after a failed spawn failed", uuid, self.host)

def _undefine(dom: libvirt.virDomain) -> None:
    try:
        dom.undefineFlags(UNDEFINE_FLAGS)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
            raise
