"""A server's volumes: Nova's `os-volume_attachments` (list, show, attach, detach) (issue 15).

Attach reserves the volume at once (of two concurrent attaches of one volume one wins, the
other gets 400 as from Nova), then asks the conductor, which has the volume role open the
volume and the server's agent attach it, and answers once it is in-use (or rolled back to
available, with why). Detach likewise, back to available. The server's state never changes.

Views by microversion: `tag` (2.70), `delete_on_termination` (2.79; settable at 2.79),
`attachment_id` and `bdm_uuid` instead of `id` in list and show (2.89).
"""

from __future__ import annotations

from typing import Any

from cirrus.api.compute.interfaces import _ask_conductor
from cirrus.api.compute.microversion import Since
from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.validation import validate
from cirrus.compute import instances
from cirrus.compute import volumes as server_volumes
from cirrus.compute.rpcapi import ConductorAPI
from cirrus.errors import BadRequest
from cirrus.identity.policy import READ, WRITE, authorize

TAG_SETTABLE = Since("2.49")
TAG_SHOWN = Since("2.70")
DELETE_ON_TERMINATION = Since("2.79")
ATTACHMENT_IDS = Since("2.89")

_attach = {
    "type": "object",
    "properties": {
        "volumeAttachment": {
            "type": "object",
            "properties": {
                "volumeId": {"type": "string", "format": "uuid"},
                "device": {"type": ["string", "null"], "maxLength": 255,
                           "pattern": "^(/dev/)?[a-z]+[a-z0-9]*$"},
                "tag": {"type": "string", "minLength": 1, "maxLength": 60,
                        "pattern": "^[^,/]*$"},
                "delete_on_termination": {"type": "boolean"},
            },
            "required": ["volumeId"],
            "additionalProperties": False,
        },
    },
    "required": ["volumeAttachment"],
    "additionalProperties": False,
}


def _view(req: ApiRequest, item: server_volumes.AttachedVolume, *,
          ids: bool = True) -> dict[str, Any]:
    view: dict[str, Any] = {"device": item.device, "serverId": item.server_id,
                            "volumeId": item.volume_id}
    if ids and ATTACHMENT_IDS(req):
        view["attachment_id"] = item.attachment_id
        view["bdm_uuid"] = item.bdm_uuid
    else:
        view["id"] = item.volume_id
    if TAG_SHOWN(req):
        view["tag"] = item.tag
    if DELETE_ON_TERMINATION(req):
        view["delete_on_termination"] = item.delete_on_termination
    return view


def _offset_limit(req: ApiRequest) -> tuple[int, int | None]:
    values: list[int | None] = []
    for key in ("offset", "limit"):
        raw = req.query.get(key)
        if raw is None:
            values.append(None)
            continue
        try:
            value = int(raw)
        except ValueError:
            raise BadRequest(f"Invalid input for query parameters {key}. Value: {raw}. "
                             f"'{raw}' is not a 'integer'") from None
        if value < 0:
            raise BadRequest(f"Invalid input for query parameters {key}. Value: {raw}. "
                             f"{value} is less than the minimum of 0")
        values.append(value)
    return values[0] or 0, values[1]


def list_attachments(req: ApiRequest, server_id: str) -> dict:
    authorize(req.ctx, READ, "os_compute_api:os-volumes-attachments:index")
    offset, limit = _offset_limit(req)
    with req.cloud.db.reader() as s:
        inst = instances.get(s, req.ctx, server_id)
        items = server_volumes.attached(s, [inst.uuid])[inst.uuid]
    items = items[offset:] if limit is None else items[offset:offset + limit]
    return {"volumeAttachments": [_view(req, item) for item in items]}


def show_attachment(req: ApiRequest, server_id: str, volume_id: str) -> dict:
    authorize(req.ctx, READ, "os_compute_api:os-volumes-attachments:show")
    with req.cloud.db.reader() as s:
        inst = instances.get(s, req.ctx, server_id)
        item = server_volumes.attached_one(s, inst.uuid, volume_id)
    return {"volumeAttachment": _view(req, item)}


def attach(req: ApiRequest, server_id: str) -> Reply:
    authorize(req.ctx, WRITE, "os_compute_api:os-volumes-attachments:create")
    body = req.json
    validate(_attach, body)
    asked = body["volumeAttachment"]
    if "tag" in asked and not TAG_SETTABLE(req):
        raise BadRequest("Invalid input for field/attribute volumeAttachment. Additional "
                         "properties are not allowed ('tag' was unexpected)")
    if "delete_on_termination" in asked and not DELETE_ON_TERMINATION(req):
        raise BadRequest("Invalid input for field/attribute volumeAttachment. Additional "
                         "properties are not allowed ('delete_on_termination' was "
                         "unexpected)")

    def reserve(s: Any) -> tuple[str, str]:
        inst = instances.get(s, req.ctx, server_id)
        att = server_volumes.reserve(
            s, req.ctx, inst, asked["volumeId"], device=asked.get("device"),
            tag=asked.get("tag"),
            delete_on_termination=bool(asked.get("delete_on_termination", False)))
        return inst.uuid, att.id

    uuid, attachment_id = req.cloud.db.run(reserve)
    conductor, timeout = ConductorAPI(req.cloud.bus), req.cloud.settings.rpc_timeout
    _ask_conductor("attach_volume", lambda: conductor.attach_volume(
        req.ctx, uuid, attachment_id, timeout=2 * timeout))
    with req.cloud.db.reader() as s:
        item = server_volumes.attached_one(s, uuid, asked["volumeId"])
    return Reply(200, {"volumeAttachment": _view(req, item, ids=False)})


def detach(req: ApiRequest, server_id: str, volume_id: str) -> Reply:
    authorize(req.ctx, WRITE, "os_compute_api:os-volumes-attachments:delete")
    with req.cloud.db.reader() as s:
        inst = instances.get(s, req.ctx, server_id)
        item = server_volumes.attached_one(s, inst.uuid, volume_id)
        server_volumes.check_attachable(inst, "detach_volume")
    conductor, timeout = ConductorAPI(req.cloud.bus), req.cloud.settings.rpc_timeout
    _ask_conductor("detach_volume", lambda: conductor.detach_volume(
        req.ctx, inst.uuid, item.attachment_id, timeout=2 * timeout))
    return Reply(202)


ROUTES = [
    ("GET", "/v2.1/servers/{server_id}/os-volume_attachments", list_attachments),
    ("POST", "/v2.1/servers/{server_id}/os-volume_attachments", attach),
    ("GET", "/v2.1/servers/{server_id}/os-volume_attachments/{volume_id}", show_attachment),
    ("DELETE", "/v2.1/servers/{server_id}/os-volume_attachments/{volume_id}", detach),
]
