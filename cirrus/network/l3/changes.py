"""Which routers a write transaction changed, noted as it flushes (cirrus.db.commit_hooks,
as DHCP's cirrus.network.dhcp.changes): a router, one of its ports
(`network:router_interface`, `network:router_gateway`) or a floating IP on it, or a network
or subnet it has a leg on (its MTU, a subnet's gateway). A router's host is told after the
commit (cirrus.network.l3.control.L3Notifier), whatever code path made the change.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from cirrus.db.commit_hooks import Notes, on_flush, previous
from cirrus.db.models import FloatingIP, Network, Port, Router, Subnet
from cirrus.network.l3.model import GATEWAY_OWNER, INTERFACE_OWNER

ROUTERS = Notes("l3.routers")  # router id -> hosts that ran it and must hear
# Networks (MTU, subnets) whose routers must hear: resolved to routers after the commit.
NETWORKS = Notes("l3.networks")


def forget(s: Session) -> None:
    ROUTERS.forget(s)
    NETWORKS.forget(s)


def _notice(s: Session, obj: object) -> None:
    if isinstance(obj, Router):
        ROUTERS.note(s, obj.id)
    elif isinstance(obj, Port) and obj.device_owner in (INTERFACE_OWNER, GATEWAY_OWNER):
        ROUTERS.note(s, obj.device_id, obj.binding_host_id if obj in s.deleted else None)
        for old in previous(obj, "device_id"):
            ROUTERS.note(s, old)
    elif isinstance(obj, Subnet) and obj not in s.new:  # a new one has no router yet
        NETWORKS.note(s, obj.network_id)
    elif isinstance(obj, Network) and obj in s.dirty:
        NETWORKS.note(s, obj.id)
    elif isinstance(obj, FloatingIP):
        ROUTERS.note(s, obj.router_id)
        for old in previous(obj, "router_id"):
            ROUTERS.note(s, old)


on_flush(_notice)
