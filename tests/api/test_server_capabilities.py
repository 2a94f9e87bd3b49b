"""Driver capabilities: what a host's virt driver cannot do (as its agent reports) is refused
with a 409 that says so, before anything changes: NIC hot-plug (attach at the API, detach at
the conductor) and snapshots; a host that never reported capabilities is not refused."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select, update

from cirrus.context import RequestContext
from cirrus.db.models import ComputeNode, Image, Instance
from cirrus.virt.driver import DriverCapabilities
from tests.api.servers_helpers import add_flavor, add_image, server_body, wait_for_status

NET = "/network/v2.0"
SERVERS = "/compute/v2.1/servers"


def _boot(api, cloud, caller, networks):
    body = server_body(add_flavor(cloud), add_image(cloud))
    body["server"]["networks"] = networks
    r = api.post(SERVERS, json=body, headers=caller.compute())
    assert r.status_code == 202, r.text
    return wait_for_status(api, caller.compute(), r.json()["server"]["id"], "ACTIVE")


def _network(api, caller, name, cidr):
    net = api.post(f"{NET}/networks", json={"network": {"name": name}},
                   headers=caller.headers).json()["network"]
    r = api.post(f"{NET}/subnets", json={"subnet": {"network_id": net["id"], "ip_version": 4,
                                                    "cidr": cidr}}, headers=caller.headers)
    assert r.status_code == 201, r.text
    return net


def _host_reports(cloud, uuid: str, capabilities: DriverCapabilities) -> None:
    """The fake driver of `uuid`'s host gets `capabilities`; its agent reports them."""
    with cloud.db.reader() as s:
        host = s.scalar(select(Instance.host).where(Instance.uuid == uuid))
    agent = next(r for r in cloud.roles if type(r).__name__ == "Agent" and r.host == host)
    agent.driver.capabilities = capabilities
    agent.report(RequestContext.admin(), full=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with cloud.db.reader() as s:
            if s.scalar(select(ComputeNode.capabilities).where(
                    ComputeNode.host == host)) == capabilities.to_dict():
                return
        time.sleep(0.02)
    raise AssertionError(f"{host} did not record its capabilities")


def test_the_fake_driver_reports_its_capabilities(cloud, api, member):
    server = _boot(api, cloud, member, "none")
    with cloud.db.reader() as s:
        host = s.scalar(select(Instance.host).where(Instance.uuid == server["id"]))
        reported = s.scalar(select(ComputeNode.capabilities).where(ComputeNode.host == host))
    assert reported == {"hot_plug_nic": True, "snapshot": True, "balloon": False,
                        "volume_attach": True}


def test_attach_and_detach_on_a_host_without_hot_plug_are_409(api, cloud, member):
    net_a = _network(api, member, "a", "10.1.0.0/24")
    net_b = _network(api, member, "b", "10.2.0.0/24")
    server = _boot(api, cloud, member, [{"uuid": net_a["id"]}])
    _host_reports(cloud, server["id"], DriverCapabilities(hot_plug_nic=False, snapshot=True))
    url = f"{SERVERS}/{server['id']}/os-interface"
    r = api.post(url, json={"interfaceAttachment": {"net_id": net_b["id"]}},
                 headers=member.compute())
    assert r.status_code == 409, r.text
    assert "cannot hot-plug network interfaces" in r.json()["conflictingRequest"]["message"]
    port_id = api.get(url, headers=member.compute()).json()["interfaceAttachments"][0]["port_id"]
    r = api.delete(f"{url}/{port_id}", headers=member.compute())
    assert r.status_code == 409, r.text
    assert "cannot hot-plug network interfaces" in r.json()["conflictingRequest"]["message"]
    listed = api.get(url, headers=member.compute()).json()["interfaceAttachments"]
    assert [a["net_id"] for a in listed] == [net_a["id"]]  # nothing changed


def test_a_snapshot_on_a_host_that_cannot_is_409_and_records_no_image(api, cloud, member):
    server = _boot(api, cloud, member, "none")
    _host_reports(cloud, server["id"], DriverCapabilities(hot_plug_nic=True, snapshot=False))
    r = api.post(f"{SERVERS}/{server['id']}/action", json={"createImage": {"name": "snap"}},
                 headers=member.compute("2.60"))
    assert r.status_code == 409, r.text
    assert "cannot snapshot servers" in r.json()["conflictingRequest"]["message"]
    with cloud.db.reader() as s:
        assert s.scalar(select(Image.id).where(Image.name == "snap")) is None
    after = api.get(f"{SERVERS}/{server['id']}", headers=member.compute()).json()["server"]
    assert after["OS-EXT-STS:task_state"] is None


@pytest.mark.parametrize("reported", [None, {}])
def test_a_host_that_never_reported_capabilities_is_not_refused(api, cloud, member,
                                                                reported):
    server = _boot(api, cloud, member, "none")
    with cloud.db.reader() as s:
        host = s.scalar(select(Instance.host).where(Instance.uuid == server["id"]))
    cloud.db.run(lambda s: s.execute(update(ComputeNode).where(ComputeNode.host == host)
                                     .values(capabilities=reported)))
    r = api.post(f"{SERVERS}/{server['id']}/action", json={"createImage": {"name": "snap"}},
                 headers=member.compute("2.60"))
    assert r.status_code == 202, r.text
