"""Issue 13 (comp-a) driver operations on the real libvirtd (QEMU TCG, a blank guest):
pause/unpause (virDomainSuspend/Resume), suspend/resume (managed save), rebuild (a new root
disk from another image and a new config drive, the same domain uuid and NICs)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from collections.abc import Iterator

import libvirt
import pytest

from cirrus.config import Settings
from cirrus.virt.power import PAUSED, RUNNING, SHUTDOWN, SUSPENDED
from cirrus.virt.spec import ImageInfo
from tests.virt.conftest import store_image
from tests.virt.test_libvirt_driver import MIB, Spawner, assert_gone, drive_file

pytestmark = pytest.mark.usefixtures("libvirt_available")
META = "openstack/latest/meta_data.json"


@pytest.fixture
def spawner(libvirt_settings: Settings) -> Iterator[Spawner]:
    s = Spawner(libvirt_settings)
    yield s
    s.cleanup()


def backing_file(spawner: Spawner, instance: str) -> str:
    disk = spawner.driver.pools.find_instance_dir(instance) / "disk.qcow2"
    info = subprocess.run(["qemu-img", "info", "-U", "--output=json", str(disk)],
                          capture_output=True, text=True, check=True).stdout
    return json.loads(info)["backing-filename"]


def test_pause_suspend_rebuild_on_libvirt(spawner: Spawner) -> None:
    driver = spawner.driver
    spec = spawner.spec(spawner.blank_image(), config_drive=True)
    driver.spawn(spec)
    dom = spawner.domain(spec.uuid)

    driver.pause(spec.uuid)
    assert dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED
    assert driver.power_state(spec.uuid) == PAUSED
    assert driver.list_instances()[spec.uuid] == PAUSED
    driver.unpause(spec.uuid)
    assert driver.power_state(spec.uuid) == RUNNING

    driver.suspend(spec.uuid)  # managed save: off, with its memory kept beside it
    assert not dom.isActive() and dom.hasManagedSaveImage(0)
    assert driver.power_state(spec.uuid) == SUSPENDED
    assert driver.list_instances()[spec.uuid] == SUSPENDED
    driver.resume(spec.uuid)
    assert driver.power_state(spec.uuid) == RUNNING
    assert not dom.hasManagedSaveImage(0)  # restored from it, and libvirt removed it

    # rebuild from another image: a new root disk over it, a new config drive
    other = store_image(spawner.settings.effective_image_dir, b"\1" * MIB)
    assert json.loads(drive_file(spawner, spec.uuid, META))["name"] != "rebuilt"
    old_base = backing_file(spawner, spec.uuid)
    spec.image = ImageInfo.from_dict(other)
    spec.image_ref = other["id"]
    spec.config_drive = dataclasses.replace(spec.config_drive, display_name="rebuilt")
    driver.rebuild(spec)
    assert driver.power_state(spec.uuid) == RUNNING
    new_base = backing_file(spawner, spec.uuid)
    assert new_base != old_base and new_base.endswith(other["id"])
    assert json.loads(drive_file(spawner, spec.uuid, META))["name"] == "rebuilt"
    assert spawner.domain(spec.uuid).UUIDString() == spec.uuid

    # a suspended guest is destroyed with its managed save
    driver.suspend(spec.uuid)
    driver.power_off(spec.uuid)  # what a soft delete does: already off, nothing to do
    assert driver.power_state(spec.uuid) == SUSPENDED
    driver.destroy(spec.uuid)
    assert_gone(spawner, spec.uuid)
    assert driver.power_state(spec.uuid) not in (SHUTDOWN, SUSPENDED)
