"""Compute odds and ends of issue 13: the version list (v2.0 first, /v2 served), IPv6 shown
compressed, injectNetworkInfo, and what microversions 2.61 to 2.90 change on Cirrus's routes."""

from __future__ import annotations

import ipaddress

import pytest
from sqlalchemy import select

from cirrus.api.compute import microversion
from cirrus.db.models import IPAllocation
from tests.api import network_helpers as nets
from tests.api.servers_helpers import server_body, wait_for_status

BASE = "/compute/v2.1"


def boot(api, caller, flavor, image, version="2.60", **extra) -> str:
    r = api.post(f"{BASE}/servers", headers=caller.compute(version),
                 json=server_body(flavor, image, **extra))
    assert r.status_code == 202, r.text
    sid = r.json()["server"]["id"]
    wait_for_status(api, caller.compute(), sid, "ACTIVE")
    return sid


# ---------------------------------------------------------------- versions


def test_version_list_names_v2_0_first_and_each_self_link_answers(api):
    versions = api.get("/compute/").json()["versions"]
    assert [v["id"] for v in versions] == ["v2.0", "v2.1"]
    assert versions[0]["status"] == "SUPPORTED" and versions[0]["version"] == ""
    assert versions[1]["version"] == microversion.fmt(microversion.MAX_VERSION) == "2.90"
    for listed in versions:
        [self_link] = [link for link in listed["links"] if link["rel"] == "self"]
        path = self_link["href"].split("testserver", 1)[1]
        shown = api.get(path).json()["version"]
        assert shown["id"] == listed["id"]
        assert [link for link in shown["links"] if link["rel"] == "self"] == [self_link]


def test_v2_0_serves_the_api_without_microversions(api, member, flavor, image):
    sid = boot(api, member, flavor, image)
    r = api.get(f"/compute/v2/servers/{sid}",
                headers={**member.headers, "OpenStack-API-Version": "compute 2.90"})
    assert r.status_code == 200
    assert "OpenStack-API-Version" not in r.headers
    assert "tags" not in r.json()["server"]  # 2.1's view, whatever the header asks
    assert api.get("/compute/v2/servers/detail", headers=member.headers).status_code == 200
    assert api.get(f"/compute/v2/servers/{sid}", headers={}).status_code == 401


# ---------------------------------------------------------------- IPv6 compressed


def test_ipv6_addresses_are_shown_compressed(api, cloud, member, flavor, image):
    net = nets.network(api, member, name="v6net")
    nets.subnet(api, member, net["id"], cidr="fd00::/64")
    sid = boot(api, member, flavor, image, networks=[{"uuid": net["id"]}],
               accessIPv6="2001:0db8:0000:0000:0000:0000:0000:0001")

    def expand(s):  # a record written in the long form is still shown compressed
        for alloc in s.scalars(select(IPAllocation)):
            if ":" in alloc.ip_address:
                alloc.ip_address = ipaddress.ip_address(alloc.ip_address).exploded
    cloud.db.run(expand)
    server = api.get(f"{BASE}/servers/{sid}", headers=member.compute()).json()["server"]
    [v6] = [a for a in server["addresses"]["v6net"] if a["version"] == 6]
    assert v6["addr"] == ipaddress.ip_address(v6["addr"]).compressed and "::" in v6["addr"]
    assert server["accessIPv6"] == "2001:db8::1"
    ips = api.get(f"{BASE}/servers/{sid}/ips", headers=member.compute()).json()["addresses"]
    assert ips["v6net"][0]["addr"] == v6["addr"]


# ---------------------------------------------------------------- injectNetworkInfo


def test_inject_network_info_is_admin_only_and_202(api, admin, member, reader, other_member,
                                                   flavor, image):
    sid = boot(api, member, flavor, image)
    body = {"injectNetworkInfo": None}
    for caller, status in ((member, 403), (reader, 403), (other_member, 403), (admin, 202)):
        r = api.post(f"{BASE}/servers/{sid}/action", headers=caller.compute(), json=body)
        assert r.status_code == status, r.text
    r = api.post(f"{BASE}/servers/00000000-0000-0000-0000-000000000000/action",
                 headers=admin.compute(), json=body)
    assert r.status_code == 404
    server = wait_for_status(api, member.compute(), sid, "ACTIVE")
    assert server["OS-EXT-STS:task_state"] is None


# ---------------------------------------------------------------- microversions 2.61-2.90


def test_server_fields_from_2_63_to_2_90(api, admin, member, flavor, image):
    sid = boot(api, member, flavor, image)
    at_260 = api.get(f"{BASE}/servers/{sid}", headers=member.compute("2.60")).json()["server"]
    for field in ("trusted_image_certificates", "server_groups", "locked_reason"):
        assert field not in at_260
    at_290 = api.get(f"{BASE}/servers/{sid}", headers=member.compute("2.90")).json()["server"]
    assert at_290["trusted_image_certificates"] is None
    assert at_290["server_groups"] == [] and at_290["locked_reason"] is None
    # 2.90: members see the hostname too.
    assert at_290["OS-EXT-SRV-ATTR:hostname"] == "vm"
    assert "OS-EXT-SRV-ATTR:hostname" not in api.get(
        f"{BASE}/servers/{sid}", headers=member.compute("2.89")).json()["server"]


def test_update_answers_the_full_view_from_2_75_and_sets_hostname_from_2_90(api, member, flavor,
                                                                             image):
    sid = boot(api, member, flavor, image)
    url = f"{BASE}/servers/{sid}"
    before = api.put(url, headers=member.compute("2.74"), json={"server": {"name": "a"}})
    assert "OS-EXT-STS:vm_state" not in before.json()["server"]
    after = api.put(url, headers=member.compute("2.75"), json={"server": {"name": "b"}})
    assert after.json()["server"]["OS-EXT-STS:vm_state"] == "active"
    r = api.put(url, headers=member.compute("2.89"), json={"server": {"hostname": "web-1"}})
    assert r.status_code == 400 and "hostname" in r.json()["badRequest"]["message"]
    r = api.put(url, headers=member.compute("2.90"), json={"server": {"hostname": "web-1"}})
    assert r.status_code == 200 and r.json()["server"]["OS-EXT-SRV-ATTR:hostname"] == "web-1"
    r = api.put(url, headers=member.compute("2.90"), json={"server": {"hostname": "no_way"}})
    assert r.status_code == 400 and "hostname" in r.json()["badRequest"]["message"]


def test_create_options_by_version(api, admin, member, flavor, image):
    r = api.post(f"{BASE}/servers", headers=member.compute("2.90"),
                 json=server_body(flavor, image, hostname="db-1"))
    assert r.status_code == 202
    sid = r.json()["server"]["id"]
    assert wait_for_status(api, member.compute("2.90"), sid, "ACTIVE")[
        "OS-EXT-SRV-ATTR:hostname"] == "db-1"
    for version, field, value in (("2.89", "hostname", "db-2"),
                                  ("2.62", "trusted_image_certificates", ["c"]),
                                  ("2.73", "host", "somewhere")):
        r = api.post(f"{BASE}/servers", headers=member.compute(version),
                     json=server_body(flavor, image, **{field: value}))
        assert r.status_code == 400 and field in r.json()["badRequest"]["message"], r.text
    r = api.post(f"{BASE}/servers", headers=member.compute("2.63"),
                 json=server_body(flavor, image, trusted_image_certificates=["cert"]))
    assert r.status_code == 400
    assert "trusted_image_certificates" in r.json()["badRequest"]["message"]
    # 2.74: a requested host is the admins'.
    r = api.post(f"{BASE}/servers", headers=member.compute("2.74"),
                 json=server_body(flavor, image, host="anything"))
    assert r.status_code == 403
    r = api.post(f"{BASE}/servers", headers=admin.compute("2.74"),
                 json=server_body(flavor, image, host="no-such-host"))
    assert r.status_code == 400


def test_list_query_is_strict_from_2_75(api, member):
    assert api.get(f"{BASE}/servers?bogus=1", headers=member.compute("2.74")).status_code == 200
    r = api.get(f"{BASE}/servers?bogus=1", headers=member.compute("2.75"))
    assert r.status_code == 400 and "bogus" in r.json()["badRequest"]["message"]
    assert api.get(f"{BASE}/servers?key_name=k&limit=2",
                   headers=member.compute("2.90")).status_code == 200


def test_flavor_extra_specs_from_2_61_and_swap_from_2_75(api, admin, member, flavor):
    api.post(f"{BASE}/flavors/{flavor}/os-extra_specs", headers=admin.compute(),
             json={"extra_specs": {"hw:cpu_policy": "shared"}})
    at_260 = api.get(f"{BASE}/flavors/{flavor}", headers=member.compute("2.60")).json()["flavor"]
    assert "extra_specs" not in at_260 and at_260["swap"] == ""
    at_261 = api.get(f"{BASE}/flavors/{flavor}", headers=member.compute("2.61")).json()["flavor"]
    assert at_261["extra_specs"] == {"hw:cpu_policy": "shared"}
    at_275 = api.get(f"{BASE}/flavors/{flavor}", headers=member.compute("2.75")).json()["flavor"]
    assert at_275["swap"] == 0


def test_instance_action_events_from_2_62_and_2_84(api, admin, member, flavor, image):
    sid = boot(api, member, flavor, image)
    actions = api.get(f"{BASE}/servers/{sid}/os-instance-actions",
                      headers=member.compute("2.66")).json()["instanceActions"]
    request_id = actions[0]["request_id"]
    url = f"{BASE}/servers/{sid}/os-instance-actions/{request_id}"
    events = api.get(url, headers=member.compute("2.61")).json()["instanceAction"]["events"]
    assert events and "hostId" not in events[0]
    events = api.get(url, headers=member.compute("2.84")).json()["instanceAction"]["events"]
    assert all("hostId" in e and "details" in e and "host" not in e for e in events)
    admin_events = api.get(url, headers=admin.compute("2.84")).json()["instanceAction"]["events"]
    assert all("host" in e for e in admin_events)
    r = api.get(f"{BASE}/servers/{sid}/os-instance-actions?changes-before=2000-01-01T00:00:00",
                headers=member.compute("2.66"))
    assert r.json()["instanceActions"] == []
    r = api.get(f"{BASE}/servers/{sid}/os-instance-actions?changes-before=later",
                headers=member.compute("2.66"))
    assert r.status_code == 400 and "changes-before" in r.json()["badRequest"]["message"]


@pytest.mark.parametrize("version", ["2.91", "3.0"])
def test_versions_past_the_maximum_are_406(api, member, version):
    r = api.get(f"{BASE}/servers", headers=member.compute(version))
    assert r.status_code == 406


def test_interfaces_show_a_null_device_tag_from_2_70(api, member, flavor, image):
    net = nets.network(api, member, name="tagnet")
    nets.subnet(api, member, net["id"], cidr="10.9.0.0/24")
    sid = boot(api, member, flavor, image, networks=[{"uuid": net["id"]}])
    url = f"{BASE}/servers/{sid}/os-interface"
    [before] = api.get(url, headers=member.compute("2.69")).json()["interfaceAttachments"]
    assert "tag" not in before
    [after] = api.get(url, headers=member.compute("2.70")).json()["interfaceAttachments"]
    assert after["tag"] is None
    shown = api.get(f"{url}/{after['port_id']}", headers=member.compute("2.70")).json()
    assert shown["interfaceAttachment"]["tag"] is None
