"""Floating IPs as Nova's proxies show and use them (os-floating-ips, os-floating-ip-pools,
the addFloatingIp/removeFloatingIp server actions): the network service's floating IPs
under nova-network's names (`ip`, `pool`, `fixed_ip`, `instance_id`), with Nova's errors.
A pool is an external network, named by its name (or id)."""

from __future__ import annotations

import ipaddress
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cirrus.config import Settings
from cirrus.context import RequestContext
from cirrus.db.models import FloatingIP, Network, Port
from cirrus.errors import BadRequest, Conflict, Forbidden, NotFound
from cirrus.network import floating_ips
from cirrus.network.access import network_visible
from cirrus.network.errors import IpAddressGenerationFailure, OverQuota
from cirrus.network.ports import allocations_of


def pools(s: Session, ctx: RequestContext) -> list[str]:
    """The names of the external networks the caller sees."""
    return list(s.scalars(select(Network.name).where(
        Network.external.is_(True), network_visible(ctx)).order_by(Network.created_at)))


def views(s: Session, fips: list[FloatingIP]) -> list[dict[str, Any]]:
    networks = {n.id: n.name for n in s.scalars(select(Network).where(
        Network.id.in_({f.floating_network_id for f in fips})))}
    ports = {p.id: p for p in s.scalars(select(Port).where(
        Port.id.in_({f.fixed_port_id for f in fips if f.fixed_port_id})))}

    def instance(fip: FloatingIP) -> str | None:
        port = ports.get(fip.fixed_port_id or "")
        return port.device_id if port and port.device_owner.startswith("compute:") else None

    return [{"id": f.id, "ip": f.floating_ip_address, "pool": networks.get(f.floating_network_id),
             "fixed_ip": f.fixed_ip_address, "instance_id": instance(f)} for f in fips]


def get(s: Session, ctx: RequestContext, fip_id: str) -> FloatingIP:
    try:
        return floating_ips.get_floatingip(s, ctx, fip_id)
    except NotFound:
        raise NotFound(f"Floating IP not found for ID {fip_id}") from None


def by_address(s: Session, ctx: RequestContext, address: str) -> FloatingIP:
    try:
        canonical = str(ipaddress.ip_address(address))
    except ValueError:
        raise NotFound("floating IP not found") from None
    found = [f for f in floating_ips.list_floatingips(s, ctx, {}) if
             f.floating_ip_address == canonical]
    if not found:
        raise NotFound("floating IP not found")
    return found[0]


def allocate(s: Session, ctx: RequestContext, settings: Settings, pool: str | None) -> FloatingIP:
    """A floating IP from `pool` (an external network's name or id; None: the first one)."""
    candidates = [n for n in s.scalars(select(Network).where(
        Network.external.is_(True), network_visible(ctx)).order_by(Network.created_at))
        if pool is None or pool in (n.name, n.id)]
    if not candidates:
        raise NotFound("Floating IP pool not found.")
    try:
        return floating_ips.create_floatingip(
            s, ctx, settings, {"floating_network_id": candidates[0].id})
    except OverQuota:
        raise Forbidden("Maximum number of floating IPs exceeded") from None
    except IpAddressGenerationFailure:
        raise NotFound(f"No more floating IPs in pool {candidates[0].name}.") from None


def associate(s: Session, ctx: RequestContext, fip: FloatingIP, server_id: str,
              port_ids: list[str], fixed_address: str | None) -> None:
    """addFloatingIp: to `fixed_address` of one of the server's ports, or to the first
    port with an IPv4 address. Moves it if it was associated elsewhere, as Nova does."""
    allocations = allocations_of(s, port_ids)
    choices = [(pid, a.ip_address) for pid in port_ids for a in allocations[pid]
               if ipaddress.ip_address(a.ip_address).version == 4]
    if fixed_address is not None:
        choices = [c for c in choices if c[1] == fixed_address]
        if not choices:
            raise BadRequest("Specified fixed address not assigned to instance")
    if not choices:
        raise BadRequest("No fixed IPs associated to instance")
    port_id, address = choices[0]
    try:
        floating_ips.update_floatingip(s, ctx, fip.id, {"port_id": port_id,
                                                        "fixed_ip_address": address})
    except (BadRequest, NotFound, Conflict) as exc:
        raise BadRequest(f"Unable to associate floating IP {fip.floating_ip_address} to fixed "
                         f"IP {address} for instance {server_id}. Error: {exc.message}") from None


def disassociate(s: Session, ctx: RequestContext, fip: FloatingIP, server_id: str,
                 port_ids: list[str]) -> None:
    """removeFloatingIp: 409 unless it is associated with this server."""
    if fip.fixed_port_id not in port_ids:
        raise Conflict(f"Floating IP {fip.floating_ip_address} is not associated with instance "
                       f"{server_id}.")
    floating_ips.update_floatingip(s, ctx, fip.id, {"port_id": None})
