"""Fixtures for tests that move packets through real namespaces, bridges and dnsmasq.

Every namespace a test makes has a unique name and is deleted afterwards, with the
processes in it (../shared/PLATFORM.md "Network tests": no traffic leaves them).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import require, require_root


def ip(*args: str, netns: str | None = None, check: bool = True) -> str:
    cmd = ["ip", *(["-n", netns] if netns else []), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {done.stderr}")
    return done.stdout


def kill_namespace(ns: str) -> None:
    """Kill every process in `ns`, then delete it."""
    pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True,
                          check=False).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    ip("netns", "del", ns, check=False)


class Namespaces:
    """Namespaces made by one test: unique names, all deleted at the end (with any
    namespace whose name starts with one of theirs, e.g. qdhcp ones made inside)."""

    def __init__(self) -> None:
        self.prefix = f"cx{uuid.uuid4().hex[:6]}"
        self.made: list[str] = []

    def add(self, name: str) -> str:
        full = f"{self.prefix}{name}"
        ip("netns", "add", full)
        ip("link", "set", "lo", "up", netns=full)
        self.made.append(full)
        return full

    def cleanup(self) -> None:
        for ns in os.listdir("/run/netns") if os.path.isdir("/run/netns") else []:
            if ns.startswith(self.prefix):
                kill_namespace(ns)


@pytest.fixture
def namespaces() -> Iterator[Namespaces]:
    require_root("network namespace tests")
    require(shutil.which("ip") is not None, "iproute2 (ip) is not installed")
    spaces = Namespaces()
    try:
        yield spaces
    finally:
        spaces.cleanup()


@pytest.fixture
def dnsmasq() -> str:
    path = shutil.which("dnsmasq") or ("/usr/sbin/dnsmasq"
                                       if Path("/usr/sbin/dnsmasq").exists() else None)
    require(path is not None, "dnsmasq is not installed (apt-get install dnsmasq-base)")
    return str(path)


@pytest.fixture
def busybox() -> str:
    path = shutil.which("busybox")
    require(path is not None, "busybox is not installed (its udhcpc is the test's DHCP client)")
    return str(path)


def wait_for(predicate, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@contextlib.contextmanager
def cloud_with_agent_in(settings, host: str, host_ns: str, service_binary: str):
    """A cloud (scheduler, conductor) and one fake-driver agent whose linuxbridge dataplane
    works in `host_ns`, once the agent has registered its `service_binary` service (the DHCP
    or L3 one); yields (cloud, agent) and stops the cloud after."""
    from sqlalchemy import select

    from cirrus.agent.service import Agent
    from cirrus.db.models import Service
    from cirrus.network.dataplane.linuxbridge import LinuxBridgeDataplane
    from cirrus.runtime import Cloud
    from cirrus.virt.fake import FakeDriver
    from tests.conftest import ADMIN_PASSWORD

    c = Cloud(settings)
    c.upgrade_schema()
    c.bootstrap(ADMIN_PASSWORD)
    c.start_roles(["scheduler", "conductor"])
    driver = FakeDriver(host, settings.fake, Path(settings.data_dir) / "fake-hosts", settings)
    agent = Agent(settings, c.bus, host, driver, dataplane=LinuxBridgeDataplane(netns=host_ns))
    agent.start()
    c.roles.append(agent)

    def registered() -> bool:
        with c.db.reader() as s:
            return s.scalar(select(Service.id).where(Service.binary == service_binary)) is not None
    try:
        wait_for(registered, what=f"the agent's {service_binary} service")
        yield c, agent
    finally:
        c.stop()
