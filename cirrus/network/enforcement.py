"""Delivery of security groups to the hosts that enforce them (issue 14, sg).

Agents never read the database, so the network service sends each affected host its whole
filter state (`HostFilterState`: its bound ports, their groups' rules, the member addresses
of every group those rules name as a remote group, which groups are stateless) after a
change is committed:

- a rule created or deleted: the hosts with ports in the group;
- a group's membership changed (a port created, deleted, or its groups, addresses, pairs
  or port security changed): the hosts with ports in groups whose rules name it as a remote
  group, plus the port's own host;
- a port bound to a host (a build, an attach, a move): that host.

Sending is best effort after the commit: a host that misses an update gets the next one,
and each agent keeps its last state on disk and rebuilds its tables from it on start.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from cirrus.agent.rpcapi import AgentAPI
from cirrus.context import RequestContext
from cirrus.db.engine import Database
from cirrus.db.models import IPAllocation, Port, SecurityGroup
from cirrus.network.port_filter import (
    AddressPair,
    HostFilterState,
    PortFilter,
    SecurityGroupRule,
)
from cirrus.network.ports import filtered

log = logging.getLogger(__name__)


def _addresses(s: Session, port_ids: list[str]) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {pid: [] for pid in port_ids}
    if port_ids:
        for port_id, ip in s.execute(select(IPAllocation.port_id, IPAllocation.ip_address)
                                     .where(IPAllocation.port_id.in_(port_ids))
                                     .order_by(IPAllocation.created_at, IPAllocation.subnet_id)):
            result[port_id].append(ip)
    return result


def _pairs(port: Port) -> tuple[AddressPair, ...]:
    return tuple(AddressPair(p["ip_address"], p.get("mac_address") or port.mac_address)
                 for p in port.allowed_address_pairs or [])


def port_filters(s: Session, ports: list[Port]) -> list[PortFilter]:
    addresses = _addresses(s, [p.id for p in ports])
    return [PortFilter(port_id=p.id, mac=p.mac_address, addresses=tuple(addresses[p.id]),
                       security_groups=tuple(p.security_groups or ()),
                       port_security_enabled=filtered(p),
                       allowed_address_pairs=_pairs(p), network_id=p.network_id)
            for p in ports]


def group_members(s: Session, group_ids: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Each group's member addresses: the fixed IPs and address pairs of its ports."""
    wanted = set(group_ids)
    if not wanted:
        return {}
    projects = set(s.scalars(select(SecurityGroup.project_id)
                             .where(SecurityGroup.id.in_(wanted))))
    ports = [p for p in s.scalars(select(Port).where(Port.project_id.in_(projects)))
             if wanted & set(p.security_groups or ())]
    members: dict[str, list[str]] = {g: [] for g in wanted}
    addresses = _addresses(s, [p.id for p in ports])
    for port in ports:
        own = [*addresses[port.id], *(p.ip_address for p in _pairs(port))]
        for group in wanted & set(port.security_groups or ()):
            members[group] += own
    return {g: tuple(sorted(set(addrs))) for g, addrs in members.items()}


def host_filter_state(s: Session, host: str) -> HostFilterState:
    """Everything `host` needs to filter its ports, read now."""
    generation = time.time()
    ports = list(s.scalars(select(Port).where(Port.binding_host_id == host)))
    groups = {g for p in ports if filtered(p) for g in p.security_groups or ()}
    rules: dict[str, tuple[SecurityGroupRule, ...]] = {}
    stateless: list[str] = []
    for group in s.scalars(select(SecurityGroup).where(SecurityGroup.id.in_(groups))):
        rules[group.id] = tuple(SecurityGroupRule.from_dict(r) for r in group.rules or [])
        if not group.stateful:
            stateless.append(group.id)
    remote = {r.remote_group_id for rs in rules.values() for r in rs if r.remote_group_id}
    return HostFilterState(generation=generation, ports=tuple(port_filters(s, ports)),
                           rules=rules, members=group_members(s, remote),
                           stateless=tuple(sorted(stateless)))


def hosts_using_groups(s: Session, group_ids: Iterable[str]) -> set[str]:
    """Hosts with a bound port in one of the groups or in a group whose rules name one of
    them as a remote group: the hosts a change of the groups' rules or members concerns."""
    wanted = set(group_ids)
    if not wanted:
        return set()
    projects = set(s.scalars(select(SecurityGroup.project_id)
                             .where(SecurityGroup.id.in_(wanted))))
    referencing = {g.id for g in s.scalars(select(SecurityGroup)
                                           .where(SecurityGroup.project_id.in_(projects)))
                   if any(r.get("remote_group_id") in wanted for r in g.rules or [])}
    concerned = wanted | referencing
    # A port's groups are its project's (cirrus.network.security_groups.resolve_groups).
    rows = s.execute(select(Port.binding_host_id, Port.security_groups)
                     .where(Port.binding_host_id.is_not(None), Port.project_id.in_(projects)))
    return {host for host, groups in rows if host and concerned & set(groups or ())}


def hosts_for_port(s: Session, port: Port, *extra_groups: str) -> set[str]:
    """The hosts a change of `port` concerns (its own and its groups' remote users)."""
    hosts = hosts_using_groups(s, {*(port.security_groups or ()), *extra_groups})
    if port.binding_host_id:
        hosts.add(port.binding_host_id)
    return hosts


def hosts_for_ports(s: Session, port_ids: Iterable[str]) -> set[str]:
    """The hosts a change of these ports concerns (gone ones are skipped): read it before
    deleting them, send after."""
    ids = list(port_ids)
    if not ids:
        return set()
    groups: set[str] = set()
    hosts: set[str] = set()
    for port in s.scalars(select(Port).where(Port.id.in_(ids))):
        groups |= set(port.security_groups or ())
        if port.binding_host_id:
            hosts.add(port.binding_host_id)
    return hosts | hosts_using_groups(s, groups)


def send(db: Database, agents: AgentAPI, ctx: RequestContext, hosts: Iterable[str]) -> None:
    """Send each host its filter state (after the change is committed); never raises."""
    for host in sorted(set(hosts)):
        try:
            with db.reader() as s:
                state = host_filter_state(s, host)
            agents.update_security_groups(ctx, host, state.to_dict())
        except Exception:
            log.exception("sending security groups to %s failed", host)


def send_for_ports(db: Database, agents: AgentAPI, ctx: RequestContext,
                   port_ids: Iterable[str], extra_hosts: Iterable[str] = ()) -> None:
    """Send the hosts concerned by these ports (a server moved: its new host) their state."""
    try:
        with db.reader() as s:
            hosts = hosts_for_ports(s, port_ids)
    except Exception:
        log.exception("finding the hosts of ports %s failed", list(port_ids))
        hosts = set()
    send(db, agents, ctx, hosts | set(extra_hosts))
