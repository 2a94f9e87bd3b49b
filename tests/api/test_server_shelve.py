"""shelve, shelveOffload and unshelve on the fake driver: states, the shelved image, the
host's resources (the scheduler's view), ports kept, the periodic offload, refusals."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from sqlalchemy import select, update

from cirrus.agent.service import Agent
from cirrus.api.compute.microversion import MAX_VERSION
from cirrus.db.models import Allocation, ComputeNode, Image, Instance
from cirrus.virt.driver import SpawnError
from cirrus.virt.fake import snapshot_bytes
from tests.api.servers_helpers import add_flavor, add_image, server_body, wait_for_status


def act(api, caller, sid, body, microversion="2.60"):
    return api.post(f"/compute/v2.1/servers/{sid}/action", json=body,
                    headers=caller.compute(microversion))


def used(cloud) -> tuple[int, int, int, int]:
    """vcpus, memory_mb, local_gb and VMs claimed on all hosts, as the scheduler sees them."""
    with cloud.db.reader() as s:
        nodes = s.scalars(select(ComputeNode)).all()
        return (sum(n.vcpus_used for n in nodes), sum(n.memory_mb_used for n in nodes),
                sum(n.local_gb_used for n in nodes), sum(n.running_vms for n in nodes))


def vms_on_hosts(cloud) -> dict[str, str]:
    """uuid -> host of every VM the fake drivers have."""
    return {uuid: role.host for role in cloud.roles if isinstance(role, Agent)
            for uuid in role.driver.list_instances()}


def image_gone(cloud, image_id, timeout=10.0) -> bool:
    """The image record is deleted (the workflow does it just after the state changes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with cloud.db.reader() as s:
            if s.get(Image, image_id) is None:
                return True
        time.sleep(0.02)
    return False


def events_of(api, admin, sid, action):
    acts = api.get(f"/compute/v2.1/servers/{sid}/os-instance-actions",
                   headers=admin.compute()).json()["instanceActions"]
    act_ = next(a for a in acts if a["action"] == action)
    return api.get(f"/compute/v2.1/servers/{sid}/os-instance-actions/{act_['request_id']}",
                   headers=admin.compute()).json()["instanceAction"]["events"]


@pytest.fixture
def server(api, cloud, member):
    """An ACTIVE server named `vm` of project-a, on a flavor of 2 vCPU, 1024 MB, 3 GB."""
    flavor = add_flavor(cloud, name="shelvable", vcpus=2, ram=1024, disk=3)
    r = api.post("/compute/v2.1/servers", json=server_body(flavor, add_image(cloud)),
                 headers=member.compute())
    assert r.status_code == 202, r.text
    return wait_for_status(api, member.compute(), r.json()["server"]["id"], "ACTIVE")


def test_shelve_offloads_at_once_and_frees_the_host_then_unshelve_builds_it_again(
        api, cloud, member, admin, server):
    sid = server["id"]
    assert used(cloud) == (2, 1024, 3, 1)
    r = act(api, member, sid, {"shelve": None})
    assert r.status_code == 202, r.text
    shelved = wait_for_status(api, member.compute(), sid, "SHELVED_OFFLOADED")
    assert shelved["OS-EXT-STS:vm_state"] == "shelved_offloaded"
    assert shelved["OS-EXT-STS:power_state"] == 0
    admin_view = api.get(f"/compute/v2.1/servers/{sid}", headers=admin.compute()).json()["server"]
    assert admin_view["OS-EXT-SRV-ATTR:host"] is None
    # The host is freed: no claim, no VM.
    assert used(cloud) == (0, 0, 0, 0)
    assert sid not in vms_on_hosts(cloud)
    with cloud.db.reader() as s:
        assert s.get(Allocation, sid) is None
        inst = s.scalar(select(Instance).where(Instance.uuid == sid))
        image_id = inst.system_metadata["shelved_image_id"]
        image = s.get(Image, image_id)
        assert (image.name, image.status) == ("vm-shelved", "active")
    data = api.get(f"/image/v2/images/{image_id}/file", headers=member.headers).content
    assert data == snapshot_bytes(sid, "vm")
    assert [e["event"] for e in events_of(api, admin, sid, "shelve")] == [
        "compute_shelve_instance", "compute_shelve_offload_instance"]

    r = act(api, member, sid, {"unshelve": None})
    assert r.status_code == 202, r.text
    back = wait_for_status(api, member.compute(), sid, "ACTIVE")
    assert back["OS-EXT-STS:power_state"] == 1
    assert used(cloud) == (2, 1024, 3, 1)
    assert sid in vms_on_hosts(cloud)
    # The shelved image is gone once the server is back, as in Nova; its record is clean.
    assert image_gone(cloud, image_id)
    with cloud.db.reader() as s:
        sysmeta = s.scalar(select(Instance.system_metadata).where(Instance.uuid == sid))
    assert "shelved_image_id" not in sysmeta
    assert [(e["event"], e["result"]) for e in events_of(api, admin, sid, "unshelve")] == [
        ("compute_unshelve_instance", "Success")]


def test_ports_and_addresses_are_kept_across_offload_and_unshelve(api, cloud, member, admin,
                                                                  flavor, image):
    r = api.post("/compute/v2.1/servers",
                 json=server_body(flavor, image, networks="auto"), headers=member.compute())
    assert r.status_code == 202, r.text
    sid = r.json()["server"]["id"]
    before = wait_for_status(api, member.compute(), sid, "ACTIVE")
    assert before["addresses"]
    ports = api.get(f"/network/v2.0/ports?device_id={sid}", headers=member.headers)
    port_ids = sorted(p["id"] for p in ports.json()["ports"])
    assert port_ids
    assert act(api, member, sid, {"shelve": None}).status_code == 202
    offloaded = wait_for_status(api, member.compute(), sid, "SHELVED_OFFLOADED")
    assert offloaded["addresses"] == before["addresses"]
    unbound = api.get(f"/network/v2.0/ports?device_id={sid}", headers=admin.headers).json()
    assert [p["binding:host_id"] for p in unbound["ports"]] in ([None], [""])
    assert act(api, member, sid, {"unshelve": None}).status_code == 202
    after = wait_for_status(api, member.compute(), sid, "ACTIVE")
    assert after["addresses"] == before["addresses"]
    ports = api.get(f"/network/v2.0/ports?device_id={sid}", headers=member.headers).json()
    assert sorted(p["id"] for p in ports["ports"]) == port_ids


def test_with_offload_never_the_server_stays_shelved_on_its_host_until_an_admin_offloads(
        api, cloud, member, admin, reader, server):
    cloud.settings.shelved_offload_time = -1
    sid = server["id"]
    assert act(api, member, sid, {"shelve": None}).status_code == 202
    shelved = wait_for_status(api, member.compute(), sid, "SHELVED")
    assert shelved["OS-EXT-STS:vm_state"] == "shelved"
    assert shelved["OS-EXT-STS:power_state"] == 4
    assert used(cloud) == (2, 1024, 3, 1)  # still holds its host
    assert sid in vms_on_hosts(cloud)
    # shelveOffload is an admin's action.
    for caller in (member, reader):
        assert act(api, caller, sid, {"shelveOffload": None}).status_code == 403
    assert act(api, admin, sid, {"shelveOffload": None}).status_code == 202
    wait_for_status(api, member.compute(), sid, "SHELVED_OFFLOADED")
    assert used(cloud) == (0, 0, 0, 0)
    assert sid not in vms_on_hosts(cloud)


def test_unshelve_of_a_server_still_on_its_host_powers_it_on_there(api, cloud, member, admin,
                                                                   server):
    cloud.settings.shelved_offload_time = -1
    sid = server["id"]
    host = vms_on_hosts(cloud)[sid]
    assert act(api, member, sid, {"shelve": None}).status_code == 202
    wait_for_status(api, member.compute(), sid, "SHELVED")
    with cloud.db.reader() as s:
        image_id = s.scalar(select(Instance.system_metadata).where(
            Instance.uuid == sid))["shelved_image_id"]
    assert act(api, member, sid, {"unshelve": None}).status_code == 202
    back = wait_for_status(api, member.compute(), sid, "ACTIVE")
    assert back["OS-EXT-STS:power_state"] == 1
    assert vms_on_hosts(cloud)[sid] == host
    assert used(cloud) == (2, 1024, 3, 1)
    assert image_gone(cloud, image_id)  # the shelved image is gone


def test_the_periodic_task_offloads_after_shelved_offload_time(api, cloud, member, server):
    cloud.settings.shelved_offload_time = 3600
    sid = server["id"]
    assert act(api, member, sid, {"shelve": None}).status_code == 202
    wait_for_status(api, member.compute(), sid, "SHELVED")
    conductor = next(x for x in cloud.roles if type(x).__name__ == "Conductor")
    conductor.sweep()
    assert wait_for_status(api, member.compute(), sid, "SHELVED")  # not yet due

    def long_ago(s):
        inst = s.scalar(select(Instance).where(Instance.uuid == sid))
        inst.system_metadata = {**inst.system_metadata,
                                "shelved_at": dt.datetime(2000, 1, 1).isoformat()}

    cloud.db.run(long_ago)
    conductor.sweep()
    wait_for_status(api, member.compute(), sid, "SHELVED_OFFLOADED")
    assert used(cloud) == (0, 0, 0, 0)


def test_shelve_of_a_stopped_server(api, cloud, member, server):
    sid = server["id"]
    assert act(api, member, sid, {"os-stop": None}).status_code == 202
    wait_for_status(api, member.compute(), sid, "SHUTOFF")
    assert act(api, member, sid, {"shelve": None}).status_code == 202
    wait_for_status(api, member.compute(), sid, "SHELVED_OFFLOADED")


@pytest.mark.parametrize(("action", "status"), [("pause", "PAUSED"), ("suspend", "SUSPENDED")])
def test_shelve_of_a_paused_or_suspended_server_powers_it_off_and_unshelve_boots_it(
        api, cloud, member, server, action, status):
    """As Nova: a paused or suspended server may be shelved (Tempest's
    test_shelve_paused_server); the guest is powered off first, and unshelve boots it."""
    sid = server["id"]
    assert act(api, member, sid, {action: None}).status_code == 202
    wait_for_status(api, member.compute(), sid, status)
    assert act(api, member, sid, {"shelve": None}).status_code == 202
    shelved = wait_for_status(api, member.compute(), sid, "SHELVED_OFFLOADED")
    assert shelved["OS-EXT-STS:power_state"] == 0  # offloaded: no VM on any host
    assert vms_on_hosts(cloud).get(sid) is None
    assert act(api, member, sid, {"unshelve": None}).status_code == 202
    back = wait_for_status(api, member.compute(), sid, "ACTIVE")
    assert back["OS-EXT-STS:power_state"] == 1


NEEDS_2_77 = pytest.mark.skipif(MAX_VERSION < (2, 77),
                                reason="the maximum microversion is raised past 2.77 by comp-misc")


@NEEDS_2_77
def test_unshelve_to_an_availability_zone_since_2_77(api, cloud, member, server):
    sid = server["id"]
    assert act(api, member, sid, {"shelve": None}).status_code == 202
    wait_for_status(api, member.compute(), sid, "SHELVED_OFFLOADED")
    r = act(api, member, sid, {"unshelve": {"availability_zone": "nowhere"}}, "2.77")
    assert r.status_code == 400
    assert "availability_zone" in r.json()["badRequest"]["message"]
    r = act(api, member, sid, {"unshelve": {"availability_zone": "nova", "x": 1}}, "2.77")
    assert r.status_code == 400
    r = act(api, member, sid, {"unshelve": {"availability_zone": 5}}, "2.77")
    assert r.status_code == 400 and "availability_zone" in r.text
    shown = wait_for_status(api, member.compute(), sid, "SHELVED_OFFLOADED")
    assert shown["OS-EXT-STS:task_state"] is None  # nothing changed
    r = act(api, member, sid, {"unshelve": {"availability_zone": "nova"}}, "2.77")
    assert r.status_code == 202, r.text
    back = wait_for_status(api, member.compute(), sid, "ACTIVE")
    assert back["OS-EXT-AZ:availability_zone"] == "nova"


def test_before_2_77_the_unshelve_body_is_not_looked_at(api, cloud, member, server):
    sid = server["id"]
    assert act(api, member, sid, {"shelve": None}).status_code == 202
    wait_for_status(api, member.compute(), sid, "SHELVED_OFFLOADED")
    r = act(api, member, sid, {"unshelve": {"availability_zone": "nowhere"}})
    assert r.status_code == 202, r.text
    wait_for_status(api, member.compute(), sid, "ACTIVE")


@NEEDS_2_77
def test_unshelve_with_a_zone_of_a_server_not_offloaded_is_409(api, cloud, member, server):
    cloud.settings.shelved_offload_time = -1
    sid = server["id"]
    assert act(api, member, sid, {"shelve": None}).status_code == 202
    wait_for_status(api, member.compute(), sid, "SHELVED")
    r = act(api, member, sid, {"unshelve": {"availability_zone": "nova"}}, "2.77")
    assert r.status_code == 409


def test_wrong_states_are_409(api, cloud, member, admin, server):
    sid = server["id"]
    r = act(api, member, sid, {"unshelve": None})
    assert r.status_code == 409
    assert (r.json()["conflictingRequest"]["message"]
            == f"Cannot 'unshelve' instance {sid} while it is in vm_state active")
    r = act(api, admin, sid, {"shelveOffload": None})
    assert r.status_code == 409
    assert "Cannot 'shelveOffload'" in r.json()["conflictingRequest"]["message"]
    cloud.db.run(lambda s: s.execute(update(Instance).where(Instance.uuid == sid)
                                     .values(task_state="powering-off")))
    r = act(api, member, sid, {"shelve": None})
    assert r.status_code == 409
    assert "task_state powering-off" in r.json()["conflictingRequest"]["message"]
    cloud.db.run(lambda s: s.execute(update(Instance).where(Instance.uuid == sid)
                                     .values(task_state=None, vm_state="error")))
    r = act(api, member, sid, {"shelve": None})
    assert r.status_code == 409
    # A refused shelve made no image.
    images = api.get("/image/v2/images", headers=member.headers).json()["images"]
    assert [i for i in images if i.get("instance_uuid") == sid] == []


def test_shelve_authorisation(api, cloud, member, reader, other_member, admin, server):
    sid = server["id"]
    assert act(api, reader, sid, {"shelve": None}).status_code == 403
    assert act(api, other_member, sid, {"shelve": None}).status_code == 404
    assert act(api, other_member, sid, {"unshelve": None}).status_code == 404
    assert act(api, other_member, sid, {"shelveOffload": None}).status_code == 403
    assert wait_for_status(api, member.compute(), sid, "ACTIVE")
    # An admin may shelve and unshelve any project's server.
    assert act(api, admin, sid, {"shelve": None}).status_code == 202
    wait_for_status(api, member.compute(), sid, "SHELVED_OFFLOADED")
    assert act(api, reader, sid, {"unshelve": None}).status_code == 403
    assert act(api, admin, sid, {"unshelve": None}).status_code == 202
    wait_for_status(api, member.compute(), sid, "ACTIVE")


def test_a_failed_shelve_leaves_the_server_as_it_was_and_deletes_the_image(
        api, cloud, member, admin, server, monkeypatch):
    def broken(uuid, target):
        raise SpawnError("disk copy failed")

    for role in cloud.roles:
        if isinstance(role, Agent):
            monkeypatch.setattr(role.driver, "snapshot", broken)
    sid = server["id"]
    assert act(api, member, sid, {"shelve": None}).status_code == 202
    after = wait_for_status(api, member.compute(), sid, "ACTIVE")
    assert after["OS-EXT-STS:vm_state"] == "active"
    events = events_of(api, admin, sid, "shelve")
    assert [(e["event"], e["result"]) for e in events] == [("compute_shelve_instance", "Error")]
    images = api.get("/image/v2/images", headers=member.headers).json()["images"]
    assert [i for i in images if i.get("instance_uuid") == sid] == []
    assert used(cloud) == (2, 1024, 3, 1)


def test_an_unshelve_with_no_host_left_stays_offloaded_with_a_fault(api, cloud, member, admin,
                                                                    server):
    sid = server["id"]
    assert act(api, member, sid, {"shelve": None}).status_code == 202
    wait_for_status(api, member.compute(), sid, "SHELVED_OFFLOADED")
    # Every host full, as the scheduler sees it.
    cloud.db.run(lambda s: s.execute(update(ComputeNode).values(vcpus_used=10**6)))
    assert act(api, member, sid, {"unshelve": None}).status_code == 202
    shown = wait_for_status(api, member.compute(), sid, "SHELVED_OFFLOADED")
    assert shown["OS-EXT-STS:task_state"] is None
    assert sid not in vms_on_hosts(cloud)
    with cloud.db.reader() as s:
        assert s.get(Allocation, sid) is None
        assert s.scalar(select(Instance.host).where(Instance.uuid == sid)) is None
    events = events_of(api, admin, sid, "unshelve")
    assert [(e["event"], e["result"]) for e in events] == [("compute_unshelve_instance", "Error")]


def test_a_shelved_offloaded_server_can_be_deleted(api, cloud, member, server):
    sid = server["id"]
    assert act(api, member, sid, {"shelve": None}).status_code == 202
    wait_for_status(api, member.compute(), sid, "SHELVED_OFFLOADED")
    with cloud.db.reader() as s:
        image_id = s.scalar(select(Instance.system_metadata).where(
            Instance.uuid == sid))["shelved_image_id"]
    assert api.delete(f"/compute/v2.1/servers/{sid}", headers=member.compute()).status_code == 204
    wait_for_status(api, member.compute(), sid, "DELETED")
    assert used(cloud) == (0, 0, 0, 0)
    assert image_gone(cloud, image_id)  # the shelved image went with it


def test_status_filter_finds_shelved_servers(api, cloud, member, server):
    sid = server["id"]
    assert act(api, member, sid, {"shelve": None}).status_code == 202
    wait_for_status(api, member.compute(), sid, "SHELVED_OFFLOADED")
    listed = api.get("/compute/v2.1/servers?status=SHELVED_OFFLOADED",
                     headers=member.compute()).json()["servers"]
    assert [s["id"] for s in listed] == [sid]
    assert api.get("/compute/v2.1/servers?status=ACTIVE",
                   headers=member.compute()).json()["servers"] == []


def test_a_shelve_the_agent_never_answered_is_ended_by_the_sweeper(api, cloud, member,
                                                                   server, monkeypatch):
    real_cast = cloud.bus.cast
    monkeypatch.setattr(cloud.bus, "cast", lambda ctx, topic, method, payload: (
        None if method == "shelve" else real_cast(ctx, topic, method, payload)))
    sid = server["id"]
    assert act(api, member, sid, {"shelve": None}).status_code == 202
    cloud.db.run(lambda s: s.execute(update(Instance).where(Instance.uuid == sid)
                                     .values(task_started_at=dt.datetime(2000, 1, 1))))
    conductor = next(x for x in cloud.roles if type(x).__name__ == "Conductor")
    assert conductor.sweep() == 1
    shown = wait_for_status(api, member.compute(), sid, "ACTIVE")
    assert shown["OS-EXT-STS:task_state"] is None
    images = api.get("/image/v2/images", headers=member.headers).json()["images"]
    assert [i for i in images if i.get("instance_uuid") == sid] == []
