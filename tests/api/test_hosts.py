"""Availability zones, hypervisors and services through the compute API.

The fake agents of the test cloud register hosts fake-1..3 themselves; these tests add their
own rows (hosts named hv-*) and look only at those, so they hold whatever else is running.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import pytest

from cirrus.db.models import ComputeNode, Instance, Service, utcnow
from cirrus.hosts.liveness import AGENT_BINARY

BASE = "/compute/v2.1"


@dataclass
class Host:
    name: str
    service_id: int
    service_uuid: str
    node_id: int | None
    node_uuid: str | None


def add_host(cloud, name: str, *, zone: str | None = "az-1", seen_ago: float = 0,
             disabled: bool = False, forced_down: bool = False, binary: str = AGENT_BINARY,
             node: bool = True, cpu_info: dict | None = None) -> Host:
    def work(s):
        svc = Service(uuid=str(uuid.uuid4()), host=name, binary=binary, disabled=disabled,
                      disabled_reason="maintenance" if disabled else None,
                      forced_down=forced_down, availability_zone=zone,
                      last_seen_up=utcnow() - dt.timedelta(seconds=seen_ago))
        s.add(svc)
        cn = None
        if node:
            cn = ComputeNode(uuid=str(uuid.uuid4()), host=name,
                             hypervisor_hostname=f"{name}.example.org", hypervisor_type="fake",
                             hypervisor_version=2002, host_ip="192.0.2.10",
                             availability_zone=zone, vcpus=8, memory_mb=16384, local_gb=100,
                             vcpus_used=2, memory_mb_used=4096, local_gb_used=10,
                             running_vms=1, cpu_info=cpu_info or {"arch": "x86_64"})
            s.add(cn)
        s.flush()
        return Host(name, svc.id, svc.uuid, cn.id if cn else None, cn.uuid if cn else None)
    return cloud.db.run(work)


def add_instance(cloud, host: str, name: str = "vm1") -> str:
    instance_uuid = str(uuid.uuid4())
    cloud.db.run(lambda s: s.add(Instance(
        uuid=instance_uuid, display_name=name, project_id="p", user_id="u", flavor={},
        vm_state="active", host=host, node=f"{host}.example.org")))
    return instance_uuid


def mine(items: list[dict], key: str = "host", prefix: str = "hv-") -> list[dict]:
    return [item for item in items if str(item[key]).startswith(prefix)]


# ---------------------------------------------------------------- hypervisors


def test_hypervisor_list_uses_integer_ids_before_2_53_and_uuids_after(cloud, api, admin):
    host = add_host(cloud, "hv-a")
    old = mine(api.get(f"{BASE}/os-hypervisors", headers=admin.compute("2.52")).json()[
        "hypervisors"], "hypervisor_hostname")
    assert old == [{"id": host.node_id, "hypervisor_hostname": "hv-a.example.org",
                    "state": "up", "status": "enabled"}]
    new = mine(api.get(f"{BASE}/os-hypervisors", headers=admin.compute("2.53")).json()[
        "hypervisors"], "hypervisor_hostname")
    assert new[0]["id"] == host.node_uuid


def test_hypervisor_detail_fields_and_cpu_info_per_microversion(cloud, api, admin):
    host = add_host(cloud, "hv-b", cpu_info={"arch": "x86_64", "model": "fake"})
    detail = api.get(f"{BASE}/os-hypervisors/detail", headers=admin.compute("2.27")).json()
    hyp = mine(detail["hypervisors"], "hypervisor_hostname")[0]
    assert hyp["cpu_info"] == '{"arch": "x86_64", "model": "fake"}'
    assert hyp["service"] == {"id": host.service_id, "host": "hv-b", "disabled_reason": None}
    assert (hyp["vcpus"], hyp["vcpus_used"], hyp["free_ram_mb"], hyp["free_disk_gb"]) == (
        8, 2, 12288, 90)
    assert (hyp["hypervisor_type"], hyp["hypervisor_version"], hyp["host_ip"]) == (
        "fake", 2002, "192.0.2.10")
    assert {"current_workload", "running_vms", "disk_available_least", "memory_mb",
            "memory_mb_used", "local_gb", "local_gb_used"} <= set(hyp)
    new = api.get(f"{BASE}/os-hypervisors/detail", headers=admin.compute("2.53")).json()
    hyp = mine(new["hypervisors"], "hypervisor_hostname")[0]
    assert hyp["cpu_info"] == {"arch": "x86_64", "model": "fake"}
    assert hyp["service"]["id"] == host.service_uuid


def test_hypervisor_state_and_status_follow_the_agent_service(cloud, api, admin):
    add_host(cloud, "hv-stale", seen_ago=cloud.settings.service_down_time + 30)
    add_host(cloud, "hv-off", disabled=True)
    add_host(cloud, "hv-forced", forced_down=True)
    hyps = {h["hypervisor_hostname"]: h for h in api.get(
        f"{BASE}/os-hypervisors", headers=admin.compute()).json()["hypervisors"]}
    assert hyps["hv-stale.example.org"]["state"] == "down"
    assert hyps["hv-off.example.org"]["status"] == "disabled"
    assert hyps["hv-off.example.org"]["state"] == "up"
    assert hyps["hv-forced.example.org"]["state"] == "down"


def test_show_hypervisor_by_id_or_uuid(cloud, api, admin):
    host = add_host(cloud, "hv-c")
    r = api.get(f"{BASE}/os-hypervisors/{host.node_id}", headers=admin.compute("2.1"))
    assert r.status_code == 200
    assert r.json()["hypervisor"]["id"] == host.node_id
    assert api.get(f"{BASE}/os-hypervisors/abc", headers=admin.compute("2.1")).status_code == 404
    assert api.get(f"{BASE}/os-hypervisors/999999",
                   headers=admin.compute("2.1")).status_code == 404
    r = api.get(f"{BASE}/os-hypervisors/{host.node_uuid}", headers=admin.compute("2.53"))
    assert r.json()["hypervisor"]["id"] == host.node_uuid
    r = api.get(f"{BASE}/os-hypervisors/{host.node_id}", headers=admin.compute("2.53"))
    assert r.status_code == 400
    assert r.json()["badRequest"]["message"] == f"Invalid uuid {host.node_id}"
    assert api.get(f"{BASE}/os-hypervisors/{uuid.uuid4()}",
                   headers=admin.compute("2.53")).status_code == 404


def test_with_servers_lists_the_hosts_instances(cloud, api, admin):
    host = add_host(cloud, "hv-d")
    server = add_instance(cloud, "hv-d", "web")
    r = api.get(f"{BASE}/os-hypervisors/{host.node_uuid}?with_servers=true",
                headers=admin.compute("2.53"))
    assert r.json()["hypervisor"]["servers"] == [{"name": "web", "uuid": server}]
    r = api.get(f"{BASE}/os-hypervisors/{host.node_uuid}", headers=admin.compute("2.53"))
    assert "servers" not in r.json()["hypervisor"]
    r = api.get(f"{BASE}/os-hypervisors/{host.node_uuid}?with_servers=perhaps",
                headers=admin.compute("2.53"))
    assert r.status_code == 400


def test_search_routes_before_2_53_and_query_after(cloud, api, admin):
    add_host(cloud, "hv-search1")
    add_host(cloud, "hv-search2")
    server = add_instance(cloud, "hv-search1")
    r = api.get(f"{BASE}/os-hypervisors/search/search", headers=admin.compute("2.52"))
    assert sorted(h["hypervisor_hostname"] for h in r.json()["hypervisors"]) == [
        "hv-search1.example.org", "hv-search2.example.org"]
    r = api.get(f"{BASE}/os-hypervisors/search1/servers", headers=admin.compute("2.52"))
    assert r.json()["hypervisors"][0]["servers"] == [{"name": "vm1", "uuid": server}]
    assert api.get(f"{BASE}/os-hypervisors/nomatch/search",
                   headers=admin.compute("2.52")).status_code == 404
    assert api.get(f"{BASE}/os-hypervisors/search/search",
                   headers=admin.compute("2.53")).status_code == 404

    r = api.get(f"{BASE}/os-hypervisors?hypervisor_hostname_pattern=search2",
                headers=admin.compute("2.53"))
    assert [h["hypervisor_hostname"] for h in r.json()["hypervisors"]] == [
        "hv-search2.example.org"]
    assert api.get(f"{BASE}/os-hypervisors?hypervisor_hostname_pattern=zzz",
                   headers=admin.compute("2.53")).status_code == 404
    r = api.get(f"{BASE}/os-hypervisors/detail?hypervisor_hostname_pattern=hv&limit=1",
                headers=admin.compute("2.53"))
    assert r.status_code == 400
    assert api.get(f"{BASE}/os-hypervisors?colour=red",
                   headers=admin.compute("2.53")).status_code == 400


def test_hypervisors_page_from_2_33(cloud, api, admin):
    add_host(cloud, "hv-p1")
    add_host(cloud, "hv-p2")
    r = api.get(f"{BASE}/os-hypervisors?limit=1", headers=admin.compute("2.33"))
    body = r.json()
    assert len(body["hypervisors"]) == 1
    first = body["hypervisors"][0]["id"]
    link = body["hypervisors_links"][0]["href"]
    assert link == f"http://testserver{BASE}/os-hypervisors?limit=1&marker={first}"
    r = api.get(f"{BASE}/os-hypervisors?limit=1&marker={first}", headers=admin.compute("2.33"))
    assert r.json()["hypervisors"][0]["id"] != first
    r = api.get(f"{BASE}/os-hypervisors?limit=1", headers=admin.compute("2.32"))
    assert len(r.json()["hypervisors"]) > 1 and "hypervisors_links" not in r.json()
    assert api.get(f"{BASE}/os-hypervisors?marker=424242",
                   headers=admin.compute("2.33")).status_code == 400


def test_statistics_count_enabled_hypervisors(cloud, api, admin):
    before = api.get(f"{BASE}/os-hypervisors/statistics",
                     headers=admin.compute()).json()["hypervisor_statistics"]
    add_host(cloud, "hv-s1")
    add_host(cloud, "hv-s2", disabled=True)
    after = api.get(f"{BASE}/os-hypervisors/statistics",
                    headers=admin.compute()).json()["hypervisor_statistics"]
    assert after["count"] == before["count"] + 1
    assert after["vcpus"] == before["vcpus"] + 8
    assert after["free_ram_mb"] == before["free_ram_mb"] + 12288
    assert set(after) == {"count", "vcpus", "memory_mb", "local_gb", "vcpus_used",
                          "memory_mb_used", "local_gb_used", "free_ram_mb", "free_disk_gb",
                          "current_workload", "running_vms", "disk_available_least"}


def test_uptime_before_and_from_2_88(cloud, api, admin):
    host = add_host(cloud, "hv-u")
    r = api.get(f"{BASE}/os-hypervisors/{host.node_id}/uptime", headers=admin.compute("2.1"))
    assert r.status_code == 404 and "has not reported it" in r.json()["itemNotFound"]["message"]
    assert api.get(f"{BASE}/os-hypervisors/99999/uptime",
                   headers=admin.compute("2.1")).status_code == 404
    r = api.get(f"{BASE}/os-hypervisors/not-a-uuid/uptime", headers=admin.compute("2.53"))
    assert r.status_code == 400 and "not-a-uuid" in r.json()["badRequest"]["message"]

    def boot(s):
        node = s.get(ComputeNode, host.node_id)
        node.booted_at = utcnow() - dt.timedelta(days=3, hours=2, minutes=10, seconds=5)
    cloud.db.run(boot)
    r = api.get(f"{BASE}/os-hypervisors/{host.node_id}/uptime", headers=admin.compute("2.1"))
    assert r.status_code == 200
    view = r.json()["hypervisor"]
    assert view["id"] == host.node_id and view["hypervisor_hostname"] == "hv-u.example.org"
    assert view["uptime"].endswith(" up 3 days,  2:10")
    # 2.88: the route is gone, `uptime` is in the hypervisor's detail, the figures are not.
    assert api.get(f"{BASE}/os-hypervisors/{host.node_uuid}/uptime",
                   headers=admin.compute("2.88")).status_code == 404
    assert api.get(f"{BASE}/os-hypervisors/statistics",
                   headers=admin.compute("2.88")).status_code == 404
    r = api.get(f"{BASE}/os-hypervisors/{host.node_uuid}", headers=admin.compute("2.88"))
    shown = r.json()["hypervisor"]
    assert shown["uptime"].endswith(" up 3 days,  2:10")
    assert "vcpus" not in shown and "cpu_info" not in shown and "running_vms" not in shown
    assert api.get(f"{BASE}/os-hypervisors/{host.node_uuid}",
                   headers=admin.compute("2.87")).json()["hypervisor"]["vcpus"] == 8


@pytest.mark.parametrize("path", ["os-hypervisors", "os-hypervisors/detail",
                                  "os-hypervisors/statistics", "os-services",
                                  "os-availability-zone/detail", "os-hypervisors/1/uptime"])
def test_fleet_views_are_admin_only(api, member, reader, other_member, path):
    for caller in (member, reader, other_member):
        assert api.get(f"{BASE}/{path}", headers=caller.compute()).status_code == 403


# ---------------------------------------------------------------- services


def test_services_list_fields_per_microversion(cloud, api, admin):
    host = add_host(cloud, "hv-e", zone="az-e")
    add_host(cloud, "hv-e", binary="cirrus-conductor", node=False, zone=None)
    r = api.get(f"{BASE}/os-services?host=hv-e", headers=admin.compute("2.10"))
    services = {s["binary"]: s for s in r.json()["services"]}
    # Cirrus's roles under the names Nova's tools filter by.
    assert set(services) == {"nova-compute", "nova-conductor"}
    agent = services["nova-compute"]
    assert set(agent) == {"id", "binary", "host", "zone", "status", "state", "updated_at",
                          "disabled_reason"}
    assert (agent["id"], agent["zone"], agent["status"], agent["state"]) == (
        host.service_id, "az-e", "enabled", "up")
    assert services["nova-conductor"]["zone"] == "internal"
    r = api.get(f"{BASE}/os-services?host=hv-e&binary={AGENT_BINARY}",
                headers=admin.compute("2.53"))
    [only] = r.json()["services"]
    assert only["id"] == host.service_uuid
    assert only["forced_down"] is False
    # Nova's name for the hypervisor service finds the agents too.
    r = api.get(f"{BASE}/os-services?host=hv-e&binary=nova-compute", headers=admin.compute())
    assert len(r.json()["services"]) == 1


def test_stale_or_forced_down_services_are_down(cloud, api, admin):
    add_host(cloud, "hv-f1", seen_ago=cloud.settings.service_down_time + 1)
    add_host(cloud, "hv-f2", forced_down=True)
    services = mine(api.get(f"{BASE}/os-services", headers=admin.compute()).json()["services"])
    states = {s["host"]: (s["state"], s["forced_down"]) for s in services}
    assert states == {"hv-f1": ("down", False), "hv-f2": ("down", True)}


def test_legacy_enable_disable_and_force_down(cloud, api, admin):
    add_host(cloud, "hv-g")
    target = {"host": "hv-g", "binary": AGENT_BINARY}
    r = api.put(f"{BASE}/os-services/disable-log-reason", headers=admin.compute("2.11"),
                json={**target, "disabled_reason": "disk swap"})
    assert r.status_code == 200
    assert r.json() == {"service": {**target, "status": "disabled",
                                    "disabled_reason": "disk swap"}}
    [svc] = api.get(f"{BASE}/os-services?host=hv-g", headers=admin.compute()).json()["services"]
    assert (svc["status"], svc["disabled_reason"]) == ("disabled", "disk swap")

    r = api.put(f"{BASE}/os-services/enable", headers=admin.compute("2.11"), json=target)
    assert r.json() == {"service": {**target, "status": "enabled"}}
    r = api.put(f"{BASE}/os-services/disable", headers=admin.compute("2.11"), json=target)
    assert r.json() == {"service": {**target, "status": "disabled"}}

    r = api.put(f"{BASE}/os-services/force-down", headers=admin.compute("2.11"),
                json={**target, "forced_down": True})
    assert r.json() == {"service": {**target, "forced_down": True}}
    [svc] = api.get(f"{BASE}/os-services?host=hv-g", headers=admin.compute()).json()["services"]
    assert (svc["state"], svc["forced_down"]) == ("down", True)


def test_legacy_action_errors(cloud, api, admin, member):
    add_host(cloud, "hv-h")
    target = {"host": "hv-h", "binary": AGENT_BINARY}
    assert api.put(f"{BASE}/os-services/force-down", headers=admin.compute("2.10"),
                   json={**target, "forced_down": True}).status_code == 404
    assert api.put(f"{BASE}/os-services/reboot", headers=admin.compute("2.11"),
                   json=target).status_code == 404
    r = api.put(f"{BASE}/os-services/disable-log-reason", headers=admin.compute("2.11"),
                json=target)
    assert r.json()["badRequest"]["message"] == "Missing disabled reason field"
    r = api.put(f"{BASE}/os-services/disable", headers=admin.compute("2.11"),
                json={"host": "hv-h", "binary": "cirrus-scheduler"})
    assert r.status_code == 400
    r = api.put(f"{BASE}/os-services/disable", headers=admin.compute("2.11"),
                json={"host": "hv-nowhere", "binary": AGENT_BINARY})
    assert r.status_code == 404
    r = api.put(f"{BASE}/os-services/disable", headers=admin.compute("2.11"), json={"host": "x"})
    assert r.status_code == 400
    assert "binary" in r.json()["badRequest"]["message"]
    assert api.put(f"{BASE}/os-services/disable", headers=member.compute("2.11"),
                   json=target).status_code == 403


def test_update_by_uuid_from_2_53(cloud, api, admin):
    host = add_host(cloud, "hv-i", zone="az-i")
    path = f"{BASE}/os-services/{host.service_uuid}"
    r = api.put(path, headers=admin.compute("2.53"),
                json={"status": "disabled", "disabled_reason": "rack move"})
    assert r.status_code == 200
    svc = r.json()["service"]
    assert (svc["id"], svc["status"], svc["disabled_reason"], svc["zone"], svc["host"]) == (
        host.service_uuid, "disabled", "rack move", "az-i", "hv-i")
    assert svc["updated_at"] is not None
    r = api.put(path, headers=admin.compute("2.53"), json={"forced_down": True})
    assert (r.json()["service"]["state"], r.json()["service"]["forced_down"]) == ("down", True)
    r = api.put(path, headers=admin.compute("2.53"), json={"status": "enabled"})
    assert r.json()["service"]["disabled_reason"] is None

    assert api.put(path, headers=admin.compute("2.53"), json={}).status_code == 400
    assert api.put(path, headers=admin.compute("2.53"),
                   json={"status": "enabled", "disabled_reason": "x"}).status_code == 400
    r = api.put(path, headers=admin.compute("2.53"), json={"status": "paused"})
    assert r.status_code == 400 and "status" in r.json()["badRequest"]["message"]
    assert api.put(f"{BASE}/os-services/enable", headers=admin.compute("2.53"),
                   json={"status": "enabled"}).status_code == 400
    assert api.put(f"{BASE}/os-services/{uuid.uuid4()}", headers=admin.compute("2.53"),
                   json={"status": "enabled"}).status_code == 404


def test_non_agent_services_cannot_be_updated(cloud, api, admin):
    other = add_host(cloud, "hv-j", binary="cirrus-scheduler", node=False)
    r = api.put(f"{BASE}/os-services/{other.service_uuid}", headers=admin.compute("2.53"),
                json={"status": "disabled"})
    assert r.status_code == 400
    assert ("Updating a nova-scheduler service is not supported. Only nova-compute services "
            "can be updated.") == r.json()["badRequest"]["message"]


def test_delete_service_and_its_compute_node(cloud, api, admin):
    host = add_host(cloud, "hv-k")
    r = api.delete(f"{BASE}/os-services/{host.service_uuid}", headers=admin.compute("2.53"))
    assert r.status_code == 204
    assert api.get(f"{BASE}/os-hypervisors/{host.node_uuid}",
                   headers=admin.compute("2.53")).status_code == 404
    assert api.delete(f"{BASE}/os-services/{host.service_uuid}",
                      headers=admin.compute("2.53")).status_code == 404
    legacy = add_host(cloud, "hv-k2")
    assert api.delete(f"{BASE}/os-services/{legacy.service_id}",
                      headers=admin.compute("2.52")).status_code == 204


def test_delete_service_errors(cloud, api, admin, member):
    busy = add_host(cloud, "hv-l")
    add_instance(cloud, "hv-l")
    r = api.delete(f"{BASE}/os-services/{busy.service_uuid}", headers=admin.compute("2.53"))
    assert r.status_code == 409
    assert api.delete(f"{BASE}/os-services/{busy.service_id}",
                      headers=admin.compute("2.53")).status_code == 400
    assert api.delete(f"{BASE}/os-services/abc", headers=admin.compute("2.52")).status_code == 400
    assert api.delete(f"{BASE}/os-services/{busy.service_uuid}",
                      headers=member.compute("2.53")).status_code == 403


# ---------------------------------------------------------------- availability zones


def test_zone_list_for_everyone_hides_internal(cloud, api, member):
    add_host(cloud, "hv-m", zone="az-up")
    add_host(cloud, "hv-n", zone="az-down", seen_ago=cloud.settings.service_down_time + 60)
    add_host(cloud, "hv-o", zone="az-off", disabled=True)
    r = api.get(f"{BASE}/os-availability-zone", headers=member.compute())
    assert r.status_code == 200
    zones = {z["zoneName"]: z for z in r.json()["availabilityZoneInfo"]}
    assert "internal" not in zones
    assert zones["az-up"] == {"zoneName": "az-up", "zoneState": {"available": True},
                              "hosts": None}
    assert zones["az-down"]["zoneState"] == {"available": False}
    assert zones["az-off"]["zoneState"] == {"available": False}


def test_zone_detail_lists_hosts_and_services(cloud, api, admin):
    add_host(cloud, "hv-q", zone="az-q")
    add_host(cloud, "hv-q", binary="cirrus-conductor", node=False, zone=None)
    r = api.get(f"{BASE}/os-availability-zone/detail", headers=admin.compute())
    zones = {z["zoneName"]: z for z in r.json()["availabilityZoneInfo"]}
    state = zones["az-q"]["hosts"]["hv-q"]["nova-compute"]
    assert state["available"] is True and state["active"] is True
    assert state["updated_at"] is not None
    assert zones["internal"]["hosts"]["hv-q"]["nova-conductor"]["available"] is True


def test_aggregates_list_is_empty_and_admin_only(api, admin, member):
    r = api.get(f"{BASE}/os-aggregates", headers=admin.compute())
    assert r.json() == {"aggregates": []}
    assert api.get(f"{BASE}/os-aggregates", headers=member.compute()).status_code == 403
