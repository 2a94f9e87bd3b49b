"""Volume attach and detach (issue 15): calls from the API, answered when done or with why
not, as NIC hot-plug is. The server's state does not change (Nova keeps it ACTIVE); the
volume's does: reserved -> attaching -> in-use, in-use -> detaching -> available. A failed
step puts the volume back where it was, so nothing stays reserved; the sweeper rolls back
an attachment whose conductor died mid-way (`sweep_attachments`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cirrus.bus import BusTimeout, RemoteError
from cirrus.compute import actions
from cirrus.compute import volumes as server_volumes
from cirrus.compute.workflows.deps import WorkflowDeps, log
from cirrus.context import RequestContext
from cirrus.db.models import Instance, Volume, utcnow
from cirrus.errors import Conflict, NotFound
from cirrus.storage.volumes import attachments, states
from cirrus.storage.volumes.rpcapi import VolumeAPI
from cirrus.storage.volumes.volumes import transition


def _instance(s: Session, uuid: str) -> Instance:
    inst = s.scalar(select(Instance).where(Instance.uuid == uuid))
    if inst is None or inst.deleted:
        raise NotFound(f"Instance {uuid} could not be found.")
    return inst


def attach_volume(deps: WorkflowDeps, ctx: RequestContext,
                  payload: dict[str, Any]) -> dict[str, Any]:
    uuid, attachment_id = payload["uuid"], payload["attachment_id"]
    timeout = deps.settings.rpc_timeout
    try:
        with deps.db.reader() as s:
            host = server_volumes.check_attachable(_instance(s, uuid), "attach_volume")
            att = attachments.get(s, attachment_id)
            volume = s.get(Volume, att.volume_id)
            if volume is None or volume.status != states.RESERVED:
                raise Conflict(f"Volume {att.volume_id} is no longer reserved for {uuid}.")
            volume_id, device, qos = att.volume_id, att.mountpoint, attachments.qos_of(s, volume)
            read_only = att.attach_mode == "ro" or bool(volume.readonly)
        connection = VolumeAPI(deps.bus).initialize_connection(ctx, volume_id, timeout=timeout)
        disk = server_volumes.volume_device(connection, volume_id, device, qos, read_only)
        if not deps.db.run(lambda s: attachments.attaching(s, attachment_id, connection, host)):
            raise Conflict(f"Volume {volume_id} is no longer reserved for {uuid}.")
        target = deps.agents.attach_volume(ctx, host, uuid, disk.to_dict(), timeout=timeout)
    except (BusTimeout, RemoteError, Conflict, NotFound, ValueError) as exc:
        deps.db.run(lambda s: attachments.roll_back(s, attachment_id))
        log.warning("instance %s: attaching attachment %s failed: %s", uuid, attachment_id, exc)
        if isinstance(exc, (Conflict, NotFound)):
            raise
        raise Conflict(f"Failed to attach volume to {uuid}: {exc}") from exc

    def done(s: Session) -> bool:
        ok = attachments.complete(s, attachment_id, target)
        if ok:
            actions.start_action(s, ctx, uuid, "attach_volume")
        return ok

    if not deps.db.run(done):  # the sweeper rolled it back meanwhile: undo the VM's side
        _detach_quietly(deps, ctx, host, uuid, volume_id)
        raise Conflict(f"Attaching volume {volume_id} to {uuid} timed out.")
    log.info("instance %s: volume %s attached as %s", uuid, volume_id, target)
    return {"device": f"/dev/{target}" if target and not target.startswith("/") else target}


def detach_volume(deps: WorkflowDeps, ctx: RequestContext,
                  payload: dict[str, Any]) -> dict[str, Any]:
    uuid, attachment_id = payload["uuid"], payload["attachment_id"]
    with deps.db.reader() as s:
        host = server_volumes.check_attachable(_instance(s, uuid), "detach_volume")
    volume_id = deps.db.run(lambda s: attachments.begin_detach(s, attachment_id).volume_id)
    try:
        deps.agents.detach_volume(ctx, host, uuid, volume_id,
                                  detach_timeout=deps.settings.rpc_timeout / 2,
                                  timeout=deps.settings.rpc_timeout)
    except (BusTimeout, RemoteError) as exc:
        deps.db.run(lambda s: attachments.roll_detaching(s, attachment_id))
        raise Conflict(f"Failed to detach volume {volume_id} from {uuid}: {exc}") from exc

    def done(s: Session) -> None:
        attachments.finish_detach(s, attachment_id)
        actions.start_action(s, ctx, uuid, "detach_volume")

    deps.db.run(done)
    log.info("instance %s: volume %s detached", uuid, volume_id)
    return {}


def _detach_quietly(deps: WorkflowDeps, ctx: RequestContext, host: str, uuid: str,
                    volume_id: str) -> None:
    try:
        deps.agents.detach_volume(ctx, host, uuid, volume_id, timeout=deps.settings.rpc_timeout)
    except (BusTimeout, RemoteError) as exc:
        log.warning("instance %s: detaching volume %s after a late attach failed: %s",
                    uuid, volume_id, exc)


def release_on_delete(deps: WorkflowDeps, ctx: RequestContext, uuid: str) -> None:
    """The server is gone (its VM destroyed): its volumes are detached, and those marked
    delete_on_termination deleted."""
    def release(s: Session) -> list[str]:
        doomed = []
        for att in attachments.of_instance(s, uuid):
            fields = attachments.server_fields(att)
            transition_ok = att.attach_status == "attached"
            attachments.finish_detach(s, att.id)
            if fields.get("delete_on_termination") and transition_ok:
                volume = s.get(Volume, att.volume_id)
                if volume is not None and not volume.deleted and \
                        volume.status == states.AVAILABLE and \
                        transition(s, volume.id, (states.AVAILABLE,),
                                               states.DELETING):
                    doomed.append(volume.id)
        return doomed

    doomed = deps.db.run(release)
    api = VolumeAPI(deps.bus)
    for volume_id in doomed:
        api.delete_volume(ctx, volume_id)
        log.info("instance %s deleted: volume %s deleted with it", uuid, volume_id)


def sweep_attachments(deps: WorkflowDeps, timeout_s: float) -> int:
    """Roll back the attachments stuck reserved or attaching (and detaching: back to in-use)
    for longer than `timeout_s`: their conductor died or the agent never answered."""
    cutoff = utcnow() - dt.timedelta(seconds=timeout_s)

    def sweep(s: Session) -> int:
        count = 0
        for att in attachments.stale(s, cutoff):
            volume = s.get(Volume, att.volume_id)
            if volume is None:
                continue
            if volume.status == states.DETACHING:
                attachments.roll_detaching(s, att.id)
            else:
                attachments.roll_back(s, att.id)
            log.warning("volume %s stuck %s for over %.0f s: rolled back", att.volume_id,
                        volume.status, timeout_s)
            count += 1
        return count

    return deps.db.run(sweep)


EXTEND_ACTION, EXTEND_EVENT = "extend_volume", "compute_extend_volume"


def extend_attached_volume(deps: WorkflowDeps, ctx: RequestContext,
                           payload: dict[str, Any]) -> None:
    """Online extend (Cinder 3.42), the volume recorded `extending` by the API: the volume
    role grows it where the backend must (rbd; a file volume is grown by QEMU, which holds
    its lock), then the server's VM is told the new size (driver.extend_volume)."""
    volume_id, new_size = payload["volume_id"], int(payload["new_size"])
    with deps.db.reader() as s:
        volume = s.get(Volume, volume_id)
        if volume is None or volume.deleted or volume.status != states.EXTENDING:
            return
        att = next((a for a in attachments.live(s, [volume_id])
                    if a.attach_status == "attached" and a.instance_uuid), None)
        inst = s.scalar(select(Instance).where(Instance.uuid == att.instance_uuid)) \
            if att is not None else None
        host = inst.host if inst is not None and not inst.deleted else None
    timeout = deps.settings.rpc_timeout
    try:
        resized = VolumeAPI(deps.bus).extend_attached(ctx, volume_id, new_size,
                                                      timeout=timeout)
    except (BusTimeout, RemoteError) as exc:
        failure = f"backend: {exc}"
        deps.db.run(lambda s: attachments.end_online_extend(s, volume_id, None, failure))
        log.warning("volume %s: online extend failed in the %s", volume_id, failure)
        return
    error = None
    if host and att is not None and att.instance_uuid:
        uuid = att.instance_uuid  # as Nova's volume-extended event: an extend_volume action
        deps.db.run(lambda s: actions.start_action(s, ctx, uuid, EXTEND_ACTION))
        try:
            deps.agents.extend_volume(ctx, host, att.instance_uuid, volume_id, new_size,
                                      timeout=timeout)
        except (BusTimeout, RemoteError) as exc:
            error = f"the server's VM was not told the new size: {exc}"
            log.warning("volume %s: %s", volume_id, error)
    # a file volume the VM did not grow keeps its size; an rbd one has grown in any case
    size = new_size if error is None or resized else None
    def end(s: Session) -> None:
        attachments.end_online_extend(s, volume_id, size, error)
        if host and att is not None and att.instance_uuid:
            actions.record_event(s, att.instance_uuid, ctx.request_id, EXTEND_EVENT, host,
                                 actions.ERROR if error else actions.SUCCESS, error)

    deps.db.run(end)
    log.info("volume %s extended to %d GiB while attached", volume_id, new_size)
