"""The ASGI application: one Starlette app with each OpenStack service under its own prefix."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cirrus.api.errors import SERVICES, error_response, service_of
from cirrus.api.framework import IndexedRouter
from cirrus.api.limits import RequestLimitsMiddleware
from cirrus.context import GLOBAL_REQUEST_ID, new_request_id, reset_request_id, set_request_id

if TYPE_CHECKING:
    from cirrus.runtime import Cloud

log = logging.getLogger("cirrus.api.access")

# A bare service root ("/compute") is served as its mount root ("/compute/") instead of the
# redirect a Starlette Mount would answer: clients ask for both.
_BARE_ROOTS = {f"/{name}" for name in SERVICES}


class RequestIdMiddleware:
    """Gives every request an id, sets it for the logs, returns it in the headers, logs the call."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] in _BARE_ROOTS:
            scope = {**scope, "path": scope["path"] + "/", "raw_path": scope["path"].encode() + b"/"}
        request_id = new_request_id()
        token = set_request_id(request_id, _global_request_id(scope))
        started = time.perf_counter()
        status = 500
        extra = [(b"x-openstack-request-id", request_id.encode())]
        if scope["path"].startswith("/compute"):
            extra.append((b"x-compute-request-id", request_id.encode()))

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "%s %s %s", scope["method"], scope["path"], status,
                    extra={"fields": {"method": scope["method"], "path": scope["path"],
                                      "status": status,
                                      "duration_ms": round((time.perf_counter() - started) * 1000, 2)}},
                )
            reset_request_id(token)


def _global_request_id(scope: Scope) -> str | None:
    """The caller's X-OpenStack-Request-ID, kept (as Nova does) when it has the form of one;
    anything else is ignored, so a client cannot put arbitrary text in every log line."""
    for name, value in scope.get("headers") or ():
        if name == b"x-openstack-request-id":
            text = value.decode("latin-1").strip()
            return text if GLOBAL_REQUEST_ID.match(text) else None
    return None


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    service = service_of(request.url.path)
    message = {404: "The resource could not be found.",
               405: f"The method {request.method} is not allowed for this resource."}.get(
        exc.status_code, str(exc.detail))
    return error_response(service, exc.status_code, message)


def create_app(cloud: Cloud) -> Starlette:
    from cirrus.api import admin, compute, identity, image, network, volume

    app = Starlette(
        routes=[
            Mount("/identity", app=IndexedRouter(identity.routes())),
            Mount("/compute", app=IndexedRouter(compute.routes())),
            Mount("/image", app=IndexedRouter(image.routes())),
            Mount("/network", app=IndexedRouter(network.routes())),
            Mount("/volume", app=IndexedRouter(volume.routes())),
            Mount("/cirrus", app=IndexedRouter(admin.routes())),
        ],
        exception_handlers={HTTPException: _http_error},
    )
    app.state.cloud = cloud
    # The last added runs first: every answer, the limits' own included, carries a request id.
    app.add_middleware(RequestLimitsMiddleware, settings=cloud.settings)
    app.add_middleware(RequestIdMiddleware)
    return app
