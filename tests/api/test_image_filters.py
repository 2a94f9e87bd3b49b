"""GET /v2/images filters beyond tests/api/test_image.py::test_list_filters: exact size,
the time operators, `in:` on each column, visibility `all`, os_hidden, and bad values
answered 400 naming the parameter."""

from __future__ import annotations

import time

import pytest

from tests.api.test_image import create, ids, upload

IMAGES = "/image/v2/images"


def listed(api, caller, query: str) -> set[str]:
    r = api.get(f"{IMAGES}?{query}", headers=caller.headers)
    assert r.status_code == 200, r.text
    return set(ids(r))


def test_size_filters(api, member):
    small = create(api, member, name="small")
    big = create(api, member, name="big")
    assert upload(api, member, small["id"], b"x" * 10).status_code == 204
    assert upload(api, member, big["id"], b"x" * 100).status_code == 204
    assert listed(api, member, "size=10") == {small["id"]}
    assert listed(api, member, "size=100") == {big["id"]}
    assert listed(api, member, "size=11") == set()
    assert listed(api, member, "size_min=10&size_max=99") == {small["id"]}
    assert listed(api, member, "size_min=11") == {big["id"]}
    assert listed(api, member, "size_max=100") == {small["id"], big["id"]}


def test_time_operators(api, member):
    first = create(api, member, name="first")
    time.sleep(1.1)  # shown times have whole seconds
    second = create(api, member, name="second")
    when = second["created_at"]
    assert listed(api, member, f"created_at=gte:{when}") == {second["id"]}
    assert listed(api, member, f"created_at=lt:{when}") == {first["id"]}
    assert listed(api, member, f"created_at=lte:{first['created_at']}") == {first["id"]}
    assert listed(api, member, f"created_at=gt:{first['created_at']}") == {second["id"]}
    assert listed(api, member, f"updated_at=gte:{when}") == {second["id"]}
    both = {first["id"], second["id"]}
    assert listed(api, member, "created_at=neq:2000-01-01T00:00:00Z") == both
    assert listed(api, member, "created_at=eq:2000-01-01T00:00:00Z") == set()


def test_in_operator_on_columns(api, member):
    a = create(api, member, name="a", disk_format="qcow2")
    b = create(api, member, name="b", disk_format="raw", container_format="ovf")
    assert listed(api, member, f"id=in:{a['id']},{b['id']}") == {a["id"], b["id"]}
    assert listed(api, member, "disk_format=in:qcow2,vmdk") == {a["id"]}
    assert listed(api, member, "container_format=in:ovf,ova") == {b["id"]}
    assert listed(api, member, "status=in:queued,active") == {a["id"], b["id"]}
    assert listed(api, member, "name=in:a,zzz") == {a["id"]}


def test_hidden_images_only_when_asked(api, member, other_member, admin):
    hidden = create(api, member, name="hidden", os_hidden=True)
    shown = create(api, member, name="shown")
    assert listed(api, member, "") == {shown["id"]}
    assert listed(api, member, "os_hidden=true") == {hidden["id"]}
    assert listed(api, member, "os_hidden=false") == {shown["id"]}
    r = api.get(f"{IMAGES}/{hidden['id']}", headers=member.headers)
    assert r.status_code == 200 and r.json()["os_hidden"] is True
    # Hidden public images are hidden from every project's default list too.
    pub = create(api, admin, name="hidden-public", visibility="public", os_hidden=True)
    assert pub["id"] not in listed(api, other_member, "")
    assert pub["id"] in listed(api, other_member, "os_hidden=true")


def test_visibility_all_and_community(api, member, other_member, admin):
    mine = create(api, member, name="mine")
    theirs_private = create(api, other_member, name="theirs", visibility="private")
    community = create(api, other_member, name="community", visibility="community")
    seen = listed(api, member, "visibility=all")
    assert {mine["id"], community["id"]} <= seen
    assert theirs_private["id"] not in seen
    assert community["id"] not in listed(api, member, "")
    assert listed(api, member, "visibility=community") == {community["id"]}
    assert {mine["id"], theirs_private["id"], community["id"]} <= listed(api, admin,
                                                                         "visibility=all")


def test_protected_filter(api, member):
    locked = create(api, member, protected=True)
    free = create(api, member)
    assert listed(api, member, "protected=true") == {locked["id"]}
    assert listed(api, member, "protected=false") == {free["id"]}


def test_protected_images_are_not_deleted_until_unprotected(api, member, admin, reader):
    image = create(api, member, protected=True)
    url = f"{IMAGES}/{image['id']}"
    for caller in (member, admin):
        r = api.delete(url, headers=caller.headers)
        assert r.status_code == 403
        assert "protected" in r.text
    assert api.delete(url, headers=reader.headers).status_code == 403
    r = api.patch(url, json=[{"op": "replace", "path": "/protected", "value": False}],
                  headers={**member.headers,
                           "Content-Type": "application/openstack-images-v2.1-json-patch"})
    assert r.status_code == 200
    assert api.delete(url, headers=member.headers).status_code == 204


def test_paging_follows_next_links_with_filters(api, member):
    made = {create(api, member, name=f"p{i}", tags=["page"])["id"] for i in range(5)}
    create(api, member, name="other")
    seen: list[str] = []
    url = f"{IMAGES}?tag=page&limit=2&sort=name:asc"
    while url:
        r = api.get(url, headers=member.headers)
        assert r.status_code == 200
        body = r.json()
        assert len(body["images"]) <= 2
        seen += [i["id"] for i in body["images"]]
        url = "/image" + body["next"] if "next" in body else ""
    assert set(seen) == made and len(seen) == 5


@pytest.mark.parametrize("query, name", [
    ("size=big", "size"), ("size=-1", "size"), ("size_min=x", "size_min"),
    ("size_max=1.5", "size_max"), ("size_max=99999999999999999999999", "size_max"),
    ("protected=yes", "protected"), ("os_hidden=2", "os_hidden"),
    ("member_status=maybe", "member_status"), ("visibility=friends", "visibility"),
    ("created_at=gt:soon", "created_at"), ("updated_at=around:2020-01-01", "updated_at"),
    ("limit=lots", "limit"), ("sort_key=owner", "sort key"), ("sort_dir=sideways", "sort"),
])
def test_bad_filters_are_400_naming_the_parameter(api, member, query, name):
    r = api.get(f"{IMAGES}?{query}", headers=member.headers)
    assert r.status_code == 400, r.text
    assert name in r.text
