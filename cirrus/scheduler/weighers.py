"""Weighers: score the hosts that passed. Higher is better; weights are normalised to 0..1."""

from __future__ import annotations

from collections.abc import Callable

from cirrus.scheduler.hoststate import HostState

Weigher = Callable[[HostState], float]


def ram_weigher(host: HostState) -> float:
    """Spread: prefer the host with the most free RAM."""
    return host.free_ram_mb


def cpu_weigher(host: HostState) -> float:
    return host.free_vcpus


DEFAULT_WEIGHERS: list[tuple[float, Weigher]] = [(1.0, ram_weigher), (0.5, cpu_weigher)]


def rank(hosts: list[HostState], weighers: list[tuple[float, Weigher]] = DEFAULT_WEIGHERS
         ) -> list[HostState]:
    if len(hosts) <= 1:
        return list(hosts)
    totals = [0.0] * len(hosts)
    for multiplier, weigher in weighers:
        raw = [weigher(h) for h in hosts]
        low, high = min(raw), max(raw)
        span = high - low
        for i, value in enumerate(raw):
            totals[i] += multiplier * ((value - low) / span if span else 0.0)
    order = sorted(range(len(hosts)), key=lambda i: totals[i], reverse=True)
    return [hosts[i] for i in order]
