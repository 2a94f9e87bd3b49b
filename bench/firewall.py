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

Then TCP throughput between the two VMs with iperf3: one stream, the client pinned to one
core and the server to the other, --firewall-seconds per run after a first second left out
(slow start), in --firewall-repeat rounds of bare, conntrack, filtered, filtered,
conntrack, bare (ABCCBA, so a drift of the machine's speed within a round cancels out):

  bare       no tables, br_netfilter off: a plain bridge;
  conntrack  br_netfilter on and conntrack (a zone), no rule: the floor of any stateful
             filter of bridged traffic on this kernel;
  filtered   Cirrus's tables with 1,000 ports loaded, the server's group allowing iperf3.

Each round gives a ratio (its two filtered runs over its two bare runs); the figure is
their median, shown with their range and quartiles, beside the ratio of the round's second
bare run to its first (what the machine's noise alone gives) and the load average and CPU
steal seen during the runs. What the API adds before the agent has the state (a database
read and a bus message) is not in these figures.

Needs root, iproute2, nft, conntrack and iperf3; skipped, saying why, without them.
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
THROUGHPUT_GOAL = 0.90  # filtered over bare
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
    for tool in ("ip", "nft", "iperf3", "conntrack"):
        if shutil.which(tool) is None:
            return f"`{tool}` not found (apt-get install iproute2 nftables iperf3 conntrack)"
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


# Throughput: what each kind of run has on the host namespace.
#   bare       no tables, br_netfilter off: a plain Linux bridge;
#   conntrack  br_netfilter on and conntrack in a zone, no filter rule: the floor of any
#              stateful filter of bridged traffic on this kernel (no bridge-family conntrack);
#   filtered   Cirrus's tables with 1,000 ports loaded.
KINDS = ("bare", "conntrack", "filtered")
CLIENT_CPU, SERVER_CPU = 0, 1  # iperf3 pinned: the client on one core, the server on the other
CONNTRACK_ONLY = """table inet cirrus_floor {
  chain zone {
    type filter hook prerouting priority -300; policy accept;
    ct zone set 1
  }
  chain forward {
    type filter hook forward priority 0; policy accept;
    ct state established,related accept
  }
}
"""


def _cpu_times() -> list[int]:
    with open("/proc/stat") as stat:
        return [int(v) for v in stat.readline().split()[1:]]


def _iperf(host: Host, seconds: float) -> dict[str, float]:
    """One TCP stream for `seconds` after a first second left out (slow start), the client
    and server pinned to their cores; with the machine's load and steal during it."""
    before = _cpu_times()
    out = _run("iperf3", "-c", host.vms[1][2], "-p", str(IPERF_PORT), "-t", f"{seconds:g}",
               "-O", "1", "-P", "1", "-A", str(CLIENT_CPU), "-J", netns=host.vms[0][0])
    after = _cpu_times()
    delta = [b - a for a, b in zip(before, after, strict=False)]
    total = sum(delta[:8]) or 1
    end = json.loads(out)["end"]
    cpu = end.get("cpu_utilization_percent") or {}
    return {"gbps": float(end["sum_received"]["bits_per_second"]) / 1e9,
            # CPU-seconds per second the client and server used (softirq work done in their
            # context included: this kernel does not account IRQ time apart)
            "cpu": (float(cpu.get("host_total", 0)) + float(cpu.get("remote_total", 0))) / 100,
            "load": os.getloadavg()[0],
            "steal": delta[7] / total if len(delta) > 7 else 0.0}


def _iperf_server(host: Host) -> subprocess.Popen:
    server = subprocess.Popen(["ip", "netns", "exec", host.vms[1][0], "iperf3", "-s", "-p",
                               str(IPERF_PORT), "-A", str(SERVER_CPU)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        if _run("ss", "-ltnH", f"sport = :{IPERF_PORT}", netns=host.vms[1][0]).strip():
            return server
        time.sleep(0.05)
    server.kill()
    raise RuntimeError("iperf3 -s did not start listening")


def _set_kind(host: Host, firewall: NftFirewall, loaded: HostFilterState, kind: str) -> None:
    _run("nft", "flush", "ruleset", netns=host.ns)
    on = "0" if kind == "bare" else "1"
    _run("sysctl", "-q", "-w", f"net.bridge.bridge-nf-call-iptables={on}",
         f"net.bridge.bridge-nf-call-ip6tables={on}", netns=host.ns)
    if kind == "conntrack":
        subprocess.run(["ip", "netns", "exec", host.ns, "nft", "-f", "-"], input=CONNTRACK_ONLY,
                       text=True, check=True, capture_output=True)
    elif kind == "filtered":
        firewall._ready = False  # turns br_netfilter on again
        firewall.state.ports.clear()
        firewall.state.generation = 0
        firewall.update(loaded)
    _run("conntrack", "-F", netns=host.ns, check=False)  # each run starts from nothing


def measure_throughput(host: Host, rounds: int, seconds: float,
                       say: Callable[[str], None] = print) -> dict[str, Any]:
    """`rounds` rounds of bare, conntrack, filtered, filtered, conntrack, bare (ABCCBA: a
    drift of the machine's speed during a round cancels out of its ratios)."""
    firewall = NftFirewall(netns=host.ns)
    rules = {WEB: (*EGRESS, SecurityGroupRule("ingress", "IPv4", "tcp", IPERF_PORT,
                                              IPERF_PORT)), CLIENTS: EGRESS}
    loaded = HostFilterState(generation=1, ports=tuple(host.ports(1000)), rules=rules)
    runs: list[list[dict[str, Any]]] = []
    server = _iperf_server(host)
    try:
        for number in range(rounds):
            this: list[dict[str, Any]] = []
            for kind in (*KINDS, *reversed(KINDS)):
                _set_kind(host, firewall, loaded, kind)
                this.append({"kind": kind, **_iperf(host, seconds)})
            runs.append(this)
            say(f"firewall: throughput round {number + 1}/{rounds}: " + ", ".join(
                f"{r['kind']} {r['gbps']:.2f}" for r in this) + f" Gbit/s, load {this[-1]['load']:.1f}")
    finally:
        server.kill()
        server.wait()
    return {"rounds": runs, "seconds": seconds}


def _in_round(runs: list[dict[str, Any]], kind: str) -> float:
    return sum(r["gbps"] for r in runs if r["kind"] == kind)


def _efficiency(runs: list[dict[str, Any]], kind: str) -> float:
    return _in_round(runs, kind) / (sum(r.get("cpu", 0.0) for r in runs if r["kind"] == kind)
                                    or 1.0)


def throughput_figures(measured: dict[str, Any]) -> dict[str, Any]:
    """Medians of each kind, each round's ratios (its two filtered runs over its two bare
    ones) with their median and spread, and the bare/bare ratio within each round (the
    second bare run over the first: what the machine's noise alone gives)."""
    rounds = measured["rounds"]
    med = statistics.median

    def spread(values: list[float]) -> dict[str, Any]:
        quartiles = statistics.quantiles(values, n=4, method="inclusive") \
            if len(values) > 1 else [values[0]] * 3
        return {"median": med(values), "min": min(values), "max": max(values),
                "q1": quartiles[0], "q3": quartiles[2], "each": values}

    figures: dict[str, Any] = {
        f"{kind}_gbps": med([r["gbps"] for rnd in rounds for r in rnd if r["kind"] == kind])
        for kind in KINDS}
    figures["filtered_ratio"] = spread([_in_round(rnd, "filtered") / _in_round(rnd, "bare")
                                        for rnd in rounds])
    figures["conntrack_ratio"] = spread([_in_round(rnd, "conntrack") / _in_round(rnd, "bare")
                                         for rnd in rounds])
    figures["rules_ratio"] = spread([_in_round(rnd, "filtered") / _in_round(rnd, "conntrack")
                                     for rnd in rounds])
    # Gbit per CPU-second of iperf3's two ends: the cost of a byte, less sensitive to other
    # work on the machine taking the cores away than Gbit per second of wall time.
    figures["efficiency_ratio"] = spread([_efficiency(rnd, "filtered") / _efficiency(rnd, "bare")
                                          for rnd in rounds])
    bares = [[r["gbps"] for r in rnd if r["kind"] == "bare"] for rnd in rounds]
    figures["bare_noise"] = spread([b[1] / b[0] for b in bares])
    loads = [r["load"] for rnd in rounds for r in rnd]
    figures["load"] = {"min": min(loads), "max": max(loads)}
    figures["steal"] = max(r["steal"] for rnd in rounds for r in rnd)
    return figures


def run(repeat: int, say: Callable[[str], None], seconds: float = 5.0,
        throughput_only: bool = False) -> dict[str, Any]:
    why = missing()
    if why:
        say(f"firewall: NOT RUN: {why}")
        return {"skipped": why}
    runs: dict[str, Any] = {}
    for count in () if throughput_only else SIZES:
        host = Host()
        try:
            say(f"firewall: {count} ports, {repeat} rule changes")
            runs[str(count)] = measure_size(host, count, repeat)
        finally:
            host.close()
    host = Host()
    try:
        say(f"firewall: iperf3 ({seconds:g} s, pinned, one stream), {repeat} rounds of "
            f"{', '.join(KINDS)} and back; load average {os.getloadavg()[0]:.1f}")
        runs["throughput"] = measure_throughput(host, repeat, seconds, say)
    finally:
        host.close()
    med = statistics.median
    results: dict[str, Any] = {}
    for count in () if throughput_only else SIZES:
        r = runs[str(count)]
        for key in ("full_s", "rule_s", "rule_apply_s", "members_s"):
            results[f"{key[:-2]}_{count}_s"] = med(r[key])
    throughput = throughput_figures(runs["throughput"])
    results.update(throughput)
    results["throughput_ratio"] = throughput["filtered_ratio"]["median"]
    return {"results": results, "runs": runs, "repeat": repeat,
            "meets_goal": throughput_only or results["rule_1000_s"] < GOAL_SECONDS,
            "meets_throughput_goal": results["throughput_ratio"] >= THROUGHPUT_GOAL}


def table(outcome: dict, markdown: bool) -> str:
    r, runs = outcome["results"], outcome["runs"]

    def each(count: int, key: str) -> str:
        return ", ".join(f"{1000 * v:.0f}" for v in runs[str(count)][key])

    def ratios(key: str) -> str:
        x = r[key]
        return (f"{x['min']:.2f}-{x['max']:.2f}, quartiles {x['q1']:.2f}-{x['q3']:.2f}: "
                + ", ".join(f"{v:.2f}" for v in x["each"]))

    rows = []
    for count in SIZES:
        if f"rule_{count}_s" not in r:
            continue
        rows += [
            (f"{count} ports: rule created to a connection through it", f"{1000 * r[f'rule_{count}_s']:.0f} ms", each(count, "rule_s")),
            (f"{count} ports: rule change applied (nft, groups only)", f"{1000 * r[f'rule_apply_{count}_s']:.0f} ms", each(count, "rule_apply_s")),
            (f"{count} ports: membership change applied (one set)", f"{1000 * r[f'members_{count}_s']:.0f} ms", each(count, "members_s")),
            (f"{count} ports: port change, both tables replaced", f"{1000 * r[f'full_{count}_s']:.0f} ms", each(count, "full_s")),
        ]
    rounds = runs["throughput"]["rounds"]

    def gbps(kind: str) -> str:
        return ", ".join(f"{x['gbps']:.2f}" for rnd in rounds for x in rnd if x["kind"] == kind)

    rows += [
        ("TCP throughput, bare bridge (iperf3)", f"{r['bare_gbps']:.2f} Gbit/s", gbps("bare")),
        ("TCP throughput, br_netfilter + conntrack, no rule", f"{r['conntrack_gbps']:.2f} Gbit/s",
         gbps("conntrack")),
        ("TCP throughput, filtered (1,000 ports loaded)", f"{r['filtered_gbps']:.2f} Gbit/s",
         gbps("filtered")),
        (f"filtered / bare, per round (goal >= {THROUGHPUT_GOAL:.2f})",
         f"{r['filtered_ratio']['median']:.2f}", ratios("filtered_ratio")),
        ("br_netfilter + conntrack / bare, per round", f"{r['conntrack_ratio']['median']:.2f}",
         ratios("conntrack_ratio")),
        ("filtered / br_netfilter + conntrack (the rules), per round",
         f"{r['rules_ratio']['median']:.2f}", ratios("rules_ratio")),
        ("bare / bare within a round (the noise)", f"{r['bare_noise']['median']:.2f}",
         ratios("bare_noise")),
        ("filtered / bare in Gbit per CPU-second of iperf3, per round",
         f"{r['efficiency_ratio']['median']:.2f}", ratios("efficiency_ratio")),
        ("load average (1 min) during the runs; most steal", "",
         f"{r['load']['min']:.1f}-{r['load']['max']:.1f}; {100 * r['steal']:.0f}%"),
    ]
    if "rule_1000_s" in r:
        rows.append((f"goal: rule to enforcement < {GOAL_SECONDS:.0f} s at 1,000 ports", "",
                     "meets the goal" if outcome["meets_goal"] else "MISSES the goal"))
    rows.append((f"goal: filtered >= {THROUGHPUT_GOAL:.2f} of bare", "",
                 "meets the goal" if outcome["meets_throughput_goal"] else "MISSES the goal"))
    if markdown:
        lines = ["| | median | runs (ms or Gbit/s) |", "|---|---:|---|"]
        lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
        return "\n".join(lines)
    width = max(len(a) for a, _, _ in rows)
    return "\n".join(f"{a:<{width}}  {b:>14}  {c}" for a, b, c in rows)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="the firewall suite alone")
    parser.add_argument("repeat", type=int, nargs="?", default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--throughput-only", action="store_true")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--json", help="write the outcome there")
    args = parser.parse_args()
    outcome = run(args.repeat, print, args.seconds, args.throughput_only)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(outcome, out, indent=1)
    if "results" in outcome:
        print(table(outcome, args.markdown))
