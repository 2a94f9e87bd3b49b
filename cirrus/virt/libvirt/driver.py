"""LibvirtDriver: Cirrus's VirtDriver on libvirt + QEMU (KVM, or TCG where KVM is missing).

One libvirt connection per driver, shared by the agent's worker threads (libvirt
connections are thread-safe; no event loop is needed for what is done here), opened on first
use and opened again when it was closed (libvirtd restarted). A domain is named
`cirrus-<uuid>` with the instance's uuid as its libvirt UUID; its files (root disk, config
drive, console log) live in `<storage pool dir>/<uuid>/`, which the domain's metadata names.

The agent plugs every NIC (bridge + persistent tap) before `spawn` and `attach_interface`,
and unplugs after `destroy` and `detach_interface`; this driver only points QEMU at the taps.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import shutil
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import libvirt

from cirrus import build_secrets
from cirrus.config import Settings
from cirrus.network.model import Nic
from cirrus.network.render import debian_interfaces
from cirrus.virt.driver import DriverCapabilities, HostStats, InstanceSpec, SpawnError, VirtDriver
from cirrus.virt.libvirt import access, domain
from cirrus.virt.libvirt import spec as specs
from cirrus.virt.libvirt.image_use import ImagesInUse, boot_files, record_image_use
from cirrus.virt.libvirt.images import ImageCache, create_overlay, qemu_img
from cirrus.virt.libvirt.probe import resolve_virt_type
from cirrus.virt.libvirt.storage import StoragePools
from cirrus.virt.power import CRASHED, NOSTATE, PAUSED, RUNNING, SHUTDOWN, SUSPENDED

log = logging.getLogger(__name__)
T = TypeVar("T")

ROOT_DISK = "disk.qcow2"
CONFIG_DRIVE = "disk.config"
# What the config drive was made from (the spec, its build secrets still sealed; 0600 like
# the drive, which has them in plain text for the guest), and whether the NICs changed since:
# a hot-plug or unplug marks it stale and the drive is made again while the domain is off.
CONFIG_DRIVE_SOURCE = "disk.config.json"
CONSOLE_LOG = "console.log"
POLL = 0.2  # seconds between state checks while waiting for a guest
DETACH_TIMEOUT = 10.0  # seconds a guest gets to release a hot-unplugged NIC
GUEST_INIT = "/usr/sbin/cirrus-guest-init"  # where cirrus/guest/README.md installs it
AGENT_TIMEOUT = 10  # seconds one guest agent command may take
CONFIGURE_NIC_TIMEOUT = 30.0  # seconds the guest gets to configure a hot-plugged NIC
SHUTDOWN_RETRY = 10.0  # seconds between power-off requests to a guest (Nova's interval)
SNAPSHOT_TIMEOUT = 1800.0  # seconds a live disk copy may take to catch up

POWER_STATES = {
    libvirt.VIR_DOMAIN_NOSTATE: NOSTATE,
    libvirt.VIR_DOMAIN_RUNNING: RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: RUNNING,
    libvirt.VIR_DOMAIN_PAUSED: PAUSED,
    libvirt.VIR_DOMAIN_SHUTDOWN: SHUTDOWN,
    libvirt.VIR_DOMAIN_SHUTOFF: SHUTDOWN,
    libvirt.VIR_DOMAIN_CRASHED: CRASHED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: SUSPENDED,
}
# Errors that mean the connection, not the request, failed: reconnect and try once more.
CONNECTION_ERRORS = (libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_ERR_NO_CONNECT,
                     libvirt.VIR_ERR_INVALID_CONN, libvirt.VIR_ERR_RPC)
UNDEFINE_FLAGS = (libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                  | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                  | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)

ConfigDriveBuilder = Callable[..., Path]

# libvirt-python prints every error to stderr unless a handler takes them; the driver turns
# them into exceptions with context instead.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


class LibvirtDriver(VirtDriver):
    # Memory ballooning and volumes are not wired up yet.
    capabilities = DriverCapabilities(hot_plug_nic=True, snapshot=True, balloon=False,
                                      volume_attach=False)

    def __init__(self, settings: Settings, host: str,
                 config_drive_builder: ConfigDriveBuilder | None = None) -> None:
        """`config_drive_builder`: cirrus.virt.configdrive.build_config_drive unless given
        (tests pass their own)."""
        self.settings = settings
        self.host = host
        self.uri = settings.libvirt_uri
        self.virt_type = resolve_virt_type(settings.virt_type)
        self.pools = StoragePools(settings.effective_storage_pools, host)
        self.images = ImageCache(settings.effective_image_dir,
                                 settings.effective_image_cache_dir)
        self._build_config_drive = config_drive_builder
        self._access: access.QemuAccess | None = None
        self._conn: libvirt.virConnect | None = None
        self._conn_lock = threading.Lock()
        log.info("libvirt driver for %s on %s, domain type %s, pools %s", host, self.uri,
                 self.virt_type, ", ".join(f"{n}={p}" for n, p in self.pools.pools.items()))

    # ---- connection
    def _connection(self) -> libvirt.virConnect:
        with self._conn_lock:
            if self._conn is not None:
                try:
                    if self._conn.isAlive():
                        return self._conn
                except libvirt.libvirtError:
                    pass
                with contextlib.suppress(libvirt.libvirtError):
                    self._conn.close()
            try:
                self._conn = libvirt.open(self.uri)
            except libvirt.libvirtError as exc:
                self._conn = None
                raise SpawnError(f"cannot connect to libvirt at {self.uri} on {self.host}: "
                                 f"{exc.get_error_message()}") from exc
            return self._conn

    def _call(self, what: str, fn: Callable[[libvirt.virConnect], T]) -> T:
        """fn(connection), once more on a fresh connection if the first one broke; a libvirt
        error becomes a SpawnError saying what was being done."""
        for attempt in (1, 2):
            conn = self._connection()
            try:
                return fn(conn)
            except libvirt.libvirtError as exc:
                if attempt == 1 and exc.get_error_code() in CONNECTION_ERRORS:
                    log.warning("libvirt connection lost during %s: reconnecting", what)
                    with self._conn_lock:
                        self._conn = None
                    continue
                raise SpawnError(f"{what} failed on {self.host}: "
                                 f"{exc.get_error_message()}") from exc
        raise AssertionError("unreachable")

    def _domain(self, uuid: str) -> libvirt.virDomain | None:
        def lookup(conn: libvirt.virConnect) -> libvirt.virDomain | None:
            try:
                return conn.lookupByUUIDString(uuid)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    return None
                raise
        return self._call(f"looking up {uuid}", lookup)

    def _require(self, uuid: str) -> libvirt.virDomain:
        dom = self._domain(uuid)
        if dom is None:
            raise SpawnError(f"no domain for instance {uuid} on {self.host}")
        return dom

    # ---- host
    def host_stats(self) -> HostStats:
        model, memory_mb, cpus, _mhz, _nodes, sockets, cores, threads = self._call(
            "reading host info", lambda c: c.getInfo())
        caps = ET.fromstring(self._call("reading capabilities", lambda c: c.getCapabilities()))
        return HostStats(
            hypervisor_type="QEMU",
            hypervisor_version=self._call("reading the version", lambda c: c.getVersion()),
            vcpus=cpus,
            memory_mb=memory_mb, local_gb=self.pools.local_gb(),
            storage_pools=self.pools.capacity(),
            capabilities=self.capabilities.to_dict(),
            cpu_info={"arch": model, "model": caps.findtext("host/cpu/model") or "",
                      "vendor": caps.findtext("host/cpu/vendor") or "",
                      "topology": {"sockets": sockets, "cores": cores, "threads": threads},
                      "features": [f.get("name") for f in caps.findall("host/cpu/feature")]})

    def list_instances(self) -> dict[str, int]:
        """This host's instances: Cirrus domains whose files are in one of its pools. Other
        Cirrus domains on the same libvirtd (another cloud, a test) are not ours to report,
        or the conductor would destroy them as unknown."""
        domains = self._call("listing domains", lambda c: c.listAllDomains(0))
        result = {}
        for dom in domains:
            with contextlib.suppress(libvirt.libvirtError):  # gone while we looked
                if domain.is_cirrus_domain(dom.name()) and self._owns(dom):
                    result[dom.UUIDString()] = POWER_STATES.get(dom.state()[0], NOSTATE)
        return result

    def _owns(self, dom: libvirt.virDomain) -> bool:
        meta = domain.instance_metadata(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        inst_dir = meta.get("instance-dir")
        if not inst_dir:
            return False
        return Path(inst_dir).parent.resolve() in self._pool_dirs

    @property
    def _pool_dirs(self) -> set[Path]:
        return {path.resolve() for path in self.pools.pools.values()}

    def power_state(self, uuid: str) -> int:
        dom = self._domain(uuid)
        if dom is None:
            return NOSTATE
        return POWER_STATES.get(self._call("reading state", lambda c: dom.state()[0]), NOSTATE)

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

    # ---- spawn and destroy
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
        base = self.images.fetch(boot.root)
        create_overlay(base, inst_dir / ROOT_DISK, specs.root_disk_bytes(spec))
        disks = [domain.Disk(str(inst_dir / ROOT_DISK), "qcow2", "vda")]
        if specs.wants_config_drive(spec, self.settings.force_config_drive):
            disks.append(domain.Disk(str(self._config_drive(spec, boot, inst_dir)), "raw",
                                     "vdb", readonly=True))
        cfg = domain.DomainConfig(
            uuid=spec.uuid, virt_type=self.virt_type, vcpus=spec.vcpus,
            memory_mb=spec.memory_mb, console_log=str(inst_dir / CONSOLE_LOG),
            disks=tuple(disks), nics=tuple(nic.to_dict() for nic in spec.nics),
            kernel_boot=self._kernel_boot(boot),
            display_name=spec.config_drive.display_name or spec.name,
            instance_dir=str(inst_dir), storage_pool=pool or "default")
        xml = domain.domain_xml(cfg)
        dom = self._call(f"defining {spec.uuid}", lambda c: c.defineXML(xml))
        self._call(f"starting {spec.uuid}", lambda c: dom.create())
        log.info("started %s on %s (%s, pool %s)", spec.uuid, self.host, self.virt_type,
                 cfg.storage_pool)

    def _kernel_boot(self, boot: specs.BootImages) -> domain.KernelBoot | None:
        if boot.kernel is None:
            return None
        kernel = self.images.fetch(boot.kernel).path
        initrd = self.images.fetch(boot.ramdisk).path if boot.ramdisk else None
        return domain.KernelBoot(str(kernel), str(initrd) if initrd else None, boot.cmdline)

    def _config_drive(self, spec: InstanceSpec, boot: specs.BootImages, inst_dir: Path,
                      again: bool = False) -> Path:
        build = self._build_config_drive
        if build is None:
            from cirrus.virt.configdrive import build_config_drive
            build = build_config_drive
        try:
            secrets = spec.open_build_secrets(self.settings)
        except build_secrets.BuildSecretsError as exc:
            if not again:
                log.error("config drive of %s on %s: %s", spec.uuid, self.host, exc)
                raise SpawnError(f"config drive of {spec.uuid} on {self.host}: "
                                 f"{build_secrets.UNOPENABLE}") from exc
            # Made again for a NIC change after the key it was sealed with was retired: the
            # guest took its password and files at first boot; the new drive goes without.
            log.warning("config drive of %s made again without its build secrets: %s",
                        spec.uuid, exc)
            secrets = build_secrets.BuildSecrets()
        drive = build(inst_dir / CONFIG_DRIVE, fmt=self.settings.config_drive_format,
                      **specs.config_drive_inputs(spec, boot.properties, secrets))
        _write_private_json(inst_dir / CONFIG_DRIVE_SOURCE,
                            {"spec": spec.to_dict(), "stale": False})
        return drive

    def _drive_source(self, uuid: str) -> tuple[Path, dict] | None:
        """The config drive's source file and contents; None for a VM without a drive."""
        inst_dir = self.pools.find_instance_dir(uuid)
        path = inst_dir / CONFIG_DRIVE_SOURCE if inst_dir else None
        if path is None or not path.exists():
            return None
        return path, json.loads(path.read_text())

    def _note_nics(self, uuid: str, change: Callable[[list[dict]], list[dict]]) -> None:
        """Record a NIC change for the config drive, made again at the next start."""
        found = self._drive_source(uuid)
        if found is None:
            return
        path, source = found
        source["spec"]["nics"] = change(source["spec"]["nics"])
        source["stale"] = True
        _write_private_json(path, source)

    def _refresh_config_drive(self, uuid: str) -> None:
        """Make the drive again from its source if the NICs changed; the domain is off, so
        QEMU opens the new file when it starts (a running QEMU keeps the old one open)."""
        found = self._drive_source(uuid)
        if found is None or not found[1].get("stale"):
            return
        path, source = found
        spec = InstanceSpec.from_dict(source["spec"])
        self._config_drive(spec, specs.boot_images(spec), path.parent, again=True)
        log.info("config drive of %s made again with %d NIC(s)", uuid, len(spec.nics))

    def _drive_is_stale(self, uuid: str) -> bool:
        found = self._drive_source(uuid)
        return bool(found and found[1].get("stale"))

    def expire_image_cache(self) -> None:
        """Remove cached images no instance in this host's pools has used for
        `image_cache_max_age` seconds (image_use.py says how use is known)."""
        def domain_boot_files(uuid: str) -> list[str]:
            dom = self._domain(uuid)
            if dom is None:
                return []
            return boot_files(self._call(f"reading {uuid}", lambda c: dom.XMLDesc(
                libvirt.VIR_DOMAIN_XML_INACTIVE)))
        self.images.expire(self.settings.image_cache_max_age, ImagesInUse(
            self.pools.pools.values(), self.images.cache_dir, domain_boot_files))

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

    def _stop(self, dom: libvirt.virDomain, uuid: str) -> None:
        """Pull the plug; a domain already off is fine."""
        def destroy(_conn: libvirt.virConnect) -> None:
            try:
                dom.destroy()
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID:  # not running
                    raise
        self._call(f"stopping {uuid}", destroy)

    # ---- power
    def power_off(self, uuid: str) -> None:
        dom = self._require(uuid)
        if not self._shutdown(dom, uuid, self.settings.libvirt_shutdown_timeout):
            log.info("%s did not power off within %.0f s: pulling the plug", uuid,
                     self.settings.libvirt_shutdown_timeout)
            self._stop(dom, uuid)

    def power_on(self, uuid: str) -> None:
        dom = self._require(uuid)
        if not self._is_active(dom, uuid):
            self._start(dom, uuid)

    def _start(self, dom: libvirt.virDomain, uuid: str) -> None:
        """Start a domain that is off, with a config drive that knows its current NICs."""
        self._refresh_config_drive(uuid)
        self._call(f"starting {uuid}", lambda c: dom.create())

    def reboot(self, uuid: str, hard: bool) -> None:
        """Soft: a clean power-off (ACPI or guest agent) and start, as Nova does, falling back
        to a hard reboot if the guest does not power off in time. Hard: a reset, or, when the
        config drive must be made again (NICs hot-plugged since it was), power off and start.
        A domain that is off is started either way."""
        dom = self._require(uuid)
        if not self._is_active(dom, uuid):
            self._start(dom, uuid)
            return
        if not hard and self._shutdown(dom, uuid, self.settings.libvirt_shutdown_timeout):
            self._start(dom, uuid)
            return
        if self._drive_is_stale(uuid):
            self._stop(dom, uuid)
            self._start(dom, uuid)
            return
        self._call(f"resetting {uuid}", lambda c: dom.reset(0))

    def _is_active(self, dom: libvirt.virDomain, uuid: str) -> bool:
        return bool(self._call(f"reading state of {uuid}", lambda c: dom.isActive()))

    def _shutdown(self, dom: libvirt.virDomain, uuid: str, timeout: float) -> bool:
        """Ask the guest to power off, again every SHUTDOWN_RETRY s (a guest still booting
        misses the ACPI button, and its agent may come up meanwhile), for up to `timeout` s;
        whether it is off."""
        deadline = time.monotonic() + timeout
        while self._is_active(dom, uuid):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                self._call(f"shutting down {uuid}", lambda c: dom.shutdown())
            except SpawnError as exc:
                log.info("clean shutdown of %s refused: %s", uuid, exc)
                return False
            if _wait(lambda: not self._is_active(dom, uuid), min(remaining, SHUTDOWN_RETRY)):
                return True
        return True

    # ---- snapshot
    def snapshot(self, uuid: str, target: Path) -> None:
        """Write a flattened qcow2 copy of the root disk (no backing file) to `target`, for
        an image upload. Running: a libvirt block copy, cut off (not pivoted) once in sync,
        with the guest's filesystems frozen for that moment if its agent answers; stopped:
        `qemu-img convert`."""
        dom = self._require(uuid)
        inst_dir = self.pools.find_instance_dir(uuid)
        if inst_dir is None:
            raise SpawnError(f"no files for instance {uuid} on {self.host}")
        part = inst_dir / f"snapshot.{time.monotonic_ns()}.qcow2"  # where QEMU may write
        try:
            if self._is_active(dom, uuid):
                self._live_copy(dom, uuid, part)
            else:
                qemu_img("convert", "-O", "qcow2", str(inst_dir / ROOT_DISK), str(part))
            part.chmod(0o600)  # private as every image file; the conductor imports it
            shutil.move(part, target)
        finally:
            part.unlink(missing_ok=True)
        log.info("snapshot of %s written to %s", uuid, target)

    def _live_copy(self, dom: libvirt.virDomain, uuid: str, part: Path) -> None:
        dest = f"<disk type='file'><source file='{part}'/><driver type='qcow2'/></disk>"
        self._call(f"copying the disk of {uuid}", lambda c: dom.blockCopy(
            "vda", dest, {}, libvirt.VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB))
        try:
            def in_sync() -> bool:
                return _in_sync(self._call(f"following the disk copy of {uuid}",
                                           lambda c: dom.blockJobInfo("vda", 0)))
            if not _wait(in_sync, SNAPSHOT_TIMEOUT):
                raise SpawnError(f"the disk copy of {uuid} did not finish within "
                                 f"{SNAPSHOT_TIMEOUT:.0f} s")
            frozen = _try(dom.fsFreeze)
            try:
                self._call(f"finishing the disk copy of {uuid}",
                           lambda c: dom.blockJobAbort("vda", 0))
            finally:
                if frozen:
                    _try(dom.fsThaw)
        except BaseException:
            _try(lambda: dom.blockJobAbort("vda", 0))
            raise

    # ---- console
    def console_output(self, uuid: str, length: int | None = None) -> str:
        inst_dir = self.pools.find_instance_dir(uuid)
        path = inst_dir / CONSOLE_LOG if inst_dir else None
        if path is None or not path.exists():
            return ""
        lines = path.read_text(errors="replace").splitlines(keepends=True)
        if length is not None:
            lines = lines[-length:] if length > 0 else []
        return "".join(lines)

    # ---- NIC hot-plug
    def attach_interface(self, uuid: str, nic: dict,
                         server_nics: list[dict] | None = None) -> None:
        dom = self._require(uuid)
        if nic["mac"].lower() not in self._macs(dom, uuid, live=False):
            self._call(f"attaching port {nic['port_id']} to {uuid}",
                       lambda c: dom.attachDeviceFlags(domain.interface_xml(nic),
                                                       self._device_flags(dom, uuid)))
        server_nics = server_nics or [nic]
        self._note_nics(uuid, lambda _old: list(server_nics))
        if self._is_active(dom, uuid):
            self._configure_in_guest(dom, uuid, nic, server_nics)

    def _configure_in_guest(self, dom: libvirt.virDomain, uuid: str, nic: dict,
                            server_nics: list[dict]) -> None:
        """Tell the running guest about a hot-plugged NIC: `cirrus-guest-init configure-nic
        MAC NAME` through the QEMU guest agent, with the server's interfaces file on stdin
        (the script applies NAME's stanza: rename, address, routes, MTU, DNS). Best effort:
        a guest without the agent or the script keeps the NIC as the kernel made it, and
        the attach still stands; what happened is logged."""
        import libvirt_qemu

        nics = [Nic.from_dict(n) for n in server_nics]
        request = {"execute": "guest-exec", "arguments": {
            "path": GUEST_INIT, "arg": ["configure-nic", nic["mac"], nic["name"]],
            "input-data": base64.b64encode(debian_interfaces(nics).encode()).decode(),
            "capture-output": True}}
        try:
            answer = libvirt_qemu.qemuAgentCommand(dom, json.dumps(request), AGENT_TIMEOUT, 0)
            pid = json.loads(answer)["return"]["pid"]
            deadline = time.monotonic() + CONFIGURE_NIC_TIMEOUT
            while time.monotonic() < deadline:
                status = json.loads(libvirt_qemu.qemuAgentCommand(dom, json.dumps(
                    {"execute": "guest-exec-status", "arguments": {"pid": pid}}),
                    AGENT_TIMEOUT, 0))["return"]
                if status.get("exited"):
                    out = base64.b64decode(status.get("out-data") or "").decode(errors="replace")
                    log.info("guest of %s: configure-nic %s exited %s: %s", uuid, nic["name"],
                             status.get("exitcode"), out.strip())
                    return
                time.sleep(0.1)
            log.warning("guest of %s: configure-nic %s still running after %.0f s", uuid,
                        nic["name"], CONFIGURE_NIC_TIMEOUT)
        except (libvirt.libvirtError, ValueError, KeyError) as exc:
            log.warning("guest of %s: port %s attached but not configured in the guest "
                        "(no guest agent answer: %s)", uuid, nic["port_id"], exc)

    def detach_interface(self, uuid: str, nic: dict) -> None:
        dom = self._require(uuid)
        mac = nic["mac"].lower()
        live = self._is_active(dom, uuid)
        self._note_nics(uuid, lambda nics: [n for n in nics if n["port_id"] != nic["port_id"]])
        if mac not in self._macs(dom, uuid, live=False) and (
                not live or mac not in self._macs(dom, uuid, live=True)):
            return
        self._call(f"detaching port {nic['port_id']} from {uuid}",
                   lambda c: dom.detachDeviceFlags(domain.interface_xml(nic),
                                                   self._device_flags(dom, uuid)))
        # A live detach is a request to the guest (ACPI hot-unplug); the tap is freed only
        # once the guest lets go of the device.
        if live and not _wait(lambda: mac not in self._macs(dom, uuid, live=True),
                              DETACH_TIMEOUT):
            raise SpawnError(f"the guest of {uuid} did not release port {nic['port_id']} "
                             f"within {DETACH_TIMEOUT:.0f} s")

    def _device_flags(self, dom: libvirt.virDomain, uuid: str) -> int:
        flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
        if self._is_active(dom, uuid):
            flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
        return flags

    def _macs(self, dom: libvirt.virDomain, uuid: str, live: bool) -> list[str]:
        flags = 0 if live else libvirt.VIR_DOMAIN_XML_INACTIVE
        return domain.interface_macs(self._call(f"reading {uuid}", lambda c: dom.XMLDesc(flags)))


def _write_private_json(path: Path, value: dict) -> None:
    """Write JSON readable by its owner only, replacing `path` whole."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(value, fh)
    os.replace(tmp, path)


def _undefine(dom: libvirt.virDomain) -> None:
    try:
        dom.undefineFlags(UNDEFINE_FLAGS)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
            raise


def _in_sync(job: dict) -> bool:
    """A block copy whose mirror has caught up (Nova's test: cur == end)."""
    return bool(job) and job["end"] > 0 and job["cur"] == job["end"]


def _try(action: Callable[[], object]) -> bool:
    """Run a best-effort libvirt call (guest agent, clean-up); whether it worked."""
    try:
        action()
    except libvirt.libvirtError as exc:
        log.debug("best-effort libvirt call failed: %s", exc.get_error_message())
        return False
    return True


def _wait(done: Callable[[], bool], timeout: float) -> bool:
    """Poll `done` every POLL s for up to `timeout` s; whether it became true."""
    deadline = time.monotonic() + timeout
    while True:
        if done():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL)
