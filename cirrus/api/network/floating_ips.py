"""Floating IPs: GET/POST /v2.0/floatingips, GET/PUT/DELETE /v2.0/floatingips/{id}.

A project sees and changes its own floating IPs (admins any). `floating_ip_address` on
create is admin-only, as in Neutron. `port_id` associates (the port's subnet must reach the
floating IP's network through a router's gateway), `port_id: null` disassociates; `status`
is ACTIVE while associated, DOWN otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.network import bulk, schemas, schemas_l3
from cirrus.api.network.listing import as_text, finish, parse_listing, select_fields, sql_filters
from cirrus.api.network.views import isotime
from cirrus.network import floating_ips as service
from cirrus.network.access import READ, require

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.orm import Session

    from cirrus.db.models import FloatingIP

COLUMNS: dict[str, tuple[str, Callable[[str, str], Any]]] = {
    "id": ("id", as_text), "status": ("status", as_text),
    "description": ("description", as_text),
    "project_id": ("project_id", as_text), "tenant_id": ("project_id", as_text),
    "floating_network_id": ("floating_network_id", as_text),
    "floating_ip_address": ("floating_ip_address", as_text),
    "port_id": ("fixed_port_id", as_text), "fixed_ip_address": ("fixed_ip_address", as_text),
    "router_id": ("router_id", as_text),
}
# What a floating IP shows: every one is a filter.
FLOATINGIP_KEYS = {"id", "floating_ip_address", "floating_network_id", "router_id", "port_id",
                   "fixed_ip_address", "status", "tags", "tenant_id", "project_id",
                   "description", "created_at", "updated_at", "revision_number"}
_COPIED = ("floating_network_id", "floating_ip_address", "subnet_id", "port_id",
           "fixed_ip_address", "description", "tags")


def floatingip_view(fip: FloatingIP) -> dict[str, Any]:
    return {
        "id": fip.id,
        "floating_ip_address": fip.floating_ip_address,
        "floating_network_id": fip.floating_network_id,
        "router_id": fip.router_id,
        "port_id": fip.fixed_port_id,
        "fixed_ip_address": fip.fixed_ip_address,
        "status": fip.status,
        "tags": list(fip.tags or []),
        "tenant_id": fip.project_id,
        "project_id": fip.project_id,
        "description": fip.description,
        "created_at": isotime(fip.created_at),
        "updated_at": isotime(fip.updated_at or fip.created_at),
        "revision_number": fip.revision_number,
    }


def list_floatingips(req: ApiRequest) -> dict:
    require(req.ctx, READ, "get_floatingip")
    listing = parse_listing(req, FLOATINGIP_KEYS)
    filters = sql_filters(listing, COLUMNS)
    with req.cloud.db.reader() as s:
        views = [floatingip_view(f) for f in service.list_floatingips(s, req.ctx, filters)]
    return finish(req, "floatingips", views, listing)


def create_floatingip(req: ApiRequest) -> Reply:
    """One floating IP, or several (`{"floatingips": [...]}`, all or nothing)."""
    items, is_bulk = bulk.bodies(req.json, "floatingip", "floatingips")
    specs = []
    for body in items:
        schemas.check(schemas_l3.FLOATINGIP_CREATE, body)
        spec = {key: body[key] for key in _COPIED if key in body}
        spec["project_id"] = schemas.requested_owner(body)
        specs.append(spec)

    def work(s: Session) -> list[dict]:
        return [floatingip_view(service.create_floatingip(s, req.ctx, req.cloud.settings, spec))
                for spec in specs]

    return Reply(201, bulk.reply_body(req.cloud.db.run(work), "floatingip", "floatingips",
                                      is_bulk))


def show_floatingip(req: ApiRequest, floatingip_id: str) -> dict:
    require(req.ctx, READ, "get_floatingip")
    with req.cloud.db.reader() as s:
        view = floatingip_view(service.get_floatingip(s, req.ctx, floatingip_id))
    return {"floatingip": select_fields(view, req.query.getlist("fields"))}


def update_floatingip(req: ApiRequest, floatingip_id: str) -> dict:
    body = schemas.unwrap(req.json, "floatingip")
    schemas.check(schemas_l3.FLOATINGIP_UPDATE, body, readonly=schemas_l3.FLOATINGIP_READONLY)
    changes = dict(body)
    return {"floatingip": req.cloud.db.run(lambda s: floatingip_view(
        service.update_floatingip(s, req.ctx, floatingip_id, changes)))}


def delete_floatingip(req: ApiRequest, floatingip_id: str) -> Reply:
    req.cloud.db.run(lambda s: service.delete_floatingip(s, req.ctx, floatingip_id))
    return Reply(204)


ROUTES = [
    ("GET", "/v2.0/floatingips", list_floatingips),
    ("POST", "/v2.0/floatingips", create_floatingip),
    ("GET", "/v2.0/floatingips/{floatingip_id}", show_floatingip),
    ("PUT", "/v2.0/floatingips/{floatingip_id}", update_floatingip),
    ("DELETE", "/v2.0/floatingips/{floatingip_id}", delete_floatingip),
]
