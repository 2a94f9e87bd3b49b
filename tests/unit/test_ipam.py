"""IPAM: subnet address math, and the guarantee that no address is ever given twice, with
concurrent port creates from threads and from processes on SQLite, PostgreSQL and MariaDB.
Also the session-level port functions the compute code calls."""

from __future__ import annotations

import ipaddress
import multiprocessing
import random
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from cirrus.config import Settings
from cirrus.context import RequestContext
from cirrus.db.engine import Database
from cirrus.db.models import AutoAllocatedNetwork, IPAllocation, Network, Port, SecurityGroup
from cirrus.errors import CirrusError, Conflict
from cirrus.network import auto, ipam, networks, ports, subnets
from cirrus.network.errors import BadAttribute, NetworkNotFound, PortNotFound
from cirrus.network.model import Nic

pytest_plugins = ("tests.dbfixtures",)

WORKERS = 20
CIDR = "10.0.0.0/28"  # pool .2-.14: 13 addresses for 20 workers


def member_ctx(project_id: str | None = None) -> RequestContext:
    return RequestContext(project_id=project_id or uuid.uuid4().hex, roles=["member", "reader"])


# ---------------------------------------------------------------- address math


def test_host_bits_are_cleared_and_bad_cidrs_refused():
    assert str(ipam.parse_cidr("10.1.2.3/16")) == "10.1.0.0/16"
    assert str(ipam.parse_cidr("2001:db8::5/64")) == "2001:db8::/64"
    for bad in ("10.0.0.0", "10.0.0.0/33", "x/24", " 10.0.0.0/24", 42):
        with pytest.raises(BadAttribute, match="is not a valid IP subnet"):
            ipam.parse_cidr(bad)


def test_an_address_is_text_and_nothing_else():
    assert str(ipam.parse_address(" 10.0.0.5 ", "fixed_ips")) == "10.0.0.5"
    for bad in ("10.0.0", "x", 5, True, None):  # 5 and True read as integers were 0.0.0.5/.1
        with pytest.raises(BadAttribute, match="is not a valid IP address"):
            ipam.parse_address(bad, "fixed_ips")


@pytest.mark.parametrize(("cidr", "first", "last"), [
    ("10.0.0.0/24", "10.0.0.1", "10.0.0.254"),
    ("10.0.0.0/31", "10.0.0.0", "10.0.0.1"),
    ("10.0.0.7/32", "10.0.0.7", "10.0.0.7"),
    ("2001:db8::/126", "2001:db8::1", "2001:db8::3"),
])
def test_usable_range_skips_network_and_ipv4_broadcast(cidr, first, last):
    low, high = ipam.usable_range(ipaddress.ip_network(cidr))
    assert (str(ipaddress.ip_address(low)), str(ipaddress.ip_address(high))) == (first, last)


def test_default_pools_go_around_the_gateway():
    net = ipaddress.ip_network("10.0.0.0/29")
    assert ipam.default_pools(net, "10.0.0.1") == [{"start": "10.0.0.2", "end": "10.0.0.6"}]
    assert ipam.default_pools(net, "10.0.0.6") == [{"start": "10.0.0.1", "end": "10.0.0.5"}]
    assert ipam.default_pools(net, None) == [{"start": "10.0.0.1", "end": "10.0.0.6"}]
    assert ipam.default_pools(net, "10.0.0.4") == [{"start": "10.0.0.1", "end": "10.0.0.3"},
                                                   {"start": "10.0.0.5", "end": "10.0.0.6"}]


def test_pool_checks_speak_neutron():
    net = ipaddress.ip_network("10.0.0.0/24")
    assert ipam.check_pools(net, [{"start": "10.0.0.9", "end": "10.0.0.20"}], "10.0.0.1") == \
        [{"start": "10.0.0.9", "end": "10.0.0.20"}]
    with pytest.raises(CirrusError, match="spans beyond the subnet cidr 10.0.0.0/24"):
        ipam.check_pools(net, [{"start": "10.0.0.0", "end": "10.0.0.9"}], None)
    with pytest.raises(Conflict, match="Found overlapping allocation pools"):
        ipam.check_pools(net, [{"start": "10.0.0.5", "end": "10.0.0.9"},
                               {"start": "10.0.0.2", "end": "10.0.0.5"}], None)
    with pytest.raises(Conflict, match="Gateway ip 10.0.0.7 conflicts"):
        ipam.check_pools(net, [{"start": "10.0.0.5", "end": "10.0.0.9"}], "10.0.0.7")
    with pytest.raises(CirrusError, match="is not valid"):
        ipam.check_pools(net, [{"start": "10.0.0.010", "end": "10.0.0.20"}], None)


def test_eui64_follows_rfc_4291():
    # The universal/local bit of the first octet flips; ff:fe goes in the middle.
    assert ipam.eui64_address("2001:db8::/64", "00:16:3e:33:44:55") == "2001:db8::216:3eff:fe33:4455"
    assert ipam.eui64_address("fd00:1::/64", "fa:16:3e:00:00:01") == "fd00:1::f816:3eff:fe00:1"


def test_free_candidates_skip_taken_and_gateway():
    sub = type("S", (), {"gateway_ip": "10.0.0.3", "allocation_pools": [
        {"start": "10.0.0.2", "end": "10.0.0.6"}]})()
    taken = {int(ipaddress.ip_address("10.0.0.2"))}
    found = [str(ipaddress.ip_address(v)) for v in ipam.free_candidates(sub, taken, 10)]
    assert found == ["10.0.0.4", "10.0.0.5", "10.0.0.6"]


# ---------------------------------------------------------------- a network to race on


def make_network(db: Database, settings: Settings, ctx: RequestContext,
                 cidr: str = CIDR) -> tuple[str, str]:
    def work(s):
        net = networks.create_network(s, ctx, settings, {"name": "race"})
        sub = subnets.create_subnet(s, ctx, settings, {
            "network_id": net.id, "cidr": cidr, "ip_version": 4})
        return net.id, sub.id

    return db.run(work)


def create_one(db: Database, settings: Settings, ctx: RequestContext, network_id: str) -> str:
    """One port create as an API worker does it: its own transaction. Returns the address,
    or the error message."""
    def work(s):
        port = ports.create_port(s, ctx, settings, network_id=network_id)
        return ports.allocations_of(s, [port.id])[port.id][0].ip_address

    try:
        return db.run(work)
    except CirrusError as exc:
        return f"error: {exc.message}"


def check_outcome(db: Database, subnet_id: str, results: list[str], attempts: int) -> None:
    """Every pool address handed out exactly once; everyone else told exactly why."""
    pool_size = 13
    addresses = [r for r in results if not r.startswith("error")]
    errors = [r for r in results if r.startswith("error")]
    assert len(addresses) == len(set(addresses)) == pool_size, results
    expected = f"error: No more IP addresses available on subnet {subnet_id} ({CIDR}, 13 in use)"
    assert errors == [expected] * (attempts - pool_size), errors
    with db.reader() as s:
        rows = s.execute(select(IPAllocation.ip_address, func.count())
                         .where(IPAllocation.subnet_id == subnet_id)
                         .group_by(IPAllocation.ip_address)).all()
        assert len(rows) == pool_size and all(n == 1 for _, n in rows)
        assert {r[0] for r in rows} == set(addresses)
        assert s.scalar(select(func.count()).select_from(Port)
                        .where(Port.network_id == s.scalar(
                            select(IPAllocation.network_id).where(
                                IPAllocation.subnet_id == subnet_id).limit(1)))) == pool_size


def test_concurrent_threads_never_share_an_address(db_url, cloud_on):
    with cloud_on(db_url, roles=False) as cloud:
        ctx = member_ctx()
        network_id, subnet_id = make_network(cloud.db, cloud.settings, ctx)
        with ThreadPoolExecutor(WORKERS) as pool:
            results = list(pool.map(lambda _: create_one(cloud.db, cloud.settings, ctx, network_id),
                                    range(WORKERS)))
        check_outcome(cloud.db, subnet_id, results, WORKERS)
        with cloud.db.reader() as s:  # the default security group, made once in the race
            assert s.scalar(select(func.count()).select_from(SecurityGroup)
                            .where(SecurityGroup.project_id == ctx.project_id)) == 1


def _process_worker(url: str, project_id: str, network_id: str, count: int, queue) -> None:
    """A separate process with its own database engine, as another API worker is."""
    settings = Settings()
    db = Database(url)
    ctx = member_ctx(project_id)
    with ThreadPoolExecutor(count) as pool:
        for result in pool.map(lambda _: create_one(db, settings, ctx, network_id), range(count)):
            queue.put(result)
    db.dispose()


def test_concurrent_processes_never_share_an_address(db_url, cloud_on):
    with cloud_on(db_url, roles=False) as cloud:
        ctx = member_ctx()
        network_id, subnet_id = make_network(cloud.db, cloud.settings, ctx)
        spawn = multiprocessing.get_context("spawn")
        queue = spawn.Queue()
        workers = [spawn.Process(target=_process_worker,
                                 args=(cloud.db.url, ctx.project_id, network_id, 5, queue))
                   for _ in range(4)]
        for worker in workers:
            worker.start()
        results = [queue.get(timeout=120) for _ in range(20)]
        for worker in workers:
            worker.join(timeout=60)
            assert worker.exitcode == 0
        check_outcome(cloud.db, subnet_id, results, 20)


def test_concurrent_first_uses_of_auto_make_one_network(db_url, cloud_on):
    with cloud_on(db_url, roles=False) as cloud:
        ctx = member_ctx()

        def first_use(_: int) -> str:
            return cloud.db.run(lambda s: auto.get_or_create_auto_network(
                s, ctx, cloud.settings, ctx.project_id).id)

        with ThreadPoolExecutor(8) as pool:
            ids = set(pool.map(first_use, range(8)))
        assert len(ids) == 1
        with cloud.db.reader() as s:
            assert s.scalar(select(func.count()).select_from(Network)
                            .where(Network.project_id == ctx.project_id)) == 1
            row = s.get(AutoAllocatedNetwork, ctx.project_id)
            assert row.network_id in ids


# ---------------------------------------------------------------- what compute calls


def test_seeded_random_cannot_make_macs_collide(cloud):
    """Forked workers share `random`'s state; MACs must not come from it (regression)."""
    ctx = member_ctx()
    network_id, _ = make_network(cloud.db, cloud.settings, ctx, "10.0.0.0/24")
    for _ in range(5):
        random.seed(7)
        assert not create_one(cloud.db, cloud.settings, ctx, network_id).startswith("error")


def test_build_nics_keeps_map_order_and_subnet_details(cloud):
    ctx = member_ctx()

    def work(s):
        net = networks.create_network(s, ctx, cloud.settings, {"name": "n", "mtu": 1400})
        subnets.create_subnet(s, ctx, cloud.settings, {
            "network_id": net.id, "cidr": "192.168.9.0/24", "ip_version": 4,
            "dns_nameservers": ["9.9.9.9"], "enable_dhcp": False,
            "host_routes": [{"destination": "10.0.0.0/8", "nexthop": "192.168.9.254"}]})
        a = ports.create_port(s, ctx, cloud.settings, network_id=net.id,
                              fixed_ips=[{"ip_address": "192.168.9.10"}])
        b = ports.create_port(s, ctx, cloud.settings, network_id=net.id)
        return net.id, a.id, b.id, a.mac_address

    network_id, a, b, mac = cloud.db.run(work)
    with cloud.db.reader() as s:
        nics = ports.build_nics(s, [{"port_id": b, "index": 0, "name": "eth0"},
                                    {"port_id": "gone", "index": 1, "name": "eth1"},
                                    {"port_id": a, "index": 2, "name": "eth2"}])
    assert [(n.port_id, n.name) for n in nics] == [(b, "eth0"), (a, "eth2")]
    nic = nics[1]
    assert (nic.mac, nic.mtu, nic.network_id) == (mac, 1400, network_id)
    (fixed,) = nic.fixed_ips
    assert fixed.address == "192.168.9.10"
    assert (fixed.subnet.cidr, fixed.subnet.gateway_ip, fixed.subnet.enable_dhcp) == \
        ("192.168.9.0/24", "192.168.9.1", False)
    assert fixed.subnet.dns_nameservers == ("9.9.9.9",)
    assert fixed.subnet.host_routes == (("10.0.0.0/8", "192.168.9.254"),)
    assert Nic.from_dict(nic.to_dict()) == nic


def test_bind_unbind_and_delete_port(cloud):
    ctx = member_ctx()
    network_id, _ = make_network(cloud.db, cloud.settings, ctx, "10.0.0.0/24")
    port_id = cloud.db.run(lambda s: ports.create_port(
        s, ctx, cloud.settings, network_id=network_id, device_id="vm", device_owner="compute:nova",
        host_id="node-1").id)
    with cloud.db.reader() as s:
        bound = ports.get_port(s, ctx, port_id)
        assert (bound.binding_host_id, bound.binding_vif_type, bound.status) == \
            ("node-1", "bridge", "ACTIVE")
    cloud.db.run(lambda s: ports.update_binding(s, port_id, device_id="", device_owner="",
                                                host_id=None))
    with cloud.db.reader() as s:
        unbound = ports.get_port(s, ctx, port_id)
        assert (unbound.device_id, unbound.binding_host_id, unbound.status) == ("", None, "DOWN")
        with pytest.raises(PortNotFound):
            ports.get_port(s, member_ctx(), port_id)
        with pytest.raises(NetworkNotFound):
            networks.get_network(s, member_ctx(), network_id)
    cloud.db.run(lambda s: ports.delete_port(s, port_id))
    cloud.db.run(lambda s: ports.delete_port(s, port_id))  # gone already: fine
    with cloud.db.reader() as s:
        assert s.scalar(select(func.count()).select_from(IPAllocation)
                        .where(IPAllocation.port_id == port_id)) == 0
