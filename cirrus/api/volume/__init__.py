"""Cinder v3 subset (issue 15), served under /volume: version documents, volumes and their
actions, snapshots, volume types, QoS specs, quotas, limits, availability zones.

Every route is written as Cinder's `/v3/{project_id}/...` and served without the project id
as well (`/v3/...`, as Cinder does at any microversion and announces at 3.67): the catalog
names `/volume/v3`. A project id in the path must be the caller's (admins may name any)."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any

from starlette.routing import Route

from cirrus.api.framework import ApiRequest, make_routes
from cirrus.api.volume.common import SERVICE
from cirrus.api.volume.microversion import negotiate
from cirrus.errors import BadRequest

MODULES = ("versions", "volumes", "snapshots", "types", "qos", "quotas", "extensions",
           "attachments")
PREFIX = "/v3/{project_id}/"


def _scoped(handler: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(handler)
    def run(req: ApiRequest, project_id: str | None = None, **params: Any) -> Any:
        if (project_id is not None and project_id != req.ctx.project_id
                and not req.ctx.is_admin):
            raise BadRequest(f"Malformed request URL: URL's project_id '{project_id}' "
                             f"doesn't match Context's project_id '{req.ctx.project_id}'")
        return handler(req, **params)

    return run


def routes() -> list[Route]:
    table: list = []
    for name in MODULES:
        for row in importlib.import_module(f"cirrus.api.volume.{name}").ROUTES:
            methods, path, handler, *options = row
            if path.startswith(PREFIX):
                wrapped = _scoped(handler)
                table.append((methods, path, wrapped, *options))
                table.append((methods, "/v3/" + path[len(PREFIX):], wrapped, *options))
            else:
                table.append(row)
    return make_routes(table, service=SERVICE, negotiate=negotiate)
