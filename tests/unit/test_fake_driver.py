"""The fake driver's simulated storage pools: what hosts report so the scheduler can place by
pool, in tests and in simulations of many hosts with different storage tiers."""

from __future__ import annotations

import pytest

from cirrus.config import FakeHostSettings
from cirrus.virt.driver import InstanceSpec, SpawnError
from cirrus.virt.fake import FakeDriver, simulated_pools


def test_a_host_has_only_default_of_local_gb_unless_told_otherwise() -> None:
    assert simulated_pools("fake-1", FakeHostSettings(local_gb=700)) == {"default": 700}


def test_a_pool_with_every_n_goes_to_hosts_numbered_a_multiple_of_n() -> None:
    options = FakeHostSettings(local_gb=700, storage_pools={"ssd": "100/2", "hdd": "5000"})
    assert simulated_pools("fake-1", options) == {"default": 700, "hdd": 5000}
    assert simulated_pools("fake-4", options) == {"default": 700, "ssd": 100, "hdd": 5000}
    assert "ssd" not in simulated_pools("host-a", options)  # no number: every-host pools only


@pytest.mark.parametrize("value", ["big", "100/0", "-1", "10/x"])
def test_a_malformed_pool_size_is_refused_with_the_expected_form(value: str) -> None:
    with pytest.raises(ValueError, match=r"ssd = .* is not GB or GB/N"):
        FakeDriver("fake-1", FakeHostSettings(storage_pools={"ssd": value}))


def test_stats_report_pool_free_space_less_the_root_disks_in_it() -> None:
    driver = FakeDriver("fake-2", FakeHostSettings(local_gb=700, storage_pools={"ssd": "100"}))
    driver.spawn(InstanceSpec(uuid="u1", name="vm", vcpus=1, memory_mb=64, root_gb=30,
                              storage_pool="ssd"))
    driver.spawn(InstanceSpec(uuid="u2", name="vm", vcpus=1, memory_mb=64, root_gb=5))
    assert driver.host_stats().storage_pools == {
        "default": {"total_gb": 700, "free_gb": 695},
        "ssd": {"total_gb": 100, "free_gb": 70}}


def test_a_spawn_into_a_pool_the_host_lacks_fails_naming_its_pools() -> None:
    driver = FakeDriver("fake-1", FakeHostSettings(storage_pools={"ssd": "100/2"}))
    with pytest.raises(SpawnError, match=r"storage pool 'ssd' is not declared \(it has: default\)"):
        driver.spawn(InstanceSpec(uuid="u1", name="vm", vcpus=1, memory_mb=64, root_gb=1,
                                  storage_pool="ssd"))
    assert driver.list_instances() == {}
