"""Image members: sharing a `shared` image with another project, who accepts or rejects it,
and the compute side booting an image shared with it."""

from __future__ import annotations

import pytest

from tests.api.servers_helpers import server_body, wait_for_status
from tests.api.test_image import create, ids, upload

IMAGES = "/image/v2/images"


def members_url(image_id: str, member: str | None = None) -> str:
    return f"{IMAGES}/{image_id}/members" + (f"/{member}" if member else "")


def add(api, caller, image_id: str, project_id: str):
    return api.post(members_url(image_id), json={"member": project_id}, headers=caller.headers)


def answer(api, caller, image_id: str, project_id: str, status: str):
    return api.put(members_url(image_id, project_id), json={"status": status},
                   headers=caller.headers)


def listed(api, caller, query: str = "") -> set[str]:
    r = api.get(f"{IMAGES}?{query}", headers=caller.headers)
    assert r.status_code == 200, r.text
    return set(ids(r))


@pytest.fixture
def shared(api, member, other_member) -> str:
    """An active shared image of project-a with project-b added as a (pending) member."""
    image = create(api, member, name="to-share")
    assert upload(api, member, image["id"], b"shared bytes").status_code == 204
    r = add(api, member, image["id"], other_member.project_id)
    assert r.status_code == 200, r.text
    return image["id"]


def test_owner_adds_a_member_who_sees_the_image_pending(api, member, other_member):
    image = create(api, member)
    r = add(api, member, image["id"], other_member.project_id)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["member_id"] == other_member.project_id
    assert body["image_id"] == image["id"]
    assert body["status"] == "pending"
    assert body["schema"] == "/v2/schemas/member"
    assert body["created_at"] and body["updated_at"]
    # The member sees it by id at once, and in lists only when asking for pending ones.
    assert api.get(f"{IMAGES}/{image['id']}", headers=other_member.headers).status_code == 200
    assert image["id"] not in listed(api, other_member)
    assert image["id"] in listed(api, other_member, "member_status=pending")
    assert image["id"] in listed(api, other_member, "member_status=all")
    assert image["id"] not in listed(api, other_member, "member_status=accepted")


def test_accepting_lists_the_image_and_rejecting_hides_it(api, member, other_member, shared):
    r = answer(api, other_member, shared, other_member.project_id, "accepted")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "accepted"
    assert shared in listed(api, other_member)
    assert shared in listed(api, other_member, "visibility=shared")
    assert shared not in listed(api, other_member, "member_status=pending")
    r = answer(api, other_member, shared, other_member.project_id, "rejected")
    assert r.json()["status"] == "rejected"
    assert shared not in listed(api, other_member)
    assert shared in listed(api, other_member, "member_status=rejected")
    # Rejected members may still read the image by id, as in Glance.
    assert api.get(f"{IMAGES}/{shared}", headers=other_member.headers).status_code == 200
    # The owner's own list is not affected by the member's answer.
    assert shared in listed(api, member)


def test_members_are_listed_for_the_owner_and_only_itself_for_a_member(api, admin, member,
                                                                       other_member, shared):
    add(api, member, shared, "project-c-id")
    r = api.get(members_url(shared), headers=member.headers)
    assert r.status_code == 200
    assert r.json()["schema"] == "/v2/schemas/members"
    assert {m["member_id"] for m in r.json()["members"]} == {other_member.project_id,
                                                            "project-c-id"}
    r = api.get(members_url(shared), headers=other_member.headers)
    assert [m["member_id"] for m in r.json()["members"]] == [other_member.project_id]
    r = api.get(members_url(shared, "project-c-id"), headers=other_member.headers)
    assert r.status_code == 404
    r = api.get(members_url(shared, other_member.project_id), headers=other_member.headers)
    assert r.status_code == 200 and r.json()["status"] == "pending"
    assert len(api.get(members_url(shared), headers=admin.headers).json()["members"]) == 2


def test_reader_of_the_owner_project_reads_members_but_changes_nothing(api, member, reader,
                                                                       other_member, shared):
    r = api.get(members_url(shared), headers=reader.headers)
    assert r.status_code == 200
    assert add(api, reader, shared, "project-z").status_code == 403
    r = api.delete(members_url(shared, other_member.project_id), headers=reader.headers)
    assert r.status_code == 403
    members = api.get(members_url(shared), headers=member.headers).json()["members"]
    assert [m["member_id"] for m in members] == [other_member.project_id]


def test_only_the_owner_or_admin_adds_and_removes_members(api, admin, member, other_member,
                                                          shared):
    # The member project sees the image but may not share it further nor remove itself.
    assert add(api, other_member, shared, "project-z").status_code == 403
    r = api.delete(members_url(shared, other_member.project_id), headers=other_member.headers)
    assert r.status_code == 403
    # An admin may.
    assert add(api, admin, shared, "project-z").status_code == 200
    assert api.delete(members_url(shared, "project-z"), headers=admin.headers).status_code == 204
    # The owner removes the member, who no longer sees the image.
    r = api.delete(members_url(shared, other_member.project_id), headers=member.headers)
    assert r.status_code == 204
    assert api.get(f"{IMAGES}/{shared}", headers=other_member.headers).status_code == 404
    r = api.delete(members_url(shared, other_member.project_id), headers=member.headers)
    assert r.status_code == 404


def test_a_stranger_does_not_see_the_image_or_its_members(api, cloud, member, shared):
    from tests.conftest import make_caller

    stranger = make_caller(cloud, "carol", "project-c", "member")
    assert api.get(members_url(shared), headers=stranger.headers).status_code == 404
    assert add(api, stranger, shared, stranger.project_id).status_code == 404
    r = answer(api, stranger, shared, stranger.project_id, "accepted")
    assert r.status_code == 404
    assert shared not in listed(api, stranger, "member_status=all")


def test_only_the_member_changes_its_status(api, cloud, admin, member, other_member, shared):
    from tests.conftest import make_caller

    r = answer(api, member, shared, other_member.project_id, "accepted")
    assert r.status_code == 403
    # A reader of the member project may not answer for it either.
    member_reader = make_caller(cloud, "rob", "project-b", "reader")
    r = answer(api, member_reader, shared, other_member.project_id, "accepted")
    assert r.status_code == 403
    r = api.get(members_url(shared, other_member.project_id), headers=member.headers)
    assert r.json()["status"] == "pending"
    assert answer(api, admin, shared, other_member.project_id, "accepted").status_code == 200


def test_only_shared_images_have_members(api, admin, member, other_member):
    private = create(api, member, visibility="private")
    r = add(api, member, private["id"], other_member.project_id)
    assert r.status_code == 403
    assert "shared" in r.text
    public = create(api, admin, visibility="public")
    assert add(api, admin, public["id"], other_member.project_id).status_code == 403
    assert api.get(members_url(private["id"]), headers=member.headers).json()["members"] == []


def test_making_a_shared_image_private_hides_it_from_members(api, member, other_member, shared):
    answer(api, other_member, shared, other_member.project_id, "accepted")
    r = api.patch(f"{IMAGES}/{shared}", json=[{"op": "replace", "path": "/visibility",
                                                "value": "private"}],
                  headers={**member.headers,
                           "Content-Type": "application/openstack-images-v2.1-json-patch"})
    assert r.status_code == 200, r.text
    assert api.get(f"{IMAGES}/{shared}", headers=other_member.headers).status_code == 404
    assert shared not in listed(api, other_member, "member_status=all")


def test_adding_a_member_twice_conflicts(api, member, other_member, shared):
    r = add(api, member, shared, other_member.project_id)
    assert r.status_code == 409
    assert other_member.project_id in r.text


@pytest.mark.parametrize("body, field", [
    ({}, "member"), ({"member": ""}, "member"), ({"member": 5}, "member"),
    ({"member": "x" * 65}, "member"), ({"member": "   "}, "member"),
])
def test_bad_member_bodies_are_400_naming_the_field(api, member, shared, body, field):
    r = api.post(members_url(shared), json=body, headers=member.headers)
    assert r.status_code == 400, r.text
    assert field in r.text
    assert len(api.get(members_url(shared), headers=member.headers).json()["members"]) == 1


@pytest.mark.parametrize("body", [{}, {"status": "maybe"}, {"status": 1}, ["accepted"]])
def test_bad_status_bodies_are_400_naming_the_field(api, other_member, shared, body):
    r = api.put(members_url(shared, other_member.project_id), json=body,
                headers=other_member.headers)
    assert r.status_code == 400, r.text
    if isinstance(body, dict):
        assert "status" in r.text
    r = api.get(members_url(shared, other_member.project_id), headers=other_member.headers)
    assert r.json()["status"] == "pending"


def test_deleting_the_image_removes_its_members(api, member, other_member, shared):
    assert api.delete(f"{IMAGES}/{shared}", headers=member.headers).status_code == 204
    assert api.get(members_url(shared), headers=other_member.headers).status_code == 404
    assert shared not in listed(api, other_member, "member_status=all")


def test_member_schemas(api, member):
    r = api.get("/image/v2/schemas/member", headers=member.headers)
    assert r.status_code == 200
    assert r.json()["name"] == "member"
    assert r.json()["properties"]["status"]["enum"] == ["pending", "accepted", "rejected"]
    r = api.get("/image/v2/schemas/members", headers=member.headers)
    assert r.json()["name"] == "members"


def test_the_member_project_boots_an_accepted_shared_image(api, member, other_member, flavor,
                                                           shared):
    r = answer(api, other_member, shared, other_member.project_id, "accepted")
    assert r.status_code == 200
    r = api.post("/compute/v2.1/servers", json=server_body(flavor, shared),
                 headers=other_member.compute())
    assert r.status_code == 202, r.text
    server = wait_for_status(api, other_member.compute(), r.json()["server"]["id"], "ACTIVE")
    assert server["image"]["id"] == shared


def test_a_project_the_image_is_not_shared_with_cannot_boot_it(api, cloud, member, flavor,
                                                               shared):
    from tests.conftest import make_caller

    stranger = make_caller(cloud, "carol", "project-c", "member")
    r = api.post("/compute/v2.1/servers", json=server_body(flavor, shared),
                 headers=stranger.compute())
    assert r.status_code == 400
    assert shared in r.text


ODD_BODIES = [None, [], 1.5, "member", {"member": None}, {"member": ["x"]}, {"member": {}},
              {"status": None}, {"status": ["accepted"]}, {"member": "p", "extra": 1}]


@pytest.mark.parametrize("body", ODD_BODIES)
def test_odd_bodies_never_500(api, member, other_member, shared, body):
    for r in (api.post(members_url(shared), json=body, headers=member.headers),
              api.put(members_url(shared, other_member.project_id), json=body,
                      headers=other_member.headers),
              api.post(f"{IMAGES}/{shared}/import", json=body, headers=member.headers)):
        assert r.status_code < 500, r.text
    r = api.post(members_url(shared), content=b"{not json", headers={
        **member.headers, "Content-Type": "application/json"})
    assert r.status_code == 400
