"""Networks as Nova's network proxies show them (os-tenant-networks, os-networks): a label,
the first IPv4 and IPv6 subnets' addresses, nothing of nova-network's own."""

from __future__ import annotations

import ipaddress
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cirrus.context import RequestContext
from cirrus.db.models import Network, Subnet
from cirrus.network.networks import get_network, list_networks


def _subnets(s: Session, network_ids: list[str]) -> dict[str, list[Subnet]]:
    found: dict[str, list[Subnet]] = {nid: [] for nid in network_ids}
    if network_ids:
        for subnet in s.scalars(select(Subnet).where(Subnet.network_id.in_(network_ids))
                                .order_by(Subnet.created_at, Subnet.id)):
            found[subnet.network_id].append(subnet)
    return found


def _view(network: Network, subnets: list[Subnet]) -> dict[str, Any]:
    v4 = next((sn for sn in subnets if sn.ip_version == 4), None)
    v6 = next((sn for sn in subnets if sn.ip_version == 6), None)
    net4 = ipaddress.ip_network(v4.cidr, strict=False) if v4 else None
    net6 = ipaddress.ip_network(v6.cidr, strict=False) if v6 else None
    dns = list(v4.dns_nameservers or []) if v4 else []
    return {
        "id": network.id, "label": network.name, "cidr": str(net4) if net4 else None,
        "netmask": str(net4.netmask) if net4 else None,
        "broadcast": str(net4.broadcast_address) if net4 else None,
        "gateway": v4.gateway_ip if v4 else None,
        "dns1": dns[0] if dns else None, "dns2": dns[1] if len(dns) > 1 else None,
        "cidr_v6": str(net6) if net6 else None,
        "gateway_v6": v6.gateway_ip if v6 else None,
        "netmask_v6": str(net6.prefixlen) if net6 else None,
    }


def networks(s: Session, ctx: RequestContext) -> list[dict[str, Any]]:
    """The networks the caller may see (its own, shared and external ones)."""
    found = list_networks(s, ctx, {})
    subnets = _subnets(s, [n.id for n in found])
    return [_view(n, subnets[n.id]) for n in found]


def network(s: Session, ctx: RequestContext, network_id: str) -> dict[str, Any]:
    found = get_network(s, ctx, network_id)
    return _view(found, _subnets(s, [found.id])[found.id])
