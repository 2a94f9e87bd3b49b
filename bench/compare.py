"""`--against REF`: the same servers scenario on this checkout and on the code of REF, in one run.

A restructuring must not make Cirrus slower. This answers "slower than what?" on the same
machine in the same minutes: REF (a commit, a branch, a tag) is checked out into a temporary
git worktree, and each repetition starts one all-in-one from REF's code and one from the
checkout (in alternating order, each on a fresh data directory), creates N servers to ACTIVE
at concurrency C and deletes them. The figures are the medians of create throughput and of
the p99 of create-to-ACTIVE latency for each, and their ratio (checkout / REF); and, because
seconds on a shared machine move with its load, the database work per server counted by
bench/workcount (write transactions, the statements in them, all statements, the time the
write lock was held): counts that do not move with the load.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from bench import api, load, report, server

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def checkout(ref: str) -> Iterator[tuple[Path, str]]:
    """REF's tree in a temporary detached worktree, and its commit; removed afterwards."""
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", f"{ref}^{{commit}}"],
                            check=True, capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="cirrus-bench-ref-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet",
                        str(tree), commit], check=True)
        try:
            yield tree, commit
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                           check=False)


WORKCOUNT = Path(__file__).resolve().parent / "workcount"


def _work(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _settled(path: Path) -> dict:
    """The counts once they are written after this moment (the writer dumps twice a second)."""
    time.sleep(1.1)
    return _work(path)


def one_run(code: Path, data_dir: Path, n: int, c: int) -> dict:
    """An all-in-one from `code`'s tree: N servers created and deleted at concurrency C, and
    the database work it did for them (bench/workcount: statements, write transactions)."""
    counts = data_dir / "workcount.json"
    aio = server.start(data_dir, code_root=code, extra_env={
        "CIRRUS_BENCH_WORK_OUT": str(counts),
        "PYTHONPATH": str(WORKCOUNT)})
    try:
        session = api.login(aio.url, aio.cloud["auth"])
        flavor, image = api.create_flavor(session), api.create_image(session)
        before = _settled(counts)
        created, deleted = load.create_and_delete(session, n, c, flavor, image)
        after = _settled(counts)
    finally:
        code_rc = aio.stop()
    work = {key: (after.get(key, 0) - before.get(key, 0)) / n
            for key in ("statements", "write_statements", "writes", "write_seconds")}
    return {"rate": created.rate, "p99": report.percentile(created.latencies, 99),
            "p50": report.percentile(created.latencies, 50), "created": created.count,
            "errors": (created.errors + deleted.errors)[:20], "exit_code": code_rc,
            "work": work}


WORK_KEYS = ("writes", "write_statements", "statements", "write_seconds")


def run(ref: str, scenario: tuple[int, int], repeat: int, workdir: Path,
        say: Callable[[str], None]) -> dict:
    n, c = scenario
    runs: dict[str, list[dict]] = {"ref": [], "checkout": []}
    with checkout(ref) as (tree, commit):
        say(f"against {ref} ({commit[:10]}): {repeat} repetitions of N={n} C={c}, alternating")
        for rep in range(1, repeat + 1):
            order = [("ref", tree), ("checkout", ROOT)]
            if rep % 2 == 0:
                order.reverse()
            for label, code in order:
                outcome = one_run(code, workdir / f"{label}-{rep}", n, c)
                runs[label].append(outcome)
                say(f"against {ref}: run {rep} {label}: {outcome['created']}/{n} ACTIVE at "
                    f"{outcome['rate']:.1f}/s, p99 {outcome['p99']:.3f} s, "
                    f"{len(outcome['errors'])} errors")
    medians = {label: {key: statistics.median(r[key] for r in rs) for key in ("rate", "p50", "p99")}
               for label, rs in runs.items()}
    for label, rs in runs.items():
        for key in WORK_KEYS:
            medians[label][key] = statistics.median(r["work"].get(key, 0.0) for r in rs)
    ratios = {key: medians["checkout"][key] / medians["ref"][key] if medians["ref"][key] else
              float("nan") for key in ("rate", "p50", "p99", *WORK_KEYS)}
    return {"ref": ref, "commit": commit, "scenario": f"{n}x{c}", "repeat": repeat,
            "runs": runs, "medians": medians, "ratios": ratios}


def table(outcome: dict, markdown: bool) -> str:
    m, r = outcome["medians"], outcome["ratios"]
    rows = [("create throughput (servers/s)", "rate", "{:.1f}"),
            ("create-to-ACTIVE p50 (s)", "p50", "{:.3f}"),
            ("create-to-ACTIVE p99 (s)", "p99", "{:.3f}"),
            ("write transactions per server", "writes", "{:.2f}"),
            ("SQL statements in them per server", "write_statements", "{:.1f}"),
            ("SQL statements per server (with polling)", "statements", "{:.1f}"),
            ("write lock held per server (ms)", "write_seconds", "{:.2f}")]
    head = ("metric", f"{outcome['ref']} ({outcome['commit'][:10]})", "checkout",
            "checkout / ref")
    scale = {"write_seconds": 1000.0}
    lines = [(name, fmt.format(m["ref"].get(key, 0.0) * scale.get(key, 1.0)),
              fmt.format(m["checkout"].get(key, 0.0) * scale.get(key, 1.0)),
              f"{r.get(key, float('nan')):.2f}") for name, key, fmt in rows]
    if markdown:
        out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join(line) + " |" for line in lines]
        return "\n".join(out)
    widths = [max(len(x[i]) for x in [head, *lines]) for i in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True))
                     for line in [head, *lines])


def failures(outcome: dict) -> list[str]:
    """Errors the clients saw and processes that did not stop cleanly, in either tree."""
    found = []
    for label, rs in outcome["runs"].items():
        for i, r in enumerate(rs, 1):
            found += [f"{label} run {i}: {e}" for e in r["errors"]]
            if r["exit_code"] != 0:
                found.append(f"{label} run {i}: all-in-one exit code {r['exit_code']}")
    return found
