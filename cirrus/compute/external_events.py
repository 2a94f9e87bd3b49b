"""External events (Nova's os-server-external-events): other services (Neutron, Cinder)
tell Nova something happened to a server's port, volume or power.

Cirrus's own network and storage services live in the same control plane, so these events
change nothing here; they are accepted per Nova's rules and answered per event: 200 for a
server on a host, 404 for a server that does not exist, 422 for one not yet on a host.
As in Nova, `volume-extended` and `power-update` are recorded as instance actions (with
one event each, Success); the network events are not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cirrus.compute import actions
from cirrus.context import RequestContext
from cirrus.db.models import Instance

# The instance action Nova records for an event, by event name.
RECORDED = {"volume-extended": "extend_volume", "power-update": "power_update"}


@dataclass
class Outcome:
    event: dict[str, Any]  # the event as the request gave it, with status and code added
    code: int


def dispatch(s: Session, ctx: RequestContext, events: list[dict[str, Any]]) -> list[Outcome]:
    uuids = {event["server_uuid"] for event in events}
    hosts = dict(s.execute(select(Instance.uuid, Instance.host)
                           .where(Instance.uuid.in_(uuids), Instance.deleted.is_(False))).all())
    outcomes = []
    for event in events:
        view = dict(event)
        view.setdefault("status", "completed")
        uuid = event["server_uuid"]
        if uuid not in hosts:
            code = 404
        elif not hosts[uuid]:
            code = 422
        else:
            code = 200
            action = RECORDED.get(event["name"])
            if action is not None:
                actions.start_action(s, ctx, uuid, action)
                actions.record_event(s, uuid, ctx.request_id,
                                     f"compute_{action}", hosts[uuid],
                                     actions.ERROR if view["status"] == "failed"
                                     else actions.SUCCESS)
        if code != 200:
            view["status"] = "failed"
        view["code"] = code
        outcomes.append(Outcome(view, code))
    return outcomes
