"""Image data: raw async endpoints that stream bytes between the socket and the file store
chunk by chunk, never holding an image in memory whole."""

from __future__ import annotations

import contextvars
import functools
import logging
import os
from collections.abc import AsyncIterator, Callable
from typing import Any, BinaryIO, TypeVar

import anyio
import anyio.to_thread
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from cirrus.api.errors import error_response
from cirrus.api.framework import context_from_claims
from cirrus.api.image.common import (
    SERVICE,
    UPLOAD_FLUSH_BYTES,
    UnsupportedMediaType,
    _store,
)
from cirrus.api.limits import BodyTooLarge
from cirrus.context import RequestContext, current_request_id
from cirrus.errors import BadRequest, CirrusError
from cirrus.identity.policy import READ, WRITE, authorize
from cirrus.observe.logging import RateLimitedLog
from cirrus.storage import image_data, images
from cirrus.storage.filestore import READ_CHUNK, FileStore, StoredData

log = logging.getLogger(__name__)
abandoned_log = RateLimitedLog(log, what="abandoned image uploads")
T = TypeVar("T")


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
    return await _put_data(request, image_data.UPLOAD, "upload_image")


async def stage_image_data(request: Request) -> Response:
    """PUT /v2/images/{image_id}/stage: the same transfer, leaving the image `uploading`
    until `POST .../import` with the glance-direct method makes it active."""
    return await _put_data(request, image_data.STAGE, "stage_image")


async def _put_data(request: Request, mode: tuple[str, str], action: str) -> Response:
    cloud = request.app.state.cloud
    image_id = request.path_params["image_id"]
    again = "queued again"
    try:
        ctx = _caller(request)
        authorize(ctx, WRITE, action)
        media_type = request.headers.get("content-type", "application/octet-stream")
        if media_type.split(";")[0].strip().lower() != "application/octet-stream":
            raise UnsupportedMediaType(
                f"The Content-Type {media_type} is not supported; use application/octet-stream.")
        await _in_thread(image_data.begin_upload, cloud.db, ctx, image_id, mode)
    except CirrusError as exc:
        return _error(exc)

    store = _store(cloud)
    try:
        stored = await _receive(request, store, image_id, cloud.settings.image_size_cap)
    except BaseException as exc:
        with anyio.CancelScope(shield=True):
            await _in_thread(image_data.abort_upload, cloud.db, image_id, mode)
        if isinstance(exc, ClientDisconnect):
            abandoned_log.info("upload of image %s abandoned by the client", image_id)
            return _error(BadRequest("The client closed the connection before the upload "
                                     f"finished; the image is {again}."))
        if isinstance(exc, BodyTooLarge):
            log.info("upload of image %s refused: more than %d bytes", image_id, exc.limit)
            return error_response(SERVICE, 413, f"The image data is larger than the limit of "
                                  f"{exc.limit} bytes (image_size_cap); the image is {again}.",
                                  {"Connection": "close"})
        if isinstance(exc, CirrusError):
            return _error(exc)
        if isinstance(exc, OSError):
            log.error("upload of image %s failed in the store: %s", image_id, exc)
            return error_response(SERVICE, 503, "The image store could not save the data; "
                                  f"the image is {again}.")
        raise

    try:
        image = await _in_thread(image_data.finish_upload, cloud.db, image_id, stored, mode)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await _in_thread(store.delete, stored.location)
            await _in_thread(image_data.abort_upload, cloud.db, image_id, mode)
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


# Raw streaming endpoints, mounted beside the framework's routes.
DATA_ROUTES: list[tuple[str, str, Callable]] = [
    ("PUT", "/v2/images/{image_id}/file", upload_image_data),
    ("PUT", "/v2/images/{image_id}/stage", stage_image_data),
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
