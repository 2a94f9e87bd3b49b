"""The order of the DHCP and router messages an agent gets (issue 14, dhcp and l3).

Each message carries `stamp`, when the control side read what it says; the agent keeps,
per network or router, the stamp of the message it applied last, and drops an older one
(the bus may deliver two messages in either order). A full message (`..._all`) lists
everything the host is to serve as of its stamp: what a newer single message set up stays.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

from cirrus.agent.base import log

T = TypeVar("T")


def fresh(stamps: dict[str, float], key: str, stamp: float, area: str, kind: str) -> bool:
    """Whether a message read at `stamp` about `key` (a `kind`: network, router) is not
    older than the last one applied; if so it is now the last one. `area` prefixes the log."""
    if stamp < stamps.get(key, 0.0):
        log.info("%s: an older message for %s %s ignored", area, kind, key)
        return False
    stamps[key] = stamp
    return True


def merge_full(stamps: dict[str, float], listed: Iterable[tuple[str, T]],
               served: Mapping[str, T], stamp: float) -> list[T]:
    """What a full message read at `stamp` leaves served: each listed item not older than
    its last message (stamped anew), and each served one that a newer message set up."""
    wanted: dict[str, T] = {}
    for key, item in listed:
        if stamps.get(key, 0.0) <= stamp:
            wanted[key] = item
            stamps[key] = stamp
    for key, item in served.items():
        if stamps.get(key, 0.0) > stamp:
            wanted.setdefault(key, item)
    return list(wanted.values())
