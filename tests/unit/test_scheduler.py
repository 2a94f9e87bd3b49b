"""Scheduler filters, weighers and explanations: pure functions, no I/O."""

from cirrus.scheduler.filters import core_filter, ram_filter, storage_pool_filter
from cirrus.scheduler.hoststate import HostState, RequestSpec
from cirrus.scheduler.service import explain, filter_hosts
from cirrus.scheduler.weighers import rank


def host(name, free_ram=4096, up=True, disabled=False, zone="nova", vcpus=4, ratio=1.0,
         pools=None):
    return HostState(node_id=1, host=name, node=name, availability_zone=zone, vcpus=vcpus,
                     memory_mb=free_ram, local_gb=100, vcpus_used=0, memory_mb_used=0,
                     local_gb_used=0, cpu_allocation_ratio=ratio, ram_allocation_ratio=1.0,
                     disk_allocation_ratio=1.0, service_up=up, service_disabled=disabled,
                     storage_pools=pools or {})


def pools(**free_gb):
    """pools(default=50, ssd=3): what an agent reports, total 1000 GB each."""
    return {name: {"total_gb": 1000, "free_gb": free} for name, free in free_gb.items()}


def spec(**kw):
    base = dict(instance_uuid="u", vcpus=1, memory_mb=1024, disk_gb=1)
    base.update(kw)
    return RequestSpec(**base)


def test_ram_filter_says_how_much_is_free():
    assert ram_filter(host("a", free_ram=512), spec()) == "512 MB RAM free, 1024 MB needed"
    assert ram_filter(host("a", free_ram=2048), spec()) is None


def test_cpu_overcommit_ratio_counts():
    assert core_filter(host("a", vcpus=2, ratio=1.0), spec(vcpus=4)) is not None
    assert core_filter(host("a", vcpus=2, ratio=2.0), spec(vcpus=4)) is None


def test_storage_pool_filter_passes_a_host_with_the_pool_and_room():
    assert storage_pool_filter(host("a", pools=pools(default=50, ssd=30)),
                               spec(storage_pool="ssd", disk_gb=20)) is None


def test_storage_pool_filter_refuses_a_host_without_the_pool():
    reason = storage_pool_filter(host("a", pools=pools(hdd=50, default=50)),
                                 spec(storage_pool="ssd"))
    assert reason == "no storage pool 'ssd' (it has: default, hdd)"


def test_storage_pool_filter_refuses_a_pool_with_too_little_free():
    reason = storage_pool_filter(host("a", pools=pools(default=500, ssd=3)),
                                 spec(storage_pool="ssd", disk_gb=20))
    assert reason == "pool 'ssd' has 3 GB free, 20 GB needed"


def test_no_pool_asked_means_the_default_pool():
    assert storage_pool_filter(host("a", pools=pools(default=20, ssd=0)), spec(disk_gb=20)) is None
    reason = storage_pool_filter(host("a", pools=pools(default=5, ssd=500)), spec(disk_gb=20))
    assert reason == "pool 'default' has 5 GB free, 20 GB needed"


def test_a_host_reporting_no_pools_passes_only_for_the_default_pool():
    old_agent = host("old")  # an agent that predates pool reports
    assert storage_pool_filter(old_agent, spec(disk_gb=10**6)) is None
    assert "reports no storage pools" in storage_pool_filter(old_agent, spec(storage_pool="ssd"))


def test_each_host_is_refused_by_the_first_failing_filter():
    hosts = [host("down", up=False), host("small", free_ram=100), host("ok"),
             host("elsewhere", zone="az2")]
    passed, refusals = filter_hosts(hosts, spec(availability_zone="nova"))
    assert [h.host for h in passed] == ["ok"]
    assert refusals["ComputeFilter"] == [("down", "agent is down")]
    assert refusals["RamFilter"][0][0] == "small"
    assert refusals["AvailabilityZoneFilter"][0] == ("elsewhere", "in zone az2, not nova")


def test_explanation_counts_and_names_hosts():
    text = explain(5, {"RamFilter": [(f"h{i}", "0 MB RAM free, 1 MB needed") for i in range(5)]})
    assert text.startswith("No valid host was found. 5 host(s) considered: RamFilter refused 5")
    assert "h0: 0 MB RAM free" in text and "and 2 more" in text
    assert "no compute hosts" in explain(0, {})


def test_rank_prefers_most_free_ram():
    ranked = rank([host("a", free_ram=1000), host("b", free_ram=8000), host("c", free_ram=4000)])
    assert [h.host for h in ranked] == ["b", "c", "a"]
