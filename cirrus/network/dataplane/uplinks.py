"""What connects a network's bridge to other hosts (issue 14, l2), as plain data.

`plan_uplink` says, from a NIC's segment and the agent's settings alone, which device the
bridge needs besides its taps and how netlink makes it; the linuxbridge dataplane executes
the plan. Kept apart so a plan can be checked without the kernel: these machines cannot
make 802.1Q devices (../shared/PLATFORM.md), so the `vlan` plan is tested as rendered data
and as the netlink calls a recording netlink socket receives (tests/unit/test_uplinks.py),
and only `flat` and `vxlan` move packets in the tests (tests/network/).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from cirrus.network.model import Nic, vxlan_name

log = logging.getLogger(__name__)

VXLAN_PORT = 4789  # IANA's VXLAN port
IFNAMSIZ = 15
FLAT, VLAN, VXLAN = "flat", "vlan", "vxlan"


@dataclass(frozen=True)
class Uplink:
    """The device a network's bridge is given: `name`, enslaved to the bridge. `create` is
    the netlink link "add" attributes when Cirrus makes the device (vlan, vxlan; "link" as
    the parent's name), None for an interface of the host (flat: used, never made or
    deleted by Cirrus)."""

    name: str
    kind: str
    create: dict[str, object] | None = None
    set_mtu: bool = True  # False: the host's own interface keeps its MTU
    attributes: dict[str, object] = field(default_factory=dict)  # what must match to keep it


def vlan_device_name(interface: str, vlan_id: int) -> str:
    """`eth1.100`, the interface name shortened so the whole fits IFNAMSIZ."""
    suffix = f".{vlan_id}"
    return f"{interface[:IFNAMSIZ - len(suffix)]}{suffix}"


def plan_uplink(nic: Nic, mappings: dict[str, str], local_ip: str) -> Uplink | None:
    """The uplink of the NIC's network on this host; None: the bridge stays without one
    (a local network, one made before network types, a physnet this host does not map, or
    vxlan on a host without `overlay_local_ip`), which is logged."""
    kind = nic.network_type
    if kind in (FLAT, VLAN):
        interface = mappings.get(nic.physical_network or "")
        if interface is None:
            log.info("network %s: physical network %r is not in this host's "
                        "physical_interface_mappings; its bridge has no uplink",
                        nic.network_id, nic.physical_network)
            return None
        if kind == FLAT:
            return Uplink(name=interface, kind=FLAT, set_mtu=False)
        assert nic.segmentation_id is not None
        return Uplink(name=vlan_device_name(interface, nic.segmentation_id), kind=VLAN,
                      create={"kind": "vlan", "link": interface,
                              "vlan_id": nic.segmentation_id},
                      attributes={"IFLA_VLAN_ID": nic.segmentation_id})
    if kind == VXLAN:
        if not local_ip:
            log.info("network %s: this host has no overlay_local_ip; its vxlan network "
                        "stays on the host", nic.network_id)
            return None
        assert nic.segmentation_id is not None
        return Uplink(name=vxlan_name(nic.network_id), kind=VXLAN,
                      create={"kind": "vxlan", "vxlan_id": nic.segmentation_id,
                              "vxlan_local": local_ip, "vxlan_port": VXLAN_PORT,
                              "vxlan_learning": 0},
                      attributes={"IFLA_VXLAN_ID": nic.segmentation_id,
                                  "IFLA_VXLAN_LOCAL": local_ip})
    return None


def ip_commands(uplink: Uplink, bridge: str, mtu: int) -> list[str]:
    """The iproute2 commands equivalent to what the dataplane does over netlink (logs,
    docs and the tests of what cannot run here)."""
    commands = []
    spec = uplink.create
    if spec is not None and spec["kind"] == VLAN:
        commands.append(f"ip link add link {spec['link']} name {uplink.name} type vlan "
                        f"id {spec['vlan_id']}")
    elif spec is not None and spec["kind"] == VXLAN:
        commands.append(f"ip link add {uplink.name} type vxlan id {spec['vxlan_id']} "
                        f"local {spec['vxlan_local']} dstport {spec['vxlan_port']} nolearning")
    mtu_part = f" mtu {mtu}" if uplink.set_mtu else ""
    commands.append(f"ip link set {uplink.name}{mtu_part} master {bridge} up")
    return commands
