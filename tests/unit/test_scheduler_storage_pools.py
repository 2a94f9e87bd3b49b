"""Placement by storage pool end to end below the API: fake agents report their pools, the
conductor records them, the scheduler loads them and StoragePoolFilter decides."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from cirrus.config import Settings
from cirrus.db.models import ComputeNode
from cirrus.hosts.view import load_hosts
from cirrus.runtime import Cloud
from cirrus.scheduler.hoststate import RequestSpec
from cirrus.scheduler.service import Scheduler, filter_hosts


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.fake.count = 3  # all three shown in an explanation (MAX_REASONS_SHOWN)
    settings.fake.storage_pools = {"ssd": "100/2", "hdd": "500/3"}  # fake-2; fake-3
    return settings


def scheduler(cloud: Cloud) -> Scheduler:
    return next(r for r in cloud.roles if isinstance(r, Scheduler))


def request(pool: str | None, disk_gb: int = 10) -> RequestSpec:
    return RequestSpec(instance_uuid="u", vcpus=1, memory_mb=512, disk_gb=disk_gb,
                       storage_pool=pool)


def test_agents_pools_are_recorded_on_their_compute_nodes(cloud: Cloud) -> None:
    with cloud.db.reader() as s:
        pools = dict(s.execute(select(ComputeNode.hypervisor_hostname,
                                      ComputeNode.storage_pools)).all())
    assert pools["fake-1"] == {"default": {"total_gb": 1000, "free_gb": 1000}}
    assert pools["fake-2"]["ssd"] == {"total_gb": 100, "free_gb": 100}


def test_a_request_for_ssd_passes_only_the_hosts_with_ssd(cloud: Cloud) -> None:
    with cloud.db.reader() as s:
        hosts = load_hosts(s, cloud.settings)
    passed, refusals = filter_hosts(hosts, request("ssd"))
    assert [h.node for h in passed] == ["fake-2"]
    assert sorted(refusals["StoragePoolFilter"]) == [
        ("fake-1", "no storage pool 'ssd' (it has: default)"),
        ("fake-3", "no storage pool 'ssd' (it has: default, hdd)")]
    passed, _ = filter_hosts(hosts, request(None))
    assert len(passed) == 3  # no pool asked: every host's default pool


def test_nothing_fits_says_which_hosts_lack_the_pool_and_which_the_room(cloud: Cloud) -> None:
    result = scheduler(cloud).select_destination(
        cloud.admin_context(), {"instance_uuid": "u", "vcpus": 1, "memory_mb": 512,
                                "disk_gb": 150, "storage_pool": "ssd"})
    assert result["host"] is None
    reason = result["reason"]
    assert "3 host(s) considered: StoragePoolFilter refused 3 (" in reason
    assert "fake-2: pool 'ssd' has 100 GB free, 150 GB needed" in reason
    assert "fake-1: no storage pool 'ssd' (it has: default)" in reason
