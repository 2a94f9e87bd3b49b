"""Who shares a VXLAN network with whom (issue 14, l2): the forwarding databases' source.

From the port bindings (`binding:host_id`) and each host's VTEP (its agent's
`overlay_local_ip`, reported and kept on its compute node), a host's view of a network is
every *other* host with a port bound on it, with that host's VTEP and its ports' MACs. The
conductor sends each host its views (cirrus.compute.l2peers) when a server's ports move, and
the network control sides (`push_views`) when a router's or a DHCP port is bound or goes;
the agent never reads this.
Only vxlan networks have views: flat and vlan networks learn over the physical network,
local ones stay on their host. A host with no reported VTEP is nobody's peer (its own
ports stay on it) and learns nothing.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from cirrus.agent.rpcapi import AgentAPI
from cirrus.context import RequestContext
from cirrus.db.models import ComputeNode, Network, Port
from cirrus.network.model import NetworkPeer
from cirrus.network.segments import VXLAN
from cirrus.services import Deps

log = logging.getLogger(__name__)

Views = dict[str, dict[str, list[NetworkPeer]]]  # host -> network id -> its peers


def _bound(s: Session, network_ids: Iterable[str] | None) -> dict[str, dict[str, list[str]]]:
    """network id -> host -> MACs of the ports bound there, for vxlan networks."""
    query = (select(Port.network_id, Port.binding_host_id, Port.mac_address)
             .join(Network, Network.id == Port.network_id)
             .where(Network.provider_network_type == VXLAN, Port.binding_host_id.is_not(None))
             .order_by(Port.network_id, Port.binding_host_id, Port.mac_address))
    if network_ids is not None:
        query = query.where(Port.network_id.in_(list(network_ids)))
    result: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for network_id, host, mac in s.execute(query):
        if host:
            result[network_id][host].append(mac)
    return result


def _vteps(s: Session, hosts: set[str]) -> dict[str, str]:
    if not hosts:
        return {}
    rows = s.execute(select(ComputeNode.host, ComputeNode.overlay_ip)
                     .where(ComputeNode.host.in_(hosts), ComputeNode.overlay_ip.is_not(None)))
    return {host: ip for host, ip in rows if ip}


def views(s: Session, network_ids: Iterable[str] | None = None) -> Views:
    """Every host with a port on one of the vxlan networks (all of them: None) -> its view
    of each such network: the other hosts there that have a VTEP, in host order."""
    bound = _bound(s, network_ids)
    vteps = _vteps(s, {host for hosts in bound.values() for host in hosts})
    result: Views = defaultdict(dict)
    for network_id, hosts in bound.items():
        for host in hosts:
            result[host][network_id] = [
                NetworkPeer(host=other, vtep=vteps[other], macs=tuple(macs))
                for other, macs in sorted(hosts.items()) if other != host and other in vteps]
    return dict(result)


def host_networks(s: Session, host: str) -> list[str]:
    """The vxlan networks a host has a port bound on."""
    return list(s.scalars(
        select(Port.network_id).join(Network, Network.id == Port.network_id)
        .where(Port.binding_host_id == host, Network.provider_network_type == VXLAN)
        .distinct()))


def host_view(s: Session, host: str) -> dict[str, list[NetworkPeer]]:
    """One host's views of every vxlan network it has a port on (a full update)."""
    return views(s, host_networks(s, host)).get(host, {})


def push_views(deps: Deps, ctx: RequestContext, network_ids: Iterable[str], who: str) -> None:
    """Send every host with a port on these networks (their vxlan ones) its views of them,
    after a commit that bound ports of a network's own (a router's, a DHCP port's) or
    removed them: a new host joins the overlay at once, and one that left is dropped from
    the others' forwarding databases. Never raises (logged): the conductor's periodic
    resync mends a message lost."""
    ids = set(network_ids)
    if not ids:
        return
    try:
        taken_at = time.time()
        with deps.db.reader() as s:
            vxlan = set(s.scalars(select(Network.id).where(
                Network.id.in_(ids), Network.provider_network_type == VXLAN)))
            found = views(s, vxlan) if vxlan else {}
        agents = AgentAPI(deps.bus)
        for host, view in sorted(found.items()):
            agents.update_network_peers(ctx, host, {
                nid: [peer.to_dict() for peer in peers] for nid, peers in view.items()},
                taken_at=taken_at)
    except Exception:
        log.exception("%s: the peers of networks %s could not be sent", who,
                      ", ".join(sorted(ids)))
