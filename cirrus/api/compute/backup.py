"""The createBackup server action: a snapshot image of type `backup` whose oldest siblings
of the same backup_type beyond `rotation` are deleted once it is active
(compute/backups.py). server_actions.py dispatches here."""

from __future__ import annotations

from cirrus.api.compute.common import bounded_int
from cirrus.api.compute.microversion import Since
from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.validation import metadata, name, validate
from cirrus.bus import BusTimeout
from cirrus.compute import backups, snapshots
from cirrus.compute.rpcapi import ConductorAPI
from cirrus.errors import ServiceUnavailable
from cirrus.identity.policy import WRITE, authorize

IMAGE_ID_IN_BODY = Since("2.45")  # as createImage: the id in the body, no Location header

CREATE_BACKUP = {
    "type": "object",
    "properties": {
        "createBackup": {
            "type": "object",
            "properties": {
                "name": name,
                "backup_type": {"type": "string"},
                # Nova's non_negative_integer: an integer, or a string of digits.
                "rotation": {"type": ["integer", "string"], "pattern": "^[0-9]*$",
                             "minimum": 0, "minLength": 1},
                "metadata": metadata,
            },
            "required": ["name", "backup_type", "rotation"],
            "additionalProperties": False,
        }
    },
    "required": ["createBackup"],
    "additionalProperties": False,
}


def _create_backup(req: ApiRequest, server_id: str, body: dict) -> Reply:
    authorize(req.ctx, WRITE, "os_compute_api:os-create-backup")
    validate(CREATE_BACKUP, body)
    spec = body["createBackup"]
    rotation = bounded_int(spec["rotation"], "createBackup/rotation", 0, 0x7FFFFFFF)
    image_id = backups.request_backup(req.cloud.db, req.ctx, server_id, spec["name"],
                                      spec["backup_type"], rotation, spec.get("metadata") or {})
    try:
        ConductorAPI(req.cloud.bus).snapshot_instance(req.ctx, server_id, image_id)
    except BusTimeout as exc:
        snapshots.abandon_request(req.cloud.db, server_id, image_id)
        backups.forget(req.cloud.db, server_id, image_id)
        raise ServiceUnavailable(f"The backup of {server_id} could not be started: {exc}") from exc
    if IMAGE_ID_IN_BODY(req):
        return Reply(202, {"image_id": image_id})
    if rotation == 0:  # Nova names no image when the rotation keeps none
        return Reply(202)
    return Reply(202, headers={"Location": f"{req.base_url}/image/v2/images/{image_id}"})


ACTIONS = {"createBackup": _create_backup}
