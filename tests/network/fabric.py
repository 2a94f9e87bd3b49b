"""A fleet of hosts made of network namespaces, for tests that move real packets.

    underlay ns: bridge `ul` (the VXLAN underlay, 192.0.2.0/24)
                 bridge `pv` (a provider network's switch, physnet1)
    host ns h1:  u0 = 192.0.2.1 (veth to `ul`), eth1 (veth to `pv`, no address)
    host ns h2:  u0 = 192.0.2.2, eth1
    VM ns:       eth0 (veth standing in for the guest's end of its tap) with the port's MAC
                 and address; its peer end is enslaved to the port's bridge on its host.

Everything is made in namespaces the fabric creates with unique names and deletes at the end
(../shared/PLATFORM.md): no traffic leaves them, nothing touches the host's own network.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field

from cirrus.network.dataplane.linuxbridge import LinuxBridgeDataplane
from cirrus.network.model import Nic
from tests.services import missing, require_root

UNDERLAY_PREFIX = "192.0.2"  # TEST-NET-1, only ever inside the fabric's namespaces


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


def links(ns: str) -> dict[str, dict]:
    out = ip("-j", "-d", "-n", ns, "link", "show")
    return {link["ifname"]: link for link in json.loads(out.stdout)}


def fdb(ns: str, dev: str) -> set[tuple[str, str]]:
    """(MAC, dst) entries of a VXLAN device, read with iproute2's `bridge`."""
    out = subprocess.run(["ip", "netns", "exec", ns, "bridge", "-j", "fdb", "show", "dev", dev],
                         capture_output=True, text=True, check=True)
    return {(e["mac"], e["dst"]) for e in json.loads(out.stdout or "[]") if "dst" in e}


def require_fabric() -> None:
    require_root("multi-host network tests (network namespaces)")
    if shutil.which("ip") is None or shutil.which("bridge") is None:
        missing("iproute2 (`ip`, `bridge`) not found")
    if not os.path.exists("/dev/net/tun"):
        missing("/dev/net/tun is missing: taps cannot be created")


@dataclass
class Host:
    name: str
    ns: str
    vtep: str
    dataplane: LinuxBridgeDataplane


@dataclass
class Fabric:
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    namespaces: list[str] = field(default_factory=list)
    hosts: dict[str, Host] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.underlay = self.netns("ul")
        for bridge in ("ul", "pv"):
            ip("-n", self.underlay, "link", "add", bridge, "type", "bridge")
            ip("-n", self.underlay, "link", "set", bridge, "up")

    def netns(self, role: str) -> str:
        name = f"cl2-{self.tag}-{role}"
        added = ip("netns", "add", name, check=False)
        if added.returncode != 0:
            missing(f"`ip netns add` is unavailable: {added.stderr.strip()}")
        self.namespaces.append(name)
        ip("-n", name, "link", "set", "lo", "up")
        return name

    def _veth(self, ns: str, name: str, switch: str) -> None:
        """A veth `name` in host `ns` whose other end is a port of `switch` in the underlay."""
        outer = f"{switch}{uuid.uuid4().hex[:8]}"
        ip("link", "add", name, "netns", ns, "type", "veth", "peer", "name", outer,
           "netns", self.underlay)
        ip("-n", self.underlay, "link", "set", outer, "master", switch, "up")
        ip("-n", ns, "link", "set", name, "up")

    def add_host(self, name: str, number: int) -> Host:
        ns = self.netns(name)
        vtep = f"{UNDERLAY_PREFIX}.{number}"
        self._veth(ns, "u0", "ul")
        ip("-n", ns, "addr", "add", f"{vtep}/24", "dev", "u0")
        self._veth(ns, "eth1", "pv")
        host = Host(name, ns, vtep, LinuxBridgeDataplane(
            netns=ns, mappings={"physnet1": "eth1"}, local_ip=vtep))
        self.hosts[name] = host
        return host

    def add_vm(self, host: Host, nic: Nic, address: str) -> str:
        """A namespace standing in for the guest of `nic`, its eth0 on the port's bridge."""
        ns = self.netns(f"vm{len(self.namespaces)}")
        outer = f"vm{uuid.uuid4().hex[:8]}"
        ip("link", "add", "eth0", "netns", ns, "address", nic.mac, "mtu", str(nic.mtu),
           "type", "veth", "peer", "name", outer, "netns", host.ns)
        ip("-n", host.ns, "link", "set", outer, "mtu", str(nic.mtu), "master", nic.bridge, "up")
        ip("-n", ns, "addr", "add", address, "dev", "eth0")
        ip("-n", ns, "link", "set", "eth0", "up")
        return ns

    def close(self) -> None:
        for ns in reversed(self.namespaces):
            ip("netns", "del", ns, check=False)


SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 7777)); s.listen(); s.settimeout(float(sys.argv[2]))
c, _ = s.accept()
data = b""
while chunk := c.recv(100000):  # to the client's end of sending: one recv may be a part
    data += chunk
c.sendall(data.upper())
"""
CLIENT = """
import socket, sys
s = socket.create_connection((sys.argv[1], 7777), timeout=float(sys.argv[2]))
s.sendall(sys.argv[3].encode()); s.shutdown(socket.SHUT_WR)
data = b""
while chunk := s.recv(100000):
    data += chunk
print(data.decode())
"""


def tcp_exchange(client_ns: str, server_ns: str, server_ip: str, payload: str = "hello",
                 timeout: float = 3.0) -> str | None:
    """Send `payload` over TCP from one namespace to a server in another, which answers it in
    upper case; None when no connection could be made within `timeout`."""
    server = subprocess.Popen(["ip", "netns", "exec", server_ns, sys.executable, "-c", SERVER,
                               server_ip, str(timeout + 2)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = subprocess.run(["ip", "netns", "exec", client_ns, sys.executable, "-c",
                                   CLIENT, server_ip, "1.0", payload],
                                  capture_output=True, text=True, check=False)
            if done.returncode == 0:
                return done.stdout.strip()
            time.sleep(0.2)
        return None
    finally:
        server.kill()
        server.wait()
