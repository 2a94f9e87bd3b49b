"""The one readable path of every API handler: authenticate, authorise, validate, act, serialise.

Handlers are plain synchronous functions `handler(req: ApiRequest, **path_params)` run in a
worker thread. They return a `Reply` (or a dict for a 200 JSON body, or a Starlette
`Response` for streams) and raise `cirrus.errors` exceptions, which are mapped to HTTP here.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Receive, Scope, Send

from cirrus.api.errors import error_response
from cirrus.api.limits import parse_json
from cirrus.api.responses import FastJSONResponse as JSONResponse
from cirrus.context import RequestContext, current_global_request_id, current_request_id
from cirrus.errors import BadRequest, CirrusError, Forbidden, Unauthorized
from cirrus.identity.tokens import TokenClaims
from cirrus.observe.logging import RateLimitedLog

if TYPE_CHECKING:
    from cirrus.runtime import Cloud

log = logging.getLogger(__name__)
# A client that goes away mid-request is the client's business: INFO, a few lines per
# interval and a count of the rest, however many clients do it.
disconnect_log = RateLimitedLog(log, what="client disconnects")


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class ApiRequest:
    cloud: Cloud
    method: str
    path: str
    headers: Any  # starlette Headers (case-insensitive)
    query: Any  # starlette QueryParams (multi-dict)
    raw_body: bytes
    ctx: RequestContext
    claims: TokenClaims | None
    microversion: tuple[int, int] = (2, 1)
    _json: Any = None

    @property
    def json(self) -> Any:
        """The parsed body; BadRequest if it is not JSON or breaks a limit of
        cirrus.api.limits.parse_json (depth, string length, UTF-8, 64-bit numbers)."""
        if self._json is None:
            if not self.raw_body:
                raise BadRequest("The request body is empty; a JSON body is required.")
            self._json = parse_json(self.raw_body, self.cloud.settings)
        return self._json

    @property
    def base_url(self) -> str:
        return self.cloud.settings.effective_public_url

    def require_project(self) -> str:
        if not self.ctx.project_id:
            raise Forbidden("This action needs a project-scoped token.")
        return self.ctx.project_id

    def require_user(self) -> str:
        """The caller's user id: an authenticated request always has one (the token names it)."""
        if not self.ctx.user_id:
            raise Unauthorized()
        return self.ctx.user_id


def context_from_claims(claims: TokenClaims, request_id: str) -> RequestContext:
    return RequestContext(
        request_id=request_id,
        global_request_id=current_global_request_id(),
        user_id=claims.user_id,
        user_name=claims.user_name,
        project_id=claims.project_id,
        project_name=claims.project_name,
        domain_id=claims.user_domain_id,
        roles=claims.role_names,
        system=claims.system,
    )


# nginx's status for a request the client abandoned: recorded in the access log, never sent.
CLIENT_CLOSED_REQUEST = 499

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

Negotiator = Callable[[Request], tuple[tuple[int, int], dict[str, str]]]


def endpoint(
    handler: Callable[..., Any],
    *,
    service: str,
    auth: bool = True,
    negotiate: Negotiator | None = None,
    inline: bool = False,
) -> Callable[[Request], Any]:
    """Wrap a synchronous handler as a Starlette endpoint.

    Handlers run in a worker thread, except `inline` ones: handlers that do no I/O beyond a
    rare cached read (version documents, token validation) run on the event loop and save
    the thread hop.
    """

    async def run(request: Request) -> Response:
        cloud: Cloud = request.app.state.cloud
        extra_headers: dict[str, str] = {}
        try:
            microversion = (2, 1)
            if negotiate is not None:
                microversion, extra_headers = negotiate(request)
            request_id = current_request_id() or ""
            claims = None
            if auth:
                claims = cloud.tokens.authenticate(request.headers.get("x-auth-token"))
                ctx = context_from_claims(claims, request_id)
            else:
                ctx = RequestContext(request_id=request_id,
                                     global_request_id=current_global_request_id())
            # Read only once the caller is known (the edge has bounded its size already).
            raw = await request.body()
            req = ApiRequest(
                cloud=cloud, method=request.method, path=request.scope["path"],
                headers=request.headers, query=request.query_params, raw_body=raw, ctx=ctx,
                claims=claims, microversion=microversion,
            )
            if inline:
                result = handler(req, **request.path_params)
            else:
                call = contextvars.copy_context().run
                result = await anyio.to_thread.run_sync(
                    lambda: call(handler, req, **request.path_params)
                )
        except ClientDisconnect:
            disconnect_log.info("%s %s: the client closed the connection before sending the "
                                "whole body", request.method, request.url.path)
            return Response(status_code=CLIENT_CLOSED_REQUEST)
        except CirrusError as exc:
            if exc.status >= 500:
                log.error("%s %s failed: %s", request.method, request.url.path, exc.message)
            headers = {**extra_headers, **exc.headers}
            if exc.status == 401 and service == "identity":
                headers["WWW-Authenticate"] = f'Keystone uri="{cloud.settings.effective_public_url}/identity"'
            return error_response(service, exc.status, exc.message, headers)
        except Exception:
            log.exception("%s %s raised", request.method, request.url.path)
            return error_response(
                service, 500, "An unexpected error occurred; the request id in the logs says more.",
                extra_headers,
            )
        return _to_response(result, extra_headers)

    return run


def _to_response(result: Any, extra_headers: dict[str, str]) -> Response:
    if isinstance(result, Response):
        result.headers.update(extra_headers)
        return result
    if isinstance(result, Reply):
        headers = {**extra_headers, **result.headers}
        if result.body is None:
            return Response(status_code=result.status, headers=headers)
        return JSONResponse(result.body, status_code=result.status, headers=headers)
    if result is None:
        return Response(status_code=204, headers=extra_headers)
    return JSONResponse(result, headers=extra_headers)


def make_routes(
    table: list[tuple[str, str, Callable[..., Any]]] | list[tuple],
    *,
    service: str,
    negotiate: Negotiator | None = None,
) -> list[Route]:
    """Build Starlette routes from (method(s), path, handler[, {"auth": False}]) rows.

    Rows with the same path are merged into one Route, so an unknown method answers 405.
    """
    by_path: dict[str, dict[str, Callable]] = {}
    for row in table:
        methods, path, handler = row[0], row[1], row[2]
        options = row[3] if len(row) > 3 else {}
        wrapped = endpoint(handler, service=service, negotiate=negotiate, **options)
        for method in methods.split(","):
            by_path.setdefault(path, {})[method.strip().upper()] = wrapped
    routes = []
    for path, handlers in by_path.items():
        # Every method reaches _dispatch, which answers 405 in the service's own error shape.
        route = Route(path, _dispatch(handlers, service), methods=ALL_METHODS)
        route.handled_methods = tuple(handlers)  # type: ignore[attr-defined] # for the tests
        routes.append(route)
    return routes


def _dispatch(handlers: dict[str, Callable], service: str) -> Callable:
    if "GET" in handlers and "HEAD" not in handlers:
        handlers = {**handlers, "HEAD": handlers["GET"]}

    async def route(request: Request) -> Response:
        handler = handlers.get(request.method)
        if handler is None:
            return error_response(service, 405, f"The method {request.method} is not allowed.")
        return await handler(request)

    return route


class IndexedRouter:
    """Routes indexed by their first two literal path segments.

    Starlette's router tries every route's regex in turn; with a whole OpenStack service in
    one list that was a fifth of a request's cost. Here only the routes that share the
    request's leading segments (and the few whose leading segments are parameters) are tried.
    """

    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        self.routes = routes
        self._index: dict[tuple[str, ...], list[BaseRoute]] = {}
        for route in routes:
            self._index.setdefault(self._key(getattr(route, "path", "")), []).append(route)

    @staticmethod
    def _key(template: str) -> tuple[str, ...]:
        key: list[str] = []
        for segment in template.split("/")[1:3]:
            if "{" in segment:
                break
            key.append(segment)
        return tuple(key)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from starlette._utils import get_route_path

        segments = get_route_path(scope).split("/")[1:3]
        for key in dict.fromkeys((tuple(segments), tuple(segments[:1]), ())):
            for route in self._index.get(key, ()):
                match, child_scope = route.matches(scope)
                if match is Match.FULL:
                    scope.update(child_scope)
                    await route.handle(scope, receive, send)
                    return
        raise HTTPException(status_code=404)
