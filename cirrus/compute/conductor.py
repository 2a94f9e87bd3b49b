"""The conductor role: the bus endpoint of the instance workflows, and the only writer of
instance state on behalf of hosts.

The workflows themselves are in `cirrus.compute.workflows` (build, delete, power, interfaces,
snapshot) and the sweeper beside them; this class subscribes their handlers to the
conductor's topic, runs the periodic loop (heartbeat, sweep) and takes the agents' reports.
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
import threading
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from cirrus.agent.service import agent_topic
from cirrus.bus import BusTimeout, RemoteError
from cirrus.compute import actions, instances, states
from cirrus.compute.liveness import AGENT_BINARY, record_heartbeat
from cirrus.compute.workflows import build, delete, interfaces, power, snapshot
from cirrus.compute.workflows.build import BUILD_EVENT, forget_build_secrets, instance_spec
from cirrus.compute.workflows.deps import WorkflowDeps
from cirrus.compute.workflows.sweeper import Sweeper
from cirrus.context import RequestContext
from cirrus.db.models import ComputeNode, Instance, utcnow

if TYPE_CHECKING:
    from cirrus.runtime import Cloud

__all__ = ["TOPIC", "Conductor", "forget_build_secrets", "instance_spec"]

log = logging.getLogger(__name__)
TOPIC = "conductor"


class Conductor:
    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self.db = cloud.db
        self.bus = cloud.bus
        self.settings = cloud.settings
        self.deps = WorkflowDeps(db=cloud.db, bus=cloud.bus, settings=cloud.settings)
        self.sweeper = Sweeper(self.deps)
        self.hostname = socket.gethostname()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

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

    def sweep(self) -> int:
        """Re-drive stalled tasks and end those past their timeout. Returns how many ended."""
        return self.sweeper.sweep()

    # ---- the workflows' messages (the bus contract: these names do not change)
    def build_instances(self, ctx: RequestContext, payload: dict) -> None:
        build.build_instances(self.deps, ctx, payload)

    def spawn_result(self, ctx: RequestContext, result: dict) -> None:
        build.spawn_result(self.deps, ctx, result)

    def delete_instance(self, ctx: RequestContext, payload: dict) -> None:
        delete.delete_instance(self.deps, ctx, payload)

    def attach_interface(self, ctx: RequestContext, payload: dict) -> dict:
        return interfaces.attach_interface(self.deps, ctx, payload)

    def detach_interface(self, ctx: RequestContext, payload: dict) -> dict:
        return interfaces.detach_interface(self.deps, ctx, payload)

    def power_action(self, ctx: RequestContext, payload: dict) -> None:
        power.power_action(self.deps, ctx, payload)

    def task_result(self, ctx: RequestContext, result: dict) -> None:
        power.task_result(self.deps, ctx, result)

    def snapshot_instance(self, ctx: RequestContext, payload: dict) -> None:
        snapshot.snapshot_instance(self.deps, ctx, payload)

    def snapshot_result(self, ctx: RequestContext, result: dict) -> None:
        snapshot.snapshot_result(self.deps, ctx, result)

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
