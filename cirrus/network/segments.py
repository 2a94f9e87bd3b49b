"""Network segments (issue 14, l2): what a network is on the wire between hosts.

- `flat`: untagged on a physical network (`provider:physical_network`), which each agent
  maps to one of its interfaces (`physical_interface_mappings`); one network per physnet.
- `vlan`: 802.1Q id 1-4094 on a physical network; one network per (physnet, id).
- `vxlan`: a VNI (1 to 2^24-1) over the hosts' underlay; one network per VNI.
- `local` (and a network made before network types: no type at all): a bridge on each host
  with no uplink; its hosts do not reach each other.

Admins name a segment with the `provider:*` attributes, checked as Neutron's ML2 type
drivers check them (same words). Everyone else gets the first of `tenant_network_types`
that has a free id, allocated at random among the first free ids of the ranges; the
primary key of `segment_allocations` decides races between API workers (savepoint insert,
retry with another id), as IPAM does for addresses.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from cirrus.config import Settings
from cirrus.db.models import Network, SegmentAllocation
from cirrus.network.errors import (
    BadAttribute,
    FlatNetworkInUse,
    InvalidInput,
    NoNetworkAvailable,
    TunnelIdInUse,
    VlanIdInUse,
)
from cirrus.network.savepoint import try_insert

FLAT, VLAN, VXLAN, LOCAL = "flat", "vlan", "vxlan", "local"
SUPPORTED = (FLAT, VLAN, VXLAN, LOCAL)
VXLAN_OVERHEAD = 50  # outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14
VLAN_RANGE = (1, 4094)
VNI_RANGE = (1, 2**24 - 1)
MAX_LOCAL_MTU = 9000  # a bridge with no uplink: jumbo frames, as before network types
CANDIDATES = 32  # draw among this many free ids, so concurrent workers seldom collide


@dataclass(frozen=True)
class Segment:
    network_type: str | None
    physical_network: str | None = None
    segmentation_id: int | None = None


# ---------------------------------------------------------------- settings


def _range(text: str, bounds: tuple[int, int], setting: str) -> tuple[int, int]:
    low_text, sep, high_text = text.partition(":")
    try:
        low, high = int(low_text), int(high_text if sep else low_text)
    except ValueError:
        raise ValueError(f"{setting}: {text!r} is not low:high") from None
    if not bounds[0] <= low <= high <= bounds[1]:
        raise ValueError(f"{setting}: {text!r} is not within {bounds[0]}:{bounds[1]}")
    return low, high


def vni_ranges(settings: Settings) -> list[tuple[int, int]]:
    return [_range(item, VNI_RANGE, "vxlan_vni_ranges") for item in settings.vxlan_vni_ranges]


def vlan_ranges(settings: Settings) -> dict[str, list[tuple[int, int]]]:
    """physnet -> its tenant VLAN ranges (empty: the physnet is for provider networks only)."""
    result: dict[str, list[tuple[int, int]]] = {}
    for item in settings.network_vlan_ranges:
        physnet, _, rest = item.partition(":")
        result.setdefault(physnet, [])
        if rest:
            result[physnet].append(_range(rest, VLAN_RANGE, "network_vlan_ranges"))
    return result


def check_settings(settings: Settings) -> None:
    """ValueError saying which l2 setting is wrong (a process refuses to start with it)."""
    vni_ranges(settings)
    vlan_ranges(settings)
    unknown = set(settings.tenant_network_types) - {VXLAN, VLAN, LOCAL}
    if unknown:
        raise ValueError(f"tenant_network_types: {sorted(unknown)} (known: vxlan, vlan, local)")
    if settings.default_network_mtu - VXLAN_OVERHEAD < 68:
        raise ValueError("default_network_mtu: too small for a vxlan network")


def max_mtu(settings: Settings, network_type: str | None) -> int:
    """The largest MTU a network of this type can carry: the physical networks' MTU
    (`default_network_mtu`, Neutron's global_physnet_mtu) less the overlay's overhead."""
    if network_type == VXLAN:
        return settings.default_network_mtu - VXLAN_OVERHEAD
    if network_type in (FLAT, VLAN):
        return settings.default_network_mtu
    return MAX_LOCAL_MTU


def default_mtu(settings: Settings, network_type: str | None) -> int:
    return min(settings.default_network_mtu, max_mtu(settings, network_type))


# ---------------------------------------------------------------- checking a provider segment


def validate(settings: Settings, segment: Segment) -> None:
    """Refuse what Neutron's ML2 type drivers refuse, in their words (400 InvalidInput)."""
    kind, physnet, seg_id = segment.network_type, segment.physical_network, segment.segmentation_id
    if kind is None:
        if physnet is not None or seg_id is not None:
            raise InvalidInput("network_type required")
        return
    if kind not in SUPPORTED:
        raise InvalidInput(f"network_type value '{kind}' not supported")
    if kind == FLAT:
        if not physnet:
            raise InvalidInput("physical_network required for flat provider network")
        if "*" not in settings.flat_networks and physnet not in settings.flat_networks:
            raise InvalidInput(f"physical_network '{physnet}' unknown for flat provider network")
        if seg_id is not None:
            raise InvalidInput("segmentation_id specified for flat provider network")
    elif kind == VLAN:
        if physnet is not None and physnet not in vlan_ranges(settings):
            raise InvalidInput(f"physical_network '{physnet}' unknown for VLAN provider network")
        if seg_id is not None:
            if physnet is None:
                raise InvalidInput("segmentation_id requires physical_network for VLAN "
                                   "provider network")
            _in_range(VLAN, seg_id, VLAN_RANGE)
    elif kind == VXLAN:
        if physnet is not None:
            raise InvalidInput("provider:physical_network specified for vxlan network")
        if seg_id is not None:
            _in_range(VXLAN, seg_id, VNI_RANGE)
    elif physnet is not None or seg_id is not None:  # local
        key = "physical_network" if physnet is not None else "segmentation_id"
        raise InvalidInput(f"{key} prohibited for local provider network")


def _in_range(kind: str, value: int, bounds: tuple[int, int]) -> None:
    if not bounds[0] <= value <= bounds[1]:
        raise BadAttribute("provider:segmentation_id", f"{value} is out of range for {kind} "
                           f"networks ({bounds[0]} through {bounds[1]})")


# ---------------------------------------------------------------- allocating


def assign(s: Session, settings: Settings, network: Network, requested: Segment) -> Segment:
    """Give a new (flushed) network its segment: the one asked for (validated and
    reserved: 409 when another network holds it), else one of the tenant types; record it
    on the network's provider_* columns."""
    validate(settings, requested)
    if requested.network_type is None:
        segment = _allocate_tenant(s, settings, network.id)
    elif requested.network_type == LOCAL:
        segment = requested
    elif requested.network_type == FLAT:
        assert requested.physical_network
        if not _reserve(s, network.id, FLAT, requested.physical_network, 0):
            raise FlatNetworkInUse(requested.physical_network)
        segment = requested
    elif requested.segmentation_id is not None:
        segment = requested
        if not _reserve(s, network.id, requested.network_type,
                        requested.physical_network or "", requested.segmentation_id):
            if requested.network_type == VLAN:
                raise VlanIdInUse(requested.segmentation_id, requested.physical_network or "")
            raise TunnelIdInUse(requested.segmentation_id)
    else:  # vlan or vxlan without an id: one from the ranges
        found = _allocate_type(s, settings, network.id, requested.network_type,
                               requested.physical_network)
        if found is None:
            raise NoNetworkAvailable()
        segment = found
    network.provider_network_type = segment.network_type
    network.provider_physical_network = segment.physical_network
    network.provider_segmentation_id = segment.segmentation_id
    return segment


def release(s: Session, network_id: str) -> None:
    s.execute(delete(SegmentAllocation).where(SegmentAllocation.network_id == network_id))


def _allocate_tenant(s: Session, settings: Settings, network_id: str) -> Segment:
    if not settings.tenant_network_types:
        return Segment(None)  # no segment: a bridge with no uplink, as before network types
    for kind in settings.tenant_network_types:
        if kind == LOCAL:
            return Segment(LOCAL)
        found = _allocate_type(s, settings, network_id, kind, None)
        if found is not None:
            return found
    raise NoNetworkAvailable()


def _allocate_type(s: Session, settings: Settings, network_id: str, kind: str,
                   physnet: str | None) -> Segment | None:
    if kind == VXLAN:
        pools = [("", vni_ranges(settings))]
    elif kind == VLAN:
        pools = [(name, ranges) for name, ranges in vlan_ranges(settings).items()
                 if physnet is None or name == physnet]
    else:
        return None
    for pool_physnet, ranges in pools:
        seg_id = _allocate_id(s, network_id, kind, pool_physnet, ranges)
        if seg_id is not None:
            return Segment(kind, pool_physnet or None, seg_id)
    return None


def _allocate_id(s: Session, network_id: str, kind: str, physnet: str,
                 ranges: list[tuple[int, int]]) -> int | None:
    """A free id of `ranges`, reserved for the network; None when every one is taken."""
    taken = set(s.scalars(select(SegmentAllocation.segmentation_id).where(
        SegmentAllocation.network_type == kind, SegmentAllocation.physical_network == physnet)))
    while True:
        free = _first_free(ranges, taken, CANDIDATES)
        if not free:
            return None
        seg_id = random.choice(free)
        if _reserve(s, network_id, kind, physnet, seg_id):
            return seg_id
        taken.add(seg_id)  # another worker won it: count it taken and draw again


def _first_free(ranges: list[tuple[int, int]], taken: set[int], count: int) -> list[int]:
    def ids() -> Iterator[int]:
        for low, high in ranges:
            yield from range(low, high + 1)

    free: list[int] = []
    for seg_id in ids():
        if seg_id not in taken:
            free.append(seg_id)
            if len(free) == count:
                break
    return free


def _reserve(s: Session, network_id: str, kind: str, physnet: str, seg_id: int) -> bool:
    return try_insert(s, SegmentAllocation(network_type=kind, physical_network=physnet,
                                           segmentation_id=seg_id, network_id=network_id))
