"""What keeps a request from being lost or stuck when a process, the broker or the database
fails at the wrong moment, checked in one process (the multi-process fault tests are in
tests/multiproc/test_faults.py):

- a create whose build message no broker takes is undone and answered 503;
- a task whose message was lost is sent again by the conductor's sweeper;
- a build redelivered after its conductor died re-sends the spawn, and a second spawn
  report for a running VM does not destroy it;
- an unreachable database is retried for `reconnect_timeout`, then DatabaseUnavailable,
  which the buses redeliver instead of dropping.
"""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError

from cirrus.bus import BusTimeout, RemoteError
from cirrus.bus.local import LocalBus
from cirrus.compute import states
from cirrus.context import RequestContext
from cirrus.db.engine import Database, is_disconnect
from cirrus.db.models import Allocation, Instance, InstanceAction
from cirrus.errors import DatabaseUnavailable, is_transient
from tests.api.servers_helpers import add_flavor, add_image, server_body, wait_for_status


def _conductor(cloud):
    return next(r for r in cloud.roles if type(r).__name__ == "Conductor")


def _boot(api, cloud, member, name="vm"):
    flavor, image = add_flavor(cloud, name=f"f-{name}"), add_image(cloud)
    r = api.post("/compute/v2.1/servers", json=server_body(flavor, image, name=name),
                 headers=member.compute())
    assert r.status_code == 202, r.text
    return wait_for_status(api, member.compute(), r.json()["server"]["id"], "ACTIVE")


def _count(cloud, model) -> int:
    with cloud.db.reader() as s:
        return s.scalar(select(func.count()).select_from(model))


# ---------------------------------------------------------------- a lost build message


def test_a_create_no_broker_takes_is_undone_and_answered_503(api, cloud, member, monkeypatch):
    flavor, image = add_flavor(cloud), add_image(cloud)
    real_cast = cloud.bus.cast

    def refusing_cast(ctx, topic, method, payload):
        if method == "build_instances":
            raise BusTimeout("no broker confirmed the message within 60 s")
        return real_cast(ctx, topic, method, payload)

    monkeypatch.setattr(cloud.bus, "cast", refusing_cast)
    r = api.post("/compute/v2.1/servers", json=server_body(flavor, image, max_count=2),
                 headers=member.compute())
    assert r.status_code == 503, r.text
    assert "server was not created" in r.json()["serviceUnavailable"]["message"]
    assert _count(cloud, Instance) == 0 and _count(cloud, InstanceAction) == 0
    listed = api.get("/compute/v2.1/servers", headers=member.compute()).json()["servers"]
    assert listed == []


def test_a_build_the_conductor_never_got_is_sent_again_by_the_sweeper(api, cloud, member,
                                                                       monkeypatch):
    flavor, image = add_flavor(cloud), add_image(cloud)
    real_cast = cloud.bus.cast
    monkeypatch.setattr(cloud.bus, "cast", lambda ctx, topic, method, payload: (
        None if method == "build_instances" else real_cast(ctx, topic, method, payload)))
    r = api.post("/compute/v2.1/servers", json=server_body(flavor, image),
                 headers=member.compute())
    assert r.status_code == 202
    sid = r.json()["server"]["id"]
    shown = api.get(f"/compute/v2.1/servers/{sid}", headers=member.compute()).json()["server"]
    assert shown["OS-EXT-STS:task_state"] == "scheduling"  # the message was lost

    cloud.settings.task_redrive_after = 5.0
    _age(cloud, sid, seconds=6)
    assert _conductor(cloud).sweep() == 0  # re-driven, not ended
    shown = wait_for_status(api, member.compute(), sid, "ACTIVE")
    assert shown["OS-EXT-STS:task_state"] is None
    # Once per interval: a second sweep right away sends nothing more.
    assert not _conductor(cloud).sweeper._due_for_redrive(sid, states.SCHEDULING)


def test_a_delete_whose_message_was_lost_completes_on_redrive(api, cloud, member, monkeypatch):
    server = _boot(api, cloud, member)
    real_cast = cloud.bus.cast

    def refusing_cast(ctx, topic, method, payload):
        if method == "delete_instance":
            raise BusTimeout("broker unavailable")
        return real_cast(ctx, topic, method, payload)

    monkeypatch.setattr(cloud.bus, "cast", refusing_cast)
    r = api.delete(f"/compute/v2.1/servers/{server['id']}", headers=member.compute())
    assert r.status_code == 204  # accepted and recorded: the sweeper owes it
    with cloud.db.reader() as s:
        assert s.scalar(select(Instance.task_state).where(
            Instance.uuid == server["id"])) == states.DELETING
    monkeypatch.setattr(cloud.bus, "cast", real_cast)
    cloud.settings.task_redrive_after = 5.0
    _age(cloud, server["id"], seconds=6)
    _conductor(cloud).sweep()
    with cloud.db.reader() as s:
        inst = s.scalar(select(Instance).where(Instance.uuid == server["id"]))
        assert inst.deleted and inst.vm_state == states.DELETED
        assert s.scalar(select(func.count()).select_from(Allocation)) == 0


def _age(cloud, uuid: str, seconds: float) -> None:
    earlier = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(seconds=seconds)
    cloud.db.run(lambda s: s.execute(update(Instance).where(Instance.uuid == uuid)
                                     .values(task_started_at=earlier)))


# ---------------------------------------------------------------- duplicates are harmless


def test_a_redelivered_build_of_a_scheduled_instance_spawns_it(api, cloud, member, monkeypatch):
    """The conductor died after the scheduler placed the instance, before telling the agent."""
    flavor, image = add_flavor(cloud), add_image(cloud)
    agents = [r for r in cloud.roles if type(r).__name__ == "Agent"]
    real_cast = cloud.bus.cast
    monkeypatch.setattr(cloud.bus, "cast", lambda ctx, topic, method, payload: (
        None if method == "spawn" else real_cast(ctx, topic, method, payload)))
    r = api.post("/compute/v2.1/servers", json=server_body(flavor, image),
                 headers=member.compute())
    sid = r.json()["server"]["id"]
    assert _until(lambda: _task(cloud, sid) == states.SPAWNING)
    assert not any(sid in a.driver.list_instances() for a in agents)  # the spawn was lost
    monkeypatch.setattr(cloud.bus, "cast", real_cast)
    _conductor(cloud).build_instances(RequestContext.admin(), {"uuids": [sid]})
    wait_for_status(api, member.compute(), sid, "ACTIVE")
    with cloud.db.reader() as s:
        host = s.scalar(select(Instance.host).where(Instance.uuid == sid))
    assert [a.host for a in agents if sid in a.driver.list_instances()] == [host]


def test_a_second_spawn_report_for_a_running_vm_does_not_destroy_it(api, cloud, member):
    server = _boot(api, cloud, member)
    with cloud.db.reader() as s:
        host = s.scalar(select(Instance.host).where(Instance.uuid == server["id"]))
    agent = next(r for r in cloud.roles if type(r).__name__ == "Agent" and r.host == host)
    _conductor(cloud).spawn_result(RequestContext.admin(), {
        "uuid": server["id"], "host": host, "ok": True, "power_state": states.RUNNING})
    # A destroy would be a cast to the agent; give it the time it would take.
    assert not _until(lambda: server["id"] not in agent.driver.list_instances(), timeout=1.0)
    shown = api.get(f"/compute/v2.1/servers/{server['id']}", headers=member.compute())
    assert shown.json()["server"]["status"] == "ACTIVE"


def _task(cloud, uuid: str) -> str | None:
    with cloud.db.reader() as s:
        return s.scalar(select(Instance.task_state).where(Instance.uuid == uuid))


def _until(predicate, timeout: float = 5.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


# ---------------------------------------------------------------- an unreachable database


def _refused() -> OperationalError:
    return OperationalError("SELECT 1", {}, Exception(
        'connection failed: connection to server at "127.0.0.1", port 5432 failed: '
        "Connection refused"))


@pytest.mark.parametrize("text", [
    "Connection refused", "(2003, \"Can't connect to MySQL server on '127.0.0.1'\")",
    "(2013, 'Lost connection to MySQL server during query')",
    "terminating connection due to administrator command",
    "FATAL: the database system is starting up",
])
def test_unreachable_database_errors_are_recognised(text: str) -> None:
    assert is_disconnect(OperationalError("SELECT 1", {}, Exception(text)))


@pytest.mark.parametrize("text", ["deadlock detected", "syntax error at or near", "no such table"])
def test_other_database_errors_are_not_disconnects(text: str) -> None:
    assert not is_disconnect(OperationalError("SELECT 1", {}, Exception(text)))


def test_run_retries_an_unreachable_database_until_it_answers(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}", reconnect_timeout=30)
    calls = []

    def work(s):
        calls.append(1)
        if len(calls) < 3:
            raise _refused()
        return "done"

    assert db.run(work) == "done" and len(calls) == 3


def test_run_gives_up_after_the_reconnect_timeout_with_a_transient_error(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}", reconnect_timeout=0.5)

    def work(s):
        raise _refused()

    with pytest.raises(DatabaseUnavailable) as caught:
        db.run(work)
    assert is_transient(caught.value) and caught.value.status == 503


def test_a_reader_on_an_unreachable_database_raises_database_unavailable() -> None:
    db = Database("postgresql://nobody@127.0.0.1:1/none", reconnect_timeout=0.1)
    with pytest.raises(DatabaseUnavailable), db.reader() as s:
        s.execute(select(1))


def test_the_local_bus_runs_a_cast_again_after_a_transient_failure() -> None:
    bus = LocalBus()
    done = threading.Event()
    calls = []

    def handler(ctx, payload):
        calls.append(payload)
        if len(calls) == 1:
            raise DatabaseUnavailable()
        done.set()

    bus.subscribe("t", {"m": handler})
    try:
        bus.cast(RequestContext.admin(), "t", "m", {"n": 1})
        assert done.wait(5)
        assert calls == [{"n": 1}, {"n": 1}]
    finally:
        bus.stop()


def test_the_local_bus_drops_a_cast_that_failed_for_good() -> None:
    bus = LocalBus()
    calls = []

    def handler(ctx, payload):
        calls.append(payload)
        raise ValueError("a bug")

    bus.subscribe("t", {"m": handler})
    try:
        bus.cast(RequestContext.admin(), "t", "m", {})
        assert _until(lambda: calls)
        assert not _until(lambda: len(calls) > 1, timeout=1.5)
    finally:
        bus.stop()


def test_a_call_whose_handler_hit_a_transient_failure_says_so() -> None:
    bus = LocalBus(default_timeout=5)

    def handler(ctx, payload):
        raise DatabaseUnavailable()

    bus.subscribe("t", {"m": handler, "bug": lambda ctx, payload: 1 / 0})
    try:
        with pytest.raises(RemoteError) as caught:
            bus.call(RequestContext.admin(), "t", "m", {})
        assert caught.value.exc_type == "DatabaseUnavailable" and is_transient(caught.value)
        with pytest.raises(RemoteError) as caught:
            bus.call(RequestContext.admin(), "t", "bug", {})
        assert not is_transient(caught.value)
    finally:
        bus.stop()


def test_a_create_whose_commit_was_acknowledged_too_late_is_not_a_500(api, cloud, member,
                                                                       monkeypatch):
    """The database restarts while acknowledging the COMMIT of a create (found by the MariaDB
    restart fault test): `run` retries, and the retry must find the rows the lost commit
    wrote instead of inserting their uuids again (an IntegrityError, answered 500)."""
    import contextlib

    flavor, image = add_flavor(cloud, name="f-late"), add_image(cloud)
    original = cloud.db.writer
    lost: list[str] = []

    @contextlib.contextmanager
    def writer():
        with original() as s:
            yield s
            wrote = [o.uuid for o in s.identity_map.values() if isinstance(o, Instance)]
        if wrote and not lost:  # committed; the acknowledgement "never arrives"
            lost.extend(wrote)
            raise _refused()

    monkeypatch.setattr(cloud.db, "writer", writer)
    r = api.post("/compute/v2.1/servers", json=server_body(flavor, image, name="late"),
                 headers=member.compute())
    monkeypatch.setattr(cloud.db, "writer", original)
    assert lost, "the create's commit was never intercepted"
    assert r.status_code == 202, r.text
    assert r.json()["server"]["id"] == lost[0]
    with cloud.db.reader() as s:
        assert s.scalar(select(func.count()).select_from(Instance)
                        .where(Instance.display_name == "late")) == 1
    wait_for_status(api, member.compute(), lost[0], "ACTIVE")
