"""The server list's `ip` and `ip6` filters: part of a fixed address, as Nova asks Neutron
(a regex's ^, $ and \\. are taken off), for members and admins."""

from __future__ import annotations

from tests.api.network_helpers import network, subnet
from tests.api.servers_helpers import server_body, wait_for_status


def boot(api, member, flavor, image, net_id: str, address: str | None) -> str:
    nic = {"uuid": net_id, **({"fixed_ip": address} if address else {})}
    r = api.post("/compute/v2.1/servers", headers=member.compute(),
                 json=server_body(flavor, image, name=address or "dual", networks=[nic]))
    assert r.status_code == 202, r.text
    return wait_for_status(api, member.compute(), r.json()["server"]["id"], "ACTIVE")["id"]


def ids(api, caller, **params) -> set[str]:
    r = api.get("/compute/v2.1/servers", params=params, headers=caller.compute())
    assert r.status_code == 200, r.text
    return {s["id"] for s in r.json()["servers"]}


def test_ip_filters(api, member, other_member, flavor, image):
    net = network(api, member)
    subnet(api, member, net["id"], "10.1.1.0/24",
           allocation_pools=[{"start": "10.1.1.200", "end": "10.1.1.250"}])
    subnet(api, member, net["id"], "fd00:1::/64")
    one = boot(api, member, flavor, image, net["id"], "10.1.1.1")
    ten = boot(api, member, flavor, image, net["id"], "10.1.1.10")
    two = boot(api, member, flavor, image, net["id"], "10.1.1.2")
    dual = boot(api, member, flavor, image, net["id"], None)  # an IPv4 and an IPv6 address
    assert ids(api, member, ip="10.1.1.1") == {one, ten}
    assert ids(api, member, ip="10.1.1.10") == {ten}
    assert ids(api, member, ip="^10\\.1\\.1\\.10$") == {ten}
    assert ids(api, member, ip="10.1.1.2") == {two, dual}  # part of 10.1.1.2xx too, as in Nova
    assert ids(api, member, ip="10.9.") == set()
    assert ids(api, member, ip6="fd00:1::") == {dual}
    assert ids(api, member, ip="fd00:1::") == {dual}
    assert ids(api, member, ip6="10.1.1.1") == set()
    # Another project's servers never match.
    assert ids(api, other_member, ip="10.1.1.") == set()
