"""Operability: stack dumps on SIGUSR1, run-time log levels, whole tracebacks without
secrets."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cirrus.context import RequestContext
from cirrus.observe import stackdump
from cirrus.observe.logging import (
    JsonFormatter,
    check_level,
    log_levels,
    on_set_log_level,
    redact,
    set_log_level,
)

SECRET = "s3cret-Value-42"


def entries(path: Path) -> list[dict]:
    for h in logging.getLogger().handlers:
        h.flush()
    return [json.loads(line) for line in path.read_text().splitlines()]


# ---------------------------------------------------------------- JSON logs


@pytest.mark.parametrize("url", [
    f"amqp://cirrus:{SECRET}@rabbit-1:5672//",
    f"postgresql://cirrus:{SECRET}@db.example.com/cirrus",
    f"mysql+pymysql://root:{SECRET}@127.0.0.1:3306/cirrus?charset=utf8mb4",
])
def test_passwords_in_urls_are_redacted_and_the_user_kept(url: str) -> None:
    text = redact(f"cannot connect to {url}: refused")
    assert SECRET not in text
    assert "://" in text and ":***@" in text
    assert text.endswith(": refused")


def test_a_url_without_password_is_left_alone() -> None:
    text = "GET http://127.0.0.1:8774/compute/v2.1/servers 200"
    assert redact(text) == text


def test_every_entry_names_its_process(log_file: Path) -> None:
    logging.getLogger("cirrus.x").warning("hello")
    (entry,) = entries(log_file)
    assert entry["pid"] == os.getpid()


def test_a_chained_traceback_is_kept_whole_in_one_entry(log_file: Path) -> None:
    def inner() -> None:
        raise KeyError("flavor-1")

    try:
        try:
            inner()
        except KeyError as exc:
            raise RuntimeError(f"lookup failed with password={SECRET}") from exc
    except RuntimeError:
        logging.getLogger("cirrus.compute").exception("build failed")
    (entry,) = entries(log_file)
    tb = entry["traceback"]
    assert "KeyError: 'flavor-1'" in tb
    assert "The above exception was the direct cause" in tb
    assert "RuntimeError: lookup failed" in tb
    assert "in inner" in tb
    assert SECRET not in log_file.read_text()
    assert len(log_file.read_text().splitlines()) == 1


def test_stack_info_is_kept(log_file: Path) -> None:
    logging.getLogger("cirrus.x").warning("where am I", stack_info=True)
    (entry,) = entries(log_file)
    assert "test_stack_info_is_kept" in entry["stack"]


def test_an_already_formatted_exception_text_is_kept() -> None:
    record = logging.LogRecord("cirrus.x", logging.ERROR, __file__, 1, "boom", (), None)
    record.exc_text = f"Traceback (most recent call last):\nValueError: token={SECRET}"
    out = json.loads(JsonFormatter().format(record))
    assert "ValueError" in out["traceback"] and SECRET not in out["traceback"]


# ---------------------------------------------------------------- log levels


@pytest.mark.parametrize(("given", "expected"), [
    ("debug", "DEBUG"), ("INFO", "INFO"), (" Warning ", "WARNING"), ("warn", "WARNING"),
    ("error", "ERROR"), ("CRITICAL", "CRITICAL"),
])
def test_level_names_are_accepted_in_any_case(given: str, expected: str) -> None:
    assert check_level(given) == expected


@pytest.mark.parametrize("bad", ["LOUD", "", "10", "notset"])
def test_unknown_levels_and_notset_for_the_root_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        check_level(bad)


def test_notset_is_allowed_for_a_named_logger() -> None:
    assert check_level("notset", "cirrus.compute") == "NOTSET"


def test_root_level_changes_at_run_time(restore_logging: None) -> None:
    set_log_level("ERROR")
    assert logging.getLogger().level == logging.ERROR
    set_log_level("debug")
    assert logging.getLogger().isEnabledFor(logging.DEBUG)
    assert log_levels()["level"] == "DEBUG"


def test_one_logger_changes_and_the_others_keep_the_root_level(restore_logging: None) -> None:
    set_log_level("WARNING")
    set_log_level("DEBUG", "cirrus.testing.scheduler")
    assert logging.getLogger("cirrus.testing.scheduler.filters").isEnabledFor(logging.DEBUG)
    assert not logging.getLogger("cirrus.testing.agent").isEnabledFor(logging.INFO)
    assert log_levels()["loggers"]["cirrus.testing.scheduler"] == "DEBUG"
    set_log_level("NOTSET", "cirrus.testing.scheduler")
    assert "cirrus.testing.scheduler" not in log_levels()["loggers"]


def test_the_bus_handler_applies_a_level_change(log_file: Path) -> None:
    result = on_set_log_level(RequestContext.admin(), {"level": "debug",
                                                       "logger": "cirrus.testing.bus"})
    assert logging.getLogger("cirrus.testing.bus").level == logging.DEBUG
    assert result["loggers"]["cirrus.testing.bus"] == "DEBUG"
    assert any("set to DEBUG" in e["message"] for e in entries(log_file))


def test_the_bus_handler_refuses_a_bad_level(restore_logging: None) -> None:
    set_log_level("WARNING")
    with pytest.raises(ValueError):
        on_set_log_level(RequestContext.admin(), {"level": "chatty"})
    assert logging.getLogger().level == logging.WARNING


# ---------------------------------------------------------------- stack dumps


def _parked_in_a_named_function(ready: threading.Event, release: threading.Event) -> None:
    ready.set()
    release.wait(10)


@pytest.fixture
def parked_thread() -> Iterator[threading.Thread]:
    ready, release = threading.Event(), threading.Event()
    thread = threading.Thread(target=_parked_in_a_named_function, args=(ready, release),
                              name="parked-worker", daemon=True)
    thread.start()
    ready.wait(5)
    yield thread
    release.set()
    thread.join(5)


def test_snapshot_has_every_thread_with_its_stack(parked_thread: threading.Thread) -> None:
    stacks = {s["thread_name"]: s for s in stackdump.snapshot()}
    assert "MainThread" in stacks
    parked = stacks["parked-worker"]
    assert parked["thread_id"] == parked_thread.ident
    assert parked["daemon"] is True
    assert "_parked_in_a_named_function" in parked["stack"]
    assert "test_snapshot_has_every_thread_with_its_stack" in stacks["MainThread"]["stack"]


def test_log_stacks_writes_one_entry_per_thread_with_a_shared_dump_id(
        log_file: Path, parked_thread: threading.Thread) -> None:
    stacks = stackdump.snapshot()
    dump_id = stackdump.log_stacks(stacks, reason="test")
    logged = [e for e in entries(log_file) if e.get("dump_id") == dump_id]
    assert len(logged) == len(stacks) + 1  # a header, then one per thread
    assert logged[0]["threads"] == len(stacks)
    per_thread = {e["thread_name"]: e for e in logged[1:]}
    assert "_parked_in_a_named_function" in per_thread["parked-worker"]["stack"]


def test_sigusr1_dumps_the_stacks_and_the_process_goes_on(
        log_file: Path, parked_thread: threading.Thread) -> None:
    previous = signal.getsignal(signal.SIGUSR1)
    stackdump.install()
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        deadline = time.monotonic() + 5
        found: list[dict] = []
        while time.monotonic() < deadline and not found:
            time.sleep(0.05)
            found = [e for e in entries(log_file) if e.get("thread_name") == "parked-worker"]
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert found, "no stack dump in the log after SIGUSR1"
    assert "_parked_in_a_named_function" in found[0]["stack"]
    header = [e for e in entries(log_file) if "stack dump" in e["message"]]
    assert "SIGUSR1" in header[0]["message"]
    # The main thread's stack is where the signal arrived, not the handler's own frames.
    main = [e for e in entries(log_file) if e.get("thread_name") == "MainThread"][0]
    assert "test_sigusr1_dumps_the_stacks_and_the_process_goes_on" in main["stack"]
    assert "_on_signal" not in main["stack"]
    assert parked_thread.is_alive()
