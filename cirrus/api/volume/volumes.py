"""Volumes: /v3/{project_id}/volumes (+ /detail, /summary), show, update, delete, metadata
and the actions (os-extend, os-set_bootable, os-update_readonly_flag,
os-set_image_metadata, os-unset_image_metadata, os-show_image_metadata, os-reset_status,
os-force_delete) over cirrus.storage.volumes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.validation import validate
from cirrus.api.volume import attachments as volume_attachments
from cirrus.api.volume import schemas, volume_images
from cirrus.api.volume.common import (
    READ,
    WRITE,
    admin_only,
    all_projects,
    allow,
    body_bool,
    page_links,
    parse_bool,
    parse_dict,
    parse_int,
    parse_sort,
    parse_time_filter,
)
from cirrus.api.volume.microversion import Since, min_version
from cirrus.api.volume.views import created_volume_view, volume_summary, volume_view
from cirrus.errors import BadRequest
from cirrus.storage.volumes import states
from cirrus.storage.volumes import types as vtypes
from cirrus.storage.volumes import volumes as service
from cirrus.storage.volumes.rpcapi import VolumeAPI

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

TIME_FILTERS = Since("3.60")  # created_at/updated_at=OP:TIME
WITH_COUNT = Since("3.45")  # ?with_count=true: "count" beside the list
GLANCE_METADATA_FILTER = Since("3.4")  # ?glance_metadata={...}


def _type_names(s: Session) -> dict[str, str]:
    return vtypes.names(s)


def _filters(req: ApiRequest) -> service.VolumeFilters:
    q = req.query
    f = service.VolumeFilters(all_projects=all_projects(req))
    f.limit = parse_int(req, "limit")
    f.offset = parse_int(req, "offset") or 0
    f.marker = q.get("marker")
    f.sort = parse_sort(req, service.SORT_KEYS)
    if req.ctx.is_admin and q.get("project_id"):
        f.project_id = q.get("project_id")
        f.all_projects = True
    f.name = q.get("name") or q.get("display_name")
    f.status = q.get("status")
    if q.get("bootable") is not None:
        f.bootable = parse_bool("bootable", q["bootable"])
    f.availability_zone = q.get("availability_zone")
    f.volume_type = q.get("volume_type")
    if q.get("metadata"):
        f.metadata = parse_dict("metadata", q["metadata"])
    if q.get("glance_metadata") and GLANCE_METADATA_FILTER(req):
        f.image_metadata = parse_dict("glance_metadata", q["glance_metadata"])
    if TIME_FILTERS(req):
        for name in ("created_at", "updated_at"):
            if q.get(name):
                f.times.extend(parse_time_filter(name, q[name]))
    return f


def _list(req: ApiRequest, detail: bool, project_id: str | None = None) -> dict:
    allow(req, READ, "volume:get_all")
    f = _filters(req)
    with req.cloud.db.reader() as s:
        rows, total = service.list_volumes(s, req.ctx, f)
        names = _type_names(s)
        items = [volume_view(req, v, names) if detail else volume_summary(req, v)
                 for v in rows]
    body: dict[str, Any] = {"volumes": items}
    next_links = page_links(req, "volumes", items, f.limit, req.path)
    if next_links:
        body["volumes_links"] = next_links
    if WITH_COUNT(req) and req.query.get("with_count") and parse_bool(
            "with_count", req.query["with_count"]):
        body["count"] = total
    return body


def list_volumes(req: ApiRequest) -> dict:
    return _list(req, detail=False)


def list_volumes_detail(req: ApiRequest) -> dict:
    return _list(req, detail=True)


@min_version("3.12")
def volumes_summary(req: ApiRequest) -> dict:
    allow(req, READ, "volume:get_volume_summary")
    with req.cloud.db.reader() as s:
        found = service.summary(s, req.ctx, all_projects(req))
    if not Since("3.36")(req):
        found.pop("metadata")
    return {"volume-summary": found}


def _spec(body: dict) -> service.VolumeSpec:
    v = body["volume"]
    size = v.get("size")
    return service.VolumeSpec(
        size=int(size) if size is not None else None,
        name=v.get("name", v.get("display_name")),
        description=v.get("description", v.get("display_description")),
        volume_type=v.get("volume_type"), availability_zone=v.get("availability_zone"),
        metadata=dict(v.get("metadata") or {}), snapshot_id=v.get("snapshot_id"),
        source_volid=v.get("source_volid"), image_id=v.get("imageRef") or v.get("image_id"),
        multiattach=body_bool("volume/multiattach", v.get("multiattach", False)))


def create_volume(req: ApiRequest) -> Reply:
    allow(req, WRITE, "volume:create")
    body = req.json
    validate(schemas.VOLUME_CREATE, body)
    spec = _spec(body)

    def work(s: Session) -> Any:
        volume = service.create_volume(s, req.ctx, req.cloud.settings, spec)
        return created_volume_view(req, volume, _type_names(s))

    view = req.cloud.db.run(work)
    VolumeAPI(req.cloud.bus).create_volume(req.ctx, view["id"])
    return Reply(202, {"volume": view})


def show_volume(req: ApiRequest, volume_id: str) -> dict:
    allow(req, READ, "volume:get")
    with req.cloud.db.reader() as s:
        return {"volume": volume_view(req, service.get_volume(s, req.ctx, volume_id),
                                      _type_names(s))}


def update_volume(req: ApiRequest, volume_id: str) -> dict:
    allow(req, WRITE, "volume:update")
    body = req.json
    validate(schemas.VOLUME_UPDATE, body)
    v = body["volume"]
    values: dict[str, Any] = {}
    if "name" in v or "display_name" in v:
        values["name"] = v.get("name", v.get("display_name"))
    if "description" in v or "display_description" in v:
        values["description"] = v.get("description", v.get("display_description"))
    if v.get("metadata") is not None:  # null: unchanged
        values["metadata"] = v["metadata"]
    if not values and "metadata" not in v:
        raise BadRequest("Invalid input for field/attribute volume: nothing to update "
                         "(name, description or metadata).")
    return {"volume": req.cloud.db.run(lambda s: created_volume_view(
        req, service.update_volume(s, req.ctx, volume_id, values), _type_names(s)))}


def delete_volume(req: ApiRequest, volume_id: str) -> Reply:
    allow(req, WRITE, "volume:delete")
    cascade = parse_bool("cascade", req.query.get("cascade", "false"))
    force = parse_bool("force", req.query.get("force", "false"))
    if force:
        admin_only(req, "volume:force_delete")
    snapshot_ids = req.cloud.db.run(lambda s: service.request_delete(
        s, req.ctx, volume_id, cascade=cascade, force=force))
    VolumeAPI(req.cloud.bus).delete_volume(req.ctx, volume_id, tuple(snapshot_ids))
    return Reply(202)


# ---------------------------------------------------------------- metadata


def show_metadata(req: ApiRequest, volume_id: str) -> dict:
    allow(req, READ, "volume:get_volume_metadata")
    with req.cloud.db.reader() as s:
        return {"metadata": dict(service.get_volume(s, req.ctx, volume_id).metadata_items
                                 or {})}


def _set_metadata(req: ApiRequest, volume_id: str, replace: bool) -> dict:
    allow(req, WRITE, "volume:update_volume_metadata")
    body = req.json
    validate(schemas.METADATA, body)
    return {"metadata": req.cloud.db.run(lambda s: service.set_metadata(
        s, req.ctx, volume_id, body["metadata"], replace=replace))}


def create_metadata(req: ApiRequest, volume_id: str) -> dict:
    return _set_metadata(req, volume_id, replace=False)


def replace_metadata(req: ApiRequest, volume_id: str) -> dict:
    return _set_metadata(req, volume_id, replace=True)


def show_metadata_key(req: ApiRequest, volume_id: str, key: str) -> dict:
    allow(req, READ, "volume:get_volume_metadata")
    with req.cloud.db.reader() as s:
        metadata = service.get_volume(s, req.ctx, volume_id).metadata_items or {}
    if key not in metadata:
        from cirrus.errors import NotFound

        raise NotFound(f"Volume {volume_id} has no metadata with key {key}.")
    return {"meta": {key: metadata[key]}}


def set_metadata_key(req: ApiRequest, volume_id: str, key: str) -> dict:
    allow(req, WRITE, "volume:update_volume_metadata")
    body = req.json
    validate(schemas.META_ITEM, body)
    if key not in body["meta"]:
        raise BadRequest("Invalid input received: Request body and URI mismatch")
    req.cloud.db.run(lambda s: service.set_metadata(s, req.ctx, volume_id,
                                                    {key: body["meta"][key]}, replace=False))
    return {"meta": {key: body["meta"][key]}}


def delete_metadata_key(req: ApiRequest, volume_id: str, key: str) -> Reply:
    allow(req, WRITE, "volume:delete_volume_metadata")
    req.cloud.db.run(lambda s: service.delete_metadata_key(s, req.ctx, volume_id, key))
    return Reply(200)


# ---------------------------------------------------------------- actions


def _extend(req: ApiRequest, volume_id: str, body: dict) -> Reply:
    allow(req, WRITE, "volume:extend")
    validate(schemas.EXTEND, body)
    new_size = int(body["os-extend"]["new_size"])
    req.cloud.db.run(lambda s: service.request_extend(s, req.ctx, req.cloud.settings,
                                                      volume_id, new_size))
    VolumeAPI(req.cloud.bus).extend_volume(req.ctx, volume_id, new_size)
    return Reply(202)


def _set_bootable(req: ApiRequest, volume_id: str, body: dict) -> Reply:
    allow(req, WRITE, "volume:update")
    validate(schemas.SET_BOOTABLE, body)
    bootable = body_bool("os-set_bootable/bootable", body["os-set_bootable"]["bootable"])
    req.cloud.db.run(lambda s: service.set_bootable(s, req.ctx, volume_id, bootable))
    return Reply(200)


def _update_readonly(req: ApiRequest, volume_id: str, body: dict) -> Reply:
    allow(req, WRITE, "volume:update_readonly_flag")
    validate(schemas.UPDATE_READONLY, body)
    readonly = body_bool("os-update_readonly_flag/readonly",
                         body["os-update_readonly_flag"]["readonly"])
    req.cloud.db.run(lambda s: service.set_readonly(s, req.ctx, volume_id, readonly))
    return Reply(202)


def _set_image_metadata(req: ApiRequest, volume_id: str, body: dict) -> dict:
    allow(req, WRITE, "volume:set_image_metadata")
    validate(schemas.SET_IMAGE_METADATA, body)
    return {"metadata": req.cloud.db.run(lambda s: service.set_image_metadata(
        s, req.ctx, volume_id, body["os-set_image_metadata"]["metadata"]))}


def _unset_image_metadata(req: ApiRequest, volume_id: str, body: dict) -> Reply:
    allow(req, WRITE, "volume:remove_image_metadata")
    validate(schemas.UNSET_IMAGE_METADATA, body)
    key = body["os-unset_image_metadata"]["key"]
    req.cloud.db.run(lambda s: service.unset_image_metadata(s, req.ctx, volume_id, key))
    return Reply(200)


def _show_image_metadata(req: ApiRequest, volume_id: str, body: dict) -> dict:
    allow(req, READ, "volume:get_volume_image_metadata")
    with req.cloud.db.reader() as s:
        return {"metadata": dict(service.get_volume(s, req.ctx, volume_id).image_metadata
                                 or {})}


def _retype(req: ApiRequest, volume_id: str, body: dict) -> Reply:
    allow(req, WRITE, "volume:retype")
    validate(schemas.RETYPE, body)
    args = body["os-retype"]
    req.cloud.db.run(lambda s: service.retype(s, req.ctx, req.cloud.settings, volume_id,
                                              args["new_type"],
                                              args.get("migration_policy") or "never"))
    return Reply(202)


def _reset_status(req: ApiRequest, volume_id: str, body: dict) -> Reply:
    admin_only(req, "volume_extension:volume_admin_actions:reset_status")
    validate(schemas.RESET_STATUS, body)
    args = body["os-reset_status"]
    status, attach_status = args.get("status"), args.get("attach_status")
    if status is not None and status not in states.RESETTABLE:
        raise BadRequest(f"Invalid input for field/attribute os-reset_status/status. "
                         f"Value: {status}. Must be one of {', '.join(states.RESETTABLE)}.")
    if attach_status is not None and attach_status not in states.ATTACH_STATUSES:
        raise BadRequest(f"Invalid input for field/attribute os-reset_status/attach_status. "
                         f"Value: {attach_status}. Must be one of "
                         f"{', '.join(states.ATTACH_STATUSES)}.")
    if status is None and attach_status is None:
        raise BadRequest("Must specify 'status', 'attach_status' or 'migration_status' "
                         "for update.")
    req.cloud.db.run(lambda s: service.reset_status(s, volume_id, status, attach_status))
    return Reply(202)


def _force_delete(req: ApiRequest, volume_id: str, body: dict) -> Reply:
    admin_only(req, "volume_extension:volume_admin_actions:force_delete")
    snapshot_ids = req.cloud.db.run(lambda s: service.request_delete(
        s, req.ctx, volume_id, cascade=True, force=True))
    VolumeAPI(req.cloud.bus).delete_volume(req.ctx, volume_id, tuple(snapshot_ids))
    return Reply(202)


ACTIONS = {
    "os-extend": _extend,
    "os-set_bootable": _set_bootable,
    "os-update_readonly_flag": _update_readonly,
    "os-set_image_metadata": _set_image_metadata,
    "os-unset_image_metadata": _unset_image_metadata,
    "os-show_image_metadata": _show_image_metadata,
    "os-retype": _retype,
    "os-reset_status": _reset_status,
    "os-force_delete": _force_delete,
}
# issue 15: the attach actions and the online extend (cirrus/api/volume/attachments.py)
ACTIONS.update(volume_attachments.actions(ACTIONS))
# upload to image and revert to snapshot (cirrus/api/volume/volume_images.py)
ACTIONS.update(volume_images.actions())


def volume_action(req: ApiRequest, volume_id: str) -> Any:
    body = req.json
    if not isinstance(body, dict) or len(body) != 1:
        raise BadRequest("Invalid input received: the body must hold exactly one action.")
    name = next(iter(body))
    action = ACTIONS.get(name)
    if action is None:
        with req.cloud.db.reader() as s:  # an unknown volume first: 404, as Cinder answers
            service.get_volume(s, req.ctx, volume_id)
        raise BadRequest(f"Invalid input received: unknown or unsupported action {name!r} "
                         f"(supported: {', '.join(ACTIONS)}).")
    return action(req, volume_id, body)


ROUTES = [
    ("GET", "/v3/{project_id}/volumes", list_volumes),
    ("POST", "/v3/{project_id}/volumes", create_volume),
    ("GET", "/v3/{project_id}/volumes/detail", list_volumes_detail),
    ("GET", "/v3/{project_id}/volumes/summary", volumes_summary),
    ("GET", "/v3/{project_id}/volumes/{volume_id}", show_volume),
    ("PUT", "/v3/{project_id}/volumes/{volume_id}", update_volume),
    ("DELETE", "/v3/{project_id}/volumes/{volume_id}", delete_volume),
    ("POST", "/v3/{project_id}/volumes/{volume_id}/action", volume_action),
    ("GET", "/v3/{project_id}/volumes/{volume_id}/metadata", show_metadata),
    ("POST", "/v3/{project_id}/volumes/{volume_id}/metadata", create_metadata),
    ("PUT", "/v3/{project_id}/volumes/{volume_id}/metadata", replace_metadata),
    ("GET", "/v3/{project_id}/volumes/{volume_id}/metadata/{key}", show_metadata_key),
    ("PUT", "/v3/{project_id}/volumes/{volume_id}/metadata/{key}", set_metadata_key),
    ("DELETE", "/v3/{project_id}/volumes/{volume_id}/metadata/{key}", delete_metadata_key),
]
