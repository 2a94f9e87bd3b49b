"""The conductor role: the bus endpoint of the instance workflows, and the only writer of
instance state on behalf of hosts.

The workflows themselves are in `cirrus.compute.workflows` (build, delete, power, interfaces,
snapshot) and the sweeper beside them; this class subscribes their handlers to the
conductor's topic, runs the periodic loop (heartbeat, sweep) and takes the agents' reports.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import TYPE_CHECKING

from cirrus.compute import l2peers, rpcapi
from cirrus.compute.rpcapi import CONDUCTOR_TOPIC
from cirrus.compute.workflows import build, delete, interfaces, power, resize, shelve, snapshot
from cirrus.compute.workflows import volumes as volume_flows
from cirrus.compute.workflows.build import BUILD_EVENT, forget_build_secrets, instance_spec
from cirrus.compute.workflows.deps import WorkflowDeps
from cirrus.compute.workflows.sweeper import Sweeper
from cirrus.context import RequestContext
from cirrus.hosts import reports
from cirrus.hosts.heartbeat import record_heartbeat
from cirrus.hosts.reconcile import Reconciler
from cirrus.network import enforcement

if TYPE_CHECKING:
    from cirrus.services import Deps

__all__ = ["Conductor", "forget_build_secrets", "instance_spec"]

log = logging.getLogger(__name__)


class Conductor:
    def __init__(self, cloud: Deps) -> None:
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
        self.bus.subscribe(CONDUCTOR_TOPIC, rpcapi.endpoints(self), workers=8)
        self._heartbeat()
        self._thread = threading.Thread(target=self._periodic, name="conductor-loop", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.bus.unsubscribe(CONDUCTOR_TOPIC)
        if self._thread:
            self._thread.join(timeout=5)

    def _heartbeat(self) -> None:
        # Only its own row: the scheduler role records cirrus-scheduler from its own process.
        self.db.run(lambda s: record_heartbeat(s, self.hostname, "cirrus-conductor", CONDUCTOR_TOPIC))

    def _periodic(self) -> None:
        since_peers = 0.0
        while not self._stop.wait(self.settings.heartbeat_interval):
            try:
                self._heartbeat()
                self.sweep()
            except Exception:
                log.exception("conductor periodic task failed")
            since_peers += self.settings.heartbeat_interval
            if since_peers >= self.settings.sync_interval:  # l2: VXLAN peers, whole views
                since_peers = 0.0
                try:
                    l2peers.resync(self.db, self.deps.agents, RequestContext.admin())
                except Exception:
                    log.exception("conductor: resync of the network peers failed")

    def sweep(self) -> int:
        """Re-drive stalled tasks and end those past their timeout. Returns how many ended."""
        ended = self.sweeper.sweep()
        # issue 15: attachments stuck reserved/attaching/detaching are rolled back
        ended += volume_flows.sweep_attachments(
            self.deps, max(self.settings.volume_task_timeout, 3 * self.settings.rpc_timeout))
        return ended

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

    def attach_volume(self, ctx: RequestContext, payload: dict) -> dict:
        return volume_flows.attach_volume(self.deps, ctx, payload)

    def detach_volume(self, ctx: RequestContext, payload: dict) -> dict:
        return volume_flows.detach_volume(self.deps, ctx, payload)

    def extend_attached_volume(self, ctx: RequestContext, payload: dict) -> None:
        volume_flows.extend_attached_volume(self.deps, ctx, payload)

    def power_action(self, ctx: RequestContext, payload: dict) -> None:
        power.power_action(self.deps, ctx, payload)

    def task_result(self, ctx: RequestContext, result: dict) -> None:
        power.task_result(self.deps, ctx, result)

    def snapshot_instance(self, ctx: RequestContext, payload: dict) -> None:
        snapshot.snapshot_instance(self.deps, ctx, payload)

    def snapshot_result(self, ctx: RequestContext, result: dict) -> None:
        snapshot.snapshot_result(self.deps, ctx, result)

    # ---- shelve (comp-b)
    def shelve_instance(self, ctx: RequestContext, payload: dict) -> None:
        shelve.shelve_instance(self.deps, ctx, payload)

    def shelve_result(self, ctx: RequestContext, result: dict) -> None:
        shelve.shelve_result(self.deps, ctx, result)

    def offload_instance(self, ctx: RequestContext, payload: dict) -> None:
        shelve.offload(self.deps, ctx, payload)

    def unshelve_instance(self, ctx: RequestContext, payload: dict) -> None:
        shelve.unshelve_instance(self.deps, ctx, payload)

    # ---- resize and cold migrate (comp-b)
    def resize_instance(self, ctx: RequestContext, payload: dict) -> None:
        resize.resize_instance(self.deps, ctx, payload)

    def resize_result(self, ctx: RequestContext, result: dict) -> None:
        resize.resize_result(self.deps, ctx, result)

    def confirm_resize(self, ctx: RequestContext, payload: dict) -> None:
        resize.confirm(self.deps, ctx, payload)

    def revert_resize(self, ctx: RequestContext, payload: dict) -> None:
        resize.revert(self.deps, ctx, payload)

    # ---- routers (issue 14, l3): what an L3 host made of a router sets its status
    def router_status(self, ctx: RequestContext, payload: dict) -> None:
        from cirrus.network.l3.control import record_status

        record_status(self.db, payload["host"], payload["router_id"], bool(payload["built"]),
                      payload.get("error"))

    # ---- hosts: agent reports and reconciliation live in cirrus.hosts
    def agent_report(self, ctx: RequestContext, report: dict) -> None:
        reports.handle_report(ctx, report, db=self.db, settings=self.settings,
                              reconciler=self._reconciler())
        if report.get("startup"):  # l2: a started agent gets its whole VXLAN state
            l2peers.push_host(self.db, self.deps.agents, ctx, report["host"])
        if report.get("startup"):  # an agent (re)started: its security groups as they are now
            enforcement.send(self.db, self.deps.agents, ctx, {report["host"]})
        if report.get("dhcp") and report.get("instances") is not None:  # dhcp: full reports
            from cirrus.network.dhcp.control import sync_host

            try:
                sync_host(self.cloud, ctx, report["host"])
            except Exception:  # the next full report tries again
                log.exception("dhcp: full sync of %s failed", report["host"])
        if report.get("l3") and report.get("instances") is not None:  # l3: full reports
            from cirrus.network.l3.control import sync_host as sync_l3_host

            try:
                sync_l3_host(self.cloud, ctx, report["host"])
            except Exception:  # the next full report tries again
                log.exception("l3: full sync of %s failed", report["host"])

    def reconcile(self, ctx: RequestContext, host: str, running: dict[str, int], *,
                  startup: bool = False, taken_at: float | None = None) -> None:
        self._reconciler().reconcile(ctx, host, running, startup=startup, taken_at=taken_at)

    def _reconciler(self) -> Reconciler:
        return Reconciler(self.db, self.bus, self.settings, instance_spec=instance_spec,
                          build_event=BUILD_EVENT)
