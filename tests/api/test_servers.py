"""Server lifecycle through the compute API on the fake driver."""

from __future__ import annotations

from tests.api.servers_helpers import add_flavor, server_body, wait_for_status


def create(api, caller, flavor, image, **extra):
    r = api.post("/compute/v2.1/servers", json=server_body(flavor, image, **extra),
                 headers=caller.compute())
    assert r.status_code == 202, r.text
    return r.json()["server"]["id"]


def test_create_reaches_active_and_shows_nova_fields(api, member, flavor, image):
    r = api.post("/compute/v2.1/servers", json=server_body(flavor, image),
                 headers=member.compute())
    assert r.status_code == 202, r.text
    body = r.json()["server"]
    assert body["adminPass"] and body["links"][0]["rel"] == "self"
    server = wait_for_status(api, member.compute(), body["id"], "ACTIVE")
    assert server["OS-EXT-STS:vm_state"] == "active"
    assert server["OS-EXT-STS:power_state"] == 1
    assert server["flavor"]["vcpus"] == 1 and server["flavor"]["ram"] == 512
    assert server["hostId"]
    assert "OS-EXT-SRV-ATTR:host" not in server  # admin-only field
    assert r.headers["OpenStack-API-Version"] == "compute 2.60"


def test_stop_start_reboot_and_console(api, member, flavor, image):
    sid = create(api, member, flavor, image)
    wait_for_status(api, member.compute(), sid, "ACTIVE")
    action = f"/compute/v2.1/servers/{sid}/action"
    assert api.post(action, json={"os-stop": None}, headers=member.compute()).status_code == 202
    wait_for_status(api, member.compute(), sid, "SHUTOFF")
    r = api.post(action, json={"os-stop": None}, headers=member.compute())
    assert r.status_code == 409
    assert "vm_state stopped" in r.json()["conflictingRequest"]["message"]
    assert api.post(action, json={"os-start": None}, headers=member.compute()).status_code == 202
    wait_for_status(api, member.compute(), sid, "ACTIVE")
    r = api.post(action, json={"reboot": {"type": "HARD"}}, headers=member.compute())
    assert r.status_code == 202
    wait_for_status(api, member.compute(), sid, "ACTIVE")
    r = api.post(action, json={"os-getConsoleOutput": {"length": 50}}, headers=member.compute())
    assert r.status_code == 200
    assert "reboot: hard reset" in r.json()["output"]


def test_delete_leaves_no_usage_or_claim(api, cloud, member, flavor, image):
    from sqlalchemy import func, select

    from cirrus.db.models import Allocation, ComputeNode

    sid = create(api, member, flavor, image)
    wait_for_status(api, member.compute(), sid, "ACTIVE")
    assert api.delete(f"/compute/v2.1/servers/{sid}", headers=member.compute()).status_code == 204
    wait_for_status(api, member.compute(), sid, "DELETED")
    with cloud.db.reader() as s:
        assert s.scalar(select(func.count()).select_from(Allocation)) == 0
        assert s.scalar(select(func.sum(ComputeNode.memory_mb_used))) == 0
    limits = api.get("/compute/v2.1/servers", headers=member.compute()).json()
    assert limits["servers"] == []


def test_delete_during_build_ends_deleted(api, cloud, member, flavor, image):
    cloud.settings.fake.boot_delay = 0.3
    sid = create(api, member, flavor, image)
    assert api.delete(f"/compute/v2.1/servers/{sid}", headers=member.compute()).status_code == 204
    wait_for_status(api, member.compute(), sid, "DELETED")
    import time

    time.sleep(0.5)  # let the in-flight spawn finish and be cleaned up
    from sqlalchemy import func, select

    from cirrus.db.models import Allocation

    with cloud.db.reader() as s:
        assert s.scalar(select(func.count()).select_from(Allocation)) == 0
    for agent in [r for r in cloud.roles if type(r).__name__ == "Agent"]:
        assert sid not in agent.driver.list_instances()


def test_failed_build_retries_then_errors_with_fault(api, cloud, member, flavor, image):
    cloud.settings.fake.failure_rate = 1.0
    sid = create(api, member, flavor, image)
    server = wait_for_status(api, member.compute(), sid, "ERROR")
    fault = server["fault"]
    assert fault["code"] == 500
    assert fault["message"].startswith("Build failed on every host tried: attempts 1, 2 and 3: ")
    assert "simulated spawn failure" in fault["message"]


def test_no_valid_host_explains_why(api, cloud, member, image):
    cloud.settings.quota_ram = -1
    big = add_flavor(cloud, name="huge", vcpus=1, ram=10**7)
    sid = create(api, member, big, image)
    server = wait_for_status(api, member.compute(), sid, "ERROR")
    assert "No valid host was found" in server["fault"]["message"]
    assert "RamFilter refused 3" in server["fault"]["message"]


def test_other_project_gets_404(api, member, other_member, flavor, image):
    sid = create(api, member, flavor, image)
    r = api.get(f"/compute/v2.1/servers/{sid}", headers=other_member.compute())
    assert r.status_code == 404
    assert r.json()["itemNotFound"]["code"] == 404
    r = api.delete(f"/compute/v2.1/servers/{sid}", headers=other_member.compute())
    assert r.status_code == 404


def test_reader_cannot_create(api, reader, flavor, image):
    r = api.post("/compute/v2.1/servers", json=server_body(flavor, image), headers=reader.compute())
    assert r.status_code == 403
    assert "forbidden" in r.json()


def test_bad_input_names_the_field(api, member, flavor, image):
    body = server_body(flavor, image)
    body["server"]["min_count"] = "zero"
    r = api.post("/compute/v2.1/servers", json=body, headers=member.compute())
    assert r.status_code == 400
    assert "min_count" in r.json()["badRequest"]["message"]
    body = server_body(flavor, image)
    del body["server"]["networks"]
    r = api.post("/compute/v2.1/servers", json=body, headers=member.compute())
    assert r.status_code == 400 and "networks" in r.json()["badRequest"]["message"]
    r = api.post("/compute/v2.1/servers", content=b"{not json", headers=member.compute())
    assert r.status_code == 400
    r = api.post("/compute/v2.1/servers", json=server_body("nope", image), headers=member.compute())
    assert r.status_code == 400 and "Flavor nope could not be found" in r.text


def test_quota_blocks_create_and_counts_only_live(api, cloud, member, flavor, image):
    cloud.settings.quota_instances = 2
    create(api, member, flavor, image)
    create(api, member, flavor, image)
    r = api.post("/compute/v2.1/servers", json=server_body(flavor, image), headers=member.compute())
    assert r.status_code == 403
    assert "Quota exceeded for instances" in r.json()["forbidden"]["message"]


def test_min_max_count_names_servers(api, member, flavor, image):
    r = api.post("/compute/v2.1/servers",
                 json=server_body(flavor, image, name="web", min_count=2, max_count=3),
                 headers=member.compute())
    assert r.status_code == 202
    names = sorted(s["name"] for s in api.get("/compute/v2.1/servers",
                                                headers=member.compute()).json()["servers"])
    assert names == ["web-1", "web-2", "web-3"]


def test_list_filters_and_pagination(api, member, admin, flavor, image):
    ids = [create(api, member, flavor, image, name=f"n{i}") for i in range(5)]
    for sid in ids:
        wait_for_status(api, member.compute(), sid, "ACTIVE")
    page = api.get("/compute/v2.1/servers?limit=2", headers=member.compute()).json()
    assert len(page["servers"]) == 2 and page["servers_links"][0]["rel"] == "next"
    marker = page["servers"][-1]["id"]
    page2 = api.get(f"/compute/v2.1/servers?limit=2&marker={marker}", headers=member.compute()).json()
    assert not {s["id"] for s in page2["servers"]} & {s["id"] for s in page["servers"]}
    named = api.get("/compute/v2.1/servers?name=^n3$", headers=member.compute()).json()
    assert [s["name"] for s in named["servers"]] == ["n3"]
    r = api.get("/compute/v2.1/servers?status=BOGUS", headers=member.compute())
    assert r.status_code == 400
    r = api.get("/compute/v2.1/servers?all_tenants=1", headers=member.compute())
    assert r.status_code == 403
    everyone = api.get("/compute/v2.1/servers/detail?all_tenants=1", headers=admin.compute()).json()
    assert {s["id"] for s in everyone["servers"]} >= set(ids)
    assert everyone["servers"][0]["OS-EXT-SRV-ATTR:host"].startswith("fake-")


def test_changes_since_includes_deleted(api, member, flavor, image):
    sid = create(api, member, flavor, image)
    wait_for_status(api, member.compute(), sid, "ACTIVE")
    api.delete(f"/compute/v2.1/servers/{sid}", headers=member.compute())
    wait_for_status(api, member.compute(), sid, "DELETED")
    r = api.get("/compute/v2.1/servers/detail?changes-since=2000-01-01T00:00:00Z",
                headers=member.compute())
    assert [s["status"] for s in r.json()["servers"] if s["id"] == sid] == ["DELETED"]


def test_update_and_metadata(api, member, flavor, image):
    sid = create(api, member, flavor, image, metadata={"a": "1"})
    r = api.put(f"/compute/v2.1/servers/{sid}", json={"server": {"name": "renamed",
                                                                 "description": "d"}},
                headers=member.compute())
    assert r.status_code == 200 and r.json()["server"]["name"] == "renamed"
    assert r.json()["server"]["description"] == "d"
    base = f"/compute/v2.1/servers/{sid}/metadata"
    assert api.post(base, json={"metadata": {"b": "2"}}, headers=member.compute()).json() == {
        "metadata": {"a": "1", "b": "2"}}
    assert api.put(base, json={"metadata": {"c": "3"}}, headers=member.compute()).json() == {
        "metadata": {"c": "3"}}
    assert api.put(f"{base}/d", json={"meta": {"d": "4"}}, headers=member.compute()).status_code == 200
    assert api.get(f"{base}/d", headers=member.compute()).json() == {"meta": {"d": "4"}}
    assert api.delete(f"{base}/c", headers=member.compute()).status_code == 204
    assert api.get(f"{base}/c", headers=member.compute()).status_code == 404


def test_instance_actions_record_events(api, member, admin, flavor, image):
    sid = create(api, member, flavor, image)
    wait_for_status(api, member.compute(), sid, "ACTIVE")
    api.post(f"/compute/v2.1/servers/{sid}/action", json={"os-stop": None}, headers=member.compute())
    wait_for_status(api, member.compute(), sid, "SHUTOFF")
    acts = api.get(f"/compute/v2.1/servers/{sid}/os-instance-actions",
                   headers=member.compute()).json()["instanceActions"]
    assert [a["action"] for a in acts] == ["stop", "create"]
    create_req = acts[1]["request_id"]
    shown = api.get(f"/compute/v2.1/servers/{sid}/os-instance-actions/{create_req}",
                    headers=admin.compute()).json()["instanceAction"]
    assert shown["events"][0]["event"] == "compute__do_build_and_run_instance"
    assert shown["events"][0]["result"] == "Success"


def test_unsupported_microversion_is_406(api, member):
    r = api.get("/compute/v2.1/servers", headers=member.compute("2.99"))
    assert r.status_code == 406


def test_key_name_must_be_the_callers_keypair(api, member, other_member, flavor, image):
    r = api.post("/compute/v2.1/os-keypairs", json={"keypair": {"name": "k1"}},
                 headers=member.compute())
    assert r.status_code in (200, 201), r.text
    sid = create(api, member, flavor, image, key_name="k1")
    assert wait_for_status(api, member.compute(), sid, "ACTIVE")["key_name"] == "k1"
    r = api.post("/compute/v2.1/servers", json=server_body(flavor, image, key_name="k1"),
                 headers=other_member.compute())
    assert r.status_code == 400 and "Invalid key_name" in r.json()["badRequest"]["message"]


def test_406_announces_the_version_asked_for(api, member):
    r = api.get("/compute/v2.1/servers", headers=member.compute("2.99"))
    assert r.headers["OpenStack-API-Version"] == "compute 2.99"


def test_bare_service_roots_answer_without_redirect(api):
    for path in ("/compute", "/identity", "/image"):
        r = api.get(path, follow_redirects=False)
        assert r.status_code in (200, 300), (path, r.status_code)


def test_image_given_as_local_root_mapping_boots(api, member, flavor, image):
    body = server_body(flavor, image)
    del body["server"]["imageRef"]
    body["server"]["block_device_mapping_v2"] = [{"uuid": image, "boot_index": 0,
                                                  "source_type": "image",
                                                  "destination_type": "local",
                                                  "delete_on_termination": True}]
    r = api.post("/compute/v2.1/servers", json=body, headers=member.compute())
    assert r.status_code == 202, r.text
    server = wait_for_status(api, member.compute(), r.json()["server"]["id"], "ACTIVE")
    assert server["image"]["id"] == image


def test_blank_local_mappings_are_refused(api, member, flavor, image):
    # Boot from volume is tested in test_boot_from_volume.py; ephemeral disks from a
    # mapping are not offered (the flavor's are): a clear 400 naming the mapping.
    body = server_body(flavor, image)
    body["server"]["block_device_mapping_v2"] = [{"boot_index": -1, "source_type": "blank",
                                                  "destination_type": "local",
                                                  "volume_size": 1}]
    r = api.post("/compute/v2.1/servers", json=body, headers=member.compute())
    assert r.status_code == 400 and "Blank local disks" in r.json()["badRequest"]["message"]
