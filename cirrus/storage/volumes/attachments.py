"""Volume attachments (issue 15): a volume attached, or being attached, to a server.

The steps and the volume's states, as in Cinder:

    reserve     available -> reserved      (an attachment row, attach_status reserved)
    attaching   reserved  -> attaching     (the attachment holds the connection info)
    complete    attaching -> in-use        (attach_status attached, the device stored)
    roll_back   reserved|attaching -> available (the attachment deleted: nothing stuck)
    begin_detach in-use   -> detaching
    roll_detaching detaching -> in-use
    finish_detach detaching -> available   (the attachment deleted)

Every volume status write is conditional (`volumes.transition`): of two concurrent reserves
of one volume one wins, the other gets InvalidVolume. Nova's block device mapping fields (the
device tag, delete_on_termination and the BDM's uuid) are kept in the attachment's
`connector` under SERVER_KEY; the Cinder views leave them out.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cirrus.context import RequestContext
from cirrus.db.models import QosSpec, Volume, VolumeAttachment, VolumeType, utcnow
from cirrus.errors import NotFound
from cirrus.storage.volumes import states
from cirrus.storage.volumes.volumes import InvalidVolume, get_volume, transition

SERVER_KEY = "cirrus_server"  # connector key of the server-side (Nova BDM) fields
# The volume states of an attachment in progress: the sweeper rolls them back past the timeout.
ATTACH_PENDING = (states.RESERVED, states.ATTACHING)


def server_fields(att: VolumeAttachment) -> dict[str, Any]:
    return dict((att.connector or {}).get(SERVER_KEY) or {})


def host_connector(att: VolumeAttachment) -> dict[str, Any]:
    """The connector as a Cinder client gave it (without the server-side fields)."""
    return {k: v for k, v in (att.connector or {}).items() if k != SERVER_KEY}


def reserve(s: Session, ctx: RequestContext, volume_id: str, instance_uuid: str | None, *,
            project_id: str | None = None, device: str | None = None, tag: str | None = None,
            delete_on_termination: bool = False, mode: str = "rw") -> VolumeAttachment:
    """Reserve `volume_id` for `instance_uuid`: the volume must be available (and in
    `project_id` when given). InvalidVolume (400) if it is not, or another reserve won."""
    volume = get_volume(s, ctx, volume_id)
    if project_id is not None and volume.project_id != project_id:
        raise NotFound(f"Volume {volume_id} could not be found.")
    if instance_uuid is not None and volume.status == states.IN_USE and any(
            a.instance_uuid == instance_uuid for a in live(s, [volume_id])):
        raise InvalidVolume(f"volume {volume_id} is already attached to the server "
                            f"{instance_uuid}.")
    if volume.status != states.AVAILABLE:
        raise InvalidVolume(f"volume {volume_id} status must be 'available' to attach, "
                            f"but it is '{volume.status}'.")
    if not transition(s, volume_id, (states.AVAILABLE,), states.RESERVED,
                      attach_status=states.RESERVED):
        raise InvalidVolume(f"volume {volume_id} is being attached by another request.")
    now = utcnow()
    att = VolumeAttachment(
        id=str(uuidlib.uuid4()), volume_id=volume_id, instance_uuid=instance_uuid,
        mountpoint=device, attach_status=states.RESERVED, attach_mode=mode,
        connector={SERVER_KEY: {"tag": tag, "delete_on_termination": delete_on_termination,
                                "bdm_uuid": str(uuidlib.uuid4())}},
        connection_info={}, deleted=False, created_at=now)
    s.add(att)
    s.flush()
    return att


def get(s: Session, attachment_id: str, *, lock: bool = False) -> VolumeAttachment:
    att = s.get(VolumeAttachment, attachment_id, with_for_update=lock) \
        if len(attachment_id) <= 36 else None
    if att is None or att.deleted:
        raise NotFound(f"Volume attachment {attachment_id} could not be found.")
    return att


def live(s: Session, volume_ids: Iterable[str] | None = None, *,
         instance_uuids: Iterable[str] | None = None) -> list[VolumeAttachment]:
    """The attachments not deleted, of these volumes and/or instances, oldest first."""
    query = select(VolumeAttachment).where(VolumeAttachment.deleted.is_(False))
    if volume_ids is not None:
        query = query.where(VolumeAttachment.volume_id.in_(list(volume_ids)))
    if instance_uuids is not None:
        query = query.where(VolumeAttachment.instance_uuid.in_(list(instance_uuids)))
    return list(s.scalars(query.order_by(VolumeAttachment.created_at, VolumeAttachment.id)))


def of_instance(s: Session, instance_uuid: str) -> list[VolumeAttachment]:
    return live(s, instance_uuids=[instance_uuid])


def attaching(s: Session, attachment_id: str, connection_info: dict[str, Any],
              host: str | None = None) -> bool:
    att = get(s, attachment_id, lock=True)
    if not transition(s, att.volume_id, (states.RESERVED,), states.ATTACHING,
                      attach_status=states.ATTACHING):
        return False
    att.attach_status = states.ATTACHING
    att.connection_info = dict(connection_info)
    att.attached_host = host
    return True


def complete(s: Session, attachment_id: str, device: str | None) -> bool:
    """The volume is attached: in-use, attach_status attached, the device stored."""
    att = get(s, attachment_id, lock=True)
    if not transition(s, att.volume_id, (states.ATTACHING, states.RESERVED), states.IN_USE,
                      attach_status="attached"):
        return False
    att.attach_status = "attached"
    if device:
        att.mountpoint = device if device.startswith("/dev/") else f"/dev/{device}"
    att.attach_time = utcnow()
    return True


def _forget(s: Session, att: VolumeAttachment) -> None:
    att.deleted = True
    att.detach_time = utcnow()
    att.attach_status = states.DETACHED


def roll_back(s: Session, attachment_id: str) -> None:
    """An attach failed: the attachment goes, the volume is available again."""
    att = s.get(VolumeAttachment, attachment_id, with_for_update=True)
    if att is None or att.deleted:
        return
    _forget(s, att)
    transition(s, att.volume_id, ATTACH_PENDING, states.AVAILABLE,
               attach_status=states.DETACHED)


def begin_detach(s: Session, attachment_id: str) -> VolumeAttachment:
    att = get(s, attachment_id, lock=True)
    if not transition(s, att.volume_id, (states.IN_USE,), states.DETACHING,
                      attach_status="detaching"):
        volume = s.get(Volume, att.volume_id)
        raise InvalidVolume(f"volume {att.volume_id} status must be 'in-use' to detach, but "
                            f"it is '{volume.status if volume else 'gone'}'.")
    att.attach_status = "detaching"
    return att


def roll_detaching(s: Session, attachment_id: str) -> None:
    att = s.get(VolumeAttachment, attachment_id, with_for_update=True)
    if att is None or att.deleted:
        return
    att.attach_status = "attached"
    transition(s, att.volume_id, (states.DETACHING,), states.IN_USE, attach_status="attached")


def finish_detach(s: Session, attachment_id: str) -> str | None:
    """The volume is detached: the attachment goes, the volume is available (or still in-use
    when another attachment holds it). Returns the volume id."""
    att = s.get(VolumeAttachment, attachment_id, with_for_update=True)
    if att is None or att.deleted:
        return None
    _forget(s, att)
    s.flush()
    if live(s, [att.volume_id]):
        transition(s, att.volume_id, (states.DETACHING,), states.IN_USE,
                   attach_status="attached")
    else:
        transition(s, att.volume_id, (states.DETACHING, states.IN_USE) + ATTACH_PENDING,
                   states.AVAILABLE, attach_status=states.DETACHED)
    return att.volume_id


def qos_of(s: Session, volume: Volume) -> dict[str, str]:
    """The front-end QoS specs of the volume's type (consumer front-end or both)."""
    vtype = s.get(VolumeType, volume.volume_type_id)
    if vtype is None or not vtype.qos_specs_id:
        return {}
    spec = s.get(QosSpec, vtype.qos_specs_id)
    if spec is None or spec.consumer not in ("front-end", "both"):
        return {}
    return {str(k): str(v) for k, v in (spec.specs or {}).items()}


def stale(s: Session, older_than: Any) -> list[VolumeAttachment]:
    """Attachments whose volume has been reserved/attaching/detaching since before
    `older_than`: their worker died or the message was lost."""
    rows = s.execute(select(VolumeAttachment, Volume).join(
        Volume, Volume.id == VolumeAttachment.volume_id).where(
        VolumeAttachment.deleted.is_(False), Volume.deleted.is_(False),
        Volume.status.in_(ATTACH_PENDING + (states.DETACHING,)),
        Volume.status_changed_at < older_than))
    return [att for att, _ in rows]


# ---------------------------------------------------------------- Cinder's side (3.27+)


def visible(s: Session, ctx: RequestContext, attachment_id: str) -> VolumeAttachment:
    """The attachment if the caller may see its volume (NotFound otherwise)."""
    att = get(s, attachment_id)
    get_volume(s, ctx, att.volume_id)
    return att


def list_visible(s: Session, ctx: RequestContext, *, all_projects: bool = False,
                 volume_id: str | None = None, instance_id: str | None = None,
                 status: str | None = None) -> list[VolumeAttachment]:
    query = select(VolumeAttachment).join(Volume, Volume.id == VolumeAttachment.volume_id).where(
        VolumeAttachment.deleted.is_(False), Volume.deleted.is_(False))
    if not (ctx.is_admin and all_projects):
        query = query.where(Volume.project_id == (ctx.project_id or ""))
    if volume_id is not None:
        query = query.where(VolumeAttachment.volume_id == volume_id)
    if instance_id is not None:
        query = query.where(VolumeAttachment.instance_uuid == instance_id)
    if status is not None:
        query = query.where(VolumeAttachment.attach_status == status)
    return list(s.scalars(query.order_by(VolumeAttachment.created_at.desc(),
                                         VolumeAttachment.id)))


def connect(s: Session, attachment_id: str, connector: dict[str, Any],
            connection_info: dict[str, Any]) -> VolumeAttachment:
    """attachment update (a connector given): the volume is attaching, the connection known."""
    att = get(s, attachment_id, lock=True)
    if att.attach_status not in (states.RESERVED, states.ATTACHING, "attached"):
        raise InvalidVolume(f"attachment {attachment_id} is {att.attach_status}.")
    if att.attach_status == states.RESERVED and not attaching(
            s, attachment_id, connection_info, connector.get("host")):
        raise InvalidVolume(f"volume {att.volume_id} is no longer reserved.")
    att.connection_info = dict(connection_info)
    att.connector = {**dict(connector), SERVER_KEY: server_fields(att)}
    if connector.get("mountpoint"):
        att.mountpoint = str(connector["mountpoint"])
    return att


def remove(s: Session, attachment_id: str) -> str:
    """attachment delete: whatever state it is in, it goes and the volume is freed."""
    att = get(s, attachment_id, lock=True)
    if att.attach_status in (states.RESERVED, states.ATTACHING):
        roll_back(s, attachment_id)
    else:
        transition(s, att.volume_id, (states.IN_USE,), states.DETACHING,
                   attach_status="detaching")
        finish_detach(s, attachment_id)
    return att.volume_id


# ---------------------------------------------------------------- the old volume actions


def _pending(s: Session, volume_id: str, status: str) -> VolumeAttachment | None:
    return next((a for a in live(s, [volume_id]) if a.attach_status == status), None)


def legacy_reserve(s: Session, ctx: RequestContext, volume_id: str) -> None:
    """os-reserve: as Cinder's, the volume is 'attaching' (its attachment reserved) until
    os-attach or os-unreserve."""
    reserve(s, ctx, volume_id, None)
    transition(s, volume_id, (states.RESERVED,), states.ATTACHING,
               attach_status=states.RESERVED)


def legacy_unreserve(s: Session, ctx: RequestContext, volume_id: str) -> None:
    get_volume(s, ctx, volume_id)
    for att in live(s, [volume_id]):
        if att.attach_status == states.RESERVED:
            roll_back(s, att.id)


def legacy_attach(s: Session, ctx: RequestContext, volume_id: str, instance_uuid: str | None,
                  mountpoint: str | None, mode: str, host: str | None) -> VolumeAttachment:
    """os-attach: the volume (reserved or available) is in-use by the instance or host."""
    get_volume(s, ctx, volume_id)
    att = _pending(s, volume_id, states.RESERVED) or reserve(
        s, ctx, volume_id, instance_uuid, mode=mode)
    att.instance_uuid = instance_uuid or att.instance_uuid
    att.attach_mode = mode
    att.attached_host = host
    att.mountpoint = mountpoint
    complete(s, att.id, None)
    return att


def legacy_begin_detaching(s: Session, ctx: RequestContext, volume_id: str) -> None:
    get_volume(s, ctx, volume_id)
    att = _pending(s, volume_id, "attached")
    if att is None:
        raise InvalidVolume(f"volume {volume_id} is not attached.")
    begin_detach(s, att.id)


def legacy_roll_detaching(s: Session, ctx: RequestContext, volume_id: str) -> None:
    get_volume(s, ctx, volume_id)
    for att in live(s, [volume_id]):
        if att.attach_status == "detaching":
            roll_detaching(s, att.id)


def legacy_detach(s: Session, ctx: RequestContext, volume_id: str,
                  attachment_id: str | None) -> None:
    get_volume(s, ctx, volume_id)
    found = [a for a in live(s, [volume_id])
             if attachment_id is None or a.id == attachment_id]
    if not found and attachment_id is None:
        # as Cinder's: a volume no longer attached (force-detached) is detached already
        transition(s, volume_id, (states.IN_USE, states.DETACHING), states.AVAILABLE,
                   attach_status=states.DETACHED)
        return
    if not found:
        raise InvalidVolume(f"volume {volume_id} is not attached"
                            + (f" by attachment {attachment_id}." if attachment_id else "."))
    att = found[0]
    transition(s, volume_id, (states.IN_USE,), states.DETACHING, attach_status="detaching")
    finish_detach(s, att.id)


def force_detach(s: Session, ctx: RequestContext, volume_id: str,
                 attachment_id: str | None) -> None:
    """os-force_detach (admins): the attachment (all of them when none is named) goes
    whatever the volume's status; the volume is available when none is left."""
    get_volume(s, ctx, volume_id, lock=True)
    found = [a for a in live(s, [volume_id])
             if attachment_id is None or a.id == attachment_id]
    if attachment_id is not None and not found:
        raise NotFound(f"Volume attachment {attachment_id} could not be found.")
    for att in found:
        _forget(s, att)
    s.flush()
    if not live(s, [volume_id]):
        transition(s, volume_id, states.VOLUME_STATUSES, states.AVAILABLE,
                   attach_status=states.DETACHED)


# ---------------------------------------------------------------- online extend (3.42)


def begin_online_extend(s: Session, ctx: RequestContext, volume_id: str,
                        new_size: int) -> tuple[Volume, VolumeAttachment]:
    """in-use -> extending; the attachment whose server's VM must learn the new size."""
    volume = get_volume(s, ctx, volume_id, lock=True)
    if volume.status != states.IN_USE:
        raise InvalidVolume(f"Volume status must be 'in-use' to extend it attached, currently "
                            f"in '{volume.status}'.")
    att = _pending(s, volume_id, "attached")
    if att is None or not att.instance_uuid:
        raise InvalidVolume(f"volume {volume_id} is not attached to a server.")
    if not transition(s, volume_id, (states.IN_USE,), states.EXTENDING, error=None):
        raise InvalidVolume("the volume's status changed meanwhile; try again.")
    return volume, att


def end_online_extend(s: Session, volume_id: str, new_size: int | None,
                      error: str | None = None) -> None:
    """extending -> in-use (with the new size if it grew), or error_extending."""
    if new_size is None and error is not None and error.startswith("backend:"):
        transition(s, volume_id, (states.EXTENDING,), states.ERROR_EXTENDING, error=error)
        return
    values: dict[str, Any] = {"error": error}
    if new_size is not None:
        values["size"] = new_size
    transition(s, volume_id, (states.EXTENDING,), states.IN_USE, **values)
