"""os-instance-actions: what was done to a server, by whom, and each step's result."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from cirrus.api.compute.common import next_links, page_limit_and_marker
from cirrus.api.compute.microversion import Since
from cirrus.api.compute.server_filters import parse_time
from cirrus.api.compute.views import iso_micro
from cirrus.api.framework import ApiRequest
from cirrus.compute import history, instances
from cirrus.errors import BadRequest, NotFound
from cirrus.identity.policy import READ, authorize

if TYPE_CHECKING:
    from cirrus.db.models import InstanceAction, InstanceActionEvent

DELETED_SERVERS = Since("2.21")  # the actions of a deleted server stay readable
PAGED = Since("2.58")  # `limit`, `marker`, `changes-since`, `links`, and `updated_at`
EVENTS_FOR_ALL = Since("2.51")  # before, only admins see an action's events
EVENT_HOSTS = Since("2.62")  # events show `hostId` (and `host` to admins)
CHANGES_BEFORE = Since("2.66")  # `changes-before` filters the list
EVENT_DETAILS = Since("2.84")  # events show `details` (a failure's message)


def _action_view(req: ApiRequest, action: InstanceAction) -> dict:
    view = {"action": action.action, "instance_uuid": action.instance_uuid,
            "request_id": action.request_id, "user_id": action.user_id,
            "project_id": action.project_id, "start_time": iso_micro(action.start_time),
            "message": action.message}
    if PAGED(req):
        view["updated_at"] = iso_micro(action.updated_at or action.start_time)
    return view


def _event_view(req: ApiRequest, event: InstanceActionEvent, project_id: str | None) -> dict:
    view = {"event": event.event, "start_time": iso_micro(event.start_time),
            "finish_time": iso_micro(event.finish_time), "result": event.result}
    if req.ctx.is_admin:
        view["traceback"] = event.traceback
    if EVENT_HOSTS(req):
        view["hostId"] = (hashlib.sha224(((project_id or "") + event.host).encode()).hexdigest()
                          if event.host else "")
        if req.ctx.is_admin:
            view["host"] = event.host or ""
    if EVENT_DETAILS(req):
        # Nova's details: the failure's message, never the traceback.
        lines = (event.traceback or "").strip().splitlines() if event.result == "Error" else []
        view["details"] = lines[-1] if lines else None
    return view


def _instance(req: ApiRequest, s, server_id: str):
    return instances.get(s, req.ctx, server_id, include_deleted=DELETED_SERVERS(req))


def list_actions(req: ApiRequest, server_id: str) -> dict:
    authorize(req.ctx, READ, "os_compute_api:os-instance-actions:list")
    paged = PAGED(req)
    limit = page_limit_and_marker(req)[0] if paged else 0
    with req.cloud.db.reader() as s:
        _instance(req, s, server_id)
        changes_since = (parse_time(req.query["changes-since"], "changes-since")
                         if paged and "changes-since" in req.query else None)
        changes_before = (parse_time(req.query["changes-before"], "changes-before")
                          if CHANGES_BEFORE(req) and "changes-before" in req.query else None)
        if changes_since and changes_before and changes_before < changes_since:
            raise BadRequest("The value of changes-since must be less than or equal to "
                             "changes-before.")
        rows = history.list_actions(s, server_id, limit=limit if paged else None,
                                    changes_since=changes_since, changes_before=changes_before,
                                    marker=req.query.get("marker") if paged else None)
        body: dict = {"instanceActions": [_action_view(req, a) for a in rows]}
    if paged:
        # 2.58: a full page links to the next one, keyed by request id (as Nova pages).
        links = next_links(req, f"servers/{server_id}/os-instance-actions", len(rows),
                           rows[-1].request_id if rows else None, limit)
        if links:
            body["links"] = links
    return body


def show_action(req: ApiRequest, server_id: str, request_id: str) -> dict:
    authorize(req.ctx, READ, "os_compute_api:os-instance-actions:show")
    with req.cloud.db.reader() as s:
        _instance(req, s, server_id)
        action = history.get_action(s, server_id, request_id)
        if action is None:
            raise NotFound(f"Action for request_id {request_id} on instance {server_id} not found")
        view = _action_view(req, action)
        # Tracebacks stay the admins' (_event_view).
        if req.ctx.is_admin or EVENTS_FOR_ALL(req):
            view["events"] = [_event_view(req, e, action.project_id)
                              for e in history.events_of(s, action)]
        return {"instanceAction": view}


ROUTES = [
    ("GET", "/v2.1/servers/{server_id}/os-instance-actions", list_actions),
    ("GET", "/v2.1/servers/{server_id}/os-instance-actions/{request_id}", show_action),
]
