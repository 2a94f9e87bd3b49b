"""Nova's os-volume_attachments on the fake driver and the fake volume backend (issue 15):
attach and detach through the conductor and the agent, the volume's states, the views by
microversion, who may do what, the races and failures that must leave nothing stuck, the
server's volumes_attached, the volumes in the spec a domain is rebuilt from, server delete.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import select, update

from cirrus.compute import specs
from cirrus.db.models import Instance, Volume, VolumeAttachment, utcnow
from cirrus.runtime import Cloud
from tests.api.servers_helpers import add_flavor, add_image, server_body, wait_for_status
from tests.api.volume_helpers import create_volume, url, vol, wait_for, wait_gone
from tests.conftest import ADMIN_PASSWORD, _wait_for_agents, fake_host_names

SERVERS = "/compute/v2.1/servers"


@pytest.fixture
def cloud(settings) -> Iterator[Cloud]:
    """Overrides tests/conftest.py's: compute roles and the volume role on the fake backend."""
    settings.volume_backends = {"fake": "fake"}
    c = Cloud(settings)
    c.upgrade_schema()
    c.bootstrap(ADMIN_PASSWORD)
    c.start_roles(["scheduler", "conductor", "agent", "volume"],
                  agent_hosts=fake_host_names(settings))
    _wait_for_agents(c, settings.fake.count)
    yield c
    c.stop()


def _mv(caller, version: str = "2.89") -> dict:
    return {**caller.headers, "OpenStack-API-Version": f"compute {version}"}


@pytest.fixture
def server(api, cloud, member) -> dict:
    r = api.post(SERVERS, headers=member.headers,
                 json=server_body(add_flavor(cloud), add_image(cloud)))
    assert r.status_code == 202, r.text
    return wait_for_status(api, member.headers, r.json()["server"]["id"], "ACTIVE")


@pytest.fixture
def volume(api, member) -> dict:
    return create_volume(api, member, 1, name="data")


def _agent_of(cloud, uuid):
    with cloud.db.reader() as s:
        host = s.scalar(select(Instance.host).where(Instance.uuid == uuid))
    return next(r for r in cloud.roles if type(r).__name__ == "Agent" and r.host == host)


def _attach(api, caller, server_id, volume_id, version="2.89", **extra):
    return api.post(f"{SERVERS}/{server_id}/os-volume_attachments", headers=_mv(caller, version),
                    json={"volumeAttachment": {"volumeId": volume_id, **extra}})


def _volume(api, caller, volume_id) -> dict:
    r = api.get(url(caller, f"/volumes/{volume_id}"), headers=vol(caller))
    assert r.status_code == 200, r.text
    return r.json()["volume"]


def test_attach_list_show_detach(api, cloud, member, server, volume):
    sid, vid = server["id"], volume["id"]
    r = _attach(api, member, sid, vid, tag="db", delete_on_termination=True)
    assert r.status_code == 200, r.text
    body = r.json()["volumeAttachment"]
    assert body == {"id": vid, "volumeId": vid, "serverId": sid, "device": "/dev/vdb",
                    "tag": "db", "delete_on_termination": True}
    shown = _volume(api, member, vid)
    assert shown["status"] == "in-use"
    # the VM has it, as its serial, at the device the API answered
    assert _agent_of(cloud, sid).driver.volume_targets(sid) == {vid: "vdb"}
    with cloud.db.reader() as s:
        att = s.scalar(select(VolumeAttachment).where(VolumeAttachment.volume_id == vid))
        assert (att.attach_status, att.mountpoint, att.instance_uuid) == (
            "attached", "/dev/vdb", sid)
        assert s.get(Volume, vid).attach_status == "attached"
    listed = api.get(f"{SERVERS}/{sid}/os-volume_attachments", headers=_mv(member)).json()
    [item] = listed["volumeAttachments"]
    assert item["attachment_id"] == att.id and item["bdm_uuid"] and "id" not in item
    assert (item["volumeId"], item["device"], item["tag"], item["delete_on_termination"]) == (
        vid, "/dev/vdb", "db", True)
    old = api.get(f"{SERVERS}/{sid}/os-volume_attachments/{vid}",
                  headers=_mv(member, "2.1")).json()["volumeAttachment"]
    assert old == {"id": vid, "volumeId": vid, "serverId": sid, "device": "/dev/vdb"}
    mid = api.get(f"{SERVERS}/{sid}/os-volume_attachments/{vid}",
                  headers=_mv(member, "2.70")).json()["volumeAttachment"]
    assert mid["tag"] == "db" and "delete_on_termination" not in mid
    # the server shows it (delete_on_termination from 2.3)
    shown_server = api.get(f"{SERVERS}/{sid}", headers=_mv(member, "2.3")).json()["server"]
    assert shown_server["os-extended-volumes:volumes_attached"] == [
        {"id": vid, "delete_on_termination": True}]
    old_server = api.get(f"{SERVERS}/{sid}", headers=_mv(member, "2.1")).json()["server"]
    assert old_server["os-extended-volumes:volumes_attached"] == [{"id": vid}]
    detail = api.get(f"{SERVERS}/detail", headers=_mv(member, "2.3")).json()["servers"]
    assert detail[0]["os-extended-volumes:volumes_attached"][0]["id"] == vid
    # an attached volume cannot be attached again nor deleted
    assert _attach(api, member, sid, vid).status_code == 400
    assert api.delete(url(member, f"/volumes/{vid}"), headers=vol(member)).status_code == 400

    r = api.delete(f"{SERVERS}/{sid}/os-volume_attachments/{vid}", headers=_mv(member))
    assert r.status_code == 202, r.text
    assert _volume(api, member, vid)["status"] == "available"
    assert _agent_of(cloud, sid).driver.volume_targets(sid) == {}
    assert api.get(f"{SERVERS}/{sid}/os-volume_attachments",
                   headers=_mv(member)).json() == {"volumeAttachments": []}
    assert api.get(f"{SERVERS}/{sid}/os-volume_attachments/{vid}",
                   headers=_mv(member)).status_code == 404
    assert api.delete(f"{SERVERS}/{sid}/os-volume_attachments/{vid}",
                      headers=_mv(member)).status_code == 404


def test_fields_before_their_microversion_and_bad_input_are_400(api, member, server, volume):
    sid, vid = server["id"], volume["id"]
    r = _attach(api, member, sid, vid, version="2.48", tag="x")
    assert r.status_code == 400 and "tag" in r.text
    r = _attach(api, member, sid, vid, version="2.78", delete_on_termination=True)
    assert r.status_code == 400 and "delete_on_termination" in r.text
    r = _attach(api, member, sid, "not-a-uuid")
    assert r.status_code == 400 and "volumeId" in r.text
    r = api.post(f"{SERVERS}/{sid}/os-volume_attachments", headers=_mv(member), json={})
    assert r.status_code == 400 and "volumeAttachment" in r.text
    r = api.get(f"{SERVERS}/{sid}/os-volume_attachments?limit=x", headers=_mv(member))
    assert r.status_code == 400 and "limit" in r.text
    assert _volume(api, member, vid)["status"] == "available"


def test_who_may_attach(api, cloud, member, reader, other_member, admin, server, volume):
    sid, vid = server["id"], volume["id"]
    base = f"{SERVERS}/{sid}/os-volume_attachments"
    # another project's member finds neither the server nor its attachments
    assert api.get(base, headers=_mv(other_member)).status_code == 404
    assert _attach(api, other_member, sid, vid).status_code == 404
    # another project's volume is not found for this server either
    theirs = create_volume(api, other_member, 1)
    assert _attach(api, member, sid, theirs["id"]).status_code == 404
    # a reader reads, cannot write
    assert api.get(base, headers=_mv(reader)).status_code == 200
    assert _attach(api, reader, sid, vid).status_code == 403
    assert _volume(api, member, vid)["status"] == "available"
    # the admin attaches to the member's server; the member sees it, the reader too
    assert _attach(api, admin, sid, vid).status_code == 200
    assert api.get(f"{base}/{vid}", headers=_mv(reader)).status_code == 200
    assert api.get(f"{base}/{vid}", headers=_mv(other_member)).status_code == 404
    assert api.delete(f"{base}/{vid}", headers=_mv(reader)).status_code == 403
    assert api.delete(f"{base}/{vid}", headers=_mv(other_member)).status_code == 404
    assert api.delete(f"{base}/{vid}", headers=_mv(member)).status_code == 202


def test_two_concurrent_attaches_of_one_volume_one_wins(api, cloud, member, server, volume):
    r = api.post(SERVERS, headers=member.headers,
                 json=server_body(add_flavor(cloud, name="m2"), add_image(cloud), name="vm2"))
    other = wait_for_status(api, member.headers, r.json()["server"]["id"], "ACTIVE")
    codes: list[int] = []
    barrier = threading.Barrier(2)

    def go(sid):
        barrier.wait()
        codes.append(_attach(api, member, sid, volume["id"]).status_code)

    threads = [threading.Thread(target=go, args=(sid,)) for sid in (server["id"], other["id"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200, 400]
    assert _volume(api, member, volume["id"])["status"] == "in-use"
    with cloud.db.reader() as s:
        assert len(list(s.scalars(select(VolumeAttachment).where(
            VolumeAttachment.volume_id == volume["id"],
            VolumeAttachment.deleted.is_(False))))) == 1


def test_a_failed_attach_leaves_the_volume_available(api, cloud, member, server, volume):
    # vda is the root disk: the driver refuses it, the conductor rolls back
    r = _attach(api, member, server["id"], volume["id"], device="/dev/vda")
    assert r.status_code == 409, r.text
    assert _volume(api, member, volume["id"])["status"] == "available"
    with cloud.db.reader() as s:
        assert s.get(Volume, volume["id"]).attach_status == "detached"
        assert not list(s.scalars(select(VolumeAttachment).where(
            VolumeAttachment.volume_id == volume["id"], VolumeAttachment.deleted.is_(False))))
    # and it attaches fine afterwards
    assert _attach(api, member, server["id"], volume["id"]).status_code == 200


def test_a_failed_detach_keeps_it_in_use(api, cloud, member, server, volume):
    sid, vid = server["id"], volume["id"]
    assert _attach(api, member, sid, vid).status_code == 200
    driver = _agent_of(cloud, sid).driver
    driver.stuck_volumes = {vid}
    try:
        r = api.delete(f"{SERVERS}/{sid}/os-volume_attachments/{vid}", headers=_mv(member))
        assert r.status_code == 409, r.text
    finally:
        driver.stuck_volumes = set()
    assert _volume(api, member, vid)["status"] == "in-use"
    assert driver.volume_targets(sid) == {vid: "vdb"}


def test_the_sweeper_rolls_back_a_stuck_attach(api, cloud, member, server, volume, settings):
    vid = volume["id"]
    from cirrus.context import RequestContext
    from cirrus.storage.volumes import attachments

    def reserve(s):
        return attachments.reserve(s, RequestContext.admin(), vid, server["id"]).id

    cloud.db.run(reserve)
    assert _volume(api, member, vid)["status"] == "reserved"
    conductor = next(r for r in cloud.roles if type(r).__name__ == "Conductor")
    conductor.sweep()  # not yet past its timeout
    assert _volume(api, member, vid)["status"] == "reserved"
    long_ago = utcnow() - dt.timedelta(days=1)
    cloud.db.run(lambda s: s.execute(update(Volume).where(Volume.id == vid).values(
        status_changed_at=long_ago)))
    assert conductor.sweep() >= 1
    assert _volume(api, member, vid)["status"] == "available"


def test_a_server_that_cannot_take_a_volume_is_409(api, cloud, member, server, volume):
    sid = server["id"]
    cloud.db.run(lambda s: s.execute(update(Instance).where(Instance.uuid == sid).values(
        vm_state="shelved_offloaded", host=None)))
    r = _attach(api, member, sid, volume["id"])
    assert r.status_code == 409 and "shelved_offloaded" in r.text
    assert _volume(api, member, volume["id"])["status"] == "available"


def test_the_spec_of_a_rebuilt_domain_has_its_volumes(api, cloud, member, server, volume):
    sid, vid = server["id"], volume["id"]
    assert _attach(api, member, sid, vid).status_code == 200
    with cloud.db.reader() as s:
        spec = specs.build_spec(s, s.scalar(select(Instance).where(Instance.uuid == sid)))
    [dev] = spec.volumes
    assert (dev.volume_id, dev.device_name) == (vid, "vdb")
    # a hard reboot re-creates the domain from that spec: the volume is still there
    r = api.post(f"{SERVERS}/{sid}/action", headers=member.headers,
                 json={"reboot": {"type": "HARD"}})
    assert r.status_code == 202, r.text
    wait_for_status(api, member.headers, sid, "ACTIVE")
    assert _agent_of(cloud, sid).driver.volume_targets(sid) == {vid: "vdb"}
    assert _volume(api, member, vid)["status"] == "in-use"


def test_server_delete_detaches_and_deletes_on_termination(api, cloud, member, server):
    keep = create_volume(api, member, 1, name="keep")
    drop = create_volume(api, member, 1, name="drop")
    sid = server["id"]
    assert _attach(api, member, sid, keep["id"]).status_code == 200
    assert _attach(api, member, sid, drop["id"], delete_on_termination=True).status_code == 200
    assert api.delete(f"{SERVERS}/{sid}", headers=member.headers).status_code == 204
    wait_for_status(api, member.headers, sid, "DELETED")
    deadline = time.monotonic() + 10
    while _volume(api, member, keep["id"])["status"] != "available":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    wait_gone(api, member, f"/volumes/{drop['id']}")
    assert wait_for(api, member, f"/volumes/{keep['id']}", "volume", "available")


# ---------------------------------------------------------------- Cinder's side


def test_cinder_attachments_api(api, cloud, member, reader, other_member, admin, server,
                                volume):
    vid, sid = volume["id"], server["id"]
    base = url(member, "/attachments")
    # before 3.27 there is no such resource
    assert api.get(base, headers=vol(member, "3.26")).status_code == 404
    r = api.post(base, headers=vol(member), json={"attachment": {"volume_uuid": vid,
                                                                 "instance_uuid": sid}})
    assert r.status_code == 200, r.text
    att = r.json()["attachment"]
    assert (att["status"], att["instance"], att["volume_id"]) == ("reserved", sid, vid)
    assert att["connection_info"] == {}
    assert _volume(api, member, vid)["status"] == "reserved"
    # a second attachment of a reserved volume is refused
    assert api.post(base, headers=vol(member),
                    json={"attachment": {"volume_uuid": vid}}).status_code == 400
    # the reader sees it, cannot change it; another project finds nothing
    assert api.get(f"{base}/{att['id']}", headers=vol(reader)).status_code == 200
    assert api.put(f"{base}/{att['id']}", headers=vol(reader),
                   json={"attachment": {"connector": {"host": "h"}}}).status_code == 403
    assert api.get(url(other_member, f"/attachments/{att['id']}"),
                   headers=vol(other_member)).status_code == 404
    assert api.get(url(other_member, "/attachments"),
                   headers=vol(other_member)).json() == {"attachments": []}
    # the admin sees it (and lists it with all_tenants)
    assert api.get(url(admin, f"/attachments/{att['id']}"), headers=vol(admin)).status_code == 200
    assert att["id"] in api.get(url(admin, "/attachments?all_tenants=1"),
                                headers=vol(admin)).text
    # update with the connector: the connection info of the backend, volume attaching
    r = api.put(f"{base}/{att['id']}", headers=vol(member),
                json={"attachment": {"connector": {"host": "fake-1", "initiator": "iqn"}}})
    assert r.status_code == 200, r.text
    updated = r.json()["attachment"]
    assert updated["status"] == "attaching"
    assert updated["connection_info"]["driver_volume_type"] == "fake"
    assert _volume(api, member, vid)["status"] == "attaching"
    # complete (3.44): in-use, and the volume lists it
    action = f"{base}/{att['id']}/action"
    assert api.post(action, headers=vol(member, "3.43"),
                    json={"os-complete": None}).status_code == 404
    assert api.post(action, headers=vol(member), json={"os-complete": None}).status_code == 204
    shown = _volume(api, member, vid)
    assert shown["status"] == "in-use"
    assert [(a["attachment_id"], a["server_id"]) for a in shown["attachments"]] == [
        (att["id"], sid)]
    listed = api.get(f"{base}?volume_id={vid}", headers=vol(member)).json()["attachments"]
    assert listed == [{"id": att["id"], "status": "attached", "instance": sid,
                       "volume_id": vid}]
    detail = api.get(url(member, "/attachments/detail"), headers=vol(member)).json()
    assert detail["attachments"][0]["attached_at"] is not None
    # bad input names the field
    r = api.post(base, headers=vol(member), json={"attachment": {"volume_uuid": "nope"}})
    assert r.status_code == 400 and "volume_uuid" in r.text
    # delete: the volume is available again
    r = api.delete(f"{base}/{att['id']}", headers=vol(member))
    assert r.status_code == 200 and r.json() == {"attachments": []}
    assert _volume(api, member, vid)["status"] == "available"
    assert _volume(api, member, vid)["attachments"] == []


def test_the_old_attach_actions(api, cloud, member, volume):
    vid = volume["id"]
    action = url(member, f"/volumes/{vid}/action")

    def act(name, body=None):
        return api.post(action, headers=vol(member), json={name: body})

    assert act("os-reserve").status_code == 202
    assert _volume(api, member, vid)["status"] == "attaching"  # as Cinder
    assert act("os-reserve").status_code == 400
    assert act("os-unreserve").status_code == 202
    assert _volume(api, member, vid)["status"] == "available"
    r = act("os-initialize_connection", {"connector": {"host": "h"}})
    assert r.status_code == 200 and r.json()["connection_info"]["driver_volume_type"] == "fake"
    assert act("os-initialize_connection", {}).status_code == 400
    assert act("os-attach", {"host_name": "h"}).status_code == 400  # no mountpoint
    assert act("os-attach", {"host_name": "h", "mountpoint": "/dev/vdc"}).status_code == 202
    assert _volume(api, member, vid)["status"] == "in-use"
    assert act("os-begin_detaching").status_code == 202
    assert _volume(api, member, vid)["status"] == "detaching"
    assert act("os-roll_detaching").status_code == 202
    assert _volume(api, member, vid)["status"] == "in-use"
    assert act("os-terminate_connection", {"connector": {}}).status_code == 202
    assert act("os-detach", {}).status_code == 202
    shown = _volume(api, member, vid)
    assert shown["status"] == "available" and shown["attachments"] == []


def test_online_extend_of_an_attached_volume(api, cloud, admin, member, server, volume):
    vid, sid = volume["id"], server["id"]
    assert _attach(api, member, sid, vid).status_code == 200
    action = url(member, f"/volumes/{vid}/action")
    # before 3.42 an in-use volume cannot be extended
    r = api.post(action, headers=vol(member, "3.41"), json={"os-extend": {"new_size": 2}})
    assert r.status_code == 400
    r = api.post(action, headers=vol(member, "3.42"), json={"os-extend": {"new_size": 2}})
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 10
    while (shown := _volume(api, member, vid))["size"] != 2 or shown["status"] != "in-use":
        assert time.monotonic() < deadline, shown
        time.sleep(0.02)
    # the fake backend grew it and the VM was told
    manager = next(r for r in cloud.roles if type(r).__name__ == "VolumeManager")
    assert manager.backends["fake"].volumes[vid] == 2
    assert _agent_of(cloud, sid).driver.volumes(sid)[vid]["size_gb"] == 2
    # as Nova's volume-extended event: a finished extend_volume action (Tempest waits for it)
    listed = api.get(f"{SERVERS}/{sid}/os-instance-actions", headers=member.headers).json()
    [extend] = [a for a in listed["instanceActions"] if a["action"] == "extend_volume"]
    shown = api.get(f"{SERVERS}/{sid}/os-instance-actions/{extend['request_id']}",
                    headers=_mv(admin)).json()["instanceAction"]
    [event] = shown["events"]
    assert event["event"] == "compute_extend_volume" and event["finish_time"]
    r = api.post(action, headers=vol(member, "3.42"), json={"os-extend": {"new_size": 1}})
    assert r.status_code == 400


def test_unshelve_brings_the_volumes_back(api, cloud, member, server, volume):
    sid, vid = server["id"], volume["id"]
    cloud.settings.shelved_offload_time = 0
    assert _attach(api, member, sid, vid).status_code == 200
    r = api.post(f"{SERVERS}/{sid}/action", headers=member.headers, json={"shelve": None})
    assert r.status_code == 202, r.text
    wait_for_status(api, member.headers, sid, "SHELVED_OFFLOADED")
    # offloaded: no host, so no attach or detach (409), the volume stays attached
    assert _volume(api, member, vid)["status"] == "in-use"
    assert api.delete(f"{SERVERS}/{sid}/os-volume_attachments/{vid}",
                      headers=_mv(member)).status_code == 409
    r = api.post(f"{SERVERS}/{sid}/action", headers=member.headers, json={"unshelve": None})
    assert r.status_code == 202, r.text
    wait_for_status(api, member.headers, sid, "ACTIVE")
    assert _agent_of(cloud, sid).driver.volume_targets(sid) == {vid: "vdb"}


def test_the_types_front_end_qos_becomes_the_disks_iotune(api, cloud, admin, member, server):
    r = api.post(url(admin, "/qos-specs"), headers=vol(admin), json={"qos_specs": {
        "name": "slow", "consumer": "front-end", "read_iops_sec": "100",
        "write_bytes_sec": "1048576"}})
    assert r.status_code == 200, r.text
    spec = r.json()["qos_specs"]
    r = api.post(url(admin, "/types"), headers=vol(admin),
                 json={"volume_type": {"name": "limited"}})
    assert r.status_code == 200, r.text
    vtype = r.json()["volume_type"]
    assert api.get(url(admin, f"/qos-specs/{spec['id']}/associate?vol_type_id={vtype['id']}"),
                   headers=vol(admin)).status_code == 202
    limited = create_volume(api, member, 1, volume_type="limited")
    plain = create_volume(api, member, 1)
    sid = server["id"]
    assert _attach(api, member, sid, limited["id"]).status_code == 200
    assert _attach(api, member, sid, plain["id"]).status_code == 200
    recorded = _agent_of(cloud, sid).driver.volumes(sid)
    assert recorded[limited["id"]]["qos"] == {"read_iops_sec": 100, "write_bytes_sec": 1048576}
    assert recorded[plain["id"]]["qos"] == {}
    assert recorded[plain["id"]]["target"] == "vdc"


@pytest.mark.parametrize("body", [
    None, [], {"volumeAttachment": []}, {"volumeAttachment": {"volumeId": None}},
    {"volumeAttachment": {"volumeId": 5}}, {"volumeAttachment": {"volumeId": "x", "y": 1}},
    {"volumeAttachment": {"device": 7}}, {"volumeAttachment": {"device": "bad name!"}},
    {"volumeAttachment": {"delete_on_termination": "sometimes"}},
    {"volumeAttachment": {"tag": "a/b"}},
])
def test_malformed_attach_bodies_are_400_and_reserve_nothing(api, cloud, member, server,
                                                             volume, body):
    r = api.post(f"{SERVERS}/{server['id']}/os-volume_attachments", headers=_mv(member),
                 json=body)
    assert r.status_code == 400, r.text
    assert "message" in r.json()["badRequest"]
    assert _volume(api, member, volume["id"])["status"] == "available"


@pytest.mark.parametrize("path,method,body", [
    ("/attachments", "post", {"attachment": {"volume_uuid": None}}),
    ("/attachments", "post", {"attachment": []}),
    ("/attachments", "post", {"attachment": {"volume_uuid": "{vid}", "connector": "x"}}),
    ("/attachments", "post", {"attachment": {"volume_uuid": "{vid}", "mode": "rwx"}}),
    ("/volumes/{vid}/action", "post", {"os-attach": []}),
    ("/volumes/{vid}/action", "post", {"os-attach": {"mountpoint": 5, "host_name": "h"}}),
    ("/volumes/{vid}/action", "post", {"os-initialize_connection": {"connector": []}}),
    ("/volumes/{vid}/action", "post", {"os-extend": {"new_size": "big"}}),
])
def test_malformed_cinder_attach_input_is_400(api, member, volume, path, method, body):
    import json

    vid = volume["id"]
    body = json.loads(json.dumps(body).replace("{vid}", vid))
    r = getattr(api, method)(url(member, path.replace("{vid}", vid)), headers=vol(member),
                             json=body)
    assert r.status_code == 400, r.text
    assert _volume(api, member, vid)["status"] == "available"
