"""The AMQP bus: the same interface as `LocalBus`, carried by RabbitMQ through kombu.

Topology (names start with `queue_prefix`, "cirrus." by default):
- `<prefix><topic>`: one durable queue per topic on the default exchange. Casts are
  persistent; calls are transient and expire with the caller's timeout, so a call nobody
  answered in time is never run later. Every process serving a topic consumes this queue.
- `<prefix>fanout.<topic>`: a fanout exchange; every fanout subscriber binds its own
  exclusive, auto-delete queue (a new name on every reconnect).
- `<prefix>reply.<uuid>`: this bus's reply queue. Not exclusive but expiring when unused, so
  answers published while this bus reconnects wait for it instead of being dropped.

Guarantees: a cast or call is published with publisher confirms and retried, across
reconnects and broker failover, until a broker confirmed it or `publish_timeout` passed
(then BrokerUnavailable, a BusTimeout). A delivery is acknowledged only after its handler
returned, so a consumer that dies mid-handler leaves the message to another consumer.
Delivery is therefore at least once; each consumer remembers the message ids it handled
(`dedupe_window` of them) and skips copies, so a duplicate made by a reconnect reaches
the handler of one process once. Handlers must still be idempotent across processes.
A cast whose handler raises is logged and rejected without requeue: dead-lettered if the
operator set a dead-letter policy on the queue, dropped otherwise; never redelivered
forever. The exception is a transient failure (`cirrus.errors.is_transient`: the database
is unreachable): that message goes back to the queue after `requeue_delay` seconds, so
nothing is lost while the database restarts. Order is not guaranteed: workers run concurrently and redeliveries come late.
Fanout is best effort: a subscriber that is reconnecting misses what is sent meanwhile.
Unlike LocalBus, a cast to a topic nobody serves yet is kept, not refused; a call to a
topic whose queue does not exist fails at once with BusTimeout("nobody is listening").

Threads: kombu connections are not thread-safe, so each connection has one owner. A
subscription's I/O thread owns its connection (consume, ack, heartbeats) and hands
deliveries to `workers` handler threads, which hand them back to be acked. Publishing
uses a small pool of connections, each used under its own lock; one thread keeps the idle
ones' heartbeats. Reconnection: the broker URLs are tried in order (one that just failed
goes last for a while), with exponential backoff and jitter between rounds.
"""

from __future__ import annotations

import json
import logging
import queue
import random
import socket
import threading
import time
import uuid
from collections import OrderedDict
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import kombu
from amqp.exceptions import AccessRefused, PreconditionFailed
from kombu import Consumer, Exchange, Producer, Queue

from cirrus.bus import Bus, BusStopping, BusTimeout, Handler, Message, RemoteError
from cirrus.context import RequestContext, reset_request_id, set_request_id
from cirrus.errors import is_transient

log = logging.getLogger(__name__)

_STOP = object()
_BUSY_POLL = 0.02  # how long the I/O thread blocks on the socket while acks may be waiting
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


@dataclass
class _Outgoing:
    body: bytes
    routing_key: str
    exchange: str = ""
    declare: tuple = ()  # kombu entities declared (once per connection) before publishing
    mandatory: bool = False
    persistent: bool = False
    expiration: float | None = None
    correlation_id: str | None = None
    reply_to: str | None = None
    message_id: str = field(default_factory=lambda: uuid.uuid4().hex)


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


class _Publisher:
    """One publishing connection, used by one thread at a time (hold `lock`)."""

    def __init__(self, bus: AmqpBus) -> None:
        self.bus = bus
        self.lock = threading.Lock()
        self.conn: kombu.Connection | None = None
        self.producer: Producer | None = None
        self.declared: set[tuple[str, str]] = set()
        self.returned: set[str] = set()

    def _on_return(self, exc: Exception, exchange: str, routing_key: str, message: Any) -> None:
        self.returned.add(message.properties.get("message_id"))

    def _ready(self, deadline: float) -> Producer:
        if self.producer is None:
            self.conn = self.bus._brokers.connect(self.bus._halt, deadline, "publisher")
            self.producer = Producer(self.conn.channel(), on_return=self._on_return)
        return self.producer

    def publish(self, out: _Outgoing, deadline: float) -> None:
        producer = self._ready(deadline)
        for redeclare in (False, True):
            if redeclare:  # the queue was deleted behind our back: declare it again
                self.declared -= {(type(e).__name__, e.name) for e in out.declare}
            for entity in out.declare:
                key = (type(entity).__name__, entity.name)
                if key not in self.declared:
                    entity(producer.channel).declare()
                    self.declared.add(key)
            properties = {"message_id": out.message_id}
            if out.correlation_id:
                properties["correlation_id"] = out.correlation_id
            if out.reply_to:
                properties["reply_to"] = out.reply_to
            producer.publish(
                out.body, exchange=out.exchange, routing_key=out.routing_key,
                mandatory=out.mandatory, delivery_mode=2 if out.persistent else 1,
                content_type="application/json", content_encoding="utf-8",
                expiration=out.expiration, timeout=self.bus.confirm_timeout,  # write and confirm
                **properties,
            )
            if out.message_id not in self.returned:
                return
            self.returned.discard(out.message_id)
            if not out.declare:
                break
        raise _Unroutable()

    def keep_alive(self) -> None:
        """Read the broker's heartbeats and send ours, unless a publish is using the link."""
        if not self.lock.acquire(blocking=False):
            return
        try:
            if self.conn is None:
                return
            try:
                self.conn.drain_events(timeout=0.01)
            except TimeoutError:
                pass
            self.conn.heartbeat_check()
        except Exception as exc:
            self.bus._lost("publisher", exc)
            self.reset()
        finally:
            self.lock.release()

    def cut(self) -> None:
        """Wake a publish blocked on the broker (another thread holds `lock`): its socket is
        shut down under it, so the read or write it waits on fails at once."""
        conn = self.conn
        try:
            sock = conn.connection.sock if conn is not None else None
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
        except Exception:
            pass

    def reset(self, graceful: bool = False) -> None:
        conn, self.conn, self.producer = self.conn, None, None
        self.declared.clear()
        self.returned.clear()
        _close_quietly(conn, graceful)


class _DoneIds:
    """Message ids this consumer handled (bounded) or is handling, to skip redelivered copies."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._done: OrderedDict[str, None] = OrderedDict()
        self._running: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def claim(self, message_id: str | None) -> threading.Event | bool:
        """True: handle it. False: already handled. An Event: another worker is on it."""
        if not message_id:
            return True
        with self._lock:
            if message_id in self._done:
                return False
            running = self._running.get(message_id)
            if running is not None:
                return running
            self._running[message_id] = threading.Event()
            return True

    def finish(self, message_id: str | None, handled: bool = True) -> None:
        """The worker is done; `handled=False` (sent back to the queue) lets a copy run."""
        if not message_id:
            return
        with self._lock:
            self._running.pop(message_id).set()
            if not handled:
                return
            self._done[message_id] = None
            while len(self._done) > self.size:
                self._done.popitem(last=False)


class _ConsumerLoop:
    """A thread owning one connection: (re)connects, consumes, settles acks, keeps heartbeats."""

    def __init__(self, bus: AmqpBus, name: str) -> None:
        self.bus = bus
        self.name = name
        self.ready = threading.Event()  # consuming right now
        self.started = threading.Event()  # has consumed at least once
        self.stopping = threading.Event()
        self.channel: Any = None
        self._settled: queue.SimpleQueue = queue.SimpleQueue()
        self._unsettled = 0  # delivered, not yet acked or given up; owned by the I/O thread
        self._thread = threading.Thread(target=self._run, name=f"amqp-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self._thread.join(timeout=self.bus._left(self.bus.stop_grace + 5))

    def _consume(self, channel: Any) -> Consumer:
        raise NotImplementedError

    def _on_delivery(self, message: Any) -> None:
        raise NotImplementedError

    def _before_close(self, channel: Any) -> None:  # noqa: B027 - optional hook
        pass

    def _run(self) -> None:
        attempt = 0
        while not self.stopping.is_set():
            conn, healthy = None, False
            try:
                conn = self.bus._brokers.connect(self.stopping, None, self.name)
                channel = self.channel = conn.channel()
                consumer = self._consume(channel)
                if self.started.is_set():
                    log.info("%s: consuming again", self.name)
                self.ready.set()
                self.started.set()
                attempt = 0
                self._serve(conn)
                # A dead link must not hang the stop.
                conn.connection.sock.settimeout(max(0.1, self.bus._left(_CLOSE_TIMEOUT)))
                self._finish(conn, consumer)
                self._before_close(channel)
                healthy = True
            except _Stopped:
                break
            except Exception as exc:
                if self.stopping.is_set():
                    break
                self.bus._lost(self.name, exc)
            finally:
                self.ready.clear()
                self.channel = None
                _close_quietly(conn, graceful=healthy)
            if self.stopping.wait(self.bus._backoff(attempt)):
                break
            attempt += 1

    def _serve(self, conn: kombu.Connection) -> None:
        while not self.stopping.is_set():
            self._poll(conn)

    def _poll(self, conn: kombu.Connection) -> None:
        self._settle()
        conn.heartbeat_check()
        try:
            conn.drain_events(timeout=_BUSY_POLL if self._unsettled else self.bus._idle_poll)
        except TimeoutError:
            pass

    def _finish(self, conn: kombu.Connection, consumer: Consumer) -> None:
        """Stop taking messages, then wait (bounded) for the running handlers to be acked."""
        consumer.cancel()
        grace = time.monotonic() + self.bus._left(self.bus.stop_grace)
        while self._unsettled and time.monotonic() < grace:
            self._poll(conn)
        self._settle()

    def _delivered(self, message: Any) -> None:
        self._unsettled += 1
        self._on_delivery(message)

    def _settle(self) -> None:
        while True:
            try:
                message, action = self._settled.get_nowait()
            except queue.Empty:
                return
            self._unsettled -= 1
            if message.channel is not self.channel:
                continue  # delivered on a connection since lost: the broker requeued it
            if action == "ack":
                message.ack()
            elif action == "reject":
                message.reject(requeue=False)
            elif action == "requeue":
                message.reject(requeue=True)


class _Subscription(_ConsumerLoop):
    """Serves one topic (its durable queue, or a private queue on its fanout exchange)."""

    def __init__(self, bus: AmqpBus, topic: str, handlers: dict[str, Handler], workers: int,
                 fanout: bool) -> None:
        super().__init__(bus, f"{'fanout' if fanout else 'topic'} {topic}")
        self.topic = topic
        self.handlers = handlers
        self.fanout = fanout
        self.prefetch = bus.prefetch or 2 * workers
        self._done = _DoneIds(bus.dedupe_window)
        self._deliveries: queue.SimpleQueue = queue.SimpleQueue()
        self._workers = [
            threading.Thread(target=self._work, name=f"bus-{topic}-{i}", daemon=True)
            for i in range(workers)
        ]

    def start(self) -> None:
        for thread in self._workers:
            thread.start()
        super().start()

    def stop(self) -> None:
        super().stop()
        for _ in self._workers:
            self._deliveries.put(_STOP)
        for thread in self._workers:
            thread.join(timeout=self.bus._left(5.0))

    def _consume(self, channel: Any) -> Consumer:
        channel.basic_qos(0, self.prefetch, False)
        if self.fanout:
            q = Queue(f"{self.bus.queue_prefix}fanout.{self.topic}.{uuid.uuid4().hex[:12]}",
                      exchange=self.bus._fanout_exchange(self.topic), exclusive=True,
                      durable=False)
        else:
            q = self.bus._topic_queue(self.topic)
        consumer = Consumer(channel, queues=[q], on_message=self._delivered, no_ack=False)
        consumer.consume()
        return consumer

    def _on_delivery(self, message: Any) -> None:
        self._deliveries.put(message)

    def _work(self) -> None:
        while True:
            message = self._deliveries.get()
            if message is _STOP:
                return
            action = "skip"  # left unacked: the broker redelivers it
            if not self.stopping.is_set() and message.channel is self.channel:
                try:
                    action = self._handle(message)
                except Exception:  # a bug here must not kill the worker
                    log.exception("%s: delivery failed", self.name)
                    action = "reject"
            self._settled.put((message, action))

    def _handle(self, delivery: Any) -> str:
        try:
            message = Message.decode(delivery.body)
        except Exception:
            log.error("%s: dropping a delivery that is not a Cirrus message", self.name)
            return "reject"
        message_id = delivery.properties.get("message_id")
        claim = self._done.claim(message_id)
        if claim is False:
            log.info("%s: skipping a copy of %s.%s already handled", self.name, self.topic,
                     message.method)
            return "ack"
        if isinstance(claim, threading.Event):
            claim.wait()
            return "ack"
        action = "reject"
        try:
            action = self._run_handler(message, delivery.properties)
            return action
        finally:
            self._done.finish(message_id, handled=action != "requeue")

    def _run_handler(self, message: Message, properties: dict) -> str:
        reply_to = properties.get("reply_to")
        ctx = RequestContext.from_dict(message.context)
        token = set_request_id(ctx.request_id, ctx.global_request_id)
        try:
            try:
                handler = self.handlers.get(message.method)
                if handler is None:
                    raise AttributeError(f"no handler for {self.topic}.{message.method}")
                answer = json.dumps({"result": handler(ctx, message.payload)}).encode()
                action = "ack"
            except Exception as exc:  # a handler failure must never kill the worker
                if not reply_to:
                    if is_transient(exc):
                        # Not recorded for a passing reason (the database is restarting):
                        # back to the queue, after a pause so it does not spin meanwhile.
                        log.warning("cast %s.%s not handled now (%s); it will be redelivered",
                                    self.topic, message.method, exc)
                        self.stopping.wait(self.bus.requeue_delay)
                        return "requeue"
                    log.exception("cast %s.%s failed", self.topic, message.method)
                    return "reject"
                log.debug("call %s.%s raised", self.topic, message.method, exc_info=True)
                answer = json.dumps({"error": {"type": type(exc).__name__, "message": str(exc),
                                               "transient": is_transient(exc)}}).encode()
                action = "ack"
            if reply_to:
                self.bus._answer(reply_to, properties.get("correlation_id"), answer)
            return action
        finally:
            reset_request_id(token)


class _Replies(_ConsumerLoop):
    """Consumes this bus's reply queue and completes the waiting calls."""

    def _consume(self, channel: Any) -> Consumer:
        consumer = Consumer(channel, queues=[self.bus._reply_queue()],
                            on_message=self._delivered, no_ack=False)
        consumer.consume()
        return consumer

    def _on_delivery(self, message: Any) -> None:
        self.bus._resolve(message.properties.get("correlation_id"), message.body)
        self._settled.put((message, "ack"))

    def _before_close(self, channel: Any) -> None:
        try:
            channel.queue_delete(self.bus.reply_queue_name)
        except Exception:
            log.debug("could not delete reply queue %s", self.bus.reply_queue_name)


class AmqpBus(Bus):
    """Cirrus's bus on RabbitMQ. `urls`: broker URLs tried in order (a list or comma-separated)."""

    def __init__(
        self,
        urls: str | list[str],
        *,
        heartbeat: float = 30.0,
        tcp_keepalive: bool = True,
        tcp_keepidle: int = 60,
        tcp_keepintvl: int = 10,
        tcp_keepcnt: int = 9,
        tcp_user_timeout: float = 30.0,
        connect_timeout: float = 5.0,
        default_timeout: float = 60.0,
        publish_timeout: float | None = None,
        confirm_publish: bool = True,
        confirm_timeout: float = 10.0,
        prefetch: int | None = None,
        publishers: int = 2,
        queue_prefix: str = "cirrus.",
        queue_type: str = "classic",
        reply_queue_expires: float = 60.0,
        retry_interval: float = 0.2,
        retry_max_interval: float = 5.0,
        ready_timeout: float = 10.0,
        stop_grace: float = 10.0,
        dedupe_window: int = 10000,
        requeue_delay: float = 1.0,
    ) -> None:
        if queue_type not in ("classic", "quorum"):
            raise ValueError(f"queue_type must be classic or quorum, not {queue_type!r}")
        self.urls = parse_broker_urls(urls)
        self.heartbeat = heartbeat
        self.tcp_keepalive = tcp_keepalive
        self.tcp_keepidle = tcp_keepidle
        self.tcp_keepintvl = tcp_keepintvl
        self.tcp_keepcnt = tcp_keepcnt
        self.tcp_user_timeout = tcp_user_timeout
        self.connect_timeout = connect_timeout
        self.default_timeout = default_timeout
        self.publish_timeout = publish_timeout or default_timeout
        self.confirm_publish = confirm_publish
        self.requeue_delay = requeue_delay
        self.confirm_timeout = confirm_timeout
        self.prefetch = prefetch
        self.queue_prefix = queue_prefix
        self.queue_type = queue_type
        self.reply_queue_expires = reply_queue_expires
        self.retry_interval = retry_interval
        self.retry_max_interval = retry_max_interval
        self.ready_timeout = ready_timeout
        self.stop_grace = stop_grace
        self.dedupe_window = dedupe_window
        self.reply_queue_name = f"{queue_prefix}reply.{uuid.uuid4().hex}"
        # Heartbeats serviced at least twice per interval; also how long a stop may wait.
        self._idle_poll = min(0.5, heartbeat / 4) if heartbeat else 0.5
        self.connection_losses = 0

        self._brokers = _Brokers(self, self.urls)
        self._closed = threading.Event()
        self._halt = threading.Event()  # interrupt() or stop(): publishes give up at once
        self._stop_deadline: float | None = None
        self._lock = threading.Lock()
        self._subs: dict[str, _Subscription] = {}
        self._fanouts: dict[str, list[_Subscription]] = {}
        self._replies: _Replies | None = None
        self._waiting: dict[str, Future] = {}
        self._publishers = [_Publisher(self) for _ in range(max(1, publishers))]
        # Last in, first out: a second connection opens only when publishes overlap.
        self._free: queue.LifoQueue = queue.LifoQueue()
        for publisher in self._publishers:
            self._free.put(publisher)
        self._keeper = threading.Thread(target=self._keep_publishers_alive,
                                        name="amqp-publisher-heartbeats", daemon=True)
        self._keeper.start()

    # ---- connections
    def _new_connection(self, urls: list[str]) -> kombu.Connection:
        options: dict[str, Any] = {"confirm_publish": self.confirm_publish}
        settings: dict[int, int] = {}
        if self.tcp_keepalive:
            for name, value in (("TCP_KEEPIDLE", self.tcp_keepidle),
                                ("TCP_KEEPINTVL", self.tcp_keepintvl),
                                ("TCP_KEEPCNT", self.tcp_keepcnt)):
                if hasattr(socket, name):
                    settings[getattr(socket, name)] = int(value)
        if hasattr(socket, "TCP_USER_TIMEOUT"):
            settings[socket.TCP_USER_TIMEOUT] = int(self.tcp_user_timeout * 1000)
        options["socket_settings"] = settings
        return kombu.Connection(urls, heartbeat=self.heartbeat, failover_strategy="round-robin",
                                connect_timeout=self.connect_timeout, transport_options=options)

    def _prepare_socket(self, conn: kombu.Connection) -> None:
        sock = conn.connection.sock
        # Bounds every blocking exchange with the broker (declare, consume, cancel): on a
        # link that died silently they would otherwise wait forever.
        sock.settimeout(max(self.confirm_timeout, self.connect_timeout))
        if not self.tcp_keepalive:  # py-amqp always turns keepalive on
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 0)

    def _left(self, default: float) -> float:
        """`default` seconds, or less if the stop deadline comes sooner."""
        if self._stop_deadline is None:
            return default
        return max(0.0, min(default, self._stop_deadline - time.monotonic()))

    def _backoff(self, attempt: int) -> float:
        delay = min(self.retry_max_interval, self.retry_interval * 2 ** min(attempt, 16))
        return delay * random.uniform(0.5, 1.0)

    def _lost(self, what: str, exc: Exception) -> None:
        with self._lock:
            self.connection_losses += 1
        log.warning("%s: connection lost (%s: %s); reconnecting", what, type(exc).__name__, exc)

    def _keep_publishers_alive(self) -> None:
        while not self._closed.wait(self._idle_poll):
            for publisher in self._publishers:
                publisher.keep_alive()

    # ---- names
    def _topic_queue(self, topic: str) -> Queue:
        arguments = {"x-queue-type": "quorum"} if self.queue_type == "quorum" else None
        return Queue(f"{self.queue_prefix}{topic}", durable=True, auto_delete=False,
                     queue_arguments=arguments)

    def _fanout_exchange(self, topic: str) -> Exchange:
        return Exchange(f"{self.queue_prefix}fanout.{topic}", type="fanout", durable=False,
                        auto_delete=False)

    def _reply_queue(self) -> Queue:
        return Queue(self.reply_queue_name, durable=False, auto_delete=False,
                     queue_arguments={"x-expires": int(self.reply_queue_expires * 1000)})

    # ---- publishing
    def _publish(self, out: _Outgoing, deadline: float) -> None:
        """Publish until a broker confirms it; the same message id on every attempt."""
        attempt = 0
        while True:
            if self._halt.is_set():
                raise BusStopping()
            if self._closed.is_set():
                raise BrokerUnavailable("the bus is stopped")
            publisher = self._free_publisher(deadline)
            try:
                with publisher.lock:
                    if self._halt.is_set():
                        raise BusStopping()
                    try:
                        publisher.publish(out, deadline)
                        return
                    except (_Unroutable, BrokerUnavailable):
                        raise
                    except _Stopped:
                        raise BusStopping() from None
                    except _CONFIG_ERRORS:
                        publisher.reset()
                        raise
                    except Exception as exc:
                        if self._halt.is_set():  # interrupt() cut its socket
                            publisher.reset()
                            raise BusStopping() from None
                        self._lost("publisher", exc)
                        publisher.reset()
            finally:
                self._free.put(publisher)
            delay = self._backoff(attempt)
            attempt += 1
            if time.monotonic() + delay >= deadline:
                raise BrokerUnavailable(f"no broker confirmed a message for {out.routing_key or out.exchange} in time")
            if self._halt.wait(delay):
                raise BusStopping()

    def _free_publisher(self, deadline: float) -> _Publisher:
        """A publishing connection nobody uses, waiting for one until `deadline` (or a stop)."""
        while True:
            left = deadline - time.monotonic()
            try:
                return self._free.get(timeout=max(0.0, min(0.1, left)))
            except queue.Empty:
                if self._halt.is_set():
                    raise BusStopping() from None
                if left <= 0.1:
                    raise BrokerUnavailable("no publishing connection free in time") from None

    def _answer(self, reply_to: str, correlation_id: str | None, body: bytes) -> None:
        try:
            self._publish(_Outgoing(body, routing_key=reply_to, correlation_id=correlation_id),
                          time.monotonic() + self.publish_timeout)
        except Exception as exc:
            log.warning("could not send an answer to %s: %s", reply_to, exc)

    # ---- calls
    def _reply_loop(self) -> _Replies:
        with self._lock:
            if self._replies is None:
                self._replies = _Replies(self, "replies")
                self._replies.start()
            replies = self._replies
        if not replies.started.wait(self.ready_timeout):
            raise BrokerUnavailable("the reply queue could not be set up in time")
        return replies

    def _resolve(self, correlation_id: str | None, body: bytes | str) -> None:
        with self._lock:
            future = self._waiting.get(correlation_id or "")
        if future is None:
            return  # a late answer, or a copy of one already received
        try:
            answer = json.loads(body)
        except ValueError:
            answer = {"error": {"type": "ValueError", "message": "the answer is not JSON"}}
        try:
            future.set_result(answer)
        except Exception:  # already completed by an earlier copy
            pass

    def call(self, ctx: RequestContext, topic: str, method: str, payload: dict,
             timeout: float | None = None) -> Any:
        timeout = timeout or self.default_timeout
        body = Message(topic, method, payload, ctx.to_dict()).encode()
        if self._halt.is_set():
            raise BusStopping()
        if self._closed.is_set():
            raise BrokerUnavailable("the bus is stopped")
        self._reply_loop()
        deadline = time.monotonic() + timeout
        correlation_id = uuid.uuid4().hex
        future: Future = Future()
        with self._lock:
            self._waiting[correlation_id] = future
        try:
            if self._halt.is_set():  # interrupt() came before the future was registered
                raise BusStopping()
            try:
                self._publish(_Outgoing(body, routing_key=self._topic_queue(topic).name,
                                        mandatory=True, expiration=timeout,
                                        correlation_id=correlation_id,
                                        reply_to=self.reply_queue_name), deadline)
            except _Unroutable:
                raise BusTimeout(f"nobody is listening on topic {topic!r}") from None
            try:
                answer = future.result(timeout=max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                raise BusTimeout(f"no answer from {topic}.{method} in time") from None
        finally:
            with self._lock:
                self._waiting.pop(correlation_id, None)
        if "error" in answer:
            raise RemoteError(answer["error"]["type"], answer["error"]["message"],
                              bool(answer["error"].get("transient")))
        return answer.get("result")

    def cast(self, ctx: RequestContext, topic: str, method: str, payload: dict) -> None:
        body = Message(topic, method, payload, ctx.to_dict()).encode()
        q = self._topic_queue(topic)
        try:
            self._publish(_Outgoing(body, routing_key=q.name, declare=(q,), mandatory=True,
                                    persistent=True), time.monotonic() + self.publish_timeout)
        except _Unroutable:
            raise BrokerUnavailable(f"the queue of topic {topic!r} vanished twice") from None

    def fanout(self, ctx: RequestContext, topic: str, method: str, payload: dict) -> None:
        body = Message(topic, method, payload, ctx.to_dict()).encode()
        exchange = self._fanout_exchange(topic)
        self._publish(_Outgoing(body, routing_key="", exchange=exchange.name,
                                declare=(exchange,)), time.monotonic() + self.publish_timeout)

    # ---- consuming
    def subscribe(self, topic: str, handlers: dict[str, Handler], *, workers: int = 4,
                  fanout: bool = False) -> None:
        sub = _Subscription(self, topic, handlers, workers, fanout)
        with self._lock:
            if fanout:
                self._fanouts.setdefault(topic, []).append(sub)
            else:
                if topic in self._subs:
                    raise ValueError(f"topic {topic!r} already has a consumer")
                self._subs[topic] = sub
        sub.start()
        if not sub.ready.wait(self.ready_timeout):
            log.warning("%s: not consuming yet (broker unreachable); still trying", sub.name)

    def discard(self, topic: str) -> None:
        """Delete the topic's durable queue and what waits in it (best effort)."""
        deadline = time.monotonic() + self.publish_timeout
        conn = self._brokers.connect(self._closed, deadline, "discard")
        try:
            channel = conn.channel()
            channel.queue_delete(self._topic_queue(topic).name)
            channel.close()
        finally:
            _close_quietly(conn)

    def unsubscribe(self, topic: str) -> None:
        with self._lock:
            sub = self._subs.pop(topic, None)
            fans = self._fanouts.pop(topic, [])
        _stop_all(([sub] if sub else []) + fans)

    def interrupt(self) -> None:
        """Publishes and calls waiting give up with BusStopping (see cirrus.shutdown)."""
        self._halt.set()
        with self._lock:
            waiting = list(self._waiting.values())
        for future in waiting:
            try:
                future.set_exception(BusStopping())
            except Exception:  # answered meanwhile
                pass
        for publisher in self._publishers:
            if publisher.lock.locked():
                publisher.cut()

    def set_stop_deadline(self, deadline: float | None) -> None:
        self._stop_deadline = deadline

    def stop(self, deadline: float | None = None) -> None:
        if deadline is not None:
            self._stop_deadline = deadline
        with self._lock:
            loops: list[_ConsumerLoop] = [*self._subs.values()]
            for fans in self._fanouts.values():
                loops.extend(fans)
            if self._replies is not None:
                loops.append(self._replies)
            self._subs, self._fanouts, self._replies = {}, {}, None
        _stop_all(loops)
        self._closed.set()
        self._halt.set()
        self._keeper.join(timeout=self._left(5.0))
        for publisher in self._publishers:
            # A publish still blocked (its thread abandoned by the stop) keeps its connection:
            # the process exit closes it.
            if publisher.lock.acquire(timeout=self._left(2.0)):
                try:
                    publisher.reset(graceful=True)
                finally:
                    publisher.lock.release()


def _stop_all(loops: list[_ConsumerLoop]) -> None:
    """Stop consumers together: each may take a poll interval to notice."""
    for loop in loops:
        loop.stopping.set()
    for loop in loops:
        loop.stop()
