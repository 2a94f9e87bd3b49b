"""Networking errors in Neutron's words.

Each carries `error_type`, the name Neutron puts in `{"NeutronError": {"type": ...}}`, and
the message Neutron's exception of that name says, so clients that match on either keep
working. The API edge (cirrus/api/network) turns them into Neutron's error body.
"""

from __future__ import annotations

from cirrus.errors import BadRequest, Conflict, Forbidden, NotFound, ServiceUnavailable


class InvalidInput(BadRequest):
    error_type = "InvalidInput"

    def __init__(self, detail: str) -> None:
        super().__init__(f"Invalid input for operation: {detail}.")


class BadAttribute(BadRequest):
    """A malformed attribute value: Neutron's API layer answers HTTPBadRequest."""

    error_type = "HTTPBadRequest"

    def __init__(self, attribute: str, reason: str) -> None:
        super().__init__(f"Invalid input for {attribute}. Reason: {reason}.")


class PolicyNotAuthorized(Forbidden):
    error_type = "PolicyNotAuthorized"

    def __init__(self, action: str) -> None:
        super().__init__(f"rule:{action} is disallowed by policy")


class NetworkNotFound(NotFound):
    error_type = "NetworkNotFound"

    def __init__(self, network_id: str) -> None:
        super().__init__(f"Network {network_id} could not be found.")


class SubnetNotFound(NotFound):
    error_type = "SubnetNotFound"

    def __init__(self, subnet_id: str) -> None:
        super().__init__(f"Subnet {subnet_id} could not be found.")


class PortNotFound(NotFound):
    error_type = "PortNotFound"

    def __init__(self, port_id: str) -> None:
        super().__init__(f"Port {port_id} could not be found.")


class SecurityGroupNotFound(NotFound):
    error_type = "SecurityGroupNotFound"

    def __init__(self, group_id: str) -> None:
        super().__init__(f"Security group {group_id} does not exist")


class SecurityGroupConflict(Conflict):
    error_type = "SecurityGroupConflict"

    def __init__(self, reason: str) -> None:
        super().__init__(f"Error {reason} while attempting the operation.")


class SecurityGroupRuleNotFound(NotFound):
    error_type = "SecurityGroupRuleNotFound"

    def __init__(self, rule_id: str) -> None:
        super().__init__(f"Security group rule {rule_id} does not exist")


class AgentNotFound(NotFound):
    error_type = "AgentNotFound"

    def __init__(self, agent_id: str) -> None:
        super().__init__(f"Agent {agent_id} could not be found.")


class RouterNotFound(NotFound):
    error_type = "RouterNotFound"

    def __init__(self, router_id: str) -> None:
        super().__init__(f"Router {router_id} could not be found.")


class NetworkInUse(Conflict):
    error_type = "NetworkInUse"

    def __init__(self, network_id: str) -> None:
        super().__init__(f"Unable to complete operation on network {network_id}. "
                         "There are one or more ports still in use on the network.")


class SubnetInUse(Conflict):
    error_type = "SubnetInUse"

    def __init__(self, subnet_id: str) -> None:
        super().__init__(f"Unable to complete operation on subnet {subnet_id}: "
                         "One or more ports have an IP allocation from this subnet.")


class IpAddressAlreadyAllocated(Conflict):
    error_type = "IpAddressAlreadyAllocated"

    def __init__(self, address: str, subnet_id: str) -> None:
        super().__init__(f"IP address {address} already allocated in subnet {subnet_id}")


class IpAddressGenerationFailure(Conflict):
    """A subnet (or every candidate subnet) has no free address left: the message names
    each subnet, its range and how many addresses are in use, so an operator knows what
    ran out."""

    error_type = "IpAddressGenerationFailure"

    def __init__(self, exhausted: list[tuple[str, str, int]]) -> None:
        super().__init__("; ".join(
            f"No more IP addresses available on subnet {subnet_id} ({cidr}, {used} in use)"
            for subnet_id, cidr, used in exhausted))


class MacAddressInUse(Conflict):
    error_type = "MacAddressInUse"

    def __init__(self, network_id: str, mac: str) -> None:
        super().__init__(f"Unable to complete operation for network {network_id}. "
                         f"The mac address {mac} is in use.")


class OverQuota(Conflict):
    error_type = "OverQuota"

    def __init__(self, resources: list[str]) -> None:
        super().__init__(f"Quota exceeded for resources: {sorted(resources)!r}.")


class InUse(Conflict):
    """A generic "still used" conflict (security groups, sharing changes)."""

    error_type = "InUse"

    def __init__(self, message: str, error_type: str = "InUse") -> None:
        super().__init__(message)
        self.error_type = error_type


# ---- network segments (issue 14, l2): Neutron ML2's words


class VlanIdInUse(Conflict):
    error_type = "VlanIdInUse"

    def __init__(self, vlan_id: int, physical_network: str) -> None:
        super().__init__(f"Unable to create the network. The VLAN {vlan_id} on physical "
                         f"network {physical_network} is in use.")


class FlatNetworkInUse(Conflict):
    error_type = "FlatNetworkInUse"

    def __init__(self, physical_network: str) -> None:
        super().__init__(f"Unable to create the flat network. Physical network "
                         f"{physical_network} is in use.")


class TunnelIdInUse(Conflict):
    error_type = "TunnelIdInUse"

    def __init__(self, tunnel_id: int) -> None:
        super().__init__(f"Unable to create the network. The tunnel ID {tunnel_id} is in use.")


class NoNetworkAvailable(ServiceUnavailable):
    error_type = "NoNetworkAvailable"

    def __init__(self) -> None:
        super().__init__("Unable to create the network. No tenant network is available for "
                         "allocation.")


# ---------------------------------------------------------------- L3: routers, floating IPs


class BadL3Request(BadRequest):
    """Neutron's BadRequest(resource=..., msg=...): "Bad router request: ..."."""

    error_type = "BadRequest"

    def __init__(self, resource: str, detail: str) -> None:
        super().__init__(f"Bad {resource} request: {detail}.")


class RouterInUse(Conflict):
    error_type = "RouterInUse"

    def __init__(self, router_id: str, reason: str = "still has ports") -> None:
        super().__init__(f"Router {router_id} {reason}")


class RouterInterfaceNotFound(NotFound):
    error_type = "RouterInterfaceNotFound"

    def __init__(self, router_id: str, port_id: str) -> None:
        super().__init__(f"Router {router_id} does not have an interface with id {port_id}")


class RouterInterfaceNotFoundForSubnet(NotFound):
    error_type = "RouterInterfaceNotFoundForSubnet"

    def __init__(self, router_id: str, subnet_id: str) -> None:
        super().__init__(f"Router {router_id} has no interface on subnet {subnet_id}")


class RouterInterfaceInUse(Conflict):
    """RouterInterfaceInUseByFloatingIP / RouterInterfaceInUseByRoute."""

    def __init__(self, router_id: str, subnet_id: str, by: str) -> None:
        super().__init__(f"Router interface for subnet {subnet_id} on router {router_id} "
                         f"cannot be deleted, as it is required by one or more {by}.")
        self.error_type = ("RouterInterfaceInUseByFloatingIP" if by == "floating IPs"
                           else "RouterInterfaceInUseByRoute")


class GatewayInUseByFloatingIp(Conflict):
    error_type = "RouterExternalGatewayInUseByFloatingIp"

    def __init__(self, router_id: str, network_id: str) -> None:
        super().__init__(f"Gateway cannot be updated for router {router_id}, since a gateway "
                         f"to external network {network_id} is required by one or more "
                         "floating IPs.")


class InvalidRoutes(BadRequest):
    error_type = "InvalidRoutes"

    def __init__(self, routes: object, reason: str) -> None:
        super().__init__(f"Invalid format for routes: {routes}, {reason}.")


class RoutesExhausted(BadRequest):
    error_type = "RoutesExhausted"

    def __init__(self, router_id: str, quota: int) -> None:
        super().__init__(f"Unable to complete operation for {router_id}. The number of "
                         f"routes exceeds the maximum {quota}.")


class PortInUse(Conflict):
    error_type = "PortInUse"

    def __init__(self, port_id: str, network_id: str, device_id: str) -> None:
        super().__init__(f"Unable to complete operation on port {port_id} for network "
                         f"{network_id}. Port already has an attached device {device_id}.")


class FloatingIPNotFound(NotFound):
    error_type = "FloatingIPNotFound"

    def __init__(self, floatingip_id: str) -> None:
        super().__init__(f"Floating IP {floatingip_id} could not be found")


class ExternalGatewayForFloatingIPNotFound(NotFound):
    error_type = "ExternalGatewayForFloatingIPNotFound"

    def __init__(self, network_id: str, subnet_id: str, port_id: str) -> None:
        super().__init__(f"External network {network_id} is not reachable from subnet "
                         f"{subnet_id}.  Therefore, cannot associate Port {port_id} with a "
                         "Floating IP.")


class FloatingIPPortAlreadyAssociated(Conflict):
    error_type = "FloatingIPPortAlreadyAssociated"

    def __init__(self, address: str, fip_id: str, port_id: str, fixed_ip: str,
                 network_id: str) -> None:
        super().__init__(f"Cannot associate floating IP {address} ({fip_id}) with port "
                         f"{port_id} using fixed IP {fixed_ip}, as that fixed IP already has "
                         f"a floating IP on external network {network_id}.")


# ---- allowed address pairs (issue 14, sg)
class AddressPairInvalid(BadRequest):
    """A bad allowed_address_pairs value (Neutron's type names, one class)."""

    def __init__(self, message: str, error_type: str) -> None:
        super().__init__(message)
        self.error_type = error_type


class AddressPairAndPortSecurityRequired(Conflict):
    error_type = "AddressPairAndPortSecurityRequired"

    def __init__(self) -> None:
        super().__init__("Port Security must be enabled in order to have allowed address "
                         "pairs on a port.")


# ---- subnet pools (subnet_allocation): Neutron's words


class SubnetPoolNotFound(NotFound):
    error_type = "SubnetPoolNotFound"

    def __init__(self, subnetpool_id: str) -> None:
        super().__init__(f"Subnet pool {subnetpool_id} could not be found.")


class SubnetPoolError(BadRequest):
    """A bad subnet pool or a bad request of one, with Neutron's type (EmptySubnetPoolPrefixList,
    PrefixVersionMismatch, IllegalSubnetPoolPrefixBounds, IllegalSubnetPoolPrefixUpdate,
    Min/MaxPrefixSubnetAllocationError, SubnetPoolDeleteError,
    NetworkSubnetPoolAffinityError)."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


class SubnetAllocationError(Conflict):
    """No room left in a pool for the subnet asked for. Neutron's exception of this name has
    no HTTP mapping (a 500 there); a full pool is the caller's conflict, so 409 here."""

    error_type = "SubnetAllocationError"

    def __init__(self, reason: str) -> None:
        super().__init__(f"Failed to allocate subnet: {reason}.")
