"""Routers: GET/POST /v2.0/routers, GET/PUT/DELETE /v2.0/routers/{id},
PUT /v2.0/routers/{id}/add_router_interface and .../remove_router_interface.

A project sees and changes its own routers (admins any). `external_gateway_info` shows the
gateway's network, SNAT and addresses; choosing `enable_snat` or `external_fixed_ips` is
admin-only, as in Neutron. A router's interfaces are ports whose device_id is the router
(`openstack port list --router R` lists them that way).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.network import bulk, schemas, schemas_l3
from cirrus.api.network.listing import (
    as_text,
    finish,
    parse_bool,
    parse_listing,
    select_fields,
    sql_filters,
)
from cirrus.api.network.views import isotime
from cirrus.api.validation import to_bool
from cirrus.network import routers as service
from cirrus.network.access import READ, require

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from cirrus.db.models import IPAllocation, Router

COLUMNS = {
    "id": ("id", as_text), "name": ("name", as_text), "status": ("status", as_text),
    "description": ("description", as_text),
    "project_id": ("project_id", as_text), "tenant_id": ("project_id", as_text),
    "admin_state_up": ("admin_state_up", parse_bool),
}


def router_view(router: Router, gateway_ips: list[IPAllocation]) -> dict[str, Any]:
    gateway = None if router.gw_network_id is None else {
        "network_id": router.gw_network_id,
        "enable_snat": router.enable_snat,
        "external_fixed_ips": [{"subnet_id": a.subnet_id, "ip_address": a.ip_address}
                               for a in gateway_ips],
    }
    return {
        "id": router.id,
        "name": router.name,
        "status": router.status,
        "admin_state_up": router.admin_state_up,
        "external_gateway_info": gateway,
        "routes": [dict(r) for r in router.routes or []],
        "availability_zone_hints": [],
        "availability_zones": [],
        "tags": list(router.tags or []),
        "tenant_id": router.project_id,
        "project_id": router.project_id,
        "description": router.description,
        "created_at": isotime(router.created_at),
        "updated_at": isotime(router.updated_at or router.created_at),
        "revision_number": router.revision_number,
    }


# What a router shows: every one is a filter (and, but for the lists and objects, a sort key).
ROUTER_KEYS = {"id", "name", "status", "admin_state_up", "external_gateway_info", "routes",
               "availability_zone_hints", "availability_zones", "tags", "tenant_id",
               "project_id", "description", "created_at", "updated_at", "revision_number"}


def router_spec(body: dict) -> dict[str, Any]:
    """Model-named attributes from a checked Neutron body."""
    spec: dict[str, Any] = {k: body[k] for k in ("name", "description", "tags") if k in body}
    if "admin_state_up" in body:
        spec["admin_state_up"] = to_bool(body["admin_state_up"])
    if "external_gateway_info" in body:
        info = dict(body["external_gateway_info"] or {})
        if "enable_snat" in info:
            info["enable_snat"] = to_bool(info["enable_snat"])
        spec["gateway"] = info
    if "routes" in body:
        spec["routes"] = body["routes"]
    return spec


def render(s: Session, router: Router) -> dict:
    return router_view(router, service.gateway_ips(s, [router])[router.id])


def list_routers(req: ApiRequest) -> dict:
    require(req.ctx, READ, "get_router")
    listing = parse_listing(req, ROUTER_KEYS)
    filters = sql_filters(listing, COLUMNS)
    with req.cloud.db.reader() as s:
        found = service.list_routers(s, req.ctx, filters)
        gateways = service.gateway_ips(s, found)
        views = [router_view(r, gateways[r.id]) for r in found]
    return finish(req, "routers", views, listing)


def create_router(req: ApiRequest) -> Reply:
    """One router, or several (`{"routers": [...]}`, all or nothing)."""
    items, is_bulk = bulk.bodies(req.json, "router", "routers")
    specs = []
    for body in items:
        schemas.check(schemas_l3.ROUTER_CREATE, body)
        spec = router_spec(body)
        spec["project_id"] = schemas.requested_owner(body)
        specs.append(spec)
    views = req.cloud.db.run(lambda s: [render(
        s, service.create_router(s, req.ctx, req.cloud.settings, spec)) for spec in specs])
    return Reply(201, bulk.reply_body(views, "router", "routers", is_bulk))


def show_router(req: ApiRequest, router_id: str) -> dict:
    require(req.ctx, READ, "get_router")
    with req.cloud.db.reader() as s:
        view = render(s, service.get_router(s, req.ctx, router_id))
    return {"router": select_fields(view, req.query.getlist("fields"))}


def update_router(req: ApiRequest, router_id: str) -> dict:
    body = schemas.unwrap(req.json, "router")
    schemas.check(schemas_l3.ROUTER_UPDATE, body, readonly=schemas_l3.ROUTER_READONLY)
    spec = router_spec(body)
    view = req.cloud.db.run(lambda s: render(
        s, service.update_router(s, req.ctx, router_id, spec)))
    return {"router": view}


def delete_router(req: ApiRequest, router_id: str) -> Reply:
    req.cloud.db.run(lambda s: service.delete_router(s, req.ctx, router_id))
    return Reply(204)


def _interface_body(req: ApiRequest) -> dict:
    body = req.json
    schemas.check(schemas_l3.INTERFACE, body)
    return body


def add_router_interface(req: ApiRequest, router_id: str) -> dict:
    body = _interface_body(req)
    return req.cloud.db.run(lambda s: service.add_interface(
        s, req.ctx, req.cloud.settings, router_id, body))


def remove_router_interface(req: ApiRequest, router_id: str) -> dict:
    body = _interface_body(req)
    return req.cloud.db.run(lambda s: service.remove_interface(s, req.ctx, router_id, body))


ROUTES = [
    ("GET", "/v2.0/routers", list_routers),
    ("POST", "/v2.0/routers", create_router),
    ("GET", "/v2.0/routers/{router_id}", show_router),
    ("PUT", "/v2.0/routers/{router_id}", update_router),
    ("DELETE", "/v2.0/routers/{router_id}", delete_router),
    ("PUT", "/v2.0/routers/{router_id}/add_router_interface", add_router_interface),
    ("PUT", "/v2.0/routers/{router_id}/remove_router_interface", remove_router_interface),
]
