"""Scheduler filters: one question each, no I/O. A filter returns None if the host passes,
or the reason it refused the host, so "no valid host" can say exactly why."""

from __future__ import annotations

from collections.abc import Callable

from cirrus.scheduler.hoststate import HostState, RequestSpec

Filter = Callable[[HostState, RequestSpec], str | None]


def compute_filter(host: HostState, spec: RequestSpec) -> str | None:
    if not host.service_up:
        return "agent is down"
    if host.service_disabled:
        return f"agent is disabled ({host.disabled_reason or 'no reason given'})"
    return None


def retry_filter(host: HostState, spec: RequestSpec) -> str | None:
    if host.host in spec.exclude_hosts:
        return "an earlier build attempt failed there"
    return None


def availability_zone_filter(host: HostState, spec: RequestSpec) -> str | None:
    if spec.availability_zone and host.availability_zone != spec.availability_zone:
        return f"in zone {host.availability_zone}, not {spec.availability_zone}"
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


# Name as shown in explanations -> filter. Cheap, decisive filters first.
DEFAULT_FILTERS: list[tuple[str, Filter]] = [
    ("ComputeFilter", compute_filter),
    ("RetryFilter", retry_filter),
    ("AvailabilityZoneFilter", availability_zone_filter),
    ("CoreFilter", core_filter),
    ("RamFilter", ram_filter),
    ("DiskFilter", disk_filter),
]
