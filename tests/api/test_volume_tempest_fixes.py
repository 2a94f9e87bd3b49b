"""Small pieces of the block-storage API that Tempest's volume tests found missing (issue 15
point 5): each test names the Tempest test it answers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cirrus.runtime import Cloud
from tests.api.volume_helpers import create_volume, url, vol, volume_cloud, wait_for


@pytest.fixture
def cloud(settings) -> Iterator[Cloud]:
    """Overrides tests/conftest.py's: the volume role alone, on the fake backend."""
    yield from volume_cloud(settings)


def _snapshot(api, member) -> dict:
    made = create_volume(api, member, 1)
    r = api.post(url(member, "/snapshots"), headers=vol(member),
                 json={"snapshot": {"volume_id": made["id"], "name": "s"}})
    assert r.status_code == 202
    return wait_for(api, member, f"/snapshots/{r.json()['snapshot']['id']}", "snapshot",
                    "available")


def test_update_snapshot_status_moves_a_creating_snapshot(api, admin, member, other_member,
                                                          reader):
    """Tempest SnapshotsActionsTest.test_update_snapshot_status."""
    snap = _snapshot(api, member)
    action = url(member, f"/snapshots/{snap['id']}/action")
    update = {"os-update_snapshot_status": {"status": "error", "progress": "80%"}}
    # only a creating or deleting snapshot may be updated
    r = api.post(action, headers=vol(member), json=update)
    assert r.status_code == 400 and "not allowed" in r.json()["badRequest"]["message"]
    assert api.post(url(admin, f"/snapshots/{snap['id']}/action"), headers=vol(admin),
                    json={"os-reset_status": {"status": "creating"}}).status_code == 202
    # to a status a creating snapshot cannot take: 400
    r = api.post(action, headers=vol(member),
                 json={"os-update_snapshot_status": {"status": "error_deleting"}})
    assert r.status_code == 400 and "error_deleting" in r.json()["badRequest"]["message"]
    # no status: 400 naming the field
    r = api.post(action, headers=vol(member),
                 json={"os-update_snapshot_status": {"progress": "5%"}})
    assert r.status_code == 400 and "status" in r.json()["badRequest"]["message"]
    # a reader may not, another project's member does not see it
    assert api.post(action, headers=vol(reader), json=update).status_code == 403
    assert api.post(url(other_member, f"/snapshots/{snap['id']}/action"),
                    headers=vol(other_member), json=update).status_code == 404
    assert api.post(action, headers=vol(member), json=update).status_code == 202
    shown = api.get(url(admin, f"/snapshots/{snap['id']}"), headers=vol(admin)).json()
    assert shown["snapshot"]["status"] == "error"
    assert shown["snapshot"]["os-extended-snapshot-attributes:progress"] == "80%"


def test_os_reserve_makes_the_volume_attaching_then_os_attach_in_use(api, member):
    """Tempest VolumesActionsTest.test_reserve_unreserve_volume: os-reserve -> 'attaching'."""
    made = create_volume(api, member, 1)
    action = url(member, f"/volumes/{made['id']}/action")
    assert api.post(action, headers=vol(member), json={"os-reserve": {}}).status_code == 202
    shown = api.get(url(member, f"/volumes/{made['id']}"), headers=vol(member)).json()
    assert shown["volume"]["status"] == "attaching"
    r = api.post(action, headers=vol(member),
                 json={"os-attach": {"host_name": "h", "mountpoint": "/dev/vdb"}})
    assert r.status_code == 202
    shown = api.get(url(member, f"/volumes/{made['id']}"), headers=vol(member)).json()
    assert shown["volume"]["status"] == "in-use"


def test_force_detach_an_errored_attached_volume(api, admin, member):
    """Tempest admin VolumesActionsTest.test_force_detach_volume."""
    made = create_volume(api, member, 1)
    action = url(member, f"/volumes/{made['id']}/action")
    r = api.post(action, headers=vol(member), json={"os-attach": {
        "instance_uuid": "4f0bd3a0-0000-4000-8000-000000000001", "mountpoint": "/dev/vdb"}})
    assert r.status_code == 202
    shown = api.get(url(member, f"/volumes/{made['id']}"), headers=vol(member)).json()
    [att] = shown["volume"]["attachments"]
    admin_action = url(admin, f"/volumes/{made['id']}/action")
    assert api.post(admin_action, headers=vol(admin),
                    json={"os-reset_status": {"status": "error"}}).status_code == 202
    force = {"os-force_detach": {"attachment_id": att["attachment_id"], "connector": None}}
    # admins only
    assert api.post(action, headers=vol(member), json=force).status_code == 403
    r = api.post(admin_action, headers=vol(admin),
                 json={"os-force_detach": {"attachment_id": "nope"}})
    assert r.status_code == 404
    r = api.post(admin_action, headers=vol(admin), json={"os-force_detach": {"attachment_id": 7}})
    assert r.status_code == 400 and "attachment_id" in r.json()["badRequest"]["message"]
    assert api.post(admin_action, headers=vol(admin), json=force).status_code == 202
    shown = api.get(url(member, f"/volumes/{made['id']}"), headers=vol(member)).json()
    assert shown["volume"]["status"] == "available" and shown["volume"]["attachments"] == []
    # Tempest's cleanup then detaches it: as Cinder, nothing to do (an attachment named: 400)
    assert api.post(action, headers=vol(member), json={"os-detach": {}}).status_code == 202
    r = api.post(action, headers=vol(member), json={"os-detach": {"attachment_id": att["attachment_id"]}})
    assert r.status_code == 400
    shown = api.get(url(member, f"/volumes/{made['id']}"), headers=vol(member)).json()
    assert shown["volume"]["status"] == "available"
