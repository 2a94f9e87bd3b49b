"""Scheduler filters: one question each, no I/O. A filter returns None if the host passes,
or the reason it refused the host, so "no valid host" can say exactly why."""

from __future__ import annotations

from collections.abc import Callable

from cirrus.scheduler.hoststate import HostState, RequestSpec
from cirrus.storage.pools import DEFAULT_POOL

Filter = Callable[[HostState, RequestSpec], str | None]


class Reason(str):
    """A filter's refusal as admins read it, with `.public`: the same without what only
    admins may see (host names, zones of hosts, an operator's disable reason, a host's pools).
    A plain str is public as it stands."""

    public: str

    def __new__(cls, text: str, public: str | None = None) -> Reason:
        reason = super().__new__(cls, text)
        reason.public = text if public is None else public
        return reason


def public_reason(reason: str) -> str:
    return getattr(reason, "public", reason)


def compute_filter(host: HostState, spec: RequestSpec) -> str | None:
    if not host.service_up:
        return "agent is down"
    if host.service_disabled:
        return Reason(f"agent is disabled ({host.disabled_reason or 'no reason given'})",
                      "agent is disabled")
    return None


def retry_filter(host: HostState, spec: RequestSpec) -> str | None:
    if host.host in spec.exclude_hosts:
        return "an earlier build attempt failed there"
    return None


def availability_zone_filter(host: HostState, spec: RequestSpec) -> str | None:
    if spec.availability_zone and host.availability_zone != spec.availability_zone:
        return Reason(f"in zone {host.availability_zone}, not {spec.availability_zone}",
                      f"not in zone {spec.availability_zone}")
    return None


def core_filter(host: HostState, spec: RequestSpec) -> str | None:
    if spec.vcpus > host.free_vcpus:
        return f"{host.free_vcpus:g} vCPUs free, {spec.vcpus} needed"
    return None


def ram_filter(host: HostState, spec: RequestSpec) -> str | None:
    if spec.memory_mb > host.free_ram_mb:
        return f"{host.free_ram_mb:g} MB RAM free, {spec.memory_mb} MB needed"
    return None


def disk_filter(host: HostState, spec: RequestSpec) -> str | None:
    if spec.disk_gb > host.free_disk_gb:
        return f"{host.free_disk_gb:g} GB disk free, {spec.disk_gb} GB needed"
    return None


def storage_pool_filter(host: HostState, spec: RequestSpec) -> str | None:
    """The host has the storage pool asked for (none asked: `default`) with room for the root
    disk.

    The room is physical free space from the agent's last report, a sanity check only: what is
    promised on the host is DiskFilter's business (local_gb, the allocation ratio, claims).
    Claims are not subtracted here, as disks already written are in the reported free space
    and would count twice; builds since the report are not seen either.
    """
    pool = spec.storage_pool or DEFAULT_POOL
    if not host.storage_pools:
        # An agent older than pool reports: its default pool is what every host had before.
        return None if pool == DEFAULT_POOL else f"its agent reports no storage pools, not {pool!r}"
    capacity = host.storage_pools.get(pool)
    if capacity is None:
        return Reason(f"no storage pool {pool!r} (it has: {', '.join(sorted(host.storage_pools))})",
                      f"no storage pool {pool!r}")
    free = capacity.get("free_gb", 0)
    if spec.disk_gb > free:
        return f"pool {pool!r} has {free:g} GB free, {spec.disk_gb} GB needed"
    return None


# Name as shown in explanations -> filter. Cheap, decisive filters first.
DEFAULT_FILTERS: list[tuple[str, Filter]] = [
    ("ComputeFilter", compute_filter),
    ("RetryFilter", retry_filter),
    ("AvailabilityZoneFilter", availability_zone_filter),
    ("StoragePoolFilter", storage_pool_filter),
    ("CoreFilter", core_filter),
    ("RamFilter", ram_filter),
    ("DiskFilter", disk_filter),
]
