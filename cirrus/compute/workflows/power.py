"""The power workflow: stop, start, reboot and hard reboot, carried out by the host's agent.

The API checks the action against the table and sets its task; the conductor asks the
agent, whose `task_result` ends the task with the state the table gives (or leaves the
vm_state as it was, when the agent failed).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cirrus.compute import actions, snapshots, states
from cirrus.compute.lifecycle import transition
from cirrus.compute.workflows import rebuild, shelve
from cirrus.compute.workflows.deps import WorkflowDeps
from cirrus.context import RequestContext
from cirrus.db.models import Instance

TASK_EVENTS = {
    states.POWERING_OFF: "compute_stop_instance",
    states.POWERING_ON: "compute_start_instance",
    states.REBOOTING: "compute_reboot_instance",
    states.REBOOTING_HARD: "compute_reboot_instance",
    states.IMAGE_SNAPSHOT: snapshots.EVENT,
    # ---- comp-a
    states.PAUSING: "compute_pause_instance",
    states.UNPAUSING: "compute_unpause_instance",
    states.SUSPENDING: "compute_suspend_instance",
    states.RESUMING: "compute_resume_instance",
    states.SOFT_DELETING: "compute_soft_delete_instance",
    states.RESTORING: "compute_restore_instance",
    states.UNSHELVING: "compute_unshelve_instance",  # shelve (comp-b): of a SHELVED server
}
ACTION_OF_TASK = {states.POWERING_OFF: "stop", states.POWERING_ON: "start",
                  states.REBOOTING: "reboot", states.REBOOTING_HARD: "reboot_hard",
                  # comp-a: the agent's power actions; soft delete and restore stop and start
                  states.PAUSING: "pause", states.UNPAUSING: "unpause",
                  states.SUSPENDING: "suspend", states.RESUMING: "resume",
                  states.SOFT_DELETING: "stop", states.RESTORING: "start"}


def power_action(deps: WorkflowDeps, ctx: RequestContext, payload: dict[str, Any]) -> None:
    uuid, task = payload["uuid"], payload["task"]
    if task in rebuild.TASKS:  # comp-a
        rebuild.rebuild_instance(deps, ctx, uuid)
        return
    with deps.db.reader() as s:
        inst = s.scalar(select(Instance).where(Instance.uuid == uuid))
        if inst is None or inst.deleted or inst.task_state != task:
            return
        host = inst.host
    if not host:
        task_result(deps, ctx, {"uuid": uuid, "task": task, "ok": False, "host": None,
                                "error": "The instance has no host."})
        return
    deps.agents.power(ctx, host, uuid, task, ACTION_OF_TASK[task])


def task_result(deps: WorkflowDeps, ctx: RequestContext, result: dict[str, Any]) -> None:
    uuid, task = result["uuid"], result["task"]
    if task in rebuild.TASKS:  # comp-a
        rebuild.finish(deps, ctx, result)
        return
    _finish_task(deps, ctx, result)
    if task == states.UNSHELVING and result["ok"]:  # shelve (comp-b): unshelved on its host
        shelve.forget_shelved_image(deps, uuid)


def _finish_task(deps: WorkflowDeps, ctx: RequestContext, result: dict[str, Any]) -> None:
    uuid, task = result["uuid"], result["task"]

    def finish(s: Session) -> None:
        values: dict[str, Any] = {"task_started_at": None}
        if result["ok"]:
            _vm_state, power_state = states.TASK_RESULTS[task]
            values["power_state"] = result.get("power_state", power_state)
            if task == states.RESTORING:  # comp-a: no longer soft-deleted
                values["deleted_at"] = None
        elif result.get("power_state") is not None:
            values["power_state"] = result["power_state"]
        done = transition(s, uuid, "task_done" if result["ok"] else "task_failed",
                          task_state=task, where=(Instance.deleted.is_(False),), **values)
        if done:
            actions.record_event(
                s, uuid, ctx.request_id, TASK_EVENTS.get(task, task), result.get("host"),
                actions.SUCCESS if result["ok"] else actions.ERROR,
                traceback=None if result["ok"] else result.get("details") or result.get("error"))

    deps.db.run(finish)
