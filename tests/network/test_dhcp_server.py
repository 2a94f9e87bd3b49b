"""The host side of DHCP with real namespaces, bridges, dnsmasq and a real DHCP client.

Each "host" is a namespace holding the linuxbridge dataplane's bridge; the DHCP server's
`qdhcp` namespace joins it by a veth, and a "VM" namespace runs busybox's udhcpc on it.
Seed 002: leases must renew after a hosts-file change (SIGHUP) and after dnsmasq restarts.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import uuid
from pathlib import Path

import pytest

from cirrus.network.dataplane.linuxbridge import LinuxBridgeDataplane
from cirrus.network.dhcp.model import DhcpEntry, DhcpNetwork, DhcpSubnet
from cirrus.network.dhcp.server import DnsmasqDhcp, namespace_name
from cirrus.network.model import bridge_name
from tests.network.conftest import Namespaces, ip, wait_for
from tests.network.dhcpclient import Guest
from tests.services import require

VM_MAC = "fa:16:3e:00:10:05"


def make_net(network_id: str, *, port: str = "p-dhcp-a-0000", dhcp_ip: str = "10.77.0.2",
             mac: str = "fa:16:3e:00:10:02", entries: tuple[DhcpEntry, ...] = (),
             lease: int = 600) -> DhcpNetwork:
    subnet = DhcpSubnet(id="s-1", cidr="10.77.0.0/24", ip_version=4, gateway_ip="10.77.0.1",
                        dns_nameservers=("10.77.0.53", "10.77.0.54"),
                        host_routes=(("192.168.50.0/24", "10.77.0.7"),))
    return DhcpNetwork(network_id=network_id, mtu=1400, port_id=port, mac=mac,
                       addresses=(f"{dhcp_ip}/24",), subnets=(subnet,),
                       entries=(DhcpEntry(VM_MAC, "10.77.0.5", "host-10-77-0-5"), *entries),
                       lease=lease, domain="cirrus.test")


def make_server(spaces: Namespaces, tmp_path: Path, name: str, binary: str) -> DnsmasqDhcp:
    host_ns = spaces.add(name)
    return DnsmasqDhcp(tmp_path / f"state-{name}", LinuxBridgeDataplane(netns=host_ns),
                       netns=host_ns, binary=binary)


def assert_options(values: dict[str, str]) -> None:
    assert values["ip"] == "10.77.0.5"
    assert values["router"] == "10.77.0.1"
    assert values["dns"].split() == ["10.77.0.53", "10.77.0.54"]
    assert values["mtu"] == "1400"
    assert values["staticroutes"].split() == ["192.168.50.0/24", "10.77.0.7",
                                              "0.0.0.0/0", "10.77.0.1"]
    assert values["domain"] == "cirrus.test"


@pytest.fixture
def network_id() -> str:
    return str(uuid.uuid4())


def test_a_guest_gets_its_address_and_renews_after_a_reload_and_a_restart(
        namespaces, dnsmasq, busybox, tmp_path, network_id):
    server = make_server(namespaces, tmp_path, "h1", dnsmasq)
    server.sync(make_net(network_id))
    pid = server.pid(network_id)
    assert pid is not None
    guest = Guest(namespaces, "vm", server.netns, bridge_name(network_id), VM_MAC, tmp_path,
                  busybox)
    try:
        guest.start()
        bound = guest.wait_bound()
        assert_options(bound)
        assert bound["serverid"] == "10.77.0.2"
        assert bound["lease"] == "600"
        assert bound["hostname"] == "host-10-77-0-5"

        # A port added: the hosts file is rewritten and dnsmasq reloaded, not restarted.
        other = DhcpEntry("fa:16:3e:00:10:06", "10.77.0.6", "host-10-77-0-6")
        server.sync(make_net(network_id, entries=(other,)))
        assert server.pid(network_id) == pid
        assert "10.77.0.6" in server.paths(network_id).hosts.read_text()
        event, renewed = guest.renew()
        assert event == "renew"
        assert_options(renewed)

        # dnsmasq dies and loses its leases: the periodic check starts it again and the
        # renewal is still answered with the same address (the seed's NAK).
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: server.pid(network_id) is None, what="dnsmasq gone")
        server.paths(network_id).leases.unlink()
        server.check()
        assert server.pid(network_id) not in (None, pid)
        event, renewed = guest.renew()
        assert event == "renew", (event, renewed)
        assert_options(renewed)
    finally:
        guest.stop()


def test_a_port_not_in_the_hosts_file_gets_no_address(namespaces, dnsmasq, busybox, tmp_path,
                                                      network_id):
    server = make_server(namespaces, tmp_path, "h1", dnsmasq)
    server.sync(make_net(network_id))
    stranger = Guest(namespaces, "vmx", server.netns, bridge_name(network_id),
                     "fa:16:3e:00:10:99", tmp_path, busybox)
    with pytest.raises(AssertionError, match="no bound event"):
        stranger.lease_once()


def test_two_dhcp_hosts_of_one_network_both_answer(namespaces, dnsmasq, busybox, tmp_path,
                                                   network_id):
    a = make_server(namespaces, tmp_path, "ha", dnsmasq)
    b = make_server(namespaces, tmp_path, "hb", dnsmasq)
    a.sync(make_net(network_id))
    b.sync(make_net(network_id, port="p-dhcp-b-0000", dhcp_ip="10.77.0.3",
                    mac="fa:16:3e:00:10:03"))
    bridge = bridge_name(network_id)
    # The two hosts' bridges joined by a cable (what the overlay does between hosts).
    ip("link", "add", "uplink", "type", "veth", "peer", "name", "uplink", "netns", b.netns,
       netns=a.netns)
    ip("link", "set", "uplink", "master", bridge, "up", netns=a.netns)
    ip("link", "set", "uplink", "master", bridge, "up", netns=b.netns)
    guest = Guest(namespaces, "vm", a.netns, bridge, VM_MAC, tmp_path, busybox)
    pids = {"10.77.0.2": a.pid(network_id), "10.77.0.3": b.pid(network_id)}
    for server_ip, other in (("10.77.0.2", "10.77.0.3"), ("10.77.0.3", "10.77.0.2")):
        os.kill(pids[other], signal.SIGSTOP)  # only one answers now
        try:
            lease = guest.lease_once()
        finally:
            os.kill(pids[other], signal.SIGCONT)
        assert lease["serverid"] == server_ip
        assert_options(lease)


def test_files_are_private_and_removal_leaves_nothing(namespaces, dnsmasq, tmp_path,
                                                      network_id):
    server = make_server(namespaces, tmp_path, "h1", dnsmasq)
    net = make_net(network_id)
    server.sync(net)
    paths = server.paths(network_id)
    for path in (paths.hosts, paths.opts, paths.leases, paths.config, paths.pid, paths.log):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(paths.directory.stat().st_mode) == 0o700
    assert json.loads(paths.config.read_text())["network_id"] == network_id
    ns = namespace_name(network_id, server.netns)
    assert Path("/run/netns", ns).exists()
    addresses = ip("-j", "addr", "show", netns=ns)
    assert "10.77.0.2" in addresses
    pid = server.pid(network_id)

    server.remove(network_id)
    assert not Path(f"/proc/{pid}/cmdline").exists() or not Path(
        f"/proc/{pid}/cmdline").read_bytes()
    assert not Path("/run/netns", ns).exists()
    assert not paths.directory.exists()
    assert bridge_name(network_id) not in ip("link", "show", netns=server.netns)
    assert server.served() == {}


def test_restore_brings_back_dnsmasq_and_the_namespace_after_a_host_restart(
        namespaces, dnsmasq, tmp_path, network_id):
    server = make_server(namespaces, tmp_path, "h1", dnsmasq)
    server.sync(make_net(network_id))
    # A host restart: processes and namespaces gone, the state directory kept.
    os.kill(server.pid(network_id), signal.SIGKILL)
    ns = namespace_name(network_id, server.netns)
    ip("netns", "del", ns)
    ip("link", "del", bridge_name(network_id), netns=server.netns)
    fresh = DnsmasqDhcp(server.state_dir, server.dataplane, netns=server.netns,
                        binary=dnsmasq)
    fresh.restore()
    assert fresh.pid(network_id) is not None
    assert "10.77.0.2" in ip("-j", "addr", "show", netns=ns)
    assert bridge_name(network_id) in ip("link", "show", netns=server.netns)


def test_a_changed_subnet_restarts_dnsmasq_with_the_new_range(namespaces, dnsmasq, tmp_path,
                                                              network_id):
    server = make_server(namespaces, tmp_path, "h1", dnsmasq)
    net = make_net(network_id)
    server.sync(net)
    pid = server.pid(network_id)
    server.sync(make_net(network_id, lease=-1))
    new = server.pid(network_id)
    assert new not in (None, pid)
    assert any(arg.endswith(",infinite") for arg in
               Path(f"/proc/{new}/cmdline").read_bytes().decode().split("\0"))


def _dhcpv6_guest(namespaces: Namespaces, server: DnsmasqDhcp, network_id: str) -> str:
    vm = namespaces.add("vm6")
    ip("link", "add", "v6out", "type", "veth", "peer", "name", "eth0", "netns", vm,
       netns=server.netns)
    ip("link", "set", "v6out", "master", bridge_name(network_id), "up", netns=server.netns)
    subprocess.run(["ip", "netns", "exec", vm, "sysctl", "-qw",
                    "net.ipv6.conf.eth0.accept_dad=0"], check=True)
    ip("link", "set", "eth0", "address", VM_MAC, "up", netns=vm)
    return vm


def _v6_network(network_id: str, mode: str) -> DhcpNetwork:
    v6 = DhcpSubnet(id="s6", cidr="2001:db8:5::/64", ip_version=6, gateway_ip="2001:db8:5::1",
                    dns_nameservers=("2001:db8:5::53",), ipv6_address_mode=mode)
    return DhcpNetwork(
        network_id=network_id, mtu=1500, port_id="p-dhcp6-0000", mac="fa:16:3e:00:20:02",
        addresses=("2001:db8:5::2/64",), subnets=(v6,),
        entries=(DhcpEntry(VM_MAC, "2001:db8:5::5", "host-2001-db8-5--5"),), lease=600)


@pytest.fixture
def dhclient() -> str:
    path = shutil.which("dhclient")
    require(path is not None, "dhclient is not installed (apt-get install isc-dhcp-client)")
    return str(path)


def test_dhcpv6_stateful_gives_the_port_its_address_and_dns(namespaces, dnsmasq, dhclient,
                                                             tmp_path, network_id):
    server = make_server(namespaces, tmp_path, "h1", dnsmasq)
    server.sync(_v6_network(network_id, "dhcpv6-stateful"))
    vm = _dhcpv6_guest(namespaces, server, network_id)
    leases, pidfile = tmp_path / "dhclient6.leases", tmp_path / "dhclient6.pid"
    # -sf /bin/true: the client configures nothing and touches no file of the machine.
    done = subprocess.run(["ip", "netns", "exec", vm, dhclient, "-6", "-1", "-sf",
                           "/bin/true", "-lf", str(leases), "-pf", str(pidfile), "eth0"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    text = leases.read_text()
    assert "iaaddr 2001:db8:5::5 " in text
    assert "option dhcp6.name-servers 2001:db8:5::53;" in text
    assert 'option dhcp6.domain-search "openstacklocal."' in text


def test_dhcpv6_stateless_answers_options_only(namespaces, dnsmasq, dhclient, tmp_path,
                                               network_id):
    server = make_server(namespaces, tmp_path, "h1", dnsmasq)
    net = _v6_network(network_id, "dhcpv6-stateless")
    server.sync(net)
    assert server.paths(network_id).hosts.read_text() == ""  # no address is handed out
    vm = _dhcpv6_guest(namespaces, server, network_id)
    told = tmp_path / "told"
    script = tmp_path / "dhclient-script"
    script.write_text(f"#!/bin/sh\nenv | grep ^new_ >> {told}\n")
    script.chmod(0o700)
    done = subprocess.run(["ip", "netns", "exec", vm, dhclient, "-6", "-S", "-1", "-sf",
                           str(script), "-lf", str(tmp_path / "l6"), "-pf",
                           str(tmp_path / "p6"), "eth0"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    values = dict(line.split("=", 1) for line in told.read_text().splitlines())
    assert values["new_dhcp6_name_servers"] == "2001:db8:5::53"
    assert values["new_dhcp6_domain_search"].strip("'\"") == "openstacklocal."
    assert "new_ip6_address" not in values
