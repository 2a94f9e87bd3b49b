"""Routers (Neutron's `router`, `extraroute` and `ext-gw-mode`): records, interfaces, the
external gateway and static routes, with Neutron's checks and words.

A router's interfaces are ports on internal subnets (device_owner network:router_interface,
device_id the router, the subnet's gateway address when added by subnet); its gateway is a
port on a `router:external` network (network:router_gateway, project ''), as Neutron makes
them. Nothing here moves packets: `router_layout` is what a dataplane reads to build one.
Every write locks the router's row first, so two interface changes on one router (the
overlap check, the route check) cannot race.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from cirrus.config import Settings
from cirrus.context import RequestContext
from cirrus.db.models import FloatingIP, IPAllocation, Network, Port, Router, Subnet
from cirrus.network import ipam, quotas
from cirrus.network.access import (
    WRITE,
    column_filters,
    new_id,
    owner_for_create,
    owns,
    require,
    require_owner,
)
from cirrus.network.errors import (
    BadL3Request,
    GatewayInUseByFloatingIp,
    InvalidRoutes,
    NetworkNotFound,
    PolicyNotAuthorized,
    PortInUse,
    RouterInterfaceInUse,
    RouterInterfaceNotFound,
    RouterInterfaceNotFoundForSubnet,
    RouterInUse,
    RouterNotFound,
    RoutesExhausted,
)
from cirrus.network.networks import get_network
from cirrus.network.ports import (
    ROUTER_GATEWAY,
    ROUTER_INTERFACE,
    allocations_of,
    create_device_port,
    delete_port,
    get_port,
)
from cirrus.network.subnets import get_subnet, network_subnets

MAX_ROUTES = 30  # Neutron's max_routes
UPDATABLE = ("name", "description", "admin_state_up", "tags")


# ---------------------------------------------------------------- reading


def get_router(s: Session, ctx: RequestContext, router_id: str, *, lock: bool = False) -> Router:
    """The router if the caller's project owns it (or an admin asks); RouterNotFound."""
    query = select(Router).where(Router.id == router_id)
    router = s.scalar(query.with_for_update() if lock else query)
    if router is None or not owns(ctx, router.project_id):
        raise RouterNotFound(router_id)
    return router


def list_routers(s: Session, ctx: RequestContext, filters: dict[str, list]) -> list[Router]:
    query = select(Router).where(*column_filters(Router, filters))
    if not ctx.is_admin:
        query = query.where(Router.project_id == ctx.project_id)
    return list(s.scalars(query.order_by(Router.created_at, Router.id)))


def interface_ports(s: Session, router_ids: list[str]) -> dict[str, list[Port]]:
    """Each router's interface ports, oldest first, in one query."""
    result: dict[str, list[Port]] = {rid: [] for rid in router_ids}
    if router_ids:
        rows = s.scalars(select(Port).where(Port.device_id.in_(router_ids),
                                            Port.device_owner == ROUTER_INTERFACE)
                         .order_by(Port.created_at, Port.id))
        for port in rows:
            result[port.device_id].append(port)
    return result


def gateway_ips(s: Session, routers: list[Router]) -> dict[str, list[IPAllocation]]:
    """Each router's gateway addresses (external_fixed_ips), by router id."""
    by_port = allocations_of(s, [r.gw_port_id for r in routers if r.gw_port_id])
    return {r.id: by_port.get(r.gw_port_id, []) if r.gw_port_id else [] for r in routers}


@dataclass(frozen=True)
class Interface:
    port_id: str
    network_id: str
    mac_address: str
    addresses: tuple[tuple[str, str, str], ...]  # (subnet_id, cidr, ip_address)


@dataclass(frozen=True)
class FloatingAddress:
    floating_ip_address: str
    fixed_ip_address: str
    fixed_port_id: str


@dataclass(frozen=True)
class RouterLayout:
    """What a dataplane needs to build one router: its interfaces, its gateway (None
    without one), SNAT, static routes and the floating IPs it translates."""

    router_id: str
    admin_state_up: bool
    interfaces: tuple[Interface, ...]
    gateway: Interface | None
    enable_snat: bool
    routes: tuple[tuple[str, str], ...]  # (destination, nexthop)
    floating_ips: tuple[FloatingAddress, ...]


def router_layout(s: Session, router_id: str) -> RouterLayout:
    """A router as plain data, from the database (internal: no policy)."""
    router = s.get_one(Router, router_id)
    ports = list(interface_ports(s, [router.id])[router.id])
    gw_port = s.get(Port, router.gw_port_id) if router.gw_port_id else None
    every = [*ports, *([gw_port] if gw_port else [])]
    allocations = allocations_of(s, [p.id for p in every])
    cidrs = dict(s.execute(select(Subnet.id, Subnet.cidr).where(
        Subnet.id.in_({a.subnet_id for rows in allocations.values() for a in rows}))).all())

    def interface(port: Port) -> Interface:
        return Interface(port.id, port.network_id, port.mac_address, tuple(
            (a.subnet_id, cidrs[a.subnet_id], a.ip_address) for a in allocations[port.id]))

    fips = s.scalars(select(FloatingIP).where(FloatingIP.router_id == router.id)
                     .order_by(FloatingIP.floating_ip_address))
    return RouterLayout(
        router.id, router.admin_state_up, tuple(interface(p) for p in ports),
        interface(gw_port) if gw_port else None, router.enable_snat,
        tuple((r["destination"], r["nexthop"]) for r in router.routes or []),
        tuple(FloatingAddress(f.floating_ip_address, f.fixed_ip_address or "",
                              f.fixed_port_id or "") for f in fips))


# ---------------------------------------------------------------- create, update, delete


def create_router(s: Session, ctx: RequestContext, settings: Settings, spec: dict) -> Router:
    """A new router from model-named attributes; `gateway` is the external_gateway_info
    body (None or {} for none)."""
    require(ctx, WRITE, "create_router")
    owner = owner_for_create(ctx, spec.get("project_id"))
    quotas.check(s, settings, owner, {"router": 1})
    router = Router(id=new_id(), project_id=owner, name=spec.get("name", ""),
                    description=spec.get("description", ""),
                    admin_state_up=spec.get("admin_state_up", True), status="ACTIVE",
                    enable_snat=True, routes=[], tags=spec.get("tags") or [])
    s.add(router)
    s.flush()
    quotas.check(s, settings, owner, {"router": 1}, already_added=True)
    if spec.get("gateway"):
        _set_gateway(s, ctx, router, spec["gateway"], "create_router")
    return router


def update_router(s: Session, ctx: RequestContext, router_id: str, changes: dict) -> Router:
    router = get_router(s, ctx, router_id, lock=True)
    require_owner(ctx, router.project_id, "update_router")
    if "gateway" in changes:
        _set_gateway(s, ctx, router, changes["gateway"] or {}, "update_router")
    if "routes" in changes:
        router.routes = _check_routes(s, router, changes["routes"] or [])
    for key in UPDATABLE:
        if key in changes:
            setattr(router, key, changes[key])
    router.revision_number += 1
    s.flush()
    return router


def delete_router(s: Session, ctx: RequestContext, router_id: str) -> None:
    """RouterInUse (409) while it has interfaces; its gateway goes with it."""
    router = get_router(s, ctx, router_id, lock=True)
    require_owner(ctx, router.project_id, "delete_router")
    if interface_ports(s, [router.id])[router.id]:
        raise RouterInUse(router.id)
    _clear_gateway(s, router)
    s.delete(router)
    s.flush()


# ---------------------------------------------------------------- the external gateway


def _set_gateway(s: Session, ctx: RequestContext, router: Router, info: dict,
                 action: str) -> None:
    """Set, change or clear (no network_id) the external gateway. enable_snat and
    external_fixed_ips are admin-only, as Neutron's policy has them."""
    for key in ("enable_snat", "external_fixed_ips"):
        if key in info and not ctx.is_admin:
            raise PolicyNotAuthorized(f"{action}:external_gateway_info:{key}")
    network_id = info.get("network_id")
    if not network_id:
        _clear_gateway(s, router)
        router.enable_snat = True
        return
    network = s.get(Network, network_id)
    if network is None or not (owns(ctx, network.project_id) or network.shared
                               or network.external):
        raise NetworkNotFound(network_id)
    if not network.external:
        raise BadL3Request("router", f"Network {network_id} is not an external network")
    fixed_ips = info.get("external_fixed_ips")
    if router.gw_network_id != network.id or fixed_ips is not None:
        _clear_gateway(s, router, keep_for=network.id)
        _make_gateway_port(s, router, network, fixed_ips)
    router.enable_snat = bool(info.get("enable_snat", True))


def _make_gateway_port(s: Session, router: Router, network: Network,
                       fixed_ips: list[dict] | None) -> None:
    if not network_subnets(s, network.id):
        raise BadL3Request("router", f"No IPs available for external network {network.id}")
    port = create_device_port(s, network, project_id="", device_id=router.id,
                              device_owner=ROUTER_GATEWAY, fixed_ips=fixed_ips or None)
    router.gw_port_id, router.gw_network_id = port.id, network.id


def _clear_gateway(s: Session, router: Router, keep_for: str | None = None) -> None:
    """Remove the gateway port. Refused while floating IPs on its external network go
    through this router, unless the new gateway (`keep_for`) is on the same network."""
    if router.gw_port_id is None:
        return
    if keep_for != router.gw_network_id and s.scalar(
            select(FloatingIP.id).where(FloatingIP.router_id == router.id).limit(1)):
        raise GatewayInUseByFloatingIp(router.id, router.gw_network_id or "")
    delete_port(s, router.gw_port_id)
    router.gw_port_id = router.gw_network_id = None


# ---------------------------------------------------------------- static routes


def _connected_cidrs(s: Session, router: Router) -> list[ipam.IPNetwork]:
    ports = [p.id for p in interface_ports(s, [router.id])[router.id]]
    if router.gw_port_id:
        ports.append(router.gw_port_id)
    if not ports:
        return []
    subnet_ids = select(IPAllocation.subnet_id).where(IPAllocation.port_id.in_(ports))
    return [ipaddress.ip_network(c) for c in s.scalars(
        select(Subnet.cidr).where(Subnet.id.in_(subnet_ids)))]


def _router_addresses(s: Session, router: Router) -> set[str]:
    ports = [p.id for p in interface_ports(s, [router.id])[router.id]]
    ports += [router.gw_port_id] if router.gw_port_id else []
    return {a.ip_address for rows in allocations_of(s, ports).values() for a in rows}


def _check_routes(s: Session, router: Router, routes: list[dict]) -> list[dict[str, str]]:
    """Neutron's extraroute checks: at most MAX_ROUTES, no duplicates, each nexthop on a
    subnet the router is connected to and not one of the router's own addresses."""
    if len(routes) > MAX_ROUTES:
        raise RoutesExhausted(router.id, MAX_ROUTES)
    connected = _connected_cidrs(s, router)
    own = _router_addresses(s, router)
    result: list[dict[str, str]] = []
    for route in routes:
        try:
            destination = ipaddress.ip_network(route["destination"], strict=True)
            nexthop = ipaddress.ip_address(route["nexthop"])
        except (KeyError, TypeError, ValueError):
            raise InvalidRoutes([route], "the destination must be a CIDR without host bits "
                                "and the nexthop an IP address") from None
        if destination.version != nexthop.version:
            raise InvalidRoutes([route], "the nexthop and destination are not of the same "
                                "IP version")
        canonical = {"destination": str(destination), "nexthop": str(nexthop)}
        if canonical in result:
            raise BadL3Request("router", f"Duplicate hostroute '{route}'")
        if not any(nexthop in net for net in connected):
            raise InvalidRoutes([route], "the nexthop is not connected with router")
        if str(nexthop) in own:
            raise InvalidRoutes([route], "the nexthop is used by router")
        result.append(canonical)
    return result


# ---------------------------------------------------------------- interfaces


def _interface_info(router: Router, port: Port, subnet_ids: list[str]) -> dict:
    return {"id": router.id, "tenant_id": router.project_id, "project_id": router.project_id,
            "port_id": port.id, "network_id": port.network_id,
            "subnet_id": subnet_ids[0] if subnet_ids else None, "subnet_ids": subnet_ids}


def _check_overlap(s: Session, router: Router, new_subnets: list[Subnet]) -> None:
    """Two interfaces of one router may not be on overlapping subnets (Neutron's 400)."""
    ports = [p.id for p in interface_ports(s, [router.id])[router.id]]
    if not ports:
        return
    attached_ids = select(IPAllocation.subnet_id).where(IPAllocation.port_id.in_(ports))
    attached = list(s.scalars(select(Subnet).where(Subnet.id.in_(attached_ids))))
    for new in new_subnets:
        for old in attached:
            if old.id == new.id:
                raise BadL3Request("router", f"Router already has a port on subnet {new.id}")
            if ipaddress.ip_network(old.cidr).overlaps(ipaddress.ip_network(new.cidr)):
                raise BadL3Request("router", f"Cidr {new.cidr} of subnet {new.id} overlaps "
                                   f"with cidr {old.cidr} of subnet {old.id}")


def add_interface(s: Session, ctx: RequestContext, settings: Settings, router_id: str,
                  body: dict) -> dict:
    """PUT .../add_router_interface with subnet_id (a new port holding the subnet's gateway
    address) or port_id (the caller's unused port becomes the interface)."""
    router = get_router(s, ctx, router_id, lock=True)
    require_owner(ctx, router.project_id, "add_router_interface")
    subnet_id, port_id = body.get("subnet_id") or "", body.get("port_id") or ""
    if bool(subnet_id) == bool(port_id):
        raise BadL3Request("router", "Either subnet_id or port_id must be specified"
                           if not subnet_id else "Cannot specify both subnet-id and port-id")
    if port_id:
        port, subnet_ids = _attach_port(s, ctx, router, port_id)
    else:
        port, subnet_ids = _attach_subnet(s, ctx, settings, router, subnet_id)
    router.revision_number += 1
    return _interface_info(router, port, subnet_ids)


def _attach_port(s: Session, ctx: RequestContext, router: Router,
                 port_id: str) -> tuple[Port, list[str]]:
    port = get_port(s, ctx, port_id)
    if not owns(ctx, port.project_id):
        raise PolicyNotAuthorized("add_router_interface")
    if port.device_id or port.device_owner:
        raise PortInUse(port.id, port.network_id, port.device_id or port.device_owner)
    allocations = allocations_of(s, [port.id])[port.id]
    if not allocations:
        raise BadL3Request("router", "Router port must have at least one fixed IP")
    subnets = [s.get_one(Subnet, a.subnet_id) for a in allocations]
    if sum(1 for sn in subnets if sn.ip_version == 4) > 1:
        raise BadL3Request("router", "Cannot have multiple IPv4 subnets on router port")
    _check_overlap(s, router, subnets)
    port.device_id, port.device_owner, port.status = router.id, ROUTER_INTERFACE, "ACTIVE"
    port.revision_number += 1
    s.flush()
    return port, [sn.id for sn in subnets]


def _attach_subnet(s: Session, ctx: RequestContext, settings: Settings, router: Router,
                   subnet_id: str) -> tuple[Port, list[str]]:
    subnet = get_subnet(s, ctx, subnet_id)
    network = get_network(s, ctx, subnet.network_id)
    if not (owns(ctx, network.project_id) or network.shared):
        raise PolicyNotAuthorized("add_router_interface")
    if not subnet.gateway_ip:
        raise BadL3Request("router", "Subnet for router interface must have a gateway IP")
    _check_overlap(s, router, [subnet])
    quotas.check(s, settings, router.project_id, {"port": 1})
    port = create_device_port(
        s, network, project_id=router.project_id, device_id=router.id,
        device_owner=ROUTER_INTERFACE,
        fixed_ips=[{"subnet_id": subnet.id, "ip_address": subnet.gateway_ip}])
    quotas.check(s, settings, router.project_id, {"port": 1}, already_added=True)
    return port, [subnet.id]


def remove_interface(s: Session, ctx: RequestContext, router_id: str, body: dict) -> dict:
    """PUT .../remove_router_interface by subnet_id or port_id: the interface's port is
    deleted (also one the user made, as Neutron does). Refused (409) while floating IPs or
    static routes need it."""
    router = get_router(s, ctx, router_id, lock=True)
    require_owner(ctx, router.project_id, "remove_router_interface")
    subnet_id, port_id = body.get("subnet_id") or "", body.get("port_id") or ""
    if not subnet_id and not port_id:
        raise BadL3Request("router", "Either subnet_id or port_id must be specified")
    ports = interface_ports(s, [router.id])[router.id]
    allocations = allocations_of(s, [p.id for p in ports])
    if port_id:
        port = next((p for p in ports if p.id == port_id), None)
        if port is None:
            raise RouterInterfaceNotFound(router.id, port_id)
        subnet_ids = [a.subnet_id for a in allocations[port.id]]
        if subnet_id and subnet_id not in subnet_ids:
            raise BadL3Request("router", f"Subnet {subnet_id} does not match the subnets of "
                               f"port {port_id}")
    else:
        get_subnet(s, ctx, subnet_id)
        port = next((p for p in ports
                     if any(a.subnet_id == subnet_id for a in allocations[p.id])), None)
        if port is None:
            raise RouterInterfaceNotFoundForSubnet(router.id, subnet_id)
        subnet_ids = [subnet_id]
    for sid in subnet_ids:
        _check_interface_unused(s, router, sid)
    remaining = [a for a in allocations[port.id] if a.subnet_id not in subnet_ids]
    if remaining:
        for allocation in allocations[port.id]:
            if allocation.subnet_id in subnet_ids:
                s.delete(allocation)
    else:
        delete_port(s, port.id)
    router.revision_number += 1
    s.flush()
    return _interface_info(router, port, subnet_ids)


def _check_interface_unused(s: Session, router: Router, subnet_id: str) -> None:
    subnet = s.get_one(Subnet, subnet_id)
    cidr = ipaddress.ip_network(subnet.cidr)
    fixed = s.scalars(select(FloatingIP.fixed_ip_address).where(
        FloatingIP.router_id == router.id, FloatingIP.fixed_ip_address.is_not(None)))
    if any(ipaddress.ip_address(address) in cidr for address in fixed if address):
        raise RouterInterfaceInUse(router.id, subnet_id, "floating IPs")
    if any(ipaddress.ip_address(r["nexthop"]) in cidr for r in router.routes or []):
        raise RouterInterfaceInUse(router.id, subnet_id, "routes")


def routers_for_subnet(s: Session, external_network_id: str, subnet_id: str) -> list[str]:
    """Routers with a gateway on `external_network_id` and an interface on `subnet_id`
    (what a floating IP needs to reach a fixed address), oldest first."""
    interface_ids = select(IPAllocation.port_id).where(IPAllocation.subnet_id == subnet_id)
    router_ids = select(Port.device_id).where(Port.id.in_(interface_ids),
                                              Port.device_owner == ROUTER_INTERFACE)
    return list(s.scalars(select(Router.id).where(
        Router.id.in_(router_ids), Router.gw_network_id == external_network_id)
        .order_by(Router.created_at, Router.id)))
