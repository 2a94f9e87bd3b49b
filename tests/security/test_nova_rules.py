"""Nova's rules where Cirrus was looser (issue 11, points 5 and 8).

- A forced destination ("AZ:HOST", "AZ::NODE", "AZ:HOST:NODE") is admins' only (Nova's
  os_compute_api:servers:create:forced_host): 403 for everyone else, nothing created.
- An availability zone with no enabled compute service is a 400 at create, not 202 then ERROR.
- Security groups on server create are the caller's project's (by name or id): another
  project's group id is a 400, as any group the project does not have.
- Faults name hosts for admins only: members and readers read counts and reasons.
- A build that fails on every host it tried keeps each attempt's own error in its fault.

Every authorisation test covers admin, member, reader and another project's member.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from cirrus.config import Settings
from cirrus.db.models import Instance
from tests.api.network_helpers import create as net_create
from tests.api.servers_helpers import add_flavor, add_image, server_body, wait_for_status
from tests.conftest import make_settings

BASE = "/compute/v2.1"


@pytest.fixture
def flavor(cloud) -> str:
    return add_flavor(cloud)


@pytest.fixture
def image(cloud) -> str:
    return add_image(cloud)


@pytest.fixture
def callers(admin, member, reader, other_member) -> dict:
    return {"admin": admin, "member": member, "reader": reader, "other_member": other_member}


def post_server(api, caller, flavor: str, image: str, microversion: str = "2.60", **extra):
    return api.post(f"{BASE}/servers", json=server_body(flavor, image, **extra),
                    headers=caller.compute(microversion))


def server_count(cloud) -> int:
    with cloud.db.reader() as s:
        return s.scalar(select(func.count()).select_from(Instance))


# ---------------------------------------------------------------- forced hosts


@pytest.mark.parametrize("zone", ["nova:fake-2", "nova::fake-2", "nova:fake-2:fake-2",
                                  ":fake-2"])
def test_forced_host_is_admin_only(api, cloud, callers, flavor, image, zone):
    for who in ("member", "reader", "other_member"):
        r = post_server(api, callers[who], flavor, image, availability_zone=zone)
        assert r.status_code == 403, (who, r.text)
        assert set(r.json()) == {"forbidden"}
        if who != "reader":  # a reader may not create at all; the others may not force
            assert "os_compute_api:servers:create:forced_host" in r.json()["forbidden"]["message"]
    assert server_count(cloud) == 0
    admin = callers["admin"]
    r = post_server(api, admin, flavor, image, availability_zone=zone)
    assert r.status_code == 202, r.text
    shown = wait_for_status(api, admin.compute(), r.json()["server"]["id"], "ACTIVE")
    assert shown["OS-EXT-SRV-ATTR:host"] == "fake-2"  # the forced host, whatever the weighers say


def test_forced_host_must_be_a_compute_host(api, cloud, admin, flavor, image):
    for zone in ("nova:no-such-host", "nova::no-such-node", "a:b:c:d"):
        r = post_server(api, admin, flavor, image, availability_zone=zone)
        assert r.status_code == 400, (zone, r.text)
    assert server_count(cloud) == 0


def test_host_fields_in_the_body_are_refused_below_2_74_and_admin_only_from_it(
        api, cloud, callers, flavor, image):
    # Nova takes `host` and `hypervisor_hostname` from 2.74, admins only: before it they are
    # unknown fields (400 for every caller that may create); from it a non-admin gets 403.
    for who in ("admin", "member", "other_member"):
        for field in ("host", "hypervisor_hostname"):
            r = post_server(api, callers[who], flavor, image, **{field: "fake-1"})
            assert r.status_code == 400, (who, field, r.text)
    assert server_count(cloud) == 0
    for who in ("member", "other_member"):
        for field in ("host", "hypervisor_hostname"):
            r = post_server(api, callers[who], flavor, image, microversion="2.74",
                            **{field: "fake-1"})
            assert r.status_code == 403, (who, field, r.text)
    r = post_server(api, callers["reader"], flavor, image, host="fake-1")
    assert r.status_code in (400, 403)
    assert server_count(cloud) == 0
    r = post_server(api, callers["admin"], flavor, image, microversion="2.74", host="fake-1")
    assert r.status_code == 202, r.text
    assert server_count(cloud) == 1


# ---------------------------------------------------------------- availability zones


def test_unknown_availability_zone_is_400_at_create(api, cloud, callers, flavor, image):
    for who in ("admin", "member", "other_member"):
        r = post_server(api, callers[who], flavor, image, availability_zone="atlantis")
        assert r.status_code == 400, (who, r.text)
        assert r.json()["badRequest"]["message"] == "The requested availability zone is not available"
    r = post_server(api, callers["reader"], flavor, image, availability_zone="atlantis")
    assert r.status_code == 403
    assert server_count(cloud) == 0
    r = post_server(api, callers["member"], flavor, image, availability_zone="nova")
    assert r.status_code == 202, r.text
    shown = wait_for_status(api, callers["member"].compute(), r.json()["server"]["id"], "ACTIVE")
    assert shown["OS-EXT-AZ:availability_zone"] == "nova"


def test_a_zone_whose_services_are_all_disabled_is_not_available(api, cloud, admin, member,
                                                                 flavor, image):
    for host in ("fake-1", "fake-2", "fake-3"):
        r = api.put(f"{BASE}/os-services/disable", headers=admin.compute("2.1"),
                    json={"host": host, "binary": "nova-compute"})
        assert r.status_code == 200, r.text
    r = post_server(api, member, flavor, image, availability_zone="nova")
    assert r.status_code == 400, r.text
    assert server_count(cloud) == 0


# ---------------------------------------------------------------- security groups


def new_group(api, caller, name: str) -> dict:
    r = net_create(api, caller, "security-groups", "security_group", name=name)
    assert r.status_code == 201, r.text
    return r.json()["security_group"]


def test_security_groups_are_resolved_in_the_callers_project(api, cloud, callers, flavor, image):
    member, other = callers["member"], callers["other_member"]
    web = new_group(api, member, "web")
    theirs = new_group(api, other, "theirs")
    for ref in ("web", web["id"]):
        r = post_server(api, member, flavor, image, security_groups=[{"name": ref}])
        assert r.status_code == 202, r.text
        assert r.json()["server"]["security_groups"] == [{"name": "web"}]
        shown = api.get(f"{BASE}/servers/{r.json()['server']['id']}", headers=member.compute())
        assert shown.json()["server"]["security_groups"] == [{"name": "web"}]
    made = server_count(cloud)
    # Another project's group, by id or name, is a group this project does not have: 400.
    for who, ref in (("member", theirs["id"]), ("member", "theirs"), ("member", "nope"),
                     ("admin", web["id"]), ("other_member", web["id"]), ("other_member", "web")):
        r = post_server(api, callers[who], flavor, image, security_groups=[{"name": ref}])
        assert r.status_code == 400, (who, ref, r.text)
        assert r.json()["badRequest"]["message"] == f"Security group {ref} not found."
    r = post_server(api, callers["reader"], flavor, image, security_groups=[{"name": "web"}])
    assert r.status_code == 403
    # Every project has `default`, by name or by its id.
    for who in ("admin", "other_member"):
        r = post_server(api, callers[who], flavor, image, security_groups=[{"name": "default"}])
        assert r.status_code == 202, (who, r.text)
    assert server_count(cloud) == made + 2


def test_a_name_two_groups_share_is_a_conflict(api, cloud, member, flavor, image):
    new_group(api, member, "twin")
    new_group(api, member, "twin")
    r = post_server(api, member, flavor, image, security_groups=[{"name": "twin"}])
    assert r.status_code == 409, r.text
    assert server_count(cloud) == 0


# ---------------------------------------------------------------- faults: hosts for admins only


def test_no_valid_host_fault_names_hosts_to_admins_only(api, cloud, callers, image):
    cloud.settings.quota_ram = -1
    huge = add_flavor(cloud, name="huge", ram=10**7)
    member = callers["member"]
    r = post_server(api, member, huge, image)
    assert r.status_code == 202, r.text
    sid = r.json()["server"]["id"]
    for who in ("member", "reader"):
        fault = wait_for_status(api, callers[who].compute(), sid, "ERROR")["fault"]
        assert fault["message"].startswith("No valid host was found. 3 host(s) considered: "
                                           "RamFilter refused 3 (")
        assert "MB RAM free, 10000000 MB needed" in fault["message"]
        assert "fake-" not in str(fault) and "details" not in fault, (who, fault)
    fault = wait_for_status(api, callers["admin"].compute(), sid, "ERROR")["fault"]
    assert "fake-" not in fault["message"]
    assert "fake-1: " in fault["details"] and "RamFilter refused 3" in fault["details"]
    r = api.get(f"{BASE}/servers/{sid}", headers=callers["other_member"].compute())
    assert r.status_code == 404


def test_a_forced_host_is_the_only_host_considered(api, cloud, callers, image):
    # The probe's finding: a member's fault for "nova:HOST" listed every host name and zone
    # (the zone "nova:HOST" matched no host). Now only admins may force, and only the forced
    # host is considered; the message names no host, the details do.
    cloud.settings.quota_ram = -1
    huge = add_flavor(cloud, name="huge", ram=10**7)
    r = post_server(api, callers["admin"], huge, image, availability_zone="nova:fake-3")
    assert r.status_code == 202, r.text
    sid = r.json()["server"]["id"]
    fault = wait_for_status(api, callers["admin"].compute(), sid, "ERROR")["fault"]
    assert "1 host(s) considered" in fault["message"] and "fake-" not in fault["message"]
    assert "fake-3: " in fault["details"]
    assert "fake-1" not in fault["details"]  # only the forced host was considered


def test_disabled_hosts_reason_and_other_zones_are_for_admins(api, cloud, admin, member, flavor,
                                                              image):
    r = api.put(f"{BASE}/os-services/disable-log-reason", headers=admin.compute("2.1"),
                json={"host": "fake-1", "binary": "nova-compute",
                      "disabled_reason": "ticket 42 on rack fake-1"})
    assert r.status_code == 200, r.text
    cloud.settings.quota_ram = -1
    huge = add_flavor(cloud, name="huge", ram=10**7)
    sid = post_server(api, member, huge, image).json()["server"]["id"]
    fault = wait_for_status(api, member.compute(), sid, "ERROR")["fault"]
    assert "ComputeFilter refused 1 (agent is disabled)" in fault["message"]
    assert "ticket 42" not in fault["message"]
    details = wait_for_status(api, admin.compute(), sid, "ERROR")["fault"]["details"]
    assert "fake-1: agent is disabled (ticket 42 on rack fake-1)" in details


# ---------------------------------------------------------------- every attempt's own error


def test_build_failing_on_every_host_keeps_each_attempts_error(api, cloud, callers, flavor,
                                                               image):
    cloud.settings.fake.failure_rate = 1.0
    r = post_server(api, callers["member"], flavor, image)
    sid = r.json()["server"]["id"]
    for who in ("member", "reader"):
        fault = wait_for_status(api, callers[who].compute(), sid, "ERROR")["fault"]
        assert fault["code"] == 500
        assert fault["message"] == ("Build failed on every host tried: attempts 1, 2 and 3: "
                                    "fake driver on <host>: simulated spawn failure")
        assert "details" not in fault
    details = wait_for_status(api, callers["admin"].compute(), sid, "ERROR")["fault"]["details"]
    lines = details.splitlines()
    assert lines[0] == "Build failed on every host tried:"
    tried = [line.split(" on ", 1)[1].split(":", 1)[0] for line in lines[1:4]]
    assert sorted(tried) == ["fake-1", "fake-2", "fake-3"]
    for number, host in enumerate(tried, start=1):
        assert (f"attempt {number} on {host}: fake driver on {host}: simulated spawn failure"
                in lines)
    assert api.get(f"{BASE}/servers/{sid}",
                   headers=callers["other_member"].compute()).status_code == 404


class TestOneHost:
    """One host: the retry finds no other host, so the scheduler's refusal (RetryFilter) ends
    the build. The fault used to say only that; the attempt's own error was lost."""

    @pytest.fixture
    def settings(self, tmp_path) -> Settings:
        settings = make_settings(tmp_path)
        settings.fake.count = 1
        return settings

    def test_the_attempts_error_survives_the_retry_filter(self, api, cloud, callers, flavor,
                                                          image):
        cloud.settings.fake.failure_rate = 1.0
        sid = post_server(api, callers["member"], flavor, image).json()["server"]["id"]
        for who in ("member", "reader"):
            fault = wait_for_status(api, callers[who].compute(), sid, "ERROR")["fault"]
            assert fault["message"] == ("Build failed on every host tried: attempt 1: fake "
                                        "driver on <host>: simulated spawn failure")
            assert "fake-1" not in str(fault)
        details = wait_for_status(api, callers["admin"].compute(), sid, "ERROR")["fault"]["details"]
        assert "attempt 1 on fake-1: fake driver on fake-1: simulated spawn failure" in details
        assert ("then: No valid host was found. 1 host(s) considered: RetryFilter refused 1 "
                "(fake-1: an earlier build attempt failed there)") in details
        # The instance action's event keeps the admin's text too (tracebacks are admins').
        actions = api.get(f"{BASE}/servers/{sid}/os-instance-actions",
                          headers=callers["admin"].compute()).json()["instanceActions"]
        event = api.get(f"{BASE}/servers/{sid}/os-instance-actions/{actions[0]['request_id']}",
                        headers=callers["admin"].compute()).json()["instanceAction"]["events"][-1]
        assert "simulated spawn failure" in event["traceback"]
