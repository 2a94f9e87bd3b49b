"""The `linuxbridge` dataplane: one Linux bridge per network, one persistent tap per port.

Everything goes through netlink (pyroute2), so plugging is the same call on first boot and
after a host restart: `plug` converges the host to what the port needs (bridge present and up
at the network's MTU, tap present, up, at that MTU, enslaved to the bridge) and changes
nothing that is already right. The tap is persistent and single-queue, so libvirt can later
attach it with `<interface type='ethernet'><target dev='tap...' managed='no'/>`.

A bridge gets the uplink its network's type asks for (cirrus.network.dataplane.uplinks:
the mapped interface for flat, an 802.1Q device for vlan, a VXLAN device for vxlan) and no
address; IPv6 is disabled on bridges, taps and the devices Cirrus makes, so the host never
configures itself on a guest network. A VXLAN device learns nothing: its forwarding
database is exactly what `set_peers` says (an all-zero entry per peer VTEP, so broadcasts
such as ARP and DHCP reach every host of the network by head-end replication, and one entry
per remote port's MAC). The uplink goes with the bridge when the last port leaves.
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
from cirrus.network.dataplane.firewall import Firewall, NftFirewall
from cirrus.network.dataplane.uplinks import FLAT, Uplink, ip_commands, plan_uplink
from cirrus.network.model import NetworkPeer, Nic, bridge_name, tap_name, vxlan_name
from cirrus.network.port_filter import PortFilter

log = logging.getLogger(__name__)

IFF_UP = 0x1
BRIDGE_PREFIX = "brq"
TAP_PREFIX = "tap"
VXLAN_PREFIX = "vxl"
ZERO_MAC = "00:00:00:00:00:00"  # a VXLAN FDB entry for broadcast, unknown unicast, multicast
MADE_KINDS = ("vxlan", "vlan")  # uplinks Cirrus makes (and deletes); others are the host's


class LinuxBridgeDataplane(Dataplane):
    name = "linuxbridge"

    def __init__(self, netns: str | None = None, firewall: Firewall | None = None,
                 mappings: dict[str, str] | None = None, local_ip: str = "") -> None:
        """`netns`: an existing network namespace to work in (tests); None is the host.
        `firewall`: nftables in that namespace unless given. `mappings`: physnet ->
        interface of this host; `local_ip`: this host's VTEP."""
        self.netns = netns
        self.firewall = firewall if firewall is not None else NftFirewall(netns=netns)
        self.mappings = dict(mappings or {})
        self.local_ip = local_ip
        self._lock = threading.Lock()  # one change at a time: check-then-act on links
        self._peers: dict[str, tuple[NetworkPeer, ...]] = {}  # network id -> set_peers'

    def plug(self, nic: Nic) -> None:
        uplink = plan_uplink(nic, self.mappings, self.local_ip)
        with self._lock, self._rtnl() as ipr:
            bridge = self._ensure_bridge(ipr, nic.bridge, nic.mtu)
            if uplink is not None:
                self._ensure_uplink(ipr, uplink, bridge, nic.mtu)
                if uplink.kind == "vxlan":
                    self._converge_fdb(ipr, nic.network_id)
            self._ensure_tap(ipr, nic.tap, bridge, nic.mtu)
        # Before plug returns, so before the VM is started on the tap: never unfiltered.
        self.firewall.set_port(PortFilter.from_nic(nic))

    def unplug(self, port_id: str, network_id: str) -> None:
        tap = tap_name(port_id)
        with self._lock, self._rtnl() as ipr:
            link = _get_link(ipr, tap)
            if link is not None:
                _delete_link(ipr, link)
                log.info("deleted tap %s", tap)
            self._release_bridge(ipr, network_id)
        self.firewall.remove_port(port_id)

    def _release_bridge(self, ipr: IPRoute, network_id: str) -> None:
        """Remove the network's bridge and its uplink once nothing but the uplink is on it
        (no tap, no DHCP veth)."""
        bridge = bridge_name(network_id)
        link = _get_link(ipr, bridge)
        if link is None:
            return
        ports = [p for p in ipr.get_links() if p.get("master") == link["index"]]
        if not all(self._is_uplink(p) for p in ports):
            return
        for port in ports:  # the uplink goes with the last port of the network
            if _kind(port) in MADE_KINDS:
                _delete_link(ipr, port)
                log.info("deleted %s %s of bridge %s: no port left", _kind(port),
                         port.get("ifname"), bridge)
            else:  # the host's own interface (flat): released, never deleted
                ipr.link("set", index=port["index"], master=0)
                log.info("released %s from bridge %s", port.get("ifname"), bridge)
        self._peers.pop(network_id, None)
        _delete_link(ipr, link)
        log.info("deleted bridge %s: no port left on it", bridge)

    def set_peers(self, network_id: str, peers: tuple[NetworkPeer, ...]) -> None:
        with self._lock:
            self._peers[network_id] = tuple(peers)
            with self._rtnl() as ipr:
                self._converge_fdb(ipr, network_id)

    def fdb(self, network_id: str) -> set[tuple[str, str]]:
        """(MAC, VTEP) entries of the network's VXLAN device (empty when it has none)."""
        with self._lock, self._rtnl() as ipr:
            link = _get_link(ipr, vxlan_name(network_id))
            return set() if link is None else _fdb_entries(ipr, link["index"])

    def ensure_network(self, network_id: str, mtu: int, network_type: str | None = None,
                       physical_network: str | None = None,
                       segmentation_id: int | None = None) -> str:
        segment = Nic(index=0, name="", port_id="", mac="", network_id=network_id, mtu=mtu,
                      network_type=network_type, physical_network=physical_network,
                      segmentation_id=segmentation_id)
        uplink = plan_uplink(segment, self.mappings, self.local_ip)
        with self._lock, self._rtnl() as ipr:
            bridge = self._ensure_bridge(ipr, segment.bridge, mtu)
            if uplink is not None:
                self._ensure_uplink(ipr, uplink, bridge, mtu)
                if uplink.kind == "vxlan":
                    self._converge_fdb(ipr, network_id)
        return segment.bridge

    def release_network(self, network_id: str) -> None:
        with self._lock, self._rtnl() as ipr:
            self._release_bridge(ipr, network_id)

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

    def _is_uplink(self, link: Link) -> bool:
        return _kind(link) in MADE_KINDS or link.get("ifname") in self.mappings.values()

    def _ensure_uplink(self, ipr: IPRoute, uplink: Uplink, bridge: Link, mtu: int) -> None:
        """Make the uplink if Cirrus makes it and it is missing (or is not what the plan
        says: another VNI, another VTEP), then enslave it to the bridge and bring it up."""
        link = _get_link(ipr, uplink.name)
        if link is not None and uplink.create is not None and not _matches(link, uplink):
            _delete_link(ipr, link)
            log.info("deleted %s: not the %s device the network needs", uplink.name,
                     uplink.kind)
            link = None
        if link is None:
            if uplink.create is None:
                raise RuntimeError(f"interface {uplink.name} (physical_interface_mappings) "
                                   "does not exist on this host")
            spec = dict(uplink.create)
            if spec["kind"] == "vxlan":
                self._remove_stale_vxlan(ipr, uplink.name, int(str(spec["vxlan_id"])))
            if "link" in spec:
                parent = _get_link(ipr, str(spec["link"]))
                if parent is None:
                    raise RuntimeError(f"interface {spec['link']} (physical_interface_mappings)"
                                       " does not exist on this host")
                spec["link"] = parent["index"]
            _create_link(ipr, ifname=uplink.name, mtu=mtu, **spec)
            log.info("created %s", " && ".join(ip_commands(uplink, bridge.get("ifname"), mtu)))
            link = _get_link(ipr, uplink.name)
            if link is None:
                raise RuntimeError(f"could not create {uplink.name} ({uplink.kind})")
        if uplink.kind != FLAT:
            self._disable_ipv6(uplink.name)
        _converge(ipr, link, mtu=mtu if uplink.set_mtu else None, master=bridge)

    def _remove_stale_vxlan(self, ipr: IPRoute, name: str, vni: int) -> None:
        """The kernel allows one VXLAN device per VNI and port: one of Cirrus's with this
        VNI under another name belongs to a network deleted while its host was away (a VNI
        is one network's at a time), so it goes; anyone else's is an error worth saying."""
        for link in ipr.get_links():
            if (_kind(link) != "vxlan" or link.get("ifname") == name
                    or link.get(("linkinfo", "data", "IFLA_VXLAN_ID")) != vni):
                continue
            if not str(link.get("ifname")).startswith(VXLAN_PREFIX):
                raise RuntimeError(f"VNI {vni} is taken on this host by {link.get('ifname')}, "
                                   "which Cirrus did not make")
            _delete_link(ipr, link)
            log.info("deleted %s: a stale VXLAN device with VNI %d", link.get("ifname"), vni)

    def _converge_fdb(self, ipr: IPRoute, network_id: str) -> None:
        """Make the VXLAN device's forwarding database exactly the peers' entries: stale
        ones removed first, then the missing ones appended."""
        link = _get_link(ipr, vxlan_name(network_id))
        if link is None:
            return
        wanted: set[tuple[str, str]] = set()
        for peer in self._peers.get(network_id, ()):
            if peer.vtep == self.local_ip:
                continue
            wanted.add((ZERO_MAC, peer.vtep))
            wanted.update((mac.lower(), peer.vtep) for mac in peer.macs)
        present = _fdb_entries(ipr, link["index"])
        for mac, dst in sorted(present - wanted):
            ipr.fdb("del", ifindex=link["index"], lladdr=mac, dst=dst)
        for mac, dst in sorted(wanted - present):
            ipr.fdb("append", ifindex=link["index"], lladdr=mac, dst=dst)
        if present != wanted:
            log.info("fdb of %s: %d entries (%d added, %d removed)", link.get("ifname"),
                     len(wanted), len(wanted - present), len(present - wanted))

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


def _converge(ipr: IPRoute, link: Link, mtu: int | None, master: Link | None = None) -> None:
    """Set what differs, MTU before master (one message: the kernel applies MTU first) so the
    bridge never adopts a wrong MTU from a port, then bring the device up. `mtu` None: left
    as it is (the host's own interface)."""
    name = link.get("ifname")
    changes: dict[str, int] = {}
    if mtu is not None and link.get("mtu") != mtu:
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


def _matches(link: Link, uplink: Uplink) -> bool:
    if _kind(link) != uplink.kind:
        return False
    return all(link.get(("linkinfo", "data", key)) == value
               for key, value in uplink.attributes.items())


def _fdb_entries(ipr: IPRoute, index: int) -> set[tuple[str, str]]:
    """The (MAC, remote VTEP) entries of a VXLAN device; local bridge entries have no
    destination and are left out."""
    return {(str(entry.get("NDA_LLADDR")).lower(), str(entry.get("NDA_DST")))
            for entry in ipr.fdb("dump", ifindex=index)
            if entry.get("NDA_DST") and entry.get("ifindex") == index}


def _kind(link: Link) -> str | None:
    """The link's rtnl kind: "bridge", "tun" (taps too), "veth", ... or None."""
    return link.get(("linkinfo", "kind"))
