"""The server list's query: filters, paging and sorting, by microversion."""

from __future__ import annotations

import datetime as dt

from cirrus.api.compute.common import page_limit_and_marker
from cirrus.api.compute.microversion import Since
from cirrus.api.framework import ApiRequest
from cirrus.api.validation import to_bool
from cirrus.compute import instances, states
from cirrus.errors import BadRequest, Forbidden

# 2.38: an unknown status filter is a 400 (before, it matches no server).
STRICT_STATUS_FILTER = Since("2.38")
# 2.75: unknown list query parameters are a 400.
STRICT_LIST_QUERY = Since("2.75")
TAG_FILTERS = Since("2.26")  # tags, tags-any, not-tags, not-tags-any
# 2.83: members may filter by these too (before, admins only; others' filters are ignored).
MEMBER_FILTERS = Since("2.83")
# The list's query parameters Nova's schema knows (2.75 refuses others).
LIST_QUERY = frozenset((
    "user_id", "project_id", "tenant_id", "launch_index", "image_ref", "image", "kernel_id",
    "ramdisk_id", "hostname", "key_name", "power_state", "vm_state", "task_state", "host",
    "node", "flavor", "reservation_id", "launched_at", "terminated_at", "availability_zone",
    "name", "display_name", "description", "display_description", "locked_by", "locked",
    "uuid", "root_device_name", "config_drive", "access_ip_v4", "access_ip_v6", "ip", "ip6",
    "auto_disk_config", "progress", "sort_key", "sort_dir", "all_tenants", "soft_deleted",
    "deleted", "status", "changes-since", "changes-before", "created_at", "updated_at",
    "block_device_mapping", "services", "metadata", "system_metadata", "info_cache",
    "security_groups", "pci_devices", "limit", "marker", "tags", "tags-any", "not-tags",
    "not-tags-any"))


def parse_time(value: str, field: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value.replace(" ", "+"))
    except ValueError as exc:
        raise BadRequest(f"Invalid input for query parameters {field}. Value: {value}. "
                         "It is not a valid ISO 8601 date-time.") from exc
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    return parsed


def _tag_list(q, name: str) -> list[str] | None:
    raw = q.get(name)
    if raw is None:
        return None
    tags = [t.strip() for t in raw.split(",")]
    if not all(tags) or any(len(t) > 60 or "/" in t for t in tags):
        raise BadRequest(f"Invalid input for query parameters {name}. Value: {raw[:64]}. "
                         "Tags are comma-separated, 1 to 60 characters each, without '/'.")
    return tags


def list_filters(req: ApiRequest) -> instances.ListFilters:
    q = req.query
    f = instances.ListFilters()
    if STRICT_LIST_QUERY(req):
        unknown = sorted(set(q.keys()) - LIST_QUERY)
        if unknown:
            raise BadRequest("Invalid input for query parameters. Additional properties are "
                             f"not allowed ({', '.join(repr(k) for k in unknown)} "
                             "was unexpected)")
    if TAG_FILTERS(req):
        f.tags, f.tags_any = _tag_list(q, "tags"), _tag_list(q, "tags-any")
        f.not_tags, f.not_tags_any = _tag_list(q, "not-tags"), _tag_list(q, "not-tags-any")
    if req.ctx.is_admin or MEMBER_FILTERS(req):
        f.user_id, f.key_name = q.get("user_id") or None, q.get("key_name") or None
    if "all_tenants" in q and (q["all_tenants"] == "" or to_bool(q["all_tenants"])):
        if not req.ctx.is_admin:
            raise Forbidden("Policy doesn't allow os_compute_api:servers:index:get_all_tenants "
                            "to be performed.")
        f.all_tenants = True
    # Nova ignores project_id/tenant_id unless all_tenants is given (lp:#1185290): without
    # it, even an admin lists its own project's servers.
    f.project_id = (q.get("project_id") or q.get("tenant_id")) if f.all_tenants else None
    f.name = q.get("name")
    status = q.get("status")
    if status:
        status = status.upper()
        if status not in states.STATUS_FILTERS:
            if STRICT_STATUS_FILTER(req):
                raise BadRequest(f"Invalid status value: {q.get('status')}")
            status = "__none__"
        f.status = status
    f.host = q.get("host") if req.ctx.is_admin else None
    if "changes-since" in q:
        f.changes_since = parse_time(q["changes-since"], "changes-since")
    if "changes-before" in q:
        f.changes_before = parse_time(q["changes-before"], "changes-before")
    if f.changes_since and f.changes_before and f.changes_before < f.changes_since:
        raise BadRequest("The value of changes-since must be less than or equal to changes-before.")
    f.ip, f.ip6 = q.get("ip") or None, q.get("ip6") or None
    f.image = q.get("image")
    f.flavor = q.get("flavor")
    f.reservation_id = q.get("reservation_id")
    f.availability_zone = q.get("availability_zone")
    if "deleted" in q and req.ctx.is_admin:
        f.deleted = to_bool(q["deleted"])
    f.limit, f.marker = page_limit_and_marker(req)
    sort_key = q.get("sort_key", "created_at")
    if sort_key not in instances.SORT_KEYS:
        raise BadRequest(f"Invalid sort_key {sort_key!r}")
    f.sort_key = sort_key
    sort_dir = q.get("sort_dir", "desc")
    if sort_dir not in ("asc", "desc"):
        raise BadRequest(f"Invalid sort_dir {sort_dir!r}")
    f.sort_dir = sort_dir
    return f
