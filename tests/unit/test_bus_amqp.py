"""The AMQP bus against the real RabbitMQ: the bus contract (shared with LocalBus), durable
casts, failover, reconnection through a TCP proxy that cuts or black-holes traffic,
heartbeats and keepalive. Skipped with the reason when RabbitMQ is not reachable, failed
instead when CIRRUS_REQUIRE_SERVICES=1 (CI)."""

from __future__ import annotations

import functools
import os
import queue
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import kombu
import pytest
from amqp.exceptions import PreconditionFailed

from cirrus.bus import Bus, BusTimeout, Message, RemoteError
from cirrus.bus.amqp import AmqpBus, BrokerUnavailable, parse_broker_urls, redact
from cirrus.bus.local import LocalBus
from cirrus.context import RequestContext, current_global_request_id, current_request_id
from cirrus.errors import DatabaseUnavailable
from tests.faults.tcp_proxy import TcpProxy
from tests.services import missing

pytestmark = pytest.mark.timeout(30)

BROKER_URL = os.environ.get("CIRRUS_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
PREFIX = "cirrustest."


@functools.cache
def _broker_problem() -> str | None:
    try:
        with kombu.Connection(BROKER_URL, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=0)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _delete_entities(names: list[str]) -> None:
    with kombu.Connection(BROKER_URL, connect_timeout=2) as conn:
        for name in names:
            for delete, entity in (("queue_delete", f"{PREFIX}{name}"),
                                   ("exchange_delete", f"{PREFIX}fanout.{name}")):
                try:
                    channel = conn.channel()
                    getattr(channel, delete)(entity)
                    channel.close()
                except Exception:
                    pass


@pytest.fixture
def broker() -> str:
    problem = _broker_problem()
    if problem:
        reason = f"RabbitMQ is not reachable at {redact(BROKER_URL)} ({problem})"
        missing(reason)
    return BROKER_URL


@pytest.fixture
def topics() -> Iterator[Callable[[str], str]]:
    """Unique topic names; their queues and exchanges are deleted after the test."""
    made: list[str] = []

    def topic(base: str) -> str:
        made.append(name := f"t{uuid.uuid4().hex[:8]}-{base}")
        return name

    yield topic
    if made and _broker_problem() is None:
        _delete_entities(made)


@pytest.fixture
def amqp_bus(broker: str, topics: Callable[[str], str]) -> Iterator[Callable[..., AmqpBus]]:
    """Makes AMQP buses (stopped after the test, before its queues are deleted)."""
    made: list[AmqpBus] = []

    def make(urls: list[str] | None = None, **options: object) -> AmqpBus:
        options = {"default_timeout": 5, "queue_prefix": PREFIX, "retry_interval": 0.05,
                   "retry_max_interval": 0.5, "connect_timeout": 2, **options}
        bus = AmqpBus(urls or [broker], **options)
        made.append(bus)
        return bus

    yield make
    for bus in made:
        bus.stop()


@pytest.fixture(params=["local", "amqp"])
def bus(request: pytest.FixtureRequest, topics: Callable[[str], str]) -> Iterator[Bus]:
    if request.param == "local":
        local = LocalBus(default_timeout=5)
        yield local
        local.stop()
    else:
        yield request.getfixturevalue("amqp_bus")()


def ctx(request_id: str = "req-test") -> RequestContext:
    return RequestContext(request_id=request_id, user_id="u1", project_id="p1", roles=["member"])


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"amqp://guest:guest@127.0.0.1:{port}//"


def broker_proxy() -> TcpProxy:
    parts = urlsplit(BROKER_URL)
    return TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5672)


def via(proxy: TcpProxy) -> str:
    """The test broker's URL, credentials and vhost kept, pointing at the proxy."""
    parts = urlsplit(BROKER_URL)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@127.0.0.1:{proxy.port}" if credentials else f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def open_sockets(bus: AmqpBus) -> list[socket.socket]:
    # Reaches into the bus: the only way to see the sockets it opened.
    channels = [s.channel for s in bus._subs.values()]
    channels += [bus._replies.channel] if bus._replies else []
    socks = [c.connection.sock for c in channels if c is not None]
    return socks + [p.conn.connection.sock for p in bus._publishers if p.conn is not None]


# ---- the bus contract, for LocalBus and AmqpBus alike

def test_call_returns_the_handlers_result(bus: Bus, topics: Callable[[str], str]) -> None:
    t = topics("compute")
    bus.subscribe(t, {"add": lambda c, p: {"sum": p["a"] + p["b"]}})
    assert bus.call(ctx(), t, "add", {"a": 2, "b": 3}) == {"sum": 5}


def test_call_hands_the_handler_a_copy_not_the_callers_objects(
        bus: Bus, topics: Callable[[str], str]) -> None:
    t = topics("compute")
    seen: list = []
    bus.subscribe(t, {"keep": lambda c, p: seen.append(p) or p})
    payload = {"items": [1, 2]}
    result = bus.call(ctx(), t, "keep", payload)
    assert result == payload
    assert seen[0] is not payload and result is not payload


def test_call_without_answer_in_time_raises_bus_timeout(
        bus: Bus, topics: Callable[[str], str]) -> None:
    t = topics("slow")
    release = threading.Event()
    bus.subscribe(t, {"wait": lambda c, p: release.wait(5)})
    try:
        with pytest.raises(BusTimeout, match="slow.wait"):
            bus.call(ctx(), t, "wait", {}, timeout=0.2)
    finally:
        release.set()


def test_call_to_a_topic_nobody_serves_raises_bus_timeout(
        bus: Bus, topics: Callable[[str], str]) -> None:
    with pytest.raises(BusTimeout, match="nobody"):
        bus.call(ctx(), topics("nowhere"), "anything", {}, timeout=1)


def test_handler_exception_becomes_remote_error_with_type_and_message(
        bus: Bus, topics: Callable[[str], str]) -> None:
    t = topics("compute")

    def fail(c, p):
        raise ValueError("host fake-1 is full")

    bus.subscribe(t, {"fail": fail})
    with pytest.raises(RemoteError) as info:
        bus.call(ctx(), t, "fail", {})
    assert info.value.exc_type == "ValueError"
    assert info.value.message == "host fake-1 is full"


def test_unknown_method_becomes_remote_error(bus: Bus, topics: Callable[[str], str]) -> None:
    t = topics("compute")
    bus.subscribe(t, {"known": lambda c, p: None})
    with pytest.raises(RemoteError, match=f"no handler for {t}.unknown"):
        bus.call(ctx(), t, "unknown", {})


def test_a_failing_handler_does_not_kill_its_worker(bus: Bus, topics: Callable[[str], str]) -> None:
    t = topics("compute")

    def fail(c, p):
        raise RuntimeError("boom")

    bus.subscribe(t, {"fail": fail, "ok": lambda c, p: "ok"}, workers=1)
    for _ in range(3):
        with pytest.raises(RemoteError):
            bus.call(ctx(), t, "fail", {})
    bus.cast(ctx(), t, "fail", {})
    assert bus.call(ctx(), t, "ok", {}) == "ok"


def test_cast_runs_the_handler(bus: Bus, topics: Callable[[str], str]) -> None:
    t = topics("conductor")
    got: queue.Queue = queue.Queue()
    bus.subscribe(t, {"build": lambda c, p: got.put(p)})
    assert bus.cast(ctx(), t, "build", {"uuid": "abc"}) is None
    assert got.get(timeout=5) == {"uuid": "abc"}


def test_fanout_reaches_every_subscriber(bus: Bus, topics: Callable[[str], str]) -> None:
    t = topics("hosts")
    received: list[str] = []
    lock = threading.Lock()
    all_done = threading.Barrier(4, timeout=5)

    def listener(name: str):
        def handle(c, p):
            with lock:
                received.append(f"{name}:{p['n']}")
            all_done.wait()

        return {"update": handle}

    for name in ("a", "b", "c"):
        bus.subscribe(t, listener(name), fanout=True, workers=1)
    bus.fanout(ctx(), t, "update", {"n": 1})
    all_done.wait()
    assert sorted(received) == ["a:1", "b:1", "c:1"]


def test_the_callers_request_id_is_current_inside_the_handler(
        bus: Bus, topics: Callable[[str], str]) -> None:
    t = topics("compute")
    seen: dict = {}

    def handle(c, p):
        seen["ctx"] = c.request_id
        seen["current"] = current_request_id()

    bus.subscribe(t, {"h": handle})
    bus.call(ctx("req-1234"), t, "h", {})
    assert seen == {"ctx": "req-1234", "current": "req-1234"}


def test_the_whole_context_travels_with_the_message(bus: Bus, topics: Callable[[str], str]) -> None:
    t = topics("compute")
    bus.subscribe(t, {"who": lambda c, p: c.to_dict()})
    sent = ctx("req-ctx")
    assert bus.call(sent, t, "who", {}) == sent.to_dict()


def test_the_callers_global_request_id_is_current_inside_the_handler(
        bus: Bus, topics: Callable[[str], str]) -> None:
    t = topics("compute")
    bus.subscribe(t, {"ids": lambda c, p: [current_request_id(), current_global_request_id()]})
    sent = RequestContext(request_id="req-mine", global_request_id="req-theirs")
    assert bus.call(sent, t, "ids", {}) == ["req-mine", "req-theirs"]
    assert bus.call(ctx("req-alone"), t, "ids", {}) == ["req-alone", None]


def test_request_id_does_not_leak_between_messages_on_one_worker(
        bus: Bus, topics: Callable[[str], str]) -> None:
    t = topics("compute")
    bus.subscribe(t, {"id": lambda c, p: current_request_id()}, workers=1)
    assert bus.call(ctx("req-a"), t, "id", {}) == "req-a"
    assert bus.call(ctx("req-b"), t, "id", {}) == "req-b"


@pytest.mark.parametrize("payload", [{"when": object()}, {"ids": {1, 2}}, {"raw": b"bytes"}])
def test_a_payload_that_is_not_json_is_refused_at_send(
        bus: Bus, topics: Callable[[str], str], payload: dict) -> None:
    t = topics("compute")
    called = threading.Event()
    bus.subscribe(t, {"h": lambda c, p: called.set()})
    with pytest.raises(TypeError):
        bus.call(ctx(), t, "h", payload, timeout=1)
    with pytest.raises(TypeError):
        bus.cast(ctx(), t, "h", payload)
    with pytest.raises(TypeError):
        bus.fanout(ctx(), t, "h", payload)
    assert not called.wait(0.1)


def test_a_result_that_is_not_json_becomes_remote_error(
        bus: Bus, topics: Callable[[str], str]) -> None:
    t = topics("compute")
    bus.subscribe(t, {"h": lambda c, p: {"when": object()}})
    with pytest.raises(RemoteError, match="TypeError"):
        bus.call(ctx(), t, "h", {})


def test_second_consumer_on_a_topic_is_refused(bus: Bus, topics: Callable[[str], str]) -> None:
    t = topics("scheduler")
    bus.subscribe(t, {"h": lambda c, p: None})
    with pytest.raises(ValueError, match="already has a consumer"):
        bus.subscribe(t, {"h": lambda c, p: None})


def test_after_unsubscribe_calls_time_out(bus: Bus, topics: Callable[[str], str]) -> None:
    t = topics("compute")
    bus.subscribe(t, {"h": lambda c, p: "ok"})
    assert bus.call(ctx(), t, "h", {}) == "ok"
    bus.unsubscribe(t)
    with pytest.raises(BusTimeout):
        bus.call(ctx(), t, "h", {}, timeout=0.2)


# ---- durability and delivery guarantees

def test_a_cast_waits_in_its_durable_queue_until_a_consumer_subscribes(
        amqp_bus: Callable[..., AmqpBus], topics: Callable[[str], str]) -> None:
    t = topics("build")
    sender = amqp_bus()
    sender.cast(ctx("req-early"), t, "build", {"uuid": "a"})
    sender.stop()
    got: queue.Queue = queue.Queue()
    amqp_bus().subscribe(t, {"build": lambda c, p: got.put((p, current_request_id()))})
    assert got.get(timeout=5) == ({"uuid": "a"}, "req-early")


def test_a_cast_is_a_persistent_json_message_on_a_durable_queue(
        amqp_bus: Callable[..., AmqpBus], topics: Callable[[str], str], broker: str) -> None:
    t = topics("build")
    amqp_bus().cast(ctx("req-json"), t, "build", {"uuid": "a"})
    with kombu.Connection(broker) as conn:
        raw = conn.channel().basic_get(f"{PREFIX}{t}", no_ack=True)
        assert raw.properties["delivery_mode"] == 2
        assert raw.properties["content_type"] == "application/json"
        assert raw.properties["message_id"]
        message = Message.decode(raw.body)
        assert (message.method, message.payload) == ("build", {"uuid": "a"})
        assert message.context["request_id"] == "req-json"
        with pytest.raises(PreconditionFailed):  # redeclaring it as not durable is refused
            conn.channel().queue_declare(f"{PREFIX}{t}", durable=False, auto_delete=False)


def test_a_message_whose_consumer_died_mid_handler_goes_to_another_consumer(
        amqp_bus: Callable[..., AmqpBus], topics: Callable[[str], str]) -> None:
    t = topics("build")
    ran: queue.Queue = queue.Queue()
    release = threading.Event()

    def slow(c, p):
        ran.put("a")
        release.wait(10)

    with broker_proxy() as proxy:
        doomed = amqp_bus([via(proxy)])
        healthy = amqp_bus()
        try:
            doomed.subscribe(t, {"work": slow}, workers=1)
            healthy.cast(ctx(), t, "work", {"n": 1})
            assert ran.get(timeout=5) == "a"
            healthy.subscribe(t, {"work": lambda c, p: ran.put("b")}, workers=1)
            proxy.cut(refuse_for=5)  # the first consumer dies before acking
            assert ran.get(timeout=5) == "b"
        finally:
            release.set()


def test_a_cast_whose_handler_raises_is_dropped_not_redelivered(
        amqp_bus: Callable[..., AmqpBus], topics: Callable[[str], str], broker: str) -> None:
    t = topics("build")
    attempts: list[int] = []
    done = threading.Event()

    def fail(c, p):
        attempts.append(1)
        raise RuntimeError("poison")

    bus = amqp_bus()
    bus.subscribe(t, {"fail": fail, "ok": lambda c, p: done.set()}, workers=1)
    bus.cast(ctx(), t, "fail", {})
    bus.cast(ctx(), t, "ok", {})
    assert done.wait(5)
    bus.stop()  # anything unacked would now go back to the queue
    with kombu.Connection(broker) as conn:
        assert conn.channel().queue_declare(f"{PREFIX}{t}", passive=True).message_count == 0
    assert attempts == [1]


def test_a_cast_that_failed_for_a_transient_reason_is_redelivered_until_handled(
        amqp_bus: Callable[..., AmqpBus], topics: Callable[[str], str], broker: str) -> None:
    t = topics("build")
    attempts: list[dict] = []
    done = threading.Event()

    def flaky(c, p):
        attempts.append(p)
        if len(attempts) < 3:
            raise DatabaseUnavailable()  # the database is restarting
        done.set()

    bus = amqp_bus(requeue_delay=0.1)
    bus.subscribe(t, {"build": flaky}, workers=1)
    bus.cast(ctx(), t, "build", {"uuid": "abc"})
    assert done.wait(10)
    assert attempts == [{"uuid": "abc"}] * 3  # the same message each time, then acked
    bus.stop()
    with kombu.Connection(broker) as conn:
        assert conn.channel().queue_declare(f"{PREFIX}{t}", passive=True).message_count == 0


def test_discard_deletes_a_topics_queue_with_what_waits_in_it(
        amqp_bus: Callable[..., AmqpBus], topics: Callable[[str], str], broker: str) -> None:
    t = topics("agent.gone-host")
    bus = amqp_bus()
    bus.cast(ctx(), t, "spawn", {"uuid": "abc"})  # kept: nobody serves the topic yet
    with kombu.Connection(broker) as conn:
        assert conn.channel().queue_declare(f"{PREFIX}{t}", passive=True).message_count == 1
    bus.discard(t)
    with kombu.Connection(broker) as conn, pytest.raises(Exception, match="NOT_FOUND"):
        conn.channel().queue_declare(f"{PREFIX}{t}", passive=True)


def test_a_copy_of_a_message_already_handled_is_skipped(
        amqp_bus: Callable[..., AmqpBus], topics: Callable[[str], str], broker: str) -> None:
    t = topics("build")
    handled: list[int] = []
    bus = amqp_bus()
    bus.subscribe(t, {"n": lambda c, p: handled.append(p["i"])}, workers=2)
    with kombu.Connection(broker) as conn:
        producer = conn.Producer()
        for i, message_id in ((1, "m-1"), (1, "m-1"), (1, "m-1"), (2, "m-2")):
            body = Message(t, "n", {"i": i}, ctx().to_dict()).encode()
            producer.publish(body, routing_key=f"{PREFIX}{t}", message_id=message_id,
                             content_type="application/json", content_encoding="utf-8")
    assert wait_for(lambda: 2 in handled)
    time.sleep(0.3)
    assert sorted(handled) == [1, 2]


def test_a_call_nobody_answered_in_time_is_not_run_later(
        amqp_bus: Callable[..., AmqpBus], topics: Callable[[str], str]) -> None:
    t = topics("late")
    ran = threading.Event()
    bus = amqp_bus()
    bus.subscribe(t, {"late": lambda c, p: ran.set()})
    bus.unsubscribe(t)  # the queue stays, nobody consumes it
    with pytest.raises(BusTimeout, match="no answer"):
        bus.call(ctx(), t, "late", {}, timeout=0.3)
    time.sleep(0.2)
    bus.subscribe(t, {"late": lambda c, p: ran.set()})
    assert not ran.wait(0.5)


def test_quorum_queues_carry_casts(
        amqp_bus: Callable[..., AmqpBus], topics: Callable[[str], str]) -> None:
    t = topics("build")
    got: queue.Queue = queue.Queue()
    bus = amqp_bus(queue_type="quorum")
    bus.cast(ctx(), t, "build", {"n": 1})
    bus.subscribe(t, {"build": lambda c, p: got.put(p)})
    assert got.get(timeout=5) == {"n": 1}


# ---- brokers, failover and reconnection

def test_broker_urls_are_comma_separated_amqp_urls_in_order() -> None:
    assert parse_broker_urls(" amqp://a//, amqp://b// ,") == ["amqp://a//", "amqp://b//"]
    with pytest.raises(ValueError, match="not an amqp"):
        parse_broker_urls("redis://localhost")
    with pytest.raises(ValueError, match="at least one"):
        parse_broker_urls("")
    assert redact("amqp://guest:secret@h:5672//") == "amqp://guest:***@h:5672//"


def test_the_second_broker_serves_when_the_first_refuses(
        amqp_bus: Callable[..., AmqpBus], topics: Callable[[str], str], broker: str) -> None:
    t = topics("compute")
    got: queue.Queue = queue.Queue()
    bus = amqp_bus([closed_port_url(), broker])
    bus.subscribe(t, {"ping": lambda c, p: "pong", "note": lambda c, p: got.put(p)})
    assert bus.call(ctx(), t, "ping", {}) == "pong"
    bus.cast(ctx(), t, "note", {"n": 1})
    assert got.get(timeout=5) == {"n": 1}


def test_a_cast_with_every_broker_down_raises_broker_unavailable_in_time(
        amqp_bus: Callable[..., AmqpBus], topics: Callable[[str], str]) -> None:
    bus = amqp_bus([closed_port_url(), closed_port_url()], publish_timeout=1)
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable):
        bus.cast(ctx(), topics("build"), "build", {})
    assert time.monotonic() - started < 5


def test_casts_sent_while_the_connection_is_cut_are_each_handled_once(
        amqp_bus: Callable[..., AmqpBus], topics: Callable[[str], str]) -> None:
    t = topics("build")
    total = 150
    handled: Counter[int] = Counter()
    lock = threading.Lock()

    def record(c, p):
        with lock:
            handled[p["i"]] += 1

    with broker_proxy() as proxy:
        bus = amqp_bus([via(proxy)])
        bus.subscribe(t, {"n": record, "ping": lambda c, p: "pong"}, workers=4)
        failures: list[Exception] = []

        def produce() -> None:
            for i in range(total):
                try:
                    bus.cast(ctx(), t, "n", {"i": i})
                except Exception as exc:
                    failures.append(exc)
                time.sleep(0.005)

        producer = threading.Thread(target=produce)
        producer.start()
        assert wait_for(lambda: len(handled) >= 30)
        proxy.cut(refuse_for=1.0)  # while casts keep coming
        producer.join(timeout=20)
        assert not producer.is_alive() and failures == []
        assert wait_for(lambda: len(handled) == total, timeout=10)
        time.sleep(0.3)  # room for a duplicate to show up
        assert set(handled) == set(range(total))
        assert max(handled.values()) == 1
        assert bus.connection_losses >= 2  # the consumer and at least one publisher
        assert proxy.refused >= 1
        assert bus.call(ctx(), t, "ping", {}) == "pong"
        bus.stop()  # while the proxy still forwards, so its reply queue is deleted


def test_a_silently_dropped_connection_is_found_by_heartbeats_and_replaced(
        amqp_bus: Callable[..., AmqpBus], topics: Callable[[str], str]) -> None:
    t = topics("compute")
    with broker_proxy() as proxy:
        bus = amqp_bus([via(proxy)], heartbeat=1, confirm_timeout=2)
        bus.subscribe(t, {"ping": lambda c, p: "pong"})
        assert bus.call(ctx(), t, "ping", {}) == "pong"
        proxy.blackhole()  # a firewall forgets every session: no RST, no FIN, nothing
        time.sleep(0.1)
        proxy.restore()  # new connections work; the old ones stay silent forever
        assert bus.call(ctx(), t, "ping", {}, timeout=15) == "pong"
        assert bus.connection_losses >= 2
        bus.stop()  # while the proxy still forwards, so its reply queue is deleted


def test_heartbeats_keep_an_idle_bus_connected(
        amqp_bus: Callable[..., AmqpBus], topics: Callable[[str], str]) -> None:
    t = topics("compute")
    bus = amqp_bus(heartbeat=1)
    bus.subscribe(t, {"ping": lambda c, p: "pong"})
    assert bus.call(ctx(), t, "ping", {}) == "pong"
    assert {s.getpeername()[1] for s in open_sockets(bus)} == {urlsplit(BROKER_URL).port or 5672}
    time.sleep(3.5)  # missing heartbeats for over 2 s would close every connection
    assert bus.call(ctx(), t, "ping", {}) == "pong"
    assert bus.connection_losses == 0


def test_a_handler_slower_than_two_heartbeats_keeps_its_connection(
        amqp_bus: Callable[..., AmqpBus], topics: Callable[[str], str]) -> None:
    t = topics("compute")
    bus = amqp_bus(heartbeat=1)
    bus.subscribe(t, {"slow": lambda c, p: time.sleep(3) or "done"}, workers=1)
    assert bus.call(ctx(), t, "slow", {}, timeout=10) == "done"
    assert bus.connection_losses == 0


def test_tcp_keepalive_is_set_on_every_connection(
        amqp_bus: Callable[..., AmqpBus], topics: Callable[[str], str]) -> None:
    t = topics("compute")
    bus = amqp_bus(tcp_keepidle=7, tcp_keepintvl=3, tcp_keepcnt=4, tcp_user_timeout=20)
    bus.subscribe(t, {"ping": lambda c, p: "pong"})
    bus.call(ctx(), t, "ping", {})
    socks = open_sockets(bus)
    assert len(socks) >= 3  # the topic's consumer, the reply consumer, the publisher(s)
    for s in socks:
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 7
        assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 3
        assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 4
        assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 20000


def test_tcp_keepalive_can_be_turned_off(
        amqp_bus: Callable[..., AmqpBus], topics: Callable[[str], str]) -> None:
    t = topics("compute")
    bus = amqp_bus(tcp_keepalive=False)
    bus.subscribe(t, {"ping": lambda c, p: "pong"})
    bus.call(ctx(), t, "ping", {})
    socks = open_sockets(bus)
    assert len(socks) >= 3
    assert {s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) for s in socks} == {0}


def test_stop_ends_every_thread_and_connection_of_the_bus(
        amqp_bus: Callable[..., AmqpBus], topics: Callable[[str], str]) -> None:
    t, f = topics("compute"), topics("hosts")
    bus = amqp_bus()
    bus.subscribe(t, {"ping": lambda c, p: "pong"}, workers=3)
    bus.subscribe(f, {"update": lambda c, p: None}, fanout=True)
    assert bus.call(ctx(), t, "ping", {}) == "pong"
    socks = open_sockets(bus)
    started = time.monotonic()
    bus.stop()
    assert time.monotonic() - started < 3
    alive = [th.name for th in threading.enumerate() if t in th.name or f in th.name]
    assert alive == []
    assert all(s.fileno() == -1 for s in socks)
    with pytest.raises(BusTimeout):
        bus.call(ctx(), t, "ping", {}, timeout=1)
