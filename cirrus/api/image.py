"""Glance v2 subset, served under /image.

Metadata routes are plain handlers run by the framework; the two data routes (upload and
download) are raw async endpoints so that image bytes stream between the socket and the
file store chunk by chunk and are never held in memory whole.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import functools
import logging
import os
from collections.abc import AsyncIterator, Callable
from typing import Any, BinaryIO, TypeVar
from urllib.parse import urlencode

import anyio
import anyio.to_thread
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from cirrus.api.errors import error_response
from cirrus.api.framework import ApiRequest, Reply, context_from_claims, make_routes
from cirrus.api.limits import INT64_MAX, BodyTooLarge
from cirrus.api.validation import validate
from cirrus.context import RequestContext, current_request_id
from cirrus.db.models import Image
from cirrus.errors import BadRequest, CirrusError
from cirrus.identity.policy import ADMIN, READ, WRITE, authorize
from cirrus.observe.logging import RateLimitedLog
from cirrus.storage import images, schemas
from cirrus.storage.filestore import READ_CHUNK, FileStore, StoredData

log = logging.getLogger(__name__)
abandoned_log = RateLimitedLog(log, what="abandoned image uploads")
T = TypeVar("T")

SERVICE = "image"
CURRENT_VERSION = "2.15"
SUPPORTED_VERSIONS = ("2.9", "2.7", "2.6", "2.5", "2.4", "2.3", "2.2", "2.1", "2.0")
PATCH_MEDIA_TYPES = {
    "application/openstack-images-v2.1-json-patch": "2.1",
    "application/openstack-images-v2.0-json-patch": "2.0",
}
PATCH_OPS = ("add", "remove", "replace")
DEFAULT_LIMIT = 25
MAX_LIMIT = 1000
UPLOAD_FLUSH_BYTES = 1024 * 1024  # bytes gathered from the socket per write to disk
STORE_ID = "file"


class UnsupportedMediaType(CirrusError):
    status = 415
    default_message = "Unsupported Content-Type"


# ---------------------------------------------------------------- serialisation


def _isotime(when: dt.datetime | None) -> str | None:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else None


def image_view(image: Image) -> dict[str, Any]:
    """An image as Glance shows it: extra properties flattened beside the core fields."""
    view: dict[str, Any] = dict(image.properties or {})
    view.update({
        "id": image.id,
        "name": image.name,
        "status": image.status,
        "visibility": image.visibility,
        "protected": image.protected,
        "os_hidden": image.os_hidden,
        "checksum": image.checksum,
        "os_hash_algo": image.os_hash_algo,
        "os_hash_value": image.os_hash_value,
        "owner": image.owner,
        "size": image.size,
        "virtual_size": image.virtual_size,
        "min_ram": image.min_ram,
        "min_disk": image.min_disk,
        "container_format": image.container_format,
        "disk_format": image.disk_format,
        "created_at": _isotime(image.created_at),
        "updated_at": _isotime(image.updated_at or image.created_at),
        "tags": list(image.tags or []),
        "self": f"/v2/images/{image.id}",
        "file": f"/v2/images/{image.id}/file",
        "schema": "/v2/schemas/image",
    })
    if image.location:
        view["stores"] = STORE_ID
    return view


# ---------------------------------------------------------------- versions


def _version(version: str, status: str, base: str) -> dict:
    return {"id": f"v{version}", "status": status,
            "links": [{"rel": "self", "href": f"{base}/image/v2/"}]}


def version_document(req: ApiRequest) -> Reply:
    base = req.base_url
    versions = [_version(CURRENT_VERSION, "CURRENT", base)]
    versions += [_version(v, "SUPPORTED", base) for v in SUPPORTED_VERSIONS]
    return Reply(300, {"versions": versions})


# ---------------------------------------------------------------- images


def _parse_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered not in ("true", "false"):
        raise BadRequest(f"Invalid value for {name} filter: {value}. It must be true or false.")
    return lowered == "true"


def _parse_int(name: str, value: str, minimum: int = 0) -> int:
    try:
        number = int(value) if len(value.strip()) <= 20 else None
    except ValueError:
        number = None
    if number is None:
        raise BadRequest(f"{name} param must be an integer")
    if number < minimum:
        raise BadRequest(f"{name} param must be positive")
    if number > INT64_MAX:  # sizes are 64-bit columns
        raise BadRequest(f"{name} param must be no larger than {INT64_MAX}")
    return number


def _parse_time(name: str, value: str) -> tuple[str, dt.datetime]:
    op, sep, when = value.partition(":")
    if not sep or op not in images.TIME_OPERATORS:
        op, when = "eq", value
    try:
        parsed = dt.datetime.fromisoformat(when.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadRequest(f"Invalid {name} filter: {value}. Use <op>:<ISO 8601 time> with op one "
                         f"of {', '.join(images.TIME_OPERATORS)}.") from exc
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    return op, parsed


def _sort_key(key: str) -> str:
    key = key.strip()
    if key not in images.SORT_KEYS:
        raise BadRequest(f"Invalid sort key: {key}. It must be one of the following: "
                         f"{', '.join(images.SORT_KEYS)}.")
    return key


def _sort_dir(direction: str) -> str:
    direction = direction.strip()
    if direction not in ("asc", "desc"):
        raise BadRequest(f"Invalid sort direction: {direction}")
    return direction


def _parse_sort(params: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Glance's two syntaxes: sort=name:asc,size:desc or sort_key=..&sort_dir=.. pairs."""
    sort = [v for k, v in params if k == "sort"]
    keys = [_sort_key(v) for k, v in params if k == "sort_key"]
    dirs = [_sort_dir(v) for k, v in params if k == "sort_dir"]
    if sort:
        if keys or dirs:
            raise BadRequest("Old and new sorting syntax cannot be combined")
        pairs = []
        for item in sort[-1].strip().split(","):
            key, _, direction = item.partition(":")
            pairs.append((_sort_key(key), _sort_dir(direction or "desc")))
        return pairs
    if len(dirs) > 1 and len(dirs) != len(keys):
        raise BadRequest("Number of sort dirs does not match the number of sort keys")
    keys = keys or ["created_at"]
    dirs = dirs or ["desc"]
    return [(key, dirs[i] if len(dirs) > 1 else dirs[0]) for i, key in enumerate(keys)]


_PAGING = ("limit", "marker", "sort", "sort_key", "sort_dir", "tag", "member_status")
_VISIBILITY_FILTERS = ("community", "public", "private", "shared", "all")


def parse_list_query(params: list[tuple[str, str]]) -> images.ImageQuery:
    """Turn GET /v2/images query parameters into an ImageQuery (400 for bad values)."""
    q = images.ImageQuery(sort=_parse_sort(params))
    single = {k: v for k, v in params}
    q.tags = [v.strip() for k, v in params if k == "tag"]
    if "limit" in single:
        q.limit = min(_parse_int("limit", single["limit"]), MAX_LIMIT)
    else:
        q.limit = DEFAULT_LIMIT
    q.marker = single.get("marker")
    member_status = single.get("member_status", "accepted")
    if member_status not in ("pending", "accepted", "rejected", "all"):
        raise BadRequest(f"Invalid status: {member_status}")
    for key, value in single.items():
        if key in _PAGING:
            continue
        if key == "visibility":
            if value not in _VISIBILITY_FILTERS:
                raise BadRequest(f"Invalid visibility value: {value}")
            q.visibility = value
        elif key in ("protected", "os_hidden"):
            setattr(q, key, _parse_bool(key, value))
        elif key in ("size_min", "size_max"):
            setattr(q, key, _parse_int(key, value))
        elif key in ("created_at", "updated_at"):
            q.times.append((key, *_parse_time(key, value)))
        elif key == "changes-since":
            raise BadRequest('The "changes-since" filter is no longer available on v2.')
        elif key in images.FILTER_COLUMNS:
            values = value[3:].split(",") if value.startswith("in:") else [value]
            q.columns[key] = [v.strip() for v in values]
        else:
            q.properties[key] = value
    return q


def list_images(req: ApiRequest) -> dict:
    authorize(req.ctx, READ, "get_images")
    query = parse_list_query(req.query.multi_items())
    page, next_marker = images.list_images(req.cloud.db, req.ctx, query)
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


def _store(req_or_cloud: Any) -> FileStore:
    cloud = getattr(req_or_cloud, "cloud", req_or_cloud)
    return FileStore(cloud.settings.effective_image_dir)


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
    authorize(req.ctx, ADMIN, "deactivate")
    images.set_deactivated(req.cloud.db, req.ctx, image_id, True)


def reactivate_image(req: ApiRequest, image_id: str) -> None:
    authorize(req.ctx, ADMIN, "reactivate")
    images.set_deactivated(req.cloud.db, req.ctx, image_id, False)


# ---------------------------------------------------------------- schemas and info


def image_schema(req: ApiRequest) -> dict:
    authorize(req.ctx, READ, "get_schema")
    return schemas.image_schema()


def images_schema(req: ApiRequest) -> dict:
    authorize(req.ctx, READ, "get_schema")
    return schemas.images_schema()


def import_info(req: ApiRequest) -> dict:
    authorize(req.ctx, READ, "get_import_info")
    # Interoperable image import is not offered: data arrives by PUT .../file only.
    return {"import-methods": {"description": "Import methods available.", "type": "array",
                               "value": []}}


def stores_info(req: ApiRequest) -> dict:
    authorize(req.ctx, READ, "get_stores")
    return {"stores": [{"id": STORE_ID, "description": "Local file store", "default": "true"}]}


# ---------------------------------------------------------------- image data (raw endpoints)


async def _in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run blocking disk or database work off the event loop, keeping the request id."""
    call = contextvars.copy_context().run
    return await anyio.to_thread.run_sync(functools.partial(call, fn, *args))


def _caller(request: Request) -> RequestContext:
    claims = request.app.state.cloud.tokens.authenticate(request.headers.get("x-auth-token"))
    return context_from_claims(claims, current_request_id() or "")


def _error(exc: CirrusError) -> Response:
    if exc.status >= 500:
        log.error("image data request failed: %s", exc.message)
    return error_response(SERVICE, exc.status, exc.message)


async def upload_image_data(request: Request) -> Response:
    """PUT /v2/images/{image_id}/file: stream the body into the store, hashing as it goes."""
    cloud = request.app.state.cloud
    image_id = request.path_params["image_id"]
    try:
        ctx = _caller(request)
        authorize(ctx, WRITE, "upload_image")
        media_type = request.headers.get("content-type", "application/octet-stream")
        if media_type.split(";")[0].strip().lower() != "application/octet-stream":
            raise UnsupportedMediaType(
                f"The Content-Type {media_type} is not supported; use application/octet-stream.")
        await _in_thread(images.begin_upload, cloud.db, ctx, image_id)
    except CirrusError as exc:
        return _error(exc)

    store = _store(cloud)
    try:
        stored = await _receive(request, store, image_id, cloud.settings.image_size_cap)
    except BaseException as exc:
        with anyio.CancelScope(shield=True):
            await _in_thread(images.abort_upload, cloud.db, image_id)
        if isinstance(exc, ClientDisconnect):
            abandoned_log.info("upload of image %s abandoned by the client", image_id)
            return _error(BadRequest("The client closed the connection before the upload "
                                     "finished; the image is queued again."))
        if isinstance(exc, BodyTooLarge):
            log.info("upload of image %s refused: more than %d bytes", image_id, exc.limit)
            return error_response(SERVICE, 413, f"The image data is larger than the limit of "
                                  f"{exc.limit} bytes (image_size_cap); the image is queued "
                                  "again.", {"Connection": "close"})
        if isinstance(exc, CirrusError):
            return _error(exc)
        if isinstance(exc, OSError):
            log.error("upload of image %s failed in the store: %s", image_id, exc)
            return error_response(SERVICE, 503, "The image store could not save the data; "
                                  "the image is queued again.")
        raise

    try:
        image = await _in_thread(images.finish_upload, cloud.db, image_id, stored)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await _in_thread(store.delete, stored.location)
            await _in_thread(images.abort_upload, cloud.db, image_id)
        raise
    if image is None:
        await _in_thread(store.delete, stored.location)
        return error_response(SERVICE, 410, f"Image {image_id} could not be found after upload. "
                              "The image may have been deleted during the upload.")
    log.info("image %s uploaded: %d bytes", image_id, stored.size)
    return Response(status_code=204)


async def _receive(request: Request, store: FileStore, image_id: str, cap: int) -> StoredData:
    """Write the request body to a staging file, up to `cap` bytes (0: no cap; the edge
    refuses a larger body first, this holds whatever the route is mounted behind); on any
    failure the file is removed."""
    writer = await _in_thread(store.writer, image_id)
    try:
        pending: list[bytes] = []
        pending_bytes = 0
        received = 0
        async for chunk in request.stream():
            if not chunk:
                continue
            received += len(chunk)
            if cap and received > cap:
                raise BodyTooLarge(cap)
            pending.append(chunk)
            pending_bytes += len(chunk)
            if pending_bytes >= UPLOAD_FLUSH_BYTES:
                await _in_thread(writer.write, b"".join(pending))
                pending, pending_bytes = [], 0
        if pending:
            await _in_thread(writer.write, b"".join(pending))
        return await _in_thread(writer.commit)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await _in_thread(writer.abort)
        raise


async def download_image_data(request: Request) -> Response:
    """GET /v2/images/{image_id}/file: stream the stored data; 204 if there is none."""
    cloud = request.app.state.cloud
    image_id = request.path_params["image_id"]
    try:
        ctx = _caller(request)
        authorize(ctx, READ, "download_image")
        image = await _in_thread(images.get_for_download, cloud.db, ctx, image_id)
    except CirrusError as exc:
        return _error(exc)
    if not image.location or image.status not in ("active", "deactivated"):
        return Response(status_code=204)
    try:
        fh = await _in_thread(_store(cloud).open, image.location)
    except (OSError, ValueError) as exc:
        log.error("data of image %s is missing from the store: %s", image_id, exc)
        return error_response(SERVICE, 503, f"The data of image {image_id} is not available "
                              "in the image store.")
    headers = {"Content-Length": str(os.fstat(fh.fileno()).st_size)}
    if image.checksum:
        headers["Content-MD5"] = image.checksum
    return StreamingResponse(_chunks(fh), headers=headers, media_type="application/octet-stream")


async def _chunks(fh: BinaryIO) -> AsyncIterator[bytes]:
    try:
        while chunk := await _in_thread(fh.read, READ_CHUNK):
            yield chunk
    finally:
        fh.close()


# ---------------------------------------------------------------- routes

ROUTES: list = [
    ("GET", "/", version_document, {"auth": False, "inline": True}),
    ("GET", "/v2", version_document, {"auth": False, "inline": True}),
    ("GET", "/v2/", version_document, {"auth": False, "inline": True}),
    ("GET", "/v2/images", list_images),
    ("POST", "/v2/images", create_image),
    ("GET", "/v2/images/{image_id}", show_image),
    ("PATCH", "/v2/images/{image_id}", update_image),
    ("DELETE", "/v2/images/{image_id}", delete_image),
    ("PUT", "/v2/images/{image_id}/tags/{tag}", add_tag),
    ("DELETE", "/v2/images/{image_id}/tags/{tag}", remove_tag),
    ("POST", "/v2/images/{image_id}/actions/deactivate", deactivate_image),
    ("POST", "/v2/images/{image_id}/actions/reactivate", reactivate_image),
    ("GET", "/v2/schemas/image", image_schema),
    ("GET", "/v2/schemas/images", images_schema),
    ("GET", "/v2/info/import", import_info),
    ("GET", "/v2/info/stores", stores_info),
]

# Raw streaming endpoints, mounted beside the framework's routes.
DATA_ROUTES: list[tuple[str, str, Callable]] = [
    ("PUT", "/v2/images/{image_id}/file", upload_image_data),
    ("GET", "/v2/images/{image_id}/file", download_image_data),
]


_ANY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _data_routes() -> list[Route]:
    by_path: dict[str, dict[str, Callable]] = {}
    for method, path, endpoint in DATA_ROUTES:
        by_path.setdefault(path, {})[method] = endpoint
    routes = []
    for path, handlers in by_path.items():
        async def dispatch(request: Request, handlers: dict = handlers) -> Response:
            handler = handlers.get("GET" if request.method == "HEAD" else request.method)
            if handler is None:
                return error_response(SERVICE, 405, f"The method {request.method} is not allowed.")
            return await handler(request)
        routes.append(Route(path, dispatch, methods=_ANY_METHOD))
    return routes


def routes() -> list[Route]:
    return make_routes(ROUTES, service=SERVICE) + _data_routes()
