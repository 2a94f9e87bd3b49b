"""`python -m bench`: Cirrus's control plane under load, through its REST API.

Two targets, measured one after the other in the same run (--targets picks them):

  all-in-one     `cirrus all-in-one` on a free loopback port: SQLite, the in-process bus,
                 8 fake hosts.
  multi-process  separate `cirrus serve` processes on PostgreSQL + RabbitMQ: 2 API processes,
                 a conductor, a scheduler and 3 agents (fake hosts), the load spread over
                 the two API processes. Skipped, saying why, when PostgreSQL or RabbitMQ
                 cannot be reached (CIRRUS_REQUIRE_SERVICES=1 makes that an error).

Four suites (--suites picks them); the first three run --repeat times on every target
chosen:

  servers  servers created to ACTIVE and deleted (N=200 at concurrency 20, and N=100 at 10
           like the Nova figures), fake hosts with zero boot delay and room for thousands
           of servers, quotas unlimited.
  ports    N=1000 ports created by 20 clients (--ports), IPAM picking the addresses on a
           /20, then listed and checked (zero duplicate addresses, exactly the ports
           created); 20 clients racing 100 creates (--port-race) on a /26 (61 addresses:
           exactly 61 created, the rest refused 409 "No more IP addresses available on
           subnet ..."); the 1000 deleted. Any duplicate or miscount fails the bench
           (exit 1).
  tokens   tokens issued and validated (the all-in-one only).
  boot     real guests, not in the default list (root, QEMU and libvirtd; skipped, saying
           why, without them): the test guest booted --boots times by bare
           qemu-system-x86_64 and --boots times through `cirrus all-in-one --virt-driver
           libvirt`, process start / POST /servers to the guest's `network ready` line, and
           root-disk overlays on a 10 MiB and a 1 GiB base (bench/boot.py). Runs once,
           whatever --targets says.
  firewall security groups on one host, not in the default list (root, nft, iperf3): time
           from a rule change to enforcement at 100 and 1,000 ports and TCP throughput
           with and without the filter, in namespaces (bench/firewall.py); once.

After each repetition of servers and of ports, the cheapest HTTP round trip of the same
deployment as a same-run baseline (the HTTP floor). Prints medians beside Nova's published
numbers, the multi-process / all-in-one ratios (for ports: PostgreSQL / SQLite), and
writes every figure to bench/results/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import api, boot, compare, cpu, firewall, load, multiproc, ports, report, server
from bench import volumes as volumes_suite
from tests.dbfixtures import services_required

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ("all-in-one", "multi-process")
SUITES = ("servers", "ports", "tokens", "boot", "firewall", "volumes")
DEFAULT_SUITES = ("servers", "ports", "tokens")  # boot needs root, QEMU and libvirtd
# and firewall root, nft and iperf3 (issue 14, sg)
TARGET_SUITES = {"servers", "ports", "tokens"}  # what the fake-driver targets run


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        pass
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or "unknown (no git)"
    # What is measured: the code, the bench, and the harness the multi-process target uses.
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--",
                            "cirrus", "bench", "tests/deployment.py", "tests/dbfixtures.py",
                            "tests/faults"], capture_output=True, text=True).stdout.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(mem_kb / 1024 / 1024, 1),
            "python": platform.python_version(), "kernel": platform.release(),
            "commit": commit + ("+uncommitted" if dirty else ""),
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            # 1, 5 and 15 minutes at the end: how busy the shared machine was (the bench's
            # own processes included).
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def _choice(known: tuple[str, ...], what: str) -> Callable[[str], list[str]]:
    """An argparse type for a comma-separated subset of `known`, returned in known's order."""
    def parse(value: str) -> list[str]:
        chosen = [t.strip() for t in value.split(",") if t.strip()]
        unknown = [t for t in chosen if t not in known]
        if unknown or not chosen:
            raise argparse.ArgumentTypeError(
                f"unknown {what}(s) {', '.join(unknown) or '(none)'}; choose from "
                f"{', '.join(known)}")
        return [t for t in known if t in chosen]
    return parse


def _nxc(value: str) -> str:
    """An NxC argument (N operations at concurrency C), checked."""
    n, sep, c = value.partition("x")
    if not (sep and n.isdigit() and c.isdigit() and int(n) > 0 and int(c) > 0):
        raise argparse.ArgumentTypeError(f"'{value}' is not NxC (say 1000x20)")
    return value


def _pair(value: str) -> tuple[int, int]:
    n, c = value.split("x")
    return int(n), int(c)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--targets", type=_choice(TARGETS, "target"), default=list(TARGETS),
                   help=f"comma-separated, from: {', '.join(TARGETS)} (default: both)")
    p.add_argument("--suites", type=_choice(SUITES, "suite"), default=list(DEFAULT_SUITES),
                   help=f"comma-separated, from: {', '.join(SUITES)} (default: all but boot; tokens "
                        "run on the all-in-one only)")
    p.add_argument("--scenarios", default="200x20,100x10",
                   help="comma-separated NxC: N servers at concurrency C (default %(default)s)")
    p.add_argument("--ports", type=_nxc, default="1000x20",
                   help=f"NxC: N ports created (then deleted) at concurrency C on a "
                        f"{ports.FILL_CIDR} (default %(default)s)")
    p.add_argument("--port-race", type=_nxc, default="100x20",
                   help=f"NxC: N creates racing at concurrency C for the 61 addresses of a "
                        f"{ports.RACE_CIDR}; N above 61 (default %(default)s)")
    p.add_argument("--repeat", type=int, default=3, help="repetitions of each phase")
    p.add_argument("--firewall-repeat", type=int, default=5,
                   help="firewall suite: rule changes per size and iperf3 runs of each kind "
                        "(default %(default)s)")
    p.add_argument("--firewall-seconds", type=float, default=5.0,
                   help="firewall suite: length of each iperf3 run, after a first second left "
                        "out (default %(default)s)")
    p.add_argument("--boots", type=int, default=5,
                   help="boot suite: boots of each kind (default %(default)s), and overlays of "
                        "each base (at least 5)")
    p.add_argument("--volumes-repeat", type=int, default=5,
                   help="volumes suite: volumes made from each image after the first "
                        "(default %(default)s)")
    p.add_argument("--token-seconds", type=float, default=10.0, help="all-in-one only")
    p.add_argument("--token-concurrency", type=int, default=4, help="for token issue")
    p.add_argument("--validate-concurrency", type=int, default=20,
                   help="for token validation (as for the HTTP floor)")
    p.add_argument("--floor-seconds", type=float, default=5.0,
                   help="the HTTP floor after each repetition of servers and of ports")
    p.add_argument("--floor-concurrency", type=int, default=20)
    p.add_argument("--data-dir", help="keep each target's data and logs in DATA_DIR/<target> "
                                      "(default: a temp dir, deleted)")
    p.add_argument("--against", metavar="REF",
                   help="instead of the suites: the first --scenarios NxC on an all-in-one "
                        "from REF's code (a git commit, branch or tag) and from this checkout, "
                        "alternating, --repeat times; medians and the ratio (bench/compare.py)")
    p.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    p.add_argument("--output", help="write the JSON results here (default bench/results/)")
    args = p.parse_args(argv)
    if args.boots < 1:
        p.error("--boots: at least 1 (the goal is stated for medians of 5 or more)")
    if _pair(args.port_race)[0] <= ports.RACE_POOL:
        p.error(f"--port-race: N must be above the {ports.RACE_POOL} addresses of the "
                f"{ports.RACE_CIDR}, or nothing races for the last one")
    return args


@dataclass
class Measured:
    """One target's figures, every repetition of each, and the errors its clients saw."""

    runs: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    # Broken IPAM promises (duplicate addresses, ports miscounted): never a median away.
    violations: list[str] = field(default_factory=list)

    def record(self, key: str, value: float) -> None:
        self.runs.setdefault(key, []).append(value)

    def summary(self) -> dict:
        results = {key: report.median(values) for key, values in self.runs.items()}
        if "ports_duplicates" in self.runs:  # one bad run is enough
            results["ports_duplicates"] = sum(self.runs["ports_duplicates"])
        return {"results": results, "runs": self.runs, "errors": self.errors[:50],
                "error_count": len(self.errors), "violations": self.violations}


def server_phases(args: argparse.Namespace, label: str, session: api.Session,
                  memory: server.MemoryWatch, m: Measured) -> None:
    """What every target runs, --repeat times: each NxC scenario (create to ACTIVE, delete to
    gone), then the HTTP floor; then the cost of a server in floor round trips and who used
    the cores while servers were created and deleted."""
    meter = cpu.CpuMeter(memory.pids)
    scenarios = [tuple(int(x) for x in s.split("x")) for s in args.scenarios.split(",") if s]
    flavor, image = api.create_flavor(session), api.create_image(session)
    for rep in range(1, args.repeat + 1):
        for n, c in scenarios:
            with meter.window():
                created, deleted = load.create_and_delete(session, n, c, flavor, image)
            m.errors += created.errors + deleted.errors
            tag = f"{n}x{c}"
            p50, p99 = (report.percentile(created.latencies, q) for q in (50, 99))
            m.record(f"create_{tag}_rate", created.rate)
            m.record(f"create_{tag}_p50", p50)
            m.record(f"create_{tag}_p99", p99)
            m.record(f"delete_{tag}_rate", deleted.rate)
            say(f"{label} run {rep}: N={n} C={c}: {created.count}/{n} ACTIVE at "
                f"{created.rate:.1f}/s (p50 {p50:.3f} s, p99 {p99:.3f} s), deleted at "
                f"{deleted.rate:.1f}/s, {len(created.errors) + len(deleted.errors)} errors")
        floor = load.http_floor(session, args.floor_seconds, args.floor_concurrency)
        m.record("http_floor_rate", floor.rate)
        m.errors += floor.errors
        m.record("peak_rss_servers_mb", memory.peak_mb())
        say(f"{label} run {rep}: HTTP floor {floor.rate:,.0f}/s, peak RSS so far "
            f"{memory.peak_mb():.0f} MB")
    m.record("pss_servers_mb", memory.current_pss_mb())
    for group, cores in meter.cores().items():
        m.record(f"cores:{group}", cores)
    servers = args.repeat * sum(n for n, _ in scenarios)
    m.record("cpu_ms_per_server:Cirrus", 1000 * meter.seconds.get("Cirrus", 0.0) / servers)
    m.record("cpu_ms_per_server:services", 1000 * sum(
        meter.seconds.get(group, 0.0) for group in ("Cirrus", *cpu.SERVICES)) / servers)
    tag = args.scenarios.split(",")[0]
    for created_rate, floor_rate in zip(m.runs.get(f"create_{tag}_rate", []),
                                        m.runs.get("http_floor_rate", []), strict=False):
        m.record(f"create_{tag}_floor_cost",
                 floor_rate / created_rate if created_rate else float("nan"))


def port_phases(args: argparse.Namespace, label: str, session: api.Session,
                memory: server.MemoryWatch, m: Measured) -> None:
    """The ports suite (bench/ports.py), --repeat times, each followed by the HTTP floor; then
    the cost of a port in floor round trips and who used the cores while ports were created
    and deleted. IPAM violations are said at once, loudly, and kept for the exit status."""
    meter = cpu.CpuMeter(memory.pids)
    fill, race = _pair(args.ports), _pair(args.port_race)
    for rep in range(1, args.repeat + 1):
        run = ports.repetition(session, fill, race, meter)
        m.errors += run.errors
        m.violations += [f"run {rep}: {v}" for v in run.violations]
        for violation in run.violations:
            say(f"{label} run {rep}: IPAM VIOLATION: {violation}")
        p50, p99 = (report.percentile(run.fill.latencies, q) for q in (50, 99))
        figures = {
            "ports_create_rate": run.fill.rate, "ports_create_p50": p50,
            "ports_create_p99": p99, "ports_create_p50_first": run.fill_p50(last=False),
            "ports_create_p50_last": run.fill_p50(last=True),
            "ports_list_seconds": run.list_seconds, "ports_duplicates": run.duplicates,
            "ports_race_created": len(run.race.addresses),
            "ports_race_refused": len(run.race.refusals),
            "ports_race_seconds": run.race.phase.seconds,
            "ports_race_refusal_p50": report.percentile(run.race.refusal_latencies, 50),
            "ports_delete_rate": run.deleted.rate}
        for key, value in figures.items():
            m.record(key, value)
        floor = load.http_floor(session, args.floor_seconds, args.floor_concurrency)
        m.errors += floor.errors
        m.record("ports_floor_rate", floor.rate)
        m.record("ports_floor_cost", floor.rate / run.fill.rate if run.fill.rate else float("nan"))
        say(f"{label} run {rep}: ports: {run.fill.count}/{fill[0]} created at "
            f"{run.fill.rate:.1f}/s (p50 {p50:.3f} s, p99 {p99:.3f} s), listed in "
            f"{run.list_seconds:.3f} s, duplicates: {run.duplicates}; race: "
            f"{len(run.race.addresses)} created, {len(run.race.refusals)} refused 409; "
            f"deleted at {run.deleted.rate:.1f}/s; {len(run.errors)} errors, "
            f"{len(run.violations)} violations; HTTP floor {floor.rate:,.0f}/s")
    m.record("peak_rss_ports_mb", memory.peak_mb())
    for group, cores in meter.cores().items():
        m.record(f"ports_cores:{group}", cores)
    made = args.repeat * fill[0]
    m.record("cpu_ms_per_port:Cirrus", 1000 * meter.seconds.get("Cirrus", 0.0) / made)
    m.record("cpu_ms_per_port:services", 1000 * sum(
        meter.seconds.get(group, 0.0) for group in ("Cirrus", *cpu.SERVICES)) / made)


def token_phases(args: argparse.Namespace, session: api.Session, auth: dict,
                 database_url: str, memory: server.MemoryWatch, m: Measured) -> None:
    """Token issue and validation, --repeat times (the all-in-one only: the in-process check
    reads its SQLite database)."""
    for rep in range(1, args.repeat + 1):
        issued = load.token_issue(session, auth, args.token_seconds, args.token_concurrency)
        m.record("token_issue_rate", issued.rate)
        validated = load.token_validate(session, args.token_seconds, args.validate_concurrency)
        m.record("token_validate_rate", validated.rate)
        inproc = load.in_process_validate(database_url, session.token,
                                          min(args.token_seconds, 3.0))
        m.record("token_validate_inproc_rate", inproc.rate)
        m.errors += issued.errors + validated.errors
        m.record("peak_rss_mb", memory.peak_mb())
        say(f"all-in-one run {rep}: token issue {issued.rate:,.1f}/s, validate "
            f"{validated.rate:,.0f}/s (HTTP) {inproc.rate:,.0f}/s (in-process), peak RSS so far "
            f"{memory.peak_mb():.0f} MB")


def run_all_in_one(args: argparse.Namespace, data_dir: Path) -> dict:
    say(f"all-in-one: starting cirrus all-in-one in {data_dir}")
    aio = server.start(data_dir)
    memory = server.MemoryWatch([aio.process.pid]).start()
    m = Measured()
    peaks = {}  # peaks are maxima, not medians
    try:
        idle_rss = memory.current_mb()
        auth = aio.cloud["auth"]
        session = api.login(aio.url, auth)
        if "servers" in args.suites:
            server_phases(args, "all-in-one", session, memory, m)
            peaks["peak_rss_servers_mb"] = memory.peak_mb()
        if "ports" in args.suites:
            port_phases(args, "all-in-one", session, memory, m)
            peaks["peak_rss_ports_mb"] = memory.peak_mb()
        # Tokens last: every password check holds argon2's 19 MiB, which the allocator keeps.
        if "tokens" in args.suites:
            token_phases(args, session, auth, f"sqlite:///{data_dir.resolve() / 'cirrus.db'}",
                         memory, m)
    finally:
        peaks["peak_rss_mb"] = memory.peak_mb()
        memory.stop()
        code = aio.stop()
    outcome = m.summary()
    outcome["results"].update(peaks)
    return {**outcome, "idle_rss_mb": idle_rss, "exit_codes": {"all-in-one": code},
            "log_problems": server.log_problems([data_dir / "cirrus.log"])}


def run_multi_process(args: argparse.Namespace, workdir: Path) -> dict:
    say(f"multi-process: starting {multiproc.APIS} API processes, conductor, scheduler and "
        f"{multiproc.AGENTS} agents on PostgreSQL + RabbitMQ in {workdir}")
    with multiproc.deployment(workdir) as d:
        pids = multiproc.pids(d)
        memory = server.MemoryWatch(list(pids.values())).start()
        m = Measured()
        peaks = {}
        try:
            idle_rss = memory.current_mb()
            session = api.login(d.url, multiproc.admin_auth(d), multiproc.api_urls(d))
            say(f"multi-process: load spread over {', '.join(session.load_urls)}")
            if "servers" in args.suites:
                server_phases(args, "multi-process", session, memory, m)
                peaks["peak_rss_servers_mb"] = memory.peak_mb()
            if "ports" in args.suites:
                port_phases(args, "multi-process", session, memory, m)
                peaks["peak_rss_ports_mb"] = memory.peak_mb()
        finally:
            marks = dict(zip(pids, memory.high_water_marks_mb(), strict=True))
            memory.stop()
            codes = d.stop()  # the `with` stops it again, harmlessly, when this raised
        logs = [s.proc.log_file for s in d.services.values() if s.proc is not None]
        outcome = m.summary()
        outcome["results"].update(peaks)
        return {**outcome, "idle_rss_mb": idle_rss, "processes": list(pids),
                "peak_rss_each_mb": marks, "exit_codes": codes,
                "log_problems": server.log_problems(logs)}


def run_target(target: str, args: argparse.Namespace, workdir: Path) -> dict:
    """One target's outcome; {"skipped": why} or {"failed": why} instead of raising, so that
    the other target still runs."""
    try:
        if target == "all-in-one":
            return run_all_in_one(args, workdir)
        return run_multi_process(args, workdir)
    except multiproc.ServiceUnavailable as exc:
        say(f"{target}: NOT RUN: {exc}")
        return {"skipped": str(exc)}
    except Exception as exc:
        say(f"{target}: FAILED: {type(exc).__name__}: {exc}")
        return {"failed": traceback.format_exc()}


def run(args: argparse.Namespace, base: Path) -> dict:
    targets = ({t: run_target(t, args, base / t) for t in args.targets}
               if TARGET_SUITES & set(args.suites) else {})
    booted = run_boot(args) if "boot" in args.suites else None
    filtered = run_firewall(args) if "firewall" in args.suites else None
    volumes = run_volumes(args) if "volumes" in args.suites else None
    return {"firewall": filtered,"machine": machine(), "command": " ".join(["python -m bench", *sys.argv[1:]]),
            "suites": args.suites, "scenarios": args.scenarios, "ports": args.ports,
            "port_race": args.port_race, "repeat": args.repeat, "targets": targets,
            "boot": booted, "volumes": volumes}


def run_volumes(args: argparse.Namespace) -> dict:
    """The volumes suite's outcome (issue 15); {"failed": why} instead of raising."""
    try:
        made = volumes_suite.run(max(1, args.volumes_repeat), say)
    except Exception as exc:
        say(f"volumes: FAILED: {type(exc).__name__}: {exc}")
        return {"failed": traceback.format_exc()}
    made["attach"] = run_volume_attach(args)
    return made


def run_volume_attach(args: argparse.Namespace) -> dict:
    """Hot attach to a running guest until the guest sees the disk (bench/volume_attach.py);
    {"failed": why} instead of raising."""
    from bench import volume_attach

    try:
        return volume_attach.run(max(1, args.volumes_repeat), say)
    except Exception as exc:
        say(f"volumes: attach FAILED: {type(exc).__name__}: {exc}")
        return {"failed": traceback.format_exc()}


def run_boot(args: argparse.Namespace) -> dict:
    """The boot suite's outcome; {"failed": why} instead of raising, as for a target."""
    try:
        return boot.run(args.boots, say)
    except Exception as exc:
        say(f"boot: FAILED: {type(exc).__name__}: {exc}")
        return {"failed": traceback.format_exc()}


def run_firewall(args: argparse.Namespace) -> dict:
    """The firewall suite's outcome; {"failed": why} instead of raising (issue 14, sg)."""
    try:
        return firewall.run(args.firewall_repeat, say, args.firewall_seconds)
    except Exception as exc:
        say(f"firewall: FAILED: {type(exc).__name__}: {exc}")
        return {"failed": traceback.format_exc()}


def print_outcome(outcome: dict, args: argparse.Namespace, out: Path) -> int:
    """The tables and any trouble; the exit status (1: errors, a failed target, a process
    that did not exit 0 on SIGTERM, or a skipped target when CIRRUS_REQUIRE_SERVICES=1)."""
    m = outcome["machine"]
    targets = outcome["targets"]
    print(f"\n{m['date']} - {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, "
          f"Python {m['python']}, commit {m['commit']}")
    medians = args.repeat if targets else (args.boots if "boot" in args.suites else args.firewall_repeat)
    if not targets and set(args.suites) == {"volumes"}:
        medians = args.volumes_repeat
    print(f"{outcome['command']}  (medians of {medians}; load average at the end "
          f"{', '.join(map(str, m['load_average']))})")
    aio = targets.get("all-in-one", {})
    if "results" in aio:
        print(f"\nall-in-one (idle RSS after start {aio['idle_rss_mb']:.0f} MB, exit code "
              f"{aio['exit_codes']['all-in-one']})")
        if {"servers", "tokens"} & set(args.suites):
            print()
            print(report.table(aio["results"], aio["runs"], args.markdown))
    mp = targets.get("multi-process", {})
    if "results" in mp:
        print(f"\nmulti-process ({len(mp['processes'])} processes, idle RSS sum "
              f"{mp['idle_rss_mb']:.0f} MB, exit codes "
              f"{', '.join(f'{k} {v}' for k, v in mp['exit_codes'].items())})")
        if "servers" in args.suites:
            print()
            print(report.comparison(aio, mp, report.comparison_rows(args.scenarios),
                                    args.markdown))
    if "ports" in args.suites and ("results" in aio or "results" in mp):
        print("\nports and IP allocation, SQLite (the all-in-one) beside PostgreSQL (the "
              "multi-process deployment's 2 API processes):\n")
        rows = report.ports_rows(args.ports, args.port_race, ports.FILL_CIDR, ports.RACE_CIDR)
        print(report.comparison(aio, mp, rows, args.markdown,
                                ("SQLite (all-in-one)", "PostgreSQL (multi-process)",
                                 "PostgreSQL / SQLite")))
        print("\nduplicates: " + ", ".join(
            f"{t['results']['ports_duplicates']:.0f} ({name})"
            for name, t in targets.items() if "ports_duplicates" in t.get("results", {})))
    booted = outcome.get("boot")
    if booted and "results" in booted:
        print(f"\nreal VM boot, medians of {args.boots} (QEMU TCG), the guest booted by bare "
              "QEMU and through Cirrus (libvirt):\n")
        print(boot.table(booted, args.markdown))
    filtered = outcome.get("firewall")
    if filtered and "results" in filtered:
        print(f"\nsecurity groups on one host (nftables), medians of {args.firewall_repeat}:\n")
        print(firewall.table(filtered, args.markdown))
    made = outcome.get("volumes")
    if made and "results" in made:
        print(f"\nvolumes from images, medians of {args.volumes_repeat}:\n")
        print(volumes_suite.table(made, args.markdown))
    attached = (made or {}).get("attach")
    if attached and "results" in attached:
        from bench import volume_attach

        print(f"\nvolumes hot-attached to a running guest (QEMU TCG), medians of "
              f"{args.volumes_repeat}:\n")
        print(volume_attach.table(attached, args.markdown))
    print(f"\nresults: {out}")
    status = 0
    if made and "skipped" in made:
        print(f"\nvolumes: NOT RUN: {made['skipped']}")
        status = 1 if services_required() else 0
    elif made and "failed" in made:
        print(f"\nvolumes: FAILED:\n{made['failed']}")
        status = 1
    elif made and made.get("skipped_backends") and services_required():
        status = 1
    if attached and "skipped" in attached:
        print(f"\nvolumes: attach NOT RUN: {attached['skipped']}")
        status = max(status, 1 if services_required() else 0)
    elif attached and "failed" in attached:
        print(f"\nvolumes: attach FAILED:\n{attached['failed']}")
        status = 1
    elif attached and attached.get("skipped_backends") and services_required():
        status = 1
    if filtered and "skipped" in filtered:
        print(f"\nfirewall: NOT RUN: {filtered['skipped']}")
        status = 1 if services_required() else 0
    elif filtered and "failed" in filtered:
        print(f"\nfirewall: FAILED:\n{filtered['failed']}")
        status = 1
    if booted and "skipped" in booted:
        print(f"\nboot: NOT RUN: {booted['skipped']}")
        status = 1 if services_required() else 0
    elif booted and "failed" in booted:
        print(f"\nboot: FAILED:\n{booted['failed']}")
        status = 1
    for name, t in targets.items():
        if "skipped" in t:
            print(f"\n{name}: NOT RUN: {t['skipped']}")
            status = max(status, 1 if services_required() else 0)
        elif "failed" in t:
            print(f"\n{name}: FAILED:\n{t['failed']}")
            status = 1
        else:
            if t["violations"]:
                print(f"\n{name}: IPAM VIOLATIONS ({len(t['violations'])}): addresses handed "
                      "out twice or ports miscounted:", *t["violations"][:20], sep="\n  ")
                status = 1
            if t["error_count"]:
                print(f"\n{name}: {t['error_count']} errors, first ones:", *t["errors"][:5],
                      sep="\n  ")
                status = 1
            unclean = {k: v for k, v in t["exit_codes"].items() if v != 0}
            if unclean:
                print(f"\n{name}: did not exit 0 on SIGTERM (None: killed): {unclean}")
                status = 1
            if t["log_problems"]:
                print(f"\n{name}: warnings and errors in the logs, first ones:",
                      *t["log_problems"][:5], sep="\n  ")
    return status


def run_against(args: argparse.Namespace, base: Path) -> dict:
    n, c = _pair(args.scenarios.split(",")[0])
    return {"machine": machine(), "command": " ".join(["python -m bench", *sys.argv[1:]]),
            "against": compare.run(args.against, (n, c), args.repeat, base, say)}


def print_against(outcome: dict, args: argparse.Namespace, out: Path) -> int:
    m, against = outcome["machine"], outcome["against"]
    print(f"\n{m['date']} - {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, "
          f"Python {m['python']}, commit {m['commit']}")
    print(f"{outcome['command']}  (all-in-one, N={against['scenario']}, medians of "
          f"{against['repeat']})\n")
    print(compare.table(against, args.markdown))
    print(f"\nresults: {out}")
    trouble = compare.failures(against)
    if trouble:
        print(f"\n{len(trouble)} errors, first ones:", *trouble[:5], sep="\n  ")
    return 1 if trouble else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.against:
        with tempfile.TemporaryDirectory(prefix="cirrus-bench-") as tmp:
            outcome = run_against(args, Path(args.data_dir) if args.data_dir else Path(tmp))
        out = Path(args.output) if args.output else (
            ROOT / "bench" / "results" / f"{time.strftime('%Y%m%d-%H%M%S')}-against.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(outcome, indent=2))
        return print_against(outcome, args, out)
    if args.data_dir:
        outcome = run(args, Path(args.data_dir))
    else:
        with tempfile.TemporaryDirectory(prefix="cirrus-bench-") as tmp:
            outcome = run(args, Path(tmp))
    out = Path(args.output) if args.output else (
        ROOT / "bench" / "results" / f"{time.strftime('%Y%m%d-%H%M%S')}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(outcome, indent=2))
    return print_outcome(outcome, args, out)


if __name__ == "__main__":
    sys.exit(main())
