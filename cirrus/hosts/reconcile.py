"""Reconciliation: make the database and a host agree on the VMs the host runs.

The agent reports the VMs it runs (uuid -> power state) at start and every sync interval;
the database wins for what should exist, the host for what is running:

- VMs the database deleted or never knew are destroyed.
- A build the agent has finished is completed; on the agent's first report after it
  started, a build it does not have is sent again (nothing of it is in flight).
- An active VM that shut down by itself becomes stopped; a power state that changed is
  recorded.
- A VM missing from the host is confirmed with a fresh query before its server goes to
  ERROR with a fault.

On a periodic sync, instances changed since shortly before the list was read are left
alone (the list may predate the change); on the first report after a start the list is
fresh and everything is checked.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cirrus.agent.rpcapi import AgentAPI
from cirrus.bus import Bus, BusTimeout, RemoteError
from cirrus.compute import actions, instances, lifecycle, resizing, states
from cirrus.config import Settings
from cirrus.context import RequestContext
from cirrus.db.engine import Database
from cirrus.db.models import Instance, utcnow

log = logging.getLogger(__name__)

# Instances changed this close to (or after) the moment the agent read its VM list are
# left to the next sync: the list may predate the change. Covers modest clock skew too.
SETTLE = dt.timedelta(seconds=5)

InstanceSpecOf = Callable[[Session, Instance], dict[str, Any]]


class Reconciler:
    """Reconciles one host's report at a time; holds no state between reports.

    `instance_spec` (what an agent needs to build a VM) and `build_event` (the action event
    a finished build records) belong to the build workflow: they are given, so that hosts
    never imports the conductor.
    """

    def __init__(self, db: Database, bus: Bus, settings: Settings, *,
                 instance_spec: InstanceSpecOf, build_event: str) -> None:
        self.db = db
        self.bus = bus
        self.agents = AgentAPI(bus)
        self.settings = settings
        self.instance_spec = instance_spec
        self.build_event = build_event

    def reconcile(self, ctx: RequestContext, host: str, running: dict[str, int], *,
                  startup: bool = False, taken_at: float | None = None) -> None:
        """Make the database and `host` agree after an agent (re)start or a periodic sync."""
        settled_before = None
        if taken_at is not None and not startup:
            taken = dt.datetime.fromtimestamp(float(taken_at), dt.UTC).replace(tzinfo=None)
            settled_before = taken - SETTLE
        to_destroy: list[str] = []
        to_respawn: list[dict[str, Any]] = []
        suspects: list[str] = []

        def work(s: Session) -> None:
            live = {i.uuid: i for i in s.scalars(
                select(Instance).where(Instance.host == host, Instance.deleted.is_(False)))}
            moving = resizing.moving_on(s, host) if running else set()  # comp-b
            for uuid in running:
                if uuid not in live and uuid not in moving:
                    to_destroy.append(uuid)  # deleted in the database, or never known
            for uuid, inst in live.items():
                power = running.get(uuid)
                if inst.task_state == states.DELETING:
                    to_destroy.append(uuid)
                elif inst.task_state == states.SPAWNING:
                    if power is not None:
                        lifecycle.transition(s, inst, "spawned", task_started_at=None,
                                             power_state=power,
                                             launched_at=inst.launched_at or utcnow())
                        inst.request_spec = instances.without_build_secrets(inst.request_spec)
                        actions.record_event(s, uuid, ctx.request_id, self.build_event, host,
                                             actions.SUCCESS)
                    elif startup:
                        to_respawn.append(self.instance_spec(s, inst))
                elif settled_before is not None and (inst.updated_at or inst.created_at) >= settled_before:
                    continue  # changed after the list was read: the next sync decides
                elif inst.task_state is None and inst.vm_state in (states.ACTIVE, states.STOPPED):
                    if power is None:
                        suspects.append(uuid)
                    elif inst.vm_state == states.ACTIVE and power == states.SHUTDOWN:
                        lifecycle.transition(s, inst, "stopped_by_guest", power_state=power)
                    elif inst.power_state != power:
                        inst.power_state = power

        self.db.run(work)
        for uuid in to_destroy:
            log.info("reconcile: destroying %s on %s", uuid, host)
            self.agents.destroy(ctx, host, uuid)
        for spec in to_respawn:
            log.info("reconcile: building %s on %s again after the agent restarted", spec["uuid"], host)
            self.agents.spawn(ctx, host, spec)
        if suspects:
            self.confirm_missing(ctx, host, suspects)

    def confirm_missing(self, ctx: RequestContext, host: str, suspects: list[str]) -> None:
        """Ask the agent again; the servers whose VM is still missing go to ERROR with a fault."""
        try:
            present = self.agents.list_instances(ctx, host, timeout=self.settings.rpc_timeout)
        except (BusTimeout, RemoteError) as exc:
            log.warning("reconcile: cannot confirm missing VMs on %s: %s", host, exc)
            return
        gone = [uuid for uuid in suspects if uuid not in present]
        # The host is named to admins only (a 500 fault's details).
        message = ("The VM is no longer on its host: found missing when the agent reported. "
                   "Delete the server or rebuild it.")
        details = f"The VM is no longer on host {host}."

        def mark(s: Session) -> None:
            for uuid in gone:
                done = lifecycle.transition(
                    s, uuid, "vanished", task_state=None,
                    where=(Instance.host == host, Instance.deleted.is_(False)),
                    power_state=states.NOSTATE)
                if done:
                    actions.add_fault(s, uuid, 500, message, details, host)
                    log.warning("instance %s: %s %s", uuid, message, details)

        if gone:
            self.db.run(mark)
