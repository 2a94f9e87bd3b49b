"""`kill -USR1 <pid>`: every thread's stack to the log, and the service goes on.

The signal handler only takes the snapshot (sys._current_frames); a short-lived thread
formats and logs it, so the handler never waits on a logging lock the interrupted code holds.
Each thread is one JSON log entry (`stack` field) sharing a `dump_id`.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import traceback
import uuid
from types import FrameType

log = logging.getLogger(__name__)


def snapshot(interrupted: FrameType | None = None) -> list[dict]:
    """Every live thread with its current stack, formatted as a traceback would be.

    `interrupted`: the frame a signal handler interrupted, shown for the calling thread
    instead of the handler's own frames."""
    frames = sys._current_frames()
    if interrupted is not None:
        frames[threading.get_ident()] = interrupted
    threads = {t.ident: t for t in threading.enumerate()}
    stacks = []
    for ident, frame in frames.items():
        thread = threads.get(ident)
        stacks.append({
            "thread_name": thread.name if thread else f"<unknown {ident}>",
            "thread_id": ident,
            "daemon": thread.daemon if thread else None,
            "stack": "".join(traceback.format_stack(frame)),
        })
    stacks.sort(key=lambda t: str(t["thread_name"]))
    return stacks


def log_stacks(stacks: list[dict], reason: str = "SIGUSR1") -> str:
    """Write one log entry per thread; return the dump id they share."""
    dump_id = uuid.uuid4().hex[:12]
    log.warning("stack dump %s (%s): %d threads in process %d", dump_id, reason, len(stacks),
                os.getpid(), extra={"fields": {"dump_id": dump_id, "threads": len(stacks)}})
    for entry in stacks:
        log.warning("stack of thread %s", entry["thread_name"],
                    extra={"fields": {"dump_id": dump_id, **entry}})
    for handler in logging.getLogger().handlers:
        handler.flush()
    return dump_id


def _on_signal(signum: int, frame: FrameType | None) -> None:
    stacks = snapshot(frame)  # now, before the threads move on
    threading.Thread(target=log_stacks, args=(stacks, signal.Signals(signum).name),
                     name="stack-dump", daemon=True).start()


def install(signum: int = signal.SIGUSR1) -> None:
    """Dump stacks on `signum`. Only from the main thread (a Python signal rule)."""
    signal.signal(signum, _on_signal)
