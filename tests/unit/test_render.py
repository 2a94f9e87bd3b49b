"""The static network files a guest applies (`cirrus.network.render`), from NICs to text.

Two kinds of test:

- Golden files: each case below renders its NICs and compares all four outputs, byte for
  byte, with tests/unit/golden/render/<case>/ (network_data.json, interfaces,
  70-persistent-net.rules, netplan.yaml). The golden files are the spec: read them when
  changing the renderers. To rewrite them after a deliberate change:

      CIRRUS_UPDATE_GOLDEN=1 scripts/test tests/unit/test_render.py -q

  (the rewritten cases are reported as skipped), then review `git diff tests/unit/golden`
  line by line before committing.
- Properties that hold whatever the golden files say: every address, MAC, MTU, route and
  DNS server of the input appears in each output; no gateway where a subnet has none; one
  default route per family; one udev rule per NIC; the static/DHCP rule.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from pathlib import Path

import pytest
import yaml

from cirrus.network.model import FixedIp, Nic, SubnetInfo
from cirrus.network.render import (
    address_mode,
    debian_interfaces,
    netplan,
    network_data,
    render_all,
    udev_rules,
)

GOLDEN = Path(__file__).parent / "golden" / "render"
UPDATE = os.environ.get("CIRRUS_UPDATE_GOLDEN") == "1"
FILES = {  # file name -> how it is serialised from render_all's value
    "network_data.json": lambda out: json.dumps(out["network_data"], indent=2) + "\n",
    "interfaces": lambda out: out["interfaces"],
    "70-persistent-net.rules": lambda out: out["udev_rules"],
    "netplan.yaml": lambda out: out["netplan"],
}

NET_A = "5f0c1c1e-8d8b-4f43-9a38-0a6f1c2d3e4f"
NET_B = "9b2e7d60-3c1a-4b5e-8f7d-1e2f3a4b5c6d"
PORT_0 = "cd9f6d46-4a3a-43ab-a466-994af9db96fc"
PORT_1 = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"

SUBNET_STATIC = SubnetInfo(
    id="11111111-1111-4111-8111-111111111111", cidr="10.180.80.0/23", ip_version=4,
    gateway_ip="10.180.80.1", dns_nameservers=("10.180.0.2", "10.180.0.3"),
    host_routes=(("10.180.8.0/22", "10.180.80.1"), ("169.254.169.254/32", "10.180.80.10")),
    enable_dhcp=False)
SUBNET_NO_GATEWAY = SubnetInfo(
    id="22222222-2222-4222-8222-222222222222", cidr="192.168.7.0/26", ip_version=4,
    gateway_ip=None, enable_dhcp=False)
SUBNET_V6 = SubnetInfo(
    id="33333333-3333-4333-8333-333333333333", cidr="2001:db8:0:1::/64", ip_version=6,
    gateway_ip="2001:db8:0:1::1", dns_nameservers=("2001:db8::53",),
    host_routes=(("2001:db8:ff::/48", "2001:db8:0:1::fe"),), enable_dhcp=False)
SUBNET_DHCP = SubnetInfo(
    id="44444444-4444-4444-8444-444444444444", cidr="172.16.0.0/24", ip_version=4,
    gateway_ip="172.16.0.1", dns_nameservers=("172.16.0.2",),
    host_routes=(("172.17.0.0/16", "172.16.0.254"),), enable_dhcp=True)
SUBNET_SLAAC = SubnetInfo(
    id="55555555-5555-4555-8555-555555555555", cidr="2001:db8:0:2::/64", ip_version=6,
    gateway_ip="2001:db8:0:2::1", enable_dhcp=True, ipv6_address_mode="slaac")


def nic(index: int, port_id: str, mac: str, network_id: str, mtu: int,
        *ips: tuple[str, SubnetInfo]) -> Nic:
    return Nic(index=index, name=f"eth{index}", port_id=port_id, mac=mac,
               network_id=network_id, mtu=mtu,
               fixed_ips=tuple(FixedIp(address, subnet) for address, subnet in ips))


ONE_STATIC = [nic(0, PORT_0, "fa:16:3e:9c:bf:3d", NET_A, 1450,
                  ("10.180.81.249", SUBNET_STATIC))]
TWO_NICS = [nic(0, PORT_0, "fa:16:3e:9c:bf:3d", NET_A, 1450, ("10.180.81.249", SUBNET_STATIC)),
            nic(1, PORT_1, "FA:16:3E:01:02:03", NET_B, 1500, ("192.168.7.20", SUBNET_NO_GATEWAY))]
DUAL_STACK = [nic(0, PORT_0, "fa:16:3e:9c:bf:3d", NET_A, 1500, ("10.180.81.249", SUBNET_STATIC),
                  ("2001:db8:0:1::5", SUBNET_V6))]
DHCP = [nic(0, PORT_0, "fa:16:3e:9c:bf:3d", NET_A, 1400, ("172.16.0.5", SUBNET_DHCP))]
DHCP_SLAAC = [nic(0, PORT_0, "fa:16:3e:9c:bf:3d", NET_A, 1400, ("172.16.0.5", SUBNET_DHCP),
                  ("2001:db8:0:2::f816:3eff:fe9c:bf3d", SUBNET_SLAAC))]

CASES = {  # case name -> (nics, static)
    "one_static": (ONE_STATIC, False),
    "two_nics": (TWO_NICS, False),
    "dual_stack": (DUAL_STACK, False),
    "dhcp": (DHCP, False),
    "dhcp_injected": (DHCP, True),
    "dhcp_slaac": (DHCP_SLAAC, False),
}
# The cases where every address is written out, so every input value must appear.
STATIC_CASES = ["one_static", "two_nics", "dual_stack", "dhcp_injected"]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("file_name", FILES)
def test_output_matches_golden_file(case: str, file_name: str) -> None:
    nics, static = CASES[case]
    text = FILES[file_name](render_all(nics, static=static))
    path = GOLDEN / case / file_name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        pytest.skip(f"rewrote {path.relative_to(GOLDEN.parent.parent)}: review the diff")
    assert text == path.read_text(), f"{path} differs; see the module docstring"


# --- the static/DHCP rule -------------------------------------------------------------------


@pytest.mark.parametrize(("subnet", "static", "expected"), [
    (SUBNET_STATIC, False, "ipv4"),
    (SUBNET_DHCP, False, "ipv4_dhcp"),
    (SUBNET_DHCP, True, "ipv4"),
    (SUBNET_V6, False, "ipv6"),
    (SubnetInfo("s", "2001:db8::/64", 6, None, enable_dhcp=True), False, "ipv6_dhcp"),
    (SUBNET_SLAAC, False, "ipv6_slaac"),
    (SUBNET_SLAAC, True, "ipv6"),
    (SubnetInfo("s", "2001:db8::/64", 6, None, ipv6_address_mode="dhcpv6-stateless"), False,
     "ipv6_dhcpv6-stateless"),
])
def test_static_when_dhcp_off_or_image_injects(subnet: SubnetInfo, static: bool,
                                               expected: str) -> None:
    assert address_mode(FixedIp("x", subnet), static=static) == expected


@pytest.mark.parametrize(("mode", "stanza", "netplan_keys"), [
    ("dhcpv6-stateful", "iface eth0 inet6 dhcp\n", {"dhcp6": True}),
    ("dhcpv6-stateless", "iface eth0 inet6 auto\n        dhcp 1\n",
     {"accept-ra": True, "dhcp6": True}),
])
def test_ipv6_address_modes_render_in_every_file(mode: str, stanza: str,
                                                 netplan_keys: dict) -> None:
    subnet = SubnetInfo("s", "2001:db8::/64", 6, "2001:db8::1", ipv6_address_mode=mode)
    nics = [nic(0, PORT_0, "fa:16:3e:00:00:01", NET_A, 1500, ("2001:db8::7", subnet))]
    assert network_data(nics)["networks"][0]["type"] == f"ipv6_{mode}"
    assert stanza in debian_interfaces(nics)
    eth0 = yaml.safe_load(netplan(nics))["network"]["ethernets"]["eth0"]
    assert {k: eth0[k] for k in netplan_keys} == netplan_keys
    assert "addresses" not in eth0 and "mtu" not in eth0


def test_dhcp_nic_leaves_address_routes_and_mtu_to_dhcp() -> None:
    data = network_data(DHCP)
    assert data["links"][0]["mtu"] is None
    assert data["networks"][0] == {"id": "network0", "type": "ipv4_dhcp",
                                   "link": DHCP[0].tap, "network_id": NET_A}
    assert data["services"] == [{"type": "dns", "address": "172.16.0.2"}]
    interfaces = debian_interfaces(DHCP)
    assert "iface eth0 inet dhcp" in interfaces
    assert not re.search(r"^\s+(address|gateway|mtu|up|post-up) ", interfaces, re.M)
    assert yaml.safe_load(netplan(DHCP))["network"]["ethernets"]["eth0"] == {
        "match": {"macaddress": "fa:16:3e:9c:bf:3d"}, "set-name": "eth0", "dhcp4": True}


# --- every input value appears in every output ---------------------------------------------


def _expected_values(nics: list[Nic]) -> set[str]:
    values = set()
    for n in nics:
        values |= {n.mac.lower(), str(n.mtu)}
        for ip in n.fixed_ips:
            values.add(ip.address)
            values |= set(ip.subnet.dns_nameservers)
            values |= {hop for _, hop in ip.subnet.host_routes}
    return values


def _network_data_values(data: dict) -> set[str]:
    values = {str(v) for link in data["links"] for v in link.values()}
    for net in data["networks"]:
        values.add(net["ip_address"])
        values |= {s["address"] for s in net["services"]}
        values |= {r["gateway"] for r in net["routes"]}
    return values


@pytest.mark.parametrize("case", STATIC_CASES)
def test_every_input_value_appears_in_each_output(case: str) -> None:
    nics, static = CASES[case]
    out = render_all(nics, static=static)
    expected = _expected_values(nics)
    assert expected <= _network_data_values(out["network_data"])
    # interfaces names NICs, it does not match them: the MAC is in the udev rules only.
    macs = {n.mac.lower() for n in nics}
    assert expected - macs <= set(re.split(r"[\s/]+", out["interfaces"]))
    assert expected <= set(re.split(r"[\s/]+", yaml.safe_dump(yaml.safe_load(out["netplan"]))))
    assert macs <= set(re.findall(r'ATTR\{address\}=="([^"]+)"', out["udev_rules"]))


@pytest.mark.parametrize("case", STATIC_CASES)
def test_every_host_route_is_added_and_removed(case: str) -> None:
    nics, static = CASES[case]
    out = render_all(nics, static=static)
    routes_json = {(r["network"], r["netmask"], r["gateway"])
                   for net in out["network_data"]["networks"] for r in net["routes"]}
    plan = yaml.safe_load(out["netplan"])["network"]["ethernets"]
    routes_netplan = {(name, r["to"], r["via"]) for name, eth in plan.items()
                      for r in eth.get("routes", [])}
    for n in nics:
        for ip in n.fixed_ips:
            for destination, hop in ip.subnet.host_routes:
                dest = ipaddress.ip_network(destination)
                assert (str(dest.network_address), str(dest.netmask), hop) in routes_json
                assert (n.name, destination, hop) in routes_netplan
                for verb, action in (("up", "add"), ("down", "del")):
                    command = (f"{verb} route {action} -net {dest.network_address} "
                               f"netmask {dest.netmask}" if dest.version == 4
                               else f"{verb} route -A inet6 {action} {dest}")
                    assert f"{command} gateway {hop} dev {n.name}\n" in out["interfaces"]


# --- gateways --------------------------------------------------------------------------------


def test_no_gateway_where_the_subnet_has_none() -> None:
    out = render_all(TWO_NICS)
    second = out["network_data"]["networks"][1]
    assert second["routes"] == [] and second["services"] == []
    eth1 = out["interfaces"].split("auto eth1\n")[1]
    assert "gateway" not in eth1 and "dns-nameservers" not in eth1
    plan = yaml.safe_load(out["netplan"])["network"]["ethernets"]["eth1"]
    assert "routes" not in plan and "nameservers" not in plan


def test_one_default_route_per_family_the_first_nics() -> None:
    other = SubnetInfo("66666666-6666-4666-8666-666666666666", "10.9.0.0/24", 4, "10.9.0.1",
                       enable_dhcp=False)
    nics = [nic(0, PORT_0, "fa:16:3e:00:00:01", NET_A, 1500, ("10.9.0.5", other)),
            nic(1, PORT_1, "fa:16:3e:00:00:02", NET_B, 1500, ("10.180.81.249", SUBNET_STATIC),
                ("2001:db8:0:1::5", SUBNET_V6))]
    out = render_all(nics)
    assert re.findall(r"^\s+gateway (\S+)$", out["interfaces"], re.M) == [
        "10.9.0.1", "2001:db8:0:1::1"]
    plan = yaml.safe_load(out["netplan"])["network"]["ethernets"]
    defaults = [(name, r["via"]) for name, eth in plan.items() for r in eth.get("routes", [])
                if r["to"] == "default"]
    assert defaults == [("eth0", "10.9.0.1"), ("eth1", "2001:db8:0:1::1")]
    # network_data keeps each network's own default route, as Nova writes it.
    assert [net["routes"][0]["gateway"] for net in out["network_data"]["networks"]] == [
        "10.9.0.1", "10.180.80.1", "2001:db8:0:1::1"]


def test_a_dhcp_gateway_first_takes_the_default_route() -> None:
    nics = [DHCP[0], nic(1, PORT_1, "fa:16:3e:00:00:02", NET_B, 1500,
                         ("10.180.81.249", SUBNET_STATIC))]
    assert not re.search(r"^\s+gateway ", debian_interfaces(nics), re.M)


# --- udev, netplan, naming ----------------------------------------------------------------


def test_udev_has_one_rule_per_nic_naming_its_mac() -> None:
    rules = [line for line in udev_rules(TWO_NICS).splitlines() if not line.startswith("#")]
    assert len(rules) == len(TWO_NICS)
    named = {m.group(1): m.group(2) for m in
             (re.search(r'ATTR\{address\}=="([^"]+)", NAME="([^"]+)"', r) for r in rules)}
    assert named == {"fa:16:3e:9c:bf:3d": "eth0", "fa:16:3e:01:02:03": "eth1"}


def test_nics_are_rendered_in_guest_order_whatever_the_list_order() -> None:
    assert render_all(list(reversed(TWO_NICS))) == render_all(TWO_NICS)


def test_netplan_keeps_a_numeric_looking_mac_a_string() -> None:
    # Unquoted, 52:54:00:12:34:56 is a base-60 integer to a YAML 1.1 loader.
    nics = [nic(0, PORT_0, "52:54:00:12:34:56", NET_A, 1500, ("10.180.81.249", SUBNET_STATIC))]
    eth0 = yaml.safe_load(netplan(nics))["network"]["ethernets"]["eth0"]
    assert eth0["match"] == {"macaddress": "52:54:00:12:34:56"}


def test_a_nic_without_addresses_is_named_and_brought_up() -> None:
    nics = [nic(0, PORT_0, "fa:16:3e:00:00:01", NET_A, 9000)]
    out = render_all(nics)
    assert out["network_data"]["links"][0]["mtu"] == 9000
    assert out["network_data"]["networks"] == []
    assert "iface eth0 inet manual\n        mtu 9000\n" in out["interfaces"]
    assert yaml.safe_load(out["netplan"])["network"]["ethernets"]["eth0"]["mtu"] == 9000


def test_renders_the_same_from_bus_data() -> None:
    """The agent and the API get NICs through to_dict/from_dict; the files must not change."""
    for nics in (TWO_NICS, DUAL_STACK, DHCP_SLAAC):
        from_bus = [Nic.from_dict(json.loads(json.dumps(n.to_dict()))) for n in nics]
        assert render_all(from_bus) == render_all(nics)
