"""A "VM" for DHCP tests: a namespace whose eth0 is on a host's bridge, and busybox's udhcpc
in it writing what each DHCP event told it (address, router, DNS, MTU, routes) to a file."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from tests.network.conftest import Namespaces, ip, wait_for

SCRIPT = """#!/bin/sh
# udhcpc's event script: record the event's variables (whole, by a rename), configure the
# address.
n=$(ls {events} | wc -l)
env | grep -E '^(ip|mask|router|dns|mtu|staticroutes|domain|hostname|serverid|lease|subnet)=' \
  | sort > {events}/.event-$$
mv {events}/.event-$$ {events}/$(printf %04d $n)-$1
case "$1" in
  bound|renew) ip addr flush dev "$interface"; ip addr add "$ip/$mask" dev "$interface";;
  deconfig) ip addr flush dev "$interface";;
esac
"""


class Guest:
    def __init__(self, spaces: Namespaces, name: str, host_ns: str, bridge: str, mac: str,
                 workdir: Path, busybox: str) -> None:
        self.ns = spaces.add(name)
        self.busybox = busybox
        outer = f"{spaces.prefix[-4:]}{name}"[:15]
        ip("link", "add", outer, "type", "veth", "peer", "name", "eth0", "netns", self.ns,
           netns=host_ns)
        ip("link", "set", outer, "master", bridge, "up", netns=host_ns)
        ip("link", "set", "eth0", "address", mac, "up", netns=self.ns)
        self.events = workdir / f"events-{name}"
        self.events.mkdir(parents=True)
        self.script = workdir / f"udhcpc-{name}.sh"
        self.script.write_text(SCRIPT.format(events=self.events))
        self.script.chmod(0o700)
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        """udhcpc in the foreground of a background process, asking for the options."""
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, self.busybox, "udhcpc", "-f", "-i", "eth0",
             "-s", str(self.script), "-t", "20", "-T", "1", "-A", "1",
             "-O", "staticroutes", "-O", "domain", "-O", "hostname"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def lease_once(self) -> dict[str, str]:
        """A fresh client that exits once it has a lease (or fails): what it was told."""
        before = len(self.events_after(0))
        subprocess.run(["ip", "netns", "exec", self.ns, self.busybox, "udhcpc", "-q", "-n",
                        "-f", "-i", "eth0", "-s", str(self.script), "-t", "10", "-T", "1",
                        "-O", "staticroutes", "-O", "domain"],
                       capture_output=True, timeout=60, check=False)
        return self.last("bound", after=before)

    def renew(self) -> dict[str, str]:
        """SIGUSR1: the running client renews (a unicast REQUEST to its server)."""
        assert self.proc is not None
        before = len(self.events_after(0))
        # `ip netns exec` execs udhcpc: the Popen's pid is the client's.
        os.kill(self.proc.pid, signal.SIGUSR1)
        return wait_for(lambda: self.last_any(after=before), what="the renewal's answer")

    def events_after(self, after: int) -> list[tuple[str, dict[str, str]]]:
        result = []
        for path in sorted(p for p in self.events.iterdir()
                           if not p.name.startswith("."))[after:]:
            values = dict(line.split("=", 1) for line in path.read_text().splitlines()
                          if "=" in line)
            result.append((path.name.split("-", 1)[1], values))
        return result

    def last_any(self, after: int) -> tuple[str, dict[str, str]] | None:
        events = self.events_after(after)
        return events[-1] if events else None

    def last(self, event: str, after: int = 0) -> dict[str, str]:
        found = [values for name, values in self.events_after(after) if name == event]
        assert found, f"no {event} event: {self.events_after(after)}"
        return found[-1]

    def wait_bound(self) -> dict[str, str]:
        wait_for(lambda: any(n == "bound" for n, _ in self.events_after(0)), timeout=30,
                 what="a DHCP lease")
        return self.last("bound")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
