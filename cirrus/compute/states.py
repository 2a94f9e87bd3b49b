"""Instance states, and the API's half of the lifecycle table.

An instance has a vm_state (what it is), a task_state (what is being done to it, or None)
and a power_state (what the hypervisor last said). An API action may start only from the
states listed in ACTIONS; the workflow that carries it out always ends by clearing the
task_state, and the conductor's sweeper clears any task_state older than its timeout.
The whole machine (these actions, the workflows' steps, the sweeper, agent reports) is
one table in `cirrus.compute.lifecycle`, built from ACTIONS and TASK_RESULTS.
"""

from __future__ import annotations

from dataclasses import dataclass

from cirrus.errors import Conflict

# compute's names for them (re-exported: the workflows read power states from here)
from cirrus.virt.power import CRASHED as CRASHED
from cirrus.virt.power import NOSTATE as NOSTATE
from cirrus.virt.power import PAUSED as PAUSED
from cirrus.virt.power import POWER_STATE_NAMES as POWER_STATE_NAMES
from cirrus.virt.power import RUNNING as RUNNING
from cirrus.virt.power import SHUTDOWN as SHUTDOWN
from cirrus.virt.power import SUSPENDED as SUSPENDED

# vm_state
BUILDING, ACTIVE, STOPPED, ERROR, DELETED = "building", "active", "stopped", "error", "deleted"
# shelve (comp-b): a shelved server is stopped with its disk in an image; offloaded, it has
# no host at all.
SHELVED, SHELVED_OFFLOADED = "shelved", "shelved_offloaded"
# resize and cold migrate (comp-b): moved, waiting for confirmResize or revertResize.
RESIZED = "resized"

# task_state
SCHEDULING = "scheduling"
SPAWNING = "spawning"
POWERING_OFF = "powering-off"
POWERING_ON = "powering-on"
REBOOTING = "rebooting"
REBOOTING_HARD = "rebooting_hard"
DELETING = "deleting"
IMAGE_SNAPSHOT = "image_snapshot"
# shelve (comp-b)
SHELVING = "shelving"
SHELVING_OFFLOADING = "shelving_offloading"
UNSHELVING = "unshelving"
# resize and cold migrate (comp-b)
RESIZE_PREP = "resize_prep"
RESIZE_MIGRATING = "resize_migrating"
RESIZE_CONFIRMING = "resize_confirming"
RESIZE_REVERTING = "resize_reverting"

# ---- issue 13 (comp-a): rebuild, pause, suspend, soft delete (Nova's names)
PAUSED_VM, SUSPENDED_VM, SOFT_DELETED = "paused", "suspended", "soft-delete"
PAUSING, UNPAUSING = "pausing", "unpausing"
SUSPENDING, RESUMING = "suspending", "resuming"
SOFT_DELETING, RESTORING = "soft-deleting", "restoring"
REBUILDING, REBUILD_SPAWNING = "rebuilding", "rebuild_spawning"
# ---- end comp-a

# An action's name in Nova's conflict messages, where it differs from the key in ACTIONS.
_SHOWN_AS = {"reboot_hard": "reboot", "create_image": "createImage",
             "soft_delete": "delete", "shelve_offload": "shelveOffload",
             "confirm_resize": "confirmResize", "revert_resize": "revertResize"}


@dataclass(frozen=True)
class Transition:
    vm_states: tuple[str, ...]
    task_states: tuple[str | None, ...]
    task_state: str


ACTIONS: dict[str, Transition] = {
    "stop": Transition((ACTIVE, ERROR), (None,), POWERING_OFF),
    "start": Transition((STOPPED,), (None,), POWERING_ON),
    "reboot": Transition((ACTIVE,), (None, REBOOTING), REBOOTING),
    "reboot_hard": Transition((ACTIVE, STOPPED, ERROR), (None, REBOOTING, REBOOTING_HARD),
                              REBOOTING_HARD),
    # The vm_state is left as it was: a snapshot ends where it started.
    "create_image": Transition((ACTIVE, STOPPED, PAUSED_VM, SUSPENDED_VM),  # comp-a: as Nova
                               (None,), IMAGE_SNAPSHOT),
    # Delete is allowed from every state, a build or another delete included.
    "delete": Transition((BUILDING, ACTIVE, STOPPED, ERROR,
                          PAUSED_VM, SUSPENDED_VM, SOFT_DELETED,  # comp-a
                          SHELVED, SHELVED_OFFLOADED, RESIZED),  # comp-b
                         (None, SCHEDULING, SPAWNING, POWERING_OFF, POWERING_ON, REBOOTING,
                          REBOOTING_HARD, IMAGE_SNAPSHOT, DELETING,
                          PAUSING, UNPAUSING, SUSPENDING, RESUMING, SOFT_DELETING,  # comp-a
                          RESTORING, REBUILDING, REBUILD_SPAWNING,
                          SHELVING, SHELVING_OFFLOADING, UNSHELVING, RESIZE_PREP,  # comp-b
                          RESIZE_MIGRATING, RESIZE_CONFIRMING, RESIZE_REVERTING), DELETING),
    # ---- comp-a: rebuild, pause, suspend, soft delete
    "rebuild": Transition((ACTIVE, STOPPED, ERROR), (None,), REBUILDING),
    "pause": Transition((ACTIVE,), (None,), PAUSING),
    "unpause": Transition((PAUSED_VM,), (None,), UNPAUSING),
    "suspend": Transition((ACTIVE,), (None,), SUSPENDING),
    "resume": Transition((SUSPENDED_VM,), (None,), RESUMING),
    # A DELETE while `reclaim_instance_interval` is set: the guest is stopped and kept.
    "soft_delete": Transition((ACTIVE, STOPPED, ERROR, PAUSED_VM, SUSPENDED_VM), (None,),
                              SOFT_DELETING),
    "restore": Transition((SOFT_DELETED,), (None,), RESTORING),
    # ---- end comp-a
    # shelve (comp-b): the vm_state is kept until the workflow ends the task.
    "shelve": Transition((ACTIVE, STOPPED, PAUSED_VM, SUSPENDED_VM), (None,), SHELVING),
    "shelve_offload": Transition((SHELVED,), (None,), SHELVING_OFFLOADING),
    "unshelve": Transition((SHELVED, SHELVED_OFFLOADED), (None,), UNSHELVING),
    # resize and cold migrate (comp-b)
    "resize": Transition((ACTIVE, STOPPED), (None,), RESIZE_PREP),
    "migrate": Transition((ACTIVE, STOPPED), (None,), RESIZE_PREP),
    "confirm_resize": Transition((RESIZED,), (None,), RESIZE_CONFIRMING),
    "revert_resize": Transition((RESIZED,), (None,), RESIZE_REVERTING),
}

# What a finished task leaves behind: task -> (vm_state, power_state) on success.
# IMAGE_SNAPSHOT is not here: it only clears its task_state.
TASK_RESULTS: dict[str, tuple[str, int]] = {
    SPAWNING: (ACTIVE, RUNNING),
    POWERING_OFF: (STOPPED, SHUTDOWN),
    POWERING_ON: (ACTIVE, RUNNING),
    REBOOTING: (ACTIVE, RUNNING),
    REBOOTING_HARD: (ACTIVE, RUNNING),
    # ---- comp-a (a rebuild of a stopped server ends stopped: lifecycle's rebuild rows)
    PAUSING: (PAUSED_VM, PAUSED),
    UNPAUSING: (ACTIVE, RUNNING),
    SUSPENDING: (SUSPENDED_VM, SUSPENDED),
    RESUMING: (ACTIVE, RUNNING),
    SOFT_DELETING: (SOFT_DELETED, SHUTDOWN),
    RESTORING: (ACTIVE, RUNNING),
    # ---- end comp-a
    # shelve (comp-b): an unshelve of a server still on its host is a power-on.
    UNSHELVING: (ACTIVE, RUNNING),
}

# comp-a: what `os-resetState` may set, and its event in the lifecycle table.
RESET_STATES = {ACTIVE: "reset_active", ERROR: "reset_error"}


def check_action(action: str, uuid: str, vm_state: str, task_state: str | None) -> Transition:
    """Raise Conflict, in Nova's words, if `action` may not start from these states."""
    transition = ACTIONS[action]
    shown = _SHOWN_AS.get(action, action)
    if vm_state not in transition.vm_states:
        raise Conflict(f"Cannot '{shown}' instance {uuid} while it is in vm_state {vm_state}")
    if task_state not in transition.task_states:
        raise Conflict(f"Cannot '{shown}' instance {uuid} while it is in task_state {task_state}")
    return transition


_STATUS: dict[str, dict[str | None, str]] = {
    BUILDING: {None: "BUILD"},
    ACTIVE: {REBOOTING: "REBOOT", REBOOTING_HARD: "HARD_REBOOT", None: "ACTIVE",
             REBUILDING: "REBUILD", REBUILD_SPAWNING: "REBUILD",  # comp-a
             RESIZE_PREP: "RESIZE", RESIZE_MIGRATING: "RESIZE"},  # comp-b
    STOPPED: {REBOOTING_HARD: "HARD_REBOOT", None: "SHUTOFF",
              REBUILDING: "REBUILD", REBUILD_SPAWNING: "REBUILD",  # comp-a
              RESIZE_PREP: "RESIZE", RESIZE_MIGRATING: "RESIZE"},  # comp-b
    ERROR: {None: "ERROR", REBUILDING: "REBUILD", REBUILD_SPAWNING: "REBUILD"},  # comp-a
    DELETED: {None: "DELETED"},
    # ---- comp-a
    PAUSED_VM: {None: "PAUSED"},
    SUSPENDED_VM: {None: "SUSPENDED"},
    SOFT_DELETED: {None: "SOFT_DELETED"},
    # ---- end comp-a
    SHELVED: {None: "SHELVED"},
    SHELVED_OFFLOADED: {None: "SHELVED_OFFLOADED"},
    RESIZED: {None: "VERIFY_RESIZE", RESIZE_REVERTING: "REVERT_RESIZE"},
}


def api_status(vm_state: str, task_state: str | None) -> str:
    """The `status` a client sees, as Nova derives it."""
    table = _STATUS.get(vm_state, {None: "UNKNOWN"})
    return table.get(task_state, table[None])


# The reverse, for `?status=` filters: status -> (vm_states, task_states or None for any).
STATUS_FILTERS: dict[str, tuple[tuple[str, ...], tuple[str | None, ...] | None]] = {
    "BUILD": ((BUILDING,), None),
    "ACTIVE": ((ACTIVE,), (None, POWERING_OFF, POWERING_ON, IMAGE_SNAPSHOT, DELETING,
                           PAUSING, SUSPENDING, SOFT_DELETING,  # comp-a
                           SHELVING)),  # comp-b
    "REBOOT": ((ACTIVE,), (REBOOTING,)),
    "HARD_REBOOT": ((ACTIVE, STOPPED), (REBOOTING_HARD,)),
    "SHUTOFF": ((STOPPED,), (None, POWERING_ON, POWERING_OFF, IMAGE_SNAPSHOT, DELETING,
                             SOFT_DELETING, SHELVING)),
    "ERROR": ((ERROR,), None),
    "DELETED": ((DELETED,), None),
    # ---- comp-a
    "REBUILD": ((ACTIVE, STOPPED, ERROR), (REBUILDING, REBUILD_SPAWNING)),
    "PAUSED": ((PAUSED_VM,), None),
    "SUSPENDED": ((SUSPENDED_VM,), None),
    "SOFT_DELETED": ((SOFT_DELETED,), None),
    # ---- end comp-a
    "SHELVED": ((SHELVED,), None),
    "SHELVED_OFFLOADED": ((SHELVED_OFFLOADED,), None),
    "RESIZE": ((ACTIVE, STOPPED), (RESIZE_PREP, RESIZE_MIGRATING)),
    "VERIFY_RESIZE": ((RESIZED,), (None, RESIZE_CONFIRMING, DELETING)),
    "REVERT_RESIZE": ((RESIZED,), (RESIZE_REVERTING,)),
}
