"""AmqpBus: the Bus interface over the connections, publishers and consumers."""

from __future__ import annotations

import json
import logging
import queue
import random
import socket
import threading
import time
import uuid
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import kombu
from kombu import Exchange, Queue

from cirrus.bus import Bus, BusStopping, BusTimeout, Handler, Message, RemoteError
from cirrus.bus.amqp.connection import (
    _CLOSE_TIMEOUT,
    _CONFIG_ERRORS,
    BrokerUnavailable,
    _Brokers,
    _close_quietly,
    _Stopped,
    _Unroutable,
    parse_broker_urls,
)
from cirrus.bus.amqp.consumer import _ConsumerLoop, _Replies, _stop_all, _Subscription
from cirrus.bus.amqp.publisher import _Outgoing, _Publisher
from cirrus.context import RequestContext

log = logging.getLogger(__name__)


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
                self._close_publisher(publisher)

    def _close_publisher(self, publisher: _Publisher) -> None:
        """Close a publisher's connection (its lock held), politely if the broker answers
        before the stop deadline. A polite close waits for the broker at every step (each
        channel, then the connection): on a black-holed link that is longer than a bounded
        stop has, so it runs in a thread of its own and is left to the process exit when
        the deadline comes first."""

        def close() -> None:
            try:
                publisher.reset(graceful=True)
            finally:
                publisher.lock.release()

        closer = threading.Thread(target=close, name="amqp-publisher-close", daemon=True)
        closer.start()
        closer.join(timeout=self._left(_CLOSE_TIMEOUT))

