"""The host side of DHCP, run by an agent with `dhcp_agent` on: per network it serves, a
network namespace `qdhcp-<network id>`, a veth from it to the network's bridge carrying the
DHCP port's MAC and addresses, and one dnsmasq in the namespace.

Converging is the same call on first sync, on a port change and after a host restart:
`sync` makes what is missing and changes only what differs. A port change rewrites the
hosts file and sends dnsmasq SIGHUP (it re-reads its hosts and options files); dnsmasq is
restarted only when its command line changes (a subnet added or removed, the lease time)
or when it died (`check`, from the agent's periodic loop). Each network's files live in a
private directory (0700; files 0600) with the last configuration, so `restore` brings every
network back before the agent takes work after a restart, without the database.

`RecordingDhcp` (the `noop` dataplane's, for the fake driver) keeps the configurations and
runs nothing.
"""

from __future__ import annotations

import abc
import contextlib
import grp
import json
import logging
import os
import pwd
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from cirrus import files
from cirrus.network.dataplane import Dataplane
from cirrus.network.dhcp import render
from cirrus.network.dhcp.model import DhcpNetwork

log = logging.getLogger(__name__)

STOP_TIMEOUT = 5.0  # seconds dnsmasq gets to exit on SIGTERM before SIGKILL


def namespace_name(network_id: str, netns: str | None = None) -> str:
    """`qdhcp-<network id>`; inside a dataplane namespace (tests) prefixed with its name,
    since network namespaces have one global name space."""
    return f"{netns}-qdhcp-{network_id}" if netns else f"qdhcp-{network_id}"


def bridge_side(port_id: str) -> str:
    """The veth end on the network's bridge."""
    return f"dh-{port_id[:11]}"


def namespace_side(port_id: str) -> str:
    """The veth end in the DHCP namespace, carrying the DHCP port's MAC and addresses."""
    return f"ns-{port_id[:11]}"


class DhcpServer(abc.ABC):
    """The DHCP networks a host serves."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self._lock = threading.RLock()

    # ---- the interface the agent uses
    def sync(self, net: DhcpNetwork) -> None:
        """Serve `net` as described (make, update or leave as it is)."""
        with self._lock:
            self._record(net)
            self._converge(net)

    def remove(self, network_id: str) -> None:
        """Stop serving the network and leave nothing of it on the host; unknown is fine."""
        with self._lock:
            self._teardown(network_id)
            shutil.rmtree(self.state_dir / network_id, ignore_errors=True)
            log.info("dhcp: network %s no longer served here", network_id)

    def sync_all(self, nets: list[DhcpNetwork]) -> None:
        """Serve exactly `nets` (the control side's full state): the others go."""
        with self._lock:
            wanted = {net.network_id for net in nets}
            for network_id in set(self.served()) - wanted:
                self.remove(network_id)
            for net in nets:
                try:
                    self.sync(net)
                except Exception:
                    log.exception("dhcp: network %s could not be served", net.network_id)

    def restore(self) -> None:
        """Serve again every network recorded in the state directory (agent start)."""
        with self._lock:
            for net in self.served().values():
                try:
                    self._converge(net)
                except Exception:
                    log.exception("dhcp: network %s could not be restored", net.network_id)

    def check(self) -> None:
        """Restart what died (periodic)."""
        return None

    def served(self) -> dict[str, DhcpNetwork]:
        """network id -> its last configuration, from the state directory."""
        result = {}
        if self.state_dir.is_dir():
            for path in sorted(self.state_dir.glob("*/network.json")):
                with contextlib.suppress(ValueError, KeyError, OSError):
                    net = DhcpNetwork.from_dict(json.loads(path.read_text()))
                    result[net.network_id] = net
        return result

    # ---- what a driver does
    def _record(self, net: DhcpNetwork) -> None:
        directory = files.make_dirs(self.state_dir / net.network_id)
        _write_if_changed(render.Paths(directory).config, json.dumps(net.to_dict(), indent=1))

    @abc.abstractmethod
    def _converge(self, net: DhcpNetwork) -> None: ...

    @abc.abstractmethod
    def _teardown(self, network_id: str) -> None: ...


class RecordingDhcp(DhcpServer):
    """Keeps what it is told and runs nothing (the fake driver's hosts)."""

    def _converge(self, net: DhcpNetwork) -> None:
        pass

    def _teardown(self, network_id: str) -> None:
        pass


class DnsmasqDhcp(DhcpServer):
    def __init__(self, state_dir: Path, dataplane: Dataplane, netns: str | None = None,
                 binary: str = "dnsmasq") -> None:
        super().__init__(state_dir)
        self.dataplane = dataplane
        self.netns = netns
        self.binary = binary
        self.user = pwd.getpwuid(os.geteuid()).pw_name
        self.group = grp.getgrgid(os.getegid()).gr_name

    def namespace(self, network_id: str) -> str:
        return namespace_name(network_id, self.netns)

    def paths(self, network_id: str) -> render.Paths:
        return render.Paths(self.state_dir / network_id)

    def pid(self, network_id: str) -> int | None:
        """The pid of the network's running dnsmasq, or None."""
        paths = self.paths(network_id)
        try:
            pid = int(paths.pid.read_text().strip())
        except (OSError, ValueError):
            return None
        argv = _cmdline(pid)
        return pid if f"--dhcp-hostsfile={paths.hosts}" in argv else None

    def check(self) -> None:
        with self._lock:
            for net in self.served().values():
                if self.pid(net.network_id) is None:
                    log.warning("dhcp: dnsmasq of network %s is not running: restarting",
                                net.network_id)
                    try:
                        self._converge(net)
                    except Exception:
                        log.exception("dhcp: network %s could not be restarted", net.network_id)

    # ---- converge
    def _converge(self, net: DhcpNetwork) -> None:
        ns = self.namespace(net.network_id)
        self._ensure_namespace(ns)
        self._ensure_link(net, ns)
        paths = self.paths(net.network_id)
        changed = _write_if_changed(paths.hosts, render.hosts_file(net))
        changed = _write_if_changed(paths.opts, render.opts_file(net)) or changed
        for path in (paths.leases, paths.log):
            files.touch_private(path)
        argv = render.dnsmasq_argv(net, paths, self.user, self.group, self.binary)
        pid = self.pid(net.network_id)
        if pid is not None and _cmdline(pid) != argv:
            log.info("dhcp: dnsmasq of network %s restarted: its subnets or lease changed",
                     net.network_id)
            _stop(pid)
            pid = None
        if pid is None:
            self._start(ns, argv, net.network_id)
        elif changed:
            os.kill(pid, signal.SIGHUP)
            log.info("dhcp: dnsmasq of network %s reloaded (pid %d)", net.network_id, pid)

    def _start(self, ns: str, argv: list[str], network_id: str) -> None:
        self.paths(network_id).pid.unlink(missing_ok=True)
        done = subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True,
                              text=True, check=False, timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"dnsmasq for network {network_id} did not start: "
                               f"{done.stderr.strip() or done.returncode}")
        # dnsmasq makes its pid file 0644 whatever the umask (its other files exist before).
        with contextlib.suppress(OSError):
            os.chmod(self.paths(network_id).pid, files.FILE_MODE)
        log.info("dhcp: dnsmasq of network %s started in %s (pid %s)", network_id, ns,
                 self.pid(network_id))

    def _ip(self, *args: str, netns: str | None = None, check: bool = True) -> str:
        cmd = ["ip", *(["-n", netns] if netns else []), *args]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=30)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip()}")
        return done.stdout

    def _ensure_namespace(self, ns: str) -> None:
        if not Path("/run/netns", ns).exists():
            self._ip("netns", "add", ns)
            log.info("dhcp: created namespace %s", ns)
        self._ip("link", "set", "lo", "up", netns=ns)

    def _links(self, netns: str | None) -> dict[str, dict]:
        return {link["ifname"]: link
                for link in json.loads(self._ip("-j", "-d", "link", "show", netns=netns) or "[]")}

    def _ensure_link(self, net: DhcpNetwork, ns: str) -> None:
        bridge = self.dataplane.ensure_network(
            net.network_id, net.mtu, network_type=net.network_type,
            physical_network=net.physical_network, segmentation_id=net.segmentation_id)
        outer, inner = bridge_side(net.port_id), namespace_side(net.port_id)
        inside = self._links(ns)
        for name in inside:  # the veth of a DHCP port this host no longer has
            if name.startswith("ns-") and name != inner:
                self._ip("link", "del", name, netns=ns)
        if inner not in inside:
            if outer in self._links(self.netns):
                self._ip("link", "del", outer, netns=self.netns)
            self._ip("link", "add", outer, "mtu", str(net.mtu), "type", "veth", "peer", "name",
                     inner, "mtu", str(net.mtu), "netns", ns, netns=self.netns)
            log.info("dhcp: veth %s (on %s) - %s (in %s)", outer, bridge, inner, ns)
        self._disable_ipv6(outer)
        self._ip("link", "set", outer, "mtu", str(net.mtu), "master", bridge, "up",
                 netns=self.netns)
        link = self._links(ns)[inner]
        if link.get("address") != net.mac or link.get("mtu") != net.mtu:
            self._ip("link", "set", inner, "down", netns=ns)
            self._ip("link", "set", inner, "address", net.mac, "mtu", str(net.mtu), netns=ns)
        self._ip("link", "set", inner, "up", netns=ns)
        self._ensure_addresses(ns, inner, set(net.addresses))

    def _ensure_addresses(self, ns: str, dev: str, wanted: set[str]) -> None:
        shown = json.loads(self._ip("-j", "addr", "show", "dev", dev, netns=ns) or "[]")
        have = {f"{a['local']}/{a['prefixlen']}" for entry in shown
                for a in entry.get("addr_info", []) if a.get("scope") == "global"}
        for address in sorted(have - wanted):
            self._ip("addr", "del", address, "dev", dev, netns=ns)
        for address in sorted(wanted - have):
            extra = ["nodad"] if ":" in address else []
            self._ip("addr", "add", address, "dev", dev, *extra, netns=ns)

    def _disable_ipv6(self, dev: str) -> None:
        """The bridge side of the veth is a port of the bridge, like a tap: no address."""
        cmd = ["sysctl", "-q", "-w", f"net/ipv6/conf/{dev}/disable_ipv6=1"]
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns, *cmd]
        subprocess.run(cmd, capture_output=True, check=False, timeout=30)

    # ---- teardown
    def _teardown(self, network_id: str) -> None:
        pid = self.pid(network_id)
        if pid is not None:
            _stop(pid)
        ns = self.namespace(network_id)
        if Path("/run/netns", ns).exists():
            # The veth first: the kernel destroys a deleted namespace's devices later, and
            # the bridge must be without it now to be released.
            for name in self._links(ns):
                if name.startswith("ns-"):
                    self._ip("link", "del", name, netns=ns, check=False)
            self._ip("netns", "del", ns, check=False)
            log.info("dhcp: deleted namespace %s", ns)
        self.dataplane.release_network(network_id)


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _stop(pid: int) -> None:
    """SIGTERM, then SIGKILL after STOP_TIMEOUT; gone already is fine."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline:
            if not _cmdline(pid):
                return
            time.sleep(0.02)
        os.kill(pid, signal.SIGKILL)


def _write_if_changed(path: Path, text: str) -> bool:
    """Replace the file (atomically, 0600) if its content differs; whether it did."""
    with contextlib.suppress(OSError):
        if path.read_text() == text:
            return False
    files.write_private(path, text)
    return True


def load_dhcp(dataplane: Dataplane, state_dir: Path, netns: str | None = None) -> DhcpServer:
    """dnsmasq for a real dataplane; the recording one for `noop` (nothing on the host)."""
    if dataplane.name == "noop":
        return RecordingDhcp(state_dir)
    if shutil.which("dnsmasq") is None and not Path("/usr/sbin/dnsmasq").exists():
        log.warning("dhcp: dhcp_agent is on but dnsmasq is not installed (Debian: apt-get "
                    "install dnsmasq-base): no network will get DHCP from this host")
    return DnsmasqDhcp(state_dir, dataplane, netns=netns)
