"""IP address management: subnet address math and handing out fixed IPs.

Guarantee: an address is never given twice. The database decides: `ip_allocations` has the
primary key (subnet_id, ip_address), and each allocation is inserted in a SAVEPOINT; a
worker that loses a race for a candidate learns it from the IntegrityError and tries
another free one. Candidates are picked at random among the first few free addresses of
the allocation pools, so concurrent workers (threads or processes) rarely collide at all.

Which addresses a port gets follows Neutron: without `fixed_ips`, one address from the
first IPv4 subnet with room, one from the first stateful IPv6 subnet with room, and the
EUI-64 address on every SLAAC / DHCPv6-stateless subnet; with `fixed_ips`, exactly what
each entry asks for (a subnet, an address, or both).
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cirrus.db.models import IPAllocation, Port, Subnet
from cirrus.errors import Conflict
from cirrus.network.errors import (
    BadAttribute,
    InvalidInput,
    IpAddressAlreadyAllocated,
    IpAddressGenerationFailure,
    SubnetNotFound,
)
from cirrus.network.savepoint import try_insert

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

AUTO_ADDRESS_MODES = ("slaac", "dhcpv6-stateless")
# Free addresses a candidate is drawn from: wide enough that concurrent workers seldom pick
# the same one, narrow enough that addresses still fill a subnet from its start.
CANDIDATE_WINDOW = 32
# Lost races tolerated per address before giving up; each loss means another worker got
# an address, so this is only reached under extreme contention on one subnet.
MAX_ATTEMPTS = 256
REREAD_EVERY = 4  # lost races between two fresh reads of the taken addresses
MAX_WINDOW = 4096  # the widest the candidate window grows under contention
# The OS's randomness, so that forked API workers do not all pick the same candidate.
_random = random.SystemRandom()


# ---------------------------------------------------------------- address math


def parse_address(text: object, attribute: str) -> IPAddress:
    try:
        if not isinstance(text, str):  # an integer would be taken as one (5 is 0.0.0.5)
            raise ValueError(text)
        return ipaddress.ip_address(text.strip())
    except ValueError:
        raise BadAttribute(attribute, f"'{text}' is not a valid IP address") from None


def parse_cidr(text: object, attribute: str = "cidr") -> IPNetwork:
    """A subnet in CIDR form, host bits cleared (Neutron accepts and corrects them)."""
    if not isinstance(text, str) or "/" not in text or text != text.strip():
        raise BadAttribute(attribute, f"'{text}' is not a valid IP subnet")
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise BadAttribute(attribute, f"'{text}' is not a valid IP subnet") from None


def usable_range(net: IPNetwork) -> tuple[int, int]:
    """First and last address a host may have: no network address, no IPv4 broadcast
    (except in /31 and /32, where every address is a host, as Neutron has it)."""
    first, last = int(net.network_address), int(net.broadcast_address)
    if first == last:
        return first, last
    if net.version == 4:
        return (first + 1, last - 1) if net.prefixlen <= 30 else (first, last)
    return first + 1, last


def default_gateway(net: IPNetwork) -> str:
    """The first host address, as Neutron picks it."""
    return str(net.network_address + 1) if net.num_addresses > 1 else str(net.network_address)


def default_pools(net: IPNetwork, gateway: str | None) -> list[dict[str, str]]:
    """Every usable address but the gateway, as [{"start", "end"}] ranges."""
    first, last = usable_range(net)
    ranges = [(first, last)]
    if gateway is not None:
        gw = int(ipaddress.ip_address(gateway))
        if first <= gw <= last:
            ranges = [(a, b) for a, b in ((first, gw - 1), (gw + 1, last)) if a <= b]
    return [_pool(net.version, a, b) for a, b in ranges]


def _pool(version: int, start: int, end: int) -> dict[str, str]:
    make = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    return {"start": str(make(start)), "end": str(make(end))}


def pool_text(pool: dict[str, str]) -> str:
    return f"{pool['start']}-{pool['end']}"


def check_pools(net: IPNetwork, pools: list[dict], gateway: str | None) -> list[dict[str, str]]:
    """Validate allocation pools against their subnet (Neutron's checks and words) and
    return them in canonical text."""
    first, last = usable_range(net)
    ranges: list[tuple[int, int, dict[str, str]]] = []
    for pool in pools:
        text = f"{pool.get('start')}-{pool.get('end')}"
        try:
            start = ipaddress.ip_address(pool["start"])
            end = ipaddress.ip_address(pool["end"])
        except (KeyError, ValueError, TypeError):
            raise InvalidInput(f"The allocation pool {text} is not valid") from None
        if start.version != net.version or end.version != net.version or int(start) > int(end):
            raise BadAttribute("allocation_pools", f"The allocation pool {text} is not valid")
        if int(start) < first or int(end) > last:
            raise BadAttribute("allocation_pools",
                               f"The allocation pool {text} spans beyond the subnet cidr {net}")
        ranges.append((int(start), int(end), {"start": str(start), "end": str(end)}))
    ordered = sorted(ranges, key=lambda r: r[0])
    for (_, a_end, a), (b_start, _, b) in zip(ordered, ordered[1:], strict=False):
        if b_start <= a_end:
            raise Conflict(f"Found overlapping allocation pools: {pool_text(a)} {pool_text(b)} "
                           f"for subnet {net}.")
    if gateway is not None:
        gw = int(ipaddress.ip_address(gateway))
        for low, high, pool in ranges:
            if low <= gw <= high:
                raise Conflict(f"Gateway ip {gateway} conflicts with allocation pool "
                               f"{pool_text(pool)}.")
    return [pool for _, _, pool in ranges]


def is_host_address(net: IPNetwork, address: IPAddress) -> bool:
    """May a port have this address on this subnet (inside it, not its network address,
    not the IPv4 broadcast)?"""
    if address.version != net.version or address not in net:
        return False
    first, last = usable_range(net)
    return first <= int(address) <= last


def is_auto_address(subnet: Subnet) -> bool:
    """SLAAC and DHCPv6-stateless subnets: the address comes from the MAC (EUI-64)."""
    return subnet.ip_version == 6 and (subnet.ipv6_address_mode in AUTO_ADDRESS_MODES
                                       or subnet.ipv6_ra_mode in AUTO_ADDRESS_MODES)


def eui64_address(cidr: str, mac: str) -> str:
    """The SLAAC address of a MAC in a /64, as the guest's kernel will configure it."""
    octets = bytes(int(part, 16) for part in mac.split(":"))
    iid = bytes([octets[0] ^ 0x02]) + octets[1:3] + b"\xff\xfe" + octets[3:6]
    net = ipaddress.IPv6Network(cidr)
    return str(ipaddress.IPv6Address(int(net.network_address) | int.from_bytes(iid, "big")))


def pool_addresses(subnet: Subnet) -> Iterator[int]:
    """Every address of the subnet's pools, in order, as integers (never the gateway)."""
    gateway = int(ipaddress.ip_address(subnet.gateway_ip)) if subnet.gateway_ip else None
    for pool in subnet.allocation_pools or []:
        start = int(ipaddress.ip_address(pool["start"]))
        end = int(ipaddress.ip_address(pool["end"]))
        for value in range(start, end + 1):
            if value != gateway:
                yield value


def free_candidates(subnet: Subnet, taken: set[int], count: int) -> list[int]:
    found: list[int] = []
    for value in pool_addresses(subnet):
        if value not in taken:
            found.append(value)
            if len(found) == count:
                break
    return found


# ---------------------------------------------------------------- allocation


@dataclass(eq=False)
class Exhausted(Exception):
    """No free address left on one subnet (how many are in use, for the message)."""

    subnet: Subnet
    in_use: int

    def as_error(self) -> IpAddressGenerationFailure:
        return IpAddressGenerationFailure([(self.subnet.id, self.subnet.cidr, self.in_use)])


def _allocation(subnet: Subnet, port: Port, address: str) -> IPAllocation:
    return IPAllocation(subnet_id=subnet.id, ip_address=address, port_id=port.id,
                        network_id=subnet.network_id)


def allocate_specific(s: Session, subnet: Subnet, port: Port, address: str) -> IPAllocation:
    """The address asked for, or 409 if someone holds it."""
    row = _allocation(subnet, port, address)
    if not try_insert(s, row):
        if s.get(Subnet, subnet.id) is None:
            raise SubnetNotFound(subnet.id)
        raise IpAddressAlreadyAllocated(address, subnet.id)
    return row


def allocate_any(s: Session, subnet: Subnet, port: Port) -> IPAllocation:
    """A free pool address of the subnet; Exhausted if there is none.

    The set read at the start may be stale (another worker commits meanwhile, or MariaDB's
    repeatable-read snapshot); an address it misses is refused by the primary key and
    counted as taken, so exhaustion is only declared once every pool address has been
    seen taken.
    """
    make = ipaddress.IPv4Address if subnet.ip_version == 4 else ipaddress.IPv6Address
    taken = _taken(s, subnet)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        # Each run of lost races widens the window, so racing workers spread out.
        width = min(CANDIDATE_WINDOW << (attempt // REREAD_EVERY), MAX_WINDOW)
        window = free_candidates(subnet, taken, width)
        if not window:
            if s.get(Subnet, subnet.id) is None:
                raise SubnetNotFound(subnet.id)
            raise Exhausted(subnet, len(taken))
        candidate = _random.choice(window)
        row = _allocation(subnet, port, str(make(candidate)))
        if try_insert(s, row):
            return row
        taken.add(candidate)
        if attempt % REREAD_EVERY == 0:
            # Others are filling the pool faster than one lost race a time can learn: read
            # what they committed meanwhile (PostgreSQL's read-committed statements see it;
            # MariaDB's repeatable-read snapshot does not, which the widening covers).
            taken |= _taken(s, subnet)
    raise Conflict(f"Could not allocate an IP address on subnet {subnet.id}: {MAX_ATTEMPTS} "
                   "candidates were taken by concurrent requests meanwhile; try again.")


def _taken(s: Session, subnet: Subnet) -> set[int]:
    """The subnet's allocated addresses, as this transaction sees them."""
    return {int(ipaddress.ip_address(a)) for a in s.scalars(
        select(IPAllocation.ip_address).where(IPAllocation.subnet_id == subnet.id))}


def allocate_from_first(s: Session, subnets: list[Subnet], port: Port) -> IPAllocation:
    """One address from the first of `subnets` that has room (Neutron's default)."""
    exhausted: list[Exhausted] = []
    for subnet in subnets:
        try:
            return allocate_any(s, subnet, port)
        except Exhausted as exc:
            exhausted.append(exc)
    raise IpAddressGenerationFailure([(e.subnet.id, e.subnet.cidr, e.in_use) for e in exhausted])


@dataclass(frozen=True)
class Request:
    """One fixed IP a port asks for: a subnet, and the address or None for any."""

    subnet: Subnet
    address: str | None


def resolve_fixed_ips(network_id: str, subnets: list[Subnet], fixed_ips: list[dict],
                      mac: str, subnet_exists: set[str] | None = None) -> list[Request]:
    """Turn a `fixed_ips` body into requests on this network's subnets (Neutron's rules and
    words). `subnet_exists`: ids of subnets elsewhere, which are a 400 rather than a 404."""
    if fixed_ips and not subnets:
        raise InvalidInput("IP allocation requires subnets for network")
    by_id = {subnet.id: subnet for subnet in subnets}
    requests: list[Request] = []
    for fixed in fixed_ips:
        address = fixed.get("ip_address")
        parsed = parse_address(address, "fixed_ips") if address is not None else None
        if fixed.get("subnet_id") is not None:
            subnet = by_id.get(fixed["subnet_id"])
            if subnet is None:
                if subnet_exists is not None and fixed["subnet_id"] in subnet_exists:
                    raise InvalidInput(f"Failed to create port on network {network_id}, "
                                       f"because fixed_ips included invalid subnet "
                                       f"{fixed['subnet_id']}")
                raise SubnetNotFound(fixed["subnet_id"])
            if parsed is not None and not is_host_address(ipaddress.ip_network(subnet.cidr), parsed):
                raise BadAttribute("fixed_ips", f"IP address {parsed} is not a valid IP "
                                   "for the specified subnet")
        elif parsed is not None:
            subnet = next((sn for sn in subnets
                           if is_host_address(ipaddress.ip_network(sn.cidr), parsed)), None)
            if subnet is None:
                raise BadAttribute("fixed_ips", f"IP address {parsed} is not a valid IP for "
                                   "any of the subnets on the specified network")
        else:
            raise InvalidInput("IP allocation requires subnet_id or ip_address")
        if is_auto_address(subnet):
            expected = eui64_address(subnet.cidr, mac)
            if parsed is not None and str(parsed) != expected:
                raise InvalidInput(f"IPv6 address {parsed} cannot be directly assigned to a "
                                   f"port on subnet {subnet.id} as the subnet is configured "
                                   "for automatic addresses")
            parsed = ipaddress.ip_address(expected)
        requests.append(Request(subnet, str(parsed) if parsed is not None else None))
    return requests


def allocate_for_port(s: Session, port: Port, subnets: list[Subnet],
                      requests: list[Request] | None) -> list[IPAllocation]:
    """Give `port` its addresses: `requests` (from resolve_fixed_ips), or Neutron's default
    when None. Raises 409s in Neutron's words; the caller's transaction is then rolled
    back, so a failed port keeps no address."""
    if requests is not None and not requests:
        return []  # `fixed_ips: []`: a port without addresses
    rows: list[IPAllocation] = []
    if requests is None:
        stateful = [[sn for sn in subnets if sn.ip_version == 4],
                    [sn for sn in subnets if sn.ip_version == 6 and not is_auto_address(sn)]]
        rows = [allocate_from_first(s, group, port) for group in stateful if group]
        requests = []
    asked = {r.subnet.id for r in requests if r.address is not None}
    requests = requests + [Request(sn, eui64_address(sn.cidr, port.mac_address))
                           for sn in subnets if is_auto_address(sn) and sn.id not in asked]
    seen: set[tuple[str, str]] = set()
    for request in requests:
        if request.address is None:
            try:
                rows.append(allocate_any(s, request.subnet, port))
            except Exhausted as exc:
                raise exc.as_error() from None
            continue
        key = (request.subnet.id, request.address)
        if key in seen:
            raise IpAddressAlreadyAllocated(request.address, request.subnet.id)
        seen.add(key)
        rows.append(allocate_specific(s, request.subnet, port, request.address))
    return rows


def in_use_count(s: Session, subnet_id: str) -> int:
    return int(s.scalar(select(func.count()).select_from(IPAllocation)
                        .where(IPAllocation.subnet_id == subnet_id)) or 0)
