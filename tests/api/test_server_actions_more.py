"""Issue 13 (comp-a) server actions on the fake driver: rebuild, lock/unlock, pause/unpause,
suspend/resume, os-resetState, soft delete with restore and forceDelete, reclaim."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update
from tempest.lib.services.compute.servers_client import ServersClient

from cirrus.api.compute import microversion
from cirrus.db.models import Allocation, Instance, InstanceFault
from tests.api.servers_helpers import add_image, server_body, wait_for_status
from tests.api.tempest_schemas import ALWAYS_CHECKED, Clients, at_least, compute_microversion
from tests.api.test_bad_input_never_500 import assert_compute_error, json_values
from tests.conftest import ADMIN_PASSWORD

SERVERS = "/compute/v2.1/servers"
NET = "/network/v2.0"


def create(api, caller, flavor, image, wait="ACTIVE", **extra):
    r = api.post(SERVERS, json=server_body(flavor, image, **extra), headers=caller.compute())
    assert r.status_code == 202, r.text
    sid = r.json()["server"]["id"]
    if wait:
        wait_for_status(api, caller.compute(), sid, wait)
    return sid


def act(api, caller, sid, body, version="2.60"):
    return api.post(f"{SERVERS}/{sid}/action", json=body, headers=caller.compute(version))


def show(api, caller, sid, version="2.60"):
    r = api.get(f"{SERVERS}/{sid}", headers=caller.compute(version))
    assert r.status_code == 200, r.text
    return r.json()["server"]


def actions_of(api, caller, sid):
    r = api.get(f"{SERVERS}/{sid}/os-instance-actions", headers=caller.compute())
    assert r.status_code == 200, r.text
    return [a["action"] for a in r.json()["instanceActions"]]


def conflict(r) -> str:
    assert r.status_code == 409, r.text
    return r.json()["conflictingRequest"]["message"]


def bad_request(r) -> str:
    assert r.status_code == 400, r.text
    return r.json()["badRequest"]["message"]


def _conductor(cloud):
    return next(r for r in cloud.roles if type(r).__name__ == "Conductor")


def _agent_of(cloud, uuid):
    with cloud.db.reader() as s:
        host = s.scalar(select(Instance.host).where(Instance.uuid == uuid))
    return next(r for r in cloud.roles if type(r).__name__ == "Agent" and r.host == host)


# ---------------------------------------------------------------- pause, suspend


def test_pause_unpause_suspend_resume(api, cloud, member, admin, flavor, image):
    sid = create(api, member, flavor, image)
    assert "unpause" in conflict(act(api, member, sid, {"unpause": None}))
    assert "vm_state active" in conflict(act(api, member, sid, {"resume": None}))

    assert act(api, member, sid, {"pause": None}).status_code == 202
    server = wait_for_status(api, member.compute(), sid, "PAUSED")
    assert server["OS-EXT-STS:vm_state"] == "paused"
    assert server["OS-EXT-STS:power_state"] == 3
    assert "vm_state paused" in conflict(act(api, member, sid, {"pause": None}))
    assert "vm_state paused" in conflict(act(api, member, sid, {"suspend": None}))
    assert "vm_state paused" in conflict(act(api, member, sid, {"os-stop": None}))
    listed = api.get(f"{SERVERS}/detail?status=PAUSED", headers=member.compute()).json()
    assert [s["id"] for s in listed["servers"]] == [sid]
    assert act(api, member, sid, {"unpause": None}).status_code == 202
    assert wait_for_status(api, member.compute(), sid, "ACTIVE")["OS-EXT-STS:power_state"] == 1

    assert act(api, member, sid, {"suspend": None}).status_code == 202
    server = wait_for_status(api, member.compute(), sid, "SUSPENDED")
    assert server["OS-EXT-STS:vm_state"] == "suspended"
    assert server["OS-EXT-STS:power_state"] == 7
    assert act(api, member, sid, {"resume": None}).status_code == 202
    wait_for_status(api, member.compute(), sid, "ACTIVE")
    assert actions_of(api, member, sid) == ["resume", "suspend", "unpause", "pause", "create"]
    request_id = api.get(f"{SERVERS}/{sid}/os-instance-actions", headers=member.compute()
                         ).json()["instanceActions"][3]["request_id"]
    shown = api.get(f"{SERVERS}/{sid}/os-instance-actions/{request_id}",
                    headers=admin.compute()).json()["instanceAction"]
    assert [(e["event"], e["result"]) for e in shown["events"]] == [
        ("compute_pause_instance", "Success")]
    assert "paused" in api.post(f"{SERVERS}/{sid}/action", json={"os-getConsoleOutput": {}},
                                headers=member.compute()).json()["output"]


def test_a_paused_or_suspended_server_can_be_deleted(api, cloud, member, flavor, image):
    sid = create(api, member, flavor, image)
    act(api, member, sid, {"suspend": None})
    wait_for_status(api, member.compute(), sid, "SUSPENDED")
    assert api.delete(f"{SERVERS}/{sid}", headers=member.compute()).status_code == 204
    wait_for_status(api, member.compute(), sid, "DELETED")
    with cloud.db.reader() as s:
        assert s.scalar(select(func.count()).select_from(Allocation)) == 0


# ---------------------------------------------------------------- lock


def test_lock_refuses_the_owner_but_not_admins(api, member, admin, flavor, image):
    sid = create(api, member, flavor, image)
    assert show(api, member, sid)["locked"] is False
    assert "locked" not in show(api, member, sid, "2.8")
    assert act(api, member, sid, {"lock": None}).status_code == 202
    assert act(api, member, sid, {"lock": None}).status_code == 202  # idempotent
    assert show(api, member, sid)["locked"] is True
    for body in ({"os-stop": None}, {"pause": None}, {"suspend": None},
                 {"rebuild": {"imageRef": image}}, {"reboot": {"type": "SOFT"}}):
        assert "is locked" in conflict(act(api, member, sid, body))
    assert "is locked" in conflict(api.delete(f"{SERVERS}/{sid}", headers=member.compute()))
    assert act(api, admin, sid, {"pause": None}).status_code == 202  # admins are not held
    wait_for_status(api, member.compute(), sid, "PAUSED")
    assert act(api, member, sid, {"unlock": None}).status_code == 202
    assert show(api, member, sid)["locked"] is False
    assert act(api, member, sid, {"unpause": None}).status_code == 202
    wait_for_status(api, member.compute(), sid, "ACTIVE")

    # What an admin locked, only an admin unlocks.
    assert act(api, admin, sid, {"lock": None}).status_code == 202
    r = act(api, member, sid, {"unlock": None})
    assert r.status_code == 403, r.text
    assert show(api, member, sid)["locked"] is True
    assert act(api, admin, sid, {"unlock": None}).status_code == 202
    assert actions_of(api, member, sid)[:3] == ["unlock", "lock", "unpause"]


def test_lock_bad_input(api, member, flavor, image):
    sid = create(api, member, flavor, image)
    assert "lock" in bad_request(act(api, member, sid, {"lock": {"reason": "x"}}))
    # locked_reason exists from 2.73 only
    assert "locked_reason" in bad_request(
        act(api, member, sid, {"lock": {"locked_reason": "maintenance"}}))
    assert "locked_reason" in bad_request(act(api, member, sid, {"lock": {"locked_reason": 5}}))
    assert "unlock" in bad_request(act(api, member, sid, {"unlock": 3}))
    assert show(api, member, sid)["locked"] is False


@pytest.mark.skipif(microversion.MAX_VERSION < (2, 73), reason="needs microversion 2.73")
def test_locked_reason_from_2_73(api, member, flavor, image):
    sid = create(api, member, flavor, image)
    assert show(api, member, sid, "2.73")["locked_reason"] is None
    r = act(api, member, sid, {"lock": {"locked_reason": "maintenance"}}, version="2.73")
    assert r.status_code == 202, r.text
    server = show(api, member, sid, "2.73")
    assert server["locked"] is True and server["locked_reason"] == "maintenance"
    assert "locked_reason" not in show(api, member, sid, "2.72")
    act(api, member, sid, {"unlock": None}, version="2.73")
    assert show(api, member, sid, "2.73")["locked_reason"] is None


# ---------------------------------------------------------------- reset-state


def test_reset_state_is_for_admins(api, cloud, member, reader, other_member, admin, flavor,
                                   image):
    sid = create(api, member, flavor, image)
    body = {"os-resetState": {"state": "error"}}
    assert act(api, member, sid, body).status_code == 403
    assert act(api, reader, sid, body).status_code == 403
    assert act(api, other_member, sid, body).status_code == 403
    assert show(api, member, sid)["status"] == "ACTIVE"
    assert act(api, admin, sid, body).status_code == 202
    assert show(api, member, sid)["status"] == "ERROR"
    # from a task: the task is cleared too
    cloud.db.run(lambda s: s.execute(update(Instance).where(Instance.uuid == sid)
                                     .values(vm_state="active", task_state="pausing")))
    assert act(api, admin, sid, {"os-resetState": {"state": "active"}}).status_code == 202
    server = show(api, admin, sid)
    assert server["status"] == "ACTIVE" and server["OS-EXT-STS:task_state"] is None
    assert actions_of(api, member, sid)[:2] == ["resetState", "resetState"]
    for bad in ({"os-resetState": {"state": "paused"}}, {"os-resetState": {}},
                {"os-resetState": {"state": "error", "x": 1}}):
        assert "state" in bad_request(act(api, admin, sid, bad)) or "x" in bad_request(
            act(api, admin, sid, bad))
    assert show(api, admin, sid)["status"] == "ACTIVE"
    r = act(api, admin, "00000000-0000-0000-0000-000000000000", body)
    assert r.status_code == 404


# ---------------------------------------------------------------- rebuild


def _network(api, caller):
    r = api.post(f"{NET}/networks", json={"network": {"name": "net"}}, headers=caller.headers)
    assert r.status_code == 201, r.text
    net = r.json()["network"]
    r = api.post(f"{NET}/subnets", json={"subnet": {"network_id": net["id"], "ip_version": 4,
                                                    "cidr": "10.30.0.0/24"}},
                 headers=caller.headers)
    assert r.status_code == 201, r.text
    return net


def test_rebuild_gives_a_new_disk_and_keeps_ports_and_addresses(api, cloud, member, admin,
                                                                 flavor, image, spawned):
    net = _network(api, member)
    body = server_body(flavor, image, name="before", metadata={"old": "1"})
    body["server"]["networks"] = [{"uuid": net["id"]}]
    r = api.post(SERVERS, json=body, headers=member.compute())
    sid = r.json()["server"]["id"]
    before = wait_for_status(api, member.compute(), sid, "ACTIVE")
    ports = api.get(f"{NET}/ports?device_id={sid}", headers=member.headers).json()["ports"]
    new_image = add_image(cloud)

    r = act(api, member, sid, {"rebuild": {"imageRef": new_image, "name": "after",
                                           "metadata": {"new": "2"},
                                           "adminPass": "s3cret-Pass"}})
    assert r.status_code == 202, r.text
    shown = r.json()["server"]
    assert shown["adminPass"] == "s3cret-Pass"
    assert shown["image"]["id"] == new_image and shown["name"] == "after"
    assert "OS-EXT-STS:vm_state" not in shown  # before 2.75: the basic view
    server = wait_for_status(api, member.compute(), sid, "ACTIVE")
    assert server["image"]["id"] == new_image
    assert server["name"] == "after" and server["metadata"] == {"new": "2"}
    assert server["addresses"] == before["addresses"]
    assert api.get(f"{NET}/ports?device_id={sid}", headers=member.headers).json()["ports"] == ports
    spec = spawned[sid]  # the spec the driver was built again from
    assert spec.image_ref == new_image
    assert spec.config_drive.display_name == "after" and spec.metadata == {"new": "2"}
    assert [n.port_id for n in spec.nics] == [p["id"] for p in ports]
    agent = _agent_of(cloud, sid)
    assert "config drive: admin password set" in agent.driver.console_output(sid)
    with cloud.db.reader() as s:  # the sealed password is gone once the VM has it
        assert "build_secrets" not in (s.scalar(select(Instance.request_spec)
                                                .where(Instance.uuid == sid)) or {})

    assert actions_of(api, member, sid) == ["rebuild", "create"]
    request_id = api.get(f"{SERVERS}/{sid}/os-instance-actions", headers=member.compute()
                         ).json()["instanceActions"][0]["request_id"]
    events = api.get(f"{SERVERS}/{sid}/os-instance-actions/{request_id}",
                     headers=admin.compute()).json()["instanceAction"]["events"]
    assert [(e["event"], e["result"]) for e in events] == [("compute_rebuild_instance",
                                                            "Success")]


def test_rebuild_of_a_stopped_server_leaves_it_stopped(api, member, flavor, image):
    sid = create(api, member, flavor, image)
    act(api, member, sid, {"os-stop": None})
    wait_for_status(api, member.compute(), sid, "SHUTOFF")
    r = act(api, member, sid, {"rebuild": {"imageRef": image}})
    assert r.status_code == 202, r.text
    assert r.json()["server"]["adminPass"]  # made up when not given
    server = wait_for_status(api, member.compute(), sid, "SHUTOFF")
    assert server["OS-EXT-STS:power_state"] == 4


def test_a_failed_rebuild_ends_in_error_with_a_fault(api, cloud, member, flavor, image):
    sid = create(api, member, flavor, image)
    agent = _agent_of(cloud, sid)
    agent.driver.options.failure_rate = 1.0
    try:
        assert act(api, member, sid, {"rebuild": {"imageRef": image}}).status_code == 202
        server = wait_for_status(api, member.compute(), sid, "ERROR")
    finally:
        agent.driver.options.failure_rate = 0.0
    assert "Rebuild of instance" in server["fault"]["message"]
    with cloud.db.reader() as s:
        assert s.scalar(select(func.count()).select_from(InstanceFault)) == 1
    # a server in error may be rebuilt
    assert act(api, member, sid, {"rebuild": {"imageRef": image}}).status_code == 202
    wait_for_status(api, member.compute(), sid, "ACTIVE")


def test_rebuild_refusals(api, cloud, member, flavor, image):
    sid = create(api, member, flavor, image, metadata={"k": "v"})
    for body, field in (({"rebuild": {}}, "imageRef"),
                        ({"rebuild": {"imageRef": image, "name": ""}}, "rebuild/name"),
                        ({"rebuild": {"imageRef": image, "metadata": {"a": 1}}}, "metadata"),
                        ({"rebuild": {"imageRef": image, "key_name": "k"}}, "key_name"),
                        ({"rebuild": {"imageRef": image, "bogus": 1}}, "bogus"),
                        ({"rebuild": {"imageRef": "no-such-image"}}, "no-such-image"),
                        ({"rebuild": {"imageRef": image, "personality": [{"path": "/a"}]}},
                         "contents")):
        assert field in bad_request(act(api, member, sid, body)), body
    queued = add_image(cloud, status="queued")
    assert "not active" in bad_request(act(api, member, sid, {"rebuild": {"imageRef": queued}}))
    server = show(api, member, sid)
    assert server["status"] == "ACTIVE" and server["metadata"] == {"k": "v"}
    assert server["image"]["id"] == image
    act(api, member, sid, {"pause": None})
    wait_for_status(api, member.compute(), sid, "PAUSED")
    assert "vm_state paused" in conflict(act(api, member, sid, {"rebuild": {"imageRef": image}}))
    assert actions_of(api, member, sid) == ["pause", "create"]


def test_rebuild_user_data_from_2_57(api, cloud, member, flavor, image, spawned):
    sid = create(api, member, flavor, image)
    r = act(api, member, sid, {"rebuild": {"imageRef": image, "user_data": "aGVsbG8="}},
            version="2.57")
    assert r.status_code == 202, r.text
    wait_for_status(api, member.compute(), sid, "ACTIVE")
    assert spawned[sid].user_data == "aGVsbG8="
    assert "user_data" in bad_request(act(api, member, sid, {"rebuild": {
        "imageRef": image, "user_data": "not base64!"}}, version="2.57"))
    assert "personality" in bad_request(act(api, member, sid, {"rebuild": {
        "imageRef": image, "personality": []}}, version="2.57"))


# ---------------------------------------------------------------- soft delete


def test_soft_delete_restore_force_delete_and_reclaim(api, cloud, member, flavor, image):
    cloud.settings.reclaim_instance_interval = 3600
    sid = create(api, member, flavor, image)
    assert "forceDelete" in conflict(act(api, member, sid, {"forceDelete": None}))
    assert "restore" in conflict(act(api, member, sid, {"restore": None}))

    assert api.delete(f"{SERVERS}/{sid}", headers=member.compute()).status_code == 204
    server = wait_for_status(api, member.compute(), sid, "SOFT_DELETED")
    assert server["OS-EXT-STS:vm_state"] == "soft-delete"
    assert server["OS-EXT-STS:power_state"] == 4
    with cloud.db.reader() as s:  # resources still held
        assert s.scalar(select(func.count()).select_from(Allocation)) == 1
    assert "vm_state soft-delete" in conflict(act(api, member, sid, {"os-start": None}))
    assert act(api, member, sid, {"restore": None}).status_code == 202
    assert wait_for_status(api, member.compute(), sid, "ACTIVE")["OS-EXT-STS:power_state"] == 1

    api.delete(f"{SERVERS}/{sid}", headers=member.compute())
    wait_for_status(api, member.compute(), sid, "SOFT_DELETED")
    assert act(api, member, sid, {"forceDelete": None}).status_code == 202
    wait_for_status(api, member.compute(), sid, "DELETED")
    assert actions_of(api, member, sid) == ["forceDelete", "delete", "restore", "delete",
                                            "create"]

    # the conductor reclaims what was soft-deleted longer than the interval
    other = create(api, member, flavor, image)
    api.delete(f"{SERVERS}/{other}", headers=member.compute())
    wait_for_status(api, member.compute(), other, "SOFT_DELETED")
    sweeper = _conductor(cloud).sweeper
    assert sweeper.reclaim(_ctx()) == []  # not old enough
    old = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(seconds=3700)
    cloud.db.run(lambda s: s.execute(update(Instance).where(Instance.uuid == other)
                                     .values(deleted_at=old)))
    assert sweeper.reclaim(_ctx()) == [other]
    wait_for_status(api, member.compute(), other, "DELETED")
    with cloud.db.reader() as s:
        assert s.scalar(select(func.count()).select_from(Allocation)) == 0


def test_without_the_interval_delete_is_immediate(api, cloud, member, flavor, image):
    sid = create(api, member, flavor, image)
    assert api.delete(f"{SERVERS}/{sid}", headers=member.compute()).status_code == 204
    wait_for_status(api, member.compute(), sid, "DELETED")


def _ctx():
    from cirrus.context import RequestContext

    return RequestContext.admin()


# ---------------------------------------------------------------- authorisation


ACTIONS = [
    ({"pause": None}, "PAUSED"),
    ({"suspend": None}, "SUSPENDED"),
    ({"lock": None}, None),
    ({"rebuild": {"imageRef": "IMAGE"}}, "ACTIVE"),
]


@pytest.mark.parametrize("body, ends", ACTIONS, ids=lambda v: next(iter(v)) if isinstance(
    v, dict) else str(v))
def test_who_may_act(api, member, reader, other_member, admin, flavor, image, body, ends):
    if "rebuild" in body:
        body = {"rebuild": {"imageRef": image}}
    sid = create(api, member, flavor, image)
    assert act(api, reader, sid, body).status_code == 403
    assert act(api, other_member, sid, body).status_code == 404
    assert show(api, member, sid)["status"] == "ACTIVE"
    assert actions_of(api, member, sid) == ["create"]
    assert act(api, member, sid, body).status_code == 202
    if ends:
        wait_for_status(api, member.compute(), sid, ends)
    # an admin may act on anyone's server
    sid2 = create(api, member, flavor, image)
    assert act(api, admin, sid2, body).status_code == 202
    if ends:
        wait_for_status(api, member.compute(), sid2, ends)


@pytest.mark.parametrize("name", ["unpause", "resume", "unlock", "restore", "forceDelete"])
def test_who_may_undo(api, member, reader, other_member, name, flavor, image):
    sid = create(api, member, flavor, image)
    assert act(api, reader, sid, {name: None}).status_code == 403
    assert act(api, other_member, sid, {name: None}).status_code == 404
    assert name in bad_request(act(api, member, sid, {name: "x"}))


# ---------------------------------------------------------------- Tempest's own clients


@pytest.mark.parametrize("version", ALWAYS_CHECKED)
def test_actions_match_tempest_schemas(api, cloud, admin, member, flavor, image, version):
    """Tempest's ServersClient sends each action as Tempest does and checks the answer
    against its schema for `version` (rebuild's body: rebuild_server_with_admin_pass)."""
    as_member = Clients(api, "alice", "pw-alice", "project-a")
    as_admin = Clients(api, "admin", ADMIN_PASSWORD, "admin")
    cloud.settings.reclaim_instance_interval = 3600
    with compute_microversion(version):
        servers = as_member.compute(ServersClient)
        args = {"name": "vm", "flavorRef": flavor, "imageRef": image}
        if at_least(version, "2.37"):
            args["networks"] = "none"
        sid = servers.create_server(**args)["server"]["id"]
        wait_for_status(api, admin.compute(), sid, "ACTIVE")
        rebuilt = servers.rebuild_server(sid, image, name="rebuilt", adminPass="pw-1")
        assert rebuilt["server"]["adminPass"] == "pw-1"
        wait_for_status(api, admin.compute(), sid, "ACTIVE")
        servers.lock_server(sid)
        assert servers.show_server(sid)["server"].get("locked", True) is True
        servers.unlock_server(sid)
        servers.pause_server(sid)
        wait_for_status(api, admin.compute(), sid, "PAUSED")
        servers.unpause_server(sid)
        wait_for_status(api, admin.compute(), sid, "ACTIVE")
        servers.suspend_server(sid)
        wait_for_status(api, admin.compute(), sid, "SUSPENDED")
        servers.resume_server(sid)
        wait_for_status(api, admin.compute(), sid, "ACTIVE")
        admin_servers = as_admin.compute(ServersClient)
        admin_servers.reset_state(sid, state="error")
        assert servers.show_server(sid)["server"]["status"] == "ERROR"
        admin_servers.reset_state(sid, state="active")
        servers.delete_server(sid)
        wait_for_status(api, admin.compute(), sid, "SOFT_DELETED")
        servers.restore_soft_deleted_server(sid)
        wait_for_status(api, admin.compute(), sid, "ACTIVE")
        servers.delete_server(sid)
        wait_for_status(api, admin.compute(), sid, "SOFT_DELETED")
        servers.force_delete_server(sid)
        wait_for_status(api, admin.compute(), sid, "DELETED")


def test_a_paused_or_suspended_server_can_be_snapshotted(api, member, flavor, image):
    """Nova takes createImage from paused and suspended servers too; they stay so."""
    for pause, status in (("pause", "PAUSED"), ("suspend", "SUSPENDED")):
        sid = create(api, member, flavor, image)
        act(api, member, sid, {pause: None})
        wait_for_status(api, member.compute(), sid, status)
        r = act(api, member, sid, {"createImage": {"name": f"snap-{pause}"}})
        assert r.status_code == 202, r.text
        image_id = r.json()["image_id"]
        wait_for_status(api, member.compute(), sid, status)
        shown = api.get(f"/image/v2/images/{image_id}", headers=member.headers).json()
        assert shown["status"] == "active", shown


# ---------------------------------------------------------------- random bodies

_FUZZED: dict[int, str] = {}
_NO_ARGS = ("pause", "unpause", "suspend", "resume", "unlock", "restore", "forceDelete")


def _well_formed(action: dict) -> bool:
    if len(action) != 1:
        return False
    (name, value), = action.items()
    if _out_of_range(value):  # the edge refuses numbers past 64 bits before any action
        return False
    if name in _NO_ARGS:
        return value is None or isinstance(value, dict)
    if name == "lock":  # locked_reason only from 2.73; these requests are 2.60
        return value is None or value == {}
    if name == "os-resetState":
        return isinstance(value, dict) and value in ({"state": "active"}, {"state": "error"})
    return False


def _out_of_range(value: object) -> bool:
    if isinstance(value, dict):
        return any(_out_of_range(v) for v in value.values())
    if isinstance(value, list):
        return any(_out_of_range(v) for v in value)
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and not -(2**63) <= value <= 2**63 - 1)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(action=st.dictionaries(st.sampled_from([*_NO_ARGS, "lock", "os-resetState", "rebuild"]),
                              json_values, min_size=0, max_size=2))
def test_random_action_bodies_are_400_unless_well_formed(api, cloud, admin, action):
    sid = _FUZZED.get(id(cloud))
    if sid is None:
        from tests.api.servers_helpers import add_flavor
        sid = _FUZZED[id(cloud)] = create(api, admin, add_flavor(cloud, name="fuzz-a"),
                                          add_image(cloud), wait=None)
    r = act(api, admin, sid, action)
    if not _well_formed(action):
        assert_compute_error(r, 400, action)
    elif r.status_code == 409:  # the server's state decides
        assert_compute_error(r, 409, action)
    else:
        assert r.status_code == 202, (action, r.status_code, r.text)


def test_a_stuck_rebuild_ends_in_error_and_a_stuck_pause_is_cleared(api, cloud, member,
                                                                    flavor, image):
    rebuilding = create(api, member, flavor, image)
    pausing = create(api, member, flavor, image)
    old = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(hours=2)
    cloud.db.run(lambda s: (
        s.execute(update(Instance).where(Instance.uuid == rebuilding)
                  .values(task_state="rebuild_spawning", task_started_at=old)),
        s.execute(update(Instance).where(Instance.uuid == pausing)
                  .values(task_state="pausing", task_started_at=old))))
    assert _conductor(cloud).sweep() == 2
    server = show(api, member, rebuilding)
    assert server["status"] == "ERROR" and "timed out" in server["fault"]["message"]
    server = show(api, member, pausing)
    assert server["status"] == "ACTIVE" and server["OS-EXT-STS:task_state"] is None
