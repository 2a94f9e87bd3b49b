"""Networks: create, read, update, delete, with Neutron's policy and checks.

Attributes only an admin may set: shared, router:external (`external`), is_default and the
provider attributes; setting one to its default value is allowed to anyone, as in Neutron.
`is_default` marks the one network `networks: auto` uses for every project; it must be on a
shared or external network. A network with ports cannot be deleted (NetworkInUse); its
subnets go with it.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cirrus.config import Settings
from cirrus.context import RequestContext
from cirrus.db.models import (
    AutoAllocatedNetwork,
    FloatingIP,
    IPAllocation,
    Network,
    Port,
    Subnet,
)
from cirrus.errors import Conflict
from cirrus.network import quotas, segments
from cirrus.network.access import (
    WRITE,
    can_see_network,
    column_filters,
    network_visible,
    new_id,
    owner_for_create,
    require,
    require_owner,
)
from cirrus.network.dhcp.model import DHCP_OWNER
from cirrus.network.errors import (
    BadAttribute,
    InUse,
    InvalidInput,
    NetworkInUse,
    NetworkNotFound,
    PolicyNotAuthorized,
)

MIN_MTU = 68  # IPv4's minimum
_PROVIDER = ("provider_network_type", "provider_physical_network", "provider_segmentation_id")
# Attribute -> its Neutron name in policy messages; admin-only unless set to the default.
ADMIN_ONLY = {
    "shared": "shared",
    "external": "router:external",
    "is_default": "is_default",
    "provider_network_type": "provider:network_type",
    "provider_physical_network": "provider:physical_network",
    "provider_segmentation_id": "provider:segmentation_id",
}
_DEFAULTS = {"shared": False, "external": False, "is_default": False,
             "provider_network_type": None, "provider_physical_network": None,
             "provider_segmentation_id": None}
UPDATABLE = ("name", "description", "admin_state_up", "mtu", "port_security_enabled",
             "tags", "shared", "external", "is_default")  # provider:* are fixed at create


def get_network(s: Session, ctx: RequestContext, network_id: str) -> Network:
    """The network if the caller may see it; NetworkNotFound (404) otherwise."""
    network = s.get(Network, network_id)
    if network is None or not can_see_network(ctx, network):
        raise NetworkNotFound(network_id)
    return network


def list_networks(s: Session, ctx: RequestContext, filters: dict[str, list]) -> list[Network]:
    query = (select(Network).where(network_visible(ctx), *column_filters(Network, filters))
             .order_by(Network.created_at, Network.id))
    return list(s.scalars(query))


def subnet_ids(s: Session, network_ids: list[str]) -> dict[str, list[str]]:
    """Each network's subnets, oldest first (the `subnets` attribute), in one query."""
    result: dict[str, list[str]] = {nid: [] for nid in network_ids}
    if network_ids:
        rows = s.execute(select(Subnet.network_id, Subnet.id)
                         .where(Subnet.network_id.in_(network_ids))
                         .order_by(Subnet.created_at, Subnet.id))
        for network_id, subnet_id in rows:
            result[network_id].append(subnet_id)
    return result


def _check_admin_only(ctx: RequestContext, action: str, values: dict,
                      current: Mapping[str, object]) -> None:
    if ctx.is_admin:
        return
    for key, neutron_name in ADMIN_ONLY.items():
        if key in values and values[key] != current[key]:
            raise PolicyNotAuthorized(f"{action}:{neutron_name}")


def _check_mtu(mtu: int, maximum: int) -> None:
    """`maximum`: what the network's type can carry (segments.max_mtu)."""
    if mtu < MIN_MTU:
        raise BadAttribute("mtu", f"'{mtu}' is too small - must be at least '{MIN_MTU}'")
    if mtu > maximum:
        raise BadAttribute("mtu", f"Requested MTU is too big, maximum is {maximum}")


def _check_default(s: Session, network: Network) -> None:
    """`is_default` only on a shared or external network, and on one network at most."""
    if not network.is_default:
        return
    if not (network.shared or network.external):
        raise BadAttribute("is_default", "only a shared or external network can be the "
                           "default network")
    other = s.scalar(select(Network.id).where(Network.is_default.is_(True),
                                              Network.id != network.id))
    if other is not None:
        raise Conflict(f"Unable to set network {network.id} as default: the default "
                       f"network {other} already exists.")


def create_network(s: Session, ctx: RequestContext, settings: Settings, spec: dict) -> Network:
    """A new network from model-named attributes (`spec`), quota and policy checked."""
    require(ctx, WRITE, "create_network")
    spec = dict(spec)
    owner = owner_for_create(ctx, spec.pop("project_id", None))
    _check_admin_only(ctx, "create_network", spec, _DEFAULTS)
    requested = segments.Segment(*(spec.pop(key, None) for key in _PROVIDER))
    segments.validate(settings, requested)
    mtu = spec.pop("mtu", None)
    if mtu is not None:
        _check_mtu(mtu, segments.MAX_LOCAL_MTU)
    quotas.check(s, settings, owner, {"network": 1})
    network = Network(id=new_id(), project_id=owner, mtu=settings.default_network_mtu, **spec)
    s.add(network)
    s.flush()
    kind = segments.assign(s, settings, network, requested).network_type
    if mtu is None:
        network.mtu = segments.default_mtu(settings, kind)
    else:
        _check_mtu(mtu, segments.max_mtu(settings, kind))
        network.mtu = mtu
    quotas.check(s, settings, owner, {"network": 1}, already_added=True)
    _check_default(s, network)
    return network


def update_network(s: Session, ctx: RequestContext, network_id: str, changes: dict,
                   settings: Settings | None = None) -> Network:
    network = get_network(s, ctx, network_id)
    require_owner(ctx, network.project_id, "update_network")
    _check_admin_only(ctx, "update_network", changes,
                      {key: getattr(network, key) for key in ADMIN_ONLY})
    changed = [ADMIN_ONLY[key] for key in _PROVIDER
               if key in changes and changes[key] != getattr(network, key)]
    if changed:  # as ML2: a network's segment is fixed once it has one
        raise InvalidInput("Plugin does not support updating the following provider network "
                           f"attributes: {', '.join(changed)}")
    if "mtu" in changes:
        _check_mtu(changes["mtu"], segments.MAX_LOCAL_MTU if settings is None else
                   segments.max_mtu(settings, network.provider_network_type))
    if network.shared and changes.get("shared") is False:
        _check_unshare(s, network)
    for key in UPDATABLE:
        if key in changes:
            setattr(network, key, changes[key])
    network.revision_number += 1
    s.flush()
    _check_default(s, network)
    return network


def _check_unshare(s: Session, network: Network) -> None:
    others = s.scalar(select(func.count()).select_from(Port).where(
        Port.network_id == network.id, Port.project_id != network.project_id))
    if others:
        raise InUse(f"Unable to reconfigure sharing settings for network {network.id}. "
                    "Multiple tenants are using it.", "InvalidSharedSetting")


def delete_network(s: Session, ctx: RequestContext, network_id: str) -> None:
    network = get_network(s, ctx, network_id)
    require_owner(ctx, network.project_id, "delete_network")
    delete_network_records(s, network)


def delete_network_records(s: Session, network: Network) -> None:
    """Delete a network and its subnets; NetworkInUse while any port is on it.

    A port created concurrently is caught by its foreign key: the delete then fails at
    flush, reported as the same NetworkInUse. The network's DHCP ports go with it, as
    in Neutron (their hosts are then told to stop serving it: cirrus.network.dhcp)."""
    for port in s.scalars(select(Port).where(Port.network_id == network.id,
                                             Port.device_owner == DHCP_OWNER)):
        s.execute(delete(IPAllocation).where(IPAllocation.port_id == port.id))
        s.delete(port)
    s.flush()
    if s.scalar(select(Port.id).where(Port.network_id == network.id,
                                      Port.device_owner != FLOATINGIP_OWNER).limit(1)) is not None:
        raise NetworkInUse(network.id)
    try:
        _delete_floating_ips(s, network.id)
        s.execute(delete(AutoAllocatedNetwork).where(
            AutoAllocatedNetwork.network_id == network.id))
        s.execute(delete(Subnet).where(Subnet.network_id == network.id))
        segments.release(s, network.id)
        s.delete(network)
        s.flush()
    except IntegrityError:
        raise NetworkInUse(network.id) from None


# An external network's floating IPs go with it, as in Neutron (their ports do not keep it
# in use); the rest of L3 is in cirrus.network.routers and floating_ips.
FLOATINGIP_OWNER = "network:floatingip"


def _delete_floating_ips(s: Session, network_id: str) -> None:
    fip_ports = select(Port.id).where(Port.network_id == network_id,
                                      Port.device_owner == FLOATINGIP_OWNER)
    s.execute(delete(FloatingIP).where(FloatingIP.floating_network_id == network_id)
              .execution_options(synchronize_session=False))
    s.execute(delete(IPAllocation).where(IPAllocation.port_id.in_(fip_ports))
              .execution_options(synchronize_session=False))
    s.execute(delete(Port).where(Port.network_id == network_id,
                                 Port.device_owner == FLOATINGIP_OWNER)
              .execution_options(synchronize_session=False))


def bump_revision(s: Session, network_id: str) -> None:
    """A network changes when its subnets do (its `subnets` attribute)."""
    network = s.get(Network, network_id)
    if network is not None:
        network.revision_number += 1
