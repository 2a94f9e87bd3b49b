"""Power states as a hypervisor reports them (Nova's numbers, which clients show).

They belong to the virt boundary: drivers map their hypervisor's states onto these, and
compute (cirrus.compute.states) takes them from here.
"""

from __future__ import annotations

NOSTATE, RUNNING, PAUSED, SHUTDOWN, CRASHED, SUSPENDED = 0, 1, 3, 4, 6, 7
POWER_STATE_NAMES = {NOSTATE: "pending", RUNNING: "running", PAUSED: "paused",
                     SHUTDOWN: "shutdown", CRASHED: "crashed", SUSPENDED: "suspended"}
