"""The control side of DHCP: which hosts serve a network, their DHCP ports, and what their
agents are told.

Hosts that run DHCP are agents with `dhcp_agent` on: each of their reports refreshes a
service row `cirrus-dhcp-agent` (cirrus.hosts.reports), which is up while its heartbeats
are recent, as any service. A network with a DHCP-enabled subnet is served by
`dhcp_hosts_per_network` of them (the least loaded first; a host keeps the networks it has
while its agent is up, and a network whose hosts went down gets others). Each serving host
has a port on the network, as Neutron makes one: device_owner `network:dhcp`, device_id
`dhcp<uuid5 of the host>-<network id>`, bound to the host, with an address on every DHCP
subnet taken from the pool like any port's (so it is listed, counted and never given
twice). The agent is sent the network's DHCP subnets and every (MAC, address, name) to
hand out, whenever a port, subnet or the network changes (`DhcpNotifier`, after the commit),
and the whole of what it serves when it starts (`sync_host`). A DHCP port made or removed
changes who is on the network's overlay: the VXLAN views of its network are sent after the
commit (cirrus.network.l2pop), so a DHCP host added to a network that has servers reaches
them, and they it, at once.
"""

from __future__ import annotations

import ipaddress
import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cirrus.agent.rpcapi import AgentAPI
from cirrus.config import Settings
from cirrus.context import RequestContext
from cirrus.db.commit_hooks import Notifier
from cirrus.db.models import IPAllocation, Network, Port, Service, Subnet
from cirrus.errors import CirrusError
from cirrus.hosts.liveness import DHCP_BINARY, service_is_up
from cirrus.network import ipam, l2pop, ports
from cirrus.network.dhcp import changes
from cirrus.network.dhcp.model import DHCP_OWNER, DhcpEntry, DhcpNetwork, DhcpSubnet, hostname_for
from cirrus.network.subnets import network_subnets
from cirrus.services import Deps

log = logging.getLogger(__name__)

# What the agents are to be told: (host, network id, configuration or None to stop).
Cast = tuple[str, str, DhcpNetwork | None]
REBOUND = "dhcp.rebound"  # in Session.info: networks whose DHCP ports were made or removed


def dhcp_device_id(host: str, network_id: str) -> str:
    """Neutron's device_id of a DHCP port: names the host without showing its name."""
    return f"dhcp{uuid.uuid5(uuid.NAMESPACE_DNS, host)}-{network_id}"


def dhcp_services(s: Session) -> list[Service]:
    return list(s.scalars(select(Service).where(Service.binary == DHCP_BINARY)
                          .order_by(Service.host)))


def live_dhcp_hosts(s: Session, settings: Settings) -> list[str]:
    """Hosts whose DHCP agent is up and enabled, by name."""
    return [svc.host for svc in dhcp_services(s)
            if not svc.disabled and service_is_up(svc, settings.service_down_time)]


def dhcp_ports(s: Session, network_id: str) -> list[Port]:
    return list(s.scalars(select(Port).where(Port.network_id == network_id,
                                             Port.device_owner == DHCP_OWNER)
                          .order_by(Port.created_at, Port.id)))


def dhcp_subnets(s: Session, network_id: str) -> list[Subnet]:
    return [sn for sn in network_subnets(s, network_id) if sn.enable_dhcp]


def _load(s: Session) -> dict[str, int]:
    """DHCP ports per host: how many networks each host serves."""
    load: dict[str, int] = {}
    for host in s.scalars(select(Port.binding_host_id).where(Port.device_owner == DHCP_OWNER)):
        if host:
            load[host] = load.get(host, 0) + 1
    return load


def _create_dhcp_port(s: Session, settings: Settings, network: Network, host: str,
                      subnets: list[Subnet]) -> Port | None:
    """The host's DHCP port on the network, or None (logged) when it cannot have one (no
    address left): the transaction goes on without it."""
    savepoint = s.begin_nested()
    try:
        port = ports.create_port(
            s, RequestContext.admin(), settings, network_id=network.id,
            fixed_ips=[{"subnet_id": sn.id} for sn in subnets if not ipam.is_auto_address(sn)],
            device_id=dhcp_device_id(host, network.id), device_owner=DHCP_OWNER,
            host_id=host, project_id=network.project_id, check_quota=False)
    except CirrusError as exc:
        savepoint.rollback()
        log.warning("dhcp: no DHCP port for network %s on %s: %s", network.id, host, exc)
        return None
    savepoint.commit()
    log.info("dhcp: network %s served by %s (port %s)", network.id, host, port.id)
    return port


def _fit_addresses(s: Session, port: Port, subnets: list[Subnet]) -> None:
    """An address on every DHCP subnet and on no other (a subnet added, DHCP turned off)."""
    wanted = {sn.id for sn in subnets if not ipam.is_auto_address(sn)}
    have = {a.subnet_id: a.ip_address for a in ports.allocations_of(s, [port.id])[port.id]}
    if wanted <= set(have) and set(have) <= {sn.id for sn in subnets}:
        return
    fixed = [{"subnet_id": sid, "ip_address": ip} for sid, ip in have.items() if sid in wanted]
    fixed += [{"subnet_id": sid} for sid in sorted(wanted - set(have))]
    savepoint = s.begin_nested()  # a failure leaves the port as it was, not half changed
    try:
        ports.update_port(s, RequestContext.admin(), port.id, {"fixed_ips": fixed})
    except CirrusError as exc:
        savepoint.rollback()
        log.warning("dhcp: DHCP port %s keeps its addresses: %s", port.id, exc)
        return
    savepoint.commit()


def schedule(s: Session, settings: Settings, network: Network) -> tuple[dict[str, Port], set[str]]:
    """Make the network's DHCP ports what they should be; (host -> its DHCP port, hosts
    whose port was removed)."""
    s.scalar(select(Network.id).where(Network.id == network.id).with_for_update())
    subnets = dhcp_subnets(s, network.id)
    existing = dhcp_ports(s, network.id)
    removed: set[str] = set()
    known = {svc.host for svc in dhcp_services(s)}
    by_host: dict[str, Port] = {}
    for port in existing:
        host = port.binding_host_id or ""
        if not subnets or host not in known or host in by_host:
            ports.delete_port(s, port.id)
            s.info.setdefault(REBOUND, set()).add(network.id)
            if host:
                removed.add(host)
        else:
            by_host[host] = port
    if not subnets:
        return {}, removed
    live = live_dhcp_hosts(s, settings)
    serving = [host for host in by_host if host in live]
    missing = settings.dhcp_hosts_per_network - len(serving)
    if missing > 0:
        load = _load(s)
        candidates = sorted((h for h in live if h not in by_host),
                            key=lambda h: (load.get(h, 0), h))
        for host in candidates[:missing]:
            made = _create_dhcp_port(s, settings, network, host, subnets)
            if made is None:
                break
            by_host[host] = made
            s.info.setdefault(REBOUND, set()).add(network.id)
    for port in by_host.values():
        _fit_addresses(s, port, subnets)
    return by_host, removed


def _subnet(sn: Subnet) -> DhcpSubnet:
    return DhcpSubnet(id=sn.id, cidr=sn.cidr, ip_version=sn.ip_version,
                      gateway_ip=sn.gateway_ip, dns_nameservers=tuple(sn.dns_nameservers or ()),
                      host_routes=tuple((r["destination"], r["nexthop"])
                                        for r in sn.host_routes or ()),
                      ipv6_address_mode=sn.ipv6_address_mode or sn.ipv6_ra_mode)


def entries(s: Session, network_id: str, subnet_ids: list[str]) -> tuple[DhcpEntry, ...]:
    """(MAC, address, name) of every address of the network's ports on those subnets."""
    if not subnet_ids:
        return ()
    rows = s.execute(select(Port.mac_address, IPAllocation.ip_address)
                     .join(IPAllocation, IPAllocation.port_id == Port.id)
                     .where(Port.network_id == network_id,
                            IPAllocation.subnet_id.in_(subnet_ids))
                     .order_by(Port.mac_address, IPAllocation.ip_address))
    return tuple(DhcpEntry(mac, ip, hostname_for(ip)) for mac, ip in rows)


def configuration(s: Session, settings: Settings, network: Network, port: Port,
                  subnets: list[Subnet], hosts: tuple[DhcpEntry, ...]) -> DhcpNetwork:
    """What the host of `port` is told about the network."""
    by_id = {sn.id: sn for sn in subnets}
    addresses = tuple(
        f"{a.ip_address}/{ipaddress.ip_network(by_id[a.subnet_id].cidr).prefixlen}"
        for a in ports.allocations_of(s, [port.id])[port.id] if a.subnet_id in by_id)
    return DhcpNetwork(network_id=network.id, mtu=network.mtu, port_id=port.id,
                       mac=port.mac_address, addresses=addresses,
                       subnets=tuple(_subnet(sn) for sn in subnets), entries=hosts,
                       lease=settings.dhcp_lease_duration, domain=settings.dhcp_domain,
                       network_type=network.provider_network_type,
                       physical_network=network.provider_physical_network,
                       segmentation_id=network.provider_segmentation_id)


def plan(s: Session, settings: Settings, network_id: str, before: set[str]) -> list[Cast]:
    """Schedule the network and say what each of its DHCP hosts (and each that served it
    before, `before`) is to be told."""
    network = s.get(Network, network_id)
    if network is None:
        return [(host, network_id, None) for host in sorted(before)]
    by_host, removed = schedule(s, settings, network)
    subnets = dhcp_subnets(s, network_id)
    hosts = entries(s, network_id, [sn.id for sn in subnets])
    casts: list[Cast] = [(host, network_id, configuration(s, settings, network, port, subnets,
                                                          hosts))
                         for host, port in sorted(by_host.items())]
    casts += [(host, network_id, None) for host in sorted((removed | before) - set(by_host))]
    return casts


def _send(deps: Deps, ctx: RequestContext, casts: list[Cast], stamp: float) -> None:
    agents = AgentAPI(deps.bus)
    for host, network_id, config in casts:
        try:
            agents.sync_dhcp(ctx, host, network_id, config.to_dict() if config else None,
                             stamp=stamp)
        except Exception:
            log.exception("dhcp: could not tell %s about network %s", host, network_id)


def sync_networks(deps: Deps, ctx: RequestContext, touched: dict[str, set[str]]) -> None:
    """Schedule the networks and tell their DHCP hosts (after the change was committed)."""
    with deps.db.reader() as s:
        if not dhcp_services(s) and not any(touched.values()):
            return  # no host runs DHCP: nothing to schedule or tell
        ids = list(touched)
        with_dhcp = set(s.scalars(select(Subnet.network_id).where(
            Subnet.network_id.in_(ids), Subnet.enable_dhcp.is_(True))))
        with_dhcp |= set(s.scalars(select(Port.network_id).where(
            Port.network_id.in_(ids), Port.device_owner == DHCP_OWNER)))
        touched = {nid: before for nid, before in touched.items()
                   if nid in with_dhcp or before}
        if not touched:
            return  # none of them has DHCP, nor had it
    stamp = time.time()

    def work(s: Session) -> tuple[list[Cast], set[str]]:
        casts: list[Cast] = []
        for network_id, before in sorted(touched.items()):
            casts += plan(s, deps.settings, network_id, before)
        rebound: set[str] = s.info.pop(REBOUND, set())
        s.flush()
        changes.NETWORKS.forget(s)
        return casts, rebound

    casts, rebound = deps.db.run(work)
    _send(deps, ctx, casts, stamp)
    l2pop.push_views(deps, ctx, rebound, "dhcp")


def sync_host(deps: Deps, ctx: RequestContext, host: str) -> None:
    """Tell `host` the whole of what it is to serve (its agent started, or a periodic
    full report), scheduling every DHCP network that lacks hosts on the way."""
    stamp = time.time()

    def work(s: Session) -> tuple[list[Cast], list[dict[str, Any]], set[str]]:
        network_ids = sorted(set(s.scalars(select(Subnet.network_id)
                                           .where(Subnet.enable_dhcp.is_(True)))))
        others: list[Cast] = []
        mine: list[dict[str, Any]] = []
        for network_id in network_ids:
            for target, nid, config in plan(s, deps.settings, network_id, set()):
                if target == host and config is not None:
                    mine.append(config.to_dict())
                elif target != host:
                    others.append((target, nid, config))
        rebound: set[str] = s.info.pop(REBOUND, set())
        s.flush()
        changes.NETWORKS.forget(s)
        return others, mine, rebound

    others, mine, rebound = deps.db.run(work)
    AgentAPI(deps.bus).sync_dhcp_all(ctx, host, mine, stamp=stamp)
    # Networks this host took over from a dead one: their other hosts keep what they had.
    _send(deps, ctx, [c for c in others if c[2] is None], stamp)
    l2pop.push_views(deps, ctx, rebound, "dhcp")
    log.info("dhcp: %s told its %d network(s)", host, len(mine))


class DhcpNotifier(Notifier):
    """A commit hook of the database: syncs the networks a transaction changed."""

    def __init__(self, deps: Deps) -> None:
        super().__init__(log, "dhcp", "networks")
        self.deps = deps

    def touched(self, info: Mapping[str, Any]) -> dict[str, set[str]]:
        return changes.NETWORKS.touched(info)

    def sync(self, touched: dict[str, set[str]]) -> None:
        sync_networks(self.deps, RequestContext.admin(), touched)
