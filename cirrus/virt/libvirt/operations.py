"""What the libvirt driver does to an instance that exists: power, snapshot, console."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import libvirt

from cirrus.virt.driver import SpawnError
from cirrus.virt.libvirt.build import CONSOLE_LOG, ROOT_DISK
from cirrus.virt.libvirt.connection import best_effort, wait_until
from cirrus.virt.libvirt.drive import ConfigDrives
from cirrus.virt.libvirt.qemuimg import qemu_img

log = logging.getLogger(__name__)

SHUTDOWN_RETRY = 10.0  # seconds between power-off requests to a guest (Nova's interval)
SNAPSHOT_TIMEOUT = 1800.0  # seconds a live disk copy may take to catch up


class Operations(ConfigDrives):
    """Power, snapshot and console of an instance that exists."""

    def power_off(self, uuid: str) -> None:
        """A clean power-off, or the plug pulled after libvirt_shutdown_timeout. A paused
        guest cannot shut itself down: it is stopped at once. A suspended one (a managed
        save) is off already and keeps its saved memory (a soft delete's restore resumes
        it; a destroy removes it)."""
        dom = self._require(uuid)
        if self._call(f"reading state of {uuid}",
                      lambda c: dom.state()[0]) == libvirt.VIR_DOMAIN_PAUSED:
            self._stop(dom, uuid)
            return
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

    # ---- comp-a: pause (virDomainSuspend/Resume), suspend (managed save)
    def pause(self, uuid: str) -> None:
        dom = self._require(uuid)
        self._call(f"pausing {uuid}", lambda c: dom.suspend())

    def unpause(self, uuid: str) -> None:
        dom = self._require(uuid)
        self._call(f"unpausing {uuid}", lambda c: dom.resume())

    def suspend(self, uuid: str) -> None:
        """Save the guest's memory beside the domain (libvirt's managed save) and stop it;
        a paused guest is saved as it is."""
        dom = self._require(uuid)
        self._call(f"suspending {uuid}", lambda c: dom.managedSave(0))

    def resume(self, uuid: str) -> None:
        """Start from the managed save image (libvirt restores it on create)."""
        dom = self._require(uuid)
        if not self._is_active(dom, uuid):
            self._call(f"resuming {uuid}", lambda c: dom.create())
    # ---- end comp-a

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
            if wait_until(lambda: not self._is_active(dom, uuid), min(remaining, SHUTDOWN_RETRY)):
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
            if not wait_until(in_sync, SNAPSHOT_TIMEOUT):
                raise SpawnError(f"the disk copy of {uuid} did not finish within "
                                 f"{SNAPSHOT_TIMEOUT:.0f} s")
            frozen = best_effort(dom.fsFreeze)
            try:
                self._call(f"finishing the disk copy of {uuid}",
                           lambda c: dom.blockJobAbort("vda", 0))
            finally:
                if frozen:
                    best_effort(dom.fsThaw)
        except BaseException:
            best_effort(lambda: dom.blockJobAbort("vda", 0))
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

def _in_sync(job: dict) -> bool:
    """A block copy whose mirror has caught up (Nova's test: cur == end)."""
    return bool(job) and job["end"] > 0 and job["cur"] == job["end"]
