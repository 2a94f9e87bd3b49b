"""Block device mapping v2 on server create (issue 15): boot from volume, on the fake driver
and the fake volume backend. Each source type, Nova's validation errors, the failure paths
(nothing stuck), who may use which volume, delete_on_termination, the scheduler's claim."""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from cirrus.compute import specs
from cirrus.db.models import Instance, Volume, VolumeSnapshot, utcnow
from cirrus.runtime import Cloud
from tests.api.servers_helpers import add_flavor, add_image, wait_for_status
from tests.api.volume_helpers import create_volume, url, vol, wait_for, wait_gone
from tests.conftest import ADMIN_PASSWORD, _wait_for_agents, fake_host_names

SERVERS = "/compute/v2.1/servers"


@pytest.fixture
def cloud(settings) -> Iterator[Cloud]:
    settings.volume_backends = {"fake": "fake"}
    settings.boot_volume_timeout = 10.0
    c = Cloud(settings)
    c.upgrade_schema()
    c.bootstrap(ADMIN_PASSWORD)
    c.start_roles(["scheduler", "conductor", "agent", "volume"],
                  agent_hosts=fake_host_names(settings))
    _wait_for_agents(c, settings.fake.count)
    yield c
    c.stop()


def _h(caller, version: str = "2.89") -> dict:
    return {**caller.headers, "OpenStack-API-Version": f"compute {version}"}


def _create(api, caller, flavor, bdms, version="2.89", image_ref="", **extra):
    body = {"server": {"name": "bfv", "flavorRef": flavor, "imageRef": image_ref,
                       "networks": "none", "block_device_mapping_v2": bdms, **extra}}
    if image_ref is None:
        del body["server"]["imageRef"]
    return api.post(SERVERS, headers=_h(caller, version), json=body)


def _root(uuid, source="volume", **extra) -> dict:
    return {"uuid": uuid, "source_type": source, "destination_type": "volume",
            "boot_index": 0, **extra}


def bootable_volume(api, caller, size: int, **extra) -> dict:
    """A volume marked bootable (os-set_bootable): Nova boots only from one."""
    volume = create_volume(api, caller, size, **extra)
    r = api.post(url(caller, f"/volumes/{volume['id']}/action"), headers=vol(caller),
                 json={"os-set_bootable": {"bootable": True}})
    assert r.status_code == 200, r.text
    return volume


def _volume(api, caller, volume_id) -> dict:
    r = api.get(url(caller, f"/volumes/{volume_id}"), headers=vol(caller))
    assert r.status_code == 200, r.text
    return r.json()["volume"]


def _spec(cloud, uuid):
    with cloud.db.reader() as s:
        return specs.build_spec(s, s.scalar(select(Instance).where(Instance.uuid == uuid)))


def test_boot_from_an_existing_volume_and_delete_keeps_it(api, cloud, member):
    flavor = add_flavor(cloud, disk=20)
    volume = bootable_volume(api, member, 1, name="root")
    r = _create(api, member, flavor, [_root(volume["id"])])
    assert r.status_code == 202, r.text
    sid = r.json()["server"]["id"]
    server = wait_for_status(api, _h(member), sid, "ACTIVE")
    assert server["image"] == ""
    assert server["os-extended-volumes:volumes_attached"] == [
        {"id": volume["id"], "delete_on_termination": False}]
    shown = _volume(api, member, volume["id"])
    assert shown["status"] == "in-use"
    assert shown["attachments"][0]["server_id"] == sid
    assert shown["attachments"][0]["device"] == "/dev/vda"
    spec = _spec(cloud, sid)
    assert spec.block_devices == []  # no local root disk
    assert spec.boot_volume() is not None and spec.boot_volume().volume_id == volume["id"]
    with cloud.db.reader() as s:  # the scheduler claimed no local disk (as Nova: 0 GB)
        assert s.scalar(select(Instance.root_gb).where(Instance.uuid == sid)) == 0
    assert api.delete(f"{SERVERS}/{sid}", headers=member.headers).status_code == 204
    wait_for_status(api, member.headers, sid, "DELETED")
    wait_for(api, member, f"/volumes/{volume['id']}", "volume", "available")


def test_boot_from_image_to_volume_is_deleted_on_termination(api, cloud, member):
    flavor, image = add_flavor(cloud), add_image(cloud)
    r = _create(api, member, flavor, [_root(image, "image", volume_size=2,
                                            delete_on_termination=True, tag="root")])
    assert r.status_code == 202, r.text
    sid = r.json()["server"]["id"]
    server = wait_for_status(api, _h(member), sid, "ACTIVE")
    [attached] = server["os-extended-volumes:volumes_attached"]
    assert attached["delete_on_termination"] is True
    made = _volume(api, member, attached["id"])
    assert made["size"] == 2 and made["bootable"] == "true"
    assert made["volume_image_metadata"]["image_id"] == image
    spec = _spec(cloud, sid)
    assert spec.boot_volume().volume_id == made["id"]
    # the image says how it boots (kernel, command line); no local root disk from it
    assert spec.image is not None and spec.image.id == image and spec.block_devices == []
    assert api.delete(f"{SERVERS}/{sid}", headers=member.headers).status_code == 204
    wait_for_status(api, member.headers, sid, "DELETED")
    wait_gone(api, member, f"/volumes/{made['id']}")


def test_snapshot_and_blank_volumes_with_an_image_root(api, cloud, member):
    flavor, image = add_flavor(cloud), add_image(cloud)
    source = create_volume(api, member, 1)
    r = api.post(url(member, "/snapshots"), headers=vol(member),
                 json={"snapshot": {"volume_id": source["id"]}})
    assert r.status_code == 202, r.text
    snap = wait_for(api, member, f"/snapshots/{r.json()['snapshot']['id']}", "snapshot",
                    "available")
    r = _create(api, member, flavor, [
        {"source_type": "image", "uuid": image, "destination_type": "local", "boot_index": 0},
        {"source_type": "snapshot", "uuid": snap["id"], "destination_type": "volume",
         "boot_index": 1, "delete_on_termination": True},
        {"source_type": "blank", "destination_type": "volume", "volume_size": 3,
         "boot_index": -1}], image_ref=image)
    assert r.status_code == 202, r.text
    sid = r.json()["server"]["id"]
    server = wait_for_status(api, _h(member), sid, "ACTIVE")
    assert server["image"]["id"] == image
    ids = [v["id"] for v in server["os-extended-volumes:volumes_attached"]]
    assert len(ids) == 2
    made = [_volume(api, member, i) for i in ids]
    assert made[0]["snapshot_id"] == snap["id"] and made[1]["size"] == 3
    spec = _spec(cloud, sid)
    assert spec.boot_volume() is None and len(spec.block_devices) == 1
    assert {v.volume_id for v in spec.volumes} == set(ids)
    assert api.delete(f"{SERVERS}/{sid}", headers=member.headers).status_code == 204
    wait_for_status(api, member.headers, sid, "DELETED")
    wait_gone(api, member, f"/volumes/{ids[0]}")  # delete_on_termination
    wait_for(api, member, f"/volumes/{ids[1]}", "volume", "available")  # kept


def test_legacy_block_device_mapping(api, cloud, member):
    flavor = add_flavor(cloud)
    volume = bootable_volume(api, member, 1)
    r = api.post(SERVERS, headers=_h(member), json={"server": {
        "name": "legacy", "flavorRef": flavor, "networks": "none",
        "block_device_mapping": [{"volume_id": volume["id"], "device_name": "vda"}]}})
    assert r.status_code == 202, r.text
    server = wait_for_status(api, _h(member), r.json()["server"]["id"], "ACTIVE")
    assert [v["id"] for v in server["os-extended-volumes:volumes_attached"]] == [volume["id"]]


@pytest.mark.parametrize(("bdm", "version", "needle"), [
    ({"source_type": "image", "destination_type": "volume", "boot_index": 0, "uuid": "IMG"},
     "2.89", "non-zero size"),
    ({"source_type": "blank", "destination_type": "volume", "boot_index": 0}, "2.89",
     "non-zero size"),
    ({"source_type": "volume", "destination_type": "volume", "boot_index": 0}, "2.89",
     "Missing device UUID"),
    ({"source_type": "volume", "destination_type": "volume", "boot_index": 0,
      "uuid": str(uuidlib.uuid4())}, "2.89", "failed to get volume"),
    ({"source_type": "snapshot", "destination_type": "volume", "boot_index": 0,
      "uuid": str(uuidlib.uuid4())}, "2.89", "failed to get snapshot"),
    ({"source_type": "blank", "destination_type": "local", "boot_index": -1}, "2.89",
     "Blank local disks"),
    ({"source_type": "volume", "destination_type": "volume", "boot_index": 1,
      "uuid": str(uuidlib.uuid4())}, "2.89", "Boot sequence"),
    ({"source_type": "image", "destination_type": "volume", "boot_index": 0, "uuid": "IMG",
      "volume_size": 1, "volume_type": "x"}, "2.66", "volume_type"),
    ({"source_type": "image", "destination_type": "volume", "boot_index": 0, "uuid": "IMG",
      "volume_size": 1, "tag": "x"}, "2.41", "tag"),
    ({"source_type": "image", "destination_type": "volume", "boot_index": 0, "uuid": "IMG",
      "volume_size": 1, "volume_type": "nope"}, "2.67", "Volume type nope"),
    ({"source_type": "bogus", "destination_type": "volume", "boot_index": 0}, "2.89",
     "source_type"),
])
def test_invalid_mappings_are_400_naming_the_field(api, cloud, member, bdm, version, needle):
    flavor, image = add_flavor(cloud), add_image(cloud)
    if bdm.get("uuid") == "IMG":
        bdm = {**bdm, "uuid": image}
    r = _create(api, member, flavor, [bdm], version=version)
    assert r.status_code == 400, r.text
    assert needle in r.json()["badRequest"]["message"]
    with cloud.db.reader() as s:
        assert s.scalar(select(Instance.uuid)) is None  # nothing recorded


def test_no_image_and_no_mapping_is_missing_imageref(api, cloud, member):
    r = _create(api, member, add_flavor(cloud), [], image_ref=None)
    assert r.status_code == 400 and "imageRef" in r.json()["badRequest"]["message"]


def test_another_projects_volume_or_one_in_use_is_400(api, cloud, member, other_member):
    flavor = add_flavor(cloud)
    theirs = create_volume(api, other_member, 1)
    r = _create(api, member, flavor, [_root(theirs["id"])])
    assert r.status_code == 400, r.text
    assert "failed to get volume" in r.json()["badRequest"]["message"]
    assert _volume(api, other_member, theirs["id"])["status"] == "available"
    mine = bootable_volume(api, member, 1)
    r = _create(api, member, flavor, [_root(mine["id"])])
    assert r.status_code == 202, r.text
    wait_for_status(api, _h(member), r.json()["server"]["id"], "ACTIVE")
    r = _create(api, member, flavor, [_root(mine["id"])])
    assert r.status_code == 400 and "status must be 'available'" in r.text


def test_reader_may_not_boot_from_volume(api, cloud, member, reader):
    volume = create_volume(api, member, 1)
    r = _create(api, reader, add_flavor(cloud), [_root(volume["id"])])
    assert r.status_code == 403, r.text
    assert _volume(api, member, volume["id"])["status"] == "available"


def test_over_the_volume_quota_is_refused_before_anything_is_made(api, cloud, member, admin):
    r = api.put(f"/volume/v3/{admin.project_id}/os-quota-sets/{member.project_id}",
                headers=vol(admin), json={"quota_set": {"gigabytes": 5}})
    assert r.status_code == 200, r.text
    r = _create(api, member, add_flavor(cloud),
                [_root(add_image(cloud), "image", volume_size=6)])
    assert r.status_code in (403, 413), r.text
    assert "gigabytes" in r.text
    with cloud.db.reader() as s:
        assert s.scalar(select(Volume.id).where(Volume.deleted.is_(False))) is None


def test_a_volume_that_fails_to_be_made_errors_the_server_and_nothing_stays(api, cloud,
                                                                           member):
    flavor = add_flavor(cloud)
    root = bootable_volume(api, member, 1)
    # A snapshot the backend does not hold: the volume made from it ends in error.
    snap_id = str(uuidlib.uuid4())

    def work(s):
        s.add(VolumeSnapshot(id=snap_id, volume_id=root["id"], project_id=member.project_id,
                             user_id=member.user_id, size=1, status="available",
                             deleted=False, created_at=utcnow()))

    cloud.db.run(work)
    r = _create(api, member, flavor, [
        _root(root["id"], delete_on_termination=False),
        {"source_type": "snapshot", "uuid": snap_id, "destination_type": "volume",
         "boot_index": 1, "delete_on_termination": True}])
    assert r.status_code == 202, r.text
    sid = r.json()["server"]["id"]
    server = wait_for_status(api, _h(member), sid, "ERROR")
    assert "did not finish being created" in server["fault"]["message"]
    with cloud.db.reader() as s:
        made = s.scalar(select(Volume.id).where(Volume.snapshot_id == snap_id))
    assert made and made in server["fault"]["message"]
    wait_gone(api, member, f"/volumes/{made}")  # made for it, delete_on_termination
    wait_for(api, member, f"/volumes/{root['id']}", "volume", "available")  # detached, kept
    assert _volume(api, member, root["id"])["attachments"] == []


def test_a_spawn_failing_on_every_host_releases_the_volumes(api, cloud, member):
    """Rescheduled with its volumes still attached, then no attempt left: the server is
    ERROR, its own volume available again, the one made for it (delete_on_termination)
    deleted."""
    import dataclasses

    for role in cloud.roles:
        if type(role).__name__ == "Agent":
            role.driver.options = dataclasses.replace(role.driver.options, failure_rate=1.0)
    flavor = add_flavor(cloud)
    root = bootable_volume(api, member, 1)
    r = _create(api, member, flavor, [
        _root(root["id"]),
        {"source_type": "blank", "destination_type": "volume", "volume_size": 1,
         "boot_index": -1, "delete_on_termination": True}])
    assert r.status_code == 202, r.text
    sid = r.json()["server"]["id"]
    server = wait_for_status(api, _h(member), sid, "ERROR", timeout=30)
    assert "simulated spawn failure" in server["fault"]["message"]
    wait_for(api, member, f"/volumes/{root['id']}", "volume", "available")
    with cloud.db.reader() as s:
        blank = s.scalar(select(Volume.id).where(Volume.id != root["id"]))
    assert blank is not None
    wait_gone(api, member, f"/volumes/{blank}")


def test_a_root_volume_that_is_not_bootable_is_400(api, cloud, member):
    """Nova's InvalidBDMVolumeNotBootable: the volume at boot index 0 must be bootable."""
    flavor = add_flavor(cloud)
    volume = create_volume(api, member, 1)
    r = _create(api, member, flavor, [_root(volume["id"])])
    assert r.status_code == 400, r.text
    assert f"Block Device {volume['id']} is not bootable" in r.json()["badRequest"]["message"]
    assert _volume(api, member, volume["id"])["status"] == "available"
    # as a second disk it needs not be
    r = _create(api, member, flavor, [
        {"uuid": add_image(cloud), "source_type": "image", "destination_type": "local",
         "boot_index": 0},
        {"uuid": volume["id"], "source_type": "volume", "destination_type": "volume",
         "boot_index": -1}], image_ref=None)
    assert r.status_code == 202, r.text
