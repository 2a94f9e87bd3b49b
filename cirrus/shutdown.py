"""A bounded stop: SIGTERM (or SIGINT) ends every role of the process within
`shutdown_timeout` seconds, whatever its requests and handlers are doing.

The stop runs in phases, each a fraction of the timeout T counted from the signal:

- at once: no new connection is accepted, a request arriving on an open connection is
  answered 503, the roles stop taking messages (what they have not acked goes back to the
  broker for another process or the next start);
- up to 0.5 T: requests and handlers in progress may finish normally;
- at 0.5 T: the bus is interrupted (`Bus.interrupt`): a publish or a call still waiting on
  the broker gives up with BusStopping, so the request that made it answers 503 through its
  usual path (a create not sent is undone, nothing half-written: each database transaction
  commits whole or rolls back);
- at 0.7 T: every request still unanswered (a CPU-bound one, one blocked on the database)
  is answered 503 by the HTTP server and abandoned; its thread is left to the exit, which
  rolls back its open transaction with the connection;
- until 0.85 T: roles, bus and database are closed, each wait bounded by what is left
  (then the process ends with `os._exit` after flushing its logs: no interpreter clean-up);
- at T: a watchdog thread logs what is still running and ends the process (`os._exit(1)`):
  the bound holds even if something is stuck in a way nothing above could end.

A stop that finished before T exits 0, even if abandoned request threads were still running
(they are not waited for: the process ends with `os._exit` after flushing the logs).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

DRAIN = 0.5  # until then requests and handlers may finish on their own
ABORT = 0.7  # then every unanswered request is answered 503
CLOSE = 0.85  # roles, bus and database closed by then; the exit itself takes the rest


class Stopper:
    """One process's stop, begun by the first SIGTERM/SIGINT."""

    def __init__(self, timeout: float) -> None:
        self.timeout = max(1.0, float(timeout))
        self.requested = threading.Event()
        self.finished = threading.Event()
        self.started_at: float | None = None
        self.signal_name = ""
        self._lock = threading.Lock()
        self._on_begin: list[Callable[[], None]] = []
        self.abandoned = 0  # requests answered 503 whose threads were left running

    def on_begin(self, callback: Callable[[], None]) -> None:
        """Run `callback` (briefly, from the signal handler) when the stop begins."""
        self._on_begin.append(callback)

    def begin(self, signum: int = signal.SIGTERM) -> bool:
        """Start the stop and its watchdog; True the first time, False after."""
        with self._lock:
            if self.started_at is not None:
                return False
            self.started_at = time.monotonic()
            self.signal_name = signal.Signals(signum).name if signum else "stop"
        self.requested.set()
        threading.Thread(target=self._watchdog, name="shutdown-watchdog", daemon=True).start()
        # Not logged here: a signal handler must not take the logging lock the code it
        # interrupted may hold. The watchdog thread logs the start.
        for callback in self._on_begin:
            callback()
        return True

    def at(self, fraction: float) -> float:
        """The monotonic time of a phase (`fraction` of the timeout after the signal)."""
        start = self.started_at if self.started_at is not None else time.monotonic()
        return start + fraction * self.timeout

    def left(self, fraction: float) -> float:
        """Seconds until the phase, never negative."""
        return max(0.0, self.at(fraction) - time.monotonic())

    def _watchdog(self) -> None:
        log.info("%s received: stopping within %.1f s (shutdown_timeout)", self.signal_name,
                 self.timeout)
        if self.finished.wait(self.left(1.0)):
            return
        from cirrus.observe import stackdump

        stuck = [t.name for t in threading.enumerate()
                 if t is not threading.current_thread() and t.is_alive()]
        log.critical("the stop did not finish within shutdown_timeout (%.1f s); exiting now "
                     "with %d threads still running: %s", self.timeout, len(stuck),
                     ", ".join(sorted(stuck)[:40]))
        try:
            stackdump.log_stacks(stackdump.snapshot(), reason="shutdown_timeout")
        except Exception:  # never let the dump keep the process alive
            pass
        _flush()
        os._exit(1)

    def finish(self, code: int) -> int:
        """The stop is done. Without a signal `code` is returned. After one, the process
        ends now with `code` (logs flushed): the interpreter's own clean-up (a second or more
        for a loaded process, and unbounded if a request thread was abandoned) is skipped,
        everything that matters (transactions, broker connections) being closed already."""
        if self.started_at is not None:
            log.info("stopped in %.1f s%s", time.monotonic() - self.started_at,
                     f" ({self.abandoned} request(s) abandoned at the abort: what they had "
                     "not committed rolls back with their connections)" if self.abandoned
                     else "")
        if self.requested.is_set():
            _flush()
            os._exit(code)
        return code


def _flush() -> None:
    for handler in logging.getLogger().handlers:
        try:
            handler.flush()
        except Exception:
            pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def install_signals(stopper: Stopper) -> None:
    """SIGTERM and SIGINT begin the stop (from the main thread only, a Python rule)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: stopper.begin(signum))


def after(stopper: Stopper, fraction: float, action: Callable[[], None],
          until: Callable[[], bool] | None = None, name: str = "shutdown-phase") -> None:
    """Run `action` in a thread at the phase `fraction`, or as soon as `until()` is true."""

    def run() -> None:
        while not stopper.finished.is_set():
            left = stopper.left(fraction)
            if left <= 0 or (until is not None and until()):
                break
            stopper.finished.wait(min(0.05, left))
        if stopper.finished.is_set():
            return
        try:
            action()
        except Exception:
            log.exception("%s failed", name)

    threading.Thread(target=run, name=name, daemon=True).start()
