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

from cirrus.bus.amqp.bus import AmqpBus
from cirrus.bus.amqp.connection import BrokerUnavailable, parse_broker_urls, redact

__all__ = ["AmqpBus", "BrokerUnavailable", "parse_broker_urls", "redact"]
