"""Which routers a write transaction changed, noted as it flushes (as DHCP's
cirrus.network.dhcp.changes): a router, one of its ports (`network:router_interface`,
`network:router_gateway`) or a floating IP on it. A router's host is told after the commit
(cirrus.network.l3.control.L3Notifier), whatever code path made the change.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from cirrus.db.models import FloatingIP, Port, Router
from cirrus.network.l3.model import GATEWAY_OWNER, INTERFACE_OWNER

KEY = "l3.routers"  # in Session.info: router id -> hosts that ran it and must hear


def touched(info: dict[str, Any]) -> dict[str, set[str]]:
    return dict(info.get(KEY) or {})


def forget(s: Session) -> None:
    s.info.pop(KEY, None)


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
        elif isinstance(obj, FloatingIP):
            note(s, obj.router_id)
            for old in _previous(obj, "router_id"):
                note(s, old)
