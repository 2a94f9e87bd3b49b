"""POST /servers/{id}/action: os-stop, os-start, reboot, os-getConsoleOutput, createImage."""

from __future__ import annotations

from cirrus.api.compute import backup, security_groups, server_actions_more
from cirrus.api.compute import schemas_servers as schemas
from cirrus.api.compute.common import MAX_INT, bounded_int
from cirrus.api.compute.microversion import Since
from cirrus.api.compute.network_actions import inject_network_info
from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.validation import metadata, name, validate
from cirrus.bus import BusTimeout
from cirrus.compute import instances, resizing, shelving, snapshots
from cirrus.compute.rpcapi import ConductorAPI
from cirrus.errors import BadRequest, ServiceUnavailable
from cirrus.identity.policy import ADMIN, WRITE, authorize


def _stop(req: ApiRequest, server_id: str, body: dict) -> Reply:
    authorize(req.ctx, WRITE, "os_compute_api:servers:stop")
    instances.request_power_action(req.cloud, req.ctx, server_id, "stop")
    return Reply(202)


def _start(req: ApiRequest, server_id: str, body: dict) -> Reply:
    authorize(req.ctx, WRITE, "os_compute_api:servers:start")
    instances.request_power_action(req.cloud, req.ctx, server_id, "start")
    return Reply(202)


def _reboot(req: ApiRequest, server_id: str, body: dict) -> Reply:
    authorize(req.ctx, WRITE, "os_compute_api:servers:reboot")
    validate(schemas.reboot, body)
    hard = body["reboot"]["type"].upper() == "HARD"
    instances.request_power_action(req.cloud, req.ctx, server_id, "reboot_hard" if hard else "reboot")
    return Reply(202)


def _console_output(req: ApiRequest, server_id: str, body: dict) -> dict:
    authorize(req.ctx, WRITE, "os_compute_api:os-console-output")
    validate(schemas.console_output, body)
    length = body["os-getConsoleOutput"].get("length")
    if length is not None:
        # Nova has no maximum: any length past the log's own (or MAX_INT lines) is all of it.
        length = bounded_int(length, "os-getConsoleOutput/length", -1, maximum=10**255)
        length = None if length == -1 else min(length, MAX_INT)
    return {"output": instances.console_output(req.cloud, req.ctx, server_id, length)}


# Nova's createImage body (kept here with its handler; schemas_servers.py holds the others).
# 2.45: createImage answers with the image id in the body instead of a Location header.
IMAGE_ID_IN_BODY = Since("2.45")

CREATE_IMAGE = {
    "type": "object",
    "properties": {
        "createImage": {
            "type": "object",
            "properties": {"name": name, "metadata": metadata},
            "required": ["name"],
            "additionalProperties": False,
        }
    },
    "required": ["createImage"],
    "additionalProperties": False,
}


def _create_image(req: ApiRequest, server_id: str, body: dict) -> Reply:
    """Snapshot the server into a new image. 2.45+ answers with the image id in the body;
    before, with a Location header pointing at the image in the image service."""
    authorize(req.ctx, WRITE, "os_compute_api:servers:create_image")
    validate(CREATE_IMAGE, body)
    spec = body["createImage"]
    image_id = snapshots.request_snapshot(req.cloud.db, req.ctx, server_id, spec["name"],
                                          spec.get("metadata") or {})
    try:
        ConductorAPI(req.cloud.bus).snapshot_instance(req.ctx, server_id, image_id)
    except BusTimeout as exc:
        snapshots.abandon_request(req.cloud.db, server_id, image_id)
        raise ServiceUnavailable(f"The snapshot of {server_id} could not be started: {exc}") from exc
    if IMAGE_ID_IN_BODY(req):
        return Reply(202, {"image_id": image_id})
    return Reply(202, headers={"Location": f"{req.base_url}/image/v2/images/{image_id}"})


# ---- shelve (comp-b): shelve, shelveOffload (admin), unshelve (2.77: availability_zone)
UNSHELVE_AZ = Since("2.77")
UNSHELVE_277 = {
    "type": "object",
    "properties": {
        "unshelve": {"oneOf": [
            {"type": "object",
             "properties": {"availability_zone": {"type": "string", "minLength": 1,
                                                  "maxLength": 255}},
             "required": ["availability_zone"], "additionalProperties": False},
            {"type": "null"},
        ]},
    },
    "required": ["unshelve"],
    "additionalProperties": False,
}


def _shelve(req: ApiRequest, server_id: str, body: dict) -> Reply:
    authorize(req.ctx, WRITE, "os_compute_api:os-shelve:shelve")
    shelving.request_shelve(req.cloud, req.ctx, server_id)
    return Reply(202)


def _shelve_offload(req: ApiRequest, server_id: str, body: dict) -> Reply:
    authorize(req.ctx, ADMIN, "os_compute_api:os-shelve:shelve_offload")
    shelving.request_shelve_offload(req.cloud, req.ctx, server_id)
    return Reply(202)


def _unshelve(req: ApiRequest, server_id: str, body: dict) -> Reply:
    authorize(req.ctx, WRITE, "os_compute_api:os-shelve:unshelve")
    zone = None
    if UNSHELVE_AZ(req):  # before 2.77 the body's value is not looked at, as in Nova
        validate(UNSHELVE_277, body)
        zone = (body["unshelve"] or {}).get("availability_zone")
    shelving.request_unshelve(req.cloud, req.ctx, server_id, zone)
    return Reply(202)


# ---- resize and cold migrate (comp-b): resize, confirmResize, revertResize, migrate (admin)
MIGRATE_HOST = Since("2.56")
RESIZE = {
    "type": "object",
    "properties": {
        "resize": {
            "type": "object",
            "properties": {
                "flavorRef": {"type": ["string", "integer"], "minLength": 1},
                "OS-DCF:diskConfig": {"type": "string", "enum": ["AUTO", "MANUAL"]},
            },
            "required": ["flavorRef"],
            "additionalProperties": False,
        },
    },
    "required": ["resize"],
    "additionalProperties": False,
}
MIGRATE_256 = {
    "type": "object",
    "properties": {
        "migrate": {"oneOf": [
            {"type": "object",
             "properties": {"host": {"type": ["string", "null"], "minLength": 1,
                                     "maxLength": 255}},
             "additionalProperties": False},
            {"type": "null"},
        ]},
    },
    "required": ["migrate"],
    "additionalProperties": False,
}


def _resize(req: ApiRequest, server_id: str, body: dict) -> Reply:
    authorize(req.ctx, WRITE, "os_compute_api:servers:resize")
    validate(RESIZE, body)
    resizing.request_resize(req.cloud, req.ctx, server_id, str(body["resize"]["flavorRef"]))
    return Reply(202)


def _confirm_resize(req: ApiRequest, server_id: str, body: dict) -> Reply:
    authorize(req.ctx, WRITE, "os_compute_api:servers:confirm_resize")
    resizing.request_confirm(req.cloud, req.ctx, server_id)
    return Reply(204)


def _revert_resize(req: ApiRequest, server_id: str, body: dict) -> Reply:
    authorize(req.ctx, WRITE, "os_compute_api:servers:revert_resize")
    resizing.request_revert(req.cloud, req.ctx, server_id)
    return Reply(202)


def _migrate(req: ApiRequest, server_id: str, body: dict) -> Reply:
    authorize(req.ctx, ADMIN, "os_compute_api:os-migrate-server:migrate")
    host = None
    if MIGRATE_HOST(req):  # before 2.56 the body's value is not looked at, as in Nova
        validate(MIGRATE_256, body)
        host = (body["migrate"] or {}).get("host")
    resizing.request_resize(req.cloud, req.ctx, server_id, None, host=host)
    return Reply(202)


ACTIONS = {
    "os-stop": _stop,
    "os-start": _start,
    "reboot": _reboot,
    "os-getConsoleOutput": _console_output,
    "createImage": _create_image,
    **server_actions_more.ACTIONS,  # issue 13 (comp-a): rebuild, lock, pause, ...
    **backup.ACTIONS,  # issue 13 (comp-x): createBackup
    "addSecurityGroup": security_groups.add_security_group,
    "removeSecurityGroup": security_groups.remove_security_group,
    "injectNetworkInfo": inject_network_info,  # comp-misc
    "shelve": _shelve,
    "shelveOffload": _shelve_offload,
    "unshelve": _unshelve,
    "resize": _resize,
    "confirmResize": _confirm_resize,
    "revertResize": _revert_resize,
    "migrate": _migrate,
}


def server_action(req: ApiRequest, server_id: str) -> object:
    body = req.json
    if not isinstance(body, dict) or len(body) != 1:
        raise BadRequest("An action body must be an object with exactly one action name.")
    name = next(iter(body))
    handler = ACTIONS.get(name)
    if handler is None:
        raise BadRequest(f"There is no such action: {name}")
    return handler(req, server_id, body)


ROUTES = [
    ("POST", "/v2.1/servers/{server_id}/action", server_action),
]
