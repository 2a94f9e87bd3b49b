"""The glance-direct import: PUT .../stage (queued -> uploading), POST .../import
(uploading -> importing -> active), /v2/info/import announcing it, and failures that leave
the image where it can be staged again or deleted."""

from __future__ import annotations

import hashlib

import pytest

from cirrus.storage import image_data
from tests.api.test_image import OCTET, create, image_dir

IMAGES = "/image/v2/images"
DIRECT = {"method": {"name": "glance-direct"}}


def stage(api, caller, image_id: str, data: bytes, content_type: str = OCTET):
    return api.put(f"{IMAGES}/{image_id}/stage", content=data,
                   headers={**caller.headers, "Content-Type": content_type})


def do_import(api, caller, image_id: str, body: object = None):
    return api.post(f"{IMAGES}/{image_id}/import", json=DIRECT if body is None else body,
                    headers=caller.headers)


def status(api, caller, image_id: str) -> str:
    return api.get(f"{IMAGES}/{image_id}", headers=caller.headers).json()["status"]


def test_info_import_announces_glance_direct_only(api, member):
    r = api.get("/image/v2/info/import", headers=member.headers)
    assert r.status_code == 200
    assert r.json()["import-methods"] == {"description": "Import methods available.",
                                          "type": "array", "value": ["glance-direct"]}


def test_stage_then_import_makes_the_image_active_with_its_data(api, member):
    data = b"staged image data" * 100
    image = create(api, member)
    r = stage(api, member, image["id"], data)
    assert r.status_code == 204, r.text
    shown = api.get(f"{IMAGES}/{image['id']}", headers=member.headers).json()
    assert shown["status"] == "uploading"
    assert "stores" not in shown
    # Nothing to download until imported.
    assert api.get(f"{IMAGES}/{image['id']}/file", headers=member.headers).status_code == 204
    r = do_import(api, member, image["id"])
    assert r.status_code == 202, r.text
    shown = api.get(f"{IMAGES}/{image['id']}", headers=member.headers).json()
    assert shown["status"] == "active"
    assert shown["size"] == len(data)
    assert shown["checksum"] == hashlib.md5(data).hexdigest()
    assert shown["os_hash_value"] == hashlib.sha512(data).hexdigest()
    assert shown["stores"] == "file"
    r = api.get(f"{IMAGES}/{image['id']}/file", headers=member.headers)
    assert r.content == data


def test_import_with_the_file_store_named(api, member):
    image = create(api, member)
    assert stage(api, member, image["id"], b"abc").status_code == 204
    r = do_import(api, member, image["id"], {**DIRECT, "stores": ["file"]})
    assert r.status_code == 202
    assert status(api, member, image["id"]) == "active"


def test_import_before_staging_is_409_and_changes_nothing(api, member):
    image = create(api, member)
    r = do_import(api, member, image["id"])
    assert r.status_code == 409
    assert "staged" in r.text
    assert status(api, member, image["id"]) == "queued"


def test_staging_twice_or_after_upload_is_409(api, member):
    image = create(api, member)
    assert stage(api, member, image["id"], b"one").status_code == 204
    assert stage(api, member, image["id"], b"two").status_code == 409
    assert api.put(f"{IMAGES}/{image['id']}/file", content=b"x",
                   headers={**member.headers, "Content-Type": OCTET}).status_code == 409
    assert do_import(api, member, image["id"]).status_code == 202
    assert do_import(api, member, image["id"]).status_code == 409
    assert status(api, member, image["id"]) == "active"


@pytest.mark.parametrize("body, field", [
    ({}, "method"), ({"method": "glance-direct"}, "method"), ({"method": {}}, "name"),
    ({"method": {"name": "web-download", "uri": "http://169.254.169.254/"}}, "method/name"),
    ({"method": {"name": "copy-image"}}, "method/name"), ({"method": {"name": 3}}, "name"),
    ({**DIRECT, "stores": ["ceph"]}, "stores"), ({**DIRECT, "stores": "file"}, "stores"),
    ({**DIRECT, "all_stores": "yes"}, "all_stores"), ([], "body"),
])
def test_bad_import_bodies_are_400_naming_the_field_and_leave_the_image_staged(api, member,
                                                                               body, field):
    image = create(api, member)
    assert stage(api, member, image["id"], b"data").status_code == 204
    r = do_import(api, member, image["id"], body)
    assert r.status_code == 400, r.text
    if field != "body":
        assert field in r.text
    assert status(api, member, image["id"]) == "uploading"
    assert do_import(api, member, image["id"]).status_code == 202


def test_authorisation(api, admin, member, reader, other_member):
    image = create(api, member)
    iid = image["id"]
    assert stage(api, reader, iid, b"r").status_code == 403
    assert stage(api, other_member, iid, b"o").status_code == 404
    assert status(api, member, iid) == "queued"
    assert stage(api, member, iid, b"m").status_code == 204
    assert do_import(api, reader, iid).status_code == 403
    assert do_import(api, other_member, iid).status_code == 404
    assert status(api, member, iid) == "uploading"
    assert do_import(api, admin, iid).status_code == 202
    assert status(api, member, iid) == "active"
    # An admin stages and imports for any project; a public image is not another's to stage.
    pub = create(api, admin, visibility="public")
    assert stage(api, member, pub["id"], b"p").status_code == 403
    assert stage(api, admin, pub["id"], b"p").status_code == 204
    assert do_import(api, member, pub["id"]).status_code == 403
    assert do_import(api, admin, pub["id"]).status_code == 202


def test_stage_needs_octet_stream_and_formats(api, member):
    image = create(api, member)
    r = stage(api, member, image["id"], b"x", content_type="text/plain")
    assert r.status_code == 415
    bare = api.post(IMAGES, json={"name": "no-formats"}, headers=member.headers).json()
    r = stage(api, member, bare["id"], b"x")
    assert r.status_code == 400
    assert "disk_format" in r.text
    assert status(api, member, bare["id"]) == "queued"


def test_a_failed_stage_leaves_a_queued_image_that_can_be_staged_again(api, cloud, member,
                                                                        monkeypatch):
    from cirrus.storage import filestore

    image = create(api, member)
    original = filestore.ImageWriter.write

    def broken(self, chunk):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(filestore.ImageWriter, "write", broken)
    r = stage(api, member, image["id"], b"doomed")
    assert r.status_code == 503
    assert status(api, member, image["id"]) == "queued"
    staging = image_dir(cloud) / "staging"
    assert not staging.exists() or not any(staging.iterdir())
    monkeypatch.setattr(filestore.ImageWriter, "write", original)
    assert stage(api, member, image["id"], b"second try").status_code == 204
    assert do_import(api, member, image["id"]).status_code == 202
    assert api.get(f"{IMAGES}/{image['id']}/file", headers=member.headers).content == \
        b"second try"


def test_a_staged_image_can_be_deleted_with_its_data(api, cloud, member):
    image = create(api, member)
    assert stage(api, member, image["id"], b"staged").status_code == 204
    files = [p for p in image_dir(cloud).rglob("*") if p.is_file()]
    assert files
    assert api.delete(f"{IMAGES}/{image['id']}", headers=member.headers).status_code == 204
    assert not any(p.exists() for p in files)


def test_restart_recovery_of_stages_and_imports(api, cloud, member):
    """An interrupted stage goes back to queued; an interrupted import back to staged."""
    from cirrus.db.models import Image
    from cirrus.storage.filestore import FileStore

    staging = create(api, member)
    staged = create(api, member)
    importing = create(api, member)
    assert stage(api, member, staged["id"], b"kept").status_code == 204
    assert stage(api, member, importing["id"], b"kept too").status_code == 204

    def crash(s):
        s.get(Image, staging["id"]).status = "uploading"
        s.get(Image, importing["id"]).status = "importing"

    cloud.db.run(crash)
    image_data.recover_interrupted_uploads(cloud.db, FileStore(image_dir(cloud)))
    assert status(api, member, staging["id"]) == "queued"
    assert status(api, member, staged["id"]) == "uploading"
    assert status(api, member, importing["id"]) == "uploading"
    assert do_import(api, member, importing["id"]).status_code == 202
    r = api.get(f"{IMAGES}/{importing['id']}/file", headers=member.headers)
    assert r.content == b"kept too"


def test_an_import_that_fails_midway_leaves_the_image_staged(api, member, monkeypatch):
    image = create(api, member)
    assert stage(api, member, image["id"], b"payload").status_code == 204
    calls = {"n": 0}
    real = image_data.utcnow

    def flaky():
        calls["n"] += 1
        if calls["n"] == 2:  # the step from importing to active
            raise RuntimeError("database went away")
        return real()

    monkeypatch.setattr(image_data, "utcnow", flaky)
    r = do_import(api, member, image["id"])
    assert r.status_code == 500
    monkeypatch.setattr(image_data, "utcnow", real)
    assert status(api, member, image["id"]) == "uploading"
    assert do_import(api, member, image["id"]).status_code == 202
    assert status(api, member, image["id"]) == "active"
