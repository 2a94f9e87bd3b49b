"""On-demand project networks: what `networks: auto` attaches a server to.

Nothing is made when a project or user is created. On first use, either the network an
admin marked `is_default` (shared) serves every project, or the project gets its own
network "auto_allocated_network" with one subnet (settings.auto_network_cidr, DNS
settings.auto_network_dns, DHCP off: guests are told their address statically), recorded
in AutoAllocatedNetwork. That table's primary key is the project id, so two first uses at
the same moment end with one network: the loser drops what it made and takes the winner's.
Neutron's `GET /v2.0/auto-allocated-topology/{project_id}` calls this (an admin may call it
for any project, which pre-initialises it).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from cirrus.config import Settings
from cirrus.context import RequestContext
from cirrus.db.models import AutoAllocatedNetwork, Network
from cirrus.network import networks, subnets
from cirrus.network.access import READ, WRITE, require
from cirrus.network.errors import PolicyNotAuthorized
from cirrus.network.savepoint import read_latest, try_insert

AUTO_NETWORK_NAME = "auto_allocated_network"
AUTO_SUBNET_NAME = "auto_allocated_subnet"


def _check_project(ctx: RequestContext, project_id: str, action: str) -> None:
    if project_id != ctx.project_id and not ctx.is_admin:
        raise PolicyNotAuthorized(action)


def default_network(s: Session) -> Network | None:
    """The shared network an admin marked `is_default`, if any."""
    return s.scalar(select(Network).where(Network.is_default.is_(True),
                                          Network.shared.is_(True)).limit(1))


def find_auto_network(s: Session, ctx: RequestContext, project_id: str) -> Network | None:
    """The network `auto` would use now for the project, without making one."""
    _check_project(ctx, project_id, "get_auto_allocated_topology")
    shared = default_network(s)
    if shared is not None:
        return shared
    row = s.get(AutoAllocatedNetwork, project_id)
    return s.get(Network, row.network_id) if row is not None else None


def get_or_create_auto_network(s: Session, ctx: RequestContext, settings: Settings,
                               project_id: str) -> Network:
    """The project's `auto` network, made (with quota and policy checks) on first use."""
    require(ctx, READ, "get_auto_allocated_topology")
    existing = find_auto_network(s, ctx, project_id)
    if existing is not None:
        return existing
    require(ctx, WRITE, "get_auto_allocated_topology")
    network = networks.create_network(s, ctx, settings, {
        "name": AUTO_NETWORK_NAME, "project_id": project_id,
        "description": "The project's network for servers created with networks: auto"})
    subnet = subnets.create_subnet(s, ctx, settings, {
        "network_id": network.id, "project_id": project_id, "name": AUTO_SUBNET_NAME,
        "ip_version": 4, "cidr": settings.auto_network_cidr, "enable_dhcp": False,
        "dns_nameservers": list(settings.auto_network_dns)})
    if try_insert(s, AutoAllocatedNetwork(project_id=project_id, network_id=network.id)):
        return network
    # Another request made the project's network first: keep that one.
    s.delete(subnet)
    s.flush()  # the subnet before its network: no ORM relationship orders the two
    s.delete(network)
    s.flush()
    winner = read_latest(s, AutoAllocatedNetwork, project_id)
    return read_latest(s, Network, winner.network_id)  # type: ignore[union-attr,return-value]


def delete_auto_network(s: Session, ctx: RequestContext, project_id: str) -> None:
    """Delete the project's own auto network, if it has one (NetworkInUse while ports are
    on it); the shared default network is never deleted here."""
    require(ctx, WRITE, "delete_auto_allocated_topology")
    _check_project(ctx, project_id, "delete_auto_allocated_topology")
    row = s.get(AutoAllocatedNetwork, project_id)
    if row is not None:
        networks.delete_network_records(s, s.get_one(Network, row.network_id))
