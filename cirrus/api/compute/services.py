"""Services (os-services), Admin only, Nova v2.1 up to the maximum microversion.

Cirrus's roles are shown under the binary names Nova's tools filter by
(`cirrus.hosts.records.NOVA_BINARIES`): the agent as `nova-compute`, the conductor as
`nova-conductor`, the scheduler as `nova-scheduler`; a filter or an action may name either.

Microversions: 2.11 shows and sets `forced_down`; 2.53 replaces integer ids with UUIDs and
updates a service with PUT /os-services/{uuid} instead of the enable/disable/force-down
actions.
"""

from __future__ import annotations

import logging
from typing import Any

from cirrus.agent.rpcapi import AgentAPI
from cirrus.api.compute import schemas_misc as schemas
from cirrus.api.compute.hosts import FORCED_DOWN, UUID_IDS, is_uuid
from cirrus.api.compute.microversion import by_version
from cirrus.api.compute.views import iso_micro
from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.validation import to_bool, validate
from cirrus.db.models import Service
from cirrus.errors import BadRequest, NotFound
from cirrus.hosts import records
from cirrus.hosts.liveness import AGENT_BINARY, service_is_up
from cirrus.hosts.zones import service_zone
from cirrus.identity.policy import ADMIN, authorize

log = logging.getLogger(__name__)

SERVICE_ACTION_SCHEMA = by_version({("2.1", "2.10"): schemas.service_action,
                                    ("2.11", None): schemas.service_action_v211})



def _service(req: ApiRequest, svc: Service) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": svc.uuid if UUID_IDS(req) else svc.id,
        "binary": records.nova_binary(svc.binary),
        "disabled_reason": svc.disabled_reason,
        "host": svc.host,
        "state": "up" if service_is_up(svc, req.cloud.settings.service_down_time) else "down",
        "status": "disabled" if svc.disabled else "enabled",
        "updated_at": iso_micro(records.last_update(svc)),
        "zone": service_zone(svc, req.cloud.settings),
    }
    if FORCED_DOWN(req):
        view["forced_down"] = bool(svc.forced_down)
    return view


def list_services(req: ApiRequest) -> dict:
    authorize(req.ctx, ADMIN, "os_compute_api:os-services:list")
    with req.cloud.db.reader() as s:
        return {"services": [_service(req, svc) for svc in records.list_services(
            s, host=req.query.get("host"), binary=req.query.get("binary"))]}


def update_service(req: ApiRequest, service_id: str) -> dict:
    authorize(req.ctx, ADMIN, "os_compute_api:os-services:update")
    if UUID_IDS(req):
        return _update_by_uuid(req, service_id)
    return _legacy_action(req, service_id)


def _update_by_uuid(req: ApiRequest, service_id: str) -> dict:
    body = req.json
    validate(schemas.service_update_v253, body)
    if not is_uuid(service_id):
        raise BadRequest(f"Invalid uuid {service_id}")
    if body.get("status") == "enabled" and body.get("disabled_reason"):
        raise BadRequest("Specifying 'disabled_reason' with status 'enabled' is invalid.")

    def work(s):
        svc = records.get_service(s, service_id, by_uuid=True)
        records.ensure_updatable(svc)
        if "status" not in body and "forced_down" not in body:
            raise BadRequest("No updates were requested. Fields 'status' or 'forced_down' "
                             "should be specified.")
        if "status" in body:
            records.set_status(s, svc, disabled=body["status"] == "disabled",
                               reason=body.get("disabled_reason"))
        if "forced_down" in body:
            records.set_forced_down(s, svc, to_bool(body["forced_down"]))
        return {"service": _service(req, svc)}

    return req.cloud.db.run(work)


def _legacy_action(req: ApiRequest, action: str) -> dict:
    actions = {"enable", "disable", "disable-log-reason"}
    if FORCED_DOWN(req):
        actions.add("force-down")
    if action not in actions:
        raise NotFound("Unknown action")
    body = req.json
    validate(SERVICE_ACTION_SCHEMA(req), body)
    host, binary = body["host"], body["binary"]
    if records.canonical_binary(binary) != AGENT_BINARY:
        raise BadRequest(f"Updating a {binary} service is not supported. Only "
                         "nova-compute services can be updated.")
    reply: dict[str, Any] = {"host": host, "binary": binary}
    if action == "disable-log-reason" and "disabled_reason" not in body:
        raise BadRequest("Missing disabled reason field")
    if action == "force-down" and "forced_down" not in body:
        raise BadRequest("Missing forced_down field")

    def work(s):
        svc = records.find_service(s, host, binary)
        if action == "enable":
            records.set_status(s, svc, disabled=False)
            reply["status"] = "enabled"
        elif action == "disable":
            records.set_status(s, svc, disabled=True)
            reply["status"] = "disabled"
        elif action == "disable-log-reason":
            records.set_status(s, svc, disabled=True, reason=body["disabled_reason"])
            reply.update(status="disabled", disabled_reason=body["disabled_reason"])
        else:
            forced = to_bool(body["forced_down"])
            records.set_forced_down(s, svc, forced)
            reply["forced_down"] = forced
        return {"service": reply}

    return req.cloud.db.run(work)


def delete_service(req: ApiRequest, service_id: str) -> Reply:
    authorize(req.ctx, ADMIN, "os_compute_api:os-services:delete")
    by_uuid = UUID_IDS(req)
    if by_uuid and not is_uuid(service_id):
        raise BadRequest(f"Invalid uuid {service_id}")
    if not by_uuid and not service_id.isdigit():
        raise BadRequest(f"Invalid input for field/attribute id. Value: {service_id}. "
                         "It must be an integer.")
    def work(s):
        svc = records.get_service(s, service_id, by_uuid=by_uuid)
        gone = (svc.binary, svc.host)
        records.delete_service(s, svc)
        return gone

    binary, host = req.cloud.db.run(work)
    if binary == AGENT_BINARY:
        # The host is gone: so is the work queued for it (an agent started again on it
        # registers afresh, with a new queue).
        try:
            AgentAPI(req.cloud.bus).discard(host)
        except Exception:
            log.warning("could not delete the queue of removed host %s", host, exc_info=True)
    return Reply(204)


ROUTES = [
    ("GET", "/v2.1/os-services", list_services),
    ("PUT", "/v2.1/os-services/{service_id}", update_service),
    ("DELETE", "/v2.1/os-services/{service_id}", delete_service),
]
