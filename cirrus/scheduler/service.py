"""The scheduler role: filters, then weighers, then an atomic claim; explains every refusal."""

from __future__ import annotations

import logging
import random
from collections import defaultdict

from sqlalchemy import select

from cirrus.compute.liveness import AGENT_BINARY, service_is_up
from cirrus.context import RequestContext
from cirrus.db.models import ComputeNode, Service, utcnow
from cirrus.scheduler import claims
from cirrus.scheduler.filters import DEFAULT_FILTERS, Filter
from cirrus.scheduler.hoststate import HostState, RequestSpec
from cirrus.scheduler.weighers import rank

log = logging.getLogger(__name__)
TOPIC = "scheduler"
MAX_REASONS_SHOWN = 3


def explain(total: int, refusals: dict[str, list[tuple[str, str]]]) -> str:
    """'No valid host was found. 3 hosts considered; RamFilter refused 2 (fake-1: ...)'."""
    if total == 0:
        return "No valid host was found. There are no compute hosts registered."
    parts = []
    for name, rows in refusals.items():
        shown = "; ".join(f"{host}: {why}" for host, why in rows[:MAX_REASONS_SHOWN])
        more = f"; and {len(rows) - MAX_REASONS_SHOWN} more" if len(rows) > MAX_REASONS_SHOWN else ""
        parts.append(f"{name} refused {len(rows)} ({shown}{more})")
    return f"No valid host was found. {total} host(s) considered: " + ", ".join(parts) + "."


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


class Scheduler:
    def __init__(self, cloud) -> None:  # noqa: ANN001 - cirrus.runtime.Cloud
        self.cloud = cloud
        self.settings = cloud.settings

    def start(self) -> None:
        self.cloud.bus.subscribe(TOPIC, {"select_destination": self.select_destination},
                                 workers=4)

    def stop(self) -> None:
        self.cloud.bus.unsubscribe(TOPIC)

    def load_hosts(self, s) -> list[HostState]:  # noqa: ANN001
        now = utcnow()
        services = {svc.host: svc for svc in s.scalars(
            select(Service).where(Service.binary == AGENT_BINARY))}
        hosts = []
        for cn in s.scalars(select(ComputeNode)):
            svc = services.get(cn.host)
            hosts.append(HostState(
                node_id=cn.id, host=cn.host, node=cn.hypervisor_hostname,
                availability_zone=cn.availability_zone or self.settings.default_availability_zone,
                vcpus=cn.vcpus, memory_mb=cn.memory_mb, local_gb=cn.local_gb,
                vcpus_used=cn.vcpus_used, memory_mb_used=cn.memory_mb_used,
                local_gb_used=cn.local_gb_used, cpu_allocation_ratio=cn.cpu_allocation_ratio,
                ram_allocation_ratio=cn.ram_allocation_ratio,
                disk_allocation_ratio=cn.disk_allocation_ratio,
                service_up=svc is not None and service_is_up(svc, self.settings.service_down_time, now),
                service_disabled=bool(svc and svc.disabled),
                disabled_reason=svc.disabled_reason if svc else None,
            ))
        return hosts

    def select_destination(self, ctx: RequestContext, payload: dict) -> dict:
        """Pick and claim a host. Returns {"host", "node"} or {"host": None, "reason"}."""
        spec = RequestSpec.from_dict(payload)

        def work(s):  # noqa: ANN001, ANN202
            hosts = self.load_hosts(s)
            passed, refusals = filter_hosts(hosts, spec)
            ranked = rank(passed)
            subset = max(1, self.settings.scheduler_host_subset_size)
            while ranked:
                pick = random.choice(ranked[:subset])
                if claims.claim(s, pick.node_id, spec.instance_uuid, spec.vcpus,
                                spec.memory_mb, spec.disk_gb):
                    return {"host": pick.host, "node": pick.node}
                refusals.setdefault("Claim", []).append((pick.node, "filled up by a concurrent claim"))
                ranked.remove(pick)
            return {"host": None, "reason": explain(len(hosts), refusals)}

        result = self.cloud.db.run(work)
        if result["host"] is None:
            log.warning("no host for %s: %s", spec.instance_uuid, result["reason"])
        else:
            log.info("instance %s scheduled to %s", spec.instance_uuid, result["host"])
        return result
