"""The conductor role: runs the build, delete and power workflows, and is the only writer of
instance state on behalf of hosts.

Every step is a conditional update on (uuid, task_state[, host]), so a step that lost a race
(a delete during a build, a second conductor, a late message) changes nothing and cleans up.
The sweeper ends any task that has run past its timeout, so nothing stays in a task state.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
import socket
import threading
import time

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from cirrus.agent.service import agent_topic
from cirrus.bus import BusTimeout, RemoteError
from cirrus.compute import actions, capabilities, instances, networking, snapshots, specs, states
from cirrus.compute.liveness import AGENT_BINARY, record_heartbeat
from cirrus.context import RequestContext
from cirrus.db.models import ComputeNode, Instance, utcnow
from cirrus.errors import CirrusError, Conflict, NotFound, is_transient
from cirrus.scheduler import claims
from cirrus.storage.filestore import FileStore, snapshot_staging_name, snapshot_staging_path

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
    return specs.build_spec(s, inst).to_dict()


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
        pool = spec["storage_pool"]
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
            capabilities.require(s, inst, "hot_plug_nic", "attach_interface")
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
            capabilities.require(s, inst, "hot_plug_nic", "detach_interface")
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

    # ---- hosts
    def agent_report(self, ctx: RequestContext, report: dict) -> None:
        host = report["host"]
        stats = report.get("stats")

        def record(s):  # noqa: ANN001, ANN202
            record_heartbeat(s, host, AGENT_BINARY, agent_topic(host),
                             self.settings.default_availability_zone)
            if stats:
                self._record_node(s, host, stats)

        try:
            self.db.run(record)
        except IntegrityError:
            # A new host's first reports (a heartbeat and the full one, queued while no
            # conductor ran) handled at once: the other worker inserted its rows first, so
            # this one now finds and updates them.
            self.db.run(record)
        if report.get("instances") is not None:
            self.reconcile(ctx, host, {k: int(v) for k, v in report["instances"].items()},
                           startup=bool(report.get("startup")), taken_at=report.get("taken_at"))

    def _record_node(self, s, host: str, stats: dict) -> None:  # noqa: ANN001
        import uuid as uuidlib

        node = s.scalar(select(ComputeNode).where(ComputeNode.hypervisor_hostname == host))
        if node is None:
            node = ComputeNode(
                uuid=str(uuidlib.uuid4()), host=host, hypervisor_hostname=host,
                availability_zone=self.settings.default_availability_zone,
                cpu_allocation_ratio=self.settings.cpu_allocation_ratio,
                ram_allocation_ratio=self.settings.ram_allocation_ratio,
                disk_allocation_ratio=self.settings.disk_allocation_ratio,
                vcpus_used=0, memory_mb_used=0, local_gb_used=0, running_vms=0)
            s.add(node)
        node.vcpus = stats["vcpus"]
        node.memory_mb = stats["memory_mb"]
        node.local_gb = stats["local_gb"]
        node.hypervisor_type = stats["hypervisor_type"]
        node.hypervisor_version = stats["hypervisor_version"]
        node.host_ip = stats.get("host_ip")
        node.cpu_info = stats.get("cpu_info") or {}
        node.storage_pools = stats.get("storage_pools") or {}  # absent: an older agent
        node.capabilities = stats.get("capabilities") or None  # absent: an older agent

    # Instances changed this close to (or after) the moment the agent read its VM list are
    # left to the next sync: the list may predate the change. Covers modest clock skew too.
    RECONCILE_SETTLE = dt.timedelta(seconds=5)

    def reconcile(self, ctx: RequestContext, host: str, running: dict[str, int], *,
                  startup: bool = False, taken_at: float | None = None) -> None:
        """Make the database and the host agree after an agent (re)start or a periodic sync.

        On a periodic sync, instances changed since shortly before the list was read are left
        alone; on the first report after a start the list is fresh and everything is checked.

        - VMs the database deleted or never knew are destroyed.
        - A build the agent has finished is completed; on the agent's first report after it
          started, a build it does not have is sent again (nothing of it is in flight).
        - An active VM that shut down by itself becomes stopped.
        - A VM missing from the host is confirmed with a fresh query before its server goes
          to ERROR with a fault.
        """
        settled_before = None
        if taken_at is not None and not startup:
            taken = dt.datetime.fromtimestamp(float(taken_at), dt.UTC).replace(tzinfo=None)
            settled_before = taken - self.RECONCILE_SETTLE
        to_destroy: list[str] = []
        to_respawn: list[dict] = []
        suspects: list[str] = []

        def work(s):  # noqa: ANN001, ANN202
            live = {i.uuid: i for i in s.scalars(
                select(Instance).where(Instance.host == host, Instance.deleted.is_(False)))}
            for uuid in running:
                if uuid not in live:
                    to_destroy.append(uuid)  # deleted in the database, or never known
            for uuid, inst in live.items():
                power = running.get(uuid)
                if inst.task_state == states.DELETING:
                    to_destroy.append(uuid)
                elif inst.task_state == states.SPAWNING:
                    if power is not None:
                        inst.vm_state, inst.task_state, inst.task_started_at = states.ACTIVE, None, None
                        inst.power_state, inst.launched_at = power, inst.launched_at or utcnow()
                        inst.request_spec = instances.without_build_secrets(inst.request_spec)
                        actions.record_event(s, uuid, ctx.request_id, BUILD_EVENT, host,
                                             actions.SUCCESS)
                    elif startup:
                        to_respawn.append(instance_spec(s, inst))
                elif settled_before is not None and (inst.updated_at or inst.created_at) >= settled_before:
                    continue  # changed after the list was read: the next sync decides
                elif inst.task_state is None and inst.vm_state in (states.ACTIVE, states.STOPPED):
                    if power is None:
                        suspects.append(uuid)
                    elif inst.vm_state == states.ACTIVE and power == states.SHUTDOWN:
                        inst.vm_state, inst.power_state = states.STOPPED, power
                    elif inst.power_state != power:
                        inst.power_state = power

        self.db.run(work)
        for uuid in to_destroy:
            log.info("reconcile: destroying %s on %s", uuid, host)
            self.bus.cast(ctx, agent_topic(host), "destroy", {"uuid": uuid})
        for spec in to_respawn:
            log.info("reconcile: building %s on %s again after the agent restarted", spec["uuid"], host)
            self.bus.cast(ctx, agent_topic(host), "spawn", {"spec": spec})
        if suspects:
            self._confirm_missing(ctx, host, suspects)

    def _confirm_missing(self, ctx: RequestContext, host: str, suspects: list[str]) -> None:
        try:
            present = self.bus.call(ctx, agent_topic(host), "list_instances", {},
                                    timeout=self.settings.rpc_timeout)
        except (BusTimeout, RemoteError) as exc:
            log.warning("reconcile: cannot confirm missing VMs on %s: %s", host, exc)
            return
        gone = [uuid for uuid in suspects if uuid not in present]
        # The host is named to admins only (a 500 fault's details).
        message = ("The VM is no longer on its host: found missing when the agent reported. "
                   "Delete the server or rebuild it.")
        details = f"The VM is no longer on host {host}."

        def mark(s):  # noqa: ANN001, ANN202
            for uuid in gone:
                done = s.execute(
                    update(Instance)
                    .where(Instance.uuid == uuid, Instance.host == host,
                           Instance.task_state.is_(None), Instance.deleted.is_(False),
                           Instance.vm_state.in_((states.ACTIVE, states.STOPPED)))
                    .values(vm_state=states.ERROR, power_state=states.NOSTATE)
                    .execution_options(synchronize_session=False)).rowcount
                if done:
                    actions.add_fault(s, uuid, 500, message, details, host)
                    log.warning("instance %s: %s %s", uuid, message, details)

        if gone:
            self.db.run(mark)

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
