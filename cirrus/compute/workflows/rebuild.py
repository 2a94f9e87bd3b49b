"""The rebuild workflow (issue 13, comp-a): rebuilding -> rebuild_spawning -> active (or
stopped, for a server rebuilt while stopped), or error.

The API records the new image (and name, metadata, key, user data, sealed admin password
and files) and sets `rebuilding`; the conductor moves it to `rebuild_spawning` and sends
the host's agent the new spec: the agent makes the VM again with a new root disk and config
drive, its NICs left plugged, so ports and addresses are kept. Its `task_result` ends it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cirrus.compute import actions, states
from cirrus.compute.lifecycle import transition
from cirrus.compute.workflows.build import forget_build_secrets, instance_spec
from cirrus.compute.workflows.deps import WorkflowDeps, log
from cirrus.context import RequestContext
from cirrus.db.models import Instance, utcnow

EVENT = "compute_rebuild_instance"
TASKS = (states.REBUILDING, states.REBUILD_SPAWNING)


def rebuild_instance(deps: WorkflowDeps, ctx: RequestContext, uuid: str) -> None:
    def work(s: Session) -> tuple[str, dict[str, Any], bool] | str | None:
        inst = s.scalar(select(Instance).where(Instance.uuid == uuid))
        if inst is None or inst.deleted or inst.task_state not in TASKS:
            return None
        if not inst.host:
            return "The instance has no host."
        if inst.task_state == states.REBUILDING:
            transition(s, inst, "rebuild_spawning", task_started_at=utcnow())
        return inst.host, instance_spec(s, inst), inst.vm_state == states.STOPPED

    outcome = deps.db.run(work)
    if outcome is None:
        return
    if isinstance(outcome, str):
        finish(deps, ctx, {"uuid": uuid, "task": None, "ok": False, "error": outcome})
        return
    host, spec, stopped = outcome
    log.info("rebuild of %s: sending it to %s", uuid, host)
    deps.agents.rebuild(ctx, host, spec, states.REBUILD_SPAWNING, stopped)


def finish(deps: WorkflowDeps, ctx: RequestContext, result: dict[str, Any]) -> None:
    """End the rebuild: active (or stopped, as it was) with the new disk, or error."""
    uuid = result["uuid"]

    def work(s: Session) -> None:
        inst = s.scalar(select(Instance).where(Instance.uuid == uuid))
        if inst is None or inst.deleted or inst.task_state not in TASKS:
            return
        values: dict[str, Any] = {"task_started_at": None, "updated_at": utcnow()}
        if result.get("power_state") is not None:
            values["power_state"] = result["power_state"]
        if result["ok"]:
            if inst.task_state != states.REBUILD_SPAWNING:
                return
            values["launched_at"] = utcnow()
            transition(s, inst, "task_done", **values)
        else:
            transition(s, inst, "rebuild_failed", **values)
            actions.add_fault(s, uuid, 500, f"Rebuild of instance {uuid} failed: "
                              f"{result.get('error') or 'unknown error'}",
                              result.get("details") or "", result.get("host"))
        forget_build_secrets(s, uuid)
        actions.record_event(s, uuid, ctx.request_id, EVENT, result.get("host"),
                             actions.SUCCESS if result["ok"] else actions.ERROR,
                             traceback=None if result["ok"] else
                             result.get("details") or result.get("error"))

    deps.db.run(work)
