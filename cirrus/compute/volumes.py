"""A server's volumes (issue 15): Nova's side of the attachments — which servers may take a
volume now, the reserve the API makes, the VolumeDevice an agent attaches, and the
`volumes_attached` a server shows. The records and their states are the volume service's
(`cirrus.storage.volumes.attachments`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from cirrus.compute import states
from cirrus.context import RequestContext
from cirrus.db.models import Instance, Volume, VolumeAttachment
from cirrus.errors import Conflict, NotFound
from cirrus.storage.volumes import attachments
from cirrus.virt.spec import VOLUME_TYPES, VolumeDevice, VolumeQos

# Nova lets a volume be attached to (or detached from) a server in these vm states, with no
# task running; a server not on a host (building, shelved_offloaded) cannot take one.
ATTACHABLE = (states.ACTIVE, states.STOPPED, "paused", "suspended", states.RESIZED)


def check_attachable(inst: Instance, action: str) -> str:
    """The server's host, or Conflict (409) as Nova's InstanceInvalidState."""
    if inst.task_state is not None or inst.vm_state not in ATTACHABLE or not inst.host:
        raise Conflict(f"Cannot '{action}' instance {inst.uuid} while it is in vm_state "
                       f"{inst.vm_state}" + (f", task_state {inst.task_state}"
                                              if inst.task_state else ""))
    return inst.host


def reserve(s: Session, ctx: RequestContext, inst: Instance, volume_id: str, *,
            device: str | None, tag: str | None,
            delete_on_termination: bool) -> VolumeAttachment:
    """Reserve the volume (of the server's project) for the server."""
    check_attachable(inst, "attach_volume")
    return attachments.reserve(s, ctx, volume_id, inst.uuid, project_id=inst.project_id,
                               device=device, tag=tag,
                               delete_on_termination=delete_on_termination)


@dataclass(frozen=True)
class AttachedVolume:
    """A server's attachment as Nova shows it (os-volume_attachments, volumes_attached)."""

    attachment_id: str
    volume_id: str
    server_id: str
    device: str | None
    tag: str | None
    delete_on_termination: bool
    bdm_uuid: str | None
    status: str


def _attached(att: VolumeAttachment) -> AttachedVolume:
    fields = attachments.server_fields(att)
    return AttachedVolume(
        attachment_id=att.id, volume_id=att.volume_id, server_id=att.instance_uuid or "",
        device=att.mountpoint, tag=fields.get("tag"),
        delete_on_termination=bool(fields.get("delete_on_termination")),
        bdm_uuid=fields.get("bdm_uuid"), status=att.attach_status)


def attached(s: Session, server_ids: list[str]) -> dict[str, list[AttachedVolume]]:
    """server id -> its attachments (attached ones and those in progress), oldest first."""
    found: dict[str, list[AttachedVolume]] = {uuid: [] for uuid in server_ids}
    if not server_ids:
        return found
    for att in attachments.live(s, instance_uuids=server_ids):
        found.setdefault(att.instance_uuid or "", []).append(_attached(att))
    return found


def attached_one(s: Session, server_id: str, volume_id: str) -> AttachedVolume:
    for item in attached(s, [server_id])[server_id]:
        if item.volume_id == volume_id:
            return item
    raise NotFound(f"Volume {volume_id} is not attached to server {server_id}.")


def volume_device(connection: dict[str, Any], volume_id: str, device: str | None,
                  qos: dict[str, str], read_only: bool = False,
                  boot_index: int | None = None) -> VolumeDevice:
    """The disk an agent attaches: the volume role's connection and the type's QoS.

    The fake volume backend's connection (driver_volume_type "fake") is shown to the driver
    as a file that is never opened (only the fake virt driver gets it)."""
    kind = connection.get("driver_volume_type") or ""
    data = dict(connection.get("data") or {})
    if kind not in VOLUME_TYPES:
        kind, data = "file", {"path": f"/nonexistent/{kind}/{data.get('name', volume_id)}",
                              "format": "raw"}
    return VolumeDevice(volume_id=volume_id, driver_volume_type=kind, data=data,
                        device_name=device, read_only=read_only,
                        qos=VolumeQos.from_dict(qos), boot_index=boot_index)


def devices_of(s: Session, instance_uuid: str) -> list[VolumeDevice]:
    """The volumes an instance's domain is (re)built with: its attached volumes, each with
    the connection recorded at attach (InstanceSpec.volumes)."""
    found = []
    for att in attachments.of_instance(s, instance_uuid):
        if att.attach_status != "attached" or not att.connection_info:
            continue
        volume = s.get(Volume, att.volume_id)
        if volume is None or volume.deleted:
            continue
        found.append(volume_device(att.connection_info, att.volume_id, att.mountpoint,
                                   attachments.qos_of(s, volume),
                                   read_only=att.attach_mode == "ro",
                                   boot_index=attachments.server_fields(att).get("boot_index")))
    return found
