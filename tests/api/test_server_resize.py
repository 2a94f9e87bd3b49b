"""resize (confirm, revert, automatic confirm), cold migrate and os-migrations on the fake
driver: states, the flavor shown, the claims the scheduler sees, refusals."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from sqlalchemy import select, update

from cirrus.agent.service import Agent
from cirrus.db.models import Allocation, ComputeNode, Instance, Migration
from tests.api.servers_helpers import add_flavor, add_image, server_body, wait_for_status


def act(api, caller, sid, body, microversion="2.60"):
    return api.post(f"/compute/v2.1/servers/{sid}/action", json=body,
                    headers=caller.compute(microversion))


def claims(cloud) -> dict[str, tuple[str, int, int, int]]:
    """consumer -> (host, vcpus, memory_mb, disk_gb) of every claim."""
    with cloud.db.reader() as s:
        rows = s.execute(select(Allocation, ComputeNode.host).join(
            ComputeNode, ComputeNode.id == Allocation.compute_node_id)).all()
        return {a.instance_uuid: (host, a.vcpus, a.memory_mb, a.disk_gb) for a, host in rows}


def used(cloud) -> tuple[int, int, int]:
    with cloud.db.reader() as s:
        nodes = s.scalars(select(ComputeNode)).all()
        return (sum(n.vcpus_used for n in nodes), sum(n.memory_mb_used for n in nodes),
                sum(n.local_gb_used for n in nodes))


def fake_vms(cloud) -> dict[str, list[dict]]:
    """uuid -> the records of every fake host that has that VM (with its host)."""
    found: dict[str, list[dict]] = {}
    for role in cloud.roles:
        if isinstance(role, Agent):
            for uuid, vm in role.driver._vms.items():
                found.setdefault(uuid, []).append({**vm, "host": role.host})
    return found


@pytest.fixture
def flavors(cloud):
    return (add_flavor(cloud, name="small", vcpus=1, ram=512, disk=1),
            add_flavor(cloud, name="big", vcpus=2, ram=1024, disk=5),
            add_flavor(cloud, name="tiny-disk", vcpus=1, ram=256, disk=0))


@pytest.fixture
def server(api, cloud, member, flavors):
    r = api.post("/compute/v2.1/servers", json=server_body(flavors[0], add_image(cloud)),
                 headers=member.compute())
    assert r.status_code == 202, r.text
    return wait_for_status(api, member.compute(), r.json()["server"]["id"], "ACTIVE")


def test_resize_then_confirm_keeps_the_new_flavor_and_frees_the_old_claim(
        api, cloud, member, admin, server, flavors):
    sid = server["id"]
    assert used(cloud) == (1, 512, 1)
    r = act(api, member, sid, {"resize": {"flavorRef": flavors[1]}})
    assert r.status_code == 202, r.text
    shown = wait_for_status(api, member.compute(), sid, "VERIFY_RESIZE")
    assert shown["OS-EXT-STS:vm_state"] == "resized"
    assert shown["flavor"]["vcpus"] == 2 and shown["flavor"]["ram"] == 1024
    # Both claims held while it waits: the new one (the server's) and the old one.
    held = claims(cloud)
    assert held[sid][1:] == (2, 1024, 5)
    assert used(cloud) == (3, 1536, 6)
    vm = next(v for v in fake_vms(cloud)[sid] if v["host"] == held[sid][0])
    assert (vm["vcpus"], vm["memory_mb"], vm["root_gb"]) == (2, 1024, 5)  # the disk grew
    r = act(api, member, sid, {"confirmResize": None})
    assert r.status_code == 204, r.text
    wait_for_status(api, member.compute(), sid, "ACTIVE")
    assert used(cloud) == (2, 1024, 5)
    assert list(claims(cloud)) == [sid]
    assert len(fake_vms(cloud)[sid]) == 1
    migrations = api.get("/compute/v2.1/os-migrations", headers=admin.compute("2.59")).json()
    m = next(m for m in migrations["migrations"] if m["instance_uuid"] == sid)
    assert (m["status"], m["migration_type"]) == ("confirmed", "resize")
    assert m["source_compute"] and m["dest_compute"] and m["uuid"]
    with cloud.db.reader() as s:
        big = s.scalar(select(Migration.new_instance_type_id))
    assert m["new_instance_type_id"] == big != m["old_instance_type_id"]
    acts = api.get(f"/compute/v2.1/servers/{sid}/os-instance-actions",
                   headers=member.compute()).json()["instanceActions"]
    assert {"resize", "confirmResize"} <= {a["action"] for a in acts}


def test_resize_then_revert_restores_the_old_flavor_host_and_claim(api, cloud, member, admin,
                                                                  server, flavors):
    sid = server["id"]
    host_before = claims(cloud)[sid][0]
    assert act(api, member, sid, {"resize": {"flavorRef": flavors[1]}}).status_code == 202
    wait_for_status(api, member.compute(), sid, "VERIFY_RESIZE")
    r = act(api, member, sid, {"revertResize": None})
    assert r.status_code == 202, r.text
    shown = wait_for_status(api, member.compute(), sid, "ACTIVE")
    assert shown["flavor"]["vcpus"] == 1 and shown["flavor"]["ram"] == 512
    assert claims(cloud) == {sid: (host_before, 1, 512, 1)}
    assert used(cloud) == (1, 512, 1)
    assert [vm["host"] for vm in fake_vms(cloud)[sid]] == [host_before]
    assert fake_vms(cloud)[sid][0]["power_state"] == 1
    ms = api.get("/compute/v2.1/os-migrations", headers=admin.compute()).json()["migrations"]
    assert [m["status"] for m in ms if m["instance_uuid"] == sid] == ["reverted"]


def test_a_stopped_server_resizes_and_stays_stopped(api, cloud, member, server, flavors):
    sid = server["id"]
    assert act(api, member, sid, {"os-stop": None}).status_code == 202
    wait_for_status(api, member.compute(), sid, "SHUTOFF")
    assert act(api, member, sid, {"resize": {"flavorRef": flavors[1]}}).status_code == 202
    wait_for_status(api, member.compute(), sid, "VERIFY_RESIZE")
    assert act(api, member, sid, {"confirmResize": None}).status_code == 204
    wait_for_status(api, member.compute(), sid, "SHUTOFF")


def test_cold_migrate_moves_to_another_host_and_confirm_removes_the_source(
        api, cloud, member, admin, server):
    sid = server["id"]
    source = claims(cloud)[sid][0]
    assert act(api, member, sid, {"migrate": None}).status_code == 403
    r = act(api, admin, sid, {"migrate": None})
    assert r.status_code == 202, r.text
    wait_for_status(api, member.compute(), sid, "VERIFY_RESIZE")
    dest = claims(cloud)[sid][0]
    assert dest != source
    assert sorted(vm["host"] for vm in fake_vms(cloud)[sid]) == sorted([source, dest])
    assert act(api, member, sid, {"confirmResize": None}).status_code == 204
    wait_for_status(api, member.compute(), sid, "ACTIVE")
    assert [vm["host"] for vm in fake_vms(cloud)[sid]] == [dest]
    assert claims(cloud) == {sid: (dest, 1, 512, 1)}
    shown = api.get(f"/compute/v2.1/servers/{sid}", headers=admin.compute()).json()["server"]
    assert shown["OS-EXT-SRV-ATTR:host"] == dest


def test_cold_migrate_then_revert_goes_back_to_the_source(api, cloud, member, admin, server):
    sid = server["id"]
    source = claims(cloud)[sid][0]
    assert act(api, admin, sid, {"migrate": None}).status_code == 202
    wait_for_status(api, member.compute(), sid, "VERIFY_RESIZE")
    assert act(api, member, sid, {"revertResize": None}).status_code == 202
    wait_for_status(api, member.compute(), sid, "ACTIVE")
    assert [vm["host"] for vm in fake_vms(cloud)[sid]] == [source]
    assert claims(cloud) == {sid: (source, 1, 512, 1)}


def test_migrate_to_a_host_since_2_56(api, cloud, member, admin, server):
    sid = server["id"]
    source = claims(cloud)[sid][0]
    r = act(api, admin, sid, {"migrate": {"host": "no-such-host"}}, "2.56")
    assert r.status_code == 400 and "host" in r.json()["badRequest"]["message"]
    r = act(api, admin, sid, {"migrate": {"host": source}}, "2.56")
    assert r.status_code == 400
    r = act(api, admin, sid, {"migrate": {"hots": "x"}}, "2.56")
    assert r.status_code == 400
    target = next(h for h in ("fake-1", "fake-2", "fake-3") if h != source)
    r = act(api, admin, sid, {"migrate": {"host": target}}, "2.56")
    assert r.status_code == 202, r.text
    wait_for_status(api, member.compute(), sid, "VERIFY_RESIZE")
    assert claims(cloud)[sid][0] == target


def test_resize_refusals(api, cloud, member, server, flavors):
    sid = server["id"]
    r = act(api, member, sid, {"resize": {"flavorRef": flavors[0]}})
    assert r.status_code == 400 and "must change flavor" in r.text
    r = act(api, member, sid, {"resize": {"flavorRef": "no-such-flavor"}})
    assert r.status_code == 400 and "flavorRef" in r.json()["badRequest"]["message"]
    r = act(api, member, sid, {"resize": {"flavorRef": flavors[2]}})
    assert r.status_code == 400 and "disk down" in r.text
    r = act(api, member, sid, {"resize": {}})
    assert r.status_code == 400 and "flavorRef" in r.text
    r = act(api, member, sid, {"resize": {"flavorRef": flavors[1], "x": 1}})
    assert r.status_code == 400
    for body in ({"confirmResize": None}, {"revertResize": None}):
        r = act(api, member, sid, body)
        assert r.status_code == 409, r.text
    shown = wait_for_status(api, member.compute(), sid, "ACTIVE")
    assert shown["flavor"]["vcpus"] == 1
    with cloud.db.reader() as s:
        assert s.scalars(select(Migration)).all() == []
    cloud.db.run(lambda s: s.execute(update(Instance).where(Instance.uuid == sid)
                                     .values(task_state="powering-off")))
    r = act(api, member, sid, {"resize": {"flavorRef": flavors[1]}})
    assert r.status_code == 409 and "task_state powering-off" in r.text


def test_resize_authorisation(api, cloud, member, reader, other_member, admin, server,
                              flavors):
    sid = server["id"]
    body = {"resize": {"flavorRef": flavors[1]}}
    assert act(api, reader, sid, body).status_code == 403
    assert act(api, other_member, sid, body).status_code == 404
    assert act(api, other_member, sid, {"migrate": None}).status_code == 403
    assert act(api, admin, sid, body).status_code == 202
    wait_for_status(api, member.compute(), sid, "VERIFY_RESIZE")
    assert act(api, reader, sid, {"confirmResize": None}).status_code == 403
    assert act(api, other_member, sid, {"confirmResize": None}).status_code == 404
    assert act(api, other_member, sid, {"revertResize": None}).status_code == 404
    assert act(api, member, sid, {"confirmResize": None}).status_code == 204
    for caller in (member, reader, other_member):
        r = api.get("/compute/v2.1/os-migrations", headers=caller.compute())
        assert r.status_code == 403


def test_no_host_for_the_new_flavor_leaves_the_server_as_it_was(api, cloud, member, server,
                                                                flavors):
    sid = server["id"]
    cloud.db.run(lambda s: s.execute(update(ComputeNode).values(vcpus_used=10**6)))
    assert act(api, member, sid, {"resize": {"flavorRef": flavors[1]}}).status_code == 202
    shown = wait_for_status(api, member.compute(), sid, "ACTIVE")
    assert shown["flavor"]["vcpus"] == 1
    assert list(claims(cloud)) == [sid]
    with cloud.db.reader() as s:
        assert s.scalar(select(Migration.status)) == "error"


def test_an_unconfirmed_resize_is_confirmed_after_resize_confirm_window(api, cloud, member,
                                                                        server, flavors):
    cloud.settings.resize_confirm_window = 60
    sid = server["id"]
    assert act(api, member, sid, {"resize": {"flavorRef": flavors[1]}}).status_code == 202
    wait_for_status(api, member.compute(), sid, "VERIFY_RESIZE")
    conductor = next(x for x in cloud.roles if type(x).__name__ == "Conductor")
    conductor.sweep()
    wait_for_status(api, member.compute(), sid, "VERIFY_RESIZE")  # not yet
    cloud.db.run(lambda s: s.execute(update(Migration).values(
        updated_at=dt.datetime(2000, 1, 1))))
    conductor.sweep()
    wait_for_status(api, member.compute(), sid, "ACTIVE")
    assert list(claims(cloud)) == [sid]


def test_deleting_a_resized_server_frees_both_claims(api, cloud, member, server, flavors):
    sid = server["id"]
    assert act(api, member, sid, {"resize": {"flavorRef": flavors[1]}}).status_code == 202
    wait_for_status(api, member.compute(), sid, "VERIFY_RESIZE")
    assert api.delete(f"/compute/v2.1/servers/{sid}", headers=member.compute()).status_code == 204
    wait_for_status(api, member.compute(), sid, "DELETED")
    assert claims(cloud) == {}
    assert used(cloud) == (0, 0, 0)


def test_os_migrations_versions_and_paging(api, cloud, member, admin, server, flavors):
    sid = server["id"]
    assert act(api, member, sid, {"resize": {"flavorRef": flavors[1]}}).status_code == 202
    wait_for_status(api, member.compute(), sid, "VERIFY_RESIZE")
    assert act(api, member, sid, {"revertResize": None}).status_code == 202
    wait_for_status(api, member.compute(), sid, "ACTIVE")
    assert act(api, admin, sid, {"migrate": None}).status_code == 202
    wait_for_status(api, member.compute(), sid, "VERIFY_RESIZE")
    old = api.get("/compute/v2.1/os-migrations", headers=admin.compute("2.1")).json()
    assert all("migration_type" not in m and "uuid" not in m for m in old["migrations"])
    newest = api.get("/compute/v2.1/os-migrations?limit=1",
                     headers=admin.compute("2.59")).json()
    assert [m["migration_type"] for m in newest["migrations"]] == ["migration"]
    assert newest["migrations_links"][0]["rel"] == "next"
    marker = newest["migrations"][0]["uuid"]
    rest = api.get(f"/compute/v2.1/os-migrations?marker={marker}",
                   headers=admin.compute("2.59")).json()["migrations"]
    assert [m["migration_type"] for m in rest] == ["resize"]
    r = api.get("/compute/v2.1/os-migrations?marker=nope", headers=admin.compute("2.59"))
    assert r.status_code == 400 and "marker" in r.text
    r = api.get("/compute/v2.1/os-migrations?limit=x", headers=admin.compute("2.59"))
    assert r.status_code == 400 and "limit" in r.text
    by_type = api.get("/compute/v2.1/os-migrations?migration_type=resize",
                      headers=admin.compute("2.59")).json()["migrations"]
    assert [m["migration_type"] for m in by_type] == ["resize"]


def test_a_resize_past_the_projects_cores_or_ram_quota_is_403(api, cloud, member, admin,
                                                              server, flavors):
    sid = server["id"]
    r = api.put(f"/compute/v2.1/os-quota-sets/{member.project_id}",
                json={"quota_set": {"cores": 1}}, headers=admin.compute())
    assert r.status_code == 200, r.text
    r = act(api, member, sid, {"resize": {"flavorRef": flavors[1]}})
    assert r.status_code == 403 and "cores" in r.text
    assert wait_for_status(api, member.compute(), sid, "ACTIVE")["flavor"]["vcpus"] == 1
    with cloud.db.reader() as s:
        assert s.scalars(select(Migration)).all() == []


def test_reconcile_leaves_both_ends_of_a_migration_alone(api, cloud, member, admin, server):
    from cirrus.context import RequestContext

    sid = server["id"]
    source = claims(cloud)[sid][0]
    assert act(api, admin, sid, {"migrate": None}).status_code == 202
    wait_for_status(api, member.compute(), sid, "VERIFY_RESIZE")
    conductor = next(x for x in cloud.roles if type(x).__name__ == "Conductor")
    agent = next(r for r in cloud.roles if isinstance(r, Agent) and r.host == source)
    # The source's full report lists a VM whose server is now on another host.
    conductor.reconcile(RequestContext.admin(), source, agent.driver.list_instances(),
                        startup=True)
    time.sleep(0.5)  # a destroy would be a cast: give it the time to arrive
    assert source in [vm["host"] for vm in fake_vms(cloud)[sid]]
    assert act(api, member, sid, {"revertResize": None}).status_code == 202
    wait_for_status(api, member.compute(), sid, "ACTIVE")
    assert [vm["host"] for vm in fake_vms(cloud)[sid]] == [source]


def test_os_migrations_changes_since(api, cloud, member, admin, server, flavors):
    sid = server["id"]
    assert act(api, member, sid, {"resize": {"flavorRef": flavors[1]}}).status_code == 202
    wait_for_status(api, member.compute(), sid, "VERIFY_RESIZE")
    url = "/compute/v2.1/os-migrations?changes-since="
    assert len(api.get(url + "2000-01-01T00:00:00Z",
                       headers=admin.compute("2.59")).json()["migrations"]) == 1
    assert api.get(url + "2999-01-01T00:00:00Z",
                   headers=admin.compute("2.59")).json()["migrations"] == []
    r = api.get(url + "yesterday", headers=admin.compute("2.59"))
    assert r.status_code == 400 and "changes-since" in r.text
