"""Network types through the Neutron API (issue 14, l2): provider attributes checked as
Neutron's ML2 checks them, tenant VNIs allocated from vxlan_vni_ranges, segments unique,
MTU within what the type carries, and who may set them."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from cirrus.db.models import SegmentAllocation
from tests.api.network_helpers import NET, create, network, neutron_error


def provider(kind=None, physnet=None, seg_id=None, **body) -> dict:
    fields = {"provider:network_type": kind, "provider:physical_network": physnet,
              "provider:segmentation_id": seg_id}
    return {**{k: v for k, v in fields.items() if v is not None}, **body}


def refused(api, caller, status: int, error_type: str, message: str, **body) -> None:
    r = create(api, caller, "networks", "network", name="x", **body)
    assert r.status_code == status, r.text
    error = neutron_error(r)
    assert (error["type"], error["message"]) == (error_type, message), error


@pytest.fixture
def physnets(cloud):
    cloud.settings.network_vlan_ranges = ["physnet1", "physnet2:100:101"]
    cloud.settings.flat_networks = ["public", "physnet1"]
    return cloud.settings


def test_member_networks_get_distinct_vnis_from_the_range(api, cloud, admin, member):
    ids = []
    for _ in range(3):
        net = network(api, member)
        shown = api.get(f"{NET}/networks/{net['id']}", headers=admin.headers).json()["network"]
        assert shown["provider:network_type"] == "vxlan"
        assert shown["provider:physical_network"] is None
        assert 1 <= shown["provider:segmentation_id"] <= 65535
        assert shown["mtu"] == 1450
        ids.append(shown["provider:segmentation_id"])
    assert len(set(ids)) == 3
    with cloud.db.reader() as s:
        rows = s.execute(select(SegmentAllocation.network_type,
                                SegmentAllocation.segmentation_id)).all()
    assert sorted(rows) == sorted(("vxlan", i) for i in ids)


def test_admin_flat_network_once_per_physnet(api, admin, physnets):
    net = network(api, admin, **provider("flat", "public"))
    assert (net["provider:network_type"], net["provider:physical_network"],
            net["provider:segmentation_id"]) == ("flat", "public", None)
    assert net["mtu"] == 1500
    refused(api, admin, 409, "FlatNetworkInUse", "Unable to create the flat network. Physical "
            "network public is in use.", **provider("flat", "public"))
    # Deleting it frees the physnet.
    assert api.delete(f"{NET}/networks/{net['id']}", headers=admin.headers).status_code == 204
    network(api, admin, **provider("flat", "public"))


def test_flat_checks_speak_neutron(api, cloud, admin, physnets):
    refused(api, admin, 400, "InvalidInput", "Invalid input for operation: physical_network "
            "required for flat provider network.", **provider("flat"))
    refused(api, admin, 400, "InvalidInput", "Invalid input for operation: physical_network "
            "'nowhere' unknown for flat provider network.", **provider("flat", "nowhere"))
    refused(api, admin, 400, "InvalidInput", "Invalid input for operation: segmentation_id "
            "specified for flat provider network.", **provider("flat", "public", 5))
    refused(api, admin, 400, "HTTPBadRequest", "Invalid input for mtu. Reason: Requested MTU "
            "is too big, maximum is 1500.", **provider("flat", "public", mtu=1501))
    with cloud.db.reader() as s:  # the MTU is checked after the segment: rolled back
        assert s.scalar(select(SegmentAllocation)) is None


def test_admin_vlan_network_once_per_physnet_and_id(api, admin, physnets):
    net = network(api, admin, **provider("vlan", "physnet1", 7))
    assert (net["provider:network_type"], net["provider:segmentation_id"]) == ("vlan", 7)
    refused(api, admin, 409, "VlanIdInUse", "Unable to create the network. The VLAN 7 on "
            "physical network physnet1 is in use.", **provider("vlan", "physnet1", 7))
    # The same id on another physnet is another segment.
    network(api, admin, **provider("vlan", "physnet2", 7))


def test_vlan_checks_speak_neutron(api, admin, physnets):
    refused(api, admin, 400, "InvalidInput", "Invalid input for operation: physical_network "
            "'physnet9' unknown for VLAN provider network.", **provider("vlan", "physnet9", 5))
    refused(api, admin, 400, "InvalidInput", "Invalid input for operation: segmentation_id "
            "requires physical_network for VLAN provider network.", **provider("vlan", None, 5))
    for bad in (0, 4095):
        r = create(api, admin, "networks", "network", **provider("vlan", "physnet1", bad))
        assert r.status_code == 400 and "out of range" in neutron_error(r)["message"]


def test_vlan_without_id_comes_from_the_physnets_range(api, admin, physnets):
    got = {network(api, admin, **provider("vlan", "physnet2"))["provider:segmentation_id"]
           for _ in range(2)}
    assert got == {100, 101}
    refused(api, admin, 503, "NoNetworkAvailable", "Unable to create the network. No tenant "
            "network is available for allocation.", **provider("vlan", "physnet2"))
    # physnet1 has no range: provider networks with an id only.
    refused(api, admin, 503, "NoNetworkAvailable", "Unable to create the network. No tenant "
            "network is available for allocation.", **provider("vlan", "physnet1"))


def test_vxlan_checks_speak_neutron(api, cloud, admin, member):
    net = network(api, admin, **provider("vxlan", None, 5000))
    assert (net["provider:segmentation_id"], net["mtu"]) == (5000, 1450)
    refused(api, admin, 409, "TunnelIdInUse", "Unable to create the network. The tunnel ID 5000 "
            "is in use.", **provider("vxlan", None, 5000))
    refused(api, admin, 400, "InvalidInput", "Invalid input for operation: "
            "provider:physical_network specified for vxlan network.",
            **provider("vxlan", "physnet1"))
    r = create(api, admin, "networks", "network", **provider("vxlan", None, 2**24))
    assert r.status_code == 400 and "out of range" in neutron_error(r)["message"]
    refused(api, admin, 400, "InvalidInput", "Invalid input for operation: network_type value "
            "'gre' not supported.", **provider("gre"))
    refused(api, admin, 400, "InvalidInput", "Invalid input for operation: network_type "
            "required.", **provider(None, None, 5))
    # A tenant allocation never takes an id an admin holds.
    cloud.settings.vxlan_vni_ranges = ["5000:5001"]
    mine = network(api, member)
    shown = api.get(f"{NET}/networks/{mine['id']}", headers=admin.headers).json()["network"]
    assert shown["provider:segmentation_id"] == 5001


def test_local_network_has_no_segment_and_jumbo_mtu(api, cloud, admin):
    net = network(api, admin, mtu=9000, **provider("local"))
    assert (net["provider:network_type"], net["mtu"]) == ("local", 9000)
    with cloud.db.reader() as s:
        assert s.scalar(select(SegmentAllocation).where(
            SegmentAllocation.network_id == net["id"])) is None


def test_exhausted_vni_range_is_503_and_a_delete_frees_one(api, cloud, member):
    cloud.settings.vxlan_vni_ranges = ["70:71"]
    nets = [network(api, member) for _ in range(2)]
    refused(api, member, 503, "NoNetworkAvailable", "Unable to create the network. No tenant "
            "network is available for allocation.")
    assert api.delete(f"{NET}/networks/{nets[0]['id']}", headers=member.headers).status_code == 204
    network(api, member)


def test_no_tenant_types_makes_networks_without_a_segment(api, cloud, admin, member):
    cloud.settings.tenant_network_types = []
    net = network(api, member)
    shown = api.get(f"{NET}/networks/{net['id']}", headers=admin.headers).json()["network"]
    assert (shown["provider:network_type"], shown["mtu"]) == (None, 1500)


def test_vxlan_mtu_above_the_overlay_maximum_is_400_on_update_too(api, member):
    net = network(api, member)
    r = api.put(f"{NET}/networks/{net['id']}", json={"network": {"mtu": 1500}},
                headers=member.headers)
    assert r.status_code == 400
    assert neutron_error(r)["message"] == ("Invalid input for mtu. Reason: Requested MTU is too "
                                           "big, maximum is 1450.")


def test_segments_are_fixed_once_made(api, admin, physnets):
    net = network(api, admin, **provider("vlan", "physnet1", 9))
    r = api.put(f"{NET}/networks/{net['id']}", json={"network": {
        "provider:segmentation_id": 10}}, headers=admin.headers)
    assert r.status_code == 400
    assert neutron_error(r)["message"] == (
        "Invalid input for operation: Plugin does not support updating the following provider "
        "network attributes: provider:segmentation_id.")
    # Sending the same values is no change.
    r = api.put(f"{NET}/networks/{net['id']}", json={"network": {
        "provider:segmentation_id": 9, "name": "same"}}, headers=admin.headers)
    assert r.status_code == 200, r.text


def test_only_admins_set_provider_attributes(api, cloud, admin, member, reader, other_member,
                                             physnets):
    for caller in (member, other_member):
        for body in (provider("flat", "public"), provider("vxlan", None, 77),
                     provider("vlan", "physnet1", 3)):
            r = create(api, caller, "networks", "network", **body)
            assert r.status_code == 403, r.text
            assert neutron_error(r)["type"] == "PolicyNotAuthorized"
    r = create(api, reader, "networks", "network", **provider("flat", "public"))
    assert r.status_code == 403
    net = network(api, admin, **provider("flat", "public"))
    # Another project's member does not see an admin's unshared network; the member's own
    # network shows no provider attributes to it.
    r = api.get(f"{NET}/networks/{net['id']}", headers=other_member.headers)
    assert r.status_code == 404
    mine = network(api, member)
    # Not the network's own VNI (members get one of the first free ones; sending the same
    # value is allowed): one far above them.
    r = api.put(f"{NET}/networks/{mine['id']}", json={"network": {
        "provider:segmentation_id": 65000}}, headers=member.headers)
    assert r.status_code == 403
    with cloud.db.reader() as s:  # nothing half-written by the refusals
        kinds = sorted(s.scalars(select(SegmentAllocation.network_type)))
    assert kinds == ["flat", "vxlan"]
