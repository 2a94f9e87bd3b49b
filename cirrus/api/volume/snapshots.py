"""Snapshots: /v3/{project_id}/snapshots (+ /detail), show, update, delete, metadata,
os-reset_status (admins), os-update_snapshot_status over cirrus.storage.volumes.snapshots."""

from __future__ import annotations

from typing import Any

from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.validation import validate
from cirrus.api.volume import schemas
from cirrus.api.volume.common import (
    READ,
    WRITE,
    admin_only,
    all_projects,
    allow,
    body_bool,
    page_links,
    parse_dict,
    parse_int,
    parse_sort,
)
from cirrus.api.volume.microversion import Since
from cirrus.api.volume.views import snapshot_summary, snapshot_view
from cirrus.errors import BadRequest, NotFound
from cirrus.storage.volumes import snapshots as service
from cirrus.storage.volumes import states
from cirrus.storage.volumes.rpcapi import VolumeAPI

WITH_COUNT = Since("3.45")
METADATA_FILTER = Since("3.22")


def _list(req: ApiRequest, detail: bool) -> dict:
    allow(req, READ, "volume:get_all_snapshots")
    q = req.query
    f = service.SnapshotFilters(all_projects=all_projects(req))
    f.limit = parse_int(req, "limit")
    f.offset = parse_int(req, "offset") or 0
    f.marker = q.get("marker")
    f.sort = parse_sort(req, service.SORT_KEYS)
    if req.ctx.is_admin and q.get("project_id"):
        f.project_id, f.all_projects = q.get("project_id"), True
    f.name = q.get("name") or q.get("display_name")
    f.status = q.get("status")
    f.volume_id = q.get("volume_id")
    if q.get("metadata") and METADATA_FILTER(req):
        f.metadata = parse_dict("metadata", q["metadata"])
    with req.cloud.db.reader() as s:
        rows, total = service.list_snapshots(s, req.ctx, f)
        view = snapshot_view if detail else snapshot_summary
        items = [view(req, r) for r in rows]
    body: dict[str, Any] = {"snapshots": items}
    links = page_links(req, "snapshots", items, f.limit, req.path)
    if links:
        body["snapshots_links"] = links
    if WITH_COUNT(req) and q.get("with_count") and body_bool("with_count", q["with_count"]):
        body["count"] = total
    return body


def list_snapshots(req: ApiRequest) -> dict:
    return _list(req, detail=False)


def list_snapshots_detail(req: ApiRequest) -> dict:
    return _list(req, detail=True)


def create_snapshot(req: ApiRequest) -> Reply:
    allow(req, WRITE, "volume:create_snapshot")
    body = req.json
    validate(schemas.SNAPSHOT_CREATE, body)
    sn = body["snapshot"]
    force = body_bool("snapshot/force", sn.get("force", False))
    view = req.cloud.db.run(lambda s: snapshot_summary(req, service.create_snapshot(
        s, req.ctx, req.cloud.settings, sn.get("volume_id") or "",
        name=sn.get("name", sn.get("display_name")),
        description=sn.get("description", sn.get("display_description")),
        force=force, metadata=dict(sn.get("metadata") or {}))))
    VolumeAPI(req.cloud.bus).create_snapshot(req.ctx, view["id"])
    return Reply(202, {"snapshot": view})


def show_snapshot(req: ApiRequest, snapshot_id: str) -> dict:
    allow(req, READ, "volume:get_snapshot")
    with req.cloud.db.reader() as s:
        return {"snapshot": snapshot_view(req, service.get_snapshot(s, req.ctx, snapshot_id))}


def update_snapshot(req: ApiRequest, snapshot_id: str) -> dict:
    allow(req, WRITE, "volume:update_snapshot")
    body = req.json
    validate(schemas.SNAPSHOT_UPDATE, body)
    sn = body["snapshot"]
    values: dict[str, Any] = {}
    if "name" in sn or "display_name" in sn:
        values["name"] = sn.get("name", sn.get("display_name"))
    if "description" in sn or "display_description" in sn:
        values["description"] = sn.get("description", sn.get("display_description"))
    if not values:
        raise BadRequest("Invalid input for field/attribute snapshot: nothing to update.")
    return {"snapshot": req.cloud.db.run(lambda s: snapshot_summary(
        req, service.update_snapshot(s, req.ctx, snapshot_id, values)))}


def delete_snapshot(req: ApiRequest, snapshot_id: str) -> Reply:
    allow(req, WRITE, "volume:delete_snapshot")
    req.cloud.db.run(lambda s: service.request_delete(s, req.ctx, snapshot_id))
    VolumeAPI(req.cloud.bus).delete_snapshot(req.ctx, snapshot_id)
    return Reply(202)


def snapshot_action(req: ApiRequest, snapshot_id: str) -> Reply:
    body = req.json
    if isinstance(body, dict) and "os-force_delete" in body:
        admin_only(req, "volume_extension:snapshot_admin_actions:force_delete")
        req.cloud.db.run(lambda s: service.request_delete(s, req.ctx, snapshot_id,
                                                          force=True))
        VolumeAPI(req.cloud.bus).delete_snapshot(req.ctx, snapshot_id)
        return Reply(202)
    if isinstance(body, dict) and "os-update_snapshot_status" in body:
        allow(req, WRITE, "snapshot_extension:snapshot_actions:update_snapshot_status")
        validate(schemas.SNAPSHOT_UPDATE_STATUS, body)
        update = body["os-update_snapshot_status"]
        req.cloud.db.run(lambda s: service.update_status(
            s, req.ctx, snapshot_id, update["status"], update.get("progress")))
        return Reply(202)
    if not isinstance(body, dict) or "os-reset_status" not in body:
        raise BadRequest("Invalid input received: unknown or unsupported snapshot action "
                         "(supported: os-reset_status, os-force_delete, "
                         "os-update_snapshot_status).")
    admin_only(req, "volume_extension:snapshot_admin_actions:reset_status")
    validate(schemas.SNAPSHOT_RESET_STATUS, body)
    status = body["os-reset_status"]["status"]
    if status not in states.SNAPSHOT_STATUSES:
        raise BadRequest(f"Invalid input for field/attribute os-reset_status/status. Value: "
                         f"{status}. Must be one of {', '.join(states.SNAPSHOT_STATUSES)}.")
    req.cloud.db.run(lambda s: service.reset_status(s, snapshot_id, status))
    return Reply(202)


# ---------------------------------------------------------------- metadata


def show_metadata(req: ApiRequest, snapshot_id: str) -> dict:
    allow(req, READ, "volume:get_snapshot_metadata")
    with req.cloud.db.reader() as s:
        return {"metadata": dict(service.get_snapshot(s, req.ctx, snapshot_id).metadata_items
                                 or {})}


def _set(req: ApiRequest, snapshot_id: str, replace: bool) -> dict:
    allow(req, WRITE, "volume:update_snapshot_metadata")
    body = req.json
    validate(schemas.METADATA, body)
    return {"metadata": req.cloud.db.run(lambda s: service.set_metadata(
        s, req.ctx, snapshot_id, body["metadata"], replace=replace))}


def create_metadata(req: ApiRequest, snapshot_id: str) -> dict:
    return _set(req, snapshot_id, replace=False)


def replace_metadata(req: ApiRequest, snapshot_id: str) -> dict:
    return _set(req, snapshot_id, replace=True)


def show_metadata_key(req: ApiRequest, snapshot_id: str, key: str) -> dict:
    allow(req, READ, "volume:get_snapshot_metadata")
    with req.cloud.db.reader() as s:
        metadata = service.get_snapshot(s, req.ctx, snapshot_id).metadata_items or {}
    if key not in metadata:
        raise NotFound(f"Snapshot {snapshot_id} has no metadata with key {key}.")
    return {"meta": {key: metadata[key]}}


def set_metadata_key(req: ApiRequest, snapshot_id: str, key: str) -> dict:
    allow(req, WRITE, "volume:update_snapshot_metadata")
    body = req.json
    validate(schemas.META_ITEM, body)
    if key not in body["meta"]:
        raise BadRequest("Invalid input received: Request body and URI mismatch")
    req.cloud.db.run(lambda s: service.set_metadata(s, req.ctx, snapshot_id,
                                                    {key: body["meta"][key]}, replace=False))
    return {"meta": {key: body["meta"][key]}}


def delete_metadata_key(req: ApiRequest, snapshot_id: str, key: str) -> Reply:
    allow(req, WRITE, "volume:delete_snapshot_metadata")
    req.cloud.db.run(lambda s: service.delete_metadata_key(s, req.ctx, snapshot_id, key))
    return Reply(200)


ROUTES = [
    ("GET", "/v3/{project_id}/snapshots", list_snapshots),
    ("POST", "/v3/{project_id}/snapshots", create_snapshot),
    ("GET", "/v3/{project_id}/snapshots/detail", list_snapshots_detail),
    ("GET", "/v3/{project_id}/snapshots/{snapshot_id}", show_snapshot),
    ("PUT", "/v3/{project_id}/snapshots/{snapshot_id}", update_snapshot),
    ("DELETE", "/v3/{project_id}/snapshots/{snapshot_id}", delete_snapshot),
    ("POST", "/v3/{project_id}/snapshots/{snapshot_id}/action", snapshot_action),
    ("GET", "/v3/{project_id}/snapshots/{snapshot_id}/metadata", show_metadata),
    ("POST", "/v3/{project_id}/snapshots/{snapshot_id}/metadata", create_metadata),
    ("PUT", "/v3/{project_id}/snapshots/{snapshot_id}/metadata", replace_metadata),
    ("GET", "/v3/{project_id}/snapshots/{snapshot_id}/metadata/{key}", show_metadata_key),
    ("PUT", "/v3/{project_id}/snapshots/{snapshot_id}/metadata/{key}", set_metadata_key),
    ("DELETE", "/v3/{project_id}/snapshots/{snapshot_id}/metadata/{key}", delete_metadata_key),
]
