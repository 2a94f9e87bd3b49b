"""POST /os-server-external-events: admin or the `service` role (what Neutron's and
Cinder's service users hold). The event names grow with the microversion."""

from __future__ import annotations

from cirrus.api.compute.microversion import by_version
from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.validation import validate
from cirrus.compute import external_events
from cirrus.errors import NotFound
from cirrus.identity.policy import authorize

_NETWORK = ["network-changed", "network-vif-plugged", "network-vif-unplugged",
            "network-vif-deleted"]


def _schema(names: list[str]) -> dict:
    return {
        "type": "object",
        "properties": {
            "events": {
                "type": "array", "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": {
                        "server_uuid": {"type": "string", "format": "uuid"},
                        "name": {"type": "string", "enum": names},
                        "status": {"type": "string",
                                   "enum": ["failed", "completed", "in-progress"]},
                        "tag": {"type": "string", "maxLength": 255},
                    },
                    "required": ["server_uuid", "name"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["events"],
        "additionalProperties": False,
    }


SCHEMA = by_version({
    ("2.1", "2.50"): _schema(_NETWORK),
    ("2.51", "2.75"): _schema([*_NETWORK, "volume-extended"]),
    ("2.76", "2.81"): _schema([*_NETWORK, "volume-extended", "power-update"]),
    ("2.82", None): _schema([*_NETWORK, "volume-extended", "power-update",
                             "accelerator-request-bound"]),
})


def create_events(req: ApiRequest) -> Reply:
    # Nova's default: the service role (admins hold every role here).
    authorize(req.ctx, "service", "os_compute_api:os-server-external-events:create")
    body = req.json
    validate(SCHEMA(req), body)
    outcomes = req.cloud.db.run(
        lambda s: external_events.dispatch(s, req.ctx, body["events"]))
    if not any(o.code == 200 for o in outcomes):
        raise NotFound("No instances found for any event")
    status = 200 if all(o.code == 200 for o in outcomes) else 207
    return Reply(status, {"events": [o.event for o in outcomes]})


ROUTES = [("POST", "/v2.1/os-server-external-events", create_events)]
