"""Connections to the brokers: failover over the URLs in order, backoff, closing."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import kombu
from amqp.exceptions import AccessRefused, PreconditionFailed

from cirrus.bus import BusTimeout

if TYPE_CHECKING:
    from cirrus.bus.amqp.bus import AmqpBus

log = logging.getLogger(__name__)

_DEMOTE_FOR = 30.0  # seconds a broker that failed is tried after the others
_CLOSE_TIMEOUT = 2.0  # seconds a polite close may wait for the broker
# Broker-side refusals that no retry fixes: wrong queue arguments, missing permissions.
_CONFIG_ERRORS = (PreconditionFailed, AccessRefused)


class BrokerUnavailable(BusTimeout):
    """No broker accepted the message in time: every URL down, unreachable or refusing."""


class _Stopped(Exception):
    """The bus or a subscription is stopping: give up connecting."""


class _Unroutable(Exception):
    """The broker returned a mandatory message: no queue has its routing key."""


def redact(url: str) -> str:
    """The URL with its password replaced, fit for a log line."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{netloc}"))


def parse_broker_urls(urls: str | list[str]) -> list[str]:
    """`CIRRUS_BROKER_URLS` style text (comma-separated) or a list, in order of preference."""
    items = urls.split(",") if isinstance(urls, str) else list(urls)
    found = [u.strip() for u in items if u and u.strip()]
    if not found:
        raise ValueError("at least one broker URL is needed")
    for url in found:
        if urlsplit(url).scheme not in ("amqp", "amqps", "pyamqp"):
            raise ValueError(f"not an amqp:// URL: {redact(url)}")
    return found


def _close_quietly(conn: kombu.Connection | None, graceful: bool = False) -> None:
    """Close a connection. Not graceful: drop it without a word, as a dead link needs
    (a polite close waits for the broker's close-ok, forever if the link died silently)."""
    if conn is None:
        return
    if graceful:
        try:
            conn.connection.sock.settimeout(_CLOSE_TIMEOUT)
            conn.release()
            return
        except Exception:
            pass
    try:
        conn.collect()
    except Exception:
        pass


class _Brokers:
    """Opens connections: URLs in order, a recently failed one last, backoff between rounds."""

    def __init__(self, bus: AmqpBus, urls: list[str]) -> None:
        self.bus = bus
        self.urls = urls
        self._failed_at: dict[str, float] = {}
        self._lock = threading.Lock()

    def _ordered(self) -> list[str]:
        now = time.monotonic()
        with self._lock:
            recent = {u for u, t in self._failed_at.items() if now - t < _DEMOTE_FOR}
        return sorted(self.urls, key=lambda u: (u in recent, self.urls.index(u)))

    def _mark(self, url: str, failed: bool) -> None:
        with self._lock:
            if failed:
                self._failed_at[url] = time.monotonic()
            else:
                self._failed_at.pop(url, None)

    def connect(self, stop: threading.Event, deadline: float | None, what: str) -> kombu.Connection:
        attempt = 0
        while True:
            if stop.is_set():
                raise _Stopped()
            urls = self._ordered()
            tried: list[str] = []
            conn = self.bus._new_connection(urls)

            def failed(exc: Exception, interval: float, urls: list[str] = urls,
                       tried: list[str] = tried) -> None:
                url = urls[len(tried)]
                tried.append(url)
                self._mark(url, failed=True)
                log.warning("%s: cannot reach broker %s: %s", what, redact(url), exc)

            try:
                # kombu's failover: each URL once, in our order, no sleep inside a round.
                conn.ensure_connection(errback=failed, max_retries=len(urls) - 1,
                                       interval_start=0, interval_step=0, interval_max=0)
            except Exception as exc:
                _close_quietly(conn)
                failed(exc, 0)  # the URL kombu gave up on raises instead of calling errback
            else:
                url = urls[len(tried)]
                self._mark(url, failed=False)
                self.bus._prepare_socket(conn)
                if tried or attempt:
                    log.info("%s: connected to %s", what, redact(url))
                return conn
            delay = self.bus._backoff(attempt)
            attempt += 1
            if deadline is not None and time.monotonic() + delay >= deadline:
                raise BrokerUnavailable(f"{what}: no broker reachable in time")
            if stop.wait(delay):
                raise _Stopped()

