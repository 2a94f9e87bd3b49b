"""Networks: GET/POST /v2.0/networks, GET/PUT/DELETE /v2.0/networks/{id}."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
from cirrus.api.network.views import network_keys, network_view
from cirrus.api.validation import to_bool
from cirrus.errors import BadRequest
from cirrus.network import networks as service
from cirrus.network.access import READ, require

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from cirrus.db.models import Network

COLUMNS = {
    "id": ("id", as_text), "name": ("name", as_text), "status": ("status", as_text),
    "project_id": ("project_id", as_text), "tenant_id": ("project_id", as_text),
    "shared": ("shared", parse_bool), "router:external": ("external", parse_bool),
    "admin_state_up": ("admin_state_up", parse_bool), "is_default": ("is_default", parse_bool),
    "mtu": ("mtu", parse_int),
}
# Neutron attribute -> model attribute, for bodies.
_BOOLEANS = {"admin_state_up": "admin_state_up", "shared": "shared",
             "router:external": "external", "is_default": "is_default",
             "port_security_enabled": "port_security_enabled"}
_TEXTS = {"name": "name", "description": "description",
          "provider:network_type": "provider_network_type",
          "provider:physical_network": "provider_physical_network",
          "availability_zone_hints": "availability_zone_hints", "tags": "tags"}


def network_spec(body: dict) -> dict[str, Any]:
    """Model-named attributes from a checked Neutron body."""
    spec: dict[str, Any] = {model: to_bool(body[name]) for name, model in _BOOLEANS.items()
                            if name in body}
    spec.update({model: body[name] for name, model in _TEXTS.items() if name in body})
    if "mtu" in body:
        spec["mtu"] = int(body["mtu"])
    if "provider:segmentation_id" in body:
        value = body["provider:segmentation_id"]
        spec["provider_segmentation_id"] = None if value is None else _segmentation_id(
            body.get("provider:network_type"), int(value))
    return spec


# Neutron's segmentation id ranges per network type (VLAN ids; 24-bit VNIs; GRE keys, here
# bounded by the 32-bit signed column).
SEGMENTATION_RANGES = {"vlan": (1, 4094), "vxlan": (1, 2**24 - 1), "geneve": (1, 2**24 - 1),
                       "gre": (1, 2**31 - 1)}


def _segmentation_id(network_type: str | None, value: int) -> int:
    low, high = SEGMENTATION_RANGES.get(network_type or "", (1, 2**31 - 1))
    if not low <= value <= high:
        kind = f" for {network_type} networks" if network_type in SEGMENTATION_RANGES else ""
        raise BadRequest(f"Invalid input for provider:segmentation_id. Reason: {value} is out "
                         f"of range{kind} ({low} through {high}).")
    return value


def render(req: ApiRequest, s: Session, network: Network) -> dict:
    return network_view(req.ctx, network, service.subnet_ids(s, [network.id])[network.id])


def list_networks(req: ApiRequest) -> dict:
    require(req.ctx, READ, "get_network")
    listing = parse_listing(req, network_keys(req.ctx))
    filters = sql_filters(listing, COLUMNS)
    with req.cloud.db.reader() as s:
        found = service.list_networks(s, req.ctx, filters)
        subnets = service.subnet_ids(s, [n.id for n in found])
        views = [network_view(req.ctx, n, subnets[n.id]) for n in found]
    return finish(req, "networks", views, listing)


def create_network(req: ApiRequest) -> Reply:
    """One network, or several (`{"networks": [...]}`, all or nothing: see bulk)."""
    items, is_bulk = bulk.bodies(req.json, "network", "networks")
    specs = []
    for body in items:
        schemas.check(schemas.NETWORK_CREATE, body)
        spec = network_spec(body)
        spec["project_id"] = schemas.requested_owner(body)
        specs.append(spec)
    views = req.cloud.db.run(lambda s: [render(
        req, s, service.create_network(s, req.ctx, req.cloud.settings, spec)) for spec in specs])
    return Reply(201, bulk.reply_body(views, "network", "networks", is_bulk))


def show_network(req: ApiRequest, network_id: str) -> dict:
    require(req.ctx, READ, "get_network")
    with req.cloud.db.reader() as s:
        view = render(req, s, service.get_network(s, req.ctx, network_id))
    return {"network": select_fields(view, req.query.getlist("fields"))}


def update_network(req: ApiRequest, network_id: str) -> dict:
    body = schemas.unwrap(req.json, "network")
    schemas.check(schemas.NETWORK_UPDATE, body, readonly=schemas.NETWORK_READONLY)
    spec = network_spec(body)
    view = req.cloud.db.run(lambda s: render(
        req, s, service.update_network(s, req.ctx, network_id, spec, req.cloud.settings)))
    return {"network": view}


def delete_network(req: ApiRequest, network_id: str) -> Reply:
    req.cloud.db.run(lambda s: service.delete_network(s, req.ctx, network_id))
    return Reply(204)


ROUTES = [
    ("GET", "/v2.0/networks", list_networks),
    ("POST", "/v2.0/networks", create_network),
    ("GET", "/v2.0/networks/{network_id}", show_network),
    ("PUT", "/v2.0/networks/{network_id}", update_network),
    ("DELETE", "/v2.0/networks/{network_id}", delete_network),
]
