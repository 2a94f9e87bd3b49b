"""Ports: a MAC and fixed IPs on a network, bound to a device (a server) on a host.

`create_port`, `delete_port`, `update_binding`, `get_port` and `build_nics` are what the
compute code calls (session-level, no HTTP); the Neutron API calls the same functions.
A port's MAC is fa:16:3e plus three random octets, unique per network by a database
constraint (a collision is retried with another MAC); its addresses come from
cirrus.network.ipam, so no address is ever given twice. A port Cirrus cannot finish (no
address left, over quota) leaves nothing behind: the caller's transaction rolls back.
"""

from __future__ import annotations

import ipaddress
import random
import re
from collections.abc import Sequence

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from cirrus.config import Settings
from cirrus.context import RequestContext
from cirrus.db.models import FloatingIP, IPAllocation, Network, Port, Router, Subnet
from cirrus.network import ipam, quotas, security_groups
from cirrus.network.access import WRITE, can_use_network, column_filters, new_id, owns, require
from cirrus.network.errors import (
    AddressPairAndPortSecurityRequired,
    AddressPairInvalid,
    BadAttribute,
    InUse,
    InvalidInput,
    MacAddressInUse,
    NetworkNotFound,
    PolicyNotAuthorized,
    PortNotFound,
)
from cirrus.network.model import FixedIp, Nic, SubnetInfo
from cirrus.network.networks import get_network
from cirrus.network.savepoint import try_insert
from cirrus.network.subnets import network_subnets

MAC_PREFIX = "fa:16:3e"
MAC_ATTEMPTS = 16
_MAC = re.compile(r"^([0-9a-f]{2}[:-]){5}[0-9a-f]{2}$")
UNBOUND, BRIDGE = "unbound", "bridge"
# The OS's randomness: forked workers (and test frameworks that seed `random`) would
# otherwise draw the same MACs in the same order.
_random = random.SystemRandom()


def random_mac() -> str:
    return MAC_PREFIX + "".join(f":{_random.randrange(256):02x}" for _ in range(3))


def parse_mac(text: object) -> str:
    """A unicast MAC in lower-case colon form (Neutron refuses multicast and all-zero)."""
    value = str(text).strip().lower()
    if not _MAC.match(value):
        raise BadAttribute("mac_address", f"'{text}' is not a valid MAC address")
    value = value.replace("-", ":")
    if value == "00:00:00:00:00:00" or int(value[:2], 16) & 1:
        raise BadAttribute("mac_address", f"'{text}' is not a valid MAC address")
    return value


MAX_ADDRESS_PAIRS = 10  # Neutron's max_allowed_address_pair


def parse_address_pairs(pairs: list[dict], port_mac: str | None) -> list[dict]:
    """Checked allowed_address_pairs in canonical form: [{"ip_address", "mac_address"}],
    the port's MAC where none is given (Neutron's checks and words)."""
    if len(pairs) > MAX_ADDRESS_PAIRS:
        raise AddressPairInvalid(f"The number of allowed address pair exceeds the maximum "
                                 f"{MAX_ADDRESS_PAIRS}.", "AllowedAddressPairExhausted")
    result: list[dict] = []
    for pair in pairs:
        if not pair.get("ip_address"):
            raise AddressPairInvalid("AllowedAddressPair must contain ip_address",
                                     "AllowedAddressPairsMissingIP")
        text = str(pair["ip_address"])
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise BadAttribute("allowed_address_pairs",
                               f"'{text}' is not a valid IP address") from None
        ip = str(net.network_address) if net.prefixlen == net.max_prefixlen and "/" not in text \
            else str(net)
        mac = parse_mac(pair["mac_address"]) if pair.get("mac_address") else port_mac
        canonical = {"ip_address": ip, "mac_address": mac}
        if canonical in result:
            raise AddressPairInvalid(f"Request contains duplicate address pair: mac_address "
                                     f"{mac} ip_address {ip}.", "DuplicateAddressPairInRequest")
        result.append(canonical)
    return result


# ---------------------------------------------------------------- reading


def _visible(ctx: RequestContext, port: Port, network: Network | None) -> bool:
    """A project sees its ports and the ports others put on its networks."""
    return owns(ctx, port.project_id) or (network is not None and owns(ctx, network.project_id))


def get_port(s: Session, ctx: RequestContext, port_id: str) -> Port:
    """The port if the caller may see it; PortNotFound (404) otherwise."""
    port = s.get(Port, port_id)
    if port is None or not _visible(ctx, port, s.get(Network, port.network_id)):
        raise PortNotFound(port_id)
    return port


def list_ports(s: Session, ctx: RequestContext, filters: dict[str, list],
               ip_filters: Sequence[tuple[str, str]] = ()) -> list[Port]:
    """Visible ports matching column filters and fixed-IP filters ((key, value) with key
    ip_address, ip_address_substr or subnet_id, as `fixed_ips=ip_address=10.0.0.5`
    asks)."""
    query = select(Port).where(*column_filters(Port, filters))
    if not ctx.is_admin:
        own_networks = select(Network.id).where(Network.project_id == ctx.project_id)
        query = query.where(or_(Port.project_id == ctx.project_id,
                                Port.network_id.in_(own_networks)))
    for key, value in ip_filters:
        if key == "ip_address_substr":
            match = IPAllocation.ip_address.contains(value, autoescape=True)
        else:
            column = IPAllocation.ip_address if key == "ip_address" else IPAllocation.subnet_id
            match = column == value
        query = query.where(Port.id.in_(select(IPAllocation.port_id).where(match)))
    return list(s.scalars(query.order_by(Port.created_at, Port.id)))


def allocations_of(s: Session, port_ids: list[str]) -> dict[str, list[IPAllocation]]:
    """Each port's fixed IPs in the order they were given, in one query."""
    result: dict[str, list[IPAllocation]] = {pid: [] for pid in port_ids}
    if port_ids:
        rows = s.scalars(select(IPAllocation).where(IPAllocation.port_id.in_(port_ids))
                         .order_by(IPAllocation.created_at, IPAllocation.subnet_id))
        for row in rows:
            result[row.port_id].append(row)
    return result


# ---------------------------------------------------------------- writing


def _binding(port: Port, host_id: str | None) -> None:
    port.binding_host_id = host_id or None
    port.binding_vif_type = BRIDGE if host_id else UNBOUND
    port.status = "ACTIVE" if host_id and port.admin_state_up else "DOWN"


def _security_groups(s: Session, project_id: str, requested: list[str] | None,
                     port_security: bool, device_owner: str) -> list[str]:
    if requested is None:
        if not port_security or device_owner.startswith("network:"):
            return []
        return [security_groups.ensure_default_group(s, project_id).id]
    ids = security_groups.resolve_groups(s, project_id, requested)
    if ids and not port_security:
        raise InvalidInput("Port security must be enabled and port must have an IP address "
                           "in order to use security groups")
    return ids


def _check_device_owner(ctx: RequestContext, network: Network, device_owner: str,
                        action: str) -> None:
    if device_owner.startswith("network:") and not owns(ctx, network.project_id):
        raise PolicyNotAuthorized(f"{action}:device_owner")


def _check_fixed_ips_policy(ctx: RequestContext, network: Network, fixed_ips: list[dict] | None,
                            action: str) -> None:
    """On someone else's (shared) network a project may name subnets, not addresses."""
    if fixed_ips and not owns(ctx, network.project_id) \
            and any(f.get("ip_address") is not None for f in fixed_ips):
        raise PolicyNotAuthorized(f"{action}:fixed_ips:ip_address")


def _check_port_security_policy(ctx: RequestContext, network: Network,
                                port_security: bool | None, pairs: list[dict] | None,
                                action: str) -> None:
    """Neutron's policy: only the network's owner (or an admin) sets these on its ports."""
    if owns(ctx, network.project_id):
        return
    if port_security is not None:
        raise PolicyNotAuthorized(f"{action}:port_security_enabled")
    if pairs is not None:
        raise PolicyNotAuthorized(f"{action}:allowed_address_pairs")


def _insert_port(s: Session, port: Port, requested_mac: str | None) -> None:
    """Insert with a MAC unique on its network: another random one on a collision."""
    for _ in range(MAC_ATTEMPTS if requested_mac is None else 1):
        port.mac_address = requested_mac or random_mac()
        if try_insert(s, port):
            return
    if s.get(Network, port.network_id) is None:
        raise NetworkNotFound(port.network_id)
    raise MacAddressInUse(port.network_id, port.mac_address)


def create_port(s: Session, ctx: RequestContext, settings: Settings, *, network_id: str,
                fixed_ips: list[dict] | None = None, device_id: str = "",
                device_owner: str = "", name: str = "", host_id: str | None = None,
                mac_address: str | None = None, security_groups: list[str] | None = None,
                description: str = "", admin_state_up: bool = True,
                port_security_enabled: bool | None = None, project_id: str | None = None,
                tags: list[str] | None = None,
                allowed_address_pairs: list[dict] | None = None,
                check_quota: bool = True) -> Port:
    """A new port with its addresses (see ipam.allocate_for_port), quota and policy checked.

    `fixed_ips`: None for Neutron's default, [] for none, or [{"subnet_id"?,
    "ip_address"?}]. `security_groups`: ids or names; None for the project's default
    group. `host_id` binds it at once (callers outside the API only: the API lets only
    admins set binding:host_id). Raises cirrus.errors (409 IpAddressGenerationFailure with
    "No more IP addresses available on subnet <id> (<cidr>, <n> in use)", ...).
    `check_quota` False: a port the cloud makes for itself (a DHCP port), which the
    project's quota does not refuse (Neutron's agents make theirs so).
    """
    require(ctx, WRITE, "create_port")
    network = get_network(s, ctx, network_id)
    if not can_use_network(ctx, network):
        raise NetworkNotFound(network_id)
    owner = project_id or ctx.project_id or network.project_id
    if owner != ctx.project_id and not ctx.is_admin:
        raise BadAttribute("project_id", "Specifying 'project_id' other than the authenticated "
                           "project in request is not allowed for the current user")
    if mac_address is not None and not owns(ctx, network.project_id):
        raise PolicyNotAuthorized("create_port:mac_address")
    _check_device_owner(ctx, network, device_owner, "create_port")
    _check_fixed_ips_policy(ctx, network, fixed_ips, "create_port")
    _check_port_security_policy(ctx, network, port_security_enabled, allowed_address_pairs,
                                "create_port")
    port_security = network.port_security_enabled if port_security_enabled is None \
        else port_security_enabled
    if allowed_address_pairs and not port_security:
        raise AddressPairAndPortSecurityRequired()
    if check_quota:
        quotas.check(s, settings, owner, {"port": 1})
    port = Port(id=new_id(), network_id=network.id, project_id=owner, name=name,
                description=description, admin_state_up=admin_state_up, device_id=device_id,
                device_owner=device_owner, port_security_enabled=port_security,
                security_groups=_security_groups(s, owner, security_groups, port_security,
                                                 device_owner),
                tags=tags or [])
    _binding(port, host_id)
    _insert_port(s, port, parse_mac(mac_address) if mac_address is not None else None)
    port.allowed_address_pairs = parse_address_pairs(allowed_address_pairs or [],
                                                     port.mac_address)
    subnets = network_subnets(s, network.id)
    requests = None if fixed_ips is None else ipam.resolve_fixed_ips(
        network.id, subnets, fixed_ips, port.mac_address, _subnet_ids_elsewhere(s, fixed_ips))
    ipam.allocate_for_port(s, port, subnets, requests)
    if check_quota:
        quotas.check(s, settings, owner, {"port": 1}, already_added=True)
    return port


def _subnet_ids_elsewhere(s: Session, fixed_ips: list[dict]) -> set[str]:
    wanted = [f["subnet_id"] for f in fixed_ips if f.get("subnet_id")]
    return set(s.scalars(select(Subnet.id).where(Subnet.id.in_(wanted)))) if wanted else set()


def _check_write(s: Session, ctx: RequestContext, port: Port, action: str) -> Network:
    require(ctx, WRITE, action)
    network = s.get_one(Network, port.network_id)
    if not owns(ctx, port.project_id) and not owns(ctx, network.project_id):
        raise PolicyNotAuthorized(action)
    return network


def update_port(s: Session, ctx: RequestContext, port_id: str, changes: dict) -> Port:
    """Change a port (model-named `changes`); `fixed_ips` replaces the addresses, keeping
    the ones asked for again and freeing the others, as Neutron does."""
    port = get_port(s, ctx, port_id)
    network = _check_write(s, ctx, port, "update_port")
    if "device_owner" in changes:
        _check_device_owner(ctx, network, changes["device_owner"], "update_port")
    if "mac_address" in changes:
        if not ctx.is_admin:
            raise PolicyNotAuthorized("update_port:mac_address")
        if port.binding_host_id:
            raise InUse(f"Unable to complete operation on port {port.id}, port is already "
                        f"bound, port type: {port.binding_vif_type}, old_mac "
                        f"{port.mac_address}, new_mac {changes['mac_address']}.", "PortBound")
        port.mac_address = parse_mac(changes["mac_address"])
    _check_port_security_policy(ctx, network, changes.get("port_security_enabled"),
                                changes.get("allowed_address_pairs"), "update_port")
    port_security = changes.get("port_security_enabled", port.port_security_enabled)
    pairs = port.allowed_address_pairs or []
    if "allowed_address_pairs" in changes:
        pairs = parse_address_pairs(changes["allowed_address_pairs"] or [], port.mac_address)
    if not port_security and pairs:
        raise AddressPairAndPortSecurityRequired()
    port.allowed_address_pairs = pairs
    if not port_security and changes.get("security_groups", port.security_groups):
        raise InUse("Port has security group associated. Cannot disable port security or ip "
                    "address until security group is removed", "PortSecurityPortHasSecurityGroup")
    if "security_groups" in changes:
        port.security_groups = _security_groups(s, port.project_id, changes["security_groups"],
                                                port_security, port.device_owner)
    for key in ("name", "description", "admin_state_up", "device_id", "device_owner",
                "port_security_enabled", "tags"):
        if key in changes:
            setattr(port, key, changes[key])
    if "host_id" in changes or "admin_state_up" in changes:
        _binding(port, changes.get("host_id", port.binding_host_id))
    if "fixed_ips" in changes:
        _check_fixed_ips_policy(ctx, network, changes["fixed_ips"], "update_port")
        _replace_fixed_ips(s, port, changes["fixed_ips"])
    port.revision_number += 1
    s.flush()
    return port


def _replace_fixed_ips(s: Session, port: Port, fixed_ips: list[dict]) -> None:
    subnets = network_subnets(s, port.network_id)
    requests = ipam.resolve_fixed_ips(port.network_id, subnets, fixed_ips, port.mac_address,
                                      _subnet_ids_elsewhere(s, fixed_ips))
    remaining = list(allocations_of(s, [port.id])[port.id])
    new: list[ipam.Request] = []
    for request in sorted(requests, key=lambda r: r.address is None):
        match = next((a for a in remaining if a.subnet_id == request.subnet.id
                      and request.address in (None, a.ip_address)), None)
        if match is None:
            new.append(request)
        else:
            remaining.remove(match)
    auto = {sn.id for sn in subnets if ipam.is_auto_address(sn)}
    for allocation in remaining:
        if allocation.subnet_id not in auto:
            s.delete(allocation)
    s.flush()
    if new:
        ipam.allocate_for_port(s, port, [], new)


def delete_port(s: Session, port_id: str) -> None:
    """Delete a port and free its addresses (internal: no policy check; gone is fine).
    A floating IP associated with it is disassociated, as Neutron does."""
    s.execute(update(FloatingIP).where(FloatingIP.fixed_port_id == port_id)
              .values(fixed_port_id=None, fixed_ip_address=None, router_id=None, status="DOWN")
              .execution_options(synchronize_session="fetch"))
    s.execute(delete(IPAllocation).where(IPAllocation.port_id == port_id))
    port = s.get(Port, port_id)
    if port is not None:
        s.delete(port)
        s.flush()


def delete_port_checked(s: Session, ctx: RequestContext, port_id: str) -> None:
    """DELETE /v2.0/ports/{id}: the port's project or its network's owner may."""
    port = get_port(s, ctx, port_id)
    _check_write(s, ctx, port, "delete_port")
    _check_not_l3_port(s, port)
    delete_port(s, port.id)


# L3 ports: a router's interfaces and gateway, a floating IP's address (issue 14).
ROUTER_INTERFACE, ROUTER_GATEWAY = "network:router_interface", "network:router_gateway"
FLOATINGIP = "network:floatingip"
L3_OWNERS = (ROUTER_INTERFACE, ROUTER_GATEWAY, FLOATINGIP)


def _check_not_l3_port(s: Session, port: Port) -> None:
    """A port of an existing router or floating IP goes only through the router or
    floating IP API (Neutron's L3PortInUse)."""
    if port.device_owner not in L3_OWNERS or not port.device_id:
        return
    model = FloatingIP if port.device_owner == FLOATINGIP else Router
    if s.get(model, port.device_id) is not None:
        raise InUse(f"Port {port.id} has owner {port.device_owner} and therefore cannot be "
                    "deleted directly via the port API.", "L3PortInUse")


def create_device_port(s: Session, network: Network, *, project_id: str, device_id: str,
                       device_owner: str, fixed_ips: list[dict] | None = None,
                       subnets: list[Subnet] | None = None, status: str = "ACTIVE") -> Port:
    """A port Cirrus makes for an L3 device of its own (a router's interface or gateway, a
    floating IP's address): the caller has checked policy and quota; no security groups.
    `fixed_ips` as create_port's; `subnets` narrows Neutron's default allocation (None:
    every subnet of the network)."""
    port = Port(id=new_id(), network_id=network.id, project_id=project_id, name="",
                description="", admin_state_up=True, device_id=device_id,
                device_owner=device_owner, port_security_enabled=False, security_groups=[],
                tags=[])
    _binding(port, None)
    port.status = status
    _insert_port(s, port, None)
    all_subnets = network_subnets(s, network.id)
    requests = None if fixed_ips is None else ipam.resolve_fixed_ips(
        network.id, all_subnets, fixed_ips, port.mac_address, _subnet_ids_elsewhere(s, fixed_ips))
    ipam.allocate_for_port(s, port, all_subnets if subnets is None else subnets, requests)
    return port


def delete_port_if_exists(s: Session, ctx: RequestContext, port_id: str) -> None:
    """As delete_port_checked, but a port already gone (a detach took it) is fine."""
    if s.get(Port, port_id) is not None:
        delete_port_checked(s, ctx, port_id)


def update_binding(s: Session, port_id: str, *, device_id: str, device_owner: str,
                   host_id: str | None) -> Port:
    """Bind a port to a device on a host, or unbind it ("", "", None). Internal."""
    port = s.get(Port, port_id)
    if port is None:
        raise PortNotFound(port_id)
    port.device_id, port.device_owner = device_id, device_owner
    _binding(port, host_id)
    port.revision_number += 1
    return port


# ---------------------------------------------------------------- NICs for compute


def build_nics(s: Session, nic_map: list[dict]) -> list[Nic]:
    """The NICs of a server from its map [{"port_id", "index", "name"}], in map order, in
    three queries. A port deleted meanwhile (Neutron lets users delete a bound port) is
    left out."""
    port_ids = [item["port_id"] for item in nic_map]
    ports = {p.id: p for p in s.scalars(select(Port).where(Port.id.in_(port_ids)))}
    networks = {n.id: n for n in s.scalars(
        select(Network).where(Network.id.in_({p.network_id for p in ports.values()})))}
    fixed: dict[str, list[FixedIp]] = {pid: [] for pid in ports}
    rows = s.execute(select(IPAllocation, Subnet).join(Subnet, Subnet.id == IPAllocation.subnet_id)
                     .where(IPAllocation.port_id.in_(port_ids))
                     .order_by(IPAllocation.created_at, IPAllocation.subnet_id))
    for allocation, subnet in rows:
        fixed[allocation.port_id].append(FixedIp(allocation.ip_address, subnet_info(subnet)))
    return [Nic(index=item["index"], name=item["name"], port_id=item["port_id"],
                mac=ports[item["port_id"]].mac_address,
                network_id=ports[item["port_id"]].network_id,
                mtu=networks[ports[item["port_id"]].network_id].mtu,
                fixed_ips=tuple(fixed[item["port_id"]]),
                **_segment(networks[ports[item["port_id"]].network_id]),
                **_security_of(ports[item["port_id"]]))
            for item in nic_map if item["port_id"] in ports]


def _segment(network: Network) -> dict:
    """The network's segment as a NIC carries it to the host (issue 14, l2)."""
    return {"network_type": network.provider_network_type,
            "physical_network": network.provider_physical_network,
            "segmentation_id": network.provider_segmentation_id}


def filtered(port: Port) -> bool:
    """Whether the host filters the port: port security on and not one of the cloud's own
    ports (DHCP, router interfaces, gateways: `network:*` owners, trusted as in Neutron)."""
    return port.port_security_enabled and not port.device_owner.startswith("network:")


def _security_of(port: Port) -> dict:
    """The Nic fields the host's firewall needs of the port itself (issue 14, sg)."""
    return {"port_security_enabled": filtered(port),
            "security_groups": tuple(port.security_groups or ()),
            "allowed_address_pairs": tuple((p["ip_address"], p["mac_address"])
                                           for p in port.allowed_address_pairs or [])}


def subnet_info(subnet: Subnet) -> SubnetInfo:
    return SubnetInfo(
        id=subnet.id, cidr=subnet.cidr, ip_version=subnet.ip_version,
        gateway_ip=subnet.gateway_ip, dns_nameservers=tuple(subnet.dns_nameservers or ()),
        host_routes=tuple((r["destination"], r["nexthop"]) for r in subnet.host_routes or ()),
        enable_dhcp=subnet.enable_dhcp, ipv6_address_mode=subnet.ipv6_address_mode)
