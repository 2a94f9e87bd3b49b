"""Storage pools: which one a server asks for, where a host keeps it, the settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cirrus.config import Settings, load_settings
from cirrus.storage.pools import requested_storage_pool
from cirrus.virt.driver import SpawnError
from cirrus.virt.libvirt.storage import StoragePools


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CIRRUS_"):
            monkeypatch.delenv(name)


def test_the_flavor_extra_spec_wins_over_the_image_property() -> None:
    assert requested_storage_pool({"cirrus:storage_pool": "ssd"},
                                  {"cirrus_storage_pool": "hdd"}) == "ssd"
    assert requested_storage_pool({}, {"cirrus_storage_pool": "hdd"}) == "hdd"
    assert requested_storage_pool(None, None) is None
    assert requested_storage_pool({"cirrus:storage_pool": ""}, {}) is None


def test_the_instances_dir_is_the_default_pool(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path)
    assert s.effective_instances_dir == tmp_path / "instances"
    assert s.effective_image_cache_dir == tmp_path / "instances" / "_base"
    assert s.effective_storage_pools == {"default": tmp_path / "instances"}


def test_declared_pools_join_the_default_unless_they_name_their_own(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, storage_pools={"ssd": "/srv/ssd"})
    assert s.effective_storage_pools == {"default": tmp_path / "instances",
                                         "ssd": Path("/srv/ssd")}
    s.storage_pools = {"default": "/srv/hdd"}
    assert s.effective_storage_pools == {"default": Path("/srv/hdd")}


def test_pools_from_a_toml_table_and_from_the_environment(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "cirrus.toml"
    config.write_text('[storage_pools]\nssd = "/srv/ssd"\npcie_ssd = "/srv/nvme"\n')
    assert load_settings(config).storage_pools == {"ssd": "/srv/ssd", "pcie_ssd": "/srv/nvme"}
    monkeypatch.setenv("CIRRUS_STORAGE_POOLS", "hdd=/srv/hdd, ssd = /srv/ssd2")
    assert load_settings(config).storage_pools == {"hdd": "/srv/hdd", "ssd": "/srv/ssd2"}


def test_malformed_pools_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "cirrus.toml"
    config.write_text("[storage_pools]\nssd = 3\n")
    with pytest.raises(ValueError, match="storage_pools"):
        load_settings(config)
    monkeypatch.setenv("CIRRUS_STORAGE_POOLS", "ssd")
    with pytest.raises(ValueError, match="name=value"):
        load_settings()


def test_an_unknown_pool_fails_with_the_pools_the_host_has(tmp_path: Path) -> None:
    pools = StoragePools({"default": tmp_path / "a", "ssd": tmp_path / "b"}, "node-1")
    assert pools.instance_dir("ssd", "u1") == tmp_path / "b" / "u1"
    assert pools.instance_dir(None, "u1") == tmp_path / "a" / "u1"
    with pytest.raises(SpawnError, match=r"'nvme' is not declared on host node-1.*default, ssd"):
        pools.directory("nvme")


def test_an_instance_is_found_in_whichever_pool_holds_it(tmp_path: Path) -> None:
    pools = StoragePools({"default": tmp_path / "a", "ssd": tmp_path / "b"}, "node-1")
    (tmp_path / "b" / "u2").mkdir(parents=True)
    assert pools.find_instance_dir("u2") == tmp_path / "b" / "u2"
    assert pools.find_instance_dir("u3") is None


def test_capacity_counts_each_filesystem_once(tmp_path: Path) -> None:
    pools = StoragePools({"default": tmp_path / "a", "ssd": tmp_path / "b" / "not-yet"}, "n")
    (tmp_path / "a").mkdir()
    capacity = pools.capacity()
    assert set(capacity) == {"default", "ssd"}
    assert capacity["default"]["total_gb"] >= capacity["default"]["free_gb"] >= 0
    assert pools.local_gb() == capacity["default"]["total_gb"]  # both on one filesystem
