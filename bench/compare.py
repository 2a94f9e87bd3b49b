"""`--against REF`: the same servers scenario on this checkout and on the code of REF, in one run.

A restructuring must not make Cirrus slower. This answers "slower than what?" on the same
machine in the same minutes: REF (a commit, a branch, a tag) is checked out into a temporary
git worktree, and each repetition starts one all-in-one from REF's code and one from the
checkout (in alternating order, each on a fresh data directory), creates N servers to ACTIVE
at concurrency C and deletes them. The figures are the medians of create throughput and of
the p99 of create-to-ACTIVE latency for each, and their ratio (checkout / REF).
"""

from __future__ import annotations

import statistics
import subprocess
import tempfile
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


def one_run(code: Path, data_dir: Path, n: int, c: int) -> dict:
    """An all-in-one from `code`'s tree: N servers created and deleted at concurrency C."""
    aio = server.start(data_dir, code_root=code)
    try:
        session = api.login(aio.url, aio.cloud["auth"])
        flavor, image = api.create_flavor(session), api.create_image(session)
        created, deleted = load.create_and_delete(session, n, c, flavor, image)
    finally:
        code_rc = aio.stop()
    return {"rate": created.rate, "p99": report.percentile(created.latencies, 99),
            "p50": report.percentile(created.latencies, 50), "created": created.count,
            "errors": (created.errors + deleted.errors)[:20], "exit_code": code_rc}


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
    ratios = {key: medians["checkout"][key] / medians["ref"][key] if medians["ref"][key] else
              float("nan") for key in ("rate", "p50", "p99")}
    return {"ref": ref, "commit": commit, "scenario": f"{n}x{c}", "repeat": repeat,
            "runs": runs, "medians": medians, "ratios": ratios}


def table(outcome: dict, markdown: bool) -> str:
    m, r = outcome["medians"], outcome["ratios"]
    rows = [("create throughput (servers/s)", "rate", "{:.1f}"),
            ("create-to-ACTIVE p50 (s)", "p50", "{:.3f}"),
            ("create-to-ACTIVE p99 (s)", "p99", "{:.3f}")]
    head = ("metric", f"{outcome['ref']} ({outcome['commit'][:10]})", "checkout",
            "checkout / ref")
    lines = [(name, fmt.format(m["ref"][key]), fmt.format(m["checkout"][key]),
              f"{r[key]:.2f}") for name, key, fmt in rows]
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
