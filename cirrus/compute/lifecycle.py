"""The instance state machine as one table, and the one function that writes it.

A state is a (vm_state, task_state) pair (`STATES`). An event moves an instance from some
states to another (`TRANSITIONS`), and is fired by one kind of actor (`Actor`): an API
action, a workflow step in the conductor, the sweeper, or an agent's report (reconcile).
`transition` is the only writer of vm_state and task_state: it refuses an event the table
does not allow from the states the caller expects, and its conditional UPDATE matches only
rows in a state the event may leave, so a lost race changes nothing (rowcount 0).

`states.ACTIONS` and `states.TASK_RESULTS` are the API's half of the table; the rows for
them are built from those dicts, so the two cannot disagree. docs/lifecycle.md is generated
from this module (`python -m cirrus.compute.lifecycle_doc > docs/lifecycle.md`).
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, cast

from sqlalchemy import ColumnElement, and_, or_, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from cirrus.compute import states
from cirrus.compute.states import (
    ACTIVE,
    BUILDING,
    DELETED,
    DELETING,
    ERROR,
    IMAGE_SNAPSHOT,
    PAUSED_VM,
    PAUSING,
    POWERING_OFF,
    POWERING_ON,
    REBOOTING,
    REBOOTING_HARD,
    REBUILD_SPAWNING,
    REBUILDING,
    RESIZE_CONFIRMING,
    RESIZE_MIGRATING,
    RESIZE_PREP,
    RESIZE_REVERTING,
    RESIZED,
    RESTORING,
    RESUMING,
    SCHEDULING,
    SHELVED,
    SHELVED_OFFLOADED,
    SHELVING,
    SHELVING_OFFLOADING,
    SOFT_DELETED,
    SOFT_DELETING,
    SPAWNING,
    STOPPED,
    SUSPENDED_VM,
    SUSPENDING,
    UNPAUSING,
    UNSHELVING,
)
from cirrus.db.models import Instance

State = tuple[str, str | None]


class Actor(enum.StrEnum):
    API = "api"
    WORKFLOW = "workflow"
    SCHEDULER = "scheduler"
    SWEEPER = "sweeper"
    AGENT_REPORT = "agent report"


class _Keep(enum.Enum):
    VM_STATE = "unchanged"


KEEP: Final = _Keep.VM_STATE  # an event that leaves the vm_state as it was
ANY: Final = object()  # no expectation about a column


# Every state an instance can be in. A row of `deleted` is never written again.
STATES: tuple[State, ...] = (
    (BUILDING, SCHEDULING), (BUILDING, SPAWNING), (BUILDING, DELETING),
    (ACTIVE, None), (ACTIVE, POWERING_OFF), (ACTIVE, REBOOTING), (ACTIVE, REBOOTING_HARD),
    (ACTIVE, IMAGE_SNAPSHOT), (ACTIVE, DELETING),
    (STOPPED, None), (STOPPED, POWERING_ON), (STOPPED, REBOOTING_HARD),
    (STOPPED, IMAGE_SNAPSHOT), (STOPPED, DELETING),
    (ERROR, None), (ERROR, POWERING_OFF), (ERROR, REBOOTING_HARD), (ERROR, DELETING),
    # ---- comp-a: rebuild, pause, suspend, soft delete
    (ACTIVE, PAUSING), (ACTIVE, SUSPENDING), (ACTIVE, SOFT_DELETING),
    (ACTIVE, REBUILDING), (ACTIVE, REBUILD_SPAWNING),
    (STOPPED, SOFT_DELETING), (STOPPED, REBUILDING), (STOPPED, REBUILD_SPAWNING),
    (ERROR, SOFT_DELETING), (ERROR, REBUILDING), (ERROR, REBUILD_SPAWNING),
    (PAUSED_VM, None), (PAUSED_VM, UNPAUSING), (PAUSED_VM, SOFT_DELETING),
    (PAUSED_VM, IMAGE_SNAPSHOT), (PAUSED_VM, DELETING),
    (SUSPENDED_VM, None), (SUSPENDED_VM, RESUMING), (SUSPENDED_VM, SOFT_DELETING),
    (SUSPENDED_VM, IMAGE_SNAPSHOT), (SUSPENDED_VM, DELETING),
    (SOFT_DELETED, None), (SOFT_DELETED, RESTORING), (SOFT_DELETED, DELETING),
    # ---- end comp-a
    (DELETED, None),
    # shelve (comp-b)
    (ACTIVE, SHELVING), (STOPPED, SHELVING), (PAUSED_VM, SHELVING), (SUSPENDED_VM, SHELVING),
    (SHELVED, None), (SHELVED, SHELVING_OFFLOADING), (SHELVED, UNSHELVING), (SHELVED, DELETING),
    (SHELVED_OFFLOADED, None), (SHELVED_OFFLOADED, UNSHELVING), (SHELVED_OFFLOADED, DELETING),
    # resize and cold migrate (comp-b)
    (ACTIVE, RESIZE_PREP), (ACTIVE, RESIZE_MIGRATING),
    (STOPPED, RESIZE_PREP), (STOPPED, RESIZE_MIGRATING),
    (RESIZED, None), (RESIZED, RESIZE_CONFIRMING), (RESIZED, RESIZE_REVERTING),
    (RESIZED, DELETING),
)
INITIAL: State = (BUILDING, SCHEDULING)
FINAL: State = (DELETED, None)
LIVE: tuple[State, ...] = tuple(state for state in STATES if state != FINAL)

# How long a task may run before the sweeper ends it (a Settings attribute), and what the
# sweeper fires then. Every task_state is here: nothing stays in a task.
TIMEOUTS: dict[str, tuple[str, str]] = {
    SCHEDULING: ("build_timeout", "build_failed"),
    SPAWNING: ("build_timeout", "build_failed"),
    POWERING_OFF: ("task_timeout", "task_failed"),
    POWERING_ON: ("task_timeout", "task_failed"),
    REBOOTING: ("task_timeout", "task_failed"),
    REBOOTING_HARD: ("task_timeout", "task_failed"),
    IMAGE_SNAPSHOT: ("task_timeout", "task_failed"),
    DELETING: ("task_timeout", "deleted"),
    # ---- comp-a
    PAUSING: ("task_timeout", "task_failed"),
    UNPAUSING: ("task_timeout", "task_failed"),
    SUSPENDING: ("task_timeout", "task_failed"),
    RESUMING: ("task_timeout", "task_failed"),
    SOFT_DELETING: ("task_timeout", "task_failed"),
    RESTORING: ("task_timeout", "task_failed"),
    REBUILDING: ("build_timeout", "rebuild_failed"),
    REBUILD_SPAWNING: ("build_timeout", "rebuild_failed"),
    # ---- end comp-a
    # shelve (comp-b): a shelve, an offload or an unshelve that timed out leaves the server
    # where it was (an unshelve's claim is given back: workflows.shelve.unshelve_failed).
    SHELVING: ("task_timeout", "task_failed"),
    SHELVING_OFFLOADING: ("task_timeout", "task_failed"),
    UNSHELVING: ("build_timeout", "task_failed"),
    # resize and cold migrate (comp-b): a timed-out move goes back to the source
    # (workflows.resize.timed_out gives the new claim back).
    RESIZE_PREP: ("build_timeout", "task_failed"),
    RESIZE_MIGRATING: ("build_timeout", "task_failed"),
    RESIZE_CONFIRMING: ("task_timeout", "task_failed"),
    RESIZE_REVERTING: ("task_timeout", "task_failed"),
}

# Who fires an API action's row, where it is not instances.request_power_action.
_API_FIRED_BY = {
    "create_image": "snapshots.request_snapshot",
    "delete": "instances.request_delete",
    "soft_delete": "instances.request_delete",  # comp-a
    "rebuild": "rebuild.request_rebuild",  # comp-a
    "shelve": "shelving.request_shelve",
    "shelve_offload": "shelving.request_shelve_offload",
    "unshelve": "shelving.request_unshelve",
    "resize": "resizing.request_resize",
    "migrate": "resizing.request_resize",
    "confirm_resize": "resizing.request_confirm",
    "revert_resize": "resizing.request_revert",
}
# Tasks of TASK_RESULTS whose end is a workflow's own event from these states, not task_done.
_NOT_TASK_DONE: frozenset[State] = frozenset({(SHELVED_OFFLOADED, UNSHELVING)})
# Workflows other than power that end a task with task_failed.
_TASK_FAILED_BY = {
    SHELVING: "workflows.shelve.shelve_result",
    SHELVING_OFFLOADING: "workflows.shelve.offload",
    UNSHELVING: "workflows.power.task_result; workflows.shelve.unshelve_failed",
    RESIZE_PREP: "workflows.resize.failed",
    RESIZE_MIGRATING: "workflows.resize.failed",
    RESIZE_CONFIRMING: "workflows.resize.failed",
    RESIZE_REVERTING: "workflows.resize.failed",
}


@dataclass(frozen=True)
class Row:
    """One edge of the machine: `event` moves `source` to `target`, fired by `actors`."""

    event: str
    source: State
    target: tuple[str | _Keep, str | None]
    actors: tuple[Actor, ...]
    fired_by: str  # the code that fires it

    @property
    def result(self) -> State:
        vm_state = self.source[0] if self.target[0] is KEEP else self.target[0]
        return (str(vm_state), self.target[1])


def _rows(event: str, sources: Iterable[State], target: tuple[str | _Keep, str | None],
          actors: tuple[Actor, ...], fired_by: str) -> list[Row]:
    return [Row(event, source, target, actors, fired_by) for source in sources
            if source in STATES]


def _api_rows() -> list[Row]:
    rows = []
    for action, t in states.ACTIONS.items():
        sources = [(vm, task) for vm in t.vm_states for task in t.task_states]
        fired_by = _API_FIRED_BY.get(action, "instances.request_power_action")
        rows += _rows(action, sources, (KEEP, t.task_state), (Actor.API,), fired_by)
    return rows


def _task_rows() -> list[Row]:
    """How each task ends: the result in states.TASK_RESULTS, or its vm_state unchanged."""
    rows = []
    for task, (vm_state, _power) in states.TASK_RESULTS.items():
        if task == SPAWNING:
            continue  # a build has its own events below
        rows += _rows("task_done", [s for s in STATES if s[1] == task
                                    and s not in _NOT_TASK_DONE], (vm_state, None),
                      (Actor.WORKFLOW,), "workflows.power.task_result")
    rows += _rows("task_done", [s for s in STATES if s[1] == IMAGE_SNAPSHOT], (KEEP, None),
                  (Actor.WORKFLOW,), "snapshots.finish_task")
    for task, (_timeout, event) in TIMEOUTS.items():
        if event == "task_failed":
            snapshot = task == IMAGE_SNAPSHOT
            fired_by = ("snapshots.finish_task; snapshots.abandon_request (no broker took it)"
                        if snapshot else _TASK_FAILED_BY.get(task, "workflows.power.task_result"))
            actors = (Actor.WORKFLOW, Actor.SWEEPER, *((Actor.API,) if snapshot else ()))
            rows += _rows("task_failed", [s for s in STATES if s[1] == task], (KEEP, None),
                          actors, fired_by)
    return rows


def _comp_a_rows() -> list[Row]:
    """Issue 13 (comp-a): rebuild's second step and its end, reset-state, reclaim."""
    rebuilding = [s for s in STATES if s[1] == REBUILDING]
    rebuild_spawning = [s for s in STATES if s[1] == REBUILD_SPAWNING]
    return [
        *_rows("rebuild_spawning", rebuilding, (KEEP, REBUILD_SPAWNING), (Actor.WORKFLOW,),
               "workflows.rebuild.rebuild_instance (the agent is told)"),
        *_rows("task_done", [(ACTIVE, REBUILD_SPAWNING), (ERROR, REBUILD_SPAWNING)],
               (ACTIVE, None), (Actor.WORKFLOW,), "workflows.power.task_result"),
        *_rows("task_done", [(STOPPED, REBUILD_SPAWNING)], (STOPPED, None), (Actor.WORKFLOW,),
               "workflows.power.task_result (a stopped server is rebuilt stopped)"),
        *_rows("rebuild_failed", rebuilding + rebuild_spawning, (ERROR, None),
               (Actor.WORKFLOW, Actor.SWEEPER), "workflows.power.task_result"),
        *_rows("reset_active", LIVE, (ACTIVE, None), (Actor.API,),
               "server_admin.reset_state (os-resetState, admins)"),
        *_rows("reset_error", LIVE, (ERROR, None), (Actor.API,),
               "server_admin.reset_state (os-resetState, admins)"),
        *_rows("reclaim", [(SOFT_DELETED, None)], (KEEP, DELETING), (Actor.SWEEPER,),
               "workflows.sweeper (soft-deleted longer than reclaim_instance_interval)"),
    ]


TRANSITIONS: tuple[Row, ...] = tuple([
    *_rows("scheduled", [(BUILDING, SCHEDULING)], (BUILDING, SPAWNING), (Actor.SCHEDULER,),
           "scheduler.claims.place"),
    *_rows("spawned", [(BUILDING, SPAWNING)], (ACTIVE, None),
           (Actor.WORKFLOW, Actor.AGENT_REPORT),
           "workflows.build.spawn_result; reconcile (the agent has the VM)"),
    *_rows("rescheduled", [(BUILDING, SPAWNING)], (BUILDING, SCHEDULING), (Actor.WORKFLOW,),
           "workflows.build (the spawn failed, attempts are left)"),
    *_rows("build_failed", [(BUILDING, SCHEDULING), (BUILDING, SPAWNING)], (ERROR, None),
           (Actor.WORKFLOW, Actor.SWEEPER),
           "workflows.build.fail_build (no host, no attempt left, timed out)"),
    *_api_rows(),
    *_task_rows(),
    *_rows("stopped_by_guest", [(ACTIVE, None)], (STOPPED, None), (Actor.AGENT_REPORT,),
           "reconcile (the VM shut down by itself)"),
    *_rows("vanished", [(ACTIVE, None), (STOPPED, None)], (ERROR, None), (Actor.AGENT_REPORT,),
           "reconcile._confirm_missing (the VM is no longer on its host)"),
    *_rows("deleted", LIVE, FINAL, (Actor.WORKFLOW, Actor.SWEEPER),
           "workflows.delete.delete_instance"),
    *_comp_a_rows(),
    # shelve (comp-b)
    *_rows("shelved", [(ACTIVE, SHELVING), (STOPPED, SHELVING), (PAUSED_VM, SHELVING),
                       (SUSPENDED_VM, SHELVING)], (SHELVED, None),
           (Actor.WORKFLOW,), "workflows.shelve.shelve_result (the disk is in an image)"),
    *_rows("offload_due", [(SHELVED, None)], (SHELVED, SHELVING_OFFLOADING),
           (Actor.WORKFLOW,),
           "workflows.shelve.offload_due (shelved_offload_time passed, or 0)"),
    *_rows("offloaded", [(SHELVED, SHELVING_OFFLOADING)], (SHELVED_OFFLOADED, None),
           (Actor.WORKFLOW,), "workflows.shelve.offload (the host is freed)"),
    *_rows("unshelve_scheduled", [(SHELVED_OFFLOADED, UNSHELVING)],
           (SHELVED_OFFLOADED, UNSHELVING), (Actor.SCHEDULER,),
           "scheduler.claims.place (a host is claimed for the unshelve)"),
    *_rows("unshelved", [(SHELVED_OFFLOADED, UNSHELVING)], (ACTIVE, None),
           (Actor.WORKFLOW,), "workflows.shelve.unshelve_result (built from the image)"),
    # resize and cold migrate (comp-b)
    *_rows("resize_scheduled", [(ACTIVE, RESIZE_PREP), (STOPPED, RESIZE_PREP)],
           (KEEP, RESIZE_MIGRATING), (Actor.SCHEDULER,),
           "scheduler.claims.place (the new flavor is claimed on the destination)"),
    *_rows("resize_finished", [(ACTIVE, RESIZE_MIGRATING), (STOPPED, RESIZE_MIGRATING)],
           (RESIZED, None), (Actor.WORKFLOW,),
           "workflows.resize.resize_result (on the destination, VERIFY_RESIZE)"),
    *_rows("confirm_due", [(RESIZED, None)], (RESIZED, RESIZE_CONFIRMING), (Actor.WORKFLOW,),
           "workflows.resize.confirm_due (resize_confirm_window passed)"),
    *_rows("resize_confirmed", [(RESIZED, RESIZE_CONFIRMING)], (ACTIVE, None),
           (Actor.WORKFLOW,), "workflows.resize.confirm (it was running)"),
    *_rows("resize_confirmed_stopped", [(RESIZED, RESIZE_CONFIRMING)], (STOPPED, None),
           (Actor.WORKFLOW,), "workflows.resize.confirm (it was stopped)"),
    *_rows("resize_reverted", [(RESIZED, RESIZE_REVERTING)], (ACTIVE, None),
           (Actor.WORKFLOW,), "workflows.resize.revert_result (it was running)"),
    *_rows("resize_reverted_stopped", [(RESIZED, RESIZE_REVERTING)], (STOPPED, None),
           (Actor.WORKFLOW,), "workflows.resize.revert_result (it was stopped)"),
])
# `create` has no source: it is the row the API inserts.
CREATE = Row("create", INITIAL, INITIAL, (Actor.API,), "creation.create")

EVENTS: tuple[str, ...] = tuple(dict.fromkeys(row.event for row in TRANSITIONS))


class IllegalTransition(RuntimeError):
    """A writer asked for a move the table does not have: a bug, not a race."""


@functools.cache
def _rows_for(event: str, vm_state: Any, task_state: Any) -> tuple[Row, ...]:
    return tuple(row for row in TRANSITIONS if row.event == event
                 and (vm_state is ANY or row.source[0] == vm_state)
                 and (task_state is ANY or row.source[1] == task_state))


def rows_for(event: str, vm_state: Any = ANY, task_state: Any = ANY) -> list[Row]:
    """The rows of `event` that leave states matching the given expectations."""
    return list(_rows_for(event, vm_state, task_state))


def allowed(event: str, source: State) -> bool:
    return bool(rows_for(event, *source))


def create_columns() -> dict[str, str | None]:
    """The state a new instance is inserted in."""
    return {"vm_state": CREATE.target[0], "task_state": CREATE.target[1]}  # type: ignore[dict-item]


def _source_condition(rows: list[Row], vm_state: Any, task_state: Any) -> ColumnElement[bool] | None:
    """SQL matching the states `rows` may leave, no wider than the caller's expectations,
    with no condition the expectations already imply. No event leaves `deleted`, and every
    deleted row is in it: writers exclude deleted rows with `deleted IS false`."""
    parts = []
    if vm_state is not ANY:
        parts.append(Instance.vm_state == vm_state)
    if task_state is not ANY:
        parts.append(Instance.task_state.is_(None) if task_state is None
                     else Instance.task_state == task_state)
    sources = {row.source for row in rows}
    candidates = {s for s in LIVE if (vm_state is ANY or s[0] == vm_state)
                  and (task_state is ANY or s[1] == task_state)}
    if sources != candidates:
        by_task: dict[str | None, set[str]] = {}
        for vm, task in sources:
            by_task.setdefault(task, set()).add(vm)
        alternatives = []
        for task, vms in by_task.items():
            every_vm = {vm for vm, t in candidates if t == task}
            conds = [] if task_state is not ANY else [
                Instance.task_state.is_(None) if task is None else Instance.task_state == task]
            if vms != every_vm:
                conds.append(Instance.vm_state.in_(sorted(vms)))
            alternatives.append(and_(*conds))
        parts.append(alternatives[0] if len(alternatives) == 1 else or_(*alternatives))
    return and_(*parts) if parts else None


def transition(s: Session, target: Instance | str, event: str, *,
               vm_state: Any = ANY, task_state: Any = ANY,
               where: Iterable[ColumnElement[bool]] = (), **values: Any) -> int:
    """Fire `event` on one instance; how many rows moved (0: it was no longer in a state
    the event leaves, e.g. a delete won the race).

    `target` is an Instance row already read in this transaction (its attributes are set,
    as the workflows did with the ORM) or a uuid (a conditional UPDATE). `vm_state` and
    `task_state` are what the caller expects the instance to be in now; `where` adds
    conditions of its own (the host, not deleted); `values`, other columns to set (the
    state columns are the event's alone: `vm_state`/`task_state` name expectations).
    Raises IllegalTransition if the table has no such move.
    """
    if isinstance(target, Instance):
        vm_state = target.vm_state if vm_state is ANY else vm_state
        task_state = target.task_state if task_state is ANY else task_state
    rows = rows_for(event, vm_state, task_state)
    if not rows:
        raise IllegalTransition(f"no transition {event!r} from vm_state "
                                f"{'any' if vm_state is ANY else vm_state}, task_state "
                                f"{'any' if task_state is ANY else task_state}")
    targets = {row.target for row in rows}
    if len(targets) > 1:
        raise IllegalTransition(f"{event!r} from these states leads to several: {targets}")
    new_vm, new_task = next(iter(targets))
    columns: dict[str, Any] = {"task_state": new_task, **values}
    if new_vm is not KEEP:
        columns["vm_state"] = new_vm
    if isinstance(target, Instance):
        if (target.vm_state, target.task_state) not in {row.source for row in rows}:
            raise IllegalTransition(f"{event!r} is not allowed from "
                                    f"{(target.vm_state, target.task_state)}")
        for key, value in columns.items():
            setattr(target, key, value)
        return 1
    stmt = update(Instance).where(Instance.uuid == target, *where)
    condition = _source_condition(rows, vm_state, task_state)
    if condition is not None:
        stmt = stmt.where(condition)
    result = s.execute(stmt.values(**columns).execution_options(synchronize_session=False))
    return cast("CursorResult[Any]", result).rowcount
