"""Allocation of subnets from a subnet pool on every database backend: concurrent creates
(threads, each its own transaction) never take the same block, and a pool with no room
left answers SubnetAllocationError with nothing written."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from cirrus.context import RequestContext
from cirrus.db.models import Subnet
from cirrus.errors import CirrusError
from cirrus.network import networks, subnetpools, subnets
from cirrus.network.errors import SubnetAllocationError

pytest_plugins = ("tests.dbfixtures",)
WORKERS = 8


def test_concurrent_creates_take_distinct_blocks(db_url, cloud_on):
    with cloud_on(db_url, roles=False) as cloud:
        ctx = RequestContext(project_id=uuid.uuid4().hex, roles=["member", "reader"])
        pool_id = cloud.db.run(lambda s: subnetpools.create_subnetpool(s, ctx, {
            "prefixes": ["10.20.0.0/21"], "min_prefixlen": 16, "default_prefixlen": 24}).id)
        net_ids = [cloud.db.run(lambda s: networks.create_network(
            s, ctx, cloud.settings, {"name": "n"}).id) for _ in range(WORKERS + 1)]

        def make(network_id: str) -> str:
            spec = {"network_id": network_id, "ip_version": 4, "subnetpool_id": pool_id}
            try:
                return cloud.db.run(lambda s: subnets.create_subnet(
                    s, ctx, cloud.settings, dict(spec)).cidr)
            except CirrusError as exc:
                return type(exc).__name__

        with ThreadPoolExecutor(WORKERS) as workers:
            results = list(workers.map(make, net_ids))
        cidrs = [r for r in results if r.startswith("10.")]
        assert sorted(cidrs) == sorted(f"10.20.{i}.0/24" for i in range(8))
        assert results.count("SubnetAllocationError") == 1
        with cloud.db.reader() as s:
            assert s.scalar(select(func.count()).select_from(Subnet)
                            .where(Subnet.subnetpool_id == pool_id)) == 8
        with pytest.raises(SubnetAllocationError):
            cloud.db.run(lambda s: subnets.create_subnet(s, ctx, cloud.settings, {
                "network_id": net_ids[0], "ip_version": 4, "subnetpool_id": pool_id,
                "prefixlen": 16}))


def test_concurrent_overlapping_subnets_on_one_network_make_one(db_url, cloud_on):
    """The overlap check of a plain subnet create reads the network's subnets with a locking
    read after the network row is locked: under MariaDB's repeatable read a plain read would
    still see the snapshot taken before the lock and miss a subnet committed meanwhile."""
    with cloud_on(db_url, roles=False) as cloud:
        ctx = RequestContext(project_id=uuid.uuid4().hex, roles=["member", "reader"])
        net_id = cloud.db.run(lambda s: networks.create_network(
            s, ctx, cloud.settings, {"name": "n"}).id)

        def make(i: int) -> str:
            spec = {"network_id": net_id, "ip_version": 4, "cidr": f"10.30.0.0/{24 + i % 2}"}
            try:
                return cloud.db.run(lambda s: subnets.create_subnet(
                    s, ctx, cloud.settings, dict(spec)).cidr)
            except CirrusError as exc:
                return type(exc).__name__

        with ThreadPoolExecutor(WORKERS) as workers:
            results = list(workers.map(make, range(WORKERS)))
        assert len([r for r in results if r.startswith("10.")]) == 1, results
        with cloud.db.reader() as s:
            assert s.scalar(select(func.count()).select_from(Subnet)
                            .where(Subnet.network_id == net_id)) == 1
