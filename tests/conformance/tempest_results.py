"""Tempest's results (scripts/tempest): a subunit v2 stream read into one Result per test,
figures per service, one line per failure, and the known-failures ratchet."""

from __future__ import annotations

import io
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

SERVICES = ("identity", "compute", "image", "network")


def read_list(path: Path) -> list[tuple[str, str]]:
    """Entries of an exclude or known-failures file: (entry, comment)."""
    out = []
    for line in path.read_text().splitlines():
        entry, _, comment = line.partition("#")
        if entry.strip():
            out.append((entry.strip(), comment.strip()))
    return out


def normalise_id(test_id: str) -> str:
    """`mod.Cls.test[id-…,smoke]` -> `mod.Cls.test`; `setUpClass (mod.Cls)` -> `mod.Cls`."""
    m = re.match(r"^(setUpClass|tearDownClass) \((.+)\)$", test_id)
    if m:
        return m.group(2)
    return re.sub(r"\[.*\]$", "", test_id)


def service_of(test_id: str) -> str:
    parts = normalise_id(test_id).split(".")
    return parts[2] if len(parts) > 2 and parts[:2] == ["tempest", "api"] else "other"


@dataclass
class Result:
    test_id: str
    status: str  # success, fail, skip, xfail, uxsuccess
    summary: str = ""


_REQUEST = re.compile(r"Request \((\w+):(\w+)\): (\d{3}) (\w+) (\S+)")


_ID = re.compile(r"\b([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32})\b")


def failed_requests(log: str) -> dict[tuple[str, str], str]:
    """(test class, test method or setUpClass) -> its last failed request, "METHOD /path ->
    status", from a Tempest log (a test's pythonlogging attachment or tempest.log)."""
    out = {}
    for m in _REQUEST.finditer(log):
        cls, method, status, verb, url = m.groups()
        if int(status) >= 400:
            path = _ID.sub("{id}", re.sub(r"^https?://[^/]+", "", url))
            out[(cls, method)] = f"{verb} {path} -> {status}"
    return out


def summarise(test_id: str, details: dict[str, str],
              log_index: dict[tuple[str, str], str] | None = None) -> str:
    """One line: the test's last failed HTTP request, then the exception (the lines after
    the traceback's last frame). A class that failed in setUpClass has no log attachment:
    its request is looked up in log_index (failed_requests of tempest.log)."""
    name = normalise_id(test_id)
    cls, _, method = name.rpartition(".")
    if name != re.sub(r"\[.*\]$", "", test_id):  # setUpClass (mod.Cls)
        cls, method = name.rpartition(".")[2], "setUpClass"
    else:
        cls = cls.rpartition(".")[2]
    own = failed_requests(details.get("pythonlogging:''", ""))
    request = own.get((cls, method)) or (list(own.values())[-1] if own else "")
    if not request and log_index:
        request = log_index.get((cls, method), "")
    tb = details.get("traceback", "").strip().splitlines()
    last_frame = max((i for i, line in enumerate(tb) if line[:1].isspace()), default=-1)
    exc = " ".join(line.strip() for line in tb[last_frame + 1:last_frame + 4])
    text = "; ".join(x for x in (request, exc) if x)
    return re.sub(r"\s+", " ", text)[:400]


def parse_subunit(stream: bytes, log: str = "") -> list[Result]:
    """The final status of every test in a subunit v2 stream, with a one-line summary of
    each failure (log: tempest.log, for the requests of classes that failed to set up)."""
    import subunit
    import testtools

    results: dict[str, Result] = {}
    log_index = failed_requests(log) if log else {}

    def on_test(test) -> None:  # testtools.TestDict
        status = test["status"]
        if status in (None, "exists", "inprogress"):
            return
        details = {}
        for name, content in test["details"].items():
            try:
                details[name] = content.as_text()
            except (UnicodeDecodeError, ValueError):  # a binary attachment: not needed
                continue
        summary = ""
        if status in ("fail", "uxsuccess"):
            summary = summarise(test["id"], details, log_index)
        elif status == "skip":
            summary = details.get("reason", "")
        results[test["id"]] = Result(test["id"], status, summary)

    case = subunit.ByteStreamToStreamResult(io.BytesIO(stream), non_subunit_name="stdout")
    sink = testtools.StreamToDict(on_test)
    sink.startTestRun()
    case.run(sink)
    sink.stopTestRun()
    return list(results.values())


def tally(results: Iterable[Result]) -> dict[str, Counter]:
    per: dict[str, Counter] = defaultdict(Counter)
    for r in results:
        kind = {"success": "passed", "fail": "failed", "skip": "skipped",
                "xfail": "passed", "uxsuccess": "failed"}.get(r.status, r.status)
        per[service_of(r.test_id)][kind] += 1
    return per


def format_table(per: dict[str, Counter]) -> str:
    lines = [f"{'service':<10} {'passed':>7} {'failed':>7} {'skipped':>8}"]
    total: Counter = Counter()
    for service in sorted(per, key=lambda s: (s not in SERVICES, SERVICES.index(s)
                                              if s in SERVICES else 0, s)):
        c = per[service]
        total.update(c)
        lines.append(f"{service:<10} {c['passed']:>7} {c['failed']:>7} {c['skipped']:>8}")
    lines.append(f"{'total':<10} {total['passed']:>7} {total['failed']:>7} "
                 f"{total['skipped']:>8}")
    return "\n".join(lines)


def compare(results: Iterable[Result], known: Iterable[str]) -> tuple[list[Result], list[str]]:
    """(failures not in known, known entries that no longer fail: a test that passed, or a
    class whose setUpClass no longer fails while some of its tests ran)."""
    known = list(known)
    known_set = set(known)
    results = list(results)
    new = [r for r in results if r.status in ("fail", "uxsuccess")
           and normalise_id(r.test_id) not in known_set]
    ran = {normalise_id(r.test_id): r.status for r in results}
    fixed = []
    for k in known:
        if ran.get(k) in ("success", "xfail"):
            fixed.append(k)
        elif k not in ran and any(t.startswith(k + ".") for t in ran):
            fixed.append(k)  # the class set up this time: its tests speak for themselves
    return new, fixed


def failures_report(results: Iterable[Result]) -> str:
    by: dict[str, list[Result]] = defaultdict(list)
    for r in results:
        if r.status in ("fail", "uxsuccess"):
            by[service_of(r.test_id)].append(r)
    out = []
    for service in sorted(by):
        out.append(f"## {service} ({len(by[service])} failing)")
        for r in sorted(by[service], key=lambda r: r.test_id):
            out.append(f"{normalise_id(r.test_id)}  # {r.summary}")
        out.append("")
    return "\n".join(out)
