"""GET/DELETE /v2.0/auto-allocated-topology/{project_id}: a project's `auto` network.

GET makes it if missing (an admin may do so for any project: pre-initialising it);
`fields=dry-run` only says whether it could be made. DELETE removes the project's own
auto network if it has one (409 while ports are on it).
"""

from __future__ import annotations

from cirrus.api.framework import ApiRequest, Reply
from cirrus.network import auto
from cirrus.network.access import READ, require


def _project(req: ApiRequest, project_id: str) -> str:
    """The project asked for; "None" (what clients send without one) is the caller's."""
    return req.ctx.project_id or project_id if project_id == "None" else project_id


def show_topology(req: ApiRequest, project_id: str) -> dict:
    require(req.ctx, READ, "get_auto_allocated_topology")
    project_id = _project(req, project_id)
    if "dry-run" in req.query.getlist("fields"):
        with req.cloud.db.reader() as s:
            auto.find_auto_network(s, req.ctx, project_id)
        return {"auto_allocated_topology": {"id": "dry-run=pass", "project_id": project_id}}
    network = req.cloud.db.run(lambda s: auto.get_or_create_auto_network(
        s, req.ctx, req.cloud.settings, project_id))
    return {"auto_allocated_topology": {"id": network.id, "tenant_id": project_id,
                                        "project_id": project_id}}


def delete_topology(req: ApiRequest, project_id: str) -> Reply:
    project_id = _project(req, project_id)
    req.cloud.db.run(lambda s: auto.delete_auto_network(s, req.ctx, project_id))
    return Reply(204)


ROUTES = [
    ("GET", "/v2.0/auto-allocated-topology/{project_id}", show_topology),
    ("DELETE", "/v2.0/auto-allocated-topology/{project_id}", delete_topology),
]
