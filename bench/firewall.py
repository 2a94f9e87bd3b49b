"""The `firewall` suite: security groups on one host (cirrus.network.dataplane.firewall).

Everything happens in network namespaces this suite makes and deletes: a "host" namespace
with a Cirrus bridge (`brq...`, br_netfilter on), two "VMs" (namespaces behind veths named
as Cirrus names taps) that exchange real packets, and N-2 more ports that exist only in the
firewall's tables (their chains, marks and anti-spoofing are all there, as on a host with N
VMs). Measured, for N = 100 and N = 1,000:

  full     a port change: both tables rendered and replaced in one `nft -f` (also what an
           agent does on start), median of --firewall-repeat runs;
  rule     a rule created: from the firewall receiving the new state (a rule allowing a TCP
           port the server listens on) to the client's connection to that port going
           through, polled every 10 ms with a new connection (the apply alone is shown too);
  members  a remote-group membership change (one set rewritten): the apply alone.

Then TCP throughput between the two VMs with iperf3 (3 s each), alternating without any
filter (no tables, br_netfilter off: a bare bridge) and with it (1,000 ports loaded, the
server's group allowing iperf3's port), --firewall-repeat times each: medians, and the
median of each pair's ratio. What the API adds before the agent has the state (a database read and a bus
message) is not in these figures.

Needs root, iproute2, nft and iperf3; skipped, saying why, without them.
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import os
import shutil
import socket
import statistics
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from cirrus.network.dataplane.firewall import NftFirewall
from cirrus.network.model import tap_name
from cirrus.network.port_filter import HostFilterState, PortFilter, SecurityGroupRule

SIZES = (100, 1000)
WEB = "0e0e0e0e-0000-4000-8000-000000000001"
CLIENTS = "0e0e0e0e-0000-4000-8000-000000000002"
EGRESS = (SecurityGroupRule("egress", "IPv4"), SecurityGroupRule("egress", "IPv6"))
SSH = SecurityGroupRule("ingress", "IPv4", "tcp", 22, 22)
IPERF_PORT = 5201
GOAL_SECONDS = 1.0
_libc = ctypes.CDLL(None, use_errno=True)


def _run(*argv: str, netns: str | None = None, check: bool = True) -> str:
    prefix = ["ip", "netns", "exec", netns] if netns else []
    done = subprocess.run([*prefix, *argv], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")
    return done.stdout


def _socket_in(netns: str) -> socket.socket:
    box: dict[str, Any] = {}

    def work() -> None:
        fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
        try:
            if _libc.setns(fd, 0x40000000) != 0:
                box["error"] = OSError(ctypes.get_errno(), "setns")
            else:
                box["sock"] = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        finally:
            os.close(fd)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["sock"]


def missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for tool in ("ip", "nft", "iperf3"):
        if shutil.which(tool) is None:
            return f"`{tool}` not found (apt-get install iproute2 nftables iperf3)"
    return None


class Host:
    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.ns, self.bridge = f"fwb-h-{tag}", f"brq{tag}"
        self.network_id = tag  # bridge_name() of it is the bridge: its conntrack zone
        self.vms: list[tuple[str, str, str]] = []  # (netns, port id, ip)
        _run("ip", "netns", "add", self.ns)
        _run("ip", "-n", self.ns, "link", "add", self.bridge, "type", "bridge")
        _run("ip", "-n", self.ns, "link", "set", self.bridge, "up")
        for i in (1, 2):
            netns, port_id, ip = f"fwb-v{i}-{tag}", str(uuid.uuid4()), f"10.88.0.{i}"
            _run("ip", "netns", "add", netns)
            self.vms.append((netns, port_id, ip))
            tap = tap_name(port_id)
            _run("ip", "-n", self.ns, "link", "add", tap, "type", "veth", "peer", "name",
                 "eth0", "netns", netns)
            _run("ip", "-n", self.ns, "link", "set", tap, "master", self.bridge, "up")
            _run("ip", "-n", netns, "link", "set", "eth0", "address", f"fa:16:3e:88:00:0{i}")
            _run("ip", "-n", netns, "addr", "add", f"{ip}/24", "dev", "eth0")
            _run("ip", "-n", netns, "link", "set", "eth0", "up")
            _run("ip", "-n", netns, "link", "set", "lo", "up")

    def ports(self, count: int) -> list[PortFilter]:
        """The two VMs' ports and count-2 more, half in each group."""
        (_, client, _), (_, server, _) = self.vms
        net = self.network_id
        real = [PortFilter(client, "fa:16:3e:88:00:01", ("10.88.0.1",), (CLIENTS,),
                           network_id=net),
                PortFilter(server, "fa:16:3e:88:00:02", ("10.88.0.2",), (WEB,), network_id=net)]
        extra = [PortFilter(str(uuid.uuid4()), f"fa:16:3e:{i >> 8 & 255:02x}:{i & 255:02x}:99",
                            (f"10.{90 + (i >> 16)}.{i >> 8 & 255}.{i & 255}",),
                            (WEB if i % 2 else CLIENTS,), network_id=net)
                 for i in range(1, count - 1)]
        return real + extra

    def close(self) -> None:
        for netns, _, _ in self.vms:
            _run("ip", "netns", "del", netns, check=False)
        _run("ip", "netns", "del", self.ns, check=False)


def _connects(host: Host, port: int, timeout: float) -> bool:
    sock = _socket_in(host.vms[0][0])
    sock.settimeout(timeout)
    try:
        sock.connect((host.vms[1][2], port))
        return True
    except OSError:
        return False
    finally:
        sock.close()


def _serve(host: Host, port: int) -> socket.socket:
    server = _socket_in(host.vms[1][0])
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", port))
    server.listen(64)

    def accept() -> None:
        while True:
            try:
                server.accept()[0].close()
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    return server


def measure_size(host: Host, count: int, repeat: int) -> dict[str, Any]:
    firewall = NftFirewall(netns=host.ns)
    ports = host.ports(count)
    generation = [0.0]

    def send(rules: dict, members: dict | None = None, port_list: list | None = None) -> None:
        generation[0] += 1
        firewall.update(HostFilterState(generation=generation[0], ports=tuple(port_list or ports),
                                        rules=rules, members=members or {}))

    base = {WEB: (*EGRESS, SSH), CLIENTS: EGRESS}
    send(base, {CLIENTS: ("10.88.0.1",)})
    full, rule, rule_apply, members = [], [], [], []
    listeners = [_serve(host, 7000 + i) for i in range(repeat)]
    try:
        for i in range(repeat):
            # a port change (an address of one port): everything replaced
            moved = [*ports[:-1], dataclasses.replace(ports[-1], addresses=(f"10.98.0.{i}",))]
            started = time.perf_counter()
            send(base, {CLIENTS: ("10.88.0.1",)}, moved)
            full.append(time.perf_counter() - started)
            send(base, {CLIENTS: ("10.88.0.1",)})
            target = 7000 + i
            if _connects(host, target, 0.05):
                raise RuntimeError(f"port {target} open before its rule")
            base = {**base, WEB: (*base[WEB], SecurityGroupRule("ingress", "IPv4", "tcp",
                                                                 target, target))}
            started = time.perf_counter()
            send(base, {CLIENTS: ("10.88.0.1",)})
            rule_apply.append(time.perf_counter() - started)
            while not _connects(host, target, 0.01):
                if time.perf_counter() - started > 10:
                    raise RuntimeError(f"port {target} still closed 10 s after its rule")
            rule.append(time.perf_counter() - started)
            started = time.perf_counter()
            send(base, {CLIENTS: ("10.88.0.1", f"10.99.0.{i}")})
            members.append(time.perf_counter() - started)
    finally:
        for listener in listeners:
            listener.close()
    return {"ports": count, "full_s": full, "rule_s": rule, "rule_apply_s": rule_apply,
            "members_s": members}


def _iperf(host: Host) -> float:
    out = _run("iperf3", "-c", host.vms[1][2], "-p", str(IPERF_PORT), "-t", "3", "-J",
               netns=host.vms[0][0])
    return float(json.loads(out)["end"]["sum_received"]["bits_per_second"]) / 1e9


def _iperf_server(host: Host) -> subprocess.Popen:
    server = subprocess.Popen(["ip", "netns", "exec", host.vms[1][0], "iperf3", "-s", "-p",
                               str(IPERF_PORT)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    for _ in range(100):
        if _run("ss", "-ltnH", f"sport = :{IPERF_PORT}", netns=host.vms[1][0]).strip():
            return server
        time.sleep(0.05)
    server.kill()
    raise RuntimeError("iperf3 -s did not start listening")


def measure_throughput(host: Host, repeat: int) -> dict[str, Any]:
    firewall = NftFirewall(netns=host.ns)
    rules = {WEB: (*EGRESS, SecurityGroupRule("ingress", "IPv4", "tcp", IPERF_PORT,
                                              IPERF_PORT)), CLIENTS: EGRESS}
    loaded = HostFilterState(generation=1, ports=tuple(host.ports(1000)), rules=rules)
    bare, filtered = [], []
    server = _iperf_server(host)
    try:
        _throughput_runs(host, firewall, loaded, repeat, bare, filtered)
    finally:
        server.kill()
        server.wait()
    return {"bare_gbps": bare, "filtered_gbps": filtered}


def _throughput_runs(host: Host, firewall: NftFirewall, loaded: HostFilterState, repeat: int,
                     bare: list[float], filtered: list[float]) -> None:
    for _ in range(repeat):
        _run("nft", "flush", "ruleset", netns=host.ns)
        _run("sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=0",
             "net.bridge.bridge-nf-call-ip6tables=0", netns=host.ns)
        bare.append(_iperf(host))
        firewall._ready = False  # turns br_netfilter on again
        firewall.state.ports.clear()
        firewall.state.generation = 0
        firewall.update(loaded)
        filtered.append(_iperf(host))


def run(repeat: int, say: Callable[[str], None]) -> dict[str, Any]:
    why = missing()
    if why:
        say(f"firewall: NOT RUN: {why}")
        return {"skipped": why}
    runs: dict[str, Any] = {}
    for count in SIZES:
        host = Host()
        try:
            say(f"firewall: {count} ports, {repeat} rule changes")
            runs[str(count)] = measure_size(host, count, repeat)
        finally:
            host.close()
    host = Host()
    try:
        say(f"firewall: iperf3 with and without the filter, {repeat} times each")
        runs["throughput"] = measure_throughput(host, repeat)
    finally:
        host.close()
    med = statistics.median
    results: dict[str, float] = {}
    for count in SIZES:
        r = runs[str(count)]
        for key in ("full_s", "rule_s", "rule_apply_s", "members_s"):
            results[f"{key[:-2]}_{count}_s"] = med(r[key])
    t = runs["throughput"]
    results["bare_gbps"], results["filtered_gbps"] = med(t["bare_gbps"]), med(t["filtered_gbps"])
    # Each filtered run right after its bare one: the median of the pairs' ratios is less
    # sensitive to the machine's load drifting during the suite than a ratio of medians.
    results["throughput_ratio"] = med([f / b for b, f in zip(t["bare_gbps"], t["filtered_gbps"],
                                                             strict=True)])
    return {"results": results, "runs": runs, "repeat": repeat,
            "meets_goal": results["rule_1000_s"] < GOAL_SECONDS}


def table(outcome: dict, markdown: bool) -> str:
    r, runs = outcome["results"], outcome["runs"]

    def each(count: int, key: str) -> str:
        return ", ".join(f"{1000 * v:.0f}" for v in runs[str(count)][key])

    rows = []
    for count in SIZES:
        rows += [
            (f"{count} ports: rule created to a connection through it", f"{1000 * r[f'rule_{count}_s']:.0f} ms", each(count, "rule_s")),
            (f"{count} ports: rule change applied (nft, groups only)", f"{1000 * r[f'rule_apply_{count}_s']:.0f} ms", each(count, "rule_apply_s")),
            (f"{count} ports: membership change applied (one set)", f"{1000 * r[f'members_{count}_s']:.0f} ms", each(count, "members_s")),
            (f"{count} ports: port change, both tables replaced", f"{1000 * r[f'full_{count}_s']:.0f} ms", each(count, "full_s")),
        ]
    t = runs["throughput"]
    rows += [
        ("TCP throughput, bare bridge (iperf3)", f"{r['bare_gbps']:.2f} Gbit/s",
         ", ".join(f"{v:.2f}" for v in t["bare_gbps"])),
        ("TCP throughput, filtered (1,000 ports loaded)", f"{r['filtered_gbps']:.2f} Gbit/s",
         ", ".join(f"{v:.2f}" for v in t["filtered_gbps"])),
        ("filtered / bare, median of each pair's ratio (goal >= 0.90)",
         f"{r['throughput_ratio']:.2f}",
         ", ".join(f"{f / b:.2f}" for b, f in zip(t["bare_gbps"], t["filtered_gbps"],
                                                   strict=True))),
        (f"goal: rule to enforcement < {GOAL_SECONDS:.0f} s at 1,000 ports", "",
         "meets the goal" if outcome["meets_goal"] else "MISSES the goal"),
    ]
    if markdown:
        lines = ["| | median | runs (ms or Gbit/s) |", "|---|---:|---|"]
        lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
        return "\n".join(lines)
    width = max(len(a) for a, _, _ in rows)
    return "\n".join(f"{a:<{width}}  {b:>14}  {c}" for a, b, c in rows)


if __name__ == "__main__":
    import sys

    outcome = run(int(sys.argv[1]) if len(sys.argv) > 1 else 5, print)
    if "results" in outcome:
        print(table(outcome, "--markdown" in sys.argv))
