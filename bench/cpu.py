"""Who used the cores during the server runs: Cirrus, PostgreSQL, RabbitMQ, the client, others.

On two shared cores a throughput figure means little without it: a target can be slower
because its own processes are busy, because the database and the broker take their share,
or because something else on the machine ran at the same time. CPU seconds are read with
psutil at the start and end of each measured window and added up per group; a process
that started inside a window (a new PostgreSQL backend) counts whole, one that ended inside
it is lost (rare: the pools keep their connections).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import psutil

# Process names of the services (all of the machine's, not only the bench's databases).
SERVICES = {"PostgreSQL": ("postgres",), "RabbitMQ": ("beam.smp",)}
OTHERS = "everything else (other processes, kernel)"
CLIENT = "bench client"
GROUPS = ["Cirrus", *SERVICES, CLIENT, OTHERS]  # in the order reports show them


def _cpu_seconds(pids: list[int]) -> dict[int, float]:
    seconds = {}
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            t = psutil.Process(pid).cpu_times()
            seconds[pid] = t.user + t.system
    return seconds


def _machine_busy_seconds() -> float:
    """CPU seconds every core spent not idle since boot."""
    t = psutil.cpu_times()
    not_busy = ("idle", "iowait", "steal",  # steal: another VM had the core
                "guest", "guest_nice")  # already counted in user time
    return sum(t) - sum(getattr(t, name, 0.0) for name in not_busy)


def _service_pids() -> dict[str, list[int]]:
    found: dict[str, list[int]] = {name: [] for name in SERVICES}
    for p in psutil.process_iter(["name"]):
        for name, commands in SERVICES.items():
            if p.info["name"] in commands:
                found[name].append(p.pid)
    return found


@dataclass
class CpuMeter:
    """Average cores used per group over the windows measured (`with meter.window():`)."""

    cirrus_pids: list[int]
    seconds: dict[str, float] = field(default_factory=dict)
    wall: float = 0.0

    def _groups(self) -> dict[str, list[int]]:
        return {"Cirrus": self.cirrus_pids, **_service_pids(), CLIENT: [os.getpid()]}

    @contextlib.contextmanager
    def window(self) -> Iterator[None]:
        before = {name: _cpu_seconds(pids) for name, pids in self._groups().items()}
        machine_before, t0 = _machine_busy_seconds(), time.perf_counter()
        yield
        self.wall += time.perf_counter() - t0
        used = 0.0
        for name, pids in self._groups().items():
            after = _cpu_seconds(pids)
            spent = sum(s - before[name].get(pid, 0.0) for pid, s in after.items())
            self.seconds[name] = self.seconds.get(name, 0.0) + spent
            used += spent
        others = _machine_busy_seconds() - machine_before - used
        self.seconds[OTHERS] = self.seconds.get(OTHERS, 0.0) + max(others, 0.0)

    def cores(self) -> dict[str, float]:
        return {name: s / self.wall for name, s in self.seconds.items()} if self.wall else {}
