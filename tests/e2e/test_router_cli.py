"""Routers and floating IPs through the `openstack` CLI against a real all-in-one, as a
project member would: router create, router set --external-gateway, router add subnet,
floating ip create, server add floating ip (which openstackclient sends to the network
API), server remove floating ip, floating ip delete, router remove subnet and delete.
The external network is the admin's. (The dataplane that carries the traffic comes apart.)"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Cli, Users, unique

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def member(cli: Cli, users: Users) -> Cli:
    project, name, password = unique("e2e-l3"), unique("e2e-l3-member"), unique("pw")
    cli.json("project", "create", "--domain", "default", project)
    cli.json("user", "create", "--domain", "default", "--project", project,
             "--password", password, name)
    cli.run("role", "add", "--project", project, "--user", name, "member")
    return users.add(name, name, password, project)


@pytest.fixture(scope="module")
def public(cli: Cli) -> dict:
    net = cli.json("network", "create", "--external", unique("e2e-public"))
    cli.json("subnet", "create", "--network", net["id"], "--subnet-range", "203.0.113.0/24",
             "--no-dhcp", unique("e2e-public-subnet"))
    return net


def test_router_gateway_interface_and_floating_ip(
        member: Cli, public: dict, base_image: dict, base_flavor: dict) -> None:
    net = member.json("network", "create", unique("e2e-l3-net"))
    subnet = member.json("subnet", "create", "--network", net["id"], "--subnet-range",
                         "10.77.0.0/24", unique("e2e-l3-subnet"))
    router = member.json("router", "create", unique("e2e-router"))
    assert router["status"] == "ACTIVE" and router["external_gateway_info"] is None

    member.run("router", "set", "--external-gateway", public["id"], router["id"])
    shown = member.json("router", "show", router["id"])
    gateway = shown["external_gateway_info"]
    assert gateway["network_id"] == public["id"] and gateway["enable_snat"] is True
    assert gateway["external_fixed_ips"][0]["ip_address"].startswith("203.0.113.")

    member.run("router", "add", "subnet", router["id"], subnet["id"])
    [interface] = member.json("port", "list", "--router", router["id"], "--long")
    assert interface["Fixed IP Addresses"] == [{"subnet_id": subnet["id"],
                                                "ip_address": "10.77.0.1"}]
    assert interface["Device Owner"] == "network:router_interface"

    server = member.json("server", "create", "--image", base_image["id"], "--flavor",
                         base_flavor["id"], "--nic", f"net-id={net['id']}", "--wait",
                         unique("e2e-l3-server"))
    assert server["status"] == "ACTIVE"
    fip = member.json("floating ip", "create", public["id"])
    address = fip["floating_ip_address"]
    assert address.startswith("203.0.113.") and fip["status"] == "DOWN"

    member.run("server", "add", "floating", "ip", server["id"], address)
    shown = member.json("floating ip", "show", fip["id"])
    [server_port] = member.json("port", "list", "--server", server["id"])
    assert shown["port_id"] == server_port["ID"] and shown["status"] == "ACTIVE"
    assert shown["router_id"] == router["id"]
    assert shown["fixed_ip_address"] == server_port["Fixed IP Addresses"][0]["ip_address"]
    listed = member.json("floating ip", "list", "--port", server_port["ID"])
    assert [f["ID"] for f in listed] == [fip["id"]]

    # The interface the floating IP goes through cannot be removed meanwhile.
    busy = member.fails("router", "remove", "subnet", router["id"], subnet["id"])
    assert "required by one or more floating IPs" in busy.stderr

    member.run("server", "remove", "floating", "ip", server["id"], address)
    assert member.json("floating ip", "show", fip["id"])["port_id"] is None
    member.run("floating ip", "delete", fip["id"])
    assert fip["id"] not in {f["ID"] for f in member.json("floating ip", "list")}

    member.run("server", "delete", "--wait", server["id"])
    member.run("router", "remove", "subnet", router["id"], subnet["id"])
    assert member.json("port", "list", "--router", router["id"]) == []
    member.run("router", "delete", router["id"])
    assert router["id"] not in {r["ID"] for r in member.json("router", "list")}
