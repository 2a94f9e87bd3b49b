"""Publishing: the outgoing message and one publishing connection."""

from __future__ import annotations

import socket
import threading
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import kombu
from kombu import Producer

from cirrus.bus.amqp.connection import _close_quietly, _Unroutable

if TYPE_CHECKING:
    from cirrus.bus.amqp.bus import AmqpBus


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

