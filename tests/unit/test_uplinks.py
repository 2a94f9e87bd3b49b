"""The uplink a network's bridge gets on a host (issue 14, l2), for what these machines
cannot run: 802.1Q VLAN devices (../shared/PLATFORM.md: `type vlan` is an unknown device
type here). The plan is checked as data and as iproute2 commands, and the linuxbridge
dataplane's plug and unplug are run against a recording netlink socket, so the calls a
real host would receive are asserted one by one. flat and vxlan move real packets in
tests/network/test_l2_multihost.py; a real VLAN test belongs there too, on a kernel with
802.1Q (two hosts whose `eth1` are veths into one bridge, as for flat, VLAN 100 on both).
"""

from __future__ import annotations

import errno
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from pyroute2.netlink.exceptions import NetlinkError

from cirrus.network.dataplane.linuxbridge import LinuxBridgeDataplane
from cirrus.network.dataplane.uplinks import ip_commands, plan_uplink, vlan_device_name
from cirrus.network.model import Nic, vxlan_name

NET = "5f0c1c1e-8d8b-4f43-9a38-0a6f1c2d3e4f"


def make_nic(kind: str | None, physnet: str | None = None, seg_id: int | None = None,
             mtu: int = 1500) -> Nic:
    return Nic(index=0, name="eth0", port_id=str(uuid.uuid4()), mac="fa:16:3e:00:00:01",
               network_id=NET, mtu=mtu, network_type=kind, physical_network=physnet,
               segmentation_id=seg_id)


def test_vlan_plan_is_an_8021q_device_on_the_mapped_interface():
    uplink = plan_uplink(make_nic("vlan", "physnet1", 100), {"physnet1": "eth1"}, "")
    assert uplink is not None
    assert (uplink.name, uplink.kind) == ("eth1.100", "vlan")
    assert uplink.create == {"kind": "vlan", "link": "eth1", "vlan_id": 100}
    assert ip_commands(uplink, "brq5f0c1c1e-8d", 1500) == [
        "ip link add link eth1 name eth1.100 type vlan id 100",
        "ip link set eth1.100 mtu 1500 master brq5f0c1c1e-8d up"]


def test_plans_of_the_other_types():
    flat = plan_uplink(make_nic("flat", "public"), {"public": "bond0"}, "")
    assert flat is not None and (flat.name, flat.create, flat.set_mtu) == ("bond0", None, False)
    vxlan = plan_uplink(make_nic("vxlan", None, 77, 1450), {}, "192.0.2.7")
    assert vxlan is not None and vxlan.name == vxlan_name(NET) == "vxl5f0c1c1e-8d8"
    assert ip_commands(vxlan, "br", 1450)[0] == (
        "ip link add vxl5f0c1c1e-8d8 type vxlan id 77 local 192.0.2.7 dstport 4789 nolearning")
    # No uplink: a local network, one made before network types, an unmapped physnet, a
    # host without a VTEP.
    assert plan_uplink(make_nic("local"), {}, "192.0.2.7") is None
    assert plan_uplink(make_nic(None), {"physnet1": "eth1"}, "192.0.2.7") is None
    assert plan_uplink(make_nic("vlan", "physnet2", 5), {"physnet1": "eth1"}, "") is None
    assert plan_uplink(make_nic("vxlan", None, 77), {}, "") is None


def test_vlan_device_names_fit_ifnamsiz():
    assert vlan_device_name("enp129s0f1np1", 4094) == "enp129s0f1.4094"
    assert len(vlan_device_name("x" * 15, 4094)) == 15


# ---------------------------------------------------------------- a recording netlink socket


class FakeLink(dict):
    def get(self, key, default=None):  # pyroute2 messages take ("linkinfo", "kind") paths
        if isinstance(key, tuple):
            value = self.get(key[0], default)
            for part in key[1:]:
                value = value.get(part, default) if isinstance(value, dict) else default
            return value
        return super().get(key, default)


class FakeNetlink:
    """A kernel of links in a dict that records every change it is asked for."""

    def __init__(self, links: dict[str, dict]) -> None:
        self.links: dict[str, FakeLink] = {}
        self.calls: list[tuple] = []
        for name, attrs in links.items():
            self._add(name, **attrs)

    def _add(self, ifname: str, kind: str = "device", **attrs) -> FakeLink:
        link = FakeLink(index=len(self.links) + 100, ifname=ifname, flags=0, mtu=1500,
                        master=None, linkinfo={"kind": kind, "data": {}})
        link.update({k: v for k, v in attrs.items() if k in ("mtu", "master")})
        if kind == "vlan":
            link["linkinfo"]["data"] = {"IFLA_VLAN_ID": attrs["vlan_id"]}
        self.links[ifname] = link
        return link

    def _by_index(self, index: int) -> FakeLink:
        return next(link for link in self.links.values() if link["index"] == index)

    def link(self, command: str, **kw):
        if command == "get":
            if kw["ifname"] not in self.links:
                raise NetlinkError(errno.ENODEV)
            return [FakeLink(self.links[kw["ifname"]])]
        self.calls.append((command, {k: v for k, v in kw.items()}))
        if command == "add":
            if kw["ifname"] in self.links:
                raise NetlinkError(errno.EEXIST)
            attrs = dict(kw)
            name = attrs.pop("ifname")
            if attrs.get("kind") == "tuntap":  # the kernel reports a tap as "tun"
                attrs = {"kind": "tun"}
            self._add(name, **attrs)
        elif command == "set":
            link = self._by_index(kw["index"])
            if "mtu" in kw:
                link["mtu"] = kw["mtu"]
            if "master" in kw:
                link["master"] = kw["master"] or None
            if kw.get("state") == "up":
                link["flags"] |= 1
        elif command == "del":
            link = self._by_index(kw["index"])
            del self.links[link["ifname"]]
        return []

    def get_links(self):
        return [FakeLink(link) for link in self.links.values()]

    def fdb(self, command: str, **kw):
        return []


class RecordingDataplane(LinuxBridgeDataplane):
    def __init__(self, fake: FakeNetlink, **kw) -> None:
        super().__init__(**kw)
        self.fake = fake

    @contextmanager
    def _rtnl(self) -> Iterator[FakeNetlink]:  # type: ignore[override]
        yield self.fake

    def _disable_ipv6(self, dev: str) -> None:
        self.fake.calls.append(("sysctl", {f"net/ipv6/conf/{dev}/disable_ipv6": 1}))


@pytest.fixture
def host() -> tuple[FakeNetlink, RecordingDataplane]:
    fake = FakeNetlink({"eth1": {}})
    return fake, RecordingDataplane(fake, mappings={"physnet1": "eth1"})


def test_vlan_plug_makes_the_device_on_the_parent_and_enslaves_it(host):
    fake, dataplane = host
    nic = make_nic("vlan", "physnet1", 100)
    dataplane.plug(nic)
    eth1, vlan, bridge = (fake.links[n] for n in ("eth1", "eth1.100", nic.bridge))
    adds = [kw for command, kw in fake.calls if command == "add"]
    assert adds[1] == {"ifname": "eth1.100", "mtu": 1500, "kind": "vlan",
                       "link": eth1["index"], "vlan_id": 100}
    assert (vlan["master"], vlan["mtu"], vlan["flags"] & 1) == (bridge["index"], 1500, 1)
    assert fake.links[nic.tap]["master"] == bridge["index"]
    assert ("sysctl", {"net/ipv6/conf/eth1.100/disable_ipv6": 1}) in fake.calls
    assert eth1["master"] is None  # the trunk itself carries other VLANs: not enslaved
    # Plugging again changes nothing.
    count = len(fake.calls)
    dataplane.plug(nic)
    assert [c for c in fake.calls[count:] if c[0] != "sysctl"] == []


def test_vlan_unplug_deletes_the_vlan_device_and_keeps_the_trunk(host):
    fake, dataplane = host
    nic = make_nic("vlan", "physnet1", 100)
    dataplane.plug(nic)
    dataplane.unplug(nic.port_id, nic.network_id)
    assert set(fake.links) == {"eth1"}


def test_a_vlan_device_with_another_id_is_replaced(host):
    fake, dataplane = host
    fake._add("eth1.100", kind="vlan", vlan_id=200)
    dataplane.plug(make_nic("vlan", "physnet1", 100))
    assert fake.links["eth1.100"]["linkinfo"]["data"] == {"IFLA_VLAN_ID": 100}


def test_a_mapped_interface_that_does_not_exist_fails_the_plug(host):
    fake, dataplane = host
    dataplane.mappings = {"physnet1": "eth9"}
    with pytest.raises(RuntimeError, match="eth9 .* does not exist on this host"):
        dataplane.plug(make_nic("vlan", "physnet1", 100))
