"""Subnet pools: GET/POST /v2.0/subnetpools, GET/PUT/DELETE /v2.0/subnetpools/{id}
(cirrus.network.subnetpools)."""

from __future__ import annotations

from typing import Any

from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.network import schemas
from cirrus.api.network.listing import (
    as_text,
    finish,
    parse_bool,
    parse_int,
    parse_listing,
    select_fields,
    sql_filters,
)
from cirrus.api.network.views import subnetpool_keys, subnetpool_view
from cirrus.api.validation import to_bool
from cirrus.network import subnetpools as service
from cirrus.network.access import READ, require

COLUMNS = {
    "id": ("id", as_text), "name": ("name", as_text),
    "project_id": ("project_id", as_text), "tenant_id": ("project_id", as_text),
    "ip_version": ("ip_version", parse_int), "shared": ("shared", parse_bool),
    "is_default": ("is_default", parse_bool),
    "default_prefixlen": ("default_prefixlen", parse_int),
    "min_prefixlen": ("min_prefixlen", parse_int), "max_prefixlen": ("max_prefixlen", parse_int),
}
_INTEGERS = ("default_prefixlen", "min_prefixlen", "max_prefixlen", "default_quota")


def pool_spec(body: dict) -> dict[str, Any]:
    """Model-named values from a checked body (numbers as numbers, flags as booleans)."""
    spec: dict[str, Any] = {key: body[key] for key in ("name", "description", "prefixes")
                            if key in body}
    for key in _INTEGERS:
        if key in body:
            spec[key] = None if body[key] is None else int(body[key])
    for key in ("shared", "is_default"):
        if key in body:
            spec[key] = to_bool(body[key])
    return spec


def list_subnetpools(req: ApiRequest) -> dict:
    require(req.ctx, READ, "get_subnetpool")
    listing = parse_listing(req, subnetpool_keys())
    filters = sql_filters(listing, COLUMNS)
    with req.cloud.db.reader() as s:
        views = [subnetpool_view(p) for p in service.list_subnetpools(s, req.ctx, filters)]
    return finish(req, "subnetpools", views, listing)


def create_subnetpool(req: ApiRequest) -> Reply:
    body = schemas.unwrap(req.json, "subnetpool")
    schemas.check(schemas.SUBNETPOOL_CREATE, body)
    spec = pool_spec(body)
    spec["project_id"] = schemas.requested_owner(body)
    view = req.cloud.db.run(lambda s: subnetpool_view(
        service.create_subnetpool(s, req.ctx, spec)))
    return Reply(201, {"subnetpool": view})


def show_subnetpool(req: ApiRequest, subnetpool_id: str) -> dict:
    require(req.ctx, READ, "get_subnetpool")
    with req.cloud.db.reader() as s:
        view = subnetpool_view(service.get_subnetpool(s, req.ctx, subnetpool_id))
    return {"subnetpool": select_fields(view, req.query.getlist("fields"))}


def update_subnetpool(req: ApiRequest, subnetpool_id: str) -> dict:
    body = schemas.unwrap(req.json, "subnetpool")
    schemas.check(schemas.SUBNETPOOL_UPDATE, body, readonly=schemas.SUBNETPOOL_READONLY)
    spec = pool_spec(body)
    view = req.cloud.db.run(lambda s: subnetpool_view(
        service.update_subnetpool(s, req.ctx, subnetpool_id, spec)))
    return {"subnetpool": view}


def delete_subnetpool(req: ApiRequest, subnetpool_id: str) -> Reply:
    req.cloud.db.run(lambda s: service.delete_subnetpool(s, req.ctx, subnetpool_id))
    return Reply(204)


ROUTES = [
    ("GET", "/v2.0/subnetpools", list_subnetpools),
    ("POST", "/v2.0/subnetpools", create_subnetpool),
    ("GET", "/v2.0/subnetpools/{subnetpool_id}", show_subnetpool),
    ("PUT", "/v2.0/subnetpools/{subnetpool_id}", update_subnetpool),
    ("DELETE", "/v2.0/subnetpools/{subnetpool_id}", delete_subnetpool),
]
