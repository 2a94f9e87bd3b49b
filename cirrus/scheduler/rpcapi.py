"""The scheduler's bus contract: its topic, its one message, and the client the conductor
uses to place an instance.

Version 1 of each payload is the unversioned dict sent before the contracts, with the same
fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from cirrus.bus import Bus
from cirrus.bus.contract import BusHandler, Payload
from cirrus.bus.contract import endpoints as _endpoints
from cirrus.context import RequestContext

SCHEDULER_TOPIC = "scheduler"


@dataclass(frozen=True)
class SelectDestination(Payload):
    """Pick a host for the instance, claim its resources and place the instance there."""

    instance_uuid: str
    vcpus: int
    memory_mb: int
    disk_gb: int
    availability_zone: str | None = None
    exclude_hosts: tuple[str, ...] = ()
    storage_pool: str | None = None  # None: the host's default pool
    # An admin's forced destination (Nova's force_hosts/force_nodes).
    force_host: str | None = None
    force_node: str | None = None
    # None: a build (building/scheduling); "unshelving": an unshelve of an offloaded server.
    task: str | None = None


@dataclass(frozen=True)
class Destination(Payload):
    """The answer: `host` and `node`, or no host and why (`reason` names hosts, for admins
    and logs; `public_reason` does not), or `gone`: the instance was deleted meanwhile."""

    host: str | None
    node: str | None = None
    reason: str | None = None
    public_reason: str | None = None
    gone: bool = False


MESSAGES: dict[str, type[Payload]] = {"select_destination": SelectDestination}


class SchedulerHandler(Protocol):
    def select_destination(self, ctx: RequestContext,
                           payload: SelectDestination) -> Destination | dict[str, Any]: ...


def endpoints(handler: SchedulerHandler) -> dict[str, BusHandler]:
    """The handlers the scheduler subscribes to SCHEDULER_TOPIC with."""
    return _endpoints(MESSAGES, handler)


class SchedulerAPI:
    """The client side."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    def select_destination(self, ctx: RequestContext, request: SelectDestination,
                           timeout: float | None = None) -> Destination:
        """BusTimeout or RemoteError if the scheduler did not answer."""
        reply = self.bus.call(ctx, SCHEDULER_TOPIC, "select_destination", request.to_wire(),
                              timeout=timeout)
        return Destination.from_wire(reply)


