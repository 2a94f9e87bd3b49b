"""Cold resize and the shelve offload on the real libvirtd (QEMU TCG, blank guests): the
root disk grows with qemu-img, the domain gets the new vCPUs and memory, a disk never
shrinks; an offload leaves nothing on the host and the same server may be built here
again (its unshelve). The XML rewrite is checked without libvirt."""

from __future__ import annotations

import dataclasses
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest

from cirrus.agent.service import Agent
from cirrus.bus.local import LocalBus
from cirrus.compute.states import NOSTATE, RUNNING, SHUTDOWN, SUSPENDED
from cirrus.config import Settings
from cirrus.virt.libvirt.build import ROOT_DISK
from cirrus.virt.libvirt.domain import DomainConfig, domain_xml
from cirrus.virt.libvirt.qemuimg import virtual_size
from cirrus.virt.libvirt.resize import resized_xml
from tests.virt.test_libvirt_driver import Spawner

GIB = 1024**3


def test_resized_xml_changes_vcpus_memory_numa_and_max_memory() -> None:
    xml = domain_xml(DomainConfig(uuid="u", virt_type="qemu", vcpus=1, memory_mb=128,
                                  console_log="/tmp/c"))
    root = ET.fromstring(resized_xml(xml, 3, 512))
    assert root.findtext("vcpu") == "3"
    assert (root.find("memory").text, root.find("memory").get("unit")) == ("524288", "KiB")
    assert root.find("currentMemory").text == "524288"
    cell = root.find("cpu/numa/cell")
    assert (cell.get("cpus"), cell.get("memory"), cell.get("unit")) == ("0-2", "524288", "KiB")
    assert int(root.find("maxMemory").text) > 524288


@pytest.fixture
def spawner(libvirt_available, libvirt_settings: Settings) -> Iterator[Spawner]:
    s = Spawner(libvirt_settings)
    yield s
    s.cleanup()


def test_resize_grows_the_disk_and_redefines_the_domain(spawner: Spawner) -> None:
    spec = spawner.spec(spawner.blank_image())
    spawner.driver.spawn(spec)
    disk = spawner.driver.pools.find_instance_dir(spec.uuid) / ROOT_DISK
    assert virtual_size(disk, "qcow2") == 1 * GIB
    bigger = dataclasses.replace(spec, vcpus=2, memory_mb=256, root_gb=3)
    spawner.driver.resize(spec.uuid, bigger, power_on=True)
    assert virtual_size(disk, "qcow2") == 3 * GIB
    dom = spawner.domain(spec.uuid)
    root = ET.fromstring(dom.XMLDesc(0))
    assert root.findtext("vcpu") == "2"
    assert int(root.find("memory").text) == 256 * 1024
    assert spawner.driver.power_state(spec.uuid) == RUNNING
    # Back to the old flavor (a revert), left off: the disk keeps its size.
    spawner.driver.resize(spec.uuid, spec, power_on=False)
    assert virtual_size(disk, "qcow2") == 3 * GIB
    assert ET.fromstring(spawner.domain(spec.uuid).XMLDesc(0)).findtext("vcpu") == "1"
    assert spawner.driver.power_state(spec.uuid) == SHUTDOWN


def test_offload_removes_the_vm_and_its_files_and_a_later_build_here_is_accepted(
        spawner: Spawner, libvirt_settings: Settings) -> None:
    spec = spawner.spec(spawner.blank_image())
    spawner.driver.spawn(spec)
    inst_dir = spawner.driver.pools.find_instance_dir(spec.uuid)
    assert inst_dir is not None and inst_dir.exists()
    agent = Agent(libvirt_settings, LocalBus(), "test-host", spawner.driver)
    assert agent.offload(None, {"uuid": spec.uuid}) == {"uuid": spec.uuid, "offloaded": True}
    assert spawner.domain(spec.uuid) is None
    assert spawner.driver.power_state(spec.uuid) == NOSTATE
    assert not inst_dir.exists()
    assert spec.uuid not in agent._destroyed  # an unshelve may bring it back here
    spawner.driver.spawn(spec)
    assert spawner.driver.power_state(spec.uuid) == RUNNING


@pytest.mark.parametrize("how", ["pause", "suspend"])
def test_power_off_of_a_paused_or_suspended_domain_is_prompt_and_leaves_it_off(
        spawner: Spawner, how: str) -> None:
    """What a shelve of a paused or suspended server does first (Nova allows both): a paused
    guest cannot shut itself down, so it is stopped at once rather than after
    libvirt_shutdown_timeout; a suspended one is off already (its memory kept beside it)."""
    spawner.driver.settings.libvirt_shutdown_timeout = 120.0
    spec = spawner.spec(spawner.blank_image())
    spawner.driver.spawn(spec)
    getattr(spawner.driver, how)(spec.uuid)
    started = time.monotonic()
    spawner.driver.power_off(spec.uuid)
    assert time.monotonic() - started < 60  # not the 120 s a clean shutdown would wait
    dom = spawner.domain(spec.uuid)
    assert not dom.isActive() and dom.hasManagedSaveImage(0) == (how == "suspend")
    assert spawner.driver.power_state(spec.uuid) == (SHUTDOWN if how == "pause" else SUSPENDED)
    spawner.driver.power_on(spec.uuid)
    assert spawner.driver.power_state(spec.uuid) == RUNNING
