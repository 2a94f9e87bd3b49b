"""The conductor role: runs the build, delete and power workflows, and is the only writer of
instance state on behalf of hosts.

Every step is a conditional update on (uuid, task_state[, host]), so a step that lost a race
(a delete during a build, a second conductor, a late message) changes nothing and cleans up.
The sweeper ends any task that has run past its timeout, so nothing stays in a task state.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import re
import socket
import threading
import time

from sqlalchemy import select, update

from cirrus.agent.service import agent_topic
from cirrus.bus import BusTimeout, RemoteError
from cirrus.compute import actions, instances, networking, snapshots, states
from cirrus.context import RequestContext
from cirrus.db.models import Image, Instance, utcnow
from cirrus.errors import CirrusError, Conflict, NotFound, is_transient
from cirrus.hosts import reports
from cirrus.hosts.heartbeat import record_heartbeat
from cirrus.hosts.reconcile import Reconciler
from cirrus.scheduler import claims
from cirrus.storage.filestore import FileStore, snapshot_staging_name, snapshot_staging_path
from cirrus.virt.driver import InstanceSpec
from cirrus.virt.libvirt.spec import spec_extra

log = logging.getLogger(__name__)
TOPIC = "conductor"

BUILD_EVENT = "compute__do_build_and_run_instance"
TASK_EVENTS = {
    states.POWERING_OFF: "compute_stop_instance",
    states.POWERING_ON: "compute_start_instance",
    states.REBOOTING: "compute_reboot_instance",
    states.REBOOTING_HARD: "compute_reboot_instance",
    states.IMAGE_SNAPSHOT: snapshots.EVENT,
}
ACTION_OF_TASK = {states.POWERING_OFF: "stop", states.POWERING_ON: "start",
                  states.REBOOTING: "reboot", states.REBOOTING_HARD: "reboot_hard"}


def instance_spec(s, inst: Instance) -> dict:  # noqa: ANN001 - a Session
    """Everything an agent needs to build the VM, as plain data: the agent has no database."""
    image = s.get(Image, inst.image_ref) if inst.image_ref else None
    props = (image.properties or {}) if image is not None else {}
    kernel = s.get(Image, props["kernel_id"]) if props.get("kernel_id") else None
    ramdisk = s.get(Image, props["ramdisk_id"]) if props.get("ramdisk_id") else None
    return dataclasses.asdict(InstanceSpec(
        uuid=inst.uuid, name=inst.hostname or inst.display_name, vcpus=inst.vcpus,
        memory_mb=inst.memory_mb, root_gb=inst.root_gb, image_ref=inst.image_ref,
        user_data=inst.user_data, key_data=inst.key_data, metadata=dict(inst.metadata_items or {}),
        nics=[nic.to_dict() for nic in networking.build_nics(s, inst.nics)],
        extra=spec_extra(inst, image, kernel, ramdisk),
    ))


def forget_build_secrets(s, uuid: str) -> None:  # noqa: ANN001 - a Session
    """Erase the admin password and injected files once the VM has them (or never will)."""
    spec = s.scalar(select(Instance.request_spec).where(Instance.uuid == uuid))
    if spec and any(key in spec for key in instances.BUILD_SECRETS):
        s.execute(update(Instance).where(Instance.uuid == uuid)
                  .values(request_spec=instances.without_build_secrets(spec))
                  .execution_options(synchronize_session=False))


# Each failed build attempt's error, kept in the instance's request_spec until the build
# ends (the retry bookkeeping, as Nova's RequestSpec.retry), so that a build that fails on
# every host it tried says why each attempt failed, not only why no host was left.
BUILD_ERRORS = "build_errors"
MAX_ERROR_KEPT = 2000  # characters of one attempt's error
HIDDEN_HOST = "<host>"


def hide_hosts(text: str, hosts: list[str]) -> str:
    """`text` with the names of `hosts` replaced by HIDDEN_HOST: host names are for admins."""
    for host in sorted({h for h in hosts if h}, key=len, reverse=True):
        text = re.sub(rf"(?<![\w.-]){re.escape(host)}(?![\w-])", HIDDEN_HOST, text)
    return text


def _numbers(numbers: list[int]) -> str:
    if len(numbers) == 1:
        return f"attempt {numbers[0]}"
    return f"attempts {', '.join(map(str, numbers[:-1]))} and {numbers[-1]}"


def attempts_fault(errors: list[dict], final: str | None = None,
                   final_details: str | None = None) -> tuple[str, str]:
    """(message, details) of a build that failed on every host it tried.

    The message is what members and readers see: each attempt's own error without host names
    (attempts that failed alike are named together); the details, admins' only (a 500
    fault's details are), name each attempt's host and add why no host was left (`final`).
    """
    hosts = [e.get("host") or "" for e in errors]
    grouped: dict[str, list[int]] = {}
    for number, err in enumerate(errors, start=1):
        grouped.setdefault(hide_hosts(err.get("error") or "unknown error", hosts), []).append(number)
    message = "Build failed on every host tried: " + "; ".join(
        f"{_numbers(numbers)}: {error}" for error, numbers in grouped.items())
    lines = [f"attempt {n} on {e.get('host') or 'no host'}: {e.get('error') or 'unknown error'}"
             for n, e in enumerate(errors, start=1)]
    if final_details or final:
        lines.append(f"then: {final_details or final}")
    return message, "Build failed on every host tried:\n" + "\n".join(lines)


def record_build_error(inst: Instance, host: str, error: str) -> list[dict]:
    """Add one failed attempt's error to the instance's retry bookkeeping; all of them."""
    spec = dict(inst.request_spec or {})
    errors = [*(spec.get(BUILD_ERRORS) or []), {"host": host, "error": error[:MAX_ERROR_KEPT]}]
    inst.request_spec = {**spec, BUILD_ERRORS: errors}
    return errors


class Conductor:
    def __init__(self, cloud) -> None:  # noqa: ANN001 - cirrus.runtime.Cloud
        self.cloud = cloud
        self.db = cloud.db
        self.bus = cloud.bus
        self.settings = cloud.settings
        self.hostname = socket.gethostname()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._redriven: dict[tuple[str, str], float] = {}

    # ---- lifecycle
    def start(self) -> None:
        self.bus.subscribe(TOPIC, {
            "build_instances": self.build_instances,
            "spawn_result": self.spawn_result,
            "delete_instance": self.delete_instance,
            "power_action": self.power_action,
            "task_result": self.task_result,
            "agent_report": self.agent_report,
            "attach_interface": self.attach_interface,
            "detach_interface": self.detach_interface,
            "snapshot_instance": self.snapshot_instance,
            "snapshot_result": self.snapshot_result,
        }, workers=8)
        self._heartbeat()
        self._thread = threading.Thread(target=self._periodic, name="conductor-loop", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.bus.unsubscribe(TOPIC)
        if self._thread:
            self._thread.join(timeout=5)

    def _heartbeat(self) -> None:
        # Only its own row: the scheduler role records cirrus-scheduler from its own process.
        self.db.run(lambda s: record_heartbeat(s, self.hostname, "cirrus-conductor", TOPIC))

    def _periodic(self) -> None:
        while not self._stop.wait(self.settings.heartbeat_interval):
            try:
                self._heartbeat()
                self.sweep()
            except Exception:
                log.exception("conductor periodic task failed")

    # ---- build
    def build_instances(self, ctx: RequestContext, payload: dict) -> None:
        for uuid in payload["uuids"]:
            try:
                self._build(ctx, uuid)
            except Exception as exc:
                if is_transient(exc):
                    raise  # the bus redelivers the message; builds already sent are skipped
                log.exception("build of %s failed unexpectedly", uuid)
                self._fail_build(ctx, uuid, f"Unexpected error while building: {exc}", code=500)

    def _build(self, ctx: RequestContext, uuid: str) -> None:
        with self.db.reader() as s:
            inst = s.scalar(select(Instance).where(Instance.uuid == uuid))
            if inst is None or inst.deleted:
                return
            if inst.task_state == states.SPAWNING and inst.host:
                # Scheduled already, by a conductor that may have died before telling the
                # agent (this is a redelivery or a re-drive). Spawning is idempotent.
                log.info("build of %s: already on %s, sending the spawn again", uuid, inst.host)
                self.bus.cast(ctx, agent_topic(inst.host), "spawn",
                              {"spec": instance_spec(s, inst)})
                return
            if inst.task_state != states.SCHEDULING:
                return
        try:
            prepared = self.db.run(lambda s: self._prepare(s, ctx, uuid))
        except CirrusError as exc:
            if is_transient(exc):
                raise
            # No port or address for it (a full subnet, a port taken meanwhile): say why.
            self._fail_build(ctx, uuid, f"Build of instance {uuid} aborted: {exc.message}",
                             code=exc.status)
            return
        if prepared is None:
            return
        request, spec = prepared
        try:
            choice = self.bus.call(ctx, "scheduler", "select_destination", request,
                                   timeout=self.settings.rpc_timeout)
        except (BusTimeout, RemoteError) as exc:
            if is_transient(exc):
                raise  # the scheduler could not reach the database: the build is redelivered
            self._fail_build(ctx, uuid, f"The scheduler did not answer: {exc}", code=500)
            return
        if choice.get("gone"):
            return
        if choice["host"] is None:
            # Members and readers see the explanation without host names; admins all of it.
            self._fail_build(ctx, uuid, choice.get("public_reason") or choice["reason"],
                             code=500, details=choice["reason"], after_attempts=True)
            return
        # The scheduler has claimed the resources and recorded the host (task spawning).
        if spec["nics"]:
            self.db.run(lambda s: networking.bind_host(s, spec["nics"], choice["host"]))
        self.bus.cast(ctx, agent_topic(choice["host"]), "spawn", {"spec": spec})

    def _prepare(self, s, ctx: RequestContext, uuid: str) -> tuple[dict, dict] | None:  # noqa: ANN001
        """Make the instance's ports (once) and what the scheduler and the agent need."""
        inst = s.scalar(select(Instance).where(Instance.uuid == uuid).with_for_update())
        if inst is None or inst.deleted or inst.task_state != states.SCHEDULING:
            return None
        networking.allocate(s, ctx, self.settings, inst)
        spec = instance_spec(s, inst)
        pool = spec["extra"].get("storage_pool")
        if pool and (inst.system_metadata or {}).get("storage_pool") != pool:
            inst.system_metadata = {**(inst.system_metadata or {}), "storage_pool": pool}
        wanted = inst.request_spec or {}
        request = {"instance_uuid": uuid, "vcpus": inst.vcpus, "memory_mb": inst.memory_mb,
                   "disk_gb": inst.root_gb, "availability_zone": inst.availability_zone,
                   "exclude_hosts": list(inst.tried_hosts or []), "storage_pool": pool,
                   "force_host": wanted.get("force_host"), "force_node": wanted.get("force_node")}
        return request, spec

    def spawn_result(self, ctx: RequestContext, result: dict) -> None:
        uuid, host = result["uuid"], result["host"]
        if result["ok"]:
            def finish(s):  # noqa: ANN001, ANN202
                """True: built. False: the VM is not wanted. None: a duplicate report."""
                done = s.execute(
                    update(Instance)
                    .where(Instance.uuid == uuid, Instance.host == host,
                           Instance.task_state == states.SPAWNING, Instance.deleted.is_(False))
                    .values(vm_state=states.ACTIVE, task_state=None, task_started_at=None,
                            power_state=result.get("power_state", states.RUNNING),
                            launched_at=utcnow(), progress=100)
                    .execution_options(synchronize_session=False)
                ).rowcount
                if done:
                    actions.record_event(s, uuid, ctx.request_id, BUILD_EVENT, host, actions.SUCCESS)
                    forget_build_secrets(s, uuid)
                    nics = s.scalar(select(Instance.nics).where(Instance.uuid == uuid))
                    networking.bind_host(s, nics, host, active=True)
                    return True
                inst = s.scalar(select(Instance).where(Instance.uuid == uuid))
                if (inst is not None and not inst.deleted and inst.host == host
                        and inst.vm_state in (states.ACTIVE, states.STOPPED)):
                    return None  # a second spawn of a VM already running here: nothing to do
                return False

            built = self.db.run(finish)
            if built:
                log.info("instance %s active on %s", uuid, host)
            if built is False:
                # Deleted (or moved) while it was being built: this VM is not wanted.
                self.bus.cast(ctx, agent_topic(host), "destroy", {"uuid": uuid})
            return
        self._spawn_failed(ctx, uuid, host, result.get("error") or "unknown error",
                           result.get("details") or "")

    def _spawn_failed(self, ctx: RequestContext, uuid: str, host: str, error: str,
                      details: str) -> None:
        max_attempts = max(1, self.settings.build_max_attempts)

        def retry_or_fail(s):  # noqa: ANN001, ANN202
            inst = s.scalar(select(Instance).where(Instance.uuid == uuid))
            if inst is None or inst.deleted or inst.task_state != states.SPAWNING or inst.host != host:
                return "gone"  # deleted or moved on meanwhile; that path owns the claim
            claims.release(s, uuid)
            tried = list(inst.tried_hosts or []) + [host]
            inst.tried_hosts = tried
            inst.build_attempts = (inst.build_attempts or 0) + 1
            errors = record_build_error(inst, host, error)
            if inst.build_attempts < max_attempts:
                inst.host = inst.node = None
                inst.task_state = states.SCHEDULING
                inst.task_started_at = utcnow()
                return "retry"
            message, summary = attempts_fault(
                errors, f"no attempt left ({inst.build_attempts} of build_max_attempts "
                        f"{max_attempts} made)")
            self._set_error(s, ctx, inst, message, f"{summary}\n{details}" if details else summary,
                            host)
            return "failed"

        outcome = self.db.run(retry_or_fail)
        log.warning("spawn of %s on %s failed (%s): %s", uuid, host, outcome, error)
        if outcome == "retry":
            self._build(ctx, uuid)

    def _set_error(self, s, ctx: RequestContext, inst: Instance, message: str, details: str,  # noqa: ANN001
                   host: str | None, code: int = 500) -> None:
        inst.vm_state = states.ERROR
        inst.task_state = None
        inst.task_started_at = None
        inst.power_state = states.NOSTATE
        inst.request_spec = instances.without_build_secrets(inst.request_spec)
        actions.add_fault(s, inst.uuid, code, message, details, host)
        actions.record_event(s, inst.uuid, ctx.request_id, BUILD_EVENT, host, actions.ERROR,
                             traceback=details or message)

    def _fail_build(self, ctx: RequestContext, uuid: str, message: str, code: int = 500,
                    details: str = "", *, after_attempts: bool = False) -> None:
        """End a build in ERROR with a fault: `message` for everyone, `details` for admins.

        `after_attempts`: no host is left to try; if earlier attempts failed, the fault says
        what each of them failed with (and `details` why no host was left)."""
        def fail(s):  # noqa: ANN001, ANN202
            inst = s.scalar(select(Instance).where(Instance.uuid == uuid))
            if inst is None or inst.deleted or inst.task_state not in (states.SCHEDULING,
                                                                      states.SPAWNING):
                return None
            host = inst.host
            errors = (inst.request_spec or {}).get(BUILD_ERRORS)
            fault_message, fault_details = message, details
            if after_attempts and errors:
                fault_message, fault_details = attempts_fault(errors, message, details)
            claims.release(s, uuid)
            # As Nova: a build given up keeps no ports (the user's are unbound and kept).
            networking.deallocate(s, inst.nics)
            inst.nics = []
            self._set_error(s, ctx, inst, fault_message, fault_details, host, code)
            return host

        host = self.db.run(fail)
        if host:
            self.bus.cast(ctx, agent_topic(host), "destroy", {"uuid": uuid})

    # ---- delete
    def delete_instance(self, ctx: RequestContext, payload: dict) -> None:
        uuid = payload["uuid"]
        with self.db.reader() as s:
            inst = s.scalar(select(Instance).where(Instance.uuid == uuid))
            if inst is None or inst.deleted:
                return
            host = inst.host
        if host:
            try:
                self.bus.call(ctx, agent_topic(host), "destroy", {"uuid": uuid},
                              timeout=self.settings.rpc_timeout)
            except (BusTimeout, RemoteError) as exc:
                # The agent's next report finds the VM orphaned and destroys it.
                log.warning("destroy of %s on %s failed, deleting the record anyway: %s",
                            uuid, host, exc)

        def finish(s):  # noqa: ANN001, ANN202
            claims.release(s, uuid)
            nics = s.scalar(select(Instance.nics).where(Instance.uuid == uuid,
                                                        Instance.deleted.is_(False)))
            networking.deallocate(s, nics or [])
            now = utcnow()
            done = s.execute(
                update(Instance).where(Instance.uuid == uuid, Instance.deleted.is_(False))
                .values(deleted=True, deleted_at=now, terminated_at=now, vm_state=states.DELETED,
                        task_state=None, task_started_at=None, power_state=states.NOSTATE)
                .execution_options(synchronize_session=False)
            ).rowcount
            if done:
                forget_build_secrets(s, uuid)
                actions.record_event(s, uuid, ctx.request_id, "compute_terminate_instance", host,
                                     actions.SUCCESS)

        self.db.run(finish)
        log.info("instance %s deleted", uuid)

    # ---- NIC hot-plug (calls from the API: the answer says it is done, or why not)
    def _pluggable(self, inst: Instance | None, uuid: str, action: str) -> Instance:
        if inst is None or inst.deleted:
            raise NotFound(f"Instance {uuid} could not be found.")
        if inst.task_state is not None or inst.vm_state not in (states.ACTIVE, states.STOPPED) \
                or not inst.host:
            raise Conflict(f"Cannot '{action}' instance {uuid} while it is in vm_state "
                           f"{inst.vm_state}" + (f", task_state {inst.task_state}"
                                                  if inst.task_state else ""))
        return inst

    def attach_interface(self, ctx: RequestContext, payload: dict) -> dict:
        uuid = payload["uuid"]

        def add(s):  # noqa: ANN001, ANN202
            inst = self._pluggable(s.scalar(select(Instance).where(Instance.uuid == uuid)
                                            .with_for_update()), uuid, "attach_interface")
            item = networking.resolve_auto(s, ctx, self.settings, inst.project_id,
                                           payload["request"])[0]
            existing = list(inst.nics or [])
            index = max((n["index"] for n in existing), default=-1) + 1
            nic = networking.allocate_one(s, ctx, self.settings, inst, item, index)
            inst.nics = [*existing, nic]
            networking.bind_host(s, [nic], inst.host, active=True)
            actions.start_action(s, ctx, uuid, "attach_interface")
            return inst.host, nic, networking.build_nics(s, [nic])[0].to_dict()

        host, nic, plug = self.db.run(add)
        try:
            self.bus.call(ctx, agent_topic(host), "attach_interface", {"uuid": uuid, "nic": plug},
                          timeout=self.settings.rpc_timeout)
        except (BusTimeout, RemoteError) as exc:
            self.db.run(lambda s: self._forget_nic(s, uuid, nic))
            raise Conflict(f"Failed to attach network adapter device to {uuid}: {exc}") from exc
        log.info("instance %s: port %s attached as %s", uuid, nic["port_id"], nic["name"])
        return {"port_id": nic["port_id"]}

    def detach_interface(self, ctx: RequestContext, payload: dict) -> dict:
        uuid, port_id = payload["uuid"], payload["port_id"]
        with self.db.reader() as s:
            inst = self._pluggable(s.scalar(select(Instance).where(Instance.uuid == uuid)),
                                   uuid, "detach_interface")
            nic = next((n for n in inst.nics or [] if n["port_id"] == port_id), None)
            if nic is None:
                raise NotFound(f"Port {port_id} is not attached")
            host, plug = inst.host, networking.build_nics(s, [nic])[0].to_dict()
        try:
            self.bus.call(ctx, agent_topic(host), "detach_interface", {"uuid": uuid, "nic": plug},
                          timeout=self.settings.rpc_timeout)
        except (BusTimeout, RemoteError) as exc:
            raise Conflict(f"Failed to detach network adapter device from {uuid}: {exc}") from exc

        def remove(s):  # noqa: ANN001, ANN202
            self._forget_nic(s, uuid, nic)
            actions.start_action(s, ctx, uuid, "detach_interface")

        self.db.run(remove)
        log.info("instance %s: port %s detached", uuid, port_id)
        return {}

    @staticmethod
    def _forget_nic(s, uuid: str, nic: dict) -> None:  # noqa: ANN001
        inst = s.scalar(select(Instance).where(Instance.uuid == uuid).with_for_update())
        if inst is not None:
            inst.nics = [n for n in inst.nics or [] if n["port_id"] != nic["port_id"]]
        networking.deallocate(s, [nic])

    # ---- power
    def power_action(self, ctx: RequestContext, payload: dict) -> None:
        uuid, task = payload["uuid"], payload["task"]
        with self.db.reader() as s:
            inst = s.scalar(select(Instance).where(Instance.uuid == uuid))
            if inst is None or inst.deleted or inst.task_state != task:
                return
            host = inst.host
        if not host:
            self.task_result(ctx, {"uuid": uuid, "task": task, "ok": False, "host": None,
                                   "error": "The instance has no host."})
            return
        self.bus.cast(ctx, agent_topic(host), "power",
                      {"uuid": uuid, "task": task, "action": ACTION_OF_TASK[task]})

    def task_result(self, ctx: RequestContext, result: dict) -> None:
        uuid, task = result["uuid"], result["task"]

        def finish(s):  # noqa: ANN001, ANN202
            values: dict = {"task_state": None, "task_started_at": None}
            if result["ok"]:
                vm_state, power_state = states.TASK_RESULTS[task]
                values.update(vm_state=vm_state, power_state=result.get("power_state", power_state))
            elif result.get("power_state") is not None:
                values["power_state"] = result["power_state"]
            done = s.execute(
                update(Instance).where(Instance.uuid == uuid, Instance.task_state == task,
                                       Instance.deleted.is_(False))
                .values(**values).execution_options(synchronize_session=False)
            ).rowcount
            if done:
                actions.record_event(
                    s, uuid, ctx.request_id, TASK_EVENTS.get(task, task), result.get("host"),
                    actions.SUCCESS if result["ok"] else actions.ERROR,
                    traceback=None if result["ok"] else result.get("details") or result.get("error"))

        self.db.run(finish)

    # ---- snapshots (createImage): the agent writes the file, the conductor imports it
    def snapshot_instance(self, ctx: RequestContext, payload: dict) -> None:
        uuid, image_id = payload["uuid"], payload["image_id"]
        with self.db.reader() as s:
            inst = s.scalar(select(Instance).where(Instance.uuid == uuid))
            if inst is None or inst.deleted or inst.task_state != states.IMAGE_SNAPSHOT:
                return
            host = inst.host
        result = {"uuid": uuid, "image_id": image_id, "host": host,
                  "file": snapshot_staging_name(image_id)}
        if not host:
            self.snapshot_result(ctx, {**result, "ok": False, "error": "The instance has no host."})
            return
        self.bus.cast(ctx, agent_topic(host), "snapshot", result)

    def snapshot_result(self, ctx: RequestContext, result: dict) -> None:
        uuid, image_id = result["uuid"], result["image_id"]
        store = FileStore(self.settings.effective_image_dir)
        source = snapshot_staging_path(store.root, result["file"])
        error = None if result["ok"] else (result.get("details") or result.get("error"))
        try:
            if error is None:
                snapshots.import_snapshot(self.db, store, ctx, image_id, source)
        except (CirrusError, OSError) as exc:
            if is_transient(exc):
                raise  # the bus redelivers the result; the staging file is kept for it
            error = f"Importing the snapshot of {uuid} into image {image_id} failed: {exc}"
        snapshots.remove_staging(source)
        if error is not None:
            log.warning("snapshot of %s into image %s failed: %s", uuid, image_id, error)
            snapshots.discard_image(self.db, store, image_id)
        else:
            log.info("snapshot of %s is image %s", uuid, image_id)
        snapshots.finish_task(self.db, ctx, uuid, result.get("host"), error)

    # ---- hosts: agent reports and reconciliation live in cirrus.hosts
    def agent_report(self, ctx: RequestContext, report: dict) -> None:
        reports.handle_report(ctx, report, db=self.db, settings=self.settings,
                              reconciler=self._reconciler())

    def reconcile(self, ctx: RequestContext, host: str, running: dict[str, int], *,
                  startup: bool = False, taken_at: float | None = None) -> None:
        self._reconciler().reconcile(ctx, host, running, startup=startup, taken_at=taken_at)

    def _reconciler(self) -> Reconciler:
        return Reconciler(self.db, self.bus, self.settings, instance_spec=instance_spec,
                          build_event=BUILD_EVENT)

    # ---- sweeper
    def sweep(self) -> int:
        """Re-drive stalled tasks and end those past their timeout. Returns how many ended.

        A task whose message was lost (a process killed between its commit and its send, a
        broker that refused it) makes no progress; after `task_redrive_after` seconds, and
        again every as long, it is sent again. Every step is conditional, so a duplicate of
        a message still in flight changes nothing.
        """
        now = utcnow()
        build_cutoff = now - dt.timedelta(seconds=self.settings.build_timeout)
        task_cutoff = now - dt.timedelta(seconds=self.settings.task_timeout)
        redrive_cutoff = now - dt.timedelta(seconds=self.settings.task_redrive_after)
        with self.db.reader() as s:
            stuck = s.execute(
                select(Instance.uuid, Instance.task_state, Instance.task_started_at)
                .where(Instance.deleted.is_(False), Instance.task_state.is_not(None),
                       Instance.task_started_at < max(build_cutoff, task_cutoff, redrive_cutoff))
            ).all()
        ended = 0
        ctx = RequestContext.admin()
        for uuid, task, started in stuck:
            building = task in (states.SCHEDULING, states.SPAWNING)
            if started < (build_cutoff if building else task_cutoff):
                ended += self._end_task(ctx, uuid, task)
            elif started < redrive_cutoff and self._due_for_redrive(uuid, task):
                log.warning("instance %s: %s has made no progress since %s; sending it again",
                            uuid, task, started)
                self._redrive(ctx, uuid, task)
        return ended

    def _due_for_redrive(self, uuid: str, task: str) -> bool:
        """Once per `task_redrive_after` per (instance, task), in this process."""
        now = time.monotonic()
        key = (uuid, task)
        if now - self._redriven.get(key, -math.inf) < self.settings.task_redrive_after:
            return False
        self._redriven[key] = now
        if len(self._redriven) > 10000:
            self._redriven.clear()
        return True

    def _redrive(self, ctx: RequestContext, uuid: str, task: str) -> None:
        if task in (states.SCHEDULING, states.SPAWNING):
            self._build(ctx, uuid)
        elif task == states.DELETING:
            self.delete_instance(ctx, {"uuid": uuid})
        elif task in ACTION_OF_TASK:
            self.power_action(ctx, {"uuid": uuid, "task": task})

    def _end_task(self, ctx: RequestContext, uuid: str, task: str) -> int:
        if task in (states.SCHEDULING, states.SPAWNING):
            self._fail_build(ctx, uuid, f"Build timed out after "
                             f"{self.settings.build_timeout:g} s in task_state {task}.")
        elif task == states.DELETING:
            self.delete_instance(ctx, {"uuid": uuid})
        else:
            if task == states.IMAGE_SNAPSHOT:  # its image will get no data now
                store = FileStore(self.settings.effective_image_dir)
                for image_id in snapshots.unfinished_images_of(self.db, uuid):
                    snapshots.discard_image(self.db, store, image_id)
            self.task_result(ctx, {"uuid": uuid, "task": task, "ok": False, "host": None,
                                   "error": f"{task} timed out"})
        return 1
