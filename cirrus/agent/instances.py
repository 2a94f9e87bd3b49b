"""The agent's instance messages: build, destroy, power, rebuild, snapshot, shelve and
offload, resize and cold migrate, NIC hot-plug, and the reads (list, console, diagnostics).

Work on one instance is serialised by a per-instance lock, and a destroyed instance is
remembered so that a spawn arriving after its destroy is refused. Each long task answers
the conductor with its result (cirrus.compute.rpcapi), saying why when it failed.
"""

from __future__ import annotations

import threading
import traceback
from collections import OrderedDict
from dataclasses import replace
from typing import TYPE_CHECKING, TypeVar

from cirrus.agent import rpcapi
from cirrus.agent.base import Received, log
from cirrus.agent.network import NetworkHandlers
from cirrus.compute.rpcapi import (
    ResizeResult,
    ShelveResult,
    SnapshotResult,
    SpawnResult,
    TaskResult,
)
from cirrus.compute.states import NOSTATE, SHUTDOWN
from cirrus.context import RequestContext
from cirrus.network.model import Nic
from cirrus.storage.filestore import snapshot_staging_path
from cirrus.virt.driver import InstanceSpec

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

R = TypeVar("R", bound="DataclassInstance")


def failed(result: R, exc: BaseException) -> R:
    """`result` saying why the work failed: the error, and its traceback for the details
    of the fault the conductor records."""
    return replace(result, error=str(exc) or type(exc).__name__, details=traceback.format_exc())


class InstanceHandlers(NetworkHandlers):
    """On the NIC plumbing of NetworkHandlers: a VM's NICs are plugged before it starts."""

    _locks: dict[str, threading.Lock]  # instance uuid -> the lock its work holds
    _locks_guard: threading.Lock
    _destroyed: OrderedDict[str, None]  # the last instances destroyed here (a bounded set)

    def _lock(self, uuid: str) -> threading.Lock:
        with self._locks_guard:
            lock = self._locks.get(uuid)
            if lock is None:
                lock = self._locks[uuid] = threading.Lock()
            return lock

    def _forget_lock(self, uuid: str) -> None:
        with self._locks_guard:
            self._locks.pop(uuid, None)

    def spawn(self, ctx: RequestContext, payload: rpcapi.SpawnInstance | Received) -> None:
        request = rpcapi.SpawnInstance.coerce(payload)
        spec = InstanceSpec.from_dict(request.spec)
        result = SpawnResult(uuid=spec.uuid, host=self.host, ok=False, task=request.task)
        with self._lock(spec.uuid):
            if spec.uuid in self._destroyed:
                log.info("spawn of %s on %s refused: deleted before it was built", spec.uuid,
                         self.host)
                result = replace(result, error="The instance was deleted before it was built.")
            elif self.driver.power_state(spec.uuid) != NOSTATE:
                # A spawn delivered twice (bus redelivery, reconcile re-drive): already built.
                log.info("spawn of %s on %s: already built", spec.uuid, self.host)
                result = replace(result, ok=True,
                                 power_state=self.driver.power_state(spec.uuid))
            else:
                try:
                    # Bridges and taps first: the VM must find them when it starts.
                    self._plug(spec.uuid, [nic.to_dict() for nic in spec.nics])
                    self.driver.spawn(spec)
                    log.info("spawned %s on %s", spec.uuid, self.host)
                    result = replace(result, ok=True,
                                     power_state=self.driver.power_state(spec.uuid))
                except Exception as exc:
                    log.warning("spawn of %s on %s failed: %s", spec.uuid, self.host, exc)
                    result = failed(result, exc)
                    self._safe_destroy(spec.uuid)
        self.conductor.spawn_result(ctx, result)

    def _safe_destroy(self, uuid: str) -> None:
        try:
            self.driver.destroy(uuid)
        except Exception:
            log.exception("clean-up of %s on %s failed", uuid, self.host)
        self._unplug(uuid, self.nics.pop(uuid))

    def destroy(self, ctx: RequestContext, payload: rpcapi.DestroyInstance | Received) -> dict:
        uuid = rpcapi.DestroyInstance.coerce(payload).uuid
        with self._lock(uuid):
            self._destroyed[uuid] = None
            while len(self._destroyed) > 10000:
                self._destroyed.popitem(last=False)
            self.driver.destroy(uuid)
            self._unplug(uuid, self.nics.pop(uuid))
        self._forget_lock(uuid)
        log.info("destroyed %s on %s", uuid, self.host)
        return {"uuid": uuid, "destroyed": True}

    def power(self, ctx: RequestContext, payload: rpcapi.PowerInstance | Received) -> None:
        request = rpcapi.PowerInstance.coerce(payload)
        uuid, action = request.uuid, request.action
        result = TaskResult(uuid=uuid, host=self.host, task=request.task, ok=False)
        with self._lock(uuid):
            try:
                if action == "stop":
                    self.driver.power_off(uuid)
                elif action == "start":
                    self.driver.power_on(uuid)
                elif action in ("reboot", "reboot_hard"):
                    self.driver.reboot(uuid, hard=action == "reboot_hard")
                elif action in ("pause", "unpause", "suspend", "resume"):  # comp-a
                    getattr(self.driver, action)(uuid)
                else:
                    raise ValueError(f"unknown power action {action!r}")
                result = replace(result, ok=True)
                log.info("%s of %s on %s done", action, uuid, self.host)
            except Exception as exc:
                log.warning("%s of %s on %s failed: %s", action, uuid, self.host, exc)
                result = failed(result, exc)
            result = replace(result, power_state=self.driver.power_state(uuid))
        self.conductor.task_result(ctx, result)

    def rebuild(self, ctx: RequestContext, payload: rpcapi.RebuildInstance | Received) -> None:
        """A new root disk and config drive from the spec, the NICs left plugged (comp-a)."""
        request = rpcapi.RebuildInstance.coerce(payload)
        spec = InstanceSpec.from_dict(request.spec)
        result = TaskResult(uuid=spec.uuid, host=self.host, task=request.task, ok=False)
        with self._lock(spec.uuid):
            try:
                self._plug(spec.uuid, [nic.to_dict() for nic in spec.nics])
                self.driver.rebuild(spec)
                if request.stopped:
                    self.driver.power_off(spec.uuid)
                result = replace(result, ok=True)
                log.info("rebuilt %s on %s", spec.uuid, self.host)
            except Exception as exc:
                log.warning("rebuild of %s on %s failed: %s", spec.uuid, self.host, exc)
                result = failed(result, exc)
            result = replace(result, power_state=self.driver.power_state(spec.uuid))
        self.conductor.task_result(ctx, result)

    def snapshot(self, ctx: RequestContext, payload: rpcapi.SnapshotInstance | Received) -> None:
        """Write the root disk's flat copy to the staging file the conductor named, in the
        shared image directory, and report; the conductor imports it into the image store."""
        request = rpcapi.SnapshotInstance.coerce(payload)
        uuid = request.uuid
        result = SnapshotResult(uuid=uuid, image_id=request.image_id, file=request.file,
                                host=self.host, ok=False)
        target = snapshot_staging_path(self.settings.effective_image_dir, request.file)
        with self._lock(uuid):
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                self.driver.snapshot(uuid, target)
                result = replace(result, ok=True)
                log.info("snapshot of %s on %s written to %s", uuid, self.host, target)
            except Exception as exc:
                log.warning("snapshot of %s on %s failed: %s", uuid, self.host, exc)
                result = failed(result, exc)
                target.unlink(missing_ok=True)
        self.conductor.snapshot_result(ctx, result)

    # ---- shelve (comp-b)
    def shelve(self, ctx: RequestContext, payload: rpcapi.ShelveInstance | Received) -> None:
        """Power the VM off, then write its root disk's flat copy to the staging file (as
        `snapshot`), and report; the conductor imports it into the shelved image."""
        request = rpcapi.ShelveInstance.coerce(payload)
        uuid = request.uuid
        result = ShelveResult(uuid=uuid, image_id=request.image_id, file=request.file,
                              host=self.host, ok=False)
        target = snapshot_staging_path(self.settings.effective_image_dir, request.file)
        with self._lock(uuid):
            try:
                if self.driver.power_state(uuid) == NOSTATE:
                    raise RuntimeError(f"no VM {uuid} on {self.host}")
                if self.driver.power_state(uuid) != SHUTDOWN:
                    self.driver.power_off(uuid)
                target.parent.mkdir(parents=True, exist_ok=True)
                self.driver.snapshot(uuid, target)
                result = replace(result, ok=True)
                log.info("shelve of %s on %s: disk written to %s", uuid, self.host, target)
            except Exception as exc:
                log.warning("shelve of %s on %s failed: %s", uuid, self.host, exc)
                result = failed(result, exc)
                target.unlink(missing_ok=True)
            result = replace(result, power_state=self.driver.power_state(uuid))
        self.conductor.shelve_result(ctx, result)

    def offload(self, ctx: RequestContext, payload: rpcapi.OffloadInstance | Received) -> dict:
        """Remove the VM, its disks and NICs from this host; not remembered as destroyed, so
        the server's unshelve may bring it back here."""
        uuid = rpcapi.OffloadInstance.coerce(payload).uuid
        with self._lock(uuid):
            self.driver.destroy(uuid)
            self._unplug(uuid, self.nics.pop(uuid))
        self._forget_lock(uuid)
        log.info("offloaded %s from %s", uuid, self.host)
        return {"uuid": uuid, "offloaded": True}

    # ---- resize and cold migrate (comp-b)
    def prepare_resize(self, ctx: RequestContext,
                       payload: rpcapi.PrepareResize | Received) -> dict:
        """Power the VM off before it moves away (it stays here until the resize is
        confirmed, for a revert)."""
        uuid = rpcapi.PrepareResize.coerce(payload).uuid
        with self._lock(uuid):
            if self.driver.power_state(uuid) not in (NOSTATE, SHUTDOWN):
                self.driver.power_off(uuid)
        return {"uuid": uuid, "power_state": self.driver.power_state(uuid)}

    def resize(self, ctx: RequestContext, payload: rpcapi.ResizeInstance | Received) -> None:
        """Resize the VM in place if this host has it; else build it here (moved from
        another host) with the new flavor; and report."""
        request = rpcapi.ResizeInstance.coerce(payload)
        spec = InstanceSpec.from_dict(request.spec)
        uuid = spec.uuid
        result = ResizeResult(uuid=uuid, host=self.host, task=request.task, ok=False)
        with self._lock(uuid):
            here = self.driver.power_state(uuid) != NOSTATE
            try:
                if here:
                    self.driver.resize(uuid, spec, request.power_on)
                else:
                    self._destroyed.pop(uuid, None)
                    self._plug(uuid, [nic.to_dict() for nic in spec.nics])
                    self.driver.spawn(spec)
                    if not request.power_on:
                        self.driver.power_off(uuid)
                result = replace(result, ok=True)
                log.info("resize of %s on %s done", uuid, self.host)
            except Exception as exc:
                log.warning("resize of %s on %s failed: %s", uuid, self.host, exc)
                result = failed(result, exc)
                if not here:  # half built here: nothing of it stays
                    self._safe_destroy(uuid)
            result = replace(result, power_state=self.driver.power_state(uuid))
        self.conductor.resize_result(ctx, result)

    # ---- NIC hot-plug
    def attach_interface(self, ctx: RequestContext,
                         payload: rpcapi.AttachInterface | Received) -> dict:
        request = rpcapi.AttachInterface.coerce(payload)
        uuid, nic = request.uuid, request.nic
        with self._lock(uuid):
            self.dataplane.plug(Nic.from_dict(nic))
            try:
                others = [n for n in self.nics.get(uuid) if n["port_id"] != nic["port_id"]]
                self.driver.attach_interface(uuid, nic, server_nics=[*others, nic])
            except Exception:
                self._unplug(uuid, [nic])
                raise
            self.nics.add(uuid, nic)
        log.info("attached port %s to %s on %s as %s", nic["port_id"], uuid, self.host,
                 nic["name"])
        return {"attached": nic["port_id"]}

    def detach_interface(self, ctx: RequestContext,
                         payload: rpcapi.DetachInterface | Received) -> dict:
        request = rpcapi.DetachInterface.coerce(payload)
        uuid, nic = request.uuid, request.nic
        with self._lock(uuid):
            self.driver.detach_interface(uuid, nic)
            self._unplug(uuid, [nic])
            self.nics.remove(uuid, nic["port_id"])
        log.info("detached port %s from %s on %s", nic["port_id"], uuid, self.host)
        return {"detached": nic["port_id"]}

    # ---- reads
    def list_instances(self, ctx: RequestContext,
                       payload: rpcapi.ListInstances | Received) -> dict[str, int]:
        return self.driver.list_instances()

    def console_output(self, ctx: RequestContext,
                       payload: rpcapi.ConsoleOutput | Received) -> dict[str, str]:
        request = rpcapi.ConsoleOutput.coerce(payload)
        return {"output": self.driver.console_output(request.uuid, request.length)}

    def diagnostics(self, ctx: RequestContext,
                    payload: rpcapi.InstanceDiagnostics | Received) -> dict:
        request = rpcapi.InstanceDiagnostics.coerce(payload)
        return self.driver.diagnostics(request.uuid)
