"""The compute API's image proxy (/images), for microversions below 2.36 (404 from 2.36, as in
Nova): list, detail, show and delete of the images the caller sees in the image service, and
their metadata (the images' extra properties). It lets older clients find server snapshots.

Statuses are Nova's: active -> ACTIVE, queued and saving -> SAVING, killed and deactivated ->
ERROR, deleted -> DELETED, anything else UNKNOWN; `progress` 25 (queued), 50 (saving), 100
(active), 0 otherwise. A snapshot names its server (`server`, from `instance_uuid`).
"""

from __future__ import annotations

from typing import Any

from cirrus.api.compute.common import available, next_links, page_limit_and_marker
from cirrus.api.compute.views import iso_z, links
from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.validation import metadata as metadata_schema
from cirrus.api.validation import validate
from cirrus.db.models import Image
from cirrus.errors import BadRequest, NotFound
from cirrus.identity.policy import READ, WRITE, authorize
from cirrus.storage import image_list, images
from cirrus.storage.filestore import FileStore

PROXY = available("2.1", "2.35")  # gone from 2.36

_STATUS = {"active": "ACTIVE", "queued": "SAVING", "saving": "SAVING", "uploading": "SAVING",
           "importing": "SAVING", "killed": "ERROR", "deactivated": "ERROR",
           "deleted": "DELETED", "pending_delete": "DELETED"}
_PROGRESS = {"queued": 25, "saving": 50, "active": 100}

metadata_body = {"type": "object", "properties": {"metadata": metadata_schema},
                 "required": ["metadata"], "additionalProperties": False}
meta_body = {"type": "object",
             "properties": {"meta": {**metadata_schema, "minProperties": 1, "maxProperties": 1}},
             "required": ["meta"], "additionalProperties": False}


def _links(req: ApiRequest, image_id: str) -> list[dict]:
    return [*links(req, "images", image_id),
            {"rel": "alternate", "type": "application/vnd.openstack.image",
             "href": f"{req.base_url}/image/images/{image_id}"}]


def _brief(req: ApiRequest, image: Image) -> dict[str, Any]:
    return {"id": image.id, "name": image.name, "links": _links(req, image.id)}


def _detail(req: ApiRequest, image: Image) -> dict[str, Any]:
    properties = dict(image.properties or {})
    view: dict[str, Any] = {
        "id": image.id, "name": image.name,
        "status": _STATUS.get(image.status, "UNKNOWN"),
        "progress": _PROGRESS.get(image.status, 0),
        "created": iso_z(image.created_at), "updated": iso_z(image.updated_at or image.created_at),
        "minDisk": image.min_disk or 0, "minRam": image.min_ram or 0,
        "metadata": {k: v for k, v in properties.items()},
        "OS-EXT-IMG-SIZE:size": image.size,
        "links": _links(req, image.id),
    }
    server = properties.get("instance_uuid")
    if server:
        view["server"] = {"id": server, "links": links(req, "servers", server)}
    return view


def _list(req: ApiRequest, view: Any, collection: str) -> dict:
    authorize(req.ctx, READ, "os_compute_api:images:index")
    limit, marker = page_limit_and_marker(req)
    query = image_list.ImageQuery(limit=limit, marker=marker)
    q = req.query
    if q.get("name"):
        query.columns["name"] = [q["name"]]
    if q.get("status"):
        wanted = q["status"].upper()
        query.columns["status"] = [k for k, v in _STATUS.items() if v == wanted] or ["-"]
    rows, _next = image_list.list_images(req.cloud.db, req.ctx, query)
    if q.get("server"):
        server = q["server"].rstrip("/").rsplit("/", 1)[-1]
        rows = [r for r in rows if (r.properties or {}).get("instance_uuid") == server]
    if q.get("type"):
        rows = [r for r in rows if (r.properties or {}).get("image_type", "base") == q["type"]]
    for name, column in (("minRam", "min_ram"), ("minDisk", "min_disk")):
        if q.get(name):
            if not q[name].isdigit():
                raise BadRequest(f"Invalid input for query parameters {name}. Value: "
                                 f"{q[name][:64]}. It is not an integer.")
            rows = [r for r in rows if (getattr(r, column) or 0) >= int(q[name])]
    body: dict[str, Any] = {"images": [view(req, r) for r in rows]}
    more = next_links(req, collection, len(rows), rows[-1].id if rows else None, limit)
    if more:
        body["images_links"] = more
    return body


@PROXY
def list_images(req: ApiRequest) -> dict:
    return _list(req, _brief, "images")


@PROXY
def list_images_detail(req: ApiRequest) -> dict:
    return _list(req, _detail, "images/detail")


def _get(req: ApiRequest, image_id: str) -> Image:
    try:
        return images.get_image(req.cloud.db, req.ctx, image_id)
    except NotFound:
        raise NotFound("Image not found.") from None


@PROXY
def show_image(req: ApiRequest, image_id: str) -> dict:
    authorize(req.ctx, READ, "os_compute_api:images:show")
    return {"image": _detail(req, _get(req, image_id))}


@PROXY
def delete_image(req: ApiRequest, image_id: str) -> Reply:
    authorize(req.ctx, WRITE, "os_compute_api:images:delete")
    _get(req, image_id)
    images.delete_image(req.cloud.db, FileStore(req.cloud.settings.effective_image_dir),
                        req.ctx, image_id)
    return Reply(204)


# ---------------------------------------------------------------- metadata


def _set_metadata(req: ApiRequest, image_id: str, items: dict[str, str], *,
                  replace: bool = False, remove: str | None = None) -> dict[str, str]:
    current = dict(_get(req, image_id).properties or {})
    for key in items:
        if key in images.WRITABLE or key in images.READ_ONLY:
            raise BadRequest(f"Invalid input for field/attribute metadata. Value: {key}. "
                             "It is an image attribute, not metadata.")
    changes: list[images.Change] = []
    if remove is not None:
        if remove not in current:
            raise NotFound("Image metadata item not found.")
        changes.append(images.Change("remove", remove))
    if replace:
        changes += [images.Change("remove", key) for key in current if key not in items]
    changes += [images.Change("add", key, value) for key, value in items.items()]
    image = images.update_image(req.cloud.db, req.ctx, image_id, changes)
    return dict(image.properties or {})


@PROXY
def list_metadata(req: ApiRequest, image_id: str) -> dict:
    authorize(req.ctx, READ, "os_compute_api:image-metadata:index")
    return {"metadata": dict(_get(req, image_id).properties or {})}


@PROXY
def update_metadata(req: ApiRequest, image_id: str) -> dict:
    authorize(req.ctx, WRITE, "os_compute_api:image-metadata:create")
    validate(metadata_body, req.json)
    return {"metadata": _set_metadata(req, image_id, req.json["metadata"])}


@PROXY
def replace_metadata(req: ApiRequest, image_id: str) -> dict:
    authorize(req.ctx, WRITE, "os_compute_api:image-metadata:update_all")
    validate(metadata_body, req.json)
    return {"metadata": _set_metadata(req, image_id, req.json["metadata"], replace=True)}


@PROXY
def show_metadata_item(req: ApiRequest, image_id: str, key: str) -> dict:
    authorize(req.ctx, READ, "os_compute_api:image-metadata:show")
    current = dict(_get(req, image_id).properties or {})
    if key not in current:
        raise NotFound("Image metadata item not found.")
    return {"meta": {key: current[key]}}


@PROXY
def set_metadata_item(req: ApiRequest, image_id: str, key: str) -> dict:
    authorize(req.ctx, WRITE, "os_compute_api:image-metadata:update")
    validate(meta_body, req.json)
    meta = req.json["meta"]
    if key not in meta:
        raise BadRequest("Request body and URI mismatch")
    _set_metadata(req, image_id, {key: meta[key]})
    return {"meta": {key: meta[key]}}


@PROXY
def delete_metadata_item(req: ApiRequest, image_id: str, key: str) -> Reply:
    authorize(req.ctx, WRITE, "os_compute_api:image-metadata:delete")
    _set_metadata(req, image_id, {}, remove=key)
    return Reply(204)


ROUTES = [
    ("GET", "/v2.1/images", list_images),
    ("GET", "/v2.1/images/detail", list_images_detail),
    ("GET", "/v2.1/images/{image_id}", show_image),
    ("DELETE", "/v2.1/images/{image_id}", delete_image),
    ("GET", "/v2.1/images/{image_id}/metadata", list_metadata),
    ("POST", "/v2.1/images/{image_id}/metadata", update_metadata),
    ("PUT", "/v2.1/images/{image_id}/metadata", replace_metadata),
    ("GET", "/v2.1/images/{image_id}/metadata/{key}", show_metadata_item),
    ("PUT", "/v2.1/images/{image_id}/metadata/{key}", set_metadata_item),
    ("DELETE", "/v2.1/images/{image_id}/metadata/{key}", delete_metadata_item),
]
