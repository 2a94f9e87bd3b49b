"""The in-process bus: call, cast, fanout, timeouts, remote errors, request ids, JSON only."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from cirrus.bus import BusTimeout, Message, RemoteError
from cirrus.bus.local import LocalBus
from cirrus.context import RequestContext, current_request_id


@pytest.fixture
def bus() -> Iterator[LocalBus]:
    b = LocalBus(default_timeout=5)
    yield b
    b.stop()


def ctx(request_id: str = "req-test") -> RequestContext:
    return RequestContext(request_id=request_id, user_id="u1", project_id="p1", roles=["member"])


def test_call_returns_the_handlers_result(bus: LocalBus) -> None:
    bus.subscribe("compute", {"add": lambda c, p: {"sum": p["a"] + p["b"]}})
    assert bus.call(ctx(), "compute", "add", {"a": 2, "b": 3}) == {"sum": 5}


def test_call_hands_the_handler_a_copy_not_the_callers_objects(bus: LocalBus) -> None:
    seen: list = []
    bus.subscribe("compute", {"keep": lambda c, p: seen.append(p) or p})
    payload = {"items": [1, 2]}
    result = bus.call(ctx(), "compute", "keep", payload)
    assert result == payload
    assert seen[0] is not payload and result is not payload


def test_call_without_answer_in_time_raises_bus_timeout(bus: LocalBus) -> None:
    release = threading.Event()
    bus.subscribe("slow", {"wait": lambda c, p: release.wait(5)})
    try:
        with pytest.raises(BusTimeout, match="slow.wait"):
            bus.call(ctx(), "slow", "wait", {}, timeout=0.1)
    finally:
        release.set()


def test_call_to_a_topic_nobody_serves_raises_bus_timeout(bus: LocalBus) -> None:
    with pytest.raises(BusTimeout, match="nobody"):
        bus.call(ctx(), "nowhere", "anything", {}, timeout=0.1)


def test_handler_exception_becomes_remote_error_with_type_and_message(bus: LocalBus) -> None:
    def fail(c, p):
        raise ValueError("host fake-1 is full")

    bus.subscribe("compute", {"fail": fail})
    with pytest.raises(RemoteError) as info:
        bus.call(ctx(), "compute", "fail", {})
    assert info.value.exc_type == "ValueError"
    assert info.value.message == "host fake-1 is full"


def test_unknown_method_becomes_remote_error(bus: LocalBus) -> None:
    bus.subscribe("compute", {"known": lambda c, p: None})
    with pytest.raises(RemoteError, match="no handler for compute.unknown"):
        bus.call(ctx(), "compute", "unknown", {})


def test_a_failing_handler_does_not_kill_its_worker(bus: LocalBus) -> None:
    def fail(c, p):
        raise RuntimeError("boom")

    bus.subscribe("compute", {"fail": fail, "ok": lambda c, p: "ok"}, workers=1)
    for _ in range(3):
        with pytest.raises(RemoteError):
            bus.call(ctx(), "compute", "fail", {})
    bus.cast(ctx(), "compute", "fail", {})
    assert bus.call(ctx(), "compute", "ok", {}) == "ok"


def test_cast_runs_the_handler(bus: LocalBus) -> None:
    done = threading.Event()
    got: list = []

    def record(c, p):
        got.append(p)
        done.set()

    bus.subscribe("conductor", {"build": record})
    assert bus.cast(ctx(), "conductor", "build", {"uuid": "abc"}) is None
    assert done.wait(5)
    assert got == [{"uuid": "abc"}]


def test_fanout_reaches_every_subscriber(bus: LocalBus) -> None:
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
        bus.subscribe("hosts", listener(name), fanout=True, workers=1)
    bus.fanout(ctx(), "hosts", "update", {"n": 1})
    all_done.wait()
    assert sorted(received) == ["a:1", "b:1", "c:1"]


def test_the_callers_request_id_is_current_inside_the_handler(bus: LocalBus) -> None:
    seen: dict = {}

    def handle(c, p):
        seen["ctx"] = c.request_id
        seen["current"] = current_request_id()
        return None

    bus.subscribe("compute", {"h": handle})
    bus.call(ctx("req-1234"), "compute", "h", {})
    assert seen == {"ctx": "req-1234", "current": "req-1234"}


def test_the_whole_context_travels_with_the_message(bus: LocalBus) -> None:
    bus.subscribe("compute", {"who": lambda c, p: c.to_dict()})
    sent = ctx("req-ctx")
    assert bus.call(sent, "compute", "who", {}) == sent.to_dict()


def test_request_id_does_not_leak_between_messages_on_one_worker(bus: LocalBus) -> None:
    bus.subscribe("compute", {"id": lambda c, p: current_request_id()}, workers=1)
    assert bus.call(ctx("req-a"), "compute", "id", {}) == "req-a"
    assert bus.call(ctx("req-b"), "compute", "id", {}) == "req-b"


@pytest.mark.parametrize("payload", [{"when": object()}, {"ids": {1, 2}}, {"raw": b"bytes"}])
def test_a_payload_that_is_not_json_is_refused_at_send(bus: LocalBus, payload: dict) -> None:
    called = threading.Event()
    bus.subscribe("compute", {"h": lambda c, p: called.set()})
    with pytest.raises(TypeError):
        bus.call(ctx(), "compute", "h", payload, timeout=1)
    with pytest.raises(TypeError):
        bus.cast(ctx(), "compute", "h", payload)
    with pytest.raises(TypeError):
        bus.fanout(ctx(), "compute", "h", payload)
    assert not called.wait(0.1)


def test_a_result_that_is_not_json_becomes_remote_error(bus: LocalBus) -> None:
    bus.subscribe("compute", {"h": lambda c, p: {"when": object()}})
    with pytest.raises(RemoteError, match="TypeError"):
        bus.call(ctx(), "compute", "h", {})


def test_message_encodes_to_json_and_back() -> None:
    m = Message("compute", "build", {"uuid": "x", "n": [1, 2]}, ctx("req-m").to_dict())
    assert Message.decode(m.encode()) == m


def test_second_consumer_on_a_topic_is_refused(bus: LocalBus) -> None:
    bus.subscribe("scheduler", {"h": lambda c, p: None})
    with pytest.raises(ValueError, match="already has a consumer"):
        bus.subscribe("scheduler", {"h": lambda c, p: None})


def test_after_unsubscribe_calls_time_out(bus: LocalBus) -> None:
    bus.subscribe("compute", {"h": lambda c, p: "ok"})
    assert bus.call(ctx(), "compute", "h", {}) == "ok"
    bus.unsubscribe("compute")
    with pytest.raises(BusTimeout):
        bus.call(ctx(), "compute", "h", {}, timeout=0.1)


def test_context_to_dict_carries_every_field() -> None:
    from dataclasses import fields

    from cirrus.context import RequestContext

    ctx = RequestContext(user_id="u", project_id="p", roles=["member"])
    assert set(ctx.to_dict()) == {f.name for f in fields(RequestContext)}
    assert RequestContext.from_dict(ctx.to_dict()) == ctx
