"""Logs under a crowd (issue 11, point 6): clients that disconnect mid-body, or send requests
that are not HTTP, are logged at INFO or WARNING, a few lines per interval plus a summary
line, never one ERROR per client. A real `cirrus all-in-one` on a free port, real sockets;
the rate limiter itself with a clock the test moves."""

from __future__ import annotations

import calendar
import json
import logging
import re
import socket
import time
from collections.abc import Iterator

import pytest

from cirrus.observe.logging import RateLimitedLog, RateLimiter, RateLimitFilter
from tests.e2e.conftest import AllInOne, start_all_in_one, stop_all_in_one
from tests.security.test_limits import _address, _admin_token, _read_response
from tests.threads import run_threads

CLIENTS = 1000
INTERVAL = 10.0
BURST = 3


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AllInOne]:
    srv = start_all_in_one(tmp_path_factory.mktemp("logs") / "data")
    yield srv
    assert stop_all_in_one(srv) == 0, srv.log_tail()


def _entries(srv: AllInOne, since: float) -> list[dict]:
    entries = []
    for line in (srv.data_dir / "cirrus.log").read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        stamp = calendar.timegm(time.strptime(entry["ts"][:19], "%Y-%m-%dT%H:%M:%S"))
        if stamp >= since - 1:
            entries.append(entry)
    return entries


def _crowd(clients: int, work) -> None:
    """`clients` connections, 20 at a time."""
    per_thread = clients // 20

    def run() -> None:
        for _ in range(per_thread):
            work()

    run_threads([run] * 20, timeout=120)


def _summaries(entries: list[dict], pattern: str) -> list[int]:
    found = []
    for entry in entries:
        match = re.fullmatch(pattern, entry["message"])
        if match:
            found.append(int(match.group(1)))
    return found


def _wait_for(srv: AllInOne, since: float, line: str, pattern: str, total: int) -> list[dict]:
    """The log entries since `since`, once the lines containing `line` and the summaries
    matching `pattern` account for `total` events (or after three intervals)."""
    deadline = time.monotonic() + 3 * INTERVAL
    while True:
        entries = _entries(srv, since)
        counted = sum(1 for e in entries if line in e["message"]
                      and not re.fullmatch(pattern, e["message"]))
        if counted + sum(_summaries(entries, pattern)) >= total or time.monotonic() > deadline:
            return entries
        time.sleep(0.5)


def test_finding_a_thousand_clients_disconnecting_mid_body_write_no_errors(server) -> None:
    """Before: 1,000 ERROR entries ("POST /network/v2.0/networks raised", a ClientDisconnect
    traceback each). Each client sends its headers and half of a declared body, then closes."""
    token = _admin_token(server)
    since = time.time()
    head = (f"POST /network/v2.0/networks HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {token}\r\n"
            "Content-Type: application/json\r\nContent-Length: 20000\r\n\r\n").encode()

    def disconnect() -> None:
        with socket.create_connection(_address(server)) as sock:
            sock.sendall(head + b'{"network": {"name": "' + b"x" * 10000)

    _crowd(CLIENTS, disconnect)
    pattern = r"(\d+) more client disconnects in the last 10 s"
    entries = _wait_for(server, since, "closed the connection", pattern, CLIENTS)
    errors = [e for e in entries if e["level"] in ("ERROR", "CRITICAL")]
    assert errors == [], errors[:3]
    lines = [e for e in entries if e["logger"] == "cirrus.api.framework"
             and "closed the connection" in e["message"]]
    summaries = _summaries(entries, pattern)
    assert all(e["level"] == "INFO" for e in lines)
    # A few lines per interval, the rest counted in the summaries.
    assert 1 <= len(lines) <= BURST * 4, len(lines)
    assert summaries, [e["message"] for e in entries][-10:]
    assert len(lines) + sum(summaries) == CLIENTS
    # The access log still records each (499: the client closed the request).
    assert sum(1 for e in entries if e["logger"] == "cirrus.api.access"
               and e.get("status") == 499) == CLIENTS
    # And the server still serves.
    with socket.create_connection(_address(server)) as sock:
        sock.sendall(b"GET /identity/v3 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_response(sock).startswith(b"HTTP/1.1 200 ")


def test_a_flood_of_malformed_requests_is_summarised(server) -> None:
    """uvicorn logs one WARNING per request it cannot parse; a crowd of them gives a few of
    those lines and a summary."""
    since = time.time()

    def garbage() -> None:
        with socket.create_connection(_address(server)) as sock:
            sock.sendall(b"\x00\x01 NOT HTTP\r\n\r\n")
            sock.settimeout(10)
            try:
                sock.recv(1024)
            except OSError:
                pass

    _crowd(300, garbage)
    pattern = r"(\d+) more 'Invalid HTTP request received\.' messages in the last 10 s"
    entries = _wait_for(server, since, "Invalid HTTP request", pattern, 300)
    lines = [e for e in entries if e["message"] == "Invalid HTTP request received."]
    assert 1 <= len(lines) <= BURST * 4
    assert all(e["level"] == "WARNING" for e in lines)
    assert len(lines) + sum(_summaries(entries, pattern)) == 300
    assert not [e for e in entries if e["level"] in ("ERROR", "CRITICAL")]


# ---------------------------------------------------------------- the rate limiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_lets_a_burst_through_then_reports_the_rest_once() -> None:
    clock, reports = Clock(), []
    limiter = RateLimiter(lambda key, n, level: reports.append((key, n, level)), burst=3,
                          interval=10, clock=clock)
    assert [limiter.allow("k") for _ in range(5)] == [True, True, True, False, False]
    assert limiter.allow("other")  # keys are counted apart
    assert limiter.allow("k", logging.WARNING) is False
    clock.now += 9.9
    limiter.flush()
    assert reports == []  # the interval is not over
    clock.now += 0.2
    limiter.flush()
    assert reports == [("k", 3, logging.WARNING)]
    limiter.flush()
    assert reports == [("k", 3, logging.WARNING)]  # reported once
    assert limiter.allow("k")  # a new interval


def test_rate_limiter_reports_on_the_next_event_if_no_timer_ran() -> None:
    clock, reports = Clock(), []
    limiter = RateLimiter(lambda key, n, level: reports.append(n), burst=1, interval=10,
                          clock=clock)
    limiter.allow("k")
    limiter.allow("k")
    clock.now += 11
    assert limiter.allow("k")
    assert reports == [1]


def test_rate_limited_log_writes_a_summary_line_from_its_timer(caplog) -> None:
    logger = logging.getLogger("cirrus.test.ratelimit")
    log = RateLimitedLog(logger, what="client disconnects", burst=2, interval=0.3)
    with caplog.at_level(logging.INFO, logger="cirrus.test.ratelimit"):
        logged = [log.info("client %d went away", i) for i in range(50)]
        time.sleep(0.8)
    assert logged[:2] == [True, True] and not any(logged[2:])
    messages = [r.getMessage() for r in caplog.records if r.name == "cirrus.test.ratelimit"]
    assert messages == ["client 0 went away", "client 1 went away",
                        "48 more client disconnects in the last 0.3 s"]
    assert all(r.levelno == logging.INFO for r in caplog.records)


def test_rate_limit_filter_summarises_another_library_s_repeated_message(caplog) -> None:
    logger = logging.getLogger("cirrus.test.library")
    limiter = RateLimitFilter(burst=1, interval=0.3)
    logger.addFilter(limiter)
    try:
        with caplog.at_level(logging.WARNING, logger="cirrus.test.library"):
            for _ in range(10):
                logger.warning("Invalid HTTP request received.")
            logger.warning("something else")
            time.sleep(0.8)
    finally:
        logger.removeFilter(limiter)
    messages = [r.getMessage() for r in caplog.records if r.name == "cirrus.test.library"]
    assert messages == ["Invalid HTTP request received.", "something else",
                        "9 more 'Invalid HTTP request received.' messages in the last 0.3 s"]
