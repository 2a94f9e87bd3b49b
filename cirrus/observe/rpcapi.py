"""The admin fanout's bus contract: every role process takes it (run-time log level)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cirrus.bus import Bus
from cirrus.bus.contract import BusHandler, Payload, route_as_dict
from cirrus.context import RequestContext

# Every role process subscribes to this fanout topic, so one admin request changes the log
# level of all of them (cirrus.api.admin sends it).
ADMIN_TOPIC = "cirrus-admin"


@dataclass(frozen=True)
class SetLogLevel(Payload):
    """Set the level of `logger` (the root logger if None) until the process restarts."""

    VERSION = 1  # unchanged since before the contracts: sent without a version key

    level: str
    logger: str | None = None


MESSAGES: dict[str, type[Payload]] = {"set_log_level": SetLogLevel}


def endpoints(
        set_log_level: Callable[[RequestContext, dict[str, Any]], object]) -> dict[str, BusHandler]:
    """The handlers every role process subscribes to ADMIN_TOPIC with (`fanout=True`);
    `set_log_level` takes the payload's `as_dict()`."""
    return {"set_log_level": route_as_dict(SetLogLevel, set_log_level)}


class AdminAPI:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    def set_log_level(self, ctx: RequestContext, level: str, logger: str | None) -> None:
        """To every role process (a fanout)."""
        self.bus.fanout(ctx, ADMIN_TOPIC, "set_log_level",
                        SetLogLevel(level=level, logger=logger).to_wire())
