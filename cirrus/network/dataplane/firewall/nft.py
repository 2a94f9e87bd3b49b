"""Putting the filter on the host: `Firewall` keeps the host's `FirewallState`, works out
what a change needs (a whole replacement, only some groups' chains and sets, conntrack
entries to forget) and hands the rendered script to `apply`; `NftFirewall` applies it with
`nft -f` (turning br_netfilter on first) and forgets connections with `conntrack -D`."""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from cirrus.network.dataplane.firewall.rules import conntrack_filters
from cirrus.network.dataplane.firewall.ruleset import (
    FirewallState,
    render_group_update,
    render_ruleset,
)
from cirrus.network.port_filter import HostFilterState, PortFilter, SecurityGroupRule

log = logging.getLogger(__name__)


class Firewall:
    """The host's filter state; `apply` is where a driver puts it on the host. This base
    only records it (the `noop` dataplane and the `noop` firewall driver)."""

    name = "noop"

    def __init__(self) -> None:
        self.state = FirewallState()
        self._lock = threading.RLock()
        self._deferred = 0
        self._dirty = True  # nothing applied yet: the first application is whole
        self._plugged: set[str] = set()  # ports plugged from a NIC on this host

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Apply once at the end, not per change (the agent re-plugging every port)."""
        with self._lock:
            self._deferred += 1
            try:
                yield
            finally:
                self._deferred -= 1
                if not self._deferred and self._dirty:
                    self._full()

    def set_port(self, port: PortFilter) -> None:
        with self._lock:
            self._plugged.add(port.port_id)
            if self.state.ports.get(port.port_id) == port:
                return
            self.state.ports[port.port_id] = port
            self._full()

    def remove_port(self, port_id: str) -> None:
        with self._lock:
            self._plugged.discard(port_id)
            if self.state.ports.pop(port_id, None) is not None:
                self._full()

    def update(self, update: HostFilterState) -> None:
        """Take the network service's state for this host: its ports (replacing those it
        listed before; ports plugged here that it does not list are kept), group rules and
        members. A stale one (older generation) is ignored."""
        with self._lock:
            if update.generation and update.generation < self.state.generation:
                log.info("firewall: ignored a stale update (%s < %s)", update.generation,
                         self.state.generation)
                return
            self.state.generation = update.generation
            ports = {p.port_id: p for p in update.ports}
            for port_id in self._plugged - set(ports):  # plugged here, unknown to the service
                if port_id in self.state.ports:
                    ports[port_id] = self.state.ports[port_id]
            changed_rules = {g for g in set(update.rules) | set(self.state.rules)
                             if update.rules.get(g, ()) != self.state.rules.get(g, ())}
            changed_members = {g for g in set(update.members) | set(self.state.members)
                               if update.members.get(g, ()) != self.state.members.get(g, ())}
            stateless = frozenset(update.stateless)
            ports_changed = ports != self.state.ports or stateless != self.state.stateless
            removed = {g: [r for r in self.state.rules.get(g, ()) if r not in update.rules.get(g, ())]
                       for g in changed_rules}
            self.state.ports, self.state.rules = ports, dict(update.rules)
            self.state.members = dict(update.members)
            self.state.stateless = stateless
            if ports_changed or self._dirty:
                self._full()
            elif changed_rules or changed_members:
                self._groups(changed_rules, changed_members)
            self._forget_removed({g: rules for g, rules in removed.items() if rules})

    def _forget_removed(self, removed: Mapping[str, list[SecurityGroupRule]]) -> None:
        """Connections a removed rule allowed are forgotten by conntrack (as Neutron does),
        so their next packet meets the new rules: dropped unless another rule allows it."""
        if not removed:
            return
        filters = []
        for port in self.state.filtered_ports():
            if self.state.is_stateless(port.security_groups):
                continue  # nothing of it is tracked
            for group in set(port.security_groups) & set(removed):
                for rule in removed[group]:
                    filters += conntrack_filters(port, rule)
        if filters:
            self.forget_connections(filters)

    def forget_connections(self, filters: list[list[str]]) -> None:
        """Delete the conntrack entries each filter (`conntrack -D` arguments) matches."""

    def resync(self) -> None:
        with self._lock:
            self._full()

    def _full(self) -> None:
        if self._deferred:
            self._dirty = True
            return
        self._dirty = True  # until it is applied: a failed apply is retried whole next time
        self.apply(render_ruleset(self.state))
        self._dirty = False

    def _groups(self, groups: set[str], members: set[str]) -> None:
        if self._deferred or self._dirty:
            self._full()
            return
        self._dirty = True
        self.apply(render_group_update(self.state, groups, members))
        self._dirty = False

    def apply(self, script: str) -> None:
        """Put `script` on the host; the base records nothing more than the state."""


class NftFirewall(Firewall):
    """Applies with `nft -f -` in the dataplane's network namespace (or the host's)."""

    name = "nftables"

    def __init__(self, netns: str | None = None) -> None:
        super().__init__()
        self.netns = netns
        self._ready = False

    def _run(self, argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        return subprocess.run([*prefix, *argv], input=stdin, capture_output=True, text=True,
                              check=False)

    def _enable_br_netfilter(self) -> None:
        """Bridged IPv4/IPv6 traffic through the inet hooks (per network namespace)."""
        if shutil.which("nft") is None:
            raise RuntimeError("security groups cannot be enforced: `nft` is not installed "
                               "(apt-get install nftables), or set firewall_driver = \"noop\"")
        done = self._run(["sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=1",
                          "net.bridge.bridge-nf-call-ip6tables=1"])
        if done.returncode != 0:
            raise RuntimeError("security groups cannot be enforced: br_netfilter is not "
                               f"available ({done.stderr.strip()})")
        self._ready = True

    def forget_connections(self, filters: list[list[str]]) -> None:
        if shutil.which("conntrack") is None:
            log.warning("conntrack is not installed (apt-get install conntrack): connections "
                        "a removed rule allowed go on until they end")
            return
        for argv in filters:
            done = self._run(["conntrack", "-D", *argv])
            if done.returncode not in (0, 1):  # 1: nothing matched
                log.warning("conntrack -D %s failed: %s", " ".join(argv), done.stderr.strip())

    def apply(self, script: str) -> None:
        if not self._ready:
            self._enable_br_netfilter()
        started = time.monotonic()
        done = self._run(["nft", "-f", "-"], stdin=script)
        if done.returncode != 0:
            raise RuntimeError(f"nft failed: {done.stderr.strip()[:2000]}")
        log.info("firewall applied", extra={"ports": len(self.state.filtered_ports()),
                                            "seconds": round(time.monotonic() - started, 4)})


def load_firewall(name: str, netns: str | None = None) -> Firewall:
    if name == "nftables":
        return NftFirewall(netns=netns)
    if name == "noop":
        return Firewall()
    raise ValueError(f"unknown firewall driver {name!r} (known: nftables, noop)")
