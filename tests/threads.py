"""Threads in tests whose failures fail the test.

An exception (an `assert` included) raised in a `threading.Thread` ends that thread only:
pytest shows it at most as a warning and the test passes. Start test threads through a
`ThreadErrors` instead, and call `check()` (or use `run_threads`) in the test's own thread:

    errors = ThreadErrors()
    threads = [errors.thread(work, i) for i in range(4)]
    ...
    errors.check()          # raises AssertionError with every thread's traceback

    run_threads([lambda: work(1), lambda: work(2)])   # start, join, check in one call
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable, Iterable
from typing import Any


class ThreadErrors:
    """Collects what the threads it starts raise; `check()` fails the test with all of it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.errors: list[tuple[str, BaseException, str]] = []

    def wrap(self, target: Callable[..., Any]) -> Callable[..., None]:
        """`target`, with anything it raises recorded instead of lost."""

        def run(*args: Any, **kwargs: Any) -> None:
            try:
                target(*args, **kwargs)
            except BaseException as exc:
                with self._lock:
                    self.errors.append((threading.current_thread().name, exc,
                                        traceback.format_exc()))

        return run

    def thread(self, target: Callable[..., Any], *args: Any, start: bool = True,
               daemon: bool = False, name: str | None = None, **kwargs: Any) -> threading.Thread:
        """A thread running `target(*args, **kwargs)` whose exceptions `check()` reports;
        started unless `start=False`."""
        t = threading.Thread(target=self.wrap(target), args=args, kwargs=kwargs,
                             daemon=daemon, name=name)
        if start:
            t.start()
        return t

    def check(self) -> None:
        """Raise, in the calling (test) thread, what any thread raised."""
        with self._lock:
            errors = list(self.errors)
        if not errors:
            return
        report = "\n".join(f"--- in thread {name}:\n{tb}" for name, _, tb in errors)
        raise AssertionError(f"{len(errors)} thread(s) failed:\n{report}") from errors[0][1]


def join_all(threads: Iterable[threading.Thread], timeout: float | None = None) -> None:
    """Join every thread (each within `timeout`); fail if one is still running."""
    threads = list(threads)
    for t in threads:
        t.join(timeout)
    hung = [t.name for t in threads if t.is_alive()]
    assert not hung, f"threads still running after {timeout} s: {hung}"


def run_threads(targets: Iterable[Callable[[], Any]], timeout: float | None = 120.0) -> None:
    """Run each callable in a thread of its own, all at once; wait for all of them; fail the
    test with every exception any of them raised, or if one does not finish in `timeout`."""
    errors = ThreadErrors()
    threads = [errors.thread(target, start=False) for target in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    errors.check()
    hung = [t.name for t in threads if t.is_alive()]
    assert not hung, f"threads still running after {timeout} s: {hung}"
