"""createImage on the fake driver: the image record, the upload of the agent's file, and the
server's task, on success and on failure."""

from __future__ import annotations

import hashlib
import time

import pytest
from sqlalchemy import update

from cirrus.agent.service import Agent
from cirrus.db.models import Instance
from cirrus.virt.driver import SpawnError
from cirrus.virt.fake import snapshot_bytes
from tests.api.servers_helpers import add_flavor, add_image, server_body, wait_for_status


@pytest.fixture
def server(api, cloud, member):
    """An ACTIVE server named `vm` of project-a."""
    r = api.post("/compute/v2.1/servers", json=server_body(add_flavor(cloud), add_image(cloud)),
                 headers=member.compute())
    assert r.status_code == 202, r.text
    return wait_for_status(api, member.compute(), r.json()["server"]["id"], "ACTIVE")


def snapshot(api, caller, sid, microversion="2.60", **body):
    body = {"name": "snap-1", **body}
    return api.post(f"/compute/v2.1/servers/{sid}/action", json={"createImage": body},
                    headers=caller.compute(microversion))


def wait_for_image(api, caller, image_id, wanted, timeout=10.0):
    deadline = time.monotonic() + timeout
    image: dict = {}
    while time.monotonic() < deadline:
        r = api.get(f"/image/v2/images/{image_id}", headers=caller.headers)
        if r.status_code == 404 and wanted is None:
            return None
        assert r.status_code == 200, r.text
        image = r.json()
        if image["status"] == wanted:
            return image
        time.sleep(0.02)
    raise AssertionError(f"image {image_id} is {image.get('status')}, wanted {wanted}")


def events_of(api, admin, sid, action):
    acts = api.get(f"/compute/v2.1/servers/{sid}/os-instance-actions",
                   headers=admin.compute()).json()["instanceActions"]
    act = next(a for a in acts if a["action"] == action)
    return api.get(f"/compute/v2.1/servers/{sid}/os-instance-actions/{act['request_id']}",
                   headers=admin.compute()).json()["instanceAction"]["events"]


def test_snapshot_of_active_server_becomes_active_image_with_the_disk(api, member, admin,
                                                                      server):
    sid = server["id"]
    r = snapshot(api, member, sid, metadata={"purpose": "backup"})
    assert r.status_code == 202, r.text
    assert "Location" not in r.headers
    image_id = r.json()["image_id"]
    image = wait_for_image(api, member, image_id, "active")
    data = api.get(f"/image/v2/images/{image_id}/file", headers=member.headers).content
    assert data == snapshot_bytes(sid, "vm")
    assert image["size"] == len(data)
    assert image["checksum"] == hashlib.md5(data).hexdigest()
    assert image["os_hash_algo"] == "sha512"
    assert image["os_hash_value"] == hashlib.sha512(data).hexdigest()
    assert (image["name"], image["owner"], image["visibility"]) == ("snap-1", member.project_id,
                                                                   "private")
    assert (image["disk_format"], image["container_format"]) == ("qcow2", "bare")
    assert image["image_type"] == "snapshot" and image["instance_uuid"] == sid
    assert image["base_image_ref"] == server["image"]["id"]
    assert image["purpose"] == "backup"
    after = wait_for_status(api, member.compute(), sid, "ACTIVE")
    assert after["OS-EXT-STS:vm_state"] == "active" and after["OS-EXT-STS:task_state"] is None
    events = events_of(api, admin, sid, "createImage")
    assert [(e["event"], e["result"]) for e in events] == [("compute_snapshot_instance",
                                                            "Success")]


def test_snapshot_of_stopped_server_leaves_it_stopped(api, member, server):
    sid = server["id"]
    action = f"/compute/v2.1/servers/{sid}/action"
    assert api.post(action, json={"os-stop": None}, headers=member.compute()).status_code == 202
    wait_for_status(api, member.compute(), sid, "SHUTOFF")
    r = snapshot(api, member, sid)
    assert r.status_code == 202, r.text
    wait_for_image(api, member, r.json()["image_id"], "active")
    after = wait_for_status(api, member.compute(), sid, "SHUTOFF")
    assert after["OS-EXT-STS:vm_state"] == "stopped"


def test_before_2_45_the_image_is_in_the_location_header(api, member, server):
    r = snapshot(api, member, server["id"], microversion="2.44")
    assert r.status_code == 202, r.text
    assert not r.content
    location = r.headers["Location"]
    assert "/image/v2/images/" in location
    wait_for_image(api, member, location.rsplit("/", 1)[1], "active")


def test_snapshot_in_error_state_is_409(api, cloud, member, server):
    sid = server["id"]
    cloud.db.run(lambda s: s.execute(update(Instance).where(Instance.uuid == sid)
                                     .values(vm_state="error")))
    r = snapshot(api, member, sid)
    assert r.status_code == 409
    assert (r.json()["conflictingRequest"]["message"]
            == f"Cannot 'createImage' instance {sid} while it is in vm_state error")


def test_snapshot_during_another_task_is_409_and_makes_no_image(api, cloud, member, server):
    sid = server["id"]
    cloud.db.run(lambda s: s.execute(update(Instance).where(Instance.uuid == sid)
                                     .values(task_state="powering-off")))
    r = snapshot(api, member, sid)
    assert r.status_code == 409
    assert "task_state powering-off" in r.json()["conflictingRequest"]["message"]
    images = api.get("/image/v2/images", headers=member.headers).json()["images"]
    assert [i for i in images if i.get("instance_uuid") == sid] == []


def test_other_projects_server_is_404(api, other_member, server):
    assert snapshot(api, other_member, server["id"]).status_code == 404


def test_a_name_is_required(api, member, server):
    r = api.post(f"/compute/v2.1/servers/{server['id']}/action",
                 json={"createImage": {"metadata": {}}}, headers=member.compute())
    assert r.status_code == 400


def test_failed_snapshot_deletes_the_image_and_records_the_error(api, cloud, member, admin,
                                                                 server, monkeypatch):
    def broken(uuid, target):
        target.write_bytes(b"half")
        raise SpawnError("disk copy failed")

    for role in cloud.roles:
        if isinstance(role, Agent):
            monkeypatch.setattr(role.driver, "snapshot", broken)
    sid = server["id"]
    r = snapshot(api, member, sid)
    assert r.status_code == 202, r.text
    wait_for_image(api, member, r.json()["image_id"], None)
    after = wait_for_status(api, member.compute(), sid, "ACTIVE")
    assert after["OS-EXT-STS:task_state"] is None
    events = events_of(api, admin, sid, "createImage")
    assert [(e["event"], e["result"]) for e in events] == [("compute_snapshot_instance", "Error")]
    assert "disk copy failed" in (events[0].get("traceback") or "")
    staging = cloud.settings.effective_image_dir / ".staging"
    assert not staging.exists() or list(staging.iterdir()) == []


def test_a_snapshot_the_agent_never_finished_is_ended_by_the_sweeper(api, cloud, member,
                                                                       monkeypatch):
    import datetime as dt

    server = _boot_for_sweep(api, cloud, member)
    real_cast = cloud.bus.cast
    monkeypatch.setattr(cloud.bus, "cast", lambda ctx, topic, method, payload: (
        None if method == "snapshot" else real_cast(ctx, topic, method, payload)))
    r = api.post(f"/compute/v2.1/servers/{server['id']}/action",
                 json={"createImage": {"name": "lost"}}, headers=member.compute())
    assert r.status_code == 202, r.text
    image_id = r.json()["image_id"]
    long_ago = dt.datetime(2000, 1, 1)
    cloud.db.run(lambda s: s.execute(update(Instance).where(Instance.uuid == server["id"])
                                     .values(task_started_at=long_ago)))
    conductor = next(x for x in cloud.roles if type(x).__name__ == "Conductor")
    assert conductor.sweep() == 1
    assert api.get(f"/image/v2/images/{image_id}", headers=member.headers).status_code == 404
    shown = wait_for_status(api, member.compute(), server["id"], "ACTIVE")
    assert shown["OS-EXT-STS:task_state"] is None


def _boot_for_sweep(api, cloud, member):
    flavor, image = add_flavor(cloud, name="f-sweep"), add_image(cloud)
    r = api.post("/compute/v2.1/servers", json=server_body(flavor, image),
                 headers=member.compute())
    return wait_for_status(api, member.compute(), r.json()["server"]["id"], "ACTIVE")
