"""The host side of routers, run by an agent with `l3_agent` on: per router it runs, a
network namespace `qrouter-<router id>` that forwards between the router's legs.

- each interface is a veth: `qr-<port id[:11]>` in the namespace (the router port's MAC and
  addresses), its peer `rq-<port id[:11]>` a port of the network's bridge (made with its
  uplink by `Dataplane.ensure_network`, as for DHCP);
- the gateway is `qg-<port id[:11]>` (peer `rg-...` on the external network's bridge) with
  its addresses, the floating addresses (/32, /128: the kernel answers ARP for them) and
  a default route via the external subnet's gateway;
- the router's extra routes (`proto static`), net.ipv4.ip_forward and IPv6 forwarding;
- one nftables table `ip cirrus-router`, replaced whole by one `nft -f` each time:
  floating address -> fixed address (DNAT, before routing and for the namespace's own
  output), fixed -> floating for that address's traffic leaving by the gateway (1:1 SNAT),
  and with enable_snat every internal subnet's traffic leaving by the gateway SNATed to
  the gateway's address.

The peers are not tap-prefixed, so the security group firewall does not filter them (router
ports are `network:*`, unfiltered as in Neutron). Converging is the same call on first sync,
on a change and after a restart; the last configuration is kept in a private directory per
router, and `restore` makes every router again before the agent takes work.
`RecordingRouters` (the `noop` dataplane's) keeps configurations and runs nothing.
"""

from __future__ import annotations

import abc
import contextlib
import ipaddress
import json
import logging
import shutil
import subprocess
import threading
from pathlib import Path

from cirrus import files
from cirrus.network.dataplane import Dataplane
from cirrus.network.l3.model import RouterConfig, RouterPort

log = logging.getLogger(__name__)

TABLE = "cirrus-router"


def failure(exc: BaseException) -> str:
    """What the control side is told of a router that could not be made (one line)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:500]


def namespace_name(router_id: str, netns: str | None = None) -> str:
    """`qrouter-<router id>`; inside a dataplane namespace (tests) prefixed with its name."""
    return f"{netns}-qrouter-{router_id}" if netns else f"qrouter-{router_id}"


def interface_name(port_id: str) -> str:
    return f"qr-{port_id[:11]}"


def gateway_name(port_id: str) -> str:
    return f"qg-{port_id[:11]}"


def bridge_side(inner: str) -> str:
    """The veth end on the bridge: `rq-` for `qr-`, `rg-` for `qg-` (never `tap`)."""
    return ("rq-" if inner.startswith("qr-") else "rg-") + inner[3:]


def _v4(addresses: tuple[str, ...]) -> list[ipaddress.IPv4Interface]:
    return [i for i in (ipaddress.ip_interface(a) for a in addresses)
            if isinstance(i, ipaddress.IPv4Interface)]


def nft_ruleset(router: RouterConfig) -> str:
    """The router's NAT table as one `nft -f` script (replaces the table atomically)."""
    lines = [f"add table ip {TABLE}", f"delete table ip {TABLE}", f"table ip {TABLE} {{"]
    pre, post = [], []
    gw = router.gateway
    if gw is not None:
        qg = gateway_name(gw.port_id)
        for floating, fixed in router.floating_ips:
            if ":" in floating or ":" in fixed:
                continue
            pre.append(f"ip daddr {floating} dnat to {fixed}")
            post.append(f'ip saddr {fixed} oifname "{qg}" snat to {floating}')
        gw_v4 = _v4(gw.addresses)
        internal = sorted({str(i.network) for leg in router.interfaces
                           for i in _v4(leg.addresses)})
        if router.enable_snat and gw_v4 and internal:
            post.append(f'ip saddr {{ {", ".join(internal)} }} oifname "{qg}" '
                        f"snat to {gw_v4[0].ip}")
    lines += ["  chain prerouting {", "    type nat hook prerouting priority dstnat;",
              *(f"    {r}" for r in pre), "  }",
              "  chain output {", "    type nat hook output priority -100;",
              *(f"    {r}" for r in pre), "  }",
              "  chain postrouting {", "    type nat hook postrouting priority srcnat;",
              *(f"    {r}" for r in post), "  }", "}"]
    return "\n".join(lines) + "\n"


class RouterHost(abc.ABC):
    """The routers a host runs."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self._lock = threading.RLock()

    def sync(self, router: RouterConfig) -> None:
        """Run `router` as described (make, update or leave as it is)."""
        with self._lock:
            before = self.served().get(router.router_id)
            self._record(router)
            self._converge(router, before)

    def remove(self, router_id: str) -> None:
        """Leave nothing of the router on the host; unknown is fine."""
        with self._lock:
            self._teardown(router_id, self.served().get(router_id))
            shutil.rmtree(self.state_dir / router_id, ignore_errors=True)
            log.info("l3: router %s no longer run here", router_id)

    def sync_all(self, routers: list[RouterConfig]) -> dict[str, str | None]:
        """Run exactly `routers` (the control side's full state): the others go. Returns
        router id -> None if it was made, else why not (the agent reports each)."""
        outcome: dict[str, str | None] = {}
        with self._lock:
            wanted = {r.router_id for r in routers}
            for router_id in set(self.served()) - wanted:
                self.remove(router_id)
            for router in routers:
                try:
                    self.sync(router)
                    outcome[router.router_id] = None
                except Exception as exc:
                    log.exception("l3: router %s could not be made", router.router_id)
                    outcome[router.router_id] = failure(exc)
        return outcome

    def restore(self) -> None:
        """Make again every router recorded in the state directory (agent start)."""
        with self._lock:
            for router in self.served().values():
                try:
                    self._converge(router, None)
                except Exception:
                    log.exception("l3: router %s could not be restored", router.router_id)

    def served(self) -> dict[str, RouterConfig]:
        """router id -> its last configuration, from the state directory."""
        result = {}
        if self.state_dir.is_dir():
            for path in sorted(self.state_dir.glob("*/router.json")):
                with contextlib.suppress(ValueError, KeyError, OSError, TypeError):
                    router = RouterConfig.from_dict(json.loads(path.read_text()))
                    result[router.router_id] = router
        return result

    def _record(self, router: RouterConfig) -> None:
        directory = files.make_dirs(self.state_dir / router.router_id)
        files.write_private(directory / "router.json", json.dumps(router.to_dict(), indent=1))

    @abc.abstractmethod
    def _converge(self, router: RouterConfig, before: RouterConfig | None) -> None: ...

    @abc.abstractmethod
    def _teardown(self, router_id: str, before: RouterConfig | None) -> None: ...


class RecordingRouters(RouterHost):
    """Keeps what it is told and runs nothing (the fake driver's hosts)."""

    def _converge(self, router: RouterConfig, before: RouterConfig | None) -> None:
        pass

    def _teardown(self, router_id: str, before: RouterConfig | None) -> None:
        pass


class NamespaceRouters(RouterHost):
    def __init__(self, state_dir: Path, dataplane: Dataplane, netns: str | None = None) -> None:
        super().__init__(state_dir)
        self.dataplane = dataplane
        self.netns = netns

    def namespace(self, router_id: str) -> str:
        return namespace_name(router_id, self.netns)

    # ---- commands
    def _run(self, cmd: list[str], ns: str | None = None, check: bool = True,
             stdin: str | None = None) -> str:
        if ns:
            cmd = ["ip", "netns", "exec", ns, *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=30,
                              input=stdin)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip()}")
        return done.stdout

    def _ip(self, *args: str, netns: str | None = None, check: bool = True) -> str:
        return self._run(["ip", *(["-n", netns] if netns else []), *args], check=check)

    def _links(self, netns: str | None) -> dict[str, dict]:
        return {link["ifname"]: link
                for link in json.loads(self._ip("-j", "link", "show", netns=netns) or "[]")}

    # ---- converge
    def _converge(self, router: RouterConfig, before: RouterConfig | None) -> None:
        ns = self.namespace(router.router_id)
        if not Path("/run/netns", ns).exists():
            self._ip("netns", "add", ns)
            log.info("l3: created namespace %s", ns)
        self._ip("link", "set", "lo", "up", netns=ns)
        for key in ("net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"):
            self._run(["sysctl", "-q", "-w", key], ns=ns, check=False)
        legs: dict[str, tuple[RouterPort, tuple[str, ...]]] = {
            interface_name(leg.port_id): (leg, leg.addresses) for leg in router.interfaces}
        if router.gateway is not None:
            gw = router.gateway
            floating = tuple(f"{f}/{128 if ':' in f else 32}" for f, _ in router.floating_ips)
            legs[gateway_name(gw.port_id)] = (gw, (*gw.addresses, *floating))
        for name in self._links(ns):  # legs the router no longer has
            if name[:3] in ("qr-", "qg-") and name not in legs:
                self._ip("link", "del", name, netns=ns, check=False)
                log.info("l3: router %s: removed %s", router.router_id, name)
        for name, (leg, addresses) in legs.items():
            self._ensure_leg(ns, name, leg, addresses)
        if before is not None:  # bridges of networks the router left, if nothing else uses them
            for network_id in before.networks() - router.networks():
                self.dataplane.release_network(network_id)
        self._ensure_routes(ns, router)
        self._run(["nft", "-f", "-"], ns=ns, stdin=nft_ruleset(router))
        if before is not None:  # connections of floating IPs that went keep no NAT
            gone = {f for f, _ in before.floating_ips} - {f for f, _ in router.floating_ips}
            for address in sorted(gone):
                if shutil.which("conntrack"):
                    self._run(["conntrack", "-D", "-d", address], ns=ns, check=False)
                    self._run(["conntrack", "-D", "-q", address], ns=ns, check=False)
        log.info("l3: router %s converged in %s (%d interface(s), gateway %s, %d floating)",
                 router.router_id, ns, len(router.interfaces),
                 "yes" if router.gateway else "no", len(router.floating_ips))

    def _ensure_leg(self, ns: str, inner: str, leg: RouterPort,
                    addresses: tuple[str, ...]) -> None:
        bridge = self.dataplane.ensure_network(
            leg.network_id, leg.mtu, network_type=leg.network_type,
            physical_network=leg.physical_network, segmentation_id=leg.segmentation_id)
        outer = bridge_side(inner)
        if inner not in self._links(ns):
            if outer in self._links(self.netns):
                self._ip("link", "del", outer, netns=self.netns)
            self._ip("link", "add", outer, "mtu", str(leg.mtu), "type", "veth", "peer", "name",
                     inner, "mtu", str(leg.mtu), "netns", ns, netns=self.netns)
            log.info("l3: veth %s (on %s) - %s (in %s)", outer, bridge, inner, ns)
        self._run(["sysctl", "-q", "-w", f"net/ipv6/conf/{outer}/disable_ipv6=1"],
                  ns=self.netns, check=False)
        self._ip("link", "set", outer, "mtu", str(leg.mtu), "master", bridge, "up",
                 netns=self.netns)
        link = self._links(ns)[inner]
        if link.get("address") != leg.mac or link.get("mtu") != leg.mtu:
            self._ip("link", "set", inner, "down", netns=ns)
            self._ip("link", "set", inner, "address", leg.mac, "mtu", str(leg.mtu), netns=ns)
        self._ip("link", "set", inner, "up", netns=ns)
        shown = json.loads(self._ip("-j", "addr", "show", "dev", inner, netns=ns) or "[]")
        have = {f"{a['local']}/{a['prefixlen']}" for entry in shown
                for a in entry.get("addr_info", []) if a.get("scope") == "global"}
        wanted = {str(ipaddress.ip_interface(a)) for a in addresses}
        for address in sorted(have - wanted):
            self._ip("addr", "del", address, "dev", inner, netns=ns)
        for address in sorted(wanted - have):
            extra = ["nodad"] if ":" in address else []
            self._ip("addr", "add", address, "dev", inner, *extra, netns=ns)

    def _ensure_routes(self, ns: str, router: RouterConfig) -> None:
        """The default route via the external gateway and the extra routes, all `proto
        static`; other static routes go."""
        wanted: dict[str, str] = {}
        gw = router.gateway
        if gw is not None:
            for gateway_ip in gw.gateway_ips:
                default = "::/0" if ":" in gateway_ip else "0.0.0.0/0"
                wanted.setdefault(default, gateway_ip)
        for destination, nexthop in router.routes:
            wanted[str(ipaddress.ip_network(destination, strict=False))] = nexthop
        for family in ("-4", "-6"):
            shown = json.loads(self._ip("-j", family, "route", "show", "proto", "static",
                                        netns=ns) or "[]")
            for route in shown:
                dst = route.get("dst", "")
                key = ("0.0.0.0/0" if family == "-4" else "::/0") if dst == "default" else (
                    str(ipaddress.ip_network(dst if "/" in dst else
                                             f"{dst}/{32 if family == '-4' else 128}")))
                if wanted.get(key) != route.get("gateway"):
                    self._ip(family, "route", "del", dst, netns=ns, check=False)
        for destination, nexthop in sorted(wanted.items()):
            family = "-6" if ":" in nexthop else "-4"
            # A nexthop on none of the legs fails alone: the other routes stand.
            self._ip(family, "route", "replace", destination, "via", nexthop,
                     "proto", "static", netns=ns, check=False)

    # ---- teardown
    def _teardown(self, router_id: str, before: RouterConfig | None) -> None:
        ns = self.namespace(router_id)
        if Path("/run/netns", ns).exists():
            for name in self._links(ns):  # the veths first: their bridges are released now
                if name[:3] in ("qr-", "qg-"):
                    self._ip("link", "del", name, netns=ns, check=False)
            self._ip("netns", "del", ns, check=False)
            log.info("l3: deleted namespace %s", ns)
        for network_id in sorted(before.networks() if before else ()):
            self.dataplane.release_network(network_id)


def load_routers(dataplane: Dataplane, state_dir: Path, netns: str | None = None) -> RouterHost:
    """Namespaces for a real dataplane; the recording one for `noop` (nothing on the host)."""
    if dataplane.name == "noop":
        return RecordingRouters(state_dir)
    if shutil.which("nft") is None:
        log.warning("l3: l3_agent is on but nft is not installed (Debian: apt-get install "
                    "nftables): routers here will not NAT")
    return NamespaceRouters(state_dir, dataplane, netns=netns)
