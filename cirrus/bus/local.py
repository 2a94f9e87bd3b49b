"""The in-process bus: a queue and a pool of worker threads per topic.

Messages are encoded to JSON and decoded again on delivery, exactly as the AMQP bus will,
so nothing that works here can depend on sharing Python objects between roles.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from concurrent.futures import Future, InvalidStateError
from typing import Any

from cirrus.bus import Bus, BusStopping, BusTimeout, Handler, Message, RemoteError
from cirrus.context import RequestContext, reset_request_id, set_request_id
from cirrus.errors import is_transient

log = logging.getLogger(__name__)
_STOP = object()
RETRY_DELAY = 1.0  # seconds before a cast that failed for a transient reason runs again


class _Consumer:
    def __init__(self, topic: str, handlers: dict[str, Handler], workers: int) -> None:
        self.topic = topic
        self.handlers = handlers
        self.queue: queue.Queue = queue.Queue()
        self.stopping = threading.Event()
        self.threads = [
            threading.Thread(target=self._work, name=f"bus-{topic}-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self.threads:
            thread.start()

    def _work(self) -> None:
        while True:
            item = self.queue.get()
            if item is _STOP:
                return
            raw, reply = item
            message = Message.decode(raw)
            ctx = RequestContext.from_dict(message.context)
            token = set_request_id(ctx.request_id, ctx.global_request_id)
            try:
                handler = self.handlers.get(message.method)
                if handler is None:
                    raise AttributeError(f"no handler for {self.topic}.{message.method}")
                result = self._run(handler, ctx, message.payload, reply is None)
                if reply is not None:
                    with contextlib.suppress(InvalidStateError):  # the caller gave up (stop)
                        reply.set_result(_roundtrip(result))
            except Exception as exc:  # a handler failure must never kill the worker
                if reply is not None:
                    with contextlib.suppress(InvalidStateError):
                        reply.set_exception(RemoteError(type(exc).__name__, str(exc),
                                                        is_transient(exc)))
                else:
                    log.exception("cast %s.%s failed", self.topic, message.method)
            finally:
                reset_request_id(token)

    def _run(self, handler: Handler, ctx: RequestContext, payload: dict, is_cast: bool) -> Any:
        """Run a handler; a cast that failed for a transient reason runs again later, as the
        AMQP bus redelivers it (a call's caller decides for itself)."""
        while True:
            try:
                return handler(ctx, payload)
            except Exception as exc:
                if not (is_cast and is_transient(exc)) or self.stopping.is_set():
                    raise
                log.warning("cast %s not handled now (%s); retrying", self.topic, exc)
                self.stopping.wait(RETRY_DELAY)

    def stop(self, deadline: float | None = None) -> None:
        self.stopping.set()
        for _ in self.threads:
            self.queue.put(_STOP)
        for thread in self.threads:
            thread.join(timeout=_left(deadline, 5.0))


def _left(deadline: float | None, default: float) -> float:
    """`default` seconds, or less if `deadline` comes sooner."""
    if deadline is None:
        return default
    return max(0.0, min(default, deadline - time.monotonic()))


def _roundtrip(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value)) if value is not None else None


class LocalBus(Bus):
    def __init__(self, default_timeout: float = 60.0) -> None:
        self.default_timeout = default_timeout
        self._consumers: dict[str, _Consumer] = {}
        self._fanout: dict[str, list[_Consumer]] = {}
        self._lock = threading.Lock()
        self._interrupted = False
        self._waiting: set[Future] = set()
        self._stop_deadline: float | None = None

    def _deliver(self, ctx: RequestContext, topic: str, method: str, payload: dict,
                 reply: Future | None) -> None:
        raw = Message(topic, method, payload, ctx.to_dict()).encode()
        consumer = self._consumers.get(topic)
        if consumer is None:
            raise BusTimeout(f"nobody is listening on topic {topic!r}")
        consumer.queue.put((raw, reply))

    def call(self, ctx: RequestContext, topic: str, method: str, payload: dict,
             timeout: float | None = None) -> Any:
        if self._interrupted:
            raise BusStopping()
        reply: Future = Future()
        with self._lock:
            self._waiting.add(reply)
        try:
            self._deliver(ctx, topic, method, payload, reply)
            return reply.result(timeout=timeout or self.default_timeout)
        except TimeoutError as exc:
            raise BusTimeout(f"no answer from {topic}.{method} in time") from exc
        finally:
            with self._lock:
                self._waiting.discard(reply)

    def interrupt(self) -> None:
        with self._lock:
            self._interrupted = True
            waiting = list(self._waiting)
        for reply in waiting:
            with contextlib.suppress(InvalidStateError):
                reply.set_exception(BusStopping())

    def cast(self, ctx: RequestContext, topic: str, method: str, payload: dict) -> None:
        self._deliver(ctx, topic, method, payload, None)

    def fanout(self, ctx: RequestContext, topic: str, method: str, payload: dict) -> None:
        raw = Message(topic, method, payload, ctx.to_dict()).encode()
        for consumer in self._fanout.get(topic, []):
            consumer.queue.put((raw, None))

    def subscribe(self, topic: str, handlers: dict[str, Handler], *, workers: int = 4,
                  fanout: bool = False) -> None:
        consumer = _Consumer(topic, handlers, workers)
        with self._lock:
            if fanout:
                self._fanout.setdefault(topic, []).append(consumer)
            else:
                if topic in self._consumers:
                    raise ValueError(f"topic {topic!r} already has a consumer")
                self._consumers[topic] = consumer

    def unsubscribe(self, topic: str) -> None:
        with self._lock:
            consumer = self._consumers.pop(topic, None)
            fans = self._fanout.pop(topic, [])
        for c in ([consumer] if consumer else []) + fans:
            c.stop(self._stop_deadline)

    def set_stop_deadline(self, deadline: float | None) -> None:
        """Bound the waits of every later unsubscribe and stop (a role's own stop)."""
        self._stop_deadline = deadline

    def stop(self, deadline: float | None = None) -> None:
        if deadline is not None:
            self._stop_deadline = deadline
        for topic in list(self._consumers) + list(self._fanout):
            self.unsubscribe(topic)
