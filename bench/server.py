"""Start and stop the all-in-one under test, and watch the memory of the processes measured."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import yaml

from tests.deployment import terminate

# Capacity and quotas for hundreds of servers (and the ports suite's 1,000 ports) on the
# fake driver, with no boot delay.
BENCH_ENV = {
    "CIRRUS_FAKE_BOOT_DELAY": "0",
    "CIRRUS_FAKE_FAILURE_RATE": "0",
    "CIRRUS_FAKE_COUNT": "8",
    "CIRRUS_FAKE_VCPUS": "4096",
    "CIRRUS_FAKE_MEMORY_MB": "8388608",
    "CIRRUS_FAKE_LOCAL_GB": "1000000",
    "CIRRUS_QUOTA_INSTANCES": "-1",
    "CIRRUS_QUOTA_CORES": "-1",
    "CIRRUS_QUOTA_RAM": "-1",
    "CIRRUS_QUOTA_PORT": "-1",
    "CIRRUS_LOG_LEVEL": "WARNING",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _high_water_mark_kb(pid: int) -> int:
    """The kernel's record of the process's peak RSS (Linux), 0 where there is none."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class MemoryWatch:
    """Samples the resident set size of one process, or the sum over several, with psutil.

    For one process the kernel's high-water mark (VmHWM) also catches a peak between two
    samples; for several, the peak is that of the sampled sums (the processes' own peaks
    need not coincide, so adding their high-water marks would overstate it).
    """

    pids: list[int]
    interval: float = 0.1
    samples: list[int] = field(default_factory=list)  # bytes, summed over the processes
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> MemoryWatch:
        threading.Thread(target=self._run, daemon=True, name="rss-watch").start()
        return self

    def _run(self) -> None:
        processes = [psutil.Process(pid) for pid in self.pids]
        while not self._stop.wait(self.interval):
            try:
                self.samples.append(sum(p.memory_info().rss for p in processes))
            except psutil.Error:
                return

    def peak_mb(self) -> float:
        marks = [_high_water_mark_kb(self.pids[0]) * 1024] if len(self.pids) == 1 else []
        return max([*marks, *self.samples, 0]) / 2**20

    def high_water_marks_mb(self) -> list[float]:
        """Each process's own peak (VmHWM), in the order of `pids`."""
        return [_high_water_mark_kb(pid) / 1024 for pid in self.pids]

    def current_mb(self) -> float:
        try:
            return sum(psutil.Process(pid).memory_info().rss for pid in self.pids) / 2**20
        except psutil.Error:
            return 0.0

    def current_pss_mb(self) -> float:
        """Proportional set size summed: pages shared between the processes (the interpreter,
        its libraries) counted once in all, where RSS counts them in every process."""
        try:
            return sum(psutil.Process(pid).memory_full_info().pss for pid in self.pids) / 2**20
        except (psutil.Error, AttributeError):  # no pss outside Linux
            return float("nan")

    def stop(self) -> None:
        self._stop.set()


@dataclass
class AllInOne:
    process: subprocess.Popen
    url: str
    data_dir: Path
    log: Path

    @property
    def cloud(self) -> dict:
        return yaml.safe_load((self.data_dir / "clouds.yaml").read_text())["clouds"]["cirrus"]

    def stop(self, timeout: float = 15.0) -> int | None:
        return terminate(self.process, timeout)


def start(data_dir: Path, extra_env: dict[str, str] | None = None,
          timeout: float = 120.0, args: list[str] | None = None,
          code_root: Path | None = None) -> AllInOne:
    """Run `cirrus all-in-one` on a free loopback port; return when its API answers. `args`
    are more options (`--virt-driver libvirt`); `code_root`, another tree of Cirrus to run
    (first on the path) instead of the installed one."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "all-in-one.out"
    env = {**os.environ, **BENCH_ENV, **(extra_env or {})}
    if code_root is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(code_root), *filter(None, [
            env.get("PYTHONPATH")])])
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cirrus.cli", "all-in-one", "--host", "127.0.0.1",
             "--port", str(port), "--data-dir", str(data_dir), *(args or [])],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=code_root)
    server = AllInOne(proc, f"http://127.0.0.1:{port}", data_dir, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"cirrus all-in-one exited with {proc.returncode}:\n"
                               f"{log.read_text()[-3000:]}")
        if (data_dir / "clouds.yaml").exists():
            try:
                if httpx.get(f"{server.url}/identity/v3", timeout=2).status_code == 200:
                    return server
            except httpx.HTTPError:
                pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"cirrus all-in-one did not answer within {timeout:.0f}s")


def log_problems(paths: list[Path], limit: int = 200) -> list[str]:
    """WARNING and worse entries of Cirrus's JSON logs (`file: LEVEL logger: message`), at
    most `limit`: a run can be fast and still hide retries or reconciliations."""
    found = []
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("level") in ("WARNING", "ERROR", "CRITICAL"):
                found.append(f"{path.name}: {entry['level']} {entry.get('logger')}: "
                             f"{entry.get('message', '')[:300]}")
                if len(found) >= limit:
                    return found
    return found
