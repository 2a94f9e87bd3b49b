"""Which routers a write transaction changed, noted as it flushes (as DHCP's
cirrus.network.dhcp.changes): a router, one of its ports (`network:router_interface`,
`network:router_gateway`) or a floating IP on it, or a network or subnet it has a leg on
(its MTU, a subnet's gateway). A router's host is told after the commit
(cirrus.network.l3.control.L3Notifier), whatever code path made the change.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from cirrus.db.models import FloatingIP, Network, Port, Router, Subnet
from cirrus.network.l3.model import GATEWAY_OWNER, INTERFACE_OWNER

KEY = "l3.routers"  # in Session.info: router id -> hosts that ran it and must hear
NETWORKS = "l3.networks"  # in Session.info: networks (MTU, subnets) whose routers must hear


def touched(info: dict[str, Any]) -> dict[str, set[str]]:
    return dict(info.get(KEY) or {})


def touched_networks(info: dict[str, Any]) -> set[str]:
    """Networks or subnets changed: the routers with a leg there are resolved after."""
    return set(info.get(NETWORKS) or ())


def forget(s: Session) -> None:
    s.info.pop(KEY, None)
    s.info.pop(NETWORKS, None)


def note(s: Session, router_id: str | None, host: str | None = None) -> None:
    if not router_id:
        return
    hosts = s.info.setdefault(KEY, {}).setdefault(router_id, set())
    if host:
        hosts.add(host)


def _previous(obj: object, attribute: str) -> list[Any]:
    history = inspect(obj).attrs[attribute].history
    return list(history.deleted or ())


@event.listens_for(Session, "before_flush")
def _note_changes(s: Session, _context: object, _instances: object) -> None:
    for obj in (*s.new, *s.dirty, *s.deleted):
        if isinstance(obj, Router):
            note(s, obj.id)
        elif isinstance(obj, Port) and obj.device_owner in (INTERFACE_OWNER, GATEWAY_OWNER):
            note(s, obj.device_id, obj.binding_host_id if obj in s.deleted else None)
            for old in _previous(obj, "device_id"):
                note(s, old)
        elif isinstance(obj, Subnet) and obj not in s.new:  # a new one has no router yet
            s.info.setdefault(NETWORKS, set()).add(obj.network_id)
        elif isinstance(obj, Network) and obj in s.dirty:
            s.info.setdefault(NETWORKS, set()).add(obj.id)
        elif isinstance(obj, FloatingIP):
            note(s, obj.router_id)
            for old in _previous(obj, "router_id"):
                note(s, old)
