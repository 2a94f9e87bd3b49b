"""os-volume_upload_image and revert (3.40) on the fake backend: the request and answer
shapes, the volume's and the image's states, failures that leave nothing behind, the
sweeper, who may do what, and the image cache pruned after a delete."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import update

from cirrus.db.models import Image, Volume, VolumeSnapshot, utcnow
from cirrus.runtime import Cloud
from cirrus.storage.volumes.backends.fake import FakeBackend
from cirrus.storage.volumes.manager import VolumeManager
from tests.api.volume_helpers import create_volume, url, vol, volume_cloud, wait_for

IMAGES = "/image/v2/images"


@pytest.fixture
def cloud(settings) -> Iterator[Cloud]:
    """Overrides tests/conftest.py's: the volume role alone, on the fake backend."""
    yield from volume_cloud(settings)


def _manager(cloud) -> VolumeManager:
    return next(r for r in cloud.roles if isinstance(r, VolumeManager))


def _fake(cloud) -> FakeBackend:
    backend = _manager(cloud).backends["fake"]
    assert isinstance(backend, FakeBackend)
    return backend


def _upload(api, caller, volume_id, version="3.60", **args):
    body = {"image_name": "from-volume", **args}
    return api.post(url(caller, f"/volumes/{volume_id}/action"), headers=vol(caller, version),
                    json={"os-volume_upload_image": body})


def _image(api, caller, image_id):
    return api.get(f"{IMAGES}/{image_id}", headers=caller.headers)


def _wait_image(api, caller, image_id, status="active", timeout=10.0) -> dict:
    import time

    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        r = _image(api, caller, image_id)
        assert r.status_code == 200, r.text
        body = r.json()
        if body["status"] == status:
            return body
        time.sleep(0.02)
    raise AssertionError(f"image {image_id} is {body.get('status')}, never {status}")


def _volume_from_image(api, cloud, member, admin) -> dict:
    r = api.post(IMAGES, headers=admin.headers, json={
        "name": "cirros", "disk_format": "raw", "container_format": "bare",
        "visibility": "public", "min_disk": 1, "min_ram": 64, "os_distro": "cirros",
        "hw_disk_bus": "scsi"})
    image_id = r.json()["id"]
    assert api.put(f"{IMAGES}/{image_id}/file",
                   headers={**admin.headers, "Content-Type": "application/octet-stream"},
                   content=b"x" * 4096).status_code == 204
    return create_volume(api, member, 1, imageRef=image_id)


# ---------------------------------------------------------------- upload


def test_upload_answers_cinders_shape_and_the_image_goes_active(api, cloud, member, admin):
    volume = _volume_from_image(api, cloud, member, admin)
    r = _upload(api, member, volume["id"], disk_format="qcow2", container_format="bare",
                visibility="shared", protected=False)
    assert r.status_code == 202, r.text
    body = r.json()["os-volume_upload_image"]
    assert body["id"] == volume["id"]
    assert body["status"] == "uploading"
    assert body["image_name"] == "from-volume"
    assert body["disk_format"] == "qcow2" and body["container_format"] == "bare"
    assert body["visibility"] == "shared" and body["protected"] is False
    assert body["volume_type"]["name"] == volume["volume_type"]
    assert body["size"] == 1
    image = _wait_image(api, member, body["image_id"])
    assert image["name"] == "from-volume"
    assert image["owner"] == member.project_id
    assert image["disk_format"] == "qcow2"
    # Cinder's copy of the volume's image metadata: custom keys as properties, min_* kept,
    # the source image's core attributes not.
    assert image["os_distro"] == "cirros" and image["hw_disk_bus"] == "scsi"
    assert image["min_disk"] == 1 and image["min_ram"] == 64
    assert "image_id" not in image and "image_name" not in image
    assert image["checksum"]
    after = wait_for(api, member, f"/volumes/{volume['id']}", "volume", "available")
    assert after["status"] == "available"
    assert ("copy_to_file", volume["id"]) == _fake(cloud).calls[-1][:2] or any(
        c[:2] == ("copy_to_file", volume["id"]) for c in _fake(cloud).calls)


def test_defaults_are_raw_bare_private(api, cloud, member):
    volume = create_volume(api, member, 1)
    r = _upload(api, member, volume["id"], version="3.0")
    assert r.status_code == 202, r.text
    body = r.json()["os-volume_upload_image"]
    assert (body["disk_format"], body["container_format"], body["visibility"]) == (
        "raw", "bare", "private")
    image = _wait_image(api, member, body["image_id"])
    assert image["visibility"] == "private" and image["size"] == 0


def test_an_attached_volume_needs_force_and_goes_back_in_use(api, cloud, member):
    volume = create_volume(api, member, 1)
    cloud.db.run(lambda s: s.execute(update(Volume).where(Volume.id == volume["id"]).values(
        status="in-use", attach_status="attached")))
    r = _upload(api, member, volume["id"])
    assert r.status_code == 400 and "force" in r.json()["badRequest"]["message"]
    r = _upload(api, member, volume["id"], force=True)
    assert r.status_code == 202, r.text
    _wait_image(api, member, r.json()["os-volume_upload_image"]["image_id"])
    wait_for(api, member, f"/volumes/{volume['id']}", "volume", "in-use")


def test_a_volume_in_another_state_is_refused_and_nothing_is_made(api, cloud, member):
    volume = create_volume(api, member, 1)
    cloud.db.run(lambda s: s.execute(update(Volume).where(Volume.id == volume["id"]).values(
        status="error")))
    with cloud.db.reader() as s:
        before = s.query(Image).count()
    r = _upload(api, member, volume["id"], force=True)
    assert r.status_code == 400 and "error" in r.json()["badRequest"]["message"]
    with cloud.db.reader() as s:
        assert s.query(Image).count() == before


def test_a_failed_copy_deletes_the_image_and_restores_the_volume(api, cloud, member):
    volume = create_volume(api, member, 1)
    _fake(cloud).volumes.pop(volume["id"])  # the backend has lost its data
    r = _upload(api, member, volume["id"])
    assert r.status_code == 202
    image_id = r.json()["os-volume_upload_image"]["image_id"]
    wait_for(api, member, f"/volumes/{volume['id']}", "volume", "available")
    assert _image(api, member, image_id).status_code == 404
    with cloud.db.reader() as s:
        assert "uploading to image" in s.get(Volume, volume["id"]).error
    staging = cloud.settings.effective_image_dir / ".staging"
    assert not staging.exists() or not any(staging.iterdir())


def test_the_sweeper_ends_an_upload_that_never_finishes(api, cloud, member):
    volume = create_volume(api, member, 1)
    long_ago = utcnow() - dt.timedelta(seconds=cloud.settings.volume_task_timeout + 60)
    cloud.db.run(lambda s: s.execute(update(Volume).where(Volume.id == volume["id"]).values(
        status="uploading", status_changed_at=long_ago)))
    assert _manager(cloud).sweep() >= 1
    got = wait_for(api, member, f"/volumes/{volume['id']}", "volume", "available")
    assert got["status"] == "available"
    with cloud.db.reader() as s:
        assert "timed out" in s.get(Volume, volume["id"]).error


@pytest.mark.parametrize(("args", "version", "field"), [
    ({"disk_format": "iso"}, "3.60", "disk_format"),
    ({"container_format": "ovf"}, "3.60", "container_format"),
    ({"visibility": "private"}, "3.0", "visibility"),
    ({"protected": True}, "3.0", "protected"),
    ({"visibility": "everyone"}, "3.1", "visibility"),
    ({"force": "maybe"}, "3.60", "force"),
    ({"image_name": ""}, "3.60", "image_name"),
])
def test_bad_input_names_the_field(api, cloud, member, args, version, field):
    volume = create_volume(api, member, 1)
    r = _upload(api, member, volume["id"], version=version, **args)
    assert r.status_code == 400, r.text
    assert field in r.json()["badRequest"]["message"]
    assert wait_for(api, member, f"/volumes/{volume['id']}", "volume", "available")


def test_image_name_is_required(api, member):
    volume = create_volume(api, member, 1)
    r = api.post(url(member, f"/volumes/{volume['id']}/action"), headers=vol(member),
                 json={"os-volume_upload_image": {"force": False}})
    assert r.status_code == 400 and "image_name" in r.json()["badRequest"]["message"]


def test_who_may_upload(api, cloud, member, reader, other_member, admin):
    volume = create_volume(api, member, 1)
    assert _upload(api, reader, volume["id"]).status_code == 403
    assert _upload(api, other_member, volume["id"]).status_code == 404
    # a member may not publish an image; an admin may
    r = _upload(api, member, volume["id"], visibility="public")
    assert r.status_code == 403
    r = api.post(url(member, f"/volumes/{volume['id']}/action"), headers=vol(admin),
                 json={"os-volume_upload_image": {"image_name": "by-admin",
                                                  "visibility": "public"}})
    assert r.status_code == 202, r.text
    image = _wait_image(api, admin, r.json()["os-volume_upload_image"]["image_id"])
    assert image["owner"] == admin.project_id and image["visibility"] == "public"
    wait_for(api, member, f"/volumes/{volume['id']}", "volume", "available")
    r = _upload(api, member, volume["id"])
    assert r.status_code == 202
    image = _wait_image(api, member, r.json()["os-volume_upload_image"]["image_id"])
    assert _image(api, other_member, image["id"]).status_code == 404  # private


# ---------------------------------------------------------------- revert (3.40)


def _snapshot(api, caller, volume_id) -> dict:
    r = api.post(url(caller, "/snapshots"), headers=vol(caller),
                 json={"snapshot": {"volume_id": volume_id}})
    assert r.status_code == 202, r.text
    return wait_for(api, caller, f"/snapshots/{r.json()['snapshot']['id']}", "snapshot",
                    "available")


def _revert(api, caller, volume_id, snapshot_id, version="3.40"):
    return api.post(url(caller, f"/volumes/{volume_id}/action"), headers=vol(caller, version),
                    json={"revert": {"snapshot_id": snapshot_id}})


def test_revert_to_the_latest_snapshot(api, cloud, member):
    volume = create_volume(api, member, 1)
    first = _snapshot(api, member, volume["id"])
    cloud.db.run(lambda s: s.execute(update(VolumeSnapshot).where(
        VolumeSnapshot.id == first["id"]).values(
            created_at=utcnow() - dt.timedelta(seconds=60))))
    latest = _snapshot(api, member, volume["id"])
    r = _revert(api, member, volume["id"], first["id"])
    assert r.status_code == 400 and "latest" in r.json()["badRequest"]["message"]
    assert _revert(api, member, volume["id"], latest["id"], "3.39").status_code == 404
    r = _revert(api, member, volume["id"], latest["id"])
    assert r.status_code == 202, r.text
    wait_for(api, member, f"/volumes/{volume['id']}", "volume", "available")
    wait_for(api, member, f"/snapshots/{latest['id']}", "snapshot", "available")
    assert ("revert_to_snapshot", volume["id"], latest["id"]) in _fake(cloud).calls


def test_revert_states_sizes_and_ownership(api, cloud, member, reader, other_member):
    volume = create_volume(api, member, 1)
    other = create_volume(api, member, 1)
    snap = _snapshot(api, member, volume["id"])
    r = _revert(api, member, other["id"], snap["id"])
    assert r.status_code == 400 and "does not belong" in r.json()["badRequest"]["message"]
    assert _revert(api, reader, volume["id"], snap["id"]).status_code == 403
    assert _revert(api, other_member, volume["id"], snap["id"]).status_code == 404
    r = api.post(url(member, f"/volumes/{volume['id']}/action"), headers=vol(member, "3.40"),
                 json={"revert": {}})
    assert r.status_code == 400 and "snapshot_id" in r.json()["badRequest"]["message"]
    cloud.db.run(lambda s: s.execute(update(Volume).where(Volume.id == volume["id"]).values(
        size=2)))
    r = _revert(api, member, volume["id"], snap["id"])
    assert r.status_code == 400 and "sizes must be equal" in r.json()["badRequest"]["message"]
    cloud.db.run(lambda s: s.execute(update(Volume).where(Volume.id == volume["id"]).values(
        size=1, status="in-use")))
    r = _revert(api, member, volume["id"], snap["id"])
    assert r.status_code == 400 and "must be available" in r.json()["badRequest"]["message"]


def test_a_failed_revert_leaves_the_volume_in_error_and_the_snapshot_available(
        api, cloud, member):
    volume = create_volume(api, member, 1)
    snap = _snapshot(api, member, volume["id"])
    _fake(cloud).snapshots.pop(snap["id"])
    assert _revert(api, member, volume["id"], snap["id"]).status_code == 202
    wait_for(api, member, f"/volumes/{volume['id']}", "volume", "error")
    wait_for(api, member, f"/snapshots/{snap['id']}", "snapshot", "available")


def test_a_backend_without_revert_leaves_the_volume_available(api, cloud, member,
                                                              monkeypatch):
    volume = create_volume(api, member, 1)
    snap = _snapshot(api, member, volume["id"])
    monkeypatch.delattr(FakeBackend, "revert_to_snapshot")
    assert _revert(api, member, volume["id"], snap["id"]).status_code == 202
    wait_for(api, member, f"/snapshots/{snap['id']}", "snapshot", "available")
    wait_for(api, member, f"/volumes/{volume['id']}", "volume", "available")
    with cloud.db.reader() as s:
        assert "cannot revert" in s.get(Volume, volume["id"]).error


def test_the_sweeper_ends_a_revert_that_never_finishes(api, cloud, member):
    volume = create_volume(api, member, 1)
    snap = _snapshot(api, member, volume["id"])
    long_ago = utcnow() - dt.timedelta(seconds=cloud.settings.volume_task_timeout + 60)
    cloud.db.run(lambda s: s.execute(update(Volume).where(Volume.id == volume["id"]).values(
        status="reverting", status_changed_at=long_ago)))
    cloud.db.run(lambda s: s.execute(update(VolumeSnapshot).where(
        VolumeSnapshot.id == snap["id"]).values(status="restoring",
                                                status_changed_at=long_ago)))
    assert _manager(cloud).sweep() == 2
    wait_for(api, member, f"/volumes/{volume['id']}", "volume", "error")
    wait_for(api, member, f"/snapshots/{snap['id']}", "snapshot", "available")


# ---------------------------------------------------------------- image cache


def test_a_delete_prunes_the_image_cache_keeping_the_images_still_used(api, cloud, member,
                                                                        admin):
    kept = _volume_from_image(api, cloud, member, admin)
    gone = create_volume(api, member, 1)
    assert api.delete(url(member, f"/volumes/{gone['id']}"),
                      headers=vol(member)).status_code == 202
    image_id = kept["volume_image_metadata"]["image_id"]
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        calls = [c for c in _fake(cloud).calls if c[0] == "prune_image_cache"]
        if calls:
            break
        time.sleep(0.02)
    assert calls and image_id in calls[-1][1:]


def test_a_long_upload_is_kept_alive_and_not_ended_by_the_sweeper(api, cloud, member,
                                                                  monkeypatch):
    import threading
    import time

    volume = create_volume(api, member, 1)
    cloud.settings.volume_task_timeout = 2.0  # the role marks the upload alive every 1 s
    cloud.settings.task_redrive_after = 0.5
    release, started = threading.Event(), threading.Event()
    real = FakeBackend.copy_to_file

    def slow(self, volume_id, dest, disk_format):
        started.set()
        release.wait(20)
        return real(self, volume_id, dest, disk_format)

    monkeypatch.setattr(FakeBackend, "copy_to_file", slow)
    r = _upload(api, member, volume["id"])
    assert r.status_code == 202
    try:
        assert started.wait(10)
        time.sleep(3.5)  # longer than volume_task_timeout
        assert _manager(cloud).sweep() == 0
        with cloud.db.reader() as s:
            assert s.get(Volume, volume["id"]).status == "uploading"
    finally:
        release.set()
    _wait_image(api, member, r.json()["os-volume_upload_image"]["image_id"])
    wait_for(api, member, f"/volumes/{volume['id']}", "volume", "available")


def test_an_admin_reverts_a_members_volume(api, cloud, member, admin):
    volume = create_volume(api, member, 1)
    snap = _snapshot(api, member, volume["id"])
    r = api.post(url(member, f"/volumes/{volume['id']}/action"), headers=vol(admin, "3.40"),
                 json={"revert": {"snapshot_id": snap["id"]}})
    assert r.status_code == 202, r.text
    wait_for(api, member, f"/volumes/{volume['id']}", "volume", "available")
    assert ("revert_to_snapshot", volume["id"], snap["id"]) in _fake(cloud).calls
