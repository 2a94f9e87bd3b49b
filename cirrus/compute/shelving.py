"""Shelve, shelve-offload and unshelve: the API's side (checks, tasks, records).

`shelve` records a queued image (`<name>-shelved`, as Nova names it) and sets the task
`shelving`; the conductor has the agent power the VM off and write its root disk, imports
it, and the server is SHELVED. After `shelved_offload_time` seconds (0: at once, -1:
never), or on an admin's `shelveOffload`, the VM and its disks leave the host and its
claim is released: SHELVED_OFFLOADED, no host. `unshelve` powers a SHELVED server on where
it is, or schedules a SHELVED_OFFLOADED one again (to the zone asked for, 2.77) and builds
it from the shelved image, its ports and addresses kept. The workflows are in
`cirrus.compute.workflows.shelve`.

What a shelve left is in the server's system_metadata: `shelved_image_id`, `shelved_at`
(ISO time) and `shelved_host`, as in Nova.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from cirrus.bus import BusTimeout
from cirrus.compute import actions, capabilities, instances, lifecycle, snapshots, states
from cirrus.compute.rpcapi import ConductorAPI
from cirrus.context import RequestContext
from cirrus.db.models import Instance, utcnow
from cirrus.errors import BadRequest, Conflict
from cirrus.hosts import zones

if TYPE_CHECKING:
    from cirrus.services import Deps

log = logging.getLogger(__name__)

IMAGE_KEY, AT_KEY, HOST_KEY = "shelved_image_id", "shelved_at", "shelved_host"
SHELVE_EVENT = "compute_shelve_instance"
OFFLOAD_EVENT = "compute_shelve_offload_instance"
UNSHELVE_EVENT = "compute_unshelve_instance"


def _start(s: Session, ctx: RequestContext, uuid: str, action: str, shown: str) -> Instance:
    inst = instances.get(s, ctx, uuid)
    if inst.locked and not ctx.is_admin:
        raise Conflict(f"Instance {uuid} is locked")
    states.check_action(action, uuid, inst.vm_state, inst.task_state)
    return inst


def _move(s: Session, ctx: RequestContext, inst: Instance, action: str, shown: str,
          **values: object) -> None:
    done = lifecycle.transition(
        s, inst.uuid, action, vm_state=inst.vm_state, task_state=None,
        where=(Instance.deleted.is_(False),), task_started_at=utcnow(), updated_at=utcnow(),
        **values)
    if not done:
        raise Conflict(f"Instance {inst.uuid} changed state while the request was processed; "
                       "try again.")
    actions.start_action(s, ctx, inst.uuid, shown)


def _send(task: str, send: object) -> None:
    """As instances._send_task: an accepted request is left to the sweeper's re-drive."""
    try:
        send()  # type: ignore[operator]
    except BusTimeout as exc:
        log.warning("%s left to the conductor's re-drive: %s", task, exc)


def request_shelve(cloud: Deps, ctx: RequestContext, uuid: str) -> str:
    """Check, set the task `shelving`, record the queued image; returns its id."""

    def work(s: Session) -> str:
        inst = _start(s, ctx, uuid, "shelve", "shelve")
        capabilities.require(s, inst, "snapshot", "shelve")
        image = snapshots._snapshot_image(s, ctx, inst, f"{inst.display_name}-shelved", {})
        s.add(image)
        system_metadata = {**(inst.system_metadata or {}), IMAGE_KEY: image.id}
        _move(s, ctx, inst, "shelve", "shelve", system_metadata=system_metadata)
        return image.id

    image_id = cloud.db.run(work)
    _send(f"shelve of {uuid}",
          lambda: ConductorAPI(cloud.bus).shelve_instance(ctx, uuid, image_id))
    return image_id


def request_shelve_offload(cloud: Deps, ctx: RequestContext, uuid: str) -> None:
    def work(s: Session) -> None:
        inst = _start(s, ctx, uuid, "shelve_offload", "shelveOffload")
        _move(s, ctx, inst, "shelve_offload", "shelveOffload")

    cloud.db.run(work)
    _send(f"offload of {uuid}", lambda: ConductorAPI(cloud.bus).offload_instance(ctx, uuid))


def request_unshelve(cloud: Deps, ctx: RequestContext, uuid: str,
                     availability_zone: str | None = None) -> None:
    """`availability_zone` (2.77): where a SHELVED_OFFLOADED server is to be built again."""

    def work(s: Session) -> None:
        inst = _start(s, ctx, uuid, "unshelve", "unshelve")
        values: dict[str, object] = {}
        if availability_zone is not None:
            if inst.vm_state != states.SHELVED_OFFLOADED:
                raise Conflict(f"The availability_zone parameter can only be given for a "
                               f"server in vm_state {states.SHELVED_OFFLOADED}; instance "
                               f"{uuid} is {inst.vm_state}.")
            if availability_zone not in zones.schedulable_zones(s, cloud.settings):
                raise BadRequest(f"availability_zone: the requested availability zone "
                                 f"{availability_zone} is not available")
            values["availability_zone"] = availability_zone
        _move(s, ctx, inst, "unshelve", "unshelve", **values)

    cloud.db.run(work)
    _send(f"unshelve of {uuid}", lambda: ConductorAPI(cloud.bus).unshelve_instance(ctx, uuid))
