"""Which networks' DHCP a write transaction changed, noted as it flushes.

A flush that adds, changes or deletes a port, a subnet or a network notes the network in
`session.info` (for a deleted DHCP port, also the host that served it, which must be told
to stop); after the commit, `cirrus.db.engine.Database` hands the session's info to its
commit hooks, and the DHCP notifier (cirrus.network.dhcp.control) syncs those networks.
Listening to every session's flush, rather than calling something from each service, means
no code path that changes ports (the API, the conductor's builds and deletes, hot-plug,
auto networks) can forget to.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from cirrus.db.models import Network, Port, Subnet
from cirrus.network.dhcp.model import DHCP_OWNER

KEY = "dhcp.networks"  # in Session.info: network id -> hosts whose DHCP port went


def touched(info: dict[str, Any]) -> dict[str, set[str]]:
    """The networks a committed transaction changed (its session's info)."""
    return dict(info.get(KEY) or {})


def forget(s: Session) -> None:
    """Drop what this transaction noted (the notifier's own writes need no second sync)."""
    s.info.pop(KEY, None)


def note(s: Session, network_id: str, host: str | None = None) -> None:
    hosts = s.info.setdefault(KEY, {}).setdefault(network_id, set())
    if host:
        hosts.add(host)


@event.listens_for(Session, "before_flush")
def _note_changes(s: Session, _context: object, _instances: object) -> None:
    for obj in (*s.new, *s.dirty, *s.deleted):
        if isinstance(obj, Port):
            gone_dhcp = obj in s.deleted and obj.device_owner == DHCP_OWNER
            note(s, obj.network_id, obj.binding_host_id if gone_dhcp else None)
        elif isinstance(obj, Subnet):
            note(s, obj.network_id)
        elif isinstance(obj, Network):
            note(s, obj.id)
