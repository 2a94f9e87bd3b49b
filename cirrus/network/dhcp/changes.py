"""Which networks' DHCP a write transaction changed, noted as it flushes
(cirrus.db.commit_hooks).

A flush that adds, changes or deletes a port, a subnet or a network notes the network (for
a deleted DHCP port, also the host that served it, which must be told to stop); after the
commit, the DHCP notifier (cirrus.network.dhcp.control.DhcpNotifier) syncs those networks,
whatever code path changed them (the API, the conductor's builds and deletes, hot-plug,
auto networks).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from cirrus.db.commit_hooks import Notes, on_flush
from cirrus.db.models import Network, Port, Subnet
from cirrus.network.dhcp.model import DHCP_OWNER

NETWORKS = Notes("dhcp.networks")  # network id -> hosts whose DHCP port went


def _notice(s: Session, obj: object) -> None:
    if isinstance(obj, Port):
        gone_dhcp = obj in s.deleted and obj.device_owner == DHCP_OWNER
        NETWORKS.note(s, obj.network_id, obj.binding_host_id if gone_dhcp else None)
    elif isinstance(obj, Subnet):
        NETWORKS.note(s, obj.network_id)
    elif isinstance(obj, Network):
        NETWORKS.note(s, obj.id)


on_flush(_notice)
