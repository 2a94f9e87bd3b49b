"""The block-storage API (Cinder v3 under /volume) on the volume role and the fake backend:
version documents and microversions, volumes from create to delete with every state they
pass, their metadata and actions, snapshots, listings, Cinder's error shape and state
checks."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from cirrus.db.models import Volume, VolumeSnapshot
from cirrus.runtime import Cloud
from cirrus.storage.volumes.backends.fake import FakeBackend
from cirrus.storage.volumes.manager import VolumeManager
from tests.api.volume_helpers import (
    create_volume,
    url,
    vol,
    volume_cloud,
    wait_for,
    wait_gone,
)


@pytest.fixture
def cloud(settings) -> Iterator[Cloud]:
    """Overrides tests/conftest.py's: the volume role alone, on the fake backend."""
    yield from volume_cloud(settings)


def fake_backend(cloud) -> FakeBackend:
    manager = next(r for r in cloud.roles if isinstance(r, VolumeManager))
    backend = manager.backends["fake"]
    assert isinstance(backend, FakeBackend)
    return backend


# ---------------------------------------------------------------- versions


def test_version_documents_need_no_token_and_announce_3_60(api):
    root = api.get("/volume/")
    assert root.status_code == 300
    [doc] = root.json()["versions"]
    assert doc["id"] == "v3.0" and doc["min_version"] == "3.0" and doc["version"] == "3.60"
    assert doc["links"][-1]["href"] == "http://testserver/volume/v3/"
    assert api.get("/volume").status_code == 300
    v3 = api.get("/volume/v3/")
    assert v3.status_code == 200 and v3.json()["versions"][0]["version"] == "3.60"


def test_microversion_is_negotiated_and_echoed(api, member):
    r = api.get(url(member, "/volumes"), headers=vol(member, "3.45"))
    assert r.status_code == 200
    assert r.headers["OpenStack-API-Version"] == "volume 3.45"
    plain = api.get(url(member, "/volumes"), headers=member.headers)
    assert plain.headers["OpenStack-API-Version"] == "volume 3.0"
    latest = api.get(url(member, "/volumes"), headers=vol(member, "latest"))
    assert latest.headers["OpenStack-API-Version"] == "volume 3.60"
    too_new = api.get(url(member, "/volumes"), headers=vol(member, "3.61"))
    assert too_new.status_code == 406
    assert "maximum is 3.60" in too_new.json()["notAcceptable"]["message"]
    bad = api.get(url(member, "/volumes"), headers=vol(member, "three"))
    assert bad.status_code == 400 and "badRequest" in bad.json()


def test_the_catalog_names_block_storage_and_volumev3(api, member):
    r = api.post("/identity/v3/auth/tokens", json={"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "alice", "domain": {"id": "default"}, "password": "pw-alice"}}},
        "scope": {"project": {"id": member.project_id}}}})
    assert r.status_code == 201, r.text
    catalog = {entry["type"]: entry for entry in r.json()["token"]["catalog"]}
    for kind in ("block-storage", "volumev3"):
        urls = {e["url"] for e in catalog[kind]["endpoints"]}
        assert urls == {"http://testserver/volume/v3"}


# ---------------------------------------------------------------- volumes


def test_create_show_list_update_delete(api, cloud, member):
    r = api.post(url(member, "/volumes"), headers=vol(member),
                 json={"volume": {"size": 2, "name": "data", "description": "d",
                                  "metadata": {"k": "v"}}})
    assert r.status_code == 202, r.text
    created = r.json()["volume"]
    assert created["status"] == "creating" and created["size"] == 2
    assert created["volume_type"] == "__DEFAULT__" and created["bootable"] == "false"
    shown = wait_for(api, member, f"/volumes/{created['id']}", "volume", "available")
    assert shown["metadata"] == {"k": "v"} and shown["name"] == "data"
    assert shown["os-vol-tenant-attr:tenant_id"] == member.project_id
    assert "os-vol-host-attr:host" not in shown  # admins only
    assert fake_backend(cloud).volumes[created["id"]] == 2

    listed = api.get(url(member, "/volumes"), headers=vol(member)).json()["volumes"]
    assert [v["id"] for v in listed] == [created["id"]] and set(listed[0]) == {
        "id", "name", "links"}
    # the project-less form (3.67's) answers the same
    assert api.get("/volume/v3/volumes", headers=vol(member)).json()["volumes"] == listed

    r = api.put(url(member, f"/volumes/{created['id']}"), headers=vol(member),
                json={"volume": {"name": "renamed", "description": None}})
    assert r.status_code == 200 and r.json()["volume"]["name"] == "renamed"
    assert r.json()["volume"]["description"] is None

    r = api.delete(url(member, f"/volumes/{created['id']}"), headers=vol(member))
    assert r.status_code == 202
    wait_gone(api, member, f"/volumes/{created['id']}")
    assert created["id"] not in fake_backend(cloud).volumes
    with cloud.db.reader() as s:
        row = s.get(Volume, created["id"])
        assert row.deleted and row.status == "deleted" and row.deleted_at is not None


def test_a_failed_backend_leaves_the_volume_in_error_and_it_can_be_deleted(api, cloud,
                                                                            member):
    # A source volume the backend does not hold: the clone fails in the backend.
    source = create_volume(api, member, 1)
    fake_backend(cloud).volumes.pop(source["id"])
    r = api.post(url(member, "/volumes"), headers=vol(member),
                 json={"volume": {"source_volid": source["id"]}})
    assert r.status_code == 202
    failed = wait_for(api, member, f"/volumes/{r.json()['volume']['id']}", "volume", "error")
    with cloud.db.reader() as s:
        assert "no volume" in s.get(Volume, failed["id"]).error
    assert api.delete(url(member, f"/volumes/{failed['id']}"),
                      headers=vol(member)).status_code == 202
    wait_gone(api, member, f"/volumes/{failed['id']}")


def test_clone_and_volume_from_snapshot(api, cloud, member):
    source = create_volume(api, member, 1, name="src")
    r = api.post(url(member, "/volumes"), headers=vol(member),
                 json={"volume": {"source_volid": source["id"], "size": 3}})
    clone = wait_for(api, member, f"/volumes/{r.json()['volume']['id']}", "volume", "available")
    assert clone["source_volid"] == source["id"] and clone["size"] == 3

    r = api.post(url(member, "/snapshots"), headers=vol(member),
                 json={"snapshot": {"volume_id": source["id"], "name": "s1"}})
    assert r.status_code == 202, r.text
    snap = wait_for(api, member, f"/snapshots/{r.json()['snapshot']['id']}", "snapshot",
                    "available")
    assert snap["size"] == 1 and snap["user_id"] == member.user_id  # user_id: 3.41
    r = api.post(url(member, "/volumes"), headers=vol(member),
                 json={"volume": {"snapshot_id": snap["id"]}})
    restored = wait_for(api, member, f"/volumes/{r.json()['volume']['id']}", "volume",
                        "available")
    assert restored["snapshot_id"] == snap["id"] and restored["size"] == 1
    assert ("create_from_snapshot", restored["id"], snap["id"]) in fake_backend(cloud).calls

    # smaller than the source: 400 naming the sizes
    r = api.post(url(member, "/volumes"), headers=vol(member),
                 json={"volume": {"source_volid": clone["id"], "size": 2}})
    assert r.status_code == 400 and "smaller" in r.json()["badRequest"]["message"]


def test_volume_from_an_image_is_bootable_and_keeps_its_metadata(api, cloud, member, admin):
    r = api.post("/image/v2/images", headers=admin.headers, json={
        "name": "cirros", "disk_format": "raw", "container_format": "bare",
        "visibility": "public", "min_disk": 2, "os_distro": "cirros"})
    image_id = r.json()["id"]
    assert api.put(f"/image/v2/images/{image_id}/file",
                   headers={**admin.headers, "Content-Type": "application/octet-stream"},
                   content=b"x" * 4096).status_code == 204
    r = api.post(url(member, "/volumes"), headers=vol(member),
                 json={"volume": {"imageRef": image_id}})
    assert r.status_code == 202, r.text
    made = wait_for(api, member, f"/volumes/{r.json()['volume']['id']}", "volume", "available")
    assert made["size"] == 2  # the image's min_disk
    assert made["bootable"] == "true"
    assert made["volume_image_metadata"]["image_id"] == image_id
    assert made["volume_image_metadata"]["os_distro"] == "cirros"
    assert ("create_from_image", made["id"], image_id) in fake_backend(cloud).calls

    r = api.post(url(member, "/volumes"), headers=vol(member),
                 json={"volume": {"imageRef": image_id, "size": 1}})
    assert r.status_code == 400 and "too small" in r.json()["badRequest"]["message"]
    r = api.post(url(member, "/volumes"), headers=vol(member),
                 json={"volume": {"imageRef": "00000000-0000-0000-0000-000000000000"}})
    assert r.status_code == 400


def test_bad_input_names_the_field(api, member):
    cases = [
        ({"volume": {"size": 0}}, "volume/size"),
        ({"volume": {"size": "ten"}}, "volume/size"),
        ({"volume": {"size": 1, "name": "x" * 256}}, "volume/name"),
        ({"volume": {"size": 1, "metadata": {"k": 1}}}, "volume/metadata/k"),
        ({"volume": {"size": 1, "multiattach": "maybe"}}, "volume/multiattach"),
        ({"volume": {"size": 1, "availability_zone": "elsewhere"}}, "availability zone"),
        ({"volume": {"size": 1, "volume_type": "nope"}}, "nope"),
        ({"volume": {}}, "size"),
        ({"volumes": {"size": 1}}, "volume"),
    ]
    for body, named in cases:
        r = api.post(url(member, "/volumes"), headers=vol(member), json=body)
        assert r.status_code in (400, 404), (body, r.text)
        [(kind, error)] = r.json().items()
        assert kind in ("badRequest", "itemNotFound") and named in error["message"], (body, r.text)
        assert error["code"] == r.status_code
    r = api.post(url(member, "/volumes"), headers={**vol(member), "Content-Type": "application/json"},
                 content=b"{not json")
    assert r.status_code == 400 and "badRequest" in r.json()
    assert api.get(url(member, "/volumes?limit=x"), headers=vol(member)).status_code == 400
    r = api.get(url(member, "/volumes?sort=size:sideways"), headers=vol(member))
    assert r.status_code == 400 and "sort" in r.json()["badRequest"]["message"]
    r = api.get(url(member, "/volumes?sort=nope"), headers=vol(member))
    assert r.status_code == 400 and "nope" in r.json()["badRequest"]["message"]


def test_a_deep_or_huge_body_is_refused(api, member):
    deep: dict = {}
    node = deep
    for _ in range(200):
        node["a"] = {}
        node = node["a"]
    r = api.post(url(member, "/volumes"), headers=vol(member), json={"volume": deep})
    assert r.status_code == 400
    huge = b'{"volume": {"name": "' + b"x" * (2 * 1024 * 1024) + b'"}}'
    r = api.post(url(member, "/volumes"), headers={**vol(member),
                                                    "Content-Type": "application/json"},
                 content=huge)
    assert r.status_code == 413


def test_listing_filters_sorts_pages_and_counts(api, member):
    ids = [create_volume(api, member, size, name=f"v{size}",
                         metadata={"tier": "gold" if size % 2 else "silver"})["id"]
           for size in (1, 2, 3)]
    detail = url(member, "/volumes/detail")
    by_size = api.get(f"{detail}?sort=size:asc", headers=vol(member)).json()["volumes"]
    assert [v["id"] for v in by_size] == ids
    page = api.get(f"{detail}?sort=size:asc&limit=2", headers=vol(member)).json()
    assert [v["id"] for v in page["volumes"]] == ids[:2]
    assert "marker=" + ids[1] in page["volumes_links"][0]["href"]
    rest = api.get(f"{detail}?sort=size:asc&marker={ids[1]}", headers=vol(member)).json()
    assert [v["id"] for v in rest["volumes"]] == ids[2:]
    gold = api.get(detail + '?metadata={"tier": "gold"}', headers=vol(member)).json()
    assert sorted(v["id"] for v in gold["volumes"]) == sorted([ids[0], ids[2]])
    named = api.get(f"{detail}?name=v2", headers=vol(member)).json()["volumes"]
    assert [v["id"] for v in named] == [ids[1]]
    counted = api.get(f"{detail}?with_count=true&limit=1", headers=vol(member)).json()
    assert counted["count"] == 3 and len(counted["volumes"]) == 1
    # with_count is 3.45's: before it, no count
    assert "count" not in api.get(f"{detail}?with_count=true",
                                  headers=vol(member, "3.44")).json()
    # created_at filters are 3.60's
    future = api.get(f"{detail}?created_at=gt:2999-01-01T00:00:00",
                     headers=vol(member)).json()["volumes"]
    assert future == []
    ignored = api.get(f"{detail}?created_at=gt:2999-01-01T00:00:00",
                      headers=vol(member, "3.59")).json()["volumes"]
    assert len(ignored) == 3
    r = api.get(f"{detail}?created_at=after:yesterday", headers=vol(member))
    assert r.status_code == 400 and "created_at" in r.json()["badRequest"]["message"]
    r = api.get(f"{detail}?marker=00000000-0000-0000-0000-000000000000", headers=vol(member))
    assert r.status_code == 404
    summary = api.get(url(member, "/volumes/summary"), headers=vol(member)).json()
    assert summary["volume-summary"]["total_count"] == 3
    assert summary["volume-summary"]["total_size"] == 6
    assert api.get(url(member, "/volumes/summary"),
                   headers=vol(member, "3.11")).status_code == 404


def test_fields_follow_the_microversion(api, member, admin):
    made = create_volume(api, member, 1)
    path = url(member, f"/volumes/{made['id']}")
    old = api.get(path, headers=vol(member, "3.0")).json()["volume"]
    new = api.get(path, headers=vol(member, "3.60")).json()["volume"]
    assert "group_id" not in old and "shared_targets" not in old
    assert "group_id" in new and "shared_targets" in new and "service_uuid" in new
    as_admin = api.get(path, headers=vol(admin, "3.21")).json()["volume"]
    assert "provider_id" in as_admin and "os-vol-host-attr:host" in as_admin


def test_metadata_routes(api, member):
    made = create_volume(api, member, 1, metadata={"a": "1"})
    base = url(member, f"/volumes/{made['id']}/metadata")
    r = api.post(base, headers=vol(member), json={"metadata": {"b": "2"}})
    assert r.status_code == 200 and r.json()["metadata"] == {"a": "1", "b": "2"}
    r = api.put(base, headers=vol(member), json={"metadata": {"c": "3"}})
    assert r.json()["metadata"] == {"c": "3"}
    assert api.get(f"{base}/c", headers=vol(member)).json() == {"meta": {"c": "3"}}
    r = api.put(f"{base}/c", headers=vol(member), json={"meta": {"d": "4"}})
    assert r.status_code == 400 and "mismatch" in r.json()["badRequest"]["message"]
    assert api.put(f"{base}/c", headers=vol(member),
                   json={"meta": {"c": "5"}}).json() == {"meta": {"c": "5"}}
    assert api.delete(f"{base}/c", headers=vol(member)).status_code == 200
    assert api.get(f"{base}/c", headers=vol(member)).status_code == 404
    assert api.delete(f"{base}/c", headers=vol(member)).status_code == 404
    r = api.put(base, headers=vol(member), json={"metadata": {"k": "x" * 256}})
    assert r.status_code == 400 and "metadata/k" in r.json()["badRequest"]["message"]


def test_extend_moves_through_extending_and_checks_the_size(api, cloud, member):
    made = create_volume(api, member, 1)
    action = url(member, f"/volumes/{made['id']}/action")
    r = api.post(action, headers=vol(member), json={"os-extend": {"new_size": 1}})
    assert r.status_code == 400 and "greater" in r.json()["badRequest"]["message"]
    r = api.post(action, headers=vol(member), json={"os-extend": {"new_size": "big"}})
    assert r.status_code == 400 and "os-extend/new_size" in r.json()["badRequest"]["message"]
    r = api.post(action, headers=vol(member), json={"os-extend": {"new_size": 4}})
    assert r.status_code == 202
    grown = wait_for(api, member, f"/volumes/{made['id']}", "volume", "available")
    for _ in range(200):
        if grown["size"] == 4:
            break
        time.sleep(0.02)
        grown = wait_for(api, member, f"/volumes/{made['id']}", "volume", "available")
    assert grown["size"] == 4 and fake_backend(cloud).volumes[made["id"]] == 4


def test_flags_and_image_metadata_actions(api, member):
    made = create_volume(api, member, 1)
    action = url(member, f"/volumes/{made['id']}/action")
    show = url(member, f"/volumes/{made['id']}")
    assert api.post(action, headers=vol(member),
                    json={"os-set_bootable": {"bootable": True}}).status_code == 200
    assert api.get(show, headers=vol(member)).json()["volume"]["bootable"] == "true"
    r = api.post(action, headers=vol(member), json={"os-set_bootable": {"bootable": "perhaps"}})
    assert r.status_code == 400 and "bootable" in r.json()["badRequest"]["message"]
    assert api.post(action, headers=vol(member),
                    json={"os-update_readonly_flag": {"readonly": True}}).status_code == 202
    r = api.post(action, headers=vol(member),
                 json={"os-set_image_metadata": {"metadata": {"hw_disk_bus": "scsi"}}})
    assert r.status_code == 200 and r.json()["metadata"] == {"hw_disk_bus": "scsi"}
    shown = api.get(show, headers=vol(member)).json()["volume"]
    assert shown["volume_image_metadata"] == {"hw_disk_bus": "scsi"}
    r = api.post(action, headers=vol(member), json={"os-show_image_metadata": None})
    assert r.json()["metadata"] == {"hw_disk_bus": "scsi"}
    assert api.post(action, headers=vol(member), json={
        "os-unset_image_metadata": {"key": "hw_disk_bus"}}).status_code == 200
    assert api.post(action, headers=vol(member), json={
        "os-unset_image_metadata": {"key": "hw_disk_bus"}}).status_code == 404
    r = api.post(action, headers=vol(member), json={"os-frobnicate": {}})
    assert r.status_code == 400 and "os-frobnicate" in r.json()["badRequest"]["message"]


def test_state_checks_refuse_what_cinder_refuses(api, cloud, member, admin):
    made = create_volume(api, member, 1)
    vid = made["id"]
    r = api.post(url(member, "/snapshots"), headers=vol(member),
                 json={"snapshot": {"volume_id": vid}})
    snap = wait_for(api, member, f"/snapshots/{r.json()['snapshot']['id']}", "snapshot",
                    "available")
    # a volume with snapshots: refused unless cascade
    r = api.delete(url(member, f"/volumes/{vid}"), headers=vol(member))
    assert r.status_code == 400 and "snapshots" in r.json()["badRequest"]["message"]
    # attached (the attach step writes this): refused
    with cloud.db.reader() as s:
        assert s.get(Volume, vid).attach_status == "detached"
    assert api.post(url(admin, f"/volumes/{vid}/action"), headers=vol(admin), json={
        "os-reset_status": {"status": "in-use", "attach_status": "attached"}}).status_code == 202
    r = api.delete(url(member, f"/volumes/{vid}?cascade=true"), headers=vol(member))
    assert r.status_code == 400 and "in-use" in r.json()["badRequest"]["message"]
    r = api.post(url(member, f"/volumes/{vid}/action"), headers=vol(member),
                 json={"os-extend": {"new_size": 2}})
    assert r.status_code == 400 and "available" in r.json()["badRequest"]["message"]
    r = api.post(url(member, "/snapshots"), headers=vol(member),
                 json={"snapshot": {"volume_id": vid}})
    assert r.status_code == 400
    api.post(url(admin, f"/volumes/{vid}/action"), headers=vol(admin), json={
        "os-reset_status": {"status": "available", "attach_status": "detached"}})
    # cascade: the snapshots go first, then the volume
    assert api.delete(url(member, f"/volumes/{vid}?cascade=true"),
                      headers=vol(member)).status_code == 202
    wait_gone(api, member, f"/volumes/{vid}")
    wait_gone(api, member, f"/snapshots/{snap['id']}")
    calls = fake_backend(cloud).calls
    assert calls.index(("delete_snapshot", vid, snap["id"])) < calls.index(("delete", vid))
    # deleting twice: the second is refused, not sent
    assert api.delete(url(member, f"/volumes/{vid}"), headers=vol(member)).status_code == 404


def test_snapshots_list_update_metadata_and_delete(api, cloud, member):
    made = create_volume(api, member, 2)
    r = api.post(url(member, "/snapshots"), headers=vol(member), json={
        "snapshot": {"volume_id": made["id"], "name": "s", "metadata": {"a": "1"}}})
    snap = wait_for(api, member, f"/snapshots/{r.json()['snapshot']['id']}", "snapshot",
                    "available")
    listed = api.get(url(member, "/snapshots"), headers=vol(member)).json()["snapshots"]
    assert [s["id"] for s in listed] == [snap["id"]]
    assert "os-extended-snapshot-attributes:progress" not in listed[0]
    detail = api.get(url(member, "/snapshots/detail"), headers=vol(member)).json()["snapshots"]
    assert detail[0]["os-extended-snapshot-attributes:progress"] == "100%"
    by_volume = api.get(url(member, f"/snapshots?volume_id={made['id']}"),
                        headers=vol(member)).json()["snapshots"]
    assert len(by_volume) == 1
    r = api.put(url(member, f"/snapshots/{snap['id']}"), headers=vol(member),
                json={"snapshot": {"name": "t"}})
    assert r.json()["snapshot"]["name"] == "t"
    r = api.put(url(member, f"/snapshots/{snap['id']}"), headers=vol(member),
                json={"snapshot": {"size": 9}})
    assert r.status_code == 400
    meta = url(member, f"/snapshots/{snap['id']}/metadata")
    assert api.post(meta, headers=vol(member),
                    json={"metadata": {"b": "2"}}).json()["metadata"] == {"a": "1", "b": "2"}
    assert api.delete(f"{meta}/a", headers=vol(member)).status_code == 200
    assert api.get(meta, headers=vol(member)).json()["metadata"] == {"b": "2"}
    assert api.delete(url(member, f"/snapshots/{snap['id']}"),
                      headers=vol(member)).status_code == 202
    wait_gone(api, member, f"/snapshots/{snap['id']}")
    with cloud.db.reader() as s:
        row = s.get(VolumeSnapshot, snap["id"])
        assert row.deleted and row.status == "deleted"
    assert snap["id"] not in fake_backend(cloud).snapshots


def test_quota_refusals_are_413_over_limit_and_leave_nothing(api, cloud, member, admin):
    quota = url(admin, f"/os-quota-sets/{member.project_id}")
    r = api.put(quota, headers=vol(admin), json={"quota_set": {"volumes": 1, "gigabytes": 3}})
    assert r.status_code == 200 and r.json()["quota_set"]["volumes"] == 1
    create_volume(api, member, 2)
    r = api.post(url(member, "/volumes"), headers=vol(member), json={"volume": {"size": 1}})
    assert r.status_code == 413 and "volumes" in r.json()["overLimit"]["message"]
    api.put(quota, headers=vol(admin), json={"quota_set": {"volumes": 5}})
    r = api.post(url(member, "/volumes"), headers=vol(member), json={"volume": {"size": 2}})
    assert r.status_code == 413 and "gigabytes" in r.json()["overLimit"]["message"]
    with cloud.db.reader() as s:
        assert len(s.scalars(select(Volume).where(
            Volume.project_id == member.project_id)).all()) == 1
    usage = api.get(f"{url(member, f'/os-quota-sets/{member.project_id}')}?usage=true",
                    headers=vol(member)).json()["quota_set"]
    assert usage["volumes"] == {"limit": 5, "in_use": 1, "reserved": 0, "allocated": 0}
    assert usage["gigabytes"]["in_use"] == 2
    limits = api.get(url(member, "/limits"), headers=vol(member)).json()["limits"]["absolute"]
    assert limits["maxTotalVolumes"] == 5 and limits["totalGigabytesUsed"] == 2
    # per type
    api.put(quota, headers=vol(admin), json={"quota_set": {"volumes___DEFAULT__": 1}})
    r = api.post(url(member, "/volumes"), headers=vol(member), json={"volume": {"size": 1}})
    assert r.status_code == 413 and "volumes___DEFAULT__" in r.json()["overLimit"]["message"]
    # back to the defaults
    assert api.delete(quota, headers=vol(admin)).status_code == 200
    assert api.get(quota, headers=vol(admin)).json()["quota_set"]["volumes"] == 10
    r = api.put(quota, headers=vol(admin), json={"quota_set": {"volumes": -5}})
    assert r.status_code == 400 and "quota_set/volumes" in r.json()["badRequest"]["message"]
    r = api.put(quota, headers=vol(admin), json={"quota_set": {"bogus": 5}})
    assert r.status_code == 400 and "bogus" in r.json()["badRequest"]["message"]


def test_availability_zones(api, member):
    r = api.get(url(member, "/os-availability-zone"), headers=vol(member))
    assert r.json() == {"availabilityZoneInfo": [{"zoneName": "nova",
                                                  "zoneState": {"available": True}}]}


def test_readonly_shows_in_the_metadata_once_set(api, member):
    made = create_volume(api, member, 1, metadata={"a": "b"})
    assert made["metadata"] == {"a": "b"}
    action = url(member, f"/volumes/{made['id']}/action")
    for flag in (True, False):
        assert api.post(action, headers=vol(member),
                        json={"os-update_readonly_flag": {"readonly": flag}}).status_code == 202
        shown = api.get(url(member, f"/volumes/{made['id']}"), headers=vol(member)).json()
        assert shown["volume"]["metadata"] == {"a": "b", "readonly": str(flag)}


def test_a_snapshot_without_a_volume_is_404_and_lists_sort_by_display_name(api, member):
    r = api.post(url(member, "/snapshots"), headers=vol(member),
                 json={"snapshot": {"volume_id": None}})
    assert r.status_code == 404 and "itemNotFound" in r.json()
    made = create_volume(api, member, 1)
    ids = []
    for name in ("b", "a"):
        r = api.post(url(member, "/snapshots"), headers=vol(member),
                     json={"snapshot": {"volume_id": made["id"], "name": name}})
        ids.append(wait_for(api, member, f"/snapshots/{r.json()['snapshot']['id']}",
                            "snapshot", "available")["id"])
    listed = api.get(url(member, "/snapshots?sort_key=display_name&sort_dir=asc"),
                     headers=vol(member)).json()["snapshots"]
    assert [s["id"] for s in listed] == [ids[1], ids[0]]


def test_extensions_list_what_is_served(api, member):
    r = api.get(url(member, "/extensions"), headers=vol(member))
    aliases = {e["alias"] for e in r.json()["extensions"]}
    assert {"os-volume-actions", "qos-specs", "os-quota-sets"} <= aliases
    assert "os-volume-transfer" not in aliases


def test_the_default_quota_class_changes_every_projects_defaults(api, admin, member):
    base = url(admin, "/os-quota-class-sets/default")
    assert api.get(base, headers=vol(admin)).json()["quota_class_set"]["volumes"] == 10
    r = api.put(base, headers=vol(admin), json={"quota_class_set": {"volumes": 3}})
    assert r.status_code == 200 and r.json()["quota_class_set"]["volumes"] == 3
    shown = api.get(url(member, f"/os-quota-sets/{member.project_id}"), headers=vol(member))
    assert shown.json()["quota_set"]["volumes"] == 3
    defaults = api.get(url(member, f"/os-quota-sets/{member.project_id}/defaults"),
                       headers=vol(member)).json()["quota_set"]
    assert defaults["volumes"] == 3
    r = api.put(base, headers=vol(admin), json={"quota_class_set": {"volumes": "many"}})
    assert r.status_code == 400 and "quota_class_set/volumes" in r.json()["badRequest"]["message"]
    assert api.get(url(member, "/os-quota-class-sets/default"),
                   headers=vol(member)).status_code == 403
    # compute's quota classes are another service's: unchanged
    nova = api.get("/compute/v2.1/os-quota-class-sets/default", headers=admin.headers).json()
    assert "volumes" not in nova["quota_class_set"]


def test_an_action_on_an_unknown_volume_is_404_before_the_action_is_looked_at(api, member):
    r = api.post(url(member, "/volumes/xxx/action"), headers=vol(member),
                 json={"os-detach": {}})
    assert r.status_code == 404 and "itemNotFound" in r.json()


def test_null_metadata_is_accepted_as_none_on_create_and_unchanged_on_update(api, member):
    """`openstack volume create` without --property sends "metadata": null (Cinder's
    metadata_allows_null); an update's null leaves the metadata as it was."""
    r = api.post(url(member, "/volumes"), headers=vol(member),
                 json={"volume": {"size": 1, "name": "n", "metadata": None}})
    assert r.status_code == 202, r.text
    volume_id = r.json()["volume"]["id"]
    assert wait_for(api, member, f"/volumes/{volume_id}", "volume",
                    "available")["metadata"] == {}
    api.put(url(member, f"/volumes/{volume_id}/metadata"), headers=vol(member),
            json={"metadata": {"k": "v"}})
    r = api.put(url(member, f"/volumes/{volume_id}"), headers=vol(member),
                json={"volume": {"metadata": None}})
    assert r.status_code == 200, r.text
    assert r.json()["volume"]["metadata"] == {"k": "v"}
    r = api.post(url(member, "/volumes"), headers=vol(member),
                 json={"volume": {"size": 1, "metadata": ["not", "a", "dict"]}})
    assert r.status_code == 400 and "metadata" in r.text


def test_null_metadata_is_accepted_on_snapshot_create(api, member):
    """`openstack volume snapshot create` without --property sends "metadata": null (Cinder's
    metadata_allows_null for snapshots too); a list is still refused naming the field."""
    r = api.post(url(member, "/volumes"), headers=vol(member), json={"volume": {"size": 1}})
    volume_id = r.json()["volume"]["id"]
    wait_for(api, member, f"/volumes/{volume_id}", "volume", "available")
    r = api.post(url(member, "/snapshots"), headers=vol(member), json={"snapshot": {
        "volume_id": volume_id, "name": "s", "metadata": None}})
    assert r.status_code == 202, r.text
    snapshot_id = r.json()["snapshot"]["id"]
    assert wait_for(api, member, f"/snapshots/{snapshot_id}", "snapshot",
                    "available")["metadata"] == {}
    r = api.post(url(member, "/snapshots"), headers=vol(member), json={"snapshot": {
        "volume_id": volume_id, "metadata": ["not", "a", "dict"]}})
    assert r.status_code == 400 and "metadata" in r.text
