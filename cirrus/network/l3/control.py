"""The control side of routers: which L3 host runs each router, and what it is told.

Hosts that run routers are agents with `l3_agent` on: each of their reports refreshes a
service row `cirrus-l3-agent` (cirrus.hosts.reports). A router with a gateway or an
interface runs on one live L3 host: the one its ports are bound to while that host's agent
is up, else the least loaded (fewest routers), and all its ports are bound there (so the
VXLAN forwarding databases, cirrus.network.l2pop, take the router's host in). Its host is
sent the router (`sync_router`, a cirrus.network.l3.model.RouterConfig) after every
committed change to the router, its ports or its floating IPs (`L3Notifier`), and the whole
of what it runs on each full report (`sync_host`). A router that moved, was deleted, lost
its last leg or was set administratively down is removed from the host that had it
(`sync_router` with nothing).

A router's `status` follows its host (docs/networking.md, "Router status"): ALLOCATING
while it waits for a host to build it (given one, moved, or no live L3 host at all),
ACTIVE once that host reports its namespace built (`router_status`, `record_status`) or
when it is to run nowhere (no leg, administratively down), ERROR when the host reports it
could not build it (the reason in the log); the next report of that host sets it again.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cirrus.agent.rpcapi import AgentAPI
from cirrus.config import Settings
from cirrus.context import RequestContext
from cirrus.db.commit_hooks import Notifier
from cirrus.db.engine import Database
from cirrus.db.models import FloatingIP, Network, Port, Router, Service, Subnet
from cirrus.hosts.liveness import L3_BINARY, service_is_up
from cirrus.network import l2pop
from cirrus.network.l3 import changes
from cirrus.network.l3.model import GATEWAY_OWNER, INTERFACE_OWNER, RouterConfig, RouterPort
from cirrus.network.ports import allocations_of
from cirrus.services import Deps

log = logging.getLogger(__name__)

OWNERS = (INTERFACE_OWNER, GATEWAY_OWNER)
Cast = tuple[str, str, RouterConfig | None]  # (host, router id, configuration or None)
ACTIVE, ALLOCATING, ERROR = "ACTIVE", "ALLOCATING", "ERROR"  # a router's status (Neutron's)
REBOUND = "l3.rebound"  # in Session.info: networks whose router ports were bound anew
MOVED = "l3.moved"  # in Session.info: routers given a host (another, or a first one)


def l3_services(s: Session) -> list[Service]:
    return list(s.scalars(select(Service).where(Service.binary == L3_BINARY)
                          .order_by(Service.host)))


def live_l3_hosts(s: Session, settings: Settings) -> list[str]:
    return [svc.host for svc in l3_services(s)
            if not svc.disabled and service_is_up(svc, settings.service_down_time)]


def router_ports(s: Session, router_id: str) -> list[Port]:
    return list(s.scalars(select(Port).where(Port.device_id == router_id,
                                             Port.device_owner.in_(OWNERS))
                          .order_by(Port.created_at, Port.id)))


def _load(s: Session) -> dict[str, int]:
    """Routers per host."""
    load: dict[str, set[str]] = {}
    for host, router_id in s.execute(select(Port.binding_host_id, Port.device_id)
                                     .where(Port.device_owner.in_(OWNERS))):
        if host:
            load.setdefault(host, set()).add(router_id)
    return {host: len(ids) for host, ids in load.items()}


def schedule(s: Session, settings: Settings, router: Router | None,
             ports: list[Port]) -> str | None:
    """The host to run the router (binding its ports there), or None (not to run); sets
    the router's status when that changes what is to be built where."""
    if router is None:
        return None
    if not ports or not router.admin_state_up:
        _set_status(router, ACTIVE)  # nothing to build anywhere
        return None
    services = l3_services(s)
    if not services:
        # A cloud with no L3 dataplane at all (the fake-driver all-in-one, an API-only
        # deployment): nothing will ever build it, and clients that wait for ACTIVE
        # (Terraform, Heat) must not wait forever; Neutron without an L3 agent says ACTIVE.
        _set_status(router, ACTIVE)
        return None
    live = [svc.host for svc in services
            if not svc.disabled and service_is_up(svc, settings.service_down_time)]
    current = next((p.binding_host_id for p in ports if p.binding_host_id), None)
    host = current if current in live else None
    if host is None and live:
        load = _load(s)
        host = min(live, key=lambda h: (load.get(h, 0), h))
    if host is None:
        if router.status != ALLOCATING:
            log.warning("l3: no live L3 host can run router %s: it waits (%s) for one",
                        router.id, ALLOCATING)
        _set_status(router, ALLOCATING)
        return None
    for port in ports:
        if port.binding_host_id != host:
            port.binding_host_id = host
            s.info.setdefault(REBOUND, set()).add(port.network_id)
    if host != current:
        _set_status(router, ALLOCATING)  # until its new host reports it built
        s.info.setdefault(MOVED, set()).add(router.id)
        log.info("l3: router %s runs on %s", router.id, host)
    return host


def _set_status(router: Router, status: str) -> None:
    if router.status != status:
        router.status = status


def record_status(db: Database, host: str, router_id: str, built: bool,
                  error: str | None) -> str | None:
    """An L3 host's report on a router it was told to run: ACTIVE when built, ERROR (the
    reason logged) when not. A report of a host that no longer runs the router, or of a
    router deleted since, changes nothing. Returns the status set, if any."""
    def work(s: Session) -> str | None:
        row = s.execute(select(Router.status).where(Router.id == router_id)).first()
        if row is None:
            return None
        hosts = {p.binding_host_id for p in router_ports(s, router_id)}
        if host not in hosts:
            log.info("l3: %s reported router %s, which it no longer runs: ignored",
                     host, router_id)
            return None
        status = ACTIVE if built else ERROR
        if row.status != status:
            # Not through the ORM object: a status is no change its host must hear of.
            s.execute(update(Router).where(Router.id == router_id).values(status=status))
        return status

    status = db.run(work)
    if status == ERROR:
        log.error("l3: router %s could not be built on %s: %s (status %s)", router_id, host,
                  error or "no reason given", ERROR)
    elif status == ACTIVE:
        log.info("l3: router %s built on %s", router_id, host)
    return status


def _leg(port: Port, network: Network, cidrs: dict[str, str],
         gateways: dict[str, str | None], allocations: list[Any], gateway: bool) -> RouterPort:
    addresses = tuple(f"{a.ip_address}/{ipaddress.ip_network(cidrs[a.subnet_id]).prefixlen}"
                      for a in allocations if a.subnet_id in cidrs)
    gateway_ips = tuple(g for a in allocations if (g := gateways.get(a.subnet_id))) \
        if gateway else ()
    return RouterPort(port_id=port.id, mac=port.mac_address, addresses=addresses,
                      network_id=port.network_id, mtu=network.mtu,
                      network_type=network.provider_network_type,
                      physical_network=network.provider_physical_network,
                      segmentation_id=network.provider_segmentation_id,
                      gateway_ips=gateway_ips)


def configuration(s: Session, router: Router, ports: list[Port]) -> RouterConfig:
    allocations = allocations_of(s, [p.id for p in ports])
    subnet_ids = {a.subnet_id for rows in allocations.values() for a in rows}
    subnets = list(s.scalars(select(Subnet).where(Subnet.id.in_(subnet_ids))))
    cidrs = {sn.id: sn.cidr for sn in subnets}
    gateways = {sn.id: sn.gateway_ip for sn in subnets}
    networks = {n.id: n for n in s.scalars(select(Network).where(
        Network.id.in_({p.network_id for p in ports})))}
    interfaces = tuple(_leg(p, networks[p.network_id], cidrs, gateways, allocations[p.id],
                            False) for p in ports if p.device_owner == INTERFACE_OWNER)
    gw_port = next((p for p in ports if p.device_owner == GATEWAY_OWNER
                    and p.id == router.gw_port_id), None)
    gateway = _leg(gw_port, networks[gw_port.network_id], cidrs, gateways,
                   allocations[gw_port.id], True) if gw_port is not None else None
    fips = s.scalars(select(FloatingIP).where(FloatingIP.router_id == router.id,
                                              FloatingIP.fixed_ip_address.is_not(None))
                     .order_by(FloatingIP.floating_ip_address))
    return RouterConfig(
        router_id=router.id, interfaces=interfaces, gateway=gateway,
        enable_snat=bool(router.enable_snat),
        routes=tuple((r["destination"], r["nexthop"]) for r in router.routes or []),
        floating_ips=tuple((f.floating_ip_address, f.fixed_ip_address or "") for f in fips
                           if gateway is not None))


def plan(s: Session, settings: Settings, router_id: str, before: set[str]) -> list[Cast]:
    """Schedule the router and say what its host (and each that ran it before) hears."""
    router = s.get(Router, router_id)
    ports = router_ports(s, router_id)
    had = {p.binding_host_id for p in ports if p.binding_host_id} | before
    host = schedule(s, settings, router, ports)
    casts: list[Cast] = []
    if host is not None and router is not None:
        casts.append((host, router_id, configuration(s, router, ports)))
    casts += [(old, router_id, None) for old in sorted(had - {host})]
    return casts


def _send(deps: Deps, ctx: RequestContext, casts: list[Cast], stamp: float) -> None:
    agents = AgentAPI(deps.bus)
    for host, router_id, config in casts:
        try:
            agents.sync_router(ctx, host, router_id, config.to_dict() if config else None,
                               stamp=stamp)
        except Exception:
            log.exception("l3: could not tell %s about router %s", host, router_id)


def sync_routers(deps: Deps, ctx: RequestContext, touched: dict[str, set[str]]) -> None:
    """Schedule the routers and tell their hosts (after the change was committed)."""
    stamp = time.time()

    def work(s: Session) -> tuple[list[Cast], set[str]]:
        casts: list[Cast] = []
        for router_id, before in sorted(touched.items()):
            casts += plan(s, deps.settings, router_id, before)
        rebound: set[str] = s.info.pop(REBOUND, set())
        s.info.pop(MOVED, None)
        s.flush()
        changes.forget(s)
        return casts, rebound

    casts, rebound = deps.db.run(work)
    _send(deps, ctx, casts, stamp)
    l2pop.push_views(deps, ctx, rebound, "l3")


def sync_host(deps: Deps, ctx: RequestContext, host: str) -> None:
    """Tell `host` every router it is to run (a full report), scheduling on the way: a
    router whose host is gone moves, and its new and old hosts are told."""
    stamp = time.time()

    def work(s: Session) -> tuple[list[Cast], list[dict[str, Any]], set[str]]:
        router_ids = sorted(set(s.scalars(select(Port.device_id)
                                          .where(Port.device_owner.in_(OWNERS)))))
        others: list[Cast] = []
        mine: list[dict[str, Any]] = []
        for router_id in router_ids:
            for target, rid, config in plan(s, deps.settings, router_id, set()):
                if target == host and config is not None:
                    mine.append(config.to_dict())
                elif target != host:
                    others.append((target, rid, config))
        rebound: set[str] = s.info.pop(REBOUND, set())
        moved: set[str] = s.info.pop(MOVED, set())
        s.flush()
        changes.forget(s)
        # The other hosts hear only of what changed for them: a router they lost or took.
        return [c for c in others if c[2] is None or c[1] in moved], mine, rebound

    others, mine, rebound = deps.db.run(work)
    AgentAPI(deps.bus).sync_routers_all(ctx, host, mine, stamp=stamp)
    _send(deps, ctx, others, stamp)
    l2pop.push_views(deps, ctx, rebound, "l3")
    log.info("l3: %s told its %d router(s)", host, len(mine))


class L3Notifier(Notifier):
    """A commit hook of the database: syncs the routers a transaction changed."""

    def __init__(self, deps: Deps) -> None:
        super().__init__(log, "l3", "routers")
        self.deps = deps

    def touched(self, info: Mapping[str, Any]) -> dict[str, set[str]]:
        """The routers changed, and those with a leg on a network or subnet changed."""
        touched = changes.ROUTERS.touched(info)
        networks = set(changes.NETWORKS.touched(info))
        if networks:
            try:
                with self.deps.db.reader() as s:
                    for router_id in s.scalars(select(Port.device_id).where(
                            Port.network_id.in_(networks), Port.device_owner.in_(OWNERS))):
                        touched.setdefault(router_id, set())
            except Exception:
                log.exception("l3: routers of networks %s not found", ", ".join(networks))
        return touched

    def sync(self, touched: dict[str, set[str]]) -> None:
        sync_routers(self.deps, RequestContext.admin(), touched)
