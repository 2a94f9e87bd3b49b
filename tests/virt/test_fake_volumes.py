"""The fake driver's volumes: recorded in the VM's record (and its state file), targets
picked as libvirt picks them, a guest that never lets go played by `stuck_volumes`."""

from __future__ import annotations

from pathlib import Path

import pytest

from cirrus.config import FakeHostSettings
from cirrus.virt.driver import VolumeDetachTimeout, VolumeError
from cirrus.virt.fake import FakeDriver
from cirrus.virt.power import SHUTDOWN
from cirrus.virt.spec import InstanceSpec, VolumeDevice, VolumeQos


def file_volume(volume_id: str, **kw) -> VolumeDevice:
    return VolumeDevice(volume_id, "file", {"path": f"/v/{volume_id}.qcow2", "format": "qcow2"},
                        **kw)


@pytest.fixture
def driver(tmp_path: Path) -> FakeDriver:
    d = FakeDriver("fake-1", FakeHostSettings(), tmp_path / "fake-hosts")
    d.spawn(InstanceSpec(uuid="vm-1", name="vm", vcpus=1, memory_mb=64, root_gb=1))
    return d


def test_the_fake_driver_declares_volume_attach(driver: FakeDriver) -> None:
    assert driver.capabilities.volume_attach
    assert driver.host_stats().capabilities["volume_attach"] is True


def test_attach_picks_free_targets_and_is_idempotent(driver: FakeDriver, tmp_path: Path) -> None:
    assert driver.attach_volume("vm-1", file_volume("a")) == "vdb"
    assert driver.attach_volume("vm-1", file_volume("b", qos=VolumeQos(total_iops_sec=9)
                                                    ).to_dict()) == "vdc"  # plain data too
    assert driver.attach_volume("vm-1", file_volume("a")) == "vdb"  # again: the same
    assert driver.attach_volume("vm-1", file_volume("s", bus="scsi")) == "sda"
    assert driver.volume_targets("vm-1") == {"a": "vdb", "b": "vdc", "s": "sda"}
    assert driver.volumes("vm-1")["b"]["qos"] == {"total_iops_sec": 9}
    with pytest.raises(VolumeError, match="vdc of vm-1 is in use"):
        driver.attach_volume("vm-1", file_volume("c", device_name="vdc"))
    assert "vdb: volume a attached" in driver.console_output("vm-1")
    restarted = FakeDriver("fake-1", FakeHostSettings(), tmp_path / "fake-hosts")
    assert restarted.volume_targets("vm-1") == {"a": "vdb", "b": "vdc", "s": "sda"}


def test_extend_and_detach(driver: FakeDriver) -> None:
    driver.attach_volume("vm-1", file_volume("a"))
    driver.extend_volume("vm-1", "a", 3)
    assert driver.volumes("vm-1")["a"]["size_gb"] == 3
    with pytest.raises(VolumeError, match="shrink"):
        driver.extend_volume("vm-1", "a", 2)
    with pytest.raises(VolumeError, match="not attached"):
        driver.extend_volume("vm-1", "zzz", 2)
    driver.detach_volume("vm-1", "a")
    assert driver.volume_targets("vm-1") == {}
    driver.detach_volume("vm-1", "a")  # not attached: nothing to do
    driver.detach_volume("gone-vm", "a")  # no VM: nothing to do
    with pytest.raises(VolumeError, match="no VM"):
        driver.attach_volume("gone-vm", file_volume("a"))


def test_a_guest_that_never_lets_go(driver: FakeDriver) -> None:
    driver.attach_volume("vm-1", file_volume("a"))
    driver.stuck_volumes = {"a"}
    with pytest.raises(VolumeDetachTimeout, match="did not release volume a"):
        driver.detach_volume("vm-1", "a", timeout=5)
    assert "a" in driver.volume_targets("vm-1")
    driver.power_off("vm-1")  # off: nothing holds it
    assert driver.power_state("vm-1") == SHUTDOWN
    driver.detach_volume("vm-1", "a")
    assert driver.volume_targets("vm-1") == {}


def test_spawn_attaches_the_spec_volumes_boot_volume_first(tmp_path: Path) -> None:
    d = FakeDriver("fake-1", FakeHostSettings(), tmp_path)
    d.spawn(InstanceSpec(uuid="bfv", name="bfv", vcpus=1, memory_mb=64, root_gb=0,
                         volumes=[file_volume("data"), file_volume("root", boot_index=0)]))
    assert d.volume_targets("bfv") == {"root": "vda", "data": "vdb"}
    assert "vda: volume root (file), boot" in d.console_output("bfv")
