"""Network types through the real `openstack` CLI against an all-in-one (issue 14, l2):
an admin's vxlan network with a chosen VNI and a flat provider network, the refusal of a
second flat network on one physnet and of a VNI in use, a member's network getting vxlan
with the overlay's MTU, and a member refused the provider options."""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.conftest import Cli, Users, unique

pytestmark = pytest.mark.e2e


def test_provider_networks_and_a_members_vxlan(cli: Cli, users: Users) -> None:
    vni = 700000 + uuid.uuid4().int % 100000  # outside the default tenant range
    vx = cli.json("network", "create", "--provider-network-type", "vxlan",
                  "--provider-segment", str(vni), unique("e2e-vx"))
    assert (vx["provider:network_type"], vx["provider:segmentation_id"], vx["mtu"]) == (
        "vxlan", vni, 1450)
    taken = cli.fails("network", "create", "--provider-network-type", "vxlan",
                      "--provider-segment", str(vni), unique("e2e-vx"))
    assert f"The tunnel ID {vni} is in use" in taken.stderr
    physnet = unique("e2e-phys")
    flat = cli.json("network", "create", "--provider-network-type", "flat",
                    "--provider-physical-network", physnet, unique("e2e-flat"))
    assert (flat["provider:network_type"], flat["provider:physical_network"],
            flat["mtu"]) == ("flat", physnet, 1500)
    again = cli.fails("network", "create", "--provider-network-type", "flat",
                      "--provider-physical-network", physnet, unique("e2e-flat"))
    assert f"Physical network {physnet} is in use" in again.stderr

    project = unique("e2e-l2")
    cli.json("project", "create", "--domain", "default", project)
    name, password = unique("e2e-l2user"), "pw-" + uuid.uuid4().hex
    cli.json("user", "create", "--domain", "default", "--project", project,
             "--password", password, name)
    cli.run("role", "add", "--project", project, "--user", name, "member")
    member = users.add(name, name, password, project)
    mine = member.json("network", "create", unique("e2e-mine"))
    assert mine["mtu"] == 1450
    shown = cli.json("network", "show", mine["id"])  # provider:* only to admins
    assert shown["provider:network_type"] == "vxlan"
    assert 1 <= shown["provider:segmentation_id"] <= 65535
    refused = member.fails("network", "create", "--provider-network-type", "vxlan",
                           unique("e2e-mine"))
    assert "disallowed by policy" in refused.stderr
    for net in (vx, flat, mine):
        cli.run("network", "delete", net["id"])
