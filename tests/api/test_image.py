"""The Glance v2 subset under /image: documents, metadata, visibility, policy, data."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import anyio
import pytest

from cirrus.api.app import create_app
from cirrus.storage import filestore
from cirrus.storage.filestore import FileStore

PATCH = "application/openstack-images-v2.1-json-patch"
OCTET = "application/octet-stream"


def create(api, caller, **fields):
    body = {"name": "img", "disk_format": "raw", "container_format": "bare", **fields}
    r = api.post("/image/v2/images", json=body, headers=caller.headers)
    assert r.status_code == 201, r.text
    return r.json()


def upload(api, caller, image_id, data: bytes, content_type: str = OCTET):
    return api.put(f"/image/v2/images/{image_id}/file", content=data,
                   headers={**caller.headers, "Content-Type": content_type})


def patch(api, caller, image_id, ops, content_type: str = PATCH):
    return api.patch(f"/image/v2/images/{image_id}", json=ops,
                     headers={**caller.headers, "Content-Type": content_type})


def ids(response) -> list[str]:
    return [image["id"] for image in response.json()["images"]]


def image_dir(cloud) -> Path:
    return Path(cloud.settings.effective_image_dir)


# ---------------------------------------------------------------- versions


@pytest.mark.parametrize("path", ["/image", "/image/", "/image/v2", "/image/v2/"])
def test_version_document_lists_v2_versions_without_auth(api, path):
    r = api.get(path)
    assert r.status_code == 300
    versions = r.json()["versions"]
    assert versions[0] == {"id": "v2.15", "status": "CURRENT",
                           "links": [{"rel": "self", "href": "http://testserver/image/v2/"}]}
    listed = {v["id"] for v in versions}
    assert {"v2.0", "v2.1", "v2.2", "v2.3"} <= listed
    assert all(v["status"] == "SUPPORTED" for v in versions[1:])


def test_image_routes_need_a_token(api):
    r = api.get("/image/v2/images")
    assert r.status_code == 401
    assert r.json()["code"] == 401 and r.json()["error"]["code"] == 401
    assert api.get(f"/image/v2/images/{uuid.uuid4()}/file").status_code == 401


# ---------------------------------------------------------------- create


def test_create_records_a_queued_shared_image_owned_by_the_project(api, member):
    r = api.post("/image/v2/images", headers=member.headers, json={
        "name": "cirros", "disk_format": "qcow2", "container_format": "bare", "min_ram": 64,
        "min_disk": 1, "tags": ["a", "b", "a"], "os_distro": "cirros", "protected": False,
    })
    assert r.status_code == 201
    image = r.json()
    assert image["status"] == "queued"
    assert image["visibility"] == "shared"  # Glance's default: the owner's until shared
    assert image["owner"] == member.project_id
    assert image["os_distro"] == "cirros"
    assert image["tags"] == ["a", "b"]
    assert (image["min_ram"], image["min_disk"]) == (64, 1)
    assert image["size"] is None and image["checksum"] is None
    assert image["self"] == f"/v2/images/{image['id']}"
    assert image["file"] == f"/v2/images/{image['id']}/file"
    assert image["schema"] == "/v2/schemas/image"
    assert image["created_at"].endswith("Z") and image["updated_at"].endswith("Z")
    assert r.headers["location"].endswith(f"/image/v2/images/{image['id']}")
    assert api.get(f"/image/v2/images/{image['id']}", headers=member.headers).json() == image


def test_create_with_a_chosen_id_and_a_duplicate_conflicts(api, member):
    image_id = str(uuid.uuid4())
    assert create(api, member, id=image_id)["id"] == image_id
    r = api.post("/image/v2/images", json={"id": image_id}, headers=member.headers)
    assert r.status_code == 409


@pytest.mark.parametrize("body, field", [
    ({"disk_format": "exe"}, "disk_format"),
    ({"container_format": "zip"}, "container_format"),
    ({"visibility": "everyone"}, "visibility"),
    ({"min_ram": -1}, "min_ram"),
    ({"min_disk": "1"}, "min_disk"),
    ({"protected": "yes"}, "protected"),
    ({"os_hidden": 1}, "os_hidden"),
    ({"name": "x" * 256}, "name"),
    ({"tags": "a"}, "tags"),
    ({"id": "not-a-uuid"}, "id"),
    ({"hw_disk_bus": 5}, "hw_disk_bus"),
    ({"nested": {"a": "b"}}, "nested"),
])
def test_create_with_bad_values_is_400_naming_the_field(api, member, body, field):
    r = api.post("/image/v2/images", json=body, headers=member.headers)
    assert r.status_code == 400
    assert field in r.json()["message"]


@pytest.mark.parametrize("field", ["status", "checksum", "size", "os_hash_value", "self",
                                   "created_at"])
def test_create_with_read_only_attributes_is_403(api, member, field):
    r = api.post("/image/v2/images", json={"name": "x", field: "v"}, headers=member.headers)
    assert r.status_code == 403
    assert r.json()["message"] == f"Attribute '{field}' is read-only."


@pytest.mark.parametrize("field", ["location", "deleted", "os_glance_importing_to_stores"])
def test_create_with_reserved_attributes_is_403(api, member, field):
    r = api.post("/image/v2/images", json={field: "v"}, headers=member.headers)
    assert r.status_code == 403
    assert "reserved" in r.json()["message"]


def test_create_rejects_bodies_that_are_not_objects(api, member):
    assert api.post("/image/v2/images", json=["x"], headers=member.headers).status_code == 400
    r = api.post("/image/v2/images", content=b"{nope", headers=member.headers)
    assert r.status_code == 400


def test_reader_cannot_create(api, reader):
    r = api.post("/image/v2/images", json={"name": "x"}, headers=reader.headers)
    assert r.status_code == 403
    assert r.json()["title"] == "Forbidden"


def test_only_admin_may_publish(api, member, admin):
    r = api.post("/image/v2/images", json={"visibility": "public"}, headers=member.headers)
    assert r.status_code == 403
    assert create(api, admin, visibility="public")["visibility"] == "public"
    assert create(api, member, visibility="community")["visibility"] == "community"
    assert create(api, member, visibility="shared")["visibility"] == "shared"


def test_member_cannot_create_images_for_another_project(api, member, other_member, admin):
    r = api.post("/image/v2/images", json={"owner": other_member.project_id},
                 headers=member.headers)
    assert r.status_code == 403
    assert create(api, admin, owner=other_member.project_id)["owner"] == other_member.project_id


def test_too_many_properties_is_413(api, member):
    body = {f"p{i}": "v" for i in range(129)}
    assert api.post("/image/v2/images", json=body, headers=member.headers).status_code == 413


# ---------------------------------------------------------------- show and visibility


def test_another_projects_private_image_is_404(api, member, other_member):
    image = create(api, member)
    r = api.get(f"/image/v2/images/{image['id']}", headers=other_member.headers)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == 404
    assert image["id"] not in ids(api.get("/image/v2/images", headers=other_member.headers))
    r = patch(api, other_member, image["id"], [{"op": "replace", "path": "/name", "value": "x"}])
    assert r.status_code == 404
    assert api.delete(f"/image/v2/images/{image['id']}",
                      headers=other_member.headers).status_code == 404
    assert upload(api, other_member, image["id"], b"x").status_code == 404


def test_unknown_image_is_404(api, member):
    assert api.get(f"/image/v2/images/{uuid.uuid4()}", headers=member.headers).status_code == 404
    assert api.get("/image/v2/images/" + "x" * 300, headers=member.headers).status_code == 404


def test_public_images_are_seen_but_not_changed_by_other_projects(api, admin, member):
    image = create(api, admin, visibility="public")
    assert api.get(f"/image/v2/images/{image['id']}", headers=member.headers).status_code == 200
    assert image["id"] in ids(api.get("/image/v2/images", headers=member.headers))
    r = patch(api, member, image["id"], [{"op": "replace", "path": "/name", "value": "mine"}])
    assert r.status_code == 403
    assert api.delete(f"/image/v2/images/{image['id']}", headers=member.headers).status_code == 403


def test_community_images_show_by_id_and_only_when_listed_by_visibility(api, member,
                                                                        other_member):
    image = create(api, other_member, visibility="community")
    assert api.get(f"/image/v2/images/{image['id']}", headers=member.headers).status_code == 200
    assert image["id"] not in ids(api.get("/image/v2/images", headers=member.headers))
    listed = api.get("/image/v2/images?visibility=community", headers=member.headers)
    assert ids(listed) == [image["id"]]
    assert image["id"] in ids(api.get("/image/v2/images?visibility=all", headers=member.headers))
    # the owner sees their own community image in the default list
    assert image["id"] in ids(api.get("/image/v2/images", headers=other_member.headers))


def test_admin_sees_every_project_image(api, admin, member):
    image = create(api, member)
    assert api.get(f"/image/v2/images/{image['id']}", headers=admin.headers).status_code == 200
    assert image["id"] in ids(api.get("/image/v2/images", headers=admin.headers))


def test_reader_can_list_show_and_download(api, member, reader):
    image = create(api, member)
    assert upload(api, member, image["id"], b"data").status_code == 204
    assert image["id"] in ids(api.get("/image/v2/images", headers=reader.headers))
    assert api.get(f"/image/v2/images/{image['id']}", headers=reader.headers).status_code == 200
    r = api.get(f"/image/v2/images/{image['id']}/file", headers=reader.headers)
    assert r.status_code == 200 and r.content == b"data"


def test_reader_cannot_change_anything(api, member, reader):
    image = create(api, member)
    iid = image["id"]
    assert patch(api, reader, iid, [{"op": "replace", "path": "/name", "value": "x"}]
                 ).status_code == 403
    assert api.delete(f"/image/v2/images/{iid}", headers=reader.headers).status_code == 403
    assert upload(api, reader, iid, b"x").status_code == 403
    assert api.put(f"/image/v2/images/{iid}/tags/t", headers=reader.headers).status_code == 403


# ---------------------------------------------------------------- list


def test_list_filters(api, member, admin):
    a = create(api, member, name="alpha", tags=["x86", "linux"], protected=True, os_distro="deb")
    b = create(api, member, name="beta", disk_format="qcow2", container_format="ovf",
               tags=["x86"])
    c = create(api, member, name="gamma", os_hidden=True)
    assert upload(api, member, b["id"], b"1234567890").status_code == 204
    pub = create(api, admin, name="public-one", visibility="public")

    def listed(query: str) -> set[str]:
        r = api.get(f"/image/v2/images?{query}", headers=member.headers)
        assert r.status_code == 200, r.text
        return set(ids(r))

    assert listed("") == {a["id"], b["id"], pub["id"]}  # hidden images left out
    assert listed("name=alpha") == {a["id"]}
    assert listed("name=in:alpha,beta") == {a["id"], b["id"]}
    assert listed("status=active") == {b["id"]}
    assert listed("visibility=public") == {pub["id"]}
    assert listed("visibility=shared") == {a["id"], b["id"]}
    assert listed("visibility=private") == set()
    assert listed(f"owner={member.project_id}") == {a["id"], b["id"]}
    assert listed("tag=x86") == {a["id"], b["id"]}
    assert listed("tag=x86&tag=linux") == {a["id"]}
    assert listed("protected=true") == {a["id"]}
    assert listed("protected=false") == {b["id"], pub["id"]}
    assert listed("os_hidden=true") == {c["id"]}
    assert listed("disk_format=qcow2") == {b["id"]}
    assert listed("container_format=ovf") == {b["id"]}
    assert listed("size_min=5&size_max=10") == {b["id"]}
    assert listed("size_min=11") == set()
    assert listed("os_distro=deb") == {a["id"]}
    assert listed("member_status=all") == {a["id"], b["id"], pub["id"]}
    assert listed("created_at=gte:2000-01-01T00:00:00Z") == {a["id"], b["id"], pub["id"]}
    assert listed("created_at=lt:2000-01-01T00:00:00Z") == set()


@pytest.mark.parametrize("query", [
    "visibility=everyone", "protected=maybe", "size_min=big", "limit=-1", "limit=x",
    "sort_key=owner", "sort_dir=up", "sort=name:sideways", "sort=name&sort_key=name",
    "member_status=maybe", "changes-since=2020-01-01", "created_at=gt:yesterday",
    "sort_key=name&sort_key=size&sort_dir=asc&sort_dir=desc&sort_dir=asc",
])
def test_list_rejects_bad_parameters(api, member, query):
    r = api.get(f"/image/v2/images?{query}", headers=member.headers)
    assert r.status_code == 400, query


def test_list_sorts_by_keys_and_directions(api, member):
    made = [create(api, member, name=name) for name in ("b", "a", "c")]
    newest_first = [m["id"] for m in reversed(made)]
    assert ids(api.get("/image/v2/images", headers=member.headers)) == newest_first
    by_name = api.get("/image/v2/images?sort_key=name&sort_dir=asc", headers=member.headers)
    assert [i["name"] for i in by_name.json()["images"]] == ["a", "b", "c"]
    by_name = api.get("/image/v2/images?sort=name:desc", headers=member.headers)
    assert [i["name"] for i in by_name.json()["images"]] == ["c", "b", "a"]
    two_keys = api.get("/image/v2/images?sort=status:asc,name:asc", headers=member.headers)
    assert [i["name"] for i in two_keys.json()["images"]] == ["a", "b", "c"]


def test_list_pages_with_limit_marker_and_next_link(api, member):
    made = [create(api, member, name=f"img-{i}")["id"] for i in range(5)]
    seen: list[str] = []
    url = "/image/v2/images?limit=2&sort_key=name&sort_dir=asc"
    pages = 0
    while url:
        r = api.get(url, headers=member.headers)
        body = r.json()
        assert body["schema"] == "/v2/schemas/images"
        assert body["first"].startswith("/v2/images?")
        assert "marker" not in parse_qs(urlparse(body["first"]).query)
        seen += ids(r)
        pages += 1
        url = "/image" + body["next"] if "next" in body else None
    assert seen == made
    assert pages == 3
    r = api.get("/image/v2/images?limit=0", headers=member.headers)
    assert r.json()["images"] == [] and "next" not in r.json()


def test_list_with_an_unknown_or_invisible_marker_is_400(api, member, other_member):
    hidden = create(api, other_member)
    for marker in (str(uuid.uuid4()), hidden["id"]):
        r = api.get(f"/image/v2/images?marker={marker}", headers=member.headers)
        assert r.status_code == 400


# ---------------------------------------------------------------- update


def test_patch_changes_core_fields_and_extra_properties(api, member):
    image = create(api, member, os_distro="debian", arch="x86_64")
    r = patch(api, member, image["id"], [
        {"op": "replace", "path": "/name", "value": "renamed"},
        {"op": "add", "path": "/min_ram", "value": 512},
        {"op": "add", "path": "/hw_disk_bus", "value": "scsi"},
        {"op": "replace", "path": "/os_distro", "value": "ubuntu"},
        {"op": "remove", "path": "/arch"},
        {"op": "replace", "path": "/tags", "value": ["t1", "t2"]},
        {"op": "replace", "path": "/protected", "value": True},
        {"op": "add", "path": "/a~1b", "value": "slash"},
    ])
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["name"] == "renamed" and got["min_ram"] == 512
    assert got["hw_disk_bus"] == "scsi" and got["os_distro"] == "ubuntu"
    assert "arch" not in got
    assert got["tags"] == ["t1", "t2"] and got["protected"] is True
    assert got["a/b"] == "slash"
    assert api.get(f"/image/v2/images/{image['id']}", headers=member.headers).json() == got


def test_patch_in_the_v2_0_dialect(api, member):
    image = create(api, member)
    r = patch(api, member, image["id"], [{"replace": "/name", "value": "old-style"}],
              content_type="application/openstack-images-v2.0-json-patch")
    assert r.status_code == 200 and r.json()["name"] == "old-style"


def test_patch_needs_the_json_patch_content_type(api, member):
    image = create(api, member)
    r = api.patch(f"/image/v2/images/{image['id']}", headers=member.headers,
                  json=[{"op": "replace", "path": "/name", "value": "x"}])
    assert r.status_code == 415
    assert "application/openstack-images-v2.1-json-patch" in r.headers["accept-patch"]


@pytest.mark.parametrize("field", ["id", "status", "checksum", "size", "os_hash_value",
                                   "virtual_size", "created_at", "file"])
def test_patching_read_only_fields_is_403(api, member, field):
    image = create(api, member)
    r = patch(api, member, image["id"], [{"op": "replace", "path": f"/{field}", "value": "x"}])
    assert r.status_code == 403
    assert r.json()["message"] == f"Attribute '{field}' is read-only."


@pytest.mark.parametrize("ops", [
    [{"op": "move", "path": "/name", "value": "x"}],
    [{"op": "test", "path": "/name", "value": "x"}],
    [{"path": "/name", "value": "x"}],
    [{"op": "replace", "value": "x"}],
    [{"op": "replace", "path": "/name"}],
    [{"op": "replace", "path": "name", "value": "x"}],
    [{"op": "replace", "path": "/a/b", "value": "x"}],
    [{"op": "replace", "path": "/", "value": "x"}],
    [{"op": "add", "path": "/a~2", "value": "x"}],
    ["replace"],
    {"op": "replace", "path": "/name", "value": "x"},
])
def test_malformed_patch_documents_are_400(api, member, ops):
    image = create(api, member)
    assert patch(api, member, image["id"], ops).status_code == 400


@pytest.mark.parametrize("op", [
    {"op": "add", "path": "/os_distro", "value": 7},
    {"op": "add", "path": "/os_distro", "value": ["list"]},
    {"op": "replace", "path": "/min_disk", "value": "ten"},
    {"op": "replace", "path": "/disk_format", "value": "floppy"},
    {"op": "replace", "path": "/visibility", "value": "world"},
    {"op": "replace", "path": "/tags", "value": [1]},
])
def test_patch_values_of_the_wrong_type_are_400(api, member, op):
    image = create(api, member)
    r = patch(api, member, image["id"], [op])
    assert r.status_code == 400
    assert op["path"][1:] in r.json()["message"]


def test_patch_semantics_for_missing_and_core_properties(api, member):
    image = create(api, member)
    iid = image["id"]
    r = patch(api, member, iid, [{"op": "replace", "path": "/nope", "value": "x"}])
    assert r.status_code == 409
    assert patch(api, member, iid, [{"op": "remove", "path": "/nope"}]).status_code == 409
    assert patch(api, member, iid, [{"op": "remove", "path": "/name"}]).status_code == 403
    assert patch(api, member, iid, [{"op": "add", "path": "/location", "value": "x"}]
                 ).status_code == 403
    r = patch(api, member, iid, [{"op": "replace", "path": "/visibility", "value": "public"}])
    assert r.status_code == 403
    r = patch(api, member, iid, [{"op": "replace", "path": "/owner", "value": "someone"}])
    assert r.status_code == 403


def test_a_failed_patch_changes_nothing(api, member):
    image = create(api, member)
    r = patch(api, member, image["id"], [
        {"op": "replace", "path": "/name", "value": "changed"},
        {"op": "remove", "path": "/missing"},
    ])
    assert r.status_code == 409
    assert api.get(f"/image/v2/images/{image['id']}", headers=member.headers).json()["name"] == "img"


def test_formats_are_fixed_once_an_image_has_data(api, member):
    image = create(api, member)
    assert upload(api, member, image["id"], b"x").status_code == 204
    r = patch(api, member, image["id"], [{"op": "replace", "path": "/disk_format",
                                          "value": "qcow2"}])
    assert r.status_code == 403


def test_admin_may_publish_and_reassign_by_patch(api, admin, member, other_member):
    image = create(api, member)
    r = patch(api, admin, image["id"], [
        {"op": "replace", "path": "/visibility", "value": "public"},
        {"op": "replace", "path": "/owner", "value": other_member.project_id},
    ])
    assert r.status_code == 200
    assert (r.json()["visibility"], r.json()["owner"]) == ("public", other_member.project_id)


# ---------------------------------------------------------------- delete


def test_delete_removes_the_record_and_the_file(api, cloud, member):
    image = create(api, member)
    assert upload(api, member, image["id"], b"bytes on disk").status_code == 204
    data_file = image_dir(cloud) / image["id"]
    assert data_file.read_bytes() == b"bytes on disk"
    r = api.delete(f"/image/v2/images/{image['id']}", headers=member.headers)
    assert r.status_code == 204 and r.content == b""
    assert not data_file.exists()
    assert api.get(f"/image/v2/images/{image['id']}", headers=member.headers).status_code == 404
    assert api.delete(f"/image/v2/images/{image['id']}", headers=member.headers).status_code == 404


def test_protected_images_cannot_be_deleted(api, member):
    image = create(api, member, protected=True)
    r = api.delete(f"/image/v2/images/{image['id']}", headers=member.headers)
    assert r.status_code == 403
    assert patch(api, member, image["id"], [{"op": "replace", "path": "/protected",
                                             "value": False}]).status_code == 200
    assert api.delete(f"/image/v2/images/{image['id']}", headers=member.headers).status_code == 204


# ---------------------------------------------------------------- tags


def test_tags_are_added_once_and_removed(api, member):
    image = create(api, member)
    base = f"/image/v2/images/{image['id']}/tags"
    assert api.put(f"{base}/web", headers=member.headers).status_code == 204
    assert api.put(f"{base}/web", headers=member.headers).status_code == 204
    assert api.put(f"{base}/db", headers=member.headers).status_code == 204
    shown = api.get(f"/image/v2/images/{image['id']}", headers=member.headers).json()
    assert shown["tags"] == ["web", "db"]
    assert api.delete(f"{base}/web", headers=member.headers).status_code == 204
    assert api.delete(f"{base}/web", headers=member.headers).status_code == 404
    assert api.put(f"{base}/{'t' * 256}", headers=member.headers).status_code == 400
    shown = api.get(f"/image/v2/images/{image['id']}", headers=member.headers).json()
    assert shown["tags"] == ["db"]


# ---------------------------------------------------------------- deactivate / reactivate


def test_deactivation_by_admin_or_owner_blocks_downloads_for_non_admins(api, admin, member,
                                                                        reader, other_member):
    image = create(api, member)
    iid = image["id"]
    act = f"/image/v2/images/{iid}/actions"
    assert api.post(f"{act}/deactivate", headers=admin.headers).status_code == 403  # queued
    assert upload(api, member, iid, b"payload").status_code == 204
    assert api.post(f"{act}/deactivate", headers=reader.headers).status_code == 403
    assert api.post(f"{act}/deactivate", headers=other_member.headers).status_code == 404
    assert api.post(f"{act}/deactivate", headers=member.headers).status_code == 204
    assert api.post(f"{act}/deactivate", headers=admin.headers).status_code == 204
    assert api.get(f"/image/v2/images/{iid}", headers=member.headers).json()["status"] == \
        "deactivated"
    assert api.get(f"/image/v2/images/{iid}/file", headers=member.headers).status_code == 403
    assert api.get(f"/image/v2/images/{iid}/file", headers=reader.headers).status_code == 403
    assert api.get(f"/image/v2/images/{iid}/file", headers=admin.headers).content == b"payload"
    assert api.post(f"{act}/reactivate", headers=reader.headers).status_code == 403
    assert api.post(f"{act}/reactivate", headers=other_member.headers).status_code == 404
    assert api.post(f"{act}/reactivate", headers=member.headers).status_code == 204
    assert api.get(f"/image/v2/images/{iid}/file", headers=member.headers).content == b"payload"
    assert api.post(f"{act}/deactivate", headers=admin.headers).status_code == 204
    assert api.post(f"{act}/reactivate", headers=admin.headers).status_code == 204


# ---------------------------------------------------------------- schemas and info


def test_schemas_describe_images(api, member):
    r = api.get("/image/v2/schemas/image", headers=member.headers)
    assert r.status_code == 200
    schema = r.json()
    assert schema["name"] == "image"
    assert "raw" in schema["properties"]["disk_format"]["enum"]
    assert schema["properties"]["status"]["readOnly"] is True
    assert schema["additionalProperties"] == {"type": "string", "maxLength": 65535}
    r = api.get("/image/v2/schemas/images", headers=member.headers)
    assert r.json()["properties"]["images"]["items"]["name"] == "image"


def test_info_documents(api, member):
    r = api.get("/image/v2/info/import", headers=member.headers)
    assert r.json()["import-methods"]["value"] == ["glance-direct"]
    r = api.get("/image/v2/info/stores", headers=member.headers)
    assert r.json() == {"stores": [{"id": "file", "description": "Local file store",
                                    "default": "true"}]}


# ---------------------------------------------------------------- upload and download


def test_upload_computes_size_checksum_and_sha512(api, member):
    image = create(api, member)
    data = bytes(range(256)) * 4096 + b"tail"
    r = upload(api, member, image["id"], data)
    assert r.status_code == 204 and r.content == b""
    shown = api.get(f"/image/v2/images/{image['id']}", headers=member.headers).json()
    assert shown["status"] == "active"
    assert shown["size"] == len(data) and shown["virtual_size"] == len(data)
    assert shown["checksum"] == hashlib.md5(data).hexdigest()
    assert shown["os_hash_algo"] == "sha512"
    assert shown["os_hash_value"] == hashlib.sha512(data).hexdigest()
    assert shown["stores"] == "file"


def test_download_is_byte_identical_with_md5_and_length(api, member):
    image = create(api, member)
    data = b"\x00\x01binary\xff" * 300_000
    assert upload(api, member, image["id"], data).status_code == 204
    r = api.get(f"/image/v2/images/{image['id']}/file", headers=member.headers)
    assert r.status_code == 200
    assert r.content == data
    assert r.headers["content-md5"] == hashlib.md5(data).hexdigest()
    assert r.headers["content-length"] == str(len(data))
    assert r.headers["content-type"] == OCTET
    assert r.headers["x-openstack-request-id"].startswith("req-")


def test_download_of_an_image_without_data_is_204(api, member):
    image = create(api, member)
    r = api.get(f"/image/v2/images/{image['id']}/file", headers=member.headers)
    assert r.status_code == 204 and r.content == b""


def test_qcow2_upload_reads_the_virtual_size_from_the_header(api, member):
    import struct

    image = create(api, member, disk_format="qcow2")
    header = b"QFI\xfb" + struct.pack(">IQIIQ", 3, 0, 0, 16, 2 * 2**30)
    assert upload(api, member, image["id"], header + b"\x00" * 512).status_code == 204
    shown = api.get(f"/image/v2/images/{image['id']}", headers=member.headers).json()
    assert shown["virtual_size"] == 2 * 2**30


def test_upload_to_an_image_that_has_data_is_409(api, member):
    image = create(api, member)
    assert upload(api, member, image["id"], b"first").status_code == 204
    r = upload(api, member, image["id"], b"second")
    assert r.status_code == 409
    assert api.get(f"/image/v2/images/{image['id']}/file", headers=member.headers).content == \
        b"first"


def test_upload_needs_octet_stream_and_formats(api, member):
    image = create(api, member)
    assert upload(api, member, image["id"], b"x", content_type="text/plain").status_code == 415
    bare = api.post("/image/v2/images", json={"name": "no-formats"}, headers=member.headers).json()
    r = upload(api, member, bare["id"], b"x")
    assert r.status_code == 400
    assert "disk_format" in r.json()["message"]
    assert api.get(f"/image/v2/images/{bare['id']}", headers=member.headers).json()["status"] == \
        "queued"


def test_upload_to_another_projects_public_image_is_403(api, admin, member):
    image = create(api, admin, visibility="public")
    assert upload(api, member, image["id"], b"x").status_code == 403


def test_a_failing_store_puts_the_image_back_in_the_queue(api, cloud, member, monkeypatch):
    image = create(api, member)

    def broken_write(self, chunk):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(filestore.ImageWriter, "write", broken_write)
        r = upload(api, member, image["id"], b"data")
    assert r.status_code == 503
    shown = api.get(f"/image/v2/images/{image['id']}", headers=member.headers).json()
    assert shown["status"] == "queued" and shown["size"] is None
    assert not (image_dir(cloud) / image["id"]).exists()
    assert list((image_dir(cloud) / filestore.STAGING).iterdir()) == []
    assert upload(api, member, image["id"], b"data").status_code == 204  # a retry works


# ---- driven at the ASGI level, to control how the body arrives


def _put_scope(path: str, token: str) -> dict:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "PUT",
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": b"", "client": ("127.0.0.1", 1234), "server": ("testserver", 80),
        "headers": [(b"host", b"testserver"), (b"x-auth-token", token.encode()),
                    (b"content-type", OCTET.encode())],
    }


def _asgi_put(cloud, path: str, token: str, events: list) -> int:
    """Send `events` (body chunks, callables to run between them, or "disconnect")."""
    app = create_app(cloud)
    pending = list(events)
    sent: list[dict] = []

    async def receive() -> dict:
        while pending and callable(pending[0]):
            pending.pop(0)()
        if not pending:
            return {"type": "http.request", "body": b"", "more_body": False}
        item = pending.pop(0)
        if item == "disconnect":
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": item, "more_body": True}

    async def send(message: dict) -> None:
        sent.append(message)

    anyio.run(app, _put_scope(path, token), receive, send)
    return next(m["status"] for m in sent if m["type"] == "http.response.start")


def test_upload_streams_the_body_to_disk_in_bounded_writes(api, cloud, member, monkeypatch):
    image = create(api, member)
    writes: list[int] = []
    original = filestore.ImageWriter.write

    def counting_write(self, chunk):
        writes.append(len(chunk))
        original(self, chunk)

    monkeypatch.setattr(filestore.ImageWriter, "write", counting_write)
    chunk = b"z" * (256 * 1024)
    status = _asgi_put(cloud, f"/image/v2/images/{image['id']}/file", member.token, [chunk] * 24)
    assert status == 204
    assert sum(writes) == len(chunk) * 24
    assert len(writes) >= 6 and max(writes) <= 2 * 1024 * 1024
    shown = api.get(f"/image/v2/images/{image['id']}", headers=member.headers).json()
    assert shown["checksum"] == hashlib.md5(chunk * 24).hexdigest()


def test_a_client_that_disconnects_mid_upload_leaves_a_queued_image_and_no_file(api, cloud,
                                                                                member):
    image = create(api, member)
    status = _asgi_put(cloud, f"/image/v2/images/{image['id']}/file", member.token,
                       [b"a" * 1000, b"b" * 1000, "disconnect"])
    assert status == 400
    shown = api.get(f"/image/v2/images/{image['id']}", headers=member.headers).json()
    assert shown["status"] == "queued"
    assert not (image_dir(cloud) / image["id"]).exists()
    assert list((image_dir(cloud) / filestore.STAGING).iterdir()) == []


def test_deleting_an_image_while_it_uploads_leaves_no_data(api, cloud, member):
    image = create(api, member)
    path = f"/image/v2/images/{image['id']}"

    def delete_now() -> None:
        assert api.get(path, headers=member.headers).json()["status"] == "saving"
        assert api.delete(path, headers=member.headers).status_code == 204

    status = _asgi_put(cloud, f"{path}/file", member.token, [b"a" * 1000, delete_now, b"b"])
    assert status == 410
    assert not (image_dir(cloud) / image["id"]).exists()
    assert list(FileStore(image_dir(cloud)).root.iterdir()) == [
        image_dir(cloud).resolve() / filestore.STAGING]


# ---------------------------------------------------------------- an upload cut by a crash


def test_an_upload_cut_by_a_crash_is_queued_again_at_restart_and_its_partial_file_removed(
        api, cloud, member):
    """The API process died mid-upload: the image is left `saving` with part of its data in
    a staging file. The next start (`cirrus api` and the all-in-one call
    recover_after_restart) puts it back to `queued` and removes the file; nothing else is
    touched, and the image can then be uploaded."""
    from cirrus.context import RequestContext
    from cirrus.storage import image_data

    done = create(api, member, name="done")
    assert upload(api, member, done["id"], b"d" * 2048).status_code == 204
    waiting = create(api, member, name="waiting")
    cut = create(api, member, name="cut")
    store = FileStore(image_dir(cloud))
    # What the upload had done when the process died: the status, and part of the data.
    ctx = RequestContext(user_id=member.user_id, project_id=member.project_id,
                         roles=["member"])
    image_data.begin_upload(cloud.db, ctx, cut["id"])
    writer = store.writer(cut["id"])
    writer.write(b"p" * 1000)
    writer._fh.close()
    staging = image_dir(cloud) / ".staging"
    assert len(list(staging.iterdir())) == 1
    assert api.get(f"/image/v2/images/{cut['id']}", headers=member.headers).json()[
        "status"] == "saving"
    done_files = sorted(p.name for p in image_dir(cloud).iterdir() if p.is_file())

    cloud.recover_after_restart()

    shown = {i: api.get(f"/image/v2/images/{i}", headers=member.headers).json()
             for i in (done["id"], waiting["id"], cut["id"])}
    assert shown[cut["id"]]["status"] == "queued"
    assert shown[cut["id"]]["size"] is None and shown[cut["id"]]["checksum"] is None
    assert list(staging.iterdir()) == []
    assert shown[done["id"]]["status"] == "active" and shown[done["id"]]["size"] == 2048
    assert shown[waiting["id"]]["status"] == "queued"
    assert sorted(p.name for p in image_dir(cloud).iterdir() if p.is_file()) == done_files
    # The upload can be made again, whole.
    assert upload(api, member, cut["id"], b"w" * 3000).status_code == 204
    again = api.get(f"/image/v2/images/{cut['id']}", headers=member.headers).json()
    assert again["status"] == "active" and again["size"] == 3000
    assert api.get(f"/image/v2/images/{cut['id']}/file", headers=member.headers).content == (
        b"w" * 3000)
