"""dnsmasq's hosts and options files and command line, rendered from a network's DHCP data."""

from __future__ import annotations

from pathlib import Path

from cirrus.network.dhcp import render
from cirrus.network.dhcp.model import DhcpEntry, DhcpNetwork, DhcpSubnet, hostname_for

V4 = DhcpSubnet(id="s4", cidr="10.0.0.0/24", ip_version=4, gateway_ip="10.0.0.1",
                dns_nameservers=("8.8.8.8", "1.1.1.1"),
                host_routes=(("172.16.0.0/16", "10.0.0.254"),))
BARE = DhcpSubnet(id="sb", cidr="10.1.0.0/24", ip_version=4, gateway_ip=None)
V6 = DhcpSubnet(id="s6", cidr="2001:db8::/64", ip_version=6, gateway_ip="2001:db8::1",
                dns_nameservers=("2001:db8::53",), ipv6_address_mode="dhcpv6-stateful")
SLAAC = DhcpSubnet(id="sl", cidr="2001:db8:1::/64", ip_version=6, gateway_ip="2001:db8:1::1",
                   ipv6_address_mode="slaac")


def net(*subnets: DhcpSubnet, entries=(), lease=86400) -> DhcpNetwork:
    return DhcpNetwork(network_id="n1", mtu=1450, port_id="p1", mac="fa:16:3e:00:00:02",
                       addresses=("10.0.0.2/24",), subnets=subnets, entries=tuple(entries),
                       lease=lease, domain="openstacklocal")


def entry(mac: str, ip: str) -> DhcpEntry:
    return DhcpEntry(mac, ip, hostname_for(ip))


def test_hosts_file_has_one_line_per_address_on_a_stateful_subnet_sorted():
    text = render.hosts_file(net(V4, V6, SLAAC, entries=[
        entry("fa:16:3e:00:00:0b", "10.0.0.11"), entry("fa:16:3e:00:00:0a", "10.0.0.10"),
        entry("fa:16:3e:00:00:0a", "2001:db8::a"),
        entry("fa:16:3e:00:00:0a", "2001:db8:1::f816:3eff:fe00:a"),  # SLAAC: not ours
        entry("fa:16:3e:00:00:0c", "192.168.9.9"),  # on no served subnet
    ]))
    assert text == (
        "fa:16:3e:00:00:0a,host-10-0-0-10.openstacklocal,10.0.0.10\n"
        "fa:16:3e:00:00:0a,host-2001-db8--a.openstacklocal,[2001:db8::a]\n"
        "fa:16:3e:00:00:0b,host-10-0-0-11.openstacklocal,10.0.0.11\n")


def test_options_give_router_dns_routes_and_mtu_per_subnet():
    text = render.opts_file(net(V4, BARE, V6, SLAAC))
    assert text.splitlines() == [
        "tag:subnet-s4,option:router,10.0.0.1",
        "tag:subnet-s4,option:dns-server,8.8.8.8,1.1.1.1",
        "tag:subnet-s4,option:classless-static-route,172.16.0.0/16,10.0.0.254,"
        "0.0.0.0/0,10.0.0.1",
        "tag:subnet-s4,249,172.16.0.0/16,10.0.0.254,0.0.0.0/0,10.0.0.1",
        "tag:subnet-sb,option:router",  # no gateway: no router option at all
        "tag:subnet-s6,option6:dns-server,[2001:db8::53]",
        "tag:subnet-s6,option6:domain-search,openstacklocal",
    ]


def test_command_line_is_dhcp_only_static_and_private():
    paths = render.Paths(Path("/state/n1"))
    argv = render.dnsmasq_argv(net(V4, V6, SLAAC), paths, "cirrus", "cirrus")
    assert argv[0] == "dnsmasq"
    for flag in ("--no-resolv", "--no-hosts", "--except-interface=lo", "--bind-interfaces",
                 "--port=0", "--conf-file=/dev/null", "--dhcp-authoritative",
                 "--dhcp-hostsfile=/state/n1/hosts", "--dhcp-optsfile=/state/n1/opts",
                 "--dhcp-leasefile=/state/n1/leases", "--pid-file=/state/n1/pid",
                 "--user=cirrus", "--domain=openstacklocal",
                 "--dhcp-option-force=option:mtu,1450"):
        assert flag in argv
    ranges = [a for a in argv if a.startswith("--dhcp-range=")]
    assert ranges == [
        "--dhcp-range=set:subnet-s4,10.0.0.0,static,255.255.255.0,86400s",
        "--dhcp-range=set:subnet-s6,2001:db8::,static,64,86400s",
    ]


def test_infinite_lease_and_the_command_line_does_not_depend_on_ports():
    paths = render.Paths(Path("/s"))
    one = render.dnsmasq_argv(net(V4, lease=-1), paths, "u", "g")
    many = render.dnsmasq_argv(net(V4, lease=-1, entries=[entry("fa:16:3e:00:00:01",
                                                                "10.0.0.9")]), paths, "u", "g")
    assert "--dhcp-range=set:subnet-s4,10.0.0.0,static,255.255.255.0,infinite" in one
    assert one == many  # a port change never restarts dnsmasq


def test_the_network_survives_the_bus_as_plain_data():
    original = net(V4, V6, entries=[entry("fa:16:3e:00:00:0a", "10.0.0.10")])
    assert DhcpNetwork.from_dict(original.to_dict()) == original
