"""Who may do what in the block-storage API: a reader reads, a member writes in its own
project, an admin does everything, another project's member finds nothing (404); types,
QoS specs, quota changes and the admin actions are the admin's (403 for the others)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cirrus.runtime import Cloud
from cirrus.storage.volumes.types import DEFAULT_TYPE_ID
from tests.api.volume_helpers import (
    create_volume,
    url,
    vol,
    volume_cloud,
    wait_for,
)


@pytest.fixture
def cloud(settings) -> Iterator[Cloud]:
    """Overrides tests/conftest.py's: the volume role alone, on the fake backend."""
    yield from volume_cloud(settings)


@pytest.fixture
def volume(api, member) -> dict:
    return create_volume(api, member, 1, name="mine", metadata={"k": "v"})


@pytest.fixture
def snapshot(api, member, volume) -> dict:
    r = api.post(url(member, "/snapshots"), headers=vol(member),
                 json={"snapshot": {"volume_id": volume["id"]}})
    return wait_for(api, member, f"/snapshots/{r.json()['snapshot']['id']}", "snapshot",
                    "available")


def test_a_reader_reads_but_cannot_write(api, reader, volume, snapshot):
    vid, sid = volume["id"], snapshot["id"]
    for path in ("/volumes", "/volumes/detail", f"/volumes/{vid}", f"/volumes/{vid}/metadata",
                 "/snapshots/detail", f"/snapshots/{sid}", "/types", "/limits", "/extensions",
                 "/volumes/summary", f"/snapshots/{sid}/metadata",
                 f"/os-quota-sets/{reader.project_id}", "/os-availability-zone"):
        r = api.get(url(reader, path), headers=vol(reader))
        assert r.status_code == 200, (path, r.text)
    assert api.get(url(reader, f"/volumes/{vid}"),
                   headers=vol(reader)).json()["volume"]["name"] == "mine"
    writes = [
        ("post", "/volumes", {"volume": {"size": 1}}),
        ("put", f"/volumes/{vid}", {"volume": {"name": "x"}}),
        ("delete", f"/volumes/{vid}", None),
        ("post", f"/volumes/{vid}/metadata", {"metadata": {"a": "b"}}),
        ("delete", f"/volumes/{vid}/metadata/k", None),
        ("post", f"/volumes/{vid}/action", {"os-extend": {"new_size": 2}}),
        ("post", f"/volumes/{vid}/action", {"os-set_bootable": {"bootable": True}}),
        ("post", f"/volumes/{vid}/action", {"os-retype": {"new_type": "__DEFAULT__"}}),
        ("post", f"/volumes/{vid}/action", {"os-update_readonly_flag": {"readonly": True}}),
        ("post", "/snapshots", {"snapshot": {"volume_id": vid}}),
        ("put", f"/snapshots/{sid}", {"snapshot": {"name": "x"}}),
        ("delete", f"/snapshots/{sid}", None),
    ]
    for method, path, body in writes:
        kwargs = {"json": body} if body is not None else {}
        r = getattr(api, method)(url(reader, path), headers=vol(reader), **kwargs)
        assert r.status_code == 403, (method, path, r.text)
        assert r.json()["forbidden"]["code"] == 403
    assert api.get(url(reader, f"/volumes/{vid}"),
                   headers=vol(reader)).json()["volume"]["status"] == "available"


def test_another_projects_member_finds_nothing(api, other_member, volume, snapshot):
    vid, sid = volume["id"], snapshot["id"]
    assert api.get(url(other_member, "/volumes/detail"),
                   headers=vol(other_member)).json()["volumes"] == []
    assert api.get(url(other_member, "/snapshots"),
                   headers=vol(other_member)).json()["snapshots"] == []
    calls = [
        ("get", f"/volumes/{vid}", None),
        ("put", f"/volumes/{vid}", {"volume": {"name": "x"}}),
        ("delete", f"/volumes/{vid}", None),
        ("get", f"/volumes/{vid}/metadata", None),
        ("post", f"/volumes/{vid}/metadata", {"metadata": {"a": "b"}}),
        ("post", f"/volumes/{vid}/action", {"os-extend": {"new_size": 2}}),
        ("post", f"/volumes/{vid}/action", {"os-retype": {"new_type": "__DEFAULT__"}}),
        ("post", f"/volumes/{vid}/action", {"os-frobnicate": {}}),
        ("post", "/volumes", {"volume": {"source_volid": vid}}),
        ("put", f"/snapshots/{sid}", {"snapshot": {"name": "x"}}),
        ("get", f"/snapshots/{sid}/metadata", None),
        ("post", "/snapshots", {"snapshot": {"volume_id": vid}}),
        ("get", f"/snapshots/{sid}", None),
        ("delete", f"/snapshots/{sid}", None),
        ("post", "/volumes", {"volume": {"snapshot_id": sid}}),
    ]
    for method, path, body in calls:
        kwargs = {"json": body} if body is not None else {}
        r = getattr(api, method)(url(other_member, path), headers=vol(other_member), **kwargs)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["itemNotFound"]["code"] == 404
    # another project's quotas: refused
    r = api.get(url(other_member, f"/os-quota-sets/{volume['os-vol-tenant-attr:tenant_id']}"),
                headers=vol(other_member))
    assert r.status_code == 403


def test_a_project_id_in_the_path_must_be_the_callers(api, member, other_member):
    r = api.get(f"/volume/v3/{other_member.project_id}/volumes", headers=vol(member))
    assert r.status_code == 400 and "project_id" in r.json()["badRequest"]["message"]


def test_an_admin_sees_and_changes_every_project(api, admin, member, volume):
    vid = volume["id"]
    mine = api.get(url(admin, "/volumes"), headers=vol(admin)).json()["volumes"]
    assert vid not in [v["id"] for v in mine]  # only its own project without all_tenants
    every = api.get(url(admin, "/volumes/detail?all_tenants=1"),
                    headers=vol(admin)).json()["volumes"]
    assert vid in [v["id"] for v in every]
    by_project = api.get(url(admin, f"/volumes/detail?project_id={member.project_id}"),
                         headers=vol(admin)).json()["volumes"]
    assert [v["id"] for v in by_project] == [vid]
    # a member's all_tenants is ignored
    assert api.get(url(member, "/volumes?all_tenants=1"),
                   headers=vol(member)).json()["volumes"] == [
        {"id": vid, "name": "mine", "links": volume["links"]}]
    r = api.put(url(admin, f"/volumes/{vid}"), headers=vol(admin),
                json={"volume": {"name": "by-admin"}})
    assert r.status_code == 200 and r.json()["volume"]["name"] == "by-admin"
    r = api.post(url(admin, f"/volumes/{vid}/action"), headers=vol(admin),
                 json={"os-reset_status": {"status": "error"}})
    assert r.status_code == 202
    assert api.get(url(member, f"/volumes/{vid}"),
                   headers=vol(member)).json()["volume"]["status"] == "error"
    r = api.post(url(admin, f"/volumes/{vid}/action"), headers=vol(admin),
                 json={"os-reset_status": {"status": "sideways"}})
    assert r.status_code == 400 and "os-reset_status/status" in r.json()["badRequest"]["message"]


def test_admin_actions_types_qos_and_quota_changes_are_the_admins(api, member, reader,
                                                                   volume, snapshot):
    vid = volume["id"]
    for caller in (member, reader):
        denied = [
            ("post", f"/volumes/{vid}/action", {"os-reset_status": {"status": "error"}}),
            ("post", f"/volumes/{vid}/action", {"os-force_delete": {}}),
            ("post", f"/snapshots/{snapshot['id']}/action",
             {"os-reset_status": {"status": "error"}}),
            ("post", "/types", {"volume_type": {"name": "t"}}),
            ("get", "/qos-specs", None),
            ("post", "/qos-specs", {"qos_specs": {"name": "q"}}),
            ("put", f"/os-quota-sets/{caller.project_id}", {"quota_set": {"volumes": 99}}),
            ("get", "/os-quota-class-sets/default", None),
            ("put", "/os-quota-class-sets/default", {"quota_class_set": {"volumes": 99}}),
            ("put", f"/types/{DEFAULT_TYPE_ID}", {"volume_type": {"name": "x"}}),
            ("delete", f"/types/{DEFAULT_TYPE_ID}", None),
            ("post", f"/types/{DEFAULT_TYPE_ID}/extra_specs", {"extra_specs": {"a": "b"}}),
            ("delete", f"/os-quota-sets/{caller.project_id}", None),
        ]
        for method, path, body in denied:
            kwargs = {"json": body} if body is not None else {}
            r = getattr(api, method)(url(caller, path), headers=vol(caller), **kwargs)
            assert r.status_code == 403, (method, path, r.text)
    r = api.get(url(member, f"/os-quota-sets/{member.project_id}"), headers=vol(member))
    assert r.json()["quota_set"]["volumes"] == 10
    assert api.get(url(member, f"/volumes/{vid}"),
                   headers=vol(member)).json()["volume"]["status"] == "available"


def test_no_token_is_401(api, member):
    r = api.get(url(member, "/volumes"))
    assert r.status_code == 401 and r.json()["unauthorized"]["code"] == 401
