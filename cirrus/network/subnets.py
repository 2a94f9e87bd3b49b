"""Subnets: the address ranges of a network, with everything a guest is told about them.

Checked as Neutron checks them, in Neutron's words: the cidr (host bits cleared, as
Neutron corrects them), its IP version, the gateway (default: the first host; `null`: none;
Cirrus also refuses one outside the cidr, since guests get static routes to it),
allocation pools (inside the cidr, not overlapping, not holding the gateway), DNS servers
and host routes (valid, of the subnet's version, no duplicates, Neutron's limits), IPv6
modes (SLAAC needs a /64), and no overlap with another subnet of the same network.
"""

from __future__ import annotations

import ipaddress

from sqlalchemy import ColumnElement, delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cirrus.config import Settings
from cirrus.context import RequestContext
from cirrus.db.models import IPAllocation, Network, Port, Subnet
from cirrus.network import ipam, quotas, subnetpools
from cirrus.network.access import (
    WRITE,
    column_filters,
    network_visible,
    new_id,
    owner_for_create,
    owns,
    require,
    require_owner,
)
from cirrus.network.dhcp.model import DHCP_OWNER
from cirrus.network.errors import (
    BadAttribute,
    BadL3Request,
    InvalidInput,
    SubnetInUse,
    SubnetNotFound,
)
from cirrus.network.networks import bump_revision, get_network

MAX_DNS_NAMESERVERS = 5  # Neutron's max_dns_nameservers
MAX_HOST_ROUTES = 20  # Neutron's max_subnet_host_routes
IPV6_MODES = ("slaac", "dhcpv6-stateful", "dhcpv6-stateless")
ROUTER_OWNER = "network:router_interface"  # and its _distributed / _ha variants
UPDATABLE = ("name", "description", "gateway_ip", "allocation_pools", "dns_nameservers",
             "host_routes", "enable_dhcp", "tags")


def get_subnet(s: Session, ctx: RequestContext, subnet_id: str) -> Subnet:
    subnet = s.get(Subnet, subnet_id)
    if subnet is None or not _visible(s, ctx, subnet):
        raise SubnetNotFound(subnet_id)
    return subnet


def _visible(s: Session, ctx: RequestContext, subnet: Subnet) -> bool:
    if owns(ctx, subnet.project_id):
        return True
    return s.scalar(select(Network.id).where(Network.id == subnet.network_id,
                                             _subnets_shown(ctx))) is not None


def _subnets_shown(ctx: RequestContext) -> ColumnElement[bool]:
    """Networks whose subnets a project sees beyond its own: those of its networks (whoever
    made the subnet, as Neutron's network owner rule) and shared ones. Another project's
    external network's subnets stay hidden (Neutron's policy without
    subnet-external-network): its users reach them through routers and floating IPs."""
    if ctx.is_admin:
        return network_visible(ctx)
    return or_(Network.shared.is_(True), Network.project_id == ctx.project_id)


def list_subnets(s: Session, ctx: RequestContext, filters: dict[str, list]) -> list[Subnet]:
    query = select(Subnet).where(*column_filters(Subnet, filters))
    if not ctx.is_admin:
        visible_networks = select(Network.id).where(_subnets_shown(ctx))
        query = query.where(or_(Subnet.project_id == ctx.project_id,
                                Subnet.network_id.in_(visible_networks)))
    return list(s.scalars(query.order_by(Subnet.created_at, Subnet.id)))


def network_subnets(s: Session, network_id: str) -> list[Subnet]:
    return list(s.scalars(select(Subnet).where(Subnet.network_id == network_id)
                          .order_by(Subnet.created_at, Subnet.id)))


# ---------------------------------------------------------------- validation


def _same_version(version: int, address: ipam.IPAddress | ipam.IPNetwork, attribute: str,
                  text: object) -> None:
    if address.version != version:
        raise InvalidInput(f"{attribute} '{text}' does not match the ip_version '{version}'")


def _check_cidr(spec: dict) -> ipam.IPNetwork:
    net = ipam.parse_cidr(spec["cidr"])
    _same_version(spec["ip_version"], net, "cidr", spec["cidr"])
    if net.prefixlen == 0:
        raise InvalidInput("0 is not allowed as CIDR prefix length")
    if net.version == 6 and int(net.network_address) == 0:
        raise InvalidInput("IPv6 subnet '::' is not supported")
    return net


def _check_dhcp(net: ipam.IPNetwork, enable_dhcp: bool) -> None:
    if enable_dhcp and net.prefixlen > (30 if net.version == 4 else 126):
        raise InvalidInput("Subnet has a prefix length that is incompatible with DHCP "
                           "service enabled")


def _check_gateway(net: ipam.IPNetwork, gateway: object) -> str | None:
    if gateway is None:
        return None
    address = ipam.parse_address(gateway, "gateway_ip")
    _same_version(net.version, address, "gateway_ip", gateway)
    if not ipam.is_host_address(net, address):
        raise InvalidInput("Gateway is not valid on subnet")
    return str(address)


def _check_nameservers(version: int, servers: list, subnet_id: str) -> list[str]:
    if len(servers) > MAX_DNS_NAMESERVERS:
        raise BadAttribute("dns_nameservers", f"Unable to complete operation for {subnet_id}. "
                           "The number of DNS nameservers exceeds the limit "
                           f"{MAX_DNS_NAMESERVERS}")
    result: list[str] = []
    for server in servers:
        try:
            address = ipaddress.ip_address(server)
        except ValueError:
            raise InvalidInput(f"Error parsing dns address {server}") from None
        _same_version(version, address, "dns_nameserver", server)
        if str(address) in result:
            raise BadAttribute("dns_nameservers", f"Duplicate nameserver '{server}'")
        result.append(str(address))
    return result


def _check_routes(version: int, routes: list, subnet_id: str) -> list[dict[str, str]]:
    if len(routes) > MAX_HOST_ROUTES:
        raise BadAttribute("host_routes", f"Unable to complete operation for {subnet_id}. "
                           f"The number of host routes exceeds the limit {MAX_HOST_ROUTES}")
    result: list[dict[str, str]] = []
    for route in routes:
        try:
            destination = ipaddress.ip_network(route["destination"], strict=True)
            nexthop = ipaddress.ip_address(route["nexthop"])
        except (KeyError, TypeError, ValueError):
            raise InvalidInput(f"Invalid route: {route}") from None
        _same_version(version, nexthop, "nexthop", route["nexthop"])
        _same_version(version, destination, "destination", route["destination"])
        canonical = {"destination": str(destination), "nexthop": str(nexthop)}
        if canonical in result:
            raise BadAttribute("host_routes", f"Duplicate hostroute '{route}'")
        result.append(canonical)
    return result


def _check_ipv6_modes(net: ipam.IPNetwork, ra_mode: str | None, address_mode: str | None) -> None:
    if net.version == 4:
        for name, value in (("ipv6_ra_mode", ra_mode), ("ipv6_address_mode", address_mode)):
            if value is not None:
                raise InvalidInput(f"{name} is not valid when ip_version is 4")
        return
    if ra_mode and address_mode and ra_mode != address_mode:
        raise InvalidInput(f"ipv6_ra_mode set to '{ra_mode}' with ipv6_address_mode set to "
                           f"'{address_mode}' is not valid. If both attributes are set, they "
                           "must be the same value")
    if (ra_mode in ipam.AUTO_ADDRESS_MODES or address_mode in ipam.AUTO_ADDRESS_MODES) \
            and net.prefixlen != 64:
        raise InvalidInput(f"Invalid CIDR {net} for IPv6 address mode. OpenStack uses the "
                           "EUI-64 address format, which requires the prefix to be /64")


def _check_overlap(s: Session, network_id: str, net: ipam.IPNetwork, cidr_text: str) -> None:
    # A locking read: under MariaDB's repeatable read a plain one would still see the
    # snapshot of the transaction's first read, from before the network row was locked,
    # and miss a subnet another create committed meanwhile.
    others = s.scalars(select(Subnet).where(Subnet.network_id == network_id)
                       .order_by(Subnet.created_at, Subnet.id).with_for_update())
    for other in others:
        if ipaddress.ip_network(other.cidr).overlaps(net):
            raise InvalidInput(f"Requested subnet with cidr: {cidr_text} for network: "
                               f"{network_id} overlaps with another subnet")


# ---------------------------------------------------------------- records


def create_subnet(s: Session, ctx: RequestContext, settings: Settings, spec: dict) -> Subnet:
    require(ctx, WRITE, "create_subnet")
    network = get_network(s, ctx, spec["network_id"])
    require_owner(ctx, network.project_id, "create_subnet")
    owner = owner_for_create(ctx, spec.get("project_id"))
    # Serialise subnet creates on one network, so the overlap check cannot be raced.
    s.scalar(select(Network.id).where(Network.id == network.id).with_for_update())
    pool = subnetpools.resolve_pool(s, ctx, spec)
    if pool is not None:  # the cidr comes from the pool, whose row is now locked
        spec = {**spec, "cidr": subnetpools.allocate(s, pool, spec)}
    elif not spec.get("cidr"):
        raise BadL3Request("subnets", "a cidr must be specified in the absence of a subnet "
                           "pool")
    net = _check_cidr(spec)
    subnetpools.check_network_affinity(s, network.id, net.version, pool.id if pool else None)
    enable_dhcp = spec.get("enable_dhcp", True)
    _check_dhcp(net, enable_dhcp)
    gateway = _check_gateway(net, spec["gateway_ip"] if "gateway_ip" in spec
                             else ipam.default_gateway(net))
    ra_mode, address_mode = spec.get("ipv6_ra_mode"), spec.get("ipv6_address_mode")
    _check_ipv6_modes(net, ra_mode, address_mode)
    if (ra_mode or address_mode) and not enable_dhcp:
        raise InvalidInput("ipv6_ra_mode or ipv6_address_mode cannot be set when enable_dhcp "
                           "is set to False")
    pools = (ipam.check_pools(net, spec["allocation_pools"], gateway)
             if spec.get("allocation_pools") is not None else ipam.default_pools(net, gateway))
    subnet = Subnet(
        id=new_id(), network_id=network.id, project_id=owner, name=spec.get("name", ""),
        description=spec.get("description", ""), ip_version=net.version, cidr=str(net),
        gateway_ip=gateway, allocation_pools=pools,
        dns_nameservers=_check_nameservers(net.version, spec.get("dns_nameservers") or [],
                                           "new subnet"),
        host_routes=_check_routes(net.version, spec.get("host_routes") or [], "new subnet"),
        enable_dhcp=enable_dhcp, ipv6_ra_mode=ra_mode, ipv6_address_mode=address_mode,
        subnetpool_id=pool.id if pool else None, tags=spec.get("tags") or [])
    _check_overlap(s, network.id, net, spec["cidr"])
    quotas.check(s, settings, owner, {"subnet": 1})
    s.add(subnet)
    s.flush()
    quotas.check(s, settings, owner, {"subnet": 1}, already_added=True)
    bump_revision(s, network.id)
    return subnet


def update_subnet(s: Session, ctx: RequestContext, subnet_id: str, changes: dict) -> Subnet:
    subnet = get_subnet(s, ctx, subnet_id)
    require_owner(ctx, subnet.project_id, "update_subnet")
    net = ipaddress.ip_network(subnet.cidr)
    if "enable_dhcp" in changes and not subnet.enable_dhcp:
        _check_dhcp(net, changes["enable_dhcp"])
    if changes.get("enable_dhcp") is False and (subnet.ipv6_ra_mode or subnet.ipv6_address_mode):
        raise InvalidInput("ipv6_ra_mode or ipv6_address_mode cannot be set when enable_dhcp "
                           "is set to False")
    gateway = (_check_gateway(net, changes["gateway_ip"]) if "gateway_ip" in changes
               else subnet.gateway_ip)
    if "gateway_ip" in changes or "allocation_pools" in changes:
        pools = changes.get("allocation_pools", subnet.allocation_pools)
        changes["allocation_pools"] = ipam.check_pools(net, pools, gateway)
        changes["gateway_ip"] = gateway
    if "dns_nameservers" in changes:
        changes["dns_nameservers"] = _check_nameservers(net.version, changes["dns_nameservers"],
                                                        subnet.id)
    if "host_routes" in changes:
        changes["host_routes"] = _check_routes(net.version, changes["host_routes"], subnet.id)
    for key in UPDATABLE:
        if key in changes:
            setattr(subnet, key, changes[key])
    subnet.revision_number += 1
    return subnet


def delete_subnet(s: Session, ctx: RequestContext, subnet_id: str) -> None:
    """Delete a subnet no port has an address on (SubnetInUse otherwise; an allocation made
    concurrently is caught by its foreign key and reported the same way). On a SLAAC or
    DHCPv6-stateless subnet the addresses are the ports' EUI-64 ones, not handed out:
    Neutron removes them from the ports (router interfaces excepted) and deletes."""
    subnet = get_subnet(s, ctx, subnet_id)
    require_owner(ctx, subnet.project_id, "delete_subnet")
    if ipam.is_auto_address(subnet):
        auto_ports = select(Port.id).where(Port.network_id == subnet.network_id,
                                           ~Port.device_owner.startswith(ROUTER_OWNER))
        s.execute(delete(IPAllocation).where(IPAllocation.subnet_id == subnet.id,
                                             IPAllocation.port_id.in_(auto_ports))
                  .execution_options(synchronize_session=False))
    # DHCP ports lose their address on it, as in Neutron (cirrus.network.dhcp).
    dhcp_ports = select(Port.id).where(Port.network_id == subnet.network_id,
                                       Port.device_owner == DHCP_OWNER)
    s.execute(delete(IPAllocation).where(IPAllocation.subnet_id == subnet.id,
                                         IPAllocation.port_id.in_(dhcp_ports))
              .execution_options(synchronize_session=False))
    taken = s.scalar(select(IPAllocation.port_id).where(IPAllocation.subnet_id == subnet.id).limit(1))
    if taken is not None:
        raise SubnetInUse(subnet.id)
    network_id = subnet.network_id
    try:
        s.delete(subnet)
        s.flush()
    except IntegrityError:
        raise SubnetInUse(subnet_id) from None
    bump_revision(s, network_id)
