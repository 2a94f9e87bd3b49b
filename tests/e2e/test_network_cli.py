"""Networking through the `openstack` CLI against a real all-in-one: networks, subnets with
DHCP off, host routes and DNS, ports with a chosen address, servers on a network and on a
port, hot-plug with `server add port` / `server remove port`, `port list --server`, and
the exact error of a full subnet."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Cli, CliError, unique, wait_for_status

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def network(cli: Cli) -> dict:
    return cli.json("network", "create", "--mtu", "1450", unique("e2e-net"))


@pytest.fixture(scope="module")
def subnet(cli: Cli, network: dict) -> dict:
    return cli.json("subnet", "create", "--network", network["id"], "--subnet-range",
                    "10.55.0.0/24", "--gateway", "10.55.0.1", "--no-dhcp",
                    "--allocation-pool", "start=10.55.0.10,end=10.55.0.200",
                    "--host-route", "destination=192.168.50.0/24,gateway=10.55.0.254",
                    "--dns-nameserver", "10.55.0.53", unique("e2e-subnet"))


def test_network_and_subnet_as_created(cli: Cli, network: dict, subnet: dict) -> None:
    shown = cli.json("network", "show", network["id"])
    assert shown["mtu"] == 1450 and shown["status"] == "ACTIVE"
    assert subnet["id"] in shown["subnets"]
    sub = cli.json("subnet", "show", subnet["id"])
    assert sub["cidr"] == "10.55.0.0/24" and sub["enable_dhcp"] is False
    assert sub["gateway_ip"] == "10.55.0.1"
    assert sub["dns_nameservers"] == ["10.55.0.53"]
    assert sub["host_routes"] == [{"destination": "192.168.50.0/24", "nexthop": "10.55.0.254"}]
    assert sub["allocation_pools"] == [{"start": "10.55.0.10", "end": "10.55.0.200"}]
    assert network["id"] in {n["ID"] for n in cli.json("network", "list")}


def test_port_with_a_fixed_ip(cli: Cli, network: dict, subnet: dict) -> None:
    port = cli.json("port", "create", "--network", network["id"], "--fixed-ip",
                    f"subnet={subnet['id']},ip-address=10.55.0.42", unique("e2e-port"))
    assert port["fixed_ips"] == [{"subnet_id": subnet["id"], "ip_address": "10.55.0.42"}]
    assert port["mac_address"].startswith("fa:16:3e:")
    taken = cli.fails("port", "create", "--network", network["id"], "--fixed-ip",
                      f"subnet={subnet['id']},ip-address=10.55.0.42", unique("e2e-port"))
    assert "10.55.0.42" in taken.stderr and "already allocated" in taken.stderr
    cli.run("port", "delete", port["id"])


def test_servers_on_a_network_and_on_a_port_then_hot_plug(
        cli: Cli, network: dict, subnet: dict, base_image: dict, base_flavor: dict) -> None:
    port = cli.json("port", "create", "--network", network["id"], "--fixed-ip",
                    "ip-address=10.55.0.99", unique("e2e-own-port"))
    on_net = cli.json("server", "create", "--image", base_image["id"], "--flavor",
                      base_flavor["id"], "--nic", f"net-id={network['id']}", "--wait",
                      unique("e2e-on-net"))
    on_port = cli.json("server", "create", "--image", base_image["id"], "--flavor",
                       base_flavor["id"], "--nic", f"port-id={port['id']}", "--wait",
                       unique("e2e-on-port"))
    assert on_net["status"] == "ACTIVE" and on_port["status"] == "ACTIVE"
    shown = cli.json("server", "show", on_port["id"])
    assert shown["addresses"] == {network["name"]: ["10.55.0.99"]}

    listed = cli.json("port", "list", "--server", on_port["id"])
    assert [p["ID"] for p in listed] == [port["id"]]
    net_ports = cli.json("port", "list", "--server", on_net["id"])
    assert len(net_ports) == 1
    assert net_ports[0]["Fixed IP Addresses"][0]["ip_address"].startswith("10.55.0.")

    # Hot-plug a second port into the running server, then take it out again.
    extra = cli.json("port", "create", "--network", network["id"], unique("e2e-hotplug"))
    cli.run("server", "add", "port", on_net["id"], extra["id"])
    assert {p["ID"] for p in cli.json("port", "list", "--server", on_net["id"])} == {
        net_ports[0]["ID"], extra["id"]}
    assert cli.json("port", "show", extra["id"])["status"] == "ACTIVE"
    cli.run("server", "remove", "port", on_net["id"], extra["id"])
    assert [p["ID"] for p in cli.json("port", "list", "--server", on_net["id"])] == [
        net_ports[0]["ID"]]
    assert cli.json("port", "show", extra["id"])["device_id"] == ""

    cli.run("server", "delete", "--wait", on_net["id"], on_port["id"])
    kept = cli.json("port", "show", port["id"])  # the user's port outlives the server
    assert kept["device_id"] == "" and kept["fixed_ips"][0]["ip_address"] == "10.55.0.99"
    assert cli.json("port", "list", "--device-id", on_net["id"]) == []  # its port went with it
    cli.run("port", "delete", port["id"], extra["id"])


def test_a_full_subnet_says_so(cli: Cli, base_image: dict, base_flavor: dict) -> None:
    net = cli.json("network", "create", unique("e2e-tiny-net"))
    sub = cli.json("subnet", "create", "--network", net["id"], "--subnet-range", "10.66.0.0/29",
                   "--allocation-pool", "start=10.66.0.2,end=10.66.0.3", unique("e2e-tiny"))
    for _ in range(2):
        cli.json("port", "create", "--network", net["id"], unique("e2e-filler"))
    with pytest.raises(CliError) as full:
        cli.json("port", "create", "--network", net["id"], unique("e2e-one-too-many"))
    expected = f"No more IP addresses available on subnet {sub['id']} (10.66.0.0/29, 2 in use)"
    assert expected in full.value.stderr
    server = cli.json("server", "create", "--image", base_image["id"], "--flavor",
                      base_flavor["id"], "--nic", f"net-id={net['id']}", unique("e2e-no-ip"))
    failed = wait_for_status(cli, server["id"], "ERROR")
    assert expected in str(failed["fault"])
    cli.run("server", "delete", "--wait", server["id"])


def test_allowed_address_pairs_and_port_security_with_the_cli(cli: Cli, network: dict,
                                                              subnet: dict) -> None:
    """Issue 14 (sg): `--allowed-address`, `--disable-port-security` as the CLI sends them."""
    port = cli.json("port", "create", "--network", network["id"], "--allowed-address",
                    "ip-address=10.55.0.250", "--allowed-address",
                    "ip-address=10.56.0.0/24,mac-address=fa:16:3e:12:34:56", unique("e2e-aap"))
    assert port["allowed_address_pairs"] == [
        {"ip_address": "10.55.0.250", "mac_address": port["mac_address"]},
        {"ip_address": "10.56.0.0/24", "mac_address": "fa:16:3e:12:34:56"}]
    refused = cli.fails("port", "set", "--disable-port-security", port["id"])
    assert "security group" in refused.stderr.lower() or "address pair" in refused.stderr.lower()
    cli.run("port", "set", "--no-security-group", "--no-allowed-address",
            "--disable-port-security", port["id"])
    shown = cli.json("port", "show", port["id"])
    assert shown["port_security_enabled"] is False and shown["security_group_ids"] == []
    assert shown["allowed_address_pairs"] == []
    cli.run("port", "delete", port["id"])
