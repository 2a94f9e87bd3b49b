"""The agent runs its driver's image cache expiry every `image_cache_interval` seconds, first
one interval after it starts, and a failing pass does not stop its heartbeats."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from cirrus.agent.service import Agent
from cirrus.bus.local import LocalBus
from cirrus.virt.fake import FakeDriver
from tests.conftest import make_settings


class ExpiringDriver(FakeDriver):
    """The fake driver, counting expiry passes; the first one fails."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.passes: list[float] = []

    def expire_image_cache(self) -> None:
        self.passes.append(time.monotonic())
        if len(self.passes) == 1:
            raise OSError("the cache disk is gone")


def run_periodic(tmp_path: Path, until: Callable[[ExpiringDriver, list], bool],
                 **settings: float) -> tuple[ExpiringDriver, list, float]:
    """Run the agent's periodic loop until `until(driver, reports)` (at most 30 s); the
    driver, the reports it sent and when the loop started."""
    config = make_settings(tmp_path, heartbeat_interval=0.02, **settings)
    driver = ExpiringDriver("host-a", config.fake, tmp_path / "fake-hosts")
    bus = LocalBus()
    reports: list = []
    bus.subscribe("conductor", {"agent_report": lambda c, p: reports.append(p)}, workers=1)
    agent = Agent(config, bus, "host-a", driver)
    loop = threading.Thread(target=agent._periodic)
    started = time.monotonic()
    try:
        loop.start()
        deadline = started + 30
        while not until(driver, reports) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        agent._stop.set()
        loop.join()
        bus.stop()
    return driver, reports, started


def test_the_agent_expires_its_image_cache_every_interval(tmp_path: Path) -> None:
    driver, reports, started = run_periodic(tmp_path, lambda d, r: len(d.passes) >= 3,
                                            image_cache_interval=0.2)
    assert len(driver.passes) >= 3  # the failed first pass did not stop the next ones
    assert driver.passes[0] - started >= 0.2  # not at start: one interval after
    assert driver.passes[1] - driver.passes[0] >= 0.2
    assert len(reports) > len(driver.passes)  # heartbeats went on meanwhile


def test_an_interval_of_zero_runs_no_expiry(tmp_path: Path) -> None:
    driver, reports, _ = run_periodic(tmp_path, lambda d, r: len(r) >= 20,
                                      image_cache_interval=0.0)
    assert len(reports) >= 20  # the loop ran long enough for many intervals of 0.02 s
    assert driver.passes == []
