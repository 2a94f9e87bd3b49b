"""The error branches of cirrus/compute/creation.py and instances.py, through the compute
API on the fake driver: each refusal is the 4xx Nova gives, in Nova's error shape, and changes nothing; a
build that fails on one host is retried on another and ends ACTIVE there.

(A partial `max_count` under the instances quota is in tests/security/test_work_bounds.py.)"""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from sqlalchemy import func, select, update

from cirrus.db.models import Image, Instance
from tests.api.servers_helpers import add_flavor, add_image, server_body, wait_for_status

SERVERS = "/compute/v2.1/servers"
NAMES = {400: "badRequest", 403: "forbidden", 404: "itemNotFound", 409: "conflictingRequest"}


def refused(r, status: int, words: str) -> None:
    """`r` is `status` in Nova's error shape, its message saying `words`."""
    assert r.status_code == status, r.text
    body = r.json()
    assert list(body) == [NAMES[status]], body
    assert body[NAMES[status]]["code"] == status
    assert words in body[NAMES[status]]["message"], body


def instance_count(cloud) -> int:
    with cloud.db.reader() as s:
        return s.scalar(select(func.count()).select_from(Instance))


def create(api, caller, flavor: str, image: str, **extra) -> str:
    r = api.post(SERVERS, json=server_body(flavor, image, **extra), headers=caller.compute())
    assert r.status_code == 202, r.text
    return r.json()["server"]["id"]


def set_image(cloud, image_id: str, **values) -> None:
    cloud.db.run(lambda s: s.execute(update(Image).where(Image.id == image_id).values(**values)))


# ---- create: refused before anything is written


def test_an_image_that_does_not_exist_is_a_400(api, cloud, member, flavor) -> None:
    missing = str(uuid.uuid4())
    r = api.post(SERVERS, json=server_body(flavor, missing), headers=member.compute())
    refused(r, 400, f"Image {missing} could not be found.")
    assert instance_count(cloud) == 0


def test_another_project_s_private_image_is_not_found(api, cloud, member, other_member,
                                                      flavor) -> None:
    private = add_image(cloud, owner=other_member.project_id, visibility="private")
    r = api.post(SERVERS, json=server_body(flavor, private), headers=member.compute())
    refused(r, 400, f"Image {private} could not be found.")
    assert instance_count(cloud) == 0


@pytest.mark.parametrize("status", ["queued", "saving", "deactivated", "killed"])
def test_an_image_that_is_not_active_is_a_400(api, cloud, member, flavor, status: str) -> None:
    image = add_image(cloud, status=status)
    r = api.post(SERVERS, json=server_body(flavor, image), headers=member.compute())
    refused(r, 400, f"Image {image} is not active.")
    assert instance_count(cloud) == 0


def test_an_image_ref_given_as_a_url_is_read_by_its_last_segment(api, cloud, member, flavor,
                                                                 image) -> None:
    sid = create(api, member, flavor, f"http://glance.example/v2/images/{image}/")
    assert wait_for_status(api, member.compute(), sid, "ACTIVE")["image"]["id"] == image


def test_min_count_greater_than_max_count_is_a_400(api, cloud, member, flavor, image) -> None:
    r = api.post(SERVERS, json=server_body(flavor, image, min_count=3, max_count=2),
                 headers=member.compute())
    refused(r, 400, "min_count must be <= max_count")
    assert instance_count(cloud) == 0


def test_a_flavor_disk_smaller_than_the_image_s_min_disk_is_a_400(api, cloud, member,
                                                                  image) -> None:
    flavor = add_flavor(cloud, name="tiny-disk", disk=1)
    set_image(cloud, image, min_disk=5)
    r = api.post(SERVERS, json=server_body(flavor, image), headers=member.compute())
    refused(r, 400, "Flavor's disk is too small for requested image. Flavor disk is 1 GB, "
                    "minimum requested disk is 5 GB.")
    assert instance_count(cloud) == 0


def test_a_flavor_with_disk_0_takes_any_min_disk(api, cloud, member, image) -> None:
    """Nova: a flavor of disk 0 grows the root disk to the image; min_disk does not apply."""
    flavor = add_flavor(cloud, name="disk-0", disk=0)
    set_image(cloud, image, min_disk=5)
    wait_for_status(api, member.compute(), create(api, member, flavor, image), "ACTIVE")


def test_a_flavor_memory_smaller_than_the_image_s_min_ram_is_a_400(api, cloud, member,
                                                                  image) -> None:
    flavor = add_flavor(cloud, name="tiny-ram", ram=512)
    set_image(cloud, image, min_ram=1024)
    r = api.post(SERVERS, json=server_body(flavor, image), headers=member.compute())
    refused(r, 400, "Flavor's memory is too small for requested image.")
    assert instance_count(cloud) == 0


def test_more_metadata_than_the_quota_is_a_403(api, cloud, member, flavor, image) -> None:
    cloud.settings.quota_metadata_items = 2
    metadata = {"a": "1", "b": "2", "c": "3"}
    r = api.post(SERVERS, json=server_body(flavor, image, metadata=metadata),
                 headers=member.compute())
    refused(r, 403, "Quota exceeded for metadata_items: 3 requested, 2 allowed.")
    assert instance_count(cloud) == 0
    # At the quota: accepted.
    create(api, member, flavor, image, metadata={"a": "1", "b": "2"})


def test_metadata_set_later_is_held_to_the_quota_too(api, cloud, member, flavor, image) -> None:
    cloud.settings.quota_metadata_items = 2
    sid = create(api, member, flavor, image, metadata={"a": "1"})
    wait_for_status(api, member.compute(), sid, "ACTIVE")
    r = api.post(f"{SERVERS}/{sid}/metadata", json={"metadata": {"b": "2", "c": "3"}},
                 headers=member.compute())
    refused(r, 403, "Quota exceeded for metadata_items: 3 items, 2 allowed.")
    r = api.get(f"{SERVERS}/{sid}/metadata", headers=member.compute())
    assert r.json()["metadata"] == {"a": "1"}  # unchanged


# ---- state races: 409s


def test_actions_on_a_server_that_is_still_building_are_409s(api, cloud, member, flavor,
                                                             image) -> None:
    cloud.settings.fake.boot_delay = 1.5  # the build's task_state stays set meanwhile
    sid = create(api, member, flavor, image)
    action = f"{SERVERS}/{sid}/action"
    for body, words in (({"os-stop": None}, "while it is in vm_state building"),
                        ({"os-start": None}, "while it is in vm_state building"),
                        ({"reboot": {"type": "SOFT"}}, "while it is in vm_state building"),
                        ({"os-getConsoleOutput": {}}, f"Instance {sid} is not ready: it has no "
                                                      "console yet.")):
        refused(api.post(action, json=body, headers=member.compute()), 409, words)
    server = wait_for_status(api, member.compute(), sid, "ACTIVE")  # the build was not disturbed
    assert server["OS-EXT-STS:power_state"] == 1


def test_an_action_while_another_task_runs_is_a_409(api, cloud, member, flavor, image) -> None:
    sid = create(api, member, flavor, image)
    wait_for_status(api, member.compute(), sid, "ACTIVE")
    # A stop under way, as another request leaves it (its task set until the agent is done).
    cloud.db.run(lambda s: s.execute(update(Instance).where(Instance.uuid == sid)
                                     .values(task_state="powering-off")))
    action = f"{SERVERS}/{sid}/action"
    refused(api.post(action, json={"os-stop": None}, headers=member.compute()), 409,
            "while it is in task_state powering-off")
    refused(api.post(action, json={"reboot": {"type": "SOFT"}}, headers=member.compute()), 409,
            "while it is in task_state powering-off")
    with cloud.db.reader() as s:
        assert s.scalar(select(Instance).where(Instance.uuid == sid)).task_state == "powering-off"  # nothing changed


def test_changing_metadata_while_the_server_is_deleted_is_a_409(api, cloud, member, flavor,
                                                                image) -> None:
    sid = create(api, member, flavor, image, metadata={"a": "1"})
    wait_for_status(api, member.compute(), sid, "ACTIVE")
    cloud.db.run(lambda s: s.execute(update(Instance).where(Instance.uuid == sid)
                                     .values(task_state="deleting")))
    r = api.put(f"{SERVERS}/{sid}/metadata/b", json={"meta": {"b": "2"}},
                headers=member.compute())
    refused(r, 409, f"Cannot change metadata of instance {sid} while it is being deleted")
    with cloud.db.reader() as s:
        assert s.scalar(select(Instance).where(Instance.uuid == sid)).metadata_items == {"a": "1"}


# ---- a build retried on another host


def _agents(cloud) -> dict:
    return {r.driver.host: r for r in cloud.roles if type(r).__name__ == "Agent"}


def test_a_build_that_fails_on_two_hosts_is_retried_and_ends_active_on_the_third(
        api, cloud, admin, member, image) -> None:
    """fake-3 is made the scheduler's last choice (a server on it takes RAM, and the
    scheduler prefers free RAM); fake-1 and fake-2 fail every spawn (the fake driver's
    failure_rate, set on those hosts' drivers alone). The build's three attempts go to both
    failing hosts and then to fake-3, where it is ACTIVE."""
    assert cloud.settings.build_max_attempts == 3 and cloud.settings.scheduler_host_subset_size == 1
    agents = _agents(cloud)
    assert sorted(agents) == ["fake-1", "fake-2", "fake-3"]
    big = add_flavor(cloud, name="big", vcpus=1, ram=4096)
    small = add_flavor(cloud, name="small", vcpus=1, ram=512)
    first = create(api, admin, big, image, availability_zone="nova:fake-3")
    assert wait_for_status(api, admin.compute(), first, "ACTIVE")["OS-EXT-SRV-ATTR:host"] == (
        "fake-3")
    for host in ("fake-1", "fake-2"):
        driver = agents[host].driver
        driver.options = dataclasses.replace(driver.options, failure_rate=1.0)

    sid = create(api, member, small, image)

    server = wait_for_status(api, admin.compute(), sid, "ACTIVE")
    assert server["OS-EXT-SRV-ATTR:host"] == "fake-3"
    assert "fault" not in server
    with cloud.db.reader() as s:
        inst = s.scalar(select(Instance).where(Instance.uuid == sid))
        assert sorted(inst.tried_hosts) == ["fake-1", "fake-2"]
        assert inst.build_attempts == 2  # two failed, the third built
    assert sid in agents["fake-3"].driver.list_instances()
    assert all(sid not in agents[h].driver.list_instances() for h in ("fake-1", "fake-2"))
