"""os-simple-tenant-usage: what each project's servers used over a period.

GET /os-simple-tenant-usage (admins: every project) and /os-simple-tenant-usage/{project}
(admins, and the project's own readers), with `start` and `end` (ISO 8601; both default to
now) and `detailed=1` for each server's usage in the list. From 2.40 both page over servers
with `limit` and `marker` (a server's uuid) and link to the next page.
Figures are computed from each server's launched_at and terminated_at (compute/usage.py).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from cirrus.api.compute.common import next_links, page_limit_and_marker, query_bool
from cirrus.api.compute.microversion import Since
from cirrus.api.framework import ApiRequest
from cirrus.compute import usage
from cirrus.compute.usage import ServerUsage
from cirrus.errors import BadRequest, Forbidden
from cirrus.identity.policy import ADMIN, READ, authorize

PAGED = Since("2.40")  # limit, marker and the next link


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _time(req: ApiRequest, name: str, now: dt.datetime) -> dt.datetime:
    raw = req.query.get(name)
    if raw is None:
        return now
    try:
        value = dt.datetime.fromisoformat(raw.strip().replace(" ", "T", 1))
    except ValueError:
        raise BadRequest(f"Invalid input for query parameters {name}. Value: {raw[:64]}. "
                         "It is not an ISO 8601 date and time.") from None
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def _period(req: ApiRequest) -> tuple[dt.datetime, dt.datetime, dt.datetime]:
    now = _now()
    start, end = _time(req, "start", now), _time(req, "end", now)
    if start > end:
        raise BadRequest("Invalid start time. The start time cannot occur after the end time.")
    return start, end, now


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def _server(u: ServerUsage) -> dict[str, Any]:
    return {"instance_id": u.instance_id, "name": u.name, "tenant_id": u.tenant_id,
            "hours": u.hours, "memory_mb": u.memory_mb, "local_gb": u.local_gb,
            "vcpus": u.vcpus, "flavor": u.flavor, "started_at": _iso(u.started_at),
            "ended_at": _iso(u.ended_at), "state": u.state, "uptime": u.uptime}


def _totals(project_id: str, servers: list[ServerUsage], start: dt.datetime,
            end: dt.datetime, detailed: bool) -> dict[str, Any]:
    view: dict[str, Any] = {
        "tenant_id": project_id,
        "total_local_gb_usage": sum(u.local_gb * u.hours for u in servers),
        "total_vcpus_usage": sum(u.vcpus * u.hours for u in servers),
        "total_memory_mb_usage": sum(u.memory_mb * u.hours for u in servers),
        "total_hours": sum(u.hours for u in servers),
        "start": _iso(start), "stop": _iso(end)}
    if detailed:
        view["server_usages"] = [_server(u) for u in servers]
    return view


def _page(req: ApiRequest) -> tuple[int | None, str | None]:
    if not PAGED(req):
        return None, None
    limit, marker = page_limit_and_marker(req)
    return limit, marker


def list_usage(req: ApiRequest) -> dict:
    authorize(req.ctx, ADMIN, "os_compute_api:os-simple-tenant-usage:list")
    start, end, now = _period(req)
    detailed = query_bool("detailed", req.query.get("detailed", "0"))
    limit, marker = _page(req)
    with req.cloud.db.reader() as s:
        rows = usage.in_window(s, start, end, limit=limit, marker=marker)
    by_project: dict[str, list[ServerUsage]] = defaultdict(list)
    for inst in rows:
        by_project[inst.project_id].append(usage.server_usage(inst, start, end, now))
    body: dict[str, Any] = {"tenant_usages": [
        _totals(project, servers, start, end, detailed)
        for project, servers in by_project.items()]}
    if limit is not None:
        links = next_links(req, "os-simple-tenant-usage", len(rows),
                           rows[-1].uuid if rows else None, limit)
        if links:
            body["tenant_usages_links"] = links
    return body


def show_usage(req: ApiRequest, project_id: str) -> dict:
    authorize(req.ctx, READ)
    if project_id != req.ctx.project_id and not req.ctx.is_admin:
        raise Forbidden("Policy doesn't allow os_compute_api:os-simple-tenant-usage:show "
                        "to be performed.")
    start, end, now = _period(req)
    limit, marker = _page(req)
    with req.cloud.db.reader() as s:
        rows = usage.in_window(s, start, end, project_id=project_id, limit=limit,
                               marker=marker)
    servers = [usage.server_usage(inst, start, end, now) for inst in rows]
    # Nova answers an empty object for a project that used nothing in the period.
    body: dict[str, Any] = {"tenant_usage": _totals(project_id, servers, start, end, True)
                            if servers else {}}
    if limit is not None:
        links = next_links(req, f"os-simple-tenant-usage/{project_id}", len(rows),
                           rows[-1].uuid if rows else None, limit)
        if links:
            body["tenant_usage_links"] = links
    return body


ROUTES = [
    ("GET", "/v2.1/os-simple-tenant-usage", list_usage),
    ("GET", "/v2.1/os-simple-tenant-usage/{project_id}", show_usage),
]
