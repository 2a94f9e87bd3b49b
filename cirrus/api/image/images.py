"""Images: list, create, show, patch, delete, tags, (de)activation."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.responses import Response

from cirrus.api.errors import error_response
from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.image import schemas
from cirrus.api.image.common import (
    PATCH_MEDIA_TYPES,
    PATCH_OPS,
    SERVICE,
    _store,
)
from cirrus.api.image.query import parse_list_query
from cirrus.api.image.views import image_view
from cirrus.api.validation import validate
from cirrus.errors import BadRequest
from cirrus.identity.policy import READ, WRITE, authorize
from cirrus.storage import image_list, images


def list_images(req: ApiRequest) -> dict:
    authorize(req.ctx, READ, "get_images")
    query = parse_list_query(req.query.multi_items())
    page, next_marker = image_list.list_images(req.cloud.db, req.ctx, query)
    params = [(k, v) for k, v in req.query.multi_items() if k != "marker"]
    body: dict[str, Any] = {
        "images": [image_view(image) for image in page],
        "first": "/v2/images" + (f"?{urlencode(params)}" if params else ""),
        "schema": "/v2/schemas/images",
    }
    if next_marker:
        body["next"] = "/v2/images?" + urlencode([*params, ("marker", next_marker)])
    return body


def create_image(req: ApiRequest) -> Reply:
    authorize(req.ctx, WRITE, "add_image")
    body = req.json
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object describing the image.")
    images.check_attribute_names(list(body), creating=True)
    validate(schemas.CREATE_IMAGE, body)
    image = images.create_image(req.cloud.db, req.ctx, body)
    return Reply(201, image_view(image),
                 {"Location": f"{req.base_url}/image/v2/images/{image.id}"})


def show_image(req: ApiRequest, image_id: str) -> dict:
    authorize(req.ctx, READ, "get_image")
    return image_view(images.get_image(req.cloud.db, req.ctx, image_id))


def _decode_pointer(pointer: Any) -> str:
    """The one attribute name a JSON pointer names (Glance patches top-level members only)."""
    if not isinstance(pointer, str) or not pointer.startswith("/"):
        raise BadRequest(f"Pointer `{pointer}` does not start with \"/\".")
    parts = pointer[1:].split("/")
    if len(parts) != 1 or not parts[0].strip():
        raise BadRequest(f"Invalid JSON pointer for this resource: '{pointer}'")
    raw = parts[0]
    if "~" in raw.replace("~0", "").replace("~1", ""):
        raise BadRequest(f"Pointer `{pointer}` contains \"~\" not part of a recognized escape "
                         "sequence.")
    return raw.replace("~1", "/").replace("~0", "~").strip()


def _parse_change(raw: Any, dialect: str) -> images.Change:
    if not isinstance(raw, dict):
        raise BadRequest("Operations must be JSON objects.")
    if dialect == "2.1":
        op = raw.get("op")
        if op not in PATCH_OPS:
            raise BadRequest(f"Invalid operation: `{op}`. It must be one of the following: "
                             f"{', '.join(PATCH_OPS)}.")
        if "path" not in raw:
            raise BadRequest("Unable to find 'path' in JSON Schema change")
        pointer = raw["path"]
    else:
        present = [name for name in PATCH_OPS if name in raw]
        if len(present) != 1:
            raise BadRequest('Operation objects must contain exactly one member named "add", '
                             '"remove", or "replace".')
        op = present[0]
        pointer = raw[op]
    name = _decode_pointer(pointer)
    images.check_attribute_names([name], creating=False)
    if op == "remove":
        return images.Change(op, name)
    if "value" not in raw:
        raise BadRequest(f'Operation "{op}" requires a member named "value".')
    validate(schemas.CREATE_IMAGE, {name: raw["value"]})
    return images.Change(op, name, raw["value"])


def update_image(req: ApiRequest, image_id: str) -> dict | Response:
    authorize(req.ctx, WRITE, "modify_image")
    media_type = req.headers.get("content-type", "").split(";")[0].strip().lower()
    dialect = PATCH_MEDIA_TYPES.get(media_type)
    if dialect is None:
        allowed = ", ".join(sorted(PATCH_MEDIA_TYPES))
        return error_response(SERVICE, 415, f"Image PATCH expects Content-Type one of: {allowed}",
                              {"Accept-Patch": allowed})
    body = req.json
    if not isinstance(body, list):
        raise BadRequest("Request body must be a JSON array of operation objects.")
    changes = [_parse_change(raw, dialect) for raw in body]
    return image_view(images.update_image(req.cloud.db, req.ctx, image_id, changes))


def delete_image(req: ApiRequest, image_id: str) -> None:
    authorize(req.ctx, WRITE, "delete_image")
    images.delete_image(req.cloud.db, _store(req), req.ctx, image_id)


def _check_tag(tag: str) -> None:
    if not tag.strip() or len(tag) > 255:
        raise BadRequest("A tag must be 1 to 255 characters long.")


def add_tag(req: ApiRequest, image_id: str, tag: str) -> None:
    authorize(req.ctx, WRITE, "modify_image")
    _check_tag(tag)
    images.add_tag(req.cloud.db, req.ctx, image_id, tag)


def remove_tag(req: ApiRequest, image_id: str, tag: str) -> None:
    authorize(req.ctx, WRITE, "modify_image")
    images.remove_tag(req.cloud.db, req.ctx, image_id, tag)


def deactivate_image(req: ApiRequest, image_id: str) -> None:
    authorize(req.ctx, WRITE, "deactivate")
    images.set_deactivated(req.cloud.db, req.ctx, image_id, True)


def reactivate_image(req: ApiRequest, image_id: str) -> None:
    authorize(req.ctx, WRITE, "reactivate")
    images.set_deactivated(req.cloud.db, req.ctx, image_id, False)


ROUTES: list = [
    ("GET", "/v2/images", list_images),
    ("POST", "/v2/images", create_image),
    ("GET", "/v2/images/{image_id}", show_image),
    ("PATCH", "/v2/images/{image_id}", update_image),
    ("DELETE", "/v2/images/{image_id}", delete_image),
    ("PUT", "/v2/images/{image_id}/tags/{tag}", add_tag),
    ("DELETE", "/v2/images/{image_id}/tags/{tag}", remove_tag),
    ("POST", "/v2/images/{image_id}/actions/deactivate", deactivate_image),
    ("POST", "/v2/images/{image_id}/actions/reactivate", reactivate_image),
]
