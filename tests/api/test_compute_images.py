"""The compute API's images proxy (below 2.36): list, detail, show, delete, metadata."""

from __future__ import annotations

import uuid

import pytest

from cirrus.db.models import Image
from tests.api.servers_helpers import add_image

BASE = "/compute/v2.1"
V = "2.35"


@pytest.fixture
def snapshot(cloud, member) -> tuple[str, str]:
    image_id, server_id = str(uuid.uuid4()), str(uuid.uuid4())
    cloud.db.run(lambda s: s.add(Image(
        id=image_id, name="snap", owner=member.project_id, status="active",
        visibility="private", disk_format="qcow2", container_format="bare", size=2048,
        min_disk=1, tags=[], properties={"image_type": "snapshot", "instance_uuid": server_id,
                                         "color": "blue"})))
    return image_id, server_id


def test_list_detail_show(api, member, reader, image, snapshot):
    image_id, server_id = snapshot
    for caller in (member, reader):
        listed = api.get(f"{BASE}/images", headers=caller.compute(V)).json()["images"]
        assert {i["id"] for i in listed} >= {image, image_id}
        assert set(listed[0]) == {"id", "name", "links"}
        detail = {i["id"]: i for i in api.get(f"{BASE}/images/detail",
                                             headers=caller.compute(V)).json()["images"]}
        snap = detail[image_id]
        assert snap["status"] == "ACTIVE" and snap["progress"] == 100
        assert snap["server"]["id"] == server_id and snap["minDisk"] == 1
        assert snap["metadata"]["color"] == "blue" and snap["OS-EXT-IMG-SIZE:size"] == 2048
        shown = api.get(f"{BASE}/images/{image_id}", headers=caller.compute(V)).json()["image"]
        assert shown == snap
    r = api.get(f"{BASE}/images/detail?server={server_id}", headers=member.compute(V))
    assert [i["id"] for i in r.json()["images"]] == [image_id]
    r = api.get(f"{BASE}/images?limit=1", headers=member.compute(V))
    assert len(r.json()["images"]) == 1 and r.json()["images_links"][0]["rel"] == "next"


def test_gone_from_2_36(api, member, snapshot):
    image_id, _ = snapshot
    for path in ("images", "images/detail", f"images/{image_id}", f"images/{image_id}/metadata"):
        assert api.get(f"{BASE}/{path}", headers=member.compute("2.36")).status_code == 404
    assert api.get(f"{BASE}/images", headers=member.compute("2.1")).status_code == 200


def test_other_projects_and_readers(api, member, reader, other_member, snapshot):
    image_id, _ = snapshot
    assert api.get(f"{BASE}/images/{image_id}", headers=other_member.compute(V)).status_code == 404
    assert api.delete(f"{BASE}/images/{image_id}",
                      headers=other_member.compute(V)).status_code == 404
    assert image_id not in {i["id"] for i in api.get(
        f"{BASE}/images", headers=other_member.compute(V)).json()["images"]}
    assert api.delete(f"{BASE}/images/{image_id}", headers=reader.compute(V)).status_code == 403
    r = api.post(f"{BASE}/images/{image_id}/metadata", headers=reader.compute(V),
                 json={"metadata": {"a": "b"}})
    assert r.status_code == 403
    assert api.get(f"{BASE}/images/{image_id}", headers=member.compute(V)).status_code == 200


def test_metadata_routes(api, member, snapshot):
    image_id, _ = snapshot
    url = f"{BASE}/images/{image_id}/metadata"
    assert api.get(url, headers=member.compute(V)).json()["metadata"]["color"] == "blue"
    r = api.post(url, headers=member.compute(V), json={"metadata": {"size_hint": "s"}})
    assert r.status_code == 200 and r.json()["metadata"]["size_hint"] == "s"
    assert r.json()["metadata"]["color"] == "blue"
    r = api.put(f"{url}/color", headers=member.compute(V), json={"meta": {"color": "red"}})
    assert r.json() == {"meta": {"color": "red"}}
    assert api.get(f"{url}/color", headers=member.compute(V)).json() == {"meta": {"color": "red"}}
    assert api.delete(f"{url}/color", headers=member.compute(V)).status_code == 204
    assert api.get(f"{url}/color", headers=member.compute(V)).status_code == 404
    assert api.delete(f"{url}/color", headers=member.compute(V)).status_code == 404
    r = api.put(url, headers=member.compute(V), json={"metadata": {"only": "this"}})
    assert r.status_code == 200
    meta = r.json()["metadata"]
    assert meta["only"] == "this" and "size_hint" not in meta


@pytest.mark.parametrize(("path", "body", "field"), [
    ("metadata", {"metadata": {"k": 1}}, "metadata"),
    ("metadata", {"meta": {"k": "v"}}, "meta"),
    ("metadata", {"metadata": {"name": "renamed"}}, "metadata"),
    ("metadata/k", {"meta": {"k": "v", "j": "w"}}, "meta"),
    ("metadata/k", {"meta": {"other": "v"}}, "URI"),
])
def test_bad_metadata_is_400_and_changes_nothing(api, member, snapshot, path, body, field):
    image_id, _ = snapshot
    before = api.get(f"{BASE}/images/{image_id}", headers=member.compute(V)).json()
    method = "POST" if path == "metadata" else "PUT"
    r = api.request(method, f"{BASE}/images/{image_id}/{path}", headers=member.compute(V),
                    json=body)
    assert r.status_code == 400, r.text
    assert field in r.json()["badRequest"]["message"]
    assert api.get(f"{BASE}/images/{image_id}", headers=member.compute(V)).json() == before


def test_delete_and_admin(api, cloud, admin, member, snapshot):
    image_id, _ = snapshot
    other = add_image(cloud, owner=member.project_id, visibility="private")
    assert api.delete(f"{BASE}/images/{other}", headers=admin.compute(V)).status_code == 204
    assert api.delete(f"{BASE}/images/{image_id}", headers=member.compute(V)).status_code == 204
    assert api.get(f"{BASE}/images/{image_id}", headers=member.compute(V)).status_code == 404
