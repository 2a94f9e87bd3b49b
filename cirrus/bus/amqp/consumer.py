"""Consuming: the I/O loop owning a connection, topic and fanout subscriptions, replies."""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import kombu
from kombu import Consumer, Queue

from cirrus.bus import Handler, Message
from cirrus.bus.amqp.connection import _CLOSE_TIMEOUT, _close_quietly, _Stopped
from cirrus.context import RequestContext, reset_request_id, set_request_id
from cirrus.errors import is_transient

if TYPE_CHECKING:
    from cirrus.bus.amqp.bus import AmqpBus

log = logging.getLogger(__name__)

_STOP = object()
_BUSY_POLL = 0.02  # how long the I/O thread blocks on the socket while acks may be waiting


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

    def _before_close(self, channel: Any) -> None:
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


def _stop_all(loops: Sequence[_ConsumerLoop]) -> None:
    """Stop consumers together: each may take a poll interval to notice."""
    for loop in loops:
        loop.stopping.set()
    for loop in loops:
        loop.stop()
