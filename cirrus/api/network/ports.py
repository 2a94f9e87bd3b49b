"""Ports: GET/POST /v2.0/ports, GET/PUT/DELETE /v2.0/ports/{id}.

`binding:host_id` is admin-only (shown and set). `fixed_ips=ip_address=A` and
`fixed_ips=subnet_id=S` filter the list, as `openstack port list --fixed-ip` asks
(`fixed_ips=ip_address_substr=10.0.0.` matches part of an address);
`device_id` is what `openstack port list --server` filters on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cirrus.agent.rpcapi import AgentAPI
from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.network import bulk, schemas
from cirrus.api.network.listing import (
    as_text,
    finish,
    parse_bool,
    parse_listing,
    select_fields,
    sql_filters,
)
from cirrus.api.network.views import port_keys, port_view
from cirrus.api.validation import to_bool
from cirrus.errors import BadRequest
from cirrus.network import enforcement
from cirrus.network import ports as service
from cirrus.network.access import READ, require
from cirrus.network.errors import PolicyNotAuthorized

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from cirrus.db.models import Port

COLUMNS = {
    "id": ("id", as_text), "name": ("name", as_text), "network_id": ("network_id", as_text),
    "device_id": ("device_id", as_text), "device_owner": ("device_owner", as_text),
    "mac_address": ("mac_address", as_text), "status": ("status", as_text),
    "project_id": ("project_id", as_text), "tenant_id": ("project_id", as_text),
    "admin_state_up": ("admin_state_up", parse_bool),
    "binding:host_id": ("binding_host_id", as_text),
}
_COPIED = ("name", "description", "mac_address", "fixed_ips", "device_id", "device_owner",
           "security_groups", "tags", "allowed_address_pairs")


def port_spec(req: ApiRequest, body: dict, action: str) -> dict[str, Any]:
    """Model-named attributes from a checked Neutron body; binding:host_id for admins only."""
    spec: dict[str, Any] = {key: body[key] for key in _COPIED if key in body}
    for key in ("admin_state_up", "port_security_enabled"):
        if key in body:
            spec[key] = to_bool(body[key])
    if "binding:host_id" in body:
        if not req.ctx.is_admin:
            raise PolicyNotAuthorized(f"{action}:binding:host_id")
        spec["host_id"] = body["binding:host_id"] or None
    return spec


def _ip_filters(values: list[str]) -> list[tuple[str, str]]:
    result = []
    for value in values:
        key, sep, wanted = value.partition("=")
        if not sep or key not in ("ip_address", "subnet_id", "ip_address_substr"):
            raise BadRequest(f"Invalid input for fixed_ips. Reason: '{value}' is not of the "
                             "form ip_address=<address>, ip_address_substr=<part of one> "
                             "or subnet_id=<id>.")
        result.append((key, wanted))
    return result


def render(req: ApiRequest, s: Session, port: Port) -> dict:
    return port_view(req.ctx, port, service.allocations_of(s, [port.id])[port.id])


def list_ports(req: ApiRequest) -> dict:
    require(req.ctx, READ, "get_port")
    listing = parse_listing(req, port_keys(req.ctx))
    ip_filters = _ip_filters(listing.filters.pop("fixed_ips", []))
    filters = sql_filters(listing, COLUMNS)
    with req.cloud.db.reader() as s:
        found = service.list_ports(s, req.ctx, filters, ip_filters)
        allocations = service.allocations_of(s, [p.id for p in found])
        views = [port_view(req.ctx, p, allocations[p.id]) for p in found]
    return finish(req, "ports", views, listing)


def create_port(req: ApiRequest) -> Reply:
    """One port, or several (`{"ports": [...]}`, all or nothing: see bulk; a failed
    request keeps none of the addresses it took)."""
    items, is_bulk = bulk.bodies(req.json, "port", "ports")
    specs = []
    for body in items:
        schemas.check(schemas.PORT_CREATE, body)
        spec = port_spec(req, body, "create_port")
        spec["network_id"] = body["network_id"]
        spec["project_id"] = schemas.requested_owner(body)
        specs.append(spec)

    def work(s: Session) -> tuple[list[dict], set[str]]:
        ports = [service.create_port(s, req.ctx, req.cloud.settings, **spec) for spec in specs]
        hosts = enforcement.hosts_for_ports(s, [p.id for p in ports])
        return [render(req, s, port) for port in ports], hosts

    views, hosts = req.cloud.db.run(work)
    _enforce(req, hosts)
    return Reply(201, bulk.reply_body(views, "port", "ports", is_bulk))


def _enforce(req: ApiRequest, hosts: set[str]) -> None:
    """Send the hosts concerned their new filter state, after the commit (issue 14, sg)."""
    enforcement.send(req.cloud.db, AgentAPI(req.cloud.bus), req.ctx, hosts)


def show_port(req: ApiRequest, port_id: str) -> dict:
    require(req.ctx, READ, "get_port")
    with req.cloud.db.reader() as s:
        view = render(req, s, service.get_port(s, req.ctx, port_id))
    return {"port": select_fields(view, req.query.getlist("fields"))}


def update_port(req: ApiRequest, port_id: str) -> dict:
    body = schemas.unwrap(req.json, "port")
    schemas.check(schemas.PORT_UPDATE, body, readonly=schemas.PORT_READONLY)
    spec = port_spec(req, body, "update_port")
    def work(s: Session) -> tuple[dict, set[str]]:
        before = enforcement.hosts_for_ports(s, [port_id])  # its old groups and host
        port = service.update_port(s, req.ctx, port_id, dict(spec))
        return render(req, s, port), before | enforcement.hosts_for_ports(s, [port.id])

    view, hosts = req.cloud.db.run(work)
    _enforce(req, hosts)
    return {"port": view}


def delete_port(req: ApiRequest, port_id: str) -> Reply:
    """A port plugged into a server is first detached from it (the VM and the host lose
    it, the server's NIC map forgets it), as Neutron's port-deleted event makes Nova do."""
    with req.cloud.db.reader() as s:
        port = service.get_port(s, req.ctx, port_id)
        server = port.device_id if port.device_owner.startswith("compute:") else ""
    if server:
        from cirrus.api.compute.interfaces import detach_from_server

        detach_from_server(req, server, port_id)
    def work(s: Session) -> set[str]:
        hosts = enforcement.hosts_for_ports(s, [port_id])
        service.delete_port_if_exists(s, req.ctx, port_id)
        return hosts

    _enforce(req, req.cloud.db.run(work))
    return Reply(204)


ROUTES = [
    ("GET", "/v2.0/ports", list_ports),
    ("POST", "/v2.0/ports", create_port),
    ("GET", "/v2.0/ports/{port_id}", show_port),
    ("PUT", "/v2.0/ports/{port_id}", update_port),
    ("DELETE", "/v2.0/ports/{port_id}", delete_port),
]
