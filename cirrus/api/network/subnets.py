"""Subnets: GET/POST /v2.0/subnets, GET/PUT/DELETE /v2.0/subnets/{id}."""

from __future__ import annotations

from typing import Any

from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.network import bulk, schemas
from cirrus.api.network.listing import (
    as_text,
    finish,
    parse_bool,
    parse_int,
    parse_listing,
    select_fields,
    sql_filters,
)
from cirrus.api.network.views import subnet_keys, subnet_view
from cirrus.api.validation import to_bool
from cirrus.errors import BadRequest
from cirrus.network import subnets as service
from cirrus.network.access import READ, require

COLUMNS = {
    "id": ("id", as_text), "name": ("name", as_text), "network_id": ("network_id", as_text),
    "project_id": ("project_id", as_text), "tenant_id": ("project_id", as_text),
    "cidr": ("cidr", as_text), "gateway_ip": ("gateway_ip", as_text),
    "ip_version": ("ip_version", parse_int), "enable_dhcp": ("enable_dhcp", parse_bool),
    "subnetpool_id": ("subnetpool_id", as_text),
}
_COPIED = ("name", "description", "gateway_ip", "allocation_pools", "dns_nameservers",
           "host_routes", "network_id", "cidr", "ipv6_ra_mode", "ipv6_address_mode", "tags")


def subnet_spec(body: dict) -> dict[str, Any]:
    """Model-named attributes from a checked Neutron body ("gateway_ip": null stays: no
    gateway; absent: the default one)."""
    spec: dict[str, Any] = {key: body[key] for key in _COPIED if key in body}
    if "enable_dhcp" in body:
        spec["enable_dhcp"] = to_bool(body["enable_dhcp"])
    if "ip_version" in body:
        spec["ip_version"] = int(body["ip_version"])
    # Subnet pools: where the cidr comes from (cirrus.network.subnetpools).
    if body.get("subnetpool_id"):
        spec["subnetpool_id"] = body["subnetpool_id"]
    if body.get("prefixlen") is not None:
        spec["prefixlen"] = int(body["prefixlen"])
    if "use_default_subnetpool" in body:
        spec["use_default_subnetpool"] = to_bool(body["use_default_subnetpool"])
    return spec


def list_subnets(req: ApiRequest) -> dict:
    require(req.ctx, READ, "get_subnet")
    listing = parse_listing(req, subnet_keys())
    filters = sql_filters(listing, COLUMNS)
    with req.cloud.db.reader() as s:
        views = [subnet_view(sn) for sn in service.list_subnets(s, req.ctx, filters)]
    return finish(req, "subnets", views, listing)


def create_subnet(req: ApiRequest) -> Reply:
    """One subnet, or several (`{"subnets": [...]}`, all or nothing: see bulk)."""
    items, is_bulk = bulk.bodies(req.json, "subnet", "subnets")
    specs = []
    for body in items:
        schemas.check(schemas.SUBNET_CREATE, body)
        if "cidr" in body and body.get("prefixlen") is not None:
            raise BadRequest("Bad subnets request: cidr and prefixlen must not be supplied "
                             "together.")
        spec = subnet_spec(body)
        spec["project_id"] = schemas.requested_owner(body)
        specs.append(spec)
    views = req.cloud.db.run(lambda s: [subnet_view(
        service.create_subnet(s, req.ctx, req.cloud.settings, spec)) for spec in specs])
    return Reply(201, bulk.reply_body(views, "subnet", "subnets", is_bulk))


def show_subnet(req: ApiRequest, subnet_id: str) -> dict:
    require(req.ctx, READ, "get_subnet")
    with req.cloud.db.reader() as s:
        view = subnet_view(service.get_subnet(s, req.ctx, subnet_id))
    return {"subnet": select_fields(view, req.query.getlist("fields"))}


def update_subnet(req: ApiRequest, subnet_id: str) -> dict:
    body = schemas.unwrap(req.json, "subnet")
    schemas.check(schemas.SUBNET_UPDATE, body, readonly=schemas.SUBNET_READONLY)
    spec = subnet_spec(body)
    view = req.cloud.db.run(lambda s: subnet_view(
        service.update_subnet(s, req.ctx, subnet_id, dict(spec))))
    return {"subnet": view}


def delete_subnet(req: ApiRequest, subnet_id: str) -> Reply:
    req.cloud.db.run(lambda s: service.delete_subnet(s, req.ctx, subnet_id))
    return Reply(204)


ROUTES = [
    ("GET", "/v2.0/subnets", list_subnets),
    ("POST", "/v2.0/subnets", create_subnet),
    ("GET", "/v2.0/subnets/{subnet_id}", show_subnet),
    ("PUT", "/v2.0/subnets/{subnet_id}", update_subnet),
    ("DELETE", "/v2.0/subnets/{subnet_id}", delete_subnet),
]
