"""Telling agents who shares their VXLAN networks (issue 14, l2).

The conductor sends each host its views (cirrus.network.l2pop) over the bus: of the
networks a port was just bound to or unbound from (a build, an interface attach or detach,
a delete, a resize or its revert, a shelve offload, an unshelve), of all its networks when
its agent starts (`full`), and of everything every `sync_interval` (`resync`), which also
covers what changes outside these paths (a port bound by another service). Messages are
whole views, never differences, so one lost is mended by the next, and the agent drops one
read before a view it applied already. Nothing here fails a workflow: a host that missed an
update gets the next one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select

from cirrus.agent.rpcapi import AgentAPI
from cirrus.context import RequestContext
from cirrus.db.engine import Database
from cirrus.db.models import Instance
from cirrus.network import l2pop
from cirrus.network.model import NetworkPeer

log = logging.getLogger(__name__)


def _wire(view: Mapping[str, list[NetworkPeer]]) -> dict[str, list[dict[str, Any]]]:
    return {network_id: [peer.to_dict() for peer in peers] for network_id, peers in view.items()}


def push_networks(db: Database, agents: AgentAPI, ctx: RequestContext,
                  network_ids: Iterable[str]) -> None:
    """Every host with a port on these networks gets its view of them."""
    ids = sorted(set(network_ids))
    if not ids:
        return
    try:
        taken_at = time.time()
        with db.reader() as s:
            views = l2pop.views(s, ids)
        for host, view in sorted(views.items()):
            agents.update_network_peers(ctx, host, _wire(view), taken_at=taken_at)
    except Exception:  # the periodic resync mends it
        log.exception("sending the peers of networks %s failed", ", ".join(ids))


def push_host(db: Database, agents: AgentAPI, ctx: RequestContext, host: str) -> None:
    """The host's whole state: every VXLAN network it has a port on (its agent started);
    and the other hosts of those networks their views of them (its VTEP may be new)."""
    try:
        taken_at = time.time()
        with db.reader() as s:
            views = l2pop.views(s, l2pop.host_networks(s, host))
        agents.update_network_peers(ctx, host, _wire(views.pop(host, {})), full=True,
                                    taken_at=taken_at)
        for other, view in sorted(views.items()):
            agents.update_network_peers(ctx, other, _wire(view), taken_at=taken_at)
    except Exception:
        log.exception("sending the network peers of %s failed", host)


def resync(db: Database, agents: AgentAPI, ctx: RequestContext) -> int:
    """Every host with a port on a VXLAN network gets its whole state; how many hosts."""
    taken_at = time.time()
    with db.reader() as s:
        views = l2pop.views(s)
    for host, view in sorted(views.items()):
        agents.update_network_peers(ctx, host, _wire(view), full=True, taken_at=taken_at)
    return len(views)


def push_instance(db: Database, agents: AgentAPI, ctx: RequestContext, uuid: str) -> None:
    """The networks of a server whose ports moved (a resize, a shelve or unshelve)."""
    try:
        with db.reader() as s:
            nics = s.scalar(select(Instance.nics).where(Instance.uuid == uuid))
    except Exception:
        log.exception("reading the NICs of %s failed", uuid)
        return
    push_networks(db, agents, ctx, network_ids(nics))


def network_ids(nics: Iterable[Mapping[str, Any]] | None) -> list[str]:
    """The networks of a NIC map's entries."""
    return [nic["network_id"] for nic in nics or [] if nic.get("network_id")]
