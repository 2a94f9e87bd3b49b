"""`python -m bench`: Cirrus's control plane under load, through its REST API.

Starts `cirrus all-in-one` on a free loopback port (fake driver, zero boot delay, room for
thousands of servers), then measures, `--repeat` times each: servers created to ACTIVE and
deleted (N=200 at concurrency 20, and N=100 at 10 like the Nova figures), tokens issued
and validated, and the cheapest HTTP round trip of the same server as a same-run baseline.
Prints medians beside Nova's published numbers and writes every figure to bench/results/.
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
from pathlib import Path

from bench import api, load, report, server

ROOT = Path(__file__).resolve().parent.parent


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
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "cirrus"],
                           capture_output=True, text=True).stdout.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(mem_kb / 1024 / 1024, 1),
            "python": platform.python_version(), "kernel": platform.release(),
            "commit": commit + ("+uncommitted" if dirty else ""),
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenarios", default="200x20,100x10",
                   help="comma-separated NxC: N servers at concurrency C (default %(default)s)")
    p.add_argument("--repeat", type=int, default=3, help="repetitions of each phase")
    p.add_argument("--token-seconds", type=float, default=10.0)
    p.add_argument("--token-concurrency", type=int, default=4, help="for token issue")
    p.add_argument("--validate-concurrency", type=int, default=20,
                   help="for token validation (as for the HTTP floor)")
    p.add_argument("--floor-seconds", type=float, default=5.0)
    p.add_argument("--floor-concurrency", type=int, default=20)
    p.add_argument("--data-dir", help="keep the all-in-one's data here (default: a temp dir)")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("--output", help="write the JSON results here (default bench/results/)")
    return p.parse_args(argv)


def run(args: argparse.Namespace, data_dir: Path) -> dict:
    scenarios = [tuple(int(x) for x in s.split("x")) for s in args.scenarios.split(",") if s]
    say(f"starting cirrus all-in-one in {data_dir}")
    aio = server.start(data_dir)
    memory = server.MemoryWatch(aio.process.pid).start()
    runs: dict[str, list[float]] = {}
    errors: list[str] = []

    def record(key: str, value: float) -> None:
        runs.setdefault(key, []).append(value)

    servers_peak = float("nan")
    try:
        idle_rss = memory.current_mb()
        auth = aio.cloud["auth"]
        session = api.login(aio.url, auth)
        flavor, image = api.create_flavor(session), api.create_image(session)
        for rep in range(1, args.repeat + 1):
            for n, c in scenarios:
                created, deleted = load.create_and_delete(session, n, c, flavor, image)
                errors += created.errors + deleted.errors
                tag = f"{n}x{c}"
                record(f"create_{tag}_rate", created.rate)
                record(f"create_{tag}_p50", report.percentile(created.latencies, 50))
                record(f"create_{tag}_p99", report.percentile(created.latencies, 99))
                record(f"delete_{tag}_rate", deleted.rate)
                say(f"run {rep}: N={n} C={c}: {created.count}/{n} ACTIVE at "
                    f"{created.rate:.1f}/s (p50 {report.percentile(created.latencies, 50):.3f} s,"
                    f" p99 {report.percentile(created.latencies, 99):.3f} s), deleted at "
                    f"{deleted.rate:.1f}/s, {len(created.errors) + len(deleted.errors)} errors")
            floor = load.http_floor(session, args.floor_seconds, args.floor_concurrency)
            record("http_floor_rate", floor.rate)
            errors += floor.errors
            record("peak_rss_servers_mb", memory.peak_mb())
            say(f"run {rep}: HTTP floor {floor.rate:,.0f}/s, peak RSS so far "
                f"{memory.peak_mb():.0f} MB")
        # Tokens last: every password check holds argon2's 19 MiB, which the allocator keeps.
        servers_peak = memory.peak_mb()
        database_url = f"sqlite:///{data_dir.resolve() / 'cirrus.db'}"
        for rep in range(1, args.repeat + 1):
            issued = load.token_issue(session, auth, args.token_seconds, args.token_concurrency)
            record("token_issue_rate", issued.rate)
            validated = load.token_validate(session, args.token_seconds,
                                            args.validate_concurrency)
            record("token_validate_rate", validated.rate)
            inproc = load.in_process_validate(database_url, session.token,
                                              min(args.token_seconds, 3.0))
            record("token_validate_inproc_rate", inproc.rate)
            errors += issued.errors + validated.errors
            record("peak_rss_mb", memory.peak_mb())
            say(f"run {rep}: token issue {issued.rate:,.1f}/s, validate {validated.rate:,.0f}/s "
                f"(HTTP) {inproc.rate:,.0f}/s (in-process), peak RSS so far "
                f"{memory.peak_mb():.0f} MB")
        if f"create_{scenarios[0][0]}x{scenarios[0][1]}_rate" in runs:
            tag = f"{scenarios[0][0]}x{scenarios[0][1]}"
            for created_rate, floor_rate in zip(runs[f"create_{tag}_rate"],
                                                runs["http_floor_rate"], strict=False):
                record(f"create_{tag}_floor_cost",
                       floor_rate / created_rate if created_rate else float("nan"))
    finally:
        peak = memory.peak_mb()
        memory.stop()
        code = aio.stop()
    results = {key: report.median(values) for key, values in runs.items()}
    results["peak_rss_servers_mb"] = servers_peak  # peaks are maxima, not medians
    results["peak_rss_mb"] = peak
    return {"machine": machine(), "command": " ".join(["python -m bench", *sys.argv[1:]]),
            "scenarios": args.scenarios, "repeat": args.repeat, "results": results,
            "runs": runs, "idle_rss_mb": idle_rss, "errors": errors[:50],
            "error_count": len(errors), "exit_code": code}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.data_dir:
        outcome = run(args, Path(args.data_dir))
    else:
        with tempfile.TemporaryDirectory(prefix="cirrus-bench-") as tmp:
            outcome = run(args, Path(tmp) / "data")
    out = Path(args.output) if args.output else (
        ROOT / "bench" / "results" / f"{time.strftime('%Y%m%d-%H%M%S')}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(outcome, indent=2))
    m = outcome["machine"]
    print(f"\n{m['date']} - {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, "
          f"Python {m['python']}, commit {m['commit']}")
    print(f"{outcome['command']}  (medians of {args.repeat}; idle RSS after start "
          f"{outcome['idle_rss_mb']:.0f} MB)\n")
    print(report.table(outcome["results"], outcome["runs"], args.markdown))
    print(f"\nresults: {out}")
    if outcome["error_count"]:
        print(f"{outcome['error_count']} errors, first ones:", *outcome["errors"][:5], sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
