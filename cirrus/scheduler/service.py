"""The scheduler role: filters, then weighers, then an atomic claim; explains every refusal."""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from cirrus.context import RequestContext
from cirrus.hosts.view import load_hosts
from cirrus.scheduler import claims, rpcapi
from cirrus.scheduler.filters import DEFAULT_FILTERS, Filter, public_reason
from cirrus.scheduler.hoststate import HostState, RequestSpec
from cirrus.scheduler.rpcapi import SCHEDULER_TOPIC, Destination, SelectDestination
from cirrus.scheduler.weighers import rank

log = logging.getLogger(__name__)
MAX_REASONS_SHOWN = 3


def explain(total: int, refusals: dict[str, list[tuple[str, str]]], *,
            public: bool = False) -> str:
    """'No valid host was found. 3 host(s) considered: RamFilter refused 2 (fake-1: ...)'.

    `public`: the explanation members and readers see (Nova shows host names to admins only):
    counts and reasons, each distinct reason once, and no host names or zones of hosts.
    """
    if total == 0:
        return "No valid host was found. There are no compute hosts registered."
    parts = []
    for name, rows in refusals.items():
        if public:
            reasons = list(dict.fromkeys(public_reason(why) for _, why in rows))
        else:
            reasons = [f"{host}: {why}" for host, why in rows]
        shown = "; ".join(reasons[:MAX_REASONS_SHOWN])
        more = (f"; and {len(reasons) - MAX_REASONS_SHOWN} more"
                if len(reasons) > MAX_REASONS_SHOWN else "")
        parts.append(f"{name} refused {len(rows)} ({shown}{more})")
    return f"No valid host was found. {total} host(s) considered: " + ", ".join(parts) + "."


def forced(hosts: list[HostState], spec: RequestSpec) -> list[HostState]:
    """The hosts an admin's forced destination (availability_zone "AZ:HOST", "AZ::NODE" or
    "AZ:HOST:NODE") leaves; every host if none is forced. The filters still run on them."""
    if not (spec.force_host or spec.force_node):
        return hosts
    return [h for h in hosts if (not spec.force_host or h.host == spec.force_host)
            and (not spec.force_node or h.node == spec.force_node)]


def filter_hosts(hosts: list[HostState], spec: RequestSpec,
                 filters: list[tuple[str, Filter]] = DEFAULT_FILTERS
                 ) -> tuple[list[HostState], dict[str, list[tuple[str, str]]]]:
    passed: list[HostState] = []
    refusals: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for host in hosts:
        for name, check in filters:
            reason = check(host, spec)
            if reason is not None:
                refusals[name].append((host.node, reason))
                break
        else:
            passed.append(host)
    return passed, dict(refusals)


class _InstanceGone(Exception):
    pass


class Scheduler:
    def __init__(self, cloud) -> None:
        self.cloud = cloud
        self.settings = cloud.settings

    def start(self) -> None:
        self.cloud.bus.subscribe(SCHEDULER_TOPIC, rpcapi.endpoints(self), workers=4)

    def stop(self) -> None:
        self.cloud.bus.unsubscribe(SCHEDULER_TOPIC)

    def select_destination(self, ctx: RequestContext,
                           payload: SelectDestination | Mapping[str, Any]) -> dict[str, Any]:
        """Pick a host, claim its resources and place the instance there, in one transaction.

        Returns {"host", "node"}, or {"host": None, "reason", "public_reason"} when nothing
        fits (the reason with host names, and without), or
        {"host": None, "gone": True} when the instance was deleted meanwhile: the wire form
        of a rpcapi.Destination.
        """
        spec = RequestSpec.from_dict(SelectDestination.coerce(payload).as_dict())

        def work(s):
            hosts = forced(load_hosts(s, self.settings), spec)
            if not hosts and (spec.force_host or spec.force_node):
                wanted = spec.force_host or spec.force_node
                return Destination(
                    host=None,
                    reason=f"No valid host was found. The forced host {wanted} is not a "
                           "compute host.",
                    public_reason="No valid host was found. The forced host is not a compute "
                                  "host.")
            passed, refusals = filter_hosts(hosts, spec)
            ranked = rank(passed)
            subset = max(1, self.settings.scheduler_host_subset_size)
            while ranked:
                pick = random.choice(ranked[:subset])
                if claims.claim(s, pick.node_id, spec.instance_uuid, spec.vcpus,
                                spec.memory_mb, spec.disk_gb):
                    if not claims.place(s, spec.instance_uuid, pick.host, pick.node,
                                        task=spec.task):
                        raise _InstanceGone
                    return Destination(host=pick.host, node=pick.node)
                refusals.setdefault("Claim", []).append((pick.node, "filled up by a concurrent claim"))
                ranked.remove(pick)
            # `reason` names the hosts (admins, logs); `public_reason` is what others see.
            return Destination(host=None, reason=explain(len(hosts), refusals),
                               public_reason=explain(len(hosts), refusals, public=True))

        try:
            result: Destination = self.cloud.db.run(work)
        except _InstanceGone:  # deleted while waiting to be scheduled: the claim rolled back
            result = Destination(host=None, gone=True, reason="The instance was deleted.")
            return result.to_wire()
        if result.host is None:
            log.warning("no host for %s: %s", spec.instance_uuid, result.reason)
        else:
            log.info("instance %s scheduled to %s", spec.instance_uuid, result.host)
        return result.to_wire()
