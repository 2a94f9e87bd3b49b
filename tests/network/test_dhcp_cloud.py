"""DHCP end to end on one host: the API, the control side, the bus, an agent with the
linuxbridge dataplane in a namespace of its own, a real dnsmasq, and a guest namespace
running busybox's udhcpc with a port's MAC."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cirrus.agent.service import Agent
from cirrus.hosts.liveness import DHCP_BINARY
from cirrus.network.dhcp.server import DnsmasqDhcp, namespace_name
from cirrus.network.model import bridge_name
from cirrus.runtime import Cloud
from tests.api.network_helpers import NET, network, port, subnet
from tests.network.conftest import cloud_with_agent_in, ip, wait_for
from tests.network.dhcpclient import Guest

HOST = "dhcp-host-1"


@pytest.fixture
def host_ns(namespaces) -> str:
    return namespaces.add("hv")


@pytest.fixture
def cloud(settings, host_ns, dnsmasq) -> Iterator[Cloud]:
    settings.dhcp_agent = True
    with cloud_with_agent_in(settings, HOST, host_ns, DHCP_BINARY) as (c, agent):
        assert isinstance(agent.dhcp, DnsmasqDhcp)
        yield c
    for network_id in list(agent.dhcp.served()):
        agent.dhcp.remove(network_id)


def the_agent(cloud: Cloud) -> Agent:
    return next(role for role in cloud.roles if isinstance(role, Agent))


def test_a_guest_gets_its_port_address_and_deleting_the_network_leaves_nothing(
        cloud, api, member, namespaces, busybox, host_ns, tmp_path):
    agent = the_agent(cloud)
    net = network(api, member, mtu=1400)
    subnet(api, member, net["id"], cidr="10.88.0.0/24", gateway_ip="10.88.0.1",
           dns_nameservers=["10.88.0.53"],
           host_routes=[{"destination": "192.168.60.0/24", "nexthop": "10.88.0.9"}])
    vm = port(api, member, net["id"])
    address = vm["fixed_ips"][0]["ip_address"]
    dhcp = agent.dhcp
    assert isinstance(dhcp, DnsmasqDhcp)
    wait_for(lambda: dhcp.pid(net["id"]) is not None
             and vm["mac_address"] in dhcp.paths(net["id"]).hosts.read_text(),
             what="dnsmasq serving the port")
    [dhcp_port] = api.get(f"{NET}/ports?network_id={net['id']}&device_owner=network:dhcp",
                          headers=member.headers).json()["ports"]
    server_ip = dhcp_port["fixed_ips"][0]["ip_address"]

    guest = Guest(namespaces, "vm", host_ns, bridge_name(net["id"]), vm["mac_address"],
                  tmp_path, busybox)
    lease = guest.lease_once()
    assert lease["ip"] == address
    assert lease["serverid"] == server_ip
    assert lease["router"] == "10.88.0.1"
    assert lease["dns"] == "10.88.0.53"
    assert lease["mtu"] == "1400"
    assert lease["staticroutes"].split() == ["192.168.60.0/24", "10.88.0.9",
                                             "0.0.0.0/0", "10.88.0.1"]
    assert lease["lease"] == str(cloud.settings.dhcp_lease_duration)

    # A second port: dnsmasq is reloaded, not restarted.
    pid = dhcp.pid(net["id"])
    other = port(api, member, net["id"])
    wait_for(lambda: other["mac_address"] in dhcp.paths(net["id"]).hosts.read_text(),
             what="the second port in the hosts file")
    assert dhcp.pid(net["id"]) == pid

    # Everything goes with the network: the process, the namespace, the files, the bridge.
    state = dhcp.paths(net["id"]).directory
    ns = namespace_name(net["id"], host_ns)
    guest.stop()
    ip("link", "del", "eth0", netns=guest.ns)  # at once: a deleted namespace's go later
    ip("netns", "del", guest.ns)
    for p in (vm, other):
        assert api.delete(f"{NET}/ports/{p['id']}", headers=member.headers).status_code == 204
    assert api.delete(f"{NET}/networks/{net['id']}", headers=member.headers).status_code == 204
    wait_for(lambda: not state.exists(), what="the network's DHCP state removed")
    assert not Path("/run/netns", ns).exists()
    assert not Path(f"/proc/{pid}/cmdline").exists() or not Path(
        f"/proc/{pid}/cmdline").read_bytes()
    assert bridge_name(net["id"]) not in ip("link", "show", netns=host_ns)


def test_a_subnet_without_dhcp_starts_no_dnsmasq(cloud, api, member, host_ns):
    agent = the_agent(cloud)
    net = network(api, member)
    subnet(api, member, net["id"], cidr="10.89.0.0/24", enable_dhcp=False)
    port(api, member, net["id"])
    time.sleep(0.5)  # what would have been sent has been handled by now
    assert net["id"] not in agent.dhcp.served()
    assert not Path("/run/netns", namespace_name(net["id"], host_ns)).exists()
    ports = api.get(f"{NET}/ports?network_id={net['id']}", headers=member.headers).json()
    assert [p["device_owner"] for p in ports["ports"]] == [""]
