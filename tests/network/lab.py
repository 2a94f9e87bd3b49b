"""A host in a network namespace with "VMs" behind it, for tests that move real packets.

The host namespace has a Linux bridge; each VM is a namespace whose `eth0` is one end of a
veth pair, the other end (named as Cirrus names a port's tap) enslaved to the bridge. Names
are unique per lab and everything is deleted at `close()`. Sockets are opened inside a
namespace by a short-lived thread that enters it (setns moves only the calling thread), so
the test talks to its VMs without subprocesses.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import socket
import subprocess
import threading
import uuid
from dataclasses import dataclass

from cirrus.network.model import tap_name
from tests.services import missing, require_root

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def require_nftables() -> None:
    require_root("security group tests (network namespaces, nftables)")
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            missing(f"`{tool}` not found (apt-get install iproute2 nftables)")


def run(*argv: str, netns: str | None = None, check: bool = True) -> str:
    prefix = ["ip", "netns", "exec", netns] if netns else []
    done = subprocess.run([*prefix, *argv], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")
    return done.stdout


def in_netns(netns: str, make):
    """Call `make()` in a thread that entered `netns`; returns its result."""
    box: dict = {}

    def work() -> None:
        fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                box["error"] = OSError(ctypes.get_errno(), "setns failed")
                return
            box["value"] = make()
        except Exception as exc:  # handed back to the caller's thread
            box["error"] = exc
        finally:
            os.close(fd)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


@dataclass
class Vm:
    netns: str
    port_id: str
    mac: str
    ip: str

    @property
    def tap(self) -> str:
        return tap_name(self.port_id)

    def listen(self, port: int) -> socket.socket:
        """A TCP server on `port` that echoes what it is sent, in a daemon thread."""
        server = in_netns(self.netns, lambda: socket.socket(socket.AF_INET6, socket.SOCK_STREAM))
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # IPv4 and IPv6
        server.bind(("::", port))
        server.listen(16)

        def serve() -> None:
            while True:
                try:
                    conn, _ = server.accept()
                except OSError:
                    return
                threading.Thread(target=_echo, args=(conn,), daemon=True).start()

        threading.Thread(target=serve, daemon=True).start()
        return server

    def connect(self, ip: str, port: int, timeout: float = 1.0,
                source: str | None = None) -> socket.socket | None:
        """An echoing TCP connection to ip:port, or None if refused or dropped."""
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        sock = in_netns(self.netns, lambda: socket.socket(family, socket.SOCK_STREAM))
        sock.settimeout(timeout)
        try:
            if source:
                sock.bind((source, 0))
            sock.connect((ip, port))
            sock.sendall(b"ping")
            if sock.recv(4) != b"ping":
                raise OSError("no echo")
        except OSError:
            sock.close()
            return None
        return sock

    def reaches(self, other: Vm, port: int, timeout: float = 1.0,
                source: str | None = None) -> bool:
        sock = self.connect(other.ip, port, timeout, source)
        if sock is None:
            return False
        sock.close()
        return True


def echo_alive(sock: socket.socket, timeout: float = 1.0) -> bool:
    sock.settimeout(timeout)
    try:
        sock.sendall(b"more")
        return sock.recv(4) == b"more"
    except OSError:
        return False


def _echo(conn: socket.socket) -> None:
    with conn:
        while True:
            try:
                data = conn.recv(4096)
            except OSError:
                return
            if not data:
                return
            conn.sendall(data)


class Lab:
    """One "host" namespace with a bridge and VMs on it."""

    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex[:6]
        self.host = f"sg-h-{self.tag}"
        self.vms: list[Vm] = []
        self._servers: list[socket.socket] = []
        run("ip", "netns", "add", self.host)
        self.bridge = f"brq{self.tag}"  # the firewall filters Cirrus's bridges (brq...)
        self.network_id = self.tag  # bridge_name() of it is self.bridge
        run("ip", "-n", self.host, "link", "add", self.bridge, "type", "bridge")
        run("ip", "-n", self.host, "link", "set", self.bridge, "up")

    def network(self) -> str:
        """Another bridge on the host; its "network id" names it as Cirrus would."""
        network_id = uuid.uuid4().hex[:11]
        run("ip", "-n", self.host, "link", "add", f"brq{network_id}", "type", "bridge")
        run("ip", "-n", self.host, "link", "set", f"brq{network_id}", "up")
        return network_id

    def vm(self, ip: str, prefix: int = 24, ip6: str | None = None,
           network: str | None = None) -> Vm:
        bridge = f"brq{network}" if network else self.bridge
        index = len(self.vms) + 1
        vm = Vm(netns=f"sg-v{index}-{self.tag}", port_id=str(uuid.uuid4()),
                mac=f"fa:16:3e:{index:02x}:00:01", ip=ip)
        run("ip", "netns", "add", vm.netns)
        self.vms.append(vm)
        run("ip", "-n", self.host, "link", "add", vm.tap, "type", "veth", "peer", "name",
            "eth0", "netns", vm.netns)
        run("ip", "-n", self.host, "link", "set", vm.tap, "master", bridge, "up")
        run("ip", "-n", vm.netns, "link", "set", "eth0", "address", vm.mac)
        run("ip", "-n", vm.netns, "addr", "add", f"{ip}/{prefix}", "dev", "eth0")
        if ip6:
            run("ip", "-n", vm.netns, "addr", "add", f"{ip6}/64", "dev", "eth0", "nodad")
        run("ip", "-n", vm.netns, "link", "set", "eth0", "up")
        run("ip", "-n", vm.netns, "link", "set", "lo", "up")
        return vm

    def serve(self, vm: Vm, *ports: int) -> None:
        self._servers += [vm.listen(p) for p in ports]

    def close(self) -> None:
        for server in self._servers:
            try:
                server.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
            except OSError:
                pass
            server.close()
        for vm in self.vms:
            run("ip", "netns", "del", vm.netns, check=False)
        run("ip", "netns", "del", self.host, check=False)
