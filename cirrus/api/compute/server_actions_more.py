"""POST /servers/{id}/action, issue 13 (comp-a): rebuild, lock, unlock, pause, unpause,
suspend, resume, os-resetState, restore, forceDelete. server_actions.py dispatches here."""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Callable
from typing import Any

from cirrus.api.compute import servers
from cirrus.api.compute.microversion import Since, fields_since
from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.validation import metadata, name, validate
from cirrus.compute import instances, server_ops, states
from cirrus.db.models import Instance
from cirrus.errors import BadRequest
from cirrus.identity.policy import ADMIN, WRITE, authorize

# Request fields of rebuild by microversion.
REBUILD_ACCEPTS = {"description": Since("2.19"), "key_name": Since("2.54"),
                   "user_data": Since("2.57"), "personality": Since("2.1", until="2.56"),
                   "trusted_image_certificates": Since("2.63"), "hostname": Since("2.90")}
# 2.75: rebuild answers with the same view as show (before, the basic view of an update).
REBUILD_FULL_VIEW = Since("2.75")
LOCKED_REASON = Since("2.73")
# Fields rebuild's answer gains at a microversion (Tempest's rebuild_server schemas).
REBUILD_FIELDS_SINCE: dict[str, dict[str, Callable[[Instance], Any]]] = {
    "2.54": {"key_name": lambda inst: inst.key_name},
    "2.57": {"user_data": lambda inst: inst.user_data},
    "2.63": {"trusted_image_certificates": lambda inst: None},
    "2.71": {"server_groups": lambda inst: []},
}

_personality = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"path": {"type": "string", "minLength": 1, "maxLength": 255},
                       "contents": {"type": "string"}},
        "required": ["path", "contents"],
        "additionalProperties": False,
    },
}

REBUILD = {
    "type": "object",
    "properties": {
        "rebuild": {
            "type": "object",
            "properties": {
                "imageRef": {"type": "string", "minLength": 1, "maxLength": 255},
                "name": name,
                "adminPass": {"type": "string"},
                "metadata": metadata,
                "preserve_ephemeral": {"type": "boolean"},
                "OS-DCF:diskConfig": {"type": "string", "enum": ["AUTO", "MANUAL"]},
                "accessIPv4": {"type": "string", "format": "ipv4"},
                "accessIPv6": {"type": "string", "format": "ipv6"},
                "personality": _personality,
                "description": {"type": ["string", "null"], "maxLength": 255},
                "key_name": {"type": ["string", "null"], "minLength": 1, "maxLength": 255},
                "user_data": {"type": ["string", "null"], "maxLength": 65535},
                "trusted_image_certificates": {"type": ["array", "null"]},
                "hostname": {"type": "string", "minLength": 1, "maxLength": 255},
            },
            "required": ["imageRef"],
            "additionalProperties": False,
        }
    },
    "required": ["rebuild"],
    "additionalProperties": False,
}

LOCK = {
    "type": "object",
    "properties": {
        "lock": {"anyOf": [{"type": "null"}, {
            "type": "object",
            "properties": {"locked_reason": {"type": "string", "minLength": 1,
                                             "maxLength": 255}},
            "additionalProperties": False,
        }]},
    },
    "required": ["lock"],
    "additionalProperties": False,
}

RESET_STATE = {
    "type": "object",
    "properties": {
        "os-resetState": {
            "type": "object",
            "properties": {"state": {"type": "string", "enum": sorted(states.RESET_STATES)}},
            "required": ["state"],
            "additionalProperties": False,
        }
    },
    "required": ["os-resetState"],
    "additionalProperties": False,
}


def _no_body(action: str) -> dict:
    """`{"pause": null}`: Nova's schema for actions without arguments."""
    return {"type": "object", "properties": {action: {"type": ["object", "null"]}},
            "required": [action], "additionalProperties": False}


def _rebuild(req: ApiRequest, server_id: str, body: dict) -> Reply:
    authorize(req.ctx, WRITE, "os_compute_api:servers:rebuild")
    validate(REBUILD, body)
    spec = body["rebuild"]
    for field, gate in REBUILD_ACCEPTS.items():
        if field in spec and not gate(req):
            raise BadRequest(f"Invalid input for field/attribute rebuild. Additional "
                             f"properties are not allowed ('{field}' was unexpected)")
    user_data = spec.get("user_data")
    if user_data is not None:
        try:
            base64.b64decode(user_data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadRequest("Invalid input for field/attribute user_data. Value: "
                             f"{user_data[:64]}. It is not base64 encoded.") from exc
    admin_pass = spec.get("adminPass") or secrets.token_urlsafe(9)
    rebuild = server_ops.RebuildRequest(
        image_ref=spec["imageRef"], name=spec.get("name"), metadata=spec.get("metadata"),
        admin_pass=admin_pass,
        injected_files=servers._personality(spec.get("personality") or []))
    if "description" in spec:
        rebuild.description = spec["description"]
    if "key_name" in spec:
        rebuild.key_name = spec["key_name"]
    if "user_data" in spec:
        rebuild.user_data = user_data
    server_ops.request_rebuild(req.cloud, req.ctx, server_id, rebuild)
    full = REBUILD_FULL_VIEW(req)
    view = servers._server_view(req, server_id, extended=full)
    if not full:  # Nova's extend_address=False: no OS-EXT-IPS fields before 2.75
        view["server"]["addresses"] = {
            net: [{"version": a["version"], "addr": a["addr"]} for a in addrs]
            for net, addrs in view["server"]["addresses"].items()}
    else:  # 2.75: `user_data` replaces the admin's OS-EXT-SRV-ATTR:user_data here
        view["server"].pop("OS-EXT-SRV-ATTR:user_data", None)
    with req.cloud.db.reader() as s:
        inst = instances.get(s, req.ctx, server_id)
        view["server"].update(fields_since(req, REBUILD_FIELDS_SINCE, inst))
    view["server"]["adminPass"] = admin_pass
    return Reply(202, view)


def _lock(req: ApiRequest, server_id: str, body: dict) -> Reply:
    authorize(req.ctx, WRITE, "os_compute_api:os-lock-server:lock")
    validate(LOCK, body)
    args = body["lock"] or {}
    if "locked_reason" in args and not LOCKED_REASON(req):
        raise BadRequest("Invalid input for field/attribute lock. Value: "
                         f"{args}. 'locked_reason' is not allowed before microversion 2.73")
    server_ops.set_lock(req.cloud, req.ctx, server_id, True, args.get("locked_reason"))
    return Reply(202)


def _unlock(req: ApiRequest, server_id: str, body: dict) -> Reply:
    authorize(req.ctx, WRITE, "os_compute_api:os-lock-server:unlock")
    validate(_no_body("unlock"), body)
    server_ops.set_lock(req.cloud, req.ctx, server_id, False)
    return Reply(202)


def _power(action: str, policy: str) -> Callable[[ApiRequest, str, dict], Reply]:
    def handler(req: ApiRequest, server_id: str, body: dict) -> Reply:
        authorize(req.ctx, WRITE, policy)
        validate(_no_body(action), body)
        instances.request_power_action(req.cloud, req.ctx, server_id, action)
        return Reply(202)
    return handler


def _reset_state(req: ApiRequest, server_id: str, body: dict) -> Reply:
    authorize(req.ctx, ADMIN, "os_compute_api:os-admin-actions:reset_state")
    validate(RESET_STATE, body)
    server_ops.reset_state(req.cloud, req.ctx, server_id, body["os-resetState"]["state"])
    return Reply(202)


def _restore(req: ApiRequest, server_id: str, body: dict) -> Reply:
    authorize(req.ctx, WRITE, "os_compute_api:os-deferred-delete:restore")
    validate(_no_body("restore"), body)
    server_ops.restore(req.cloud, req.ctx, server_id)
    return Reply(202)


def _force_delete(req: ApiRequest, server_id: str, body: dict) -> Reply:
    authorize(req.ctx, WRITE, "os_compute_api:os-deferred-delete:force")
    validate(_no_body("forceDelete"), body)
    server_ops.force_delete(req.cloud, req.ctx, server_id)
    return Reply(202)


ACTIONS: dict[str, Callable[[ApiRequest, str, dict], object]] = {
    "rebuild": _rebuild,
    "lock": _lock,
    "unlock": _unlock,
    "pause": _power("pause", "os_compute_api:os-pause-server:pause"),
    "unpause": _power("unpause", "os_compute_api:os-pause-server:unpause"),
    "suspend": _power("suspend", "os_compute_api:os-suspend-server:suspend"),
    "resume": _power("resume", "os_compute_api:os-suspend-server:resume"),
    "os-resetState": _reset_state,
    "restore": _restore,
    "forceDelete": _force_delete,
}
