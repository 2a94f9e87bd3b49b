"""os-migrations (admin): every resize and cold migration, newest first (comp-b).

2.23 adds `migration_type` (and `links`, only for live migrations in progress: Cirrus has
none); 2.59 adds `uuid` and paging (`limit`, `marker`: a migration's uuid); 2.80 adds
`user_id` and `project_id`, and their filters; 2.59 `changes-since` and 2.66
`changes-before` filter on the time a migration last changed.
"""

from __future__ import annotations

from cirrus.api.compute.common import next_links, page_limit_and_marker
from cirrus.api.compute.microversion import Since
from cirrus.api.compute.server_filters import parse_time
from cirrus.api.compute.views import iso_micro
from cirrus.api.framework import ApiRequest
from cirrus.compute.resizing import MigrationFilter, list_migrations
from cirrus.db.models import Migration
from cirrus.identity.policy import ADMIN, authorize

TYPED = Since("2.23")
PAGED = Since("2.59")  # also `changes-since`
CHANGES_BEFORE = Since("2.66")
OWNERS = Since("2.80")
_TYPES = ("migration", "resize", "live-migration", "evacuation")


def migration_view(req: ApiRequest, m: Migration) -> dict:
    view: dict = {
        "id": m.id, "instance_uuid": m.instance_uuid, "status": m.status,
        "source_compute": m.source_compute, "source_node": m.source_node,
        "dest_compute": m.dest_compute, "dest_node": m.dest_node, "dest_host": m.dest_host,
        "old_instance_type_id": m.old_instance_type_id,
        "new_instance_type_id": m.new_instance_type_id,
        "created_at": iso_micro(m.created_at), "updated_at": iso_micro(m.updated_at),
    }
    if TYPED(req):
        view["migration_type"] = m.migration_type
    if PAGED(req):
        view["uuid"] = m.uuid
    if OWNERS(req):
        view["user_id"], view["project_id"] = m.user_id, m.project_id
    return view


def list_os_migrations(req: ApiRequest) -> dict:
    authorize(req.ctx, ADMIN, "os_compute_api:os-migrations:index")
    q = req.query
    limit, marker = page_limit_and_marker(req) if PAGED(req) else (None, None)
    f = MigrationFilter(
        instance_uuid=q.get("instance_uuid"), status=q.get("status"),
        host=q.get("host") or q.get("source_compute"),
        migration_type=q.get("migration_type"),
        user_id=q.get("user_id") if OWNERS(req) else None,
        project_id=q.get("project_id") if OWNERS(req) else None,
        limit=limit, marker=marker,
        changes_since=(parse_time(q["changes-since"], "changes-since")
                       if PAGED(req) and "changes-since" in q else None),
        changes_before=(parse_time(q["changes-before"], "changes-before")
                        if CHANGES_BEFORE(req) and "changes-before" in q else None))
    rows = list_migrations(req.cloud, f)
    body: dict = {"migrations": [migration_view(req, m) for m in rows]}
    if PAGED(req) and limit is not None:
        links = next_links(req, "os-migrations", len(rows), rows[-1].uuid if rows else None,
                           limit)
        if links:
            body["migrations_links"] = links
    return body


ROUTES = [
    ("GET", "/v2.1/os-migrations", list_os_migrations),
]
