"""The ports suite: port create throughput and IP allocation (IPAM) under concurrent clients.

One repetition, as admin, on two networks made for it (each with one IPv4 subnet):

1. fill: C clients create N ports (`POST /network/v2.0/ports` with only `network_id`, so
   IPAM picks every address) on a subnet far bigger than N (a /20: 4,093 pool addresses,
   so nothing runs out); then one `GET /ports?network_id=` lists them.
2. race: C clients race M creates on a /26 (61 pool addresses, M > 61), listed the same way.
3. delete: C clients delete the N fill ports; the race ports are deleted after (not
   timed); both networks must then be empty, and are deleted.

Zero duplicates is the point, so everything IPAM promises is checked from what the clients
saw and what the list shows, and any miss is a violation (`bench` exits 1, loudly): an
address on two ports, a list that does not show exactly the ports created, an address
outside the subnet's pools or not the one the create answered, on the /26 anything but
exactly 61 ports holding exactly its 61 pool addresses with every other create refused 409
`IpAddressGenerationFailure` "No more IP addresses available on subnet <id> (<cidr>, 61 in
use)", or a port left behind after the deletes.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

from bench import api, cpu, load
from bench.http import Connection
from bench.load import PhaseResult
from bench.report import percentile

PORTS = "/network/v2.0/ports"
FILL_CIDR = "10.96.0.0/20"
RACE_CIDR = "10.97.0.0/26"
RACE_POOL = 61  # its addresses but the network's, the gateway (the first) and the broadcast
EXHAUSTED = "No more IP addresses available on subnet {id} ({cidr}, {used} in use)"
# Latency as the subnet fills: the p50 of the first and of the last this many creates.
FILL_SAMPLE = 0.1


@dataclass
class Creates:
    """What the clients got from their POSTs: each created port's addresses as the 201
    answered them, and the 409 refusals (NeutronError bodies) where refusals are expected."""

    phase: PhaseResult = field(default_factory=PhaseResult)
    addresses: dict[str, list[str]] = field(default_factory=dict)
    refusals: list[dict] = field(default_factory=list)
    refusal_latencies: list[float] = field(default_factory=list)


@dataclass
class PortsRun:
    """One repetition's figures, the errors the clients saw, and the IPAM violations."""

    fill: PhaseResult
    list_seconds: float
    race: Creates
    deleted: PhaseResult
    duplicates: int
    errors: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    def fill_p50(self, last: bool) -> float:
        """p50 latency of the first (or last) tenth of the fill creates, in completion order."""
        lat = self.fill.latencies
        k = max(1, int(len(lat) * FILL_SAMPLE))
        return percentile(lat[-k:] if last else lat[:k], 50)


def pool_addresses(subnet: dict) -> set[str]:
    """Every address of the subnet's allocation pools (as the API shows them), gateway
    excluded."""
    found = set()
    for pool in subnet["allocation_pools"]:
        start, end = (int(ipaddress.ip_address(pool[k])) for k in ("start", "end"))
        found.update(str(ipaddress.ip_address(v)) for v in range(start, end + 1))
    found.discard(subnet.get("gateway_ip"))
    return found


def duplicates(addresses: list[str]) -> dict[str, int]:
    """Addresses given more than once, and how many times."""
    return {a: n for a, n in Counter(addresses).items() if n > 1}


def check_ports(name: str, subnet: dict, listed: list[dict],
                created: dict[str, list[str]]) -> tuple[int, list[str]]:
    """Duplicate addresses (one count per extra holder) and the violations: the list must show
    exactly the created ports, each with one address of the subnet's pools, the one its create
    answered, and no address twice, either in the answers or in the list."""
    violations = []
    listed_ips = {p["id"]: [f["ip_address"] for f in p["fixed_ips"]] for p in listed}
    if set(listed_ips) != set(created):
        violations.append(f"{name}: {len(created)} ports created, {len(listed)} listed; "
                          f"{len(set(created) - set(listed_ips))} created but not listed, "
                          f"{len(set(listed_ips) - set(created))} listed but not created")
    pool = pool_addresses(subnet)
    for port in listed:
        where = {(f["subnet_id"], f["ip_address"]) for f in port["fixed_ips"]}
        ips = [ip for _, ip in where]
        if len(where) != 1 or next(iter(where))[0] != subnet["id"] or ips[0] not in pool:
            violations.append(f"{name}: port {port['id']} has {sorted(where)}, not one "
                              f"address of the pools of {subnet['cidr']}")
        elif port["id"] in created and created[port["id"]] != ips:
            violations.append(f"{name}: port {port['id']} was created with "
                              f"{created[port['id']]} and is listed with {ips}")
    dup_listed = duplicates([ip for ips in listed_ips.values() for ip in ips])
    dup_created = duplicates([ip for ips in created.values() for ip in ips])
    for where, dup in (("listed", dup_listed), ("create answers", dup_created)):
        if dup:
            shown = ", ".join(f"{a} x{n}" for a, n in sorted(dup.items())[:10])
            violations.append(f"{name}: DUPLICATE ADDRESSES in the {where}: {shown}")
    count = max(sum(n - 1 for n in dup_listed.values()),
                sum(n - 1 for n in dup_created.values()))
    return count, violations


def check_race(subnet: dict, attempts: int, race: Creates, listed: list[dict]) -> list[str]:
    """On the small subnet exactly its pool is handed out, once each, and every other create
    is refused with the exhaustion error in IPAM's words."""
    pool = pool_addresses(subnet)
    violations = []
    expected_refusals = attempts - len(pool)
    if len(race.addresses) != len(pool) or len(race.refusals) != expected_refusals:
        violations.append(f"race: {len(race.addresses)} created and {len(race.refusals)} "
                          f"refused of {attempts}, expected {len(pool)} and {expected_refusals}")
    held = {f["ip_address"] for p in listed for f in p["fixed_ips"]}
    if held != pool:
        violations.append(f"race: the ports hold {len(held)} addresses, "
                          f"{len(pool - held)} pool addresses free, {len(held - pool)} outside it")
    message = EXHAUSTED.format(id=subnet["id"], cidr=subnet["cidr"], used=len(pool))
    wrong = Counter(f"{r.get('type')}: {r.get('message')}" for r in race.refusals
                    if r.get("type") != "IpAddressGenerationFailure" or r.get("message") != message)
    violations += [f"race: {n} refusal(s) were not '{message}' but '{text}'"
                   for text, n in wrong.items()]
    return violations


async def create_ports(s: api.Session, network_id: str, n: int, concurrency: int,
                       refusals: bool) -> Creates:
    """N ports on the network from `concurrency` clients; with `refusals`, a 409 is an
    expected answer (kept for checking), otherwise an error like any other non-201."""
    out = Creates()
    tag = uuid.uuid4().hex[:6]

    async def create(conn: Connection, i: int) -> None:
        started = time.perf_counter()
        r = await conn.request("POST", PORTS, json={"port": {
            "network_id": network_id, "name": f"bench-{tag}-{i}"}})
        elapsed = time.perf_counter() - started
        if r.status == 201:
            port = r.json()["port"]
            out.addresses[port["id"]] = [f["ip_address"] for f in port["fixed_ips"]]
            out.phase.latencies.append(elapsed)
            out.phase.count += 1
        elif r.status == 409 and refusals:
            out.refusals.append(r.json().get("NeutronError", {}))
            out.refusal_latencies.append(elapsed)
        else:
            out.phase.errors.append(f"POST /ports {r.status}: {r.text[:200]}")

    out.phase.seconds = await load.run_workers(s, concurrency, n, create)
    return out


async def list_ports(s: api.Session, network_id: str) -> tuple[list[dict], float]:
    """The network's ports in one GET (no paging), and how long it took."""
    conn = load.connection(s, 0)
    try:
        started = time.perf_counter()
        r = await conn.request("GET", f"{PORTS}?network_id={network_id}")
        elapsed = time.perf_counter() - started
    finally:
        await conn.close()
    if r.status != 200:
        raise RuntimeError(f"GET /ports?network_id={network_id}: {r.status} {r.text[:300]}")
    return r.json()["ports"], elapsed


async def delete_ports(s: api.Session, ids: list[str], concurrency: int) -> PhaseResult:
    result = PhaseResult()

    async def delete(conn: Connection, i: int) -> None:
        started = time.perf_counter()
        r = await conn.request("DELETE", f"{PORTS}/{ids[i]}")
        if r.status == 204:
            result.latencies.append(time.perf_counter() - started)
            result.count += 1
        else:
            result.errors.append(f"DELETE /ports/{ids[i]} {r.status}: {r.text[:200]}")

    result.seconds = await load.run_workers(s, concurrency, len(ids), delete)
    return result


async def _repetition(s: api.Session, fill: tuple[int, int], race: tuple[int, int],
                      meter: cpu.CpuMeter) -> PortsRun:
    tag = uuid.uuid4().hex[:6]
    big = api.create_network(s, f"bench-fill-{tag}", FILL_CIDR)
    small = api.create_network(s, f"bench-race-{tag}", RACE_CIDR)
    with meter.window():
        created = await create_ports(s, big["network_id"], fill[0], fill[1], refusals=False)
    listed, list_seconds = await list_ports(s, big["network_id"])
    dups, violations = check_ports("fill", big, listed, created.addresses)
    raced = await create_ports(s, small["network_id"], race[0], race[1], refusals=True)
    race_listed, _ = await list_ports(s, small["network_id"])
    race_dups, race_violations = check_ports("race", small, race_listed, raced.addresses)
    violations += race_violations + check_race(small, race[0], raced, race_listed)
    with meter.window():
        deleted = await delete_ports(s, list(created.addresses), fill[1])
    race_deleted = await delete_ports(s, list(raced.addresses), race[1])
    errors = created.phase.errors + raced.phase.errors + deleted.errors + race_deleted.errors
    for subnet in (big, small):
        left, _ = await list_ports(s, subnet["network_id"])
        if left:
            violations.append(f"{len(left)} port(s) left on {subnet['cidr']} after the deletes")
        r = api.delete_network(s, subnet["network_id"])
        if r.status_code != 204:
            errors.append(f"DELETE network of {subnet['cidr']}: {r.status_code} {r.text[:200]}")
    return PortsRun(created.phase, list_seconds, raced, deleted, dups + race_dups, errors,
                    violations)


def repetition(s: api.Session, fill: tuple[int, int], race: tuple[int, int],
               meter: cpu.CpuMeter) -> PortsRun:
    """One fill, race and delete on fresh networks; the CPU meter covers the fill creates and
    their deletes only."""
    return asyncio.run(_repetition(s, fill, race, meter))
