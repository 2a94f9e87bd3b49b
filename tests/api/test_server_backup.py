"""Issue 13 (comp-x): the createBackup action (a backup image, then Nova's rotation)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from cirrus.db.models import Instance
from tests.api.servers_helpers import add_flavor, add_image, server_body, wait_for_status
from tests.api.test_server_snapshot import events_of, wait_for_image

ACTION = "/compute/v2.1/servers/{}/action"


@pytest.fixture
def server(api, cloud, member):
    r = api.post("/compute/v2.1/servers", json=server_body(add_flavor(cloud), add_image(cloud)),
                 headers=member.compute())
    assert r.status_code == 202, r.text
    return wait_for_status(api, member.compute(), r.json()["server"]["id"], "ACTIVE")


def backup(api, caller, sid, microversion="2.60", **body):
    body = {"name": "b", "backup_type": "daily", "rotation": 2, **body}
    return api.post(ACTION.format(sid), json={"createBackup": body},
                    headers=caller.compute(microversion))


def _backup_names(api, caller, sid, backup_type="daily"):
    r = api.get("/image/v2/images?sort_key=created_at&sort_dir=asc", headers=caller.headers)
    return [i["name"] for i in r.json()["images"]
            if i.get("instance_uuid") == sid and i.get("image_type") == "backup"
            and i.get("backup_type") == backup_type and i["status"] == "active"]


def test_backups_rotate_keeping_the_newest(api, cloud, member, admin, server):
    sid = server["id"]
    for n in (1, 2, 3):
        r = backup(api, member, sid, name=f"backup-{n}")
        assert r.status_code == 202, r.text
        image = wait_for_image(api, member, r.json()["image_id"], "active")
        assert image["image_type"] == "backup" and image["backup_type"] == "daily"
        wait_for_status(api, member.compute(), sid, "ACTIVE")
    assert _backup_names(api, member, sid) == ["backup-2", "backup-3"]
    # Another type rotates apart; rotation 0 keeps none, not even the new one.
    r = backup(api, member, sid, name="weekly-1", backup_type="weekly", rotation="1")
    wait_for_image(api, member, r.json()["image_id"], "active")
    wait_for_status(api, member.compute(), sid, "ACTIVE")
    assert _backup_names(api, member, sid, "weekly") == ["weekly-1"]
    r = backup(api, member, sid, "2.44", name="weekly-2", backup_type="weekly", rotation=0)
    assert r.status_code == 202 and "location" not in r.headers and not r.content
    wait_for_status(api, member.compute(), sid, "ACTIVE")
    assert _backup_names(api, member, sid, "weekly") == []
    assert _backup_names(api, member, sid) == ["backup-2", "backup-3"]
    assert any(e["event"] == "compute_snapshot_instance" and e["result"] == "Success"
               for e in events_of(api, admin, sid, "createBackup"))
    # No pending rotation is left behind on the server.
    with cloud.db.reader() as s:
        meta = s.scalar(select(Instance.system_metadata).where(Instance.uuid == sid))
    assert not any(k.startswith("backup_rotation:") for k in meta)


def test_before_2_45_the_backup_is_in_the_location_header(api, member, server):
    r = backup(api, member, server["id"], "2.44")
    assert r.status_code == 202, r.text
    wait_for_image(api, member, r.headers["location"].rsplit("/", 1)[1], "active")


@pytest.mark.parametrize("body,field", [
    ({"backup_type": "daily", "rotation": 1}, "name"),
    ({"name": "b", "rotation": 1}, "backup_type"),
    ({"name": "b", "backup_type": "daily"}, "rotation"),
    ({"name": "b", "backup_type": "daily", "rotation": -1}, "rotation"),
    ({"name": "b", "backup_type": "daily", "rotation": "x"}, "rotation"),
    ({"name": "b", "backup_type": "daily", "rotation": 1, "extra": 1}, "extra"),
])
def test_bad_input_is_400_and_makes_nothing(api, member, server, body, field):
    sid = server["id"]
    r = api.post(ACTION.format(sid), json={"createBackup": body}, headers=member.compute())
    assert r.status_code == 400, r.text
    assert field in r.json()["badRequest"]["message"]
    assert _backup_names(api, member, sid) == []
    after = wait_for_status(api, member.compute(), sid, "ACTIVE")
    assert after["OS-EXT-STS:task_state"] is None


def test_backup_authorisation(api, admin, reader, other_member, server):
    sid = server["id"]
    assert backup(api, reader, sid).status_code == 403
    assert backup(api, other_member, sid).status_code == 404
    r = backup(api, admin, sid)
    assert r.status_code == 202, r.text
    wait_for_image(api, admin, r.json()["image_id"], "active")
