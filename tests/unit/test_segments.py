"""Segment allocation under concurrency (issue 14, l2): every tenant network gets its own
VNI, whatever the number of workers creating networks at once, on SQLite, PostgreSQL and
MariaDB; the loser of a race draws another id; an exhausted range is said, not guessed."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from cirrus.config import Settings
from cirrus.context import RequestContext
from cirrus.db.models import Network, SegmentAllocation
from cirrus.errors import CirrusError
from cirrus.network import networks, segments

pytest_plugins = ("tests.dbfixtures",)
WORKERS = 16
RANGE = 10


def member_ctx() -> RequestContext:
    return RequestContext(project_id=uuid.uuid4().hex, roles=["member", "reader"])


def test_concurrent_creates_never_share_a_vni(db_url, cloud_on):
    with cloud_on(db_url, roles=False) as cloud:
        cloud.settings.vxlan_vni_ranges = [f"1:{RANGE // 2}", f"{1000}:{1000 + RANGE // 2 - 1}"]
        cloud.settings.quota_network = -1
        ctx = member_ctx()

        def create(_: int) -> str:
            try:
                return str(cloud.db.run(lambda s: networks.create_network(
                    s, ctx, cloud.settings, {"name": "race"}).provider_segmentation_id))
            except CirrusError as exc:
                return f"error: {exc.message}"

        with ThreadPoolExecutor(WORKERS) as pool:
            results = list(pool.map(create, range(WORKERS)))
        vnis = sorted(int(r) for r in results if not r.startswith("error"))
        assert vnis == [1, 2, 3, 4, 5, 1000, 1001, 1002, 1003, 1004], results
        assert [r for r in results if r.startswith("error")] == [
            "error: Unable to create the network. No tenant network is available for "
            "allocation."] * (WORKERS - RANGE)
        with cloud.db.reader() as s:  # the refused creates left no network behind
            assert s.scalar(select(func.count()).select_from(Network)
                            .where(Network.provider_network_type == "vxlan")) == RANGE
            assert s.scalar(select(func.count()).select_from(SegmentAllocation)
                            .where(SegmentAllocation.network_type == "vxlan")) == RANGE


def test_concurrent_admins_asking_for_one_vlan_get_it_once(db_url, cloud_on):
    with cloud_on(db_url, roles=False) as cloud:
        cloud.settings.network_vlan_ranges = ["physnet1"]
        ctx = RequestContext(project_id=uuid.uuid4().hex, roles=["admin", "member", "reader"])
        spec = {"name": "v", "provider_network_type": "vlan",
                "provider_physical_network": "physnet1", "provider_segmentation_id": 5}

        def create(_: int) -> str:
            try:
                return cloud.db.run(lambda s: networks.create_network(
                    s, ctx, cloud.settings, dict(spec)).id)
            except CirrusError as exc:
                return f"error: {exc.message}"

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(create, range(8)))
        errors = [r for r in results if r.startswith("error")]
        assert len(errors) == 7 and set(errors) == {
            "error: Unable to create the network. The VLAN 5 on physical network physnet1 is "
            "in use."}, results
        with cloud.db.reader() as s:  # (the module's database: count this test's only)
            assert s.scalar(select(func.count()).select_from(Network)
                            .where(Network.provider_network_type == "vlan")) == 1


def test_ranges_and_mtus_from_settings():
    settings = Settings(vxlan_vni_ranges=["5:9", "20"], network_vlan_ranges=[
        "physnet1", "physnet2:10:20", "physnet2:30:31"])
    assert segments.vni_ranges(settings) == [(5, 9), (20, 20)]
    assert segments.vlan_ranges(settings) == {"physnet1": [], "physnet2": [(10, 20), (30, 31)]}
    assert segments.max_mtu(settings, "vxlan") == 1450
    assert segments.max_mtu(settings, "vlan") == segments.max_mtu(settings, "flat") == 1500
    assert segments.default_mtu(settings, None) == 1500
    with pytest.raises(ValueError, match="not within"):
        segments.vni_ranges(Settings(vxlan_vni_ranges=["0:5"]))
    with pytest.raises(ValueError, match="not within"):
        segments.vlan_ranges(Settings(network_vlan_ranges=["p:1:4095"]))
    assert segments._first_free([(1, 3), (7, 9)], {1, 2, 8}, 3) == [3, 7, 9]


def test_bad_l2_settings_stop_a_process_from_starting(tmp_path):
    from cirrus.runtime import Cloud, ConfigurationError

    for bad, said in ((dict(vxlan_vni_ranges=["9:1"]), "vxlan_vni_ranges: '9:1'"),
                      (dict(network_vlan_ranges=["p:1:x"]), "is not low:high"),
                      (dict(tenant_network_types=["gre"]), "tenant_network_types"),
                      (dict(default_network_mtu=100), "default_network_mtu")):
        with pytest.raises(ConfigurationError, match=said):
            Cloud(Settings(data_dir=tmp_path, **bad))
