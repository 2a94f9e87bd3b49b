"""The `linuxbridge` dataplane: one Linux bridge per network, one persistent tap per port.

Everything goes through netlink (pyroute2), so plugging is the same call on first boot and
after a host restart: `plug` converges the host to what the port needs (bridge present and up
at the network's MTU, tap present, up, at that MTU, enslaved to the bridge) and changes
nothing that is already right. The tap is persistent and single-queue, so libvirt can later
attach it with `<interface type='ethernet'><target dev='tap...' managed='no'/>`.

Bridges get no uplink and no address, and IPv6 is disabled on bridges and taps, so the host
never configures itself on a guest network and nothing a guest sends leaves the machine.
"""

from __future__ import annotations

import errno
import logging
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg as Link

from cirrus.network.dataplane import Dataplane
from cirrus.network.model import Nic, bridge_name, tap_name

log = logging.getLogger(__name__)

IFF_UP = 0x1
BRIDGE_PREFIX = "brq"
TAP_PREFIX = "tap"


class LinuxBridgeDataplane(Dataplane):
    name = "linuxbridge"

    def __init__(self, netns: str | None = None) -> None:
        """`netns`: an existing network namespace to work in (tests); None is the host."""
        self.netns = netns
        self._lock = threading.Lock()  # one change at a time: check-then-act on links

    def plug(self, nic: Nic) -> None:
        with self._lock, self._rtnl() as ipr:
            bridge = self._ensure_bridge(ipr, nic.bridge, nic.mtu)
            self._ensure_tap(ipr, nic.tap, bridge, nic.mtu)

    def unplug(self, port_id: str, network_id: str) -> None:
        tap, bridge = tap_name(port_id), bridge_name(network_id)
        with self._lock, self._rtnl() as ipr:
            link = _get_link(ipr, tap)
            if link is not None:
                _delete_link(ipr, link)
                log.info("deleted tap %s", tap)
            link = _get_link(ipr, bridge)
            if link is not None and not _has_ports(ipr, link["index"]):
                _delete_link(ipr, link)
                log.info("deleted bridge %s: no port left on it", bridge)

    def ensure_network(self, network_id: str, mtu: int) -> str:
        bridge = bridge_name(network_id)
        with self._lock, self._rtnl() as ipr:
            self._ensure_bridge(ipr, bridge, mtu)
        return bridge

    def release_network(self, network_id: str) -> None:
        bridge = bridge_name(network_id)
        with self._lock, self._rtnl() as ipr:
            link = _get_link(ipr, bridge)
            if link is not None and not _has_ports(ipr, link["index"]):
                _delete_link(ipr, link)
                log.info("deleted bridge %s: no port left on it", bridge)

    def plugged(self) -> dict[str, str]:
        with self._lock, self._rtnl() as ipr:
            links = list(ipr.get_links())
        bridges = {link["index"]: link.get("ifname") for link in links
                   if link.get("ifname", "").startswith(BRIDGE_PREFIX) and _kind(link) == "bridge"}
        return {link.get("ifname"): bridges[link.get("master")] for link in links
                if link.get("ifname", "").startswith(TAP_PREFIX) and link.get("master") in bridges}

    @contextmanager
    def _rtnl(self) -> Iterator[IPRoute]:
        """A fresh netlink socket per operation: cheap (~2 ms, ~10 ms in a netns) and never
        stale. flags=0 so a missing namespace is an error, not silently created."""
        ipr = IPRoute(netns=self.netns, flags=0) if self.netns else IPRoute()
        try:
            yield ipr
        finally:
            ipr.close()

    def _ensure_bridge(self, ipr: IPRoute, name: str, mtu: int) -> Link:
        """The bridge's link message, creating it (no STP, no forward delay: ports forward at once)
        or fixing its MTU and admin state."""
        link = _get_link(ipr, name)
        if link is None:
            _create_link(ipr, ifname=name, kind="bridge", mtu=mtu,
                         br_stp_state=0, br_forward_delay=0)
            log.info("created bridge %s (mtu %d)", name, mtu)
            link = _get_link(ipr, name)
        elif _kind(link) != "bridge":
            raise RuntimeError(f"{name} exists on this host and is not a bridge")
        self._disable_ipv6(name)
        _converge(ipr, link, mtu=mtu)
        return link

    def _ensure_tap(self, ipr: IPRoute, name: str, bridge: Link, mtu: int) -> None:
        """Create the persistent tap if missing, then fix MTU, master and admin state."""
        link = _get_link(ipr, name)
        if link is None:
            # The tuntap ioctl ignores mtu/master/address: _converge sets them afterwards.
            _create_link(ipr, ifname=name, kind="tuntap", mode="tap",
                         ifr={"no_pi": True, "multi_queue": False})
            log.info("created tap %s", name)
            link = _get_link(ipr, name)
        elif _kind(link) != "tun":
            raise RuntimeError(f"{name} exists on this host and is not a tap")
        self._disable_ipv6(name)
        _converge(ipr, link, mtu=mtu, master=bridge)

    def _disable_ipv6(self, dev: str) -> None:
        """No IPv6 link-local or SLAAC address for the host on a guest network. Set before the
        device goes up; netlink cannot set this, so it is the sysctl (inside the namespace via
        `ip netns exec`)."""
        if self.netns is None:
            _disable_ipv6_here(dev)
            return
        done = subprocess.run(
            ["ip", "netns", "exec", self.netns, "sysctl", "-q", "-w",
             f"net/ipv6/conf/{dev}/disable_ipv6=1"],
            capture_output=True, text=True, check=False)
        if done.returncode != 0:
            log.warning("could not disable IPv6 on %s in netns %s: %s",
                        dev, self.netns, done.stderr.strip())


def _disable_ipv6_here(dev: str) -> None:
    path = Path("/proc/sys/net/ipv6/conf") / dev / "disable_ipv6"
    if not path.exists():  # kernel without IPv6: nothing to disable
        return
    try:
        if path.read_text().strip() != "1":
            path.write_text("1\n")
    except OSError as e:  # read-only /proc/sys (some containers)
        log.warning("could not disable IPv6 on %s: %s", dev, e)


def _converge(ipr: IPRoute, link: Link, mtu: int, master: Link | None = None) -> None:
    """Set what differs, MTU before master (one message: the kernel applies MTU first) so the
    bridge never adopts a wrong MTU from a port, then bring the device up."""
    name = link.get("ifname")
    changes: dict[str, int] = {}
    if link.get("mtu") != mtu:
        changes["mtu"] = mtu
    if master is not None and link.get("master") != master["index"]:
        changes["master"] = master["index"]
    if changes:
        ipr.link("set", index=link["index"], **changes)
        joined = f" master {master.get('ifname')}" if master is not None and "master" in changes else ""
        log.info("set %s%s%s", name, f" mtu {mtu}" if "mtu" in changes else "", joined)
    if not link["flags"] & IFF_UP:
        ipr.link("set", index=link["index"], state="up")
        log.info("set %s up", name)


def _get_link(ipr: IPRoute, name: str) -> Link | None:
    """The link message of `name`, or None when there is no such device."""
    try:
        (link,) = ipr.link("get", ifname=name)
    except NetlinkError as e:
        if e.code == errno.ENODEV:
            return None
        raise
    return link


def _create_link(ipr: IPRoute, **spec) -> None:
    """Add a link; one that appeared meanwhile (another process plugging) is fine."""
    try:
        ipr.link("add", **spec)
    except NetlinkError as e:
        if e.code != errno.EEXIST:
            raise


def _delete_link(ipr: IPRoute, link: Link) -> None:
    """Delete a link; one already gone meanwhile is fine."""
    try:
        ipr.link("del", index=link["index"])
    except NetlinkError as e:
        if e.code != errno.ENODEV:
            raise


def _has_ports(ipr: IPRoute, bridge: int) -> bool:
    return any(link.get("master") == bridge for link in ipr.get_links())


def _kind(link: Link) -> str | None:
    """The link's rtnl kind: "bridge", "tun" (taps too), "veth", ... or None."""
    return link.get(("linkinfo", "kind"))
