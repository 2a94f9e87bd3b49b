"""Cinder's attachments API (3.27+; os-complete 3.44), the old attach actions clients still
call (os-reserve ... os-terminate_connection) and the online extend of an in-use volume
(3.42) (issue 15). They share the attachment service (`cirrus.storage.volumes.attachments`)
with Nova's os-volume_attachments: the same rows, states and conditional writes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session, object_session

from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.validation import validate
from cirrus.api.volume.common import admin_only, all_projects, allow, timestamp
from cirrus.api.volume.microversion import Since, min_version
from cirrus.bus import BusTimeout, RemoteError
from cirrus.compute.rpcapi import ConductorAPI
from cirrus.db.models import Volume, VolumeAttachment, VolumeType
from cirrus.errors import BadRequest, CirrusError, ServiceUnavailable
from cirrus.identity.policy import READ, WRITE
from cirrus.storage.volumes import attachments as service
from cirrus.storage.volumes import quotas, states
from cirrus.storage.volumes.rpcapi import VolumeAPI
from cirrus.storage.volumes.volumes import InvalidVolume, get_volume

ONLINE_EXTEND = Since("3.42")

_connector = {"type": ["object", "null"]}
CREATE = {
    "type": "object",
    "properties": {"attachment": {
        "type": "object",
        "properties": {
            "volume_uuid": {"type": "string", "format": "uuid"},
            "instance_uuid": {"type": ["string", "null"], "format": "uuid"},
            "connector": _connector,
            "mode": {"type": "string", "enum": ["rw", "ro"]},
        },
        "required": ["volume_uuid"], "additionalProperties": False}},
    "required": ["attachment"], "additionalProperties": False,
}
UPDATE = {
    "type": "object",
    "properties": {"attachment": {
        "type": "object", "properties": {"connector": {"type": "object"}},
        "required": ["connector"], "additionalProperties": False}},
    "required": ["attachment"], "additionalProperties": False,
}


# ---------------------------------------------------------------- views


def attachment_summary(att: VolumeAttachment) -> dict[str, Any]:
    return {"id": att.id, "status": att.attach_status, "instance": att.instance_uuid,
            "volume_id": att.volume_id}


def attachment_view(att: VolumeAttachment) -> dict[str, Any]:
    return {**attachment_summary(att), "attached_at": timestamp(att.attach_time),
            "detached_at": timestamp(att.detach_time), "attach_mode": att.attach_mode,
            "connection_info": dict(att.connection_info or {})}


def volume_attachments(v: Volume) -> list[dict[str, Any]]:
    """A volume's `attachments` as Cinder's volume view lists them (the attached ones)."""
    s = object_session(v)
    if s is None:
        return []
    return [{"id": v.id, "attachment_id": att.id, "volume_id": v.id,
             "server_id": att.instance_uuid, "host_name": att.attached_host,
             "device": att.mountpoint, "attached_at": timestamp(att.attach_time)}
            for att in service.live(s, [v.id]) if att.attach_status == "attached"]


# ---------------------------------------------------------------- the attachments API


def _connection(req: ApiRequest, volume_id: str) -> dict[str, Any]:
    try:
        return VolumeAPI(req.cloud.bus).initialize_connection(
            req.ctx, volume_id, timeout=req.cloud.settings.rpc_timeout)
    except RemoteError as exc:
        raise CirrusError(f"Unable to initialize the connection of volume {volume_id}: "
                          f"{exc.message}") from exc
    except BusTimeout as exc:
        raise ServiceUnavailable("The volume service did not answer in time; try "
                                 "again.") from exc


@min_version("3.27")
def create_attachment(req: ApiRequest) -> Reply:
    allow(req, WRITE, "volume:attachment_create")
    body = req.json
    validate(CREATE, body)
    asked = body["attachment"]
    att_id = req.cloud.db.run(lambda s: service.reserve(
        s, req.ctx, asked["volume_uuid"], asked.get("instance_uuid"),
        mode=asked.get("mode", "rw")).id)
    if asked.get("connector"):
        try:
            conn = _connection(req, asked["volume_uuid"])
            req.cloud.db.run(lambda s: service.connect(s, att_id, asked["connector"], conn))
        except Exception:
            req.cloud.db.run(lambda s: service.roll_back(s, att_id))
            raise
    with req.cloud.db.reader() as s:
        return Reply(200, {"attachment": attachment_view(service.get(s, att_id))})


def _list(req: ApiRequest, detail: bool) -> dict:
    allow(req, READ, "volume:attachment_get_all")
    q = req.query
    with req.cloud.db.reader() as s:
        rows = service.list_visible(s, req.ctx, all_projects=all_projects(req),
                                    volume_id=q.get("volume_id"),
                                    instance_id=q.get("instance_id"), status=q.get("status"))
        view = attachment_view if detail else attachment_summary
        return {"attachments": [view(a) for a in rows]}


@min_version("3.27")
def list_attachments(req: ApiRequest) -> dict:
    return _list(req, False)


@min_version("3.27")
def list_attachments_detail(req: ApiRequest) -> dict:
    return _list(req, True)


@min_version("3.27")
def show_attachment(req: ApiRequest, attachment_id: str) -> dict:
    allow(req, READ, "volume:attachment_get")
    with req.cloud.db.reader() as s:
        return {"attachment": attachment_view(service.visible(s, req.ctx, attachment_id))}


@min_version("3.27")
def update_attachment(req: ApiRequest, attachment_id: str) -> dict:
    allow(req, WRITE, "volume:attachment_update")
    body = req.json
    validate(UPDATE, body)
    with req.cloud.db.reader() as s:
        volume_id = service.visible(s, req.ctx, attachment_id).volume_id
    conn = _connection(req, volume_id)
    req.cloud.db.run(lambda s: service.connect(s, attachment_id,
                                               body["attachment"]["connector"], conn))
    with req.cloud.db.reader() as s:
        return {"attachment": attachment_view(service.get(s, attachment_id))}


@min_version("3.27")
def delete_attachment(req: ApiRequest, attachment_id: str) -> dict:
    allow(req, WRITE, "volume:attachment_delete")

    def work(s: Session) -> list[dict[str, Any]]:
        service.visible(s, req.ctx, attachment_id)
        volume_id = service.remove(s, attachment_id)
        s.flush()
        return [attachment_summary(a) for a in service.live(s, [volume_id])]

    return {"attachments": req.cloud.db.run(work)}


@min_version("3.44")
def attachment_action(req: ApiRequest, attachment_id: str) -> Reply:
    allow(req, WRITE, "volume:attachment_complete")
    body = req.json
    if not isinstance(body, dict) or list(body) != ["os-complete"]:
        raise BadRequest("Invalid input received: the only attachment action is os-complete.")

    def work(s: Session) -> None:
        att = service.visible(s, req.ctx, attachment_id)
        if att.attach_status == "attached":
            return
        if not service.complete(s, attachment_id, None):
            raise InvalidVolume(f"attachment {attachment_id} cannot be completed while it "
                                f"is {att.attach_status}.")

    req.cloud.db.run(work)
    return Reply(204)


# ---------------------------------------------------------------- the old volume actions


def _body(body: dict, name: str) -> dict[str, Any]:
    value = body.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"Invalid input for field/attribute {name}: it must be an object.")
    return value


def _reserve(req: ApiRequest, volume_id: str, body: dict) -> Reply:
    allow(req, WRITE, "volume:reserve_volume")
    req.cloud.db.run(lambda s: service.legacy_reserve(s, req.ctx, volume_id))
    return Reply(202)


def _unreserve(req: ApiRequest, volume_id: str, body: dict) -> Reply:
    allow(req, WRITE, "volume:unreserve_volume")
    req.cloud.db.run(lambda s: service.legacy_unreserve(s, req.ctx, volume_id))
    return Reply(202)


def _begin_detaching(req: ApiRequest, volume_id: str, body: dict) -> Reply:
    allow(req, WRITE, "volume:begin_detaching")
    req.cloud.db.run(lambda s: service.legacy_begin_detaching(s, req.ctx, volume_id))
    return Reply(202)


def _roll_detaching(req: ApiRequest, volume_id: str, body: dict) -> Reply:
    allow(req, WRITE, "volume:roll_detaching")
    req.cloud.db.run(lambda s: service.legacy_roll_detaching(s, req.ctx, volume_id))
    return Reply(202)


def _attach(req: ApiRequest, volume_id: str, body: dict) -> Reply:
    allow(req, WRITE, "volume:attach")
    asked = _body(body, "os-attach")
    mode = asked.get("mode", "rw")
    if mode not in ("rw", "ro"):
        raise BadRequest("Invalid input for field/attribute mode: it must be rw or ro.")
    if not asked.get("instance_uuid") and not asked.get("host_name"):
        raise BadRequest("Invalid request to attach volume: instance_uuid or host_name is "
                         "required.")
    mountpoint = asked.get("mountpoint")
    if not isinstance(mountpoint, str) or not mountpoint:
        raise BadRequest("Invalid input for field/attribute mountpoint: a string is required.")
    req.cloud.db.run(lambda s: service.legacy_attach(
        s, req.ctx, volume_id, asked.get("instance_uuid"), mountpoint, mode,
        asked.get("host_name")))
    return Reply(202)


def _detach(req: ApiRequest, volume_id: str, body: dict) -> Reply:
    allow(req, WRITE, "volume:detach")
    asked = _body(body, "os-detach")
    req.cloud.db.run(lambda s: service.legacy_detach(s, req.ctx, volume_id,
                                                     asked.get("attachment_id")))
    return Reply(202)


def _force_detach(req: ApiRequest, volume_id: str, body: dict) -> Reply:
    admin_only(req, "volume_extension:volume_admin_actions:force_detach")
    asked = _body(body, "os-force_detach")
    attachment_id = asked.get("attachment_id")
    if attachment_id is not None and not isinstance(attachment_id, str):
        raise BadRequest("Invalid input for field/attribute attachment_id: a string is "
                         "required.")
    req.cloud.db.run(lambda s: service.force_detach(s, req.ctx, volume_id, attachment_id))
    return Reply(202)


def _initialize_connection(req: ApiRequest, volume_id: str, body: dict) -> dict:
    allow(req, WRITE, "volume:initialize_connection")
    asked = _body(body, "os-initialize_connection")
    if not isinstance(asked.get("connector"), dict):
        raise BadRequest("Invalid input for field/attribute connector: an object is "
                         "required.")
    with req.cloud.db.reader() as s:
        get_volume(s, req.ctx, volume_id)
    return {"connection_info": _connection(req, volume_id)}


def _terminate_connection(req: ApiRequest, volume_id: str, body: dict) -> Reply:
    allow(req, WRITE, "volume:terminate_connection")
    with req.cloud.db.reader() as s:
        get_volume(s, req.ctx, volume_id)
    return Reply(202)


# ---------------------------------------------------------------- online extend (3.42)


def online_extend(fallback: Callable[[ApiRequest, str, dict], Reply]
                  ) -> Callable[[ApiRequest, str, dict], Reply]:
    """os-extend: an in-use volume (3.42+) is grown through the conductor, the volume role
    and the server's agent; anything else is the volume role's offline extend."""

    def extend(req: ApiRequest, volume_id: str, body: dict) -> Reply:
        with req.cloud.db.reader() as s:  # in-use but attached to no server: offline's 400
            in_use = get_volume(s, req.ctx, volume_id).status == states.IN_USE and any(
                a.attach_status == "attached" and a.instance_uuid
                for a in service.live(s, [volume_id]))
        if not (in_use and ONLINE_EXTEND(req)):
            return fallback(req, volume_id, body)
        allow(req, WRITE, "volume:extend_attached_volume")
        asked = _body(body, "os-extend")
        try:
            new_size = int(asked["new_size"])
        except (KeyError, TypeError, ValueError):
            raise BadRequest("Invalid input for field/attribute new_size: an integer is "
                             "required.") from None

        def work(s: Session) -> None:
            volume = get_volume(s, req.ctx, volume_id, lock=True)
            if new_size <= volume.size:
                raise BadRequest(f"Invalid input received: New size for extend must be "
                                 f"greater than current size. (current: {volume.size}, "
                                 f"extended: {new_size}).")
            vtype = s.get(VolumeType, volume.volume_type_id)
            quotas.check(s, req.cloud.settings, volume.project_id,
                         vtype.name if vtype else "", gigabytes=new_size - volume.size,
                         size=new_size, pending=True)
            service.begin_online_extend(s, req.ctx, volume_id, new_size)

        req.cloud.db.run(work)
        ConductorAPI(req.cloud.bus).extend_attached_volume(req.ctx, volume_id, new_size)
        return Reply(202)

    return extend


def actions(existing: dict[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """The volume actions this module adds (and the os-extend it wraps)."""
    return {
        "os-reserve": _reserve, "os-unreserve": _unreserve, "os-force_detach": _force_detach,
        "os-begin_detaching": _begin_detaching, "os-roll_detaching": _roll_detaching,
        "os-attach": _attach, "os-detach": _detach,
        "os-initialize_connection": _initialize_connection,
        "os-terminate_connection": _terminate_connection,
        "os-extend": online_extend(existing["os-extend"]),
    }


ROUTES = [
    ("GET", "/v3/{project_id}/attachments", list_attachments),
    ("POST", "/v3/{project_id}/attachments", create_attachment),
    ("GET", "/v3/{project_id}/attachments/detail", list_attachments_detail),
    ("GET", "/v3/{project_id}/attachments/{attachment_id}", show_attachment),
    ("PUT", "/v3/{project_id}/attachments/{attachment_id}", update_attachment),
    ("DELETE", "/v3/{project_id}/attachments/{attachment_id}", delete_attachment),
    ("POST", "/v3/{project_id}/attachments/{attachment_id}/action", attachment_action),
]
