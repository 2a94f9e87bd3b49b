"""Floating IPs (Neutron's `router` extension): an address of a `router:external` network,
held by a port there (device_owner network:floatingip, project ''), translated 1:1 to a
fixed address of a port behind a router that has its gateway on that network.

Association is checked as Neutron checks it, in its words: the port's owner, which of its
fixed addresses (an IPv4 one; named when it has several), a router that connects the
address's subnet to the floating IP's network (404 ExternalGatewayForFloatingIPNotFound
otherwise), and one floating IP per fixed address and network (409; a unique key decides
between concurrent requests). Deleting the port disassociates (cirrus.network.ports).
"""

from __future__ import annotations

import ipaddress

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cirrus.config import Settings
from cirrus.context import RequestContext
from cirrus.db.models import FloatingIP, IPAllocation, Port
from cirrus.network import quotas
from cirrus.network.access import WRITE, column_filters, new_id, owner_for_create, owns, require
from cirrus.network.errors import (
    BadL3Request,
    ExternalGatewayForFloatingIPNotFound,
    FloatingIPNotFound,
    FloatingIPPortAlreadyAssociated,
    PolicyNotAuthorized,
)
from cirrus.network.networks import get_network
from cirrus.network.ports import (
    FLOATINGIP,
    allocations_of,
    create_device_port,
    delete_port,
    get_port,
)
from cirrus.network.routers import routers_for_subnet
from cirrus.network.subnets import network_subnets

UPDATABLE = ("description", "tags")


def get_floatingip(s: Session, ctx: RequestContext, fip_id: str) -> FloatingIP:
    """The floating IP if the caller's project owns it (or an admin asks); 404 otherwise."""
    fip = s.get(FloatingIP, fip_id)
    if fip is None or not owns(ctx, fip.project_id):
        raise FloatingIPNotFound(fip_id)
    return fip


def list_floatingips(s: Session, ctx: RequestContext, filters: dict[str, list]) -> list[FloatingIP]:
    query = select(FloatingIP).where(*column_filters(FloatingIP, filters))
    if not ctx.is_admin:
        query = query.where(FloatingIP.project_id == ctx.project_id)
    return list(s.scalars(query.order_by(FloatingIP.created_at, FloatingIP.id)))


def create_floatingip(s: Session, ctx: RequestContext, settings: Settings, spec: dict) -> FloatingIP:
    """A floating IP on spec["floating_network_id"], associated at once if spec names a
    port. `floating_ip_address` is admin-only; `subnet_id` picks the external subnet."""
    require(ctx, WRITE, "create_floatingip")
    owner = owner_for_create(ctx, spec.get("project_id"))
    network = get_network(s, ctx, spec["floating_network_id"])
    if not network.external:
        raise BadL3Request("floatingip", f"Network {network.id} is not a valid external "
                           "network")
    address, subnet_id = spec.get("floating_ip_address"), spec.get("subnet_id")
    if address is not None and not ctx.is_admin:
        raise PolicyNotAuthorized("create_floatingip:floating_ip_address")
    v4 = [sn for sn in network_subnets(s, network.id) if sn.ip_version == 4]
    if not v4:
        raise BadL3Request("floatingip", f"Network {network.id} does not contain any IPv4 "
                           "subnet")
    quotas.check(s, settings, owner, {"floatingip": 1})
    fip = FloatingIP(id=new_id(), project_id=owner, description=spec.get("description", ""),
                     floating_network_id=network.id, status="DOWN",
                     tags=spec.get("tags") or [])
    wanted: dict[str, str] = {}
    if subnet_id is not None:
        wanted["subnet_id"] = subnet_id
    if address is not None:
        wanted["ip_address"] = address
    port = create_device_port(s, network, project_id="", device_id=fip.id,
                              device_owner=FLOATINGIP, fixed_ips=[wanted] if wanted else None,
                              subnets=v4, status="DOWN")
    allocation = allocations_of(s, [port.id])[port.id][0]
    if ipaddress.ip_address(allocation.ip_address).version != 4:
        raise BadL3Request("floatingip", f"Subnet {allocation.subnet_id} is not an IPv4 "
                           "subnet")
    fip.floating_port_id, fip.floating_subnet_id = port.id, allocation.subnet_id
    fip.floating_ip_address = allocation.ip_address
    s.add(fip)
    s.flush()
    quotas.check(s, settings, owner, {"floatingip": 1}, already_added=True)
    if spec.get("port_id"):
        _associate(s, ctx, fip, spec["port_id"], spec.get("fixed_ip_address"))
    return fip


def update_floatingip(s: Session, ctx: RequestContext, fip_id: str, changes: dict) -> FloatingIP:
    """Associate (`port_id`, optional `fixed_ip_address`), disassociate (`port_id`: null),
    or change the description or tags."""
    fip = get_floatingip(s, ctx, fip_id)
    require(ctx, WRITE, "update_floatingip")
    if "port_id" in changes:
        if changes["port_id"]:
            _associate(s, ctx, fip, changes["port_id"], changes.get("fixed_ip_address"))
        else:
            _disassociate(fip)
    elif changes.get("fixed_ip_address") is not None and fip.fixed_port_id:
        _associate(s, ctx, fip, fip.fixed_port_id, changes["fixed_ip_address"])
    for key in UPDATABLE:
        if key in changes:
            setattr(fip, key, changes[key])
    fip.revision_number += 1
    s.flush()
    return fip


def delete_floatingip(s: Session, ctx: RequestContext, fip_id: str) -> None:
    fip = get_floatingip(s, ctx, fip_id)
    require(ctx, WRITE, "delete_floatingip")
    s.delete(fip)
    s.flush()
    delete_port(s, fip.floating_port_id)


def _disassociate(fip: FloatingIP) -> None:
    fip.fixed_port_id = fip.fixed_ip_address = fip.router_id = None
    fip.status = "DOWN"


def _fixed_address(port: Port, allocations: list[IPAllocation],
                   requested: str | None) -> IPAllocation:
    """The fixed address a floating IP is translated to: the one asked for (it must be the
    port's), else the port's only IPv4 address."""
    if requested is not None:
        try:
            wanted = str(ipaddress.ip_address(requested))
        except ValueError:
            raise BadL3Request("floatingip", f"'{requested}' is not a valid IP address") from None
        match = next((a for a in allocations if a.ip_address == wanted), None)
        if match is None:
            raise BadL3Request("floatingip", f"Port {port.id} does not have fixed ip {wanted}")
        if ipaddress.ip_address(wanted).version != 4:
            raise BadL3Request("floatingip", f"Cannot process floating IP association with "
                               f"{wanted}, since that is not an IPv4 address")
        return match
    v4 = [a for a in allocations if ipaddress.ip_address(a.ip_address).version == 4]
    if not v4:
        raise BadL3Request("floatingip", f"Cannot add floating IP to port {port.id} that has "
                           "no fixed IPv4 addresses")
    if len(v4) > 1:
        raise BadL3Request("floatingip", f"Port {port.id} has multiple fixed IPv4 addresses. "
                           "Must provide a specific IPv4 address when assigning a floating IP")
    return v4[0]


def _associate(s: Session, ctx: RequestContext, fip: FloatingIP, port_id: str,
               requested: str | None) -> None:
    port = get_port(s, ctx, port_id)
    if port.project_id != fip.project_id and not ctx.is_admin:
        raise BadL3Request("floatingip", f"Cannot create floating IP and bind it to Port "
                           f"{port.id}, since that port is owned by a different tenant")
    fixed = _fixed_address(port, allocations_of(s, [port.id])[port.id], requested)
    routers = routers_for_subnet(s, fip.floating_network_id, fixed.subnet_id)
    if not routers:
        raise ExternalGatewayForFloatingIPNotFound(fip.floating_network_id, fixed.subnet_id,
                                                   port.id)
    taken = s.scalar(select(FloatingIP.id).where(
        FloatingIP.fixed_port_id == port.id, FloatingIP.fixed_ip_address == fixed.ip_address,
        FloatingIP.id != fip.id))
    if taken is not None:
        raise _already(fip, port.id, fixed.ip_address)
    # The savepoint first: beginning it flushes, and the change must be inside it.
    savepoint = s.begin_nested()
    try:
        fip.fixed_port_id, fip.fixed_ip_address = port.id, fixed.ip_address
        fip.router_id, fip.status = routers[0], "ACTIVE"
        s.flush()
    except IntegrityError:
        savepoint.rollback()
        raise _already(fip, port.id, fixed.ip_address) from None
    savepoint.commit()


def _already(fip: FloatingIP, port_id: str, fixed_ip: str) -> FloatingIPPortAlreadyAssociated:
    return FloatingIPPortAlreadyAssociated(fip.floating_ip_address, fip.id, port_id, fixed_ip,
                                           fip.floating_network_id)
