"""POST /servers/{id}/action: os-stop, os-start, reboot, os-getConsoleOutput."""

from __future__ import annotations

from cirrus.api.compute import schemas_servers as schemas
from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.validation import validate
from cirrus.compute import instances
from cirrus.errors import BadRequest
from cirrus.identity.policy import WRITE, authorize


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
    length = None if length in (None, -1, "-1") else int(length)
    return {"output": instances.console_output(req.cloud, req.ctx, server_id, length)}


ACTIONS = {
    "os-stop": _stop,
    "os-start": _start,
    "reboot": _reboot,
    "os-getConsoleOutput": _console_output,
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
